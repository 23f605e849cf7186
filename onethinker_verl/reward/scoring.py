"""The per-item OneThinker reward and its verl entry point ``compute_score``."""

from __future__ import annotations

import logging
import math
from typing import Any

from onethinker_verl.reward import scorers as _builtin_scorers  # noqa: F401  (registers the built-in tasks)
from onethinker_verl.reward.config import RewardConfig, reward_config_from_kwargs
from onethinker_verl.reward.parsing import extract_answer, has_valid_format, normalise_tags, unwrap_ground_truth
from onethinker_verl.reward.registry import FULL_STRUCTURE_BONUS, get_scorer

logger = logging.getLogger(__name__)

ZERO_SCORE = {"score": 0.0, "format": 0.0, "accuracy": 0.0, "structure": 0.0}


def _clamp(value: float, upper: float) -> float:
    """``value`` clipped to [0, upper]; NaN (possible in the reference, e.g. a NaN segmentation time) -> 0."""
    value = float(value)
    if math.isnan(value):
        return 0.0
    return min(max(value, 0.0), upper)


def overall_score(accuracy: float, format_score: float, structure: float, format_weight: float) -> float:
    """``(1 - w) * accuracy + w * format + structure``; ``structure`` is already 0 when ``format`` is 0."""
    return (1.0 - format_weight) * accuracy + format_weight * format_score + structure


def score_response(
    response: str, ground_truth: str, problem_type: str, data_type: str, config: RewardConfig
) -> dict[str, float]:
    """Score one response: ``{"score", "format", "accuracy", "structure"}``, all floats.

    ``score = (1 - w) * accuracy + w * format + structure`` with ``w = config.format_weight``; the
    structure bonus is 0 when the format is 0. Unknown problem types get accuracy 0 (and, like every
    unstructured task, the 0.5 structure bonus). Any exception gives all parts 0.
    """
    try:
        response = normalise_tags(response)
        ground_truth = unwrap_ground_truth(ground_truth)
        data_type = data_type.lower()
        format_score = 1.0 if has_valid_format(response) else 0.0
        extracted = extract_answer(response)
        scorer = get_scorer(problem_type)
        if scorer is None:
            accuracy, structure = 0.0, FULL_STRUCTURE_BONUS
        else:
            structure = scorer.structure(extracted or "", ground_truth, data_type, config)
            accuracy = scorer.accuracy(extracted or response.strip(), ground_truth, data_type, config)
        accuracy = _clamp(accuracy, 1.0)
        structure = _clamp(structure, FULL_STRUCTURE_BONUS) if format_score else 0.0
        overall = overall_score(accuracy, format_score, structure, config.format_weight)
        return {"score": float(overall), "format": format_score, "accuracy": accuracy, "structure": structure}
    except Exception:  # one bad item must never fail the batch (reference behaviour: all parts 0)
        logger.debug("reward: item scored 0 after an exception (problem type %r)", problem_type, exc_info=True)
        return dict(ZERO_SCORE)


def _text(value: Any) -> str:
    """Inputs arrive from parquet/numpy: None -> "", other non-strings -> ``str(value)``."""
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def compute_score(
    data_source: str | None = None,
    solution_str: str | None = None,
    ground_truth: str | None = None,
    extra_info: dict | None = None,
    *,
    problem_type: str | None = None,
    data_type: str | None = None,
    reward_router_address: str | None = None,
    reward_model_tokenizer=None,
    **knobs,
) -> dict[str, float]:
    """verl ``reward.custom_reward_function`` entry point for the OneThinker multi-task reward.

    Args:
        data_source: dataset name (unused by the score; verl groups metrics by it).
        solution_str: the decoded response.
        ground_truth: the reference answer, optionally wrapped in ``<answer>...</answer>``.
        extra_info: row extra info carrying ``problem_type`` and ``data_type`` (keyword arguments of the
            same names take precedence).
        reward_router_address, reward_model_tokenizer: passed by verl's reward managers when a reward model
            is configured; unused (model-based scoring lives in the ``onethinker`` reward manager).
        **knobs: :class:`RewardConfig` fields (verl's ``reward_kwargs``); unknown names raise TypeError.

    Returns:
        ``{"score": overall in [0, 1.5], "format": 0 or 1, "accuracy": [0, 1], "structure": [0, 0.5]}``.

    Thread-safe; never raises on malformed responses; symbolic math and oversized text metrics are
    bounded by ``slow_path_timeout_s`` through a worker process.
    """
    config = reward_config_from_kwargs(**knobs)
    info = extra_info if isinstance(extra_info, dict) else {}
    if problem_type is None:
        problem_type = info.get("problem_type")
    if data_type is None:
        data_type = info.get("data_type")
    return score_response(_text(solution_str), _text(ground_truth), _text(problem_type), _text(data_type), config)
