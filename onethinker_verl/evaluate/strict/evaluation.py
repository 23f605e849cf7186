"""Evaluate a predictions file: score every line, group by benchmark, build the report object."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from onethinker_verl.evaluate.strict.aggregate import HEADLINE_METRIC, METRIC_NAMES, benchmark_metrics, recall_curves
from onethinker_verl.evaluate.strict.metrics import InvalidGroundTruth, ItemScore, UnknownTask, score_item, task_family, zero_score
from onethinker_verl.evaluate.strict.records import MalformedLine, Prediction, read_predictions

logger = logging.getLogger(__name__)

# The report's top-level key for the summary; benchmark names share its namespace.
OVERALL_KEY = "overall"
# How many skipped lines the report lists individually (all are counted).
LISTED_SKIPPED_LINES = 100


class MalformedInputError(ValueError):
    """Raised in strict mode at the first line that cannot be evaluated."""


@dataclass
class BenchmarkResult:
    """One benchmark (one task family within it): its item scores and the metrics over them."""

    name: str
    family: str
    problem_types: set[str] = field(default_factory=set)
    data_types: set[str] = field(default_factory=set)
    items: list[ItemScore] = field(default_factory=list)

    @property
    def unparsed(self) -> int:
        return sum(item.unparsed for item in self.items)

    def metrics(self) -> dict[str, float]:
        return benchmark_metrics(self.family, self.items)

    def curves(self) -> dict[str, np.ndarray]:
        return recall_curves(self.family, self.items)

    def to_json(self) -> dict:
        return {
            "task": self.family,
            "problem_types": sorted(self.problem_types),
            "data_types": sorted(self.data_types),
            "count": len(self.items),
            "unparsed": self.unparsed,
            **self.metrics(),
        }


@dataclass
class EvaluationResult:
    """Everything the report needs: per-benchmark results and the lines that were skipped."""

    benchmarks: dict[str, BenchmarkResult]
    skipped: list[MalformedLine]

    def to_json(self) -> dict:
        """The report object: benchmark name → metrics, plus :data:`OVERALL_KEY` → summary."""
        report = {name: result.to_json() for name, result in sorted(self.benchmarks.items())}
        report[OVERALL_KEY] = self.summary()
        return report

    def summary(self) -> dict:
        """Totals, the skipped lines, and per family the mean of its headline metric over benchmarks."""
        tasks = {}
        for family in METRIC_NAMES:
            members = sorted(name for name, result in self.benchmarks.items() if result.family == family)
            if members:
                headline = HEADLINE_METRIC[family]
                values = [self.benchmarks[name].metrics()[headline] for name in members]
                tasks[family] = {"benchmarks": members, "metric": headline, "mean": float(np.mean(values))}
        return {
            "benchmarks": len(self.benchmarks),
            "count": sum(len(result.items) for result in self.benchmarks.values()),
            "unparsed": sum(result.unparsed for result in self.benchmarks.values()),
            "skipped_lines": len(self.skipped),
            "skipped": [{"line": s.line, "reason": s.reason} for s in self.skipped[:LISTED_SKIPPED_LINES]],
            "tasks": tasks,
        }


def evaluate_predictions(lines: Iterable[Prediction | MalformedLine], strict: bool = False) -> EvaluationResult:
    """Score each prediction; malformed lines are logged and skipped, or raise when ``strict``."""
    groups: dict[tuple[str, str], BenchmarkResult] = {}
    skipped: list[MalformedLine] = []
    for entry in lines:
        if isinstance(entry, Prediction):
            scored = _score(entry)
            if isinstance(scored, ItemScore):
                key = (entry.benchmark, scored.family)
                result = groups.setdefault(key, BenchmarkResult(entry.benchmark, scored.family))
                result.problem_types.add(entry.problem_type.strip())
                if entry.data_type:
                    result.data_types.add(entry.data_type.strip().lower())
                result.items.append(scored)
                continue
            entry = scored
        if strict:
            raise MalformedInputError(f"line {entry.line}: {entry.reason}")
        logger.warning("skipping line %d: %s", entry.line, entry.reason)
        skipped.append(entry)
    return EvaluationResult(_name_benchmarks(groups), skipped)


def evaluate_file(path: str | Path, strict: bool = False) -> EvaluationResult:
    """:func:`evaluate_predictions` over a JSONL predictions file."""
    return evaluate_predictions(read_predictions(path), strict=strict)


def _score(prediction: Prediction) -> ItemScore | MalformedLine:
    try:
        return score_item(
            prediction.problem_type,
            prediction.data_type,
            prediction.response,
            prediction.ground_truth,
            pred_masks=prediction.pred_masks,
            gt_masks=prediction.gt_masks,
        )
    except (UnknownTask, InvalidGroundTruth) as exc:
        return MalformedLine(prediction.line, str(exc))
    except Exception:
        # A scorer bug or a library failure on one odd answer must not sink the run: score it 0.
        logger.exception("line %d: scoring failed; counted as unparsed", prediction.line)
        return zero_score(task_family(prediction.problem_type, prediction.data_type))


def _name_benchmarks(groups: dict[tuple[str, str], BenchmarkResult]) -> dict[str, BenchmarkResult]:
    """Key results by benchmark name; a benchmark mixing task families gets ``name [family]`` keys."""
    families_per_name: dict[str, int] = defaultdict(int)
    for name, _ in groups:
        families_per_name[name] += 1
    named = {}
    for (name, family), result in groups.items():
        if families_per_name[name] > 1:
            logger.warning("benchmark %r mixes task families; reporting it as '%s [%s]'", name, name, family)
            name = f"{name} [{family}]"
        if name == OVERALL_KEY:
            logger.warning("a benchmark is named %r like the summary; reporting it as '%s [%s]'", name, name, family)
            name = f"{name} [{family}]"
        result.name = name
        named[name] = result
    return named


def predictions_from_outputs(benchmarks: Iterable) -> Iterable[Prediction | MalformedLine]:
    """Rows of reference-format outputs (:class:`~onethinker_verl.evaluate.reference.outputs.BenchmarkOutput`) as
    strict-protocol predictions; ``line`` is the row's 1-based position in its benchmark."""
    for benchmark in benchmarks:
        for position, row in enumerate(benchmark.results, start=1):
            problem_type, output = row.get("problem_type"), row.get("output")
            if not isinstance(problem_type, str) or not problem_type.strip():
                yield MalformedLine(position, f"{benchmark.name}: 'problem_type' must be a non-empty string")
                continue
            truth = row.get("solution", "")
            gt_masks = pred_masks = None
            if problem_type.strip().lower() == "segmentation":
                gt_masks, pred_masks = _strict_masks(row)
            yield Prediction(
                line=position,
                benchmark=benchmark.name,
                problem_type=problem_type,
                data_type=row.get("data_type") if isinstance(row.get("data_type"), str) else None,
                response=output if isinstance(output, str) else "",
                ground_truth=truth if isinstance(truth, str) else json.dumps(truth),
                pred_masks=pred_masks,
                gt_masks=gt_masks,
            )


def _strict_masks(row: dict) -> tuple[object, object]:
    """(gt_masks, pred_masks) of a reference segmentation row in the strict protocol's layout: one RLE
    each for images; frame key -> RLE for video, the predicted frame indices mapped to the keys."""
    output = row.get("segmentation_output") or {}
    truth = output.get("segmentation_rle") if isinstance(output, dict) else None
    predicted = row.get("pred_masks")
    if str(row.get("data_type", "")).strip().lower() != "video":
        return truth, predicted
    frames = (output.get("frames") or []) if isinstance(output, dict) else []
    truth = {str(key): (truth or {}).get(key) for key in frames} or None
    if isinstance(predicted, dict):
        predicted = {str(key): predicted.get(str(index)) for index, key in enumerate(frames)}
    return truth, predicted
