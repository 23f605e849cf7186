"""Benchmark metrics inside verl's validation: per-row components the ``onethinker`` reward manager emits.

A benchmark file (the reference's ``eval_<name>.json``) given as ``data.val_files`` is converted with
``data_source = <name>`` and ``extra_info.benchmark = <name>`` (:mod:`onethinker_verl.data.raw_corpus`).
For such rows the reward manager adds :func:`benchmark_extra_info` to its ``reward_extra_info``: the row's
reference-protocol accuracy and components (:mod:`.reference`) under ``bench/<reference metric name>``,
each recall as a 0/1 hit. verl's ``process_validation_metrics`` averages every key per ``data_source``
(skipping ``None``), so ``val-aux/<name>/bench/temporal_grounding/tiou/R@0.5/mean@1`` is exactly the
reference's ``temporal grounding/tiou/R@0.5`` of that benchmark (with ``val_kwargs.n = 1``; with more
samples per prompt it is their mean). Mask metrics (J&F, gIoU, cIoU) need SAM2 and are not computed here.

verl builds the batch's extra-info columns from the first item's keys, so every item carries the same
fixed key set (:data:`BENCHMARK_KEYS`), ``None`` where a key does not apply.
"""

from __future__ import annotations

from typing import Any

from onethinker_verl.data.tasks import PROBLEM_TYPES, canonical_problem_type, task_name
from onethinker_verl.benchmark_scoring.reference import OVERALL_ACCURACY, RECALL_THRESHOLDS, ZERO_COMPONENTS, score_row

PREFIX = "bench/"
# The marker the raw-corpus conversion puts in extra_info for rows of a benchmark file.
BENCHMARK_FIELD = "benchmark"


def _component_keys(problem_type: str, component: str) -> list[str]:
    base = f"{PREFIX}{task_name(problem_type)}/{component}"
    return [f"{base}/mean", *(f"{base}/R@{threshold}" for threshold in RECALL_THRESHOLDS)]


BENCHMARK_KEYS: tuple[str, ...] = (
    PREFIX + OVERALL_ACCURACY,
    *(f"{PREFIX}{task_name(problem_type)}/acc" for problem_type in PROBLEM_TYPES),
    *(
        key
        for problem_type in PROBLEM_TYPES
        for component in ZERO_COMPONENTS.get(problem_type, ())
        for key in _component_keys(problem_type, component)
    ),
)


def is_benchmark_row(extra_info: dict[str, Any]) -> bool:
    """Whether a row's ``extra_info`` carries the benchmark marker."""
    return bool(extra_info.get(BENCHMARK_FIELD))


def benchmark_extra_info(response: str, ground_truth: str, extra_info: dict[str, Any]) -> dict[str, float | None]:
    """:data:`BENCHMARK_KEYS` for one scored rollout: the reference-protocol accuracy and components when
    ``extra_info`` carries a benchmark marker, else all ``None``."""
    values: dict[str, float | None] = dict.fromkeys(BENCHMARK_KEYS)
    if not is_benchmark_row(extra_info):
        return values
    problem_type = canonical_problem_type(extra_info.get("problem_type"))
    if problem_type is None:
        return values
    score = score_row(
        {"output": response, "solution": ground_truth, "problem_type": problem_type, "data_type": extra_info.get("data_type")}
    )
    values[PREFIX + OVERALL_ACCURACY] = score.accuracy
    values[f"{PREFIX}{task_name(problem_type)}/acc"] = score.accuracy
    for component, value in score.components.items():
        mean_key, *recall_keys = _component_keys(problem_type, component)
        values[mean_key] = value
        for key, threshold in zip(recall_keys, RECALL_THRESHOLDS):
            values[key] = 1.0 if value >= threshold else 0.0
    return values
