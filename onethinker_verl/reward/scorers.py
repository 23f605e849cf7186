"""Built-in accuracy and structure scorers of every OneThinker problem type (spec: rewards.md).

Each accuracy scorer gets the extracted answer (the whole stripped response when there is no answer
tag), the unwrapped ground truth, the lower-cased data type and the :class:`RewardConfig`, and returns
a value in [0, 1]. Each structure scorer gets the extracted answer ("" when absent) and returns the
answer-shape bonus in [0, 0.5]. An exception is not caught here: :func:`score_response` turns it into
all-zero parts, as the reference does.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np

from onethinker_verl.reward import text_metrics
from onethinker_verl.reward.config import RewardConfig
from onethinker_verl.reward.geometry import (
    all_numeric_lists,
    box_iou,
    interval_iou,
    is_numeric_list,
    mean_iou_over_common_frames,
    mean_iou_over_gt_frames,
    point_triple_similarity,
)
from onethinker_verl.reward.math_grading import math_correct, multiple_choice_correct
from onethinker_verl.reward.parsing import load_json, parse_number
from onethinker_verl.reward.registry import FULL_STRUCTURE_BONUS, register_scorer

# Regression: the reference computes in torch float32 with thresholds torch.arange(0.5, 0.975, 0.05), whose
# elements torch computes as ``start + i * step`` in double before rounding to float32 (numpy's float32
# arange accumulates differently, and a relative error of exactly 0.25 then lands on the other side).
# Stored as ``1 - threshold`` in float32; the tests compare with torch.
_REGRESSION_TOLERANCES = np.float32(1) - np.array([0.5 + i * 0.05 for i in range(10)], dtype=np.float32)
_REGRESSION_EPSILON = np.float32(1e-8)
_POINTS_PER_SET = 3

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------- plain answers
@register_scorer("multiple choice")
def multiple_choice_accuracy(answer: str, ground_truth: str, data_type: str, config: RewardConfig) -> float:
    """1 if mathruler's ``grade_answer`` accepts the answer, else 0."""
    return 1.0 if multiple_choice_correct(answer, ground_truth, config.slow_path_timeout_s) else 0.0


@register_scorer("numerical")
def numerical_accuracy(answer: str, ground_truth: str, data_type: str, config: RewardConfig) -> float:
    """1 if both parse as numbers (commas removed) and agree after rounding to 2 decimals."""
    predicted, expected = parse_number(answer), parse_number(ground_truth)
    if predicted is None or expected is None:
        return 0.0
    return 1.0 if round(expected, 2) == round(predicted, 2) else 0.0


@register_scorer("regression")
def regression_accuracy(answer: str, ground_truth: str, data_type: str, config: RewardConfig) -> float:
    """Mean relative accuracy: fraction of theta in {0.50, ..., 0.95} with relative error < 1 - theta.

    Computed in float32, like the reference, so threshold ties resolve identically.
    """
    predicted, expected = parse_number(answer), parse_number(ground_truth)
    if predicted is None or expected is None:
        return 0.0
    with np.errstate(all="ignore"):  # float32 overflow to inf is part of the reference behaviour
        predicted32, expected32 = np.float32(predicted), np.float32(expected)
        relative_error = np.abs(predicted32 - expected32) / (np.abs(expected32) + _REGRESSION_EPSILON)
        passed = np.count_nonzero(relative_error < _REGRESSION_TOLERANCES)
        return float(np.float32(passed) / np.float32(_REGRESSION_TOLERANCES.size))


def _bounded_text_metric(metric, answer: str, ground_truth: str, config: RewardConfig) -> float:
    """``metric(ground_truth, answer, deadline)``; 0 if it runs past ``slow_path_timeout_s`` (huge texts)."""
    try:
        return metric(ground_truth, answer, time.monotonic() + config.slow_path_timeout_s)
    except TimeoutError:
        logger.warning("reward: text metric %s exceeded %.1f s; accuracy 0", metric.__name__, config.slow_path_timeout_s)
        return 0.0


@register_scorer("ocr")
def ocr_accuracy(answer: str, ground_truth: str, data_type: str, config: RewardConfig) -> float:
    """``1 - WER`` clipped to [0, 1] (word-level edit distance over the ground-truth word count)."""
    return _bounded_text_metric(text_metrics.ocr_accuracy, answer, ground_truth, config)


@register_scorer("open-ended")
def open_ended_accuracy(answer: str, ground_truth: str, data_type: str, config: RewardConfig) -> float:
    """Mean ROUGE-1/2/L F-measure with Porter stemming, clipped to [0, 1]."""
    return _bounded_text_metric(text_metrics.rouge_accuracy, answer, ground_truth, config)


@register_scorer("math")
def math_accuracy(answer: str, ground_truth: str, data_type: str, config: RewardConfig) -> float:
    """1 if math_verify finds the answer equivalent to the ground truth (mathruler if it raises)."""
    return 1.0 if math_correct(answer, ground_truth, config.slow_path_timeout_s) else 0.0


# ------------------------------------------------------------------------------------------ JSON answers
def _json_dicts(answer: str, ground_truth: str) -> tuple[dict, dict] | None:
    predicted, expected = load_json(answer), load_json(ground_truth)
    if isinstance(predicted, dict) and isinstance(expected, dict):
        return predicted, expected
    return None


def _is_json_number(value, reject_nonfinite: bool) -> bool:
    """A JSON number (``bool`` included, as in the reference), finite if ``reject_nonfinite``."""
    if not isinstance(value, (int, float)):
        return False
    if not reject_nonfinite:
        return True
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float range
        return False


def temporal_structure(answer: str, ground_truth: str, data_type: str, config: RewardConfig) -> float:
    """0.5 if the answer is ``{"time": [start, end], ...}`` with numeric bounds."""
    predicted = load_json(answer)
    valid = isinstance(predicted, dict) and is_numeric_list(predicted.get("time"), 2, config.reject_nonfinite)
    return FULL_STRUCTURE_BONUS if valid else 0.0


@register_scorer("temporal grounding", structure=temporal_structure)
def temporal_grounding_accuracy(answer: str, ground_truth: str, data_type: str, config: RewardConfig) -> float:
    """1-D IoU of the ``time`` intervals."""
    pair = _json_dicts(answer, ground_truth)
    if pair is None:
        return 0.0
    predicted, expected = pair
    return interval_iou(predicted.get("time"), expected.get("time"), config.reject_nonfinite)


def spatial_structure(answer: str, ground_truth: str, data_type: str, config: RewardConfig) -> float:
    """0.5 if the answer is ``{"boxes": [x1, y1, x2, y2], ...}`` with numeric coordinates."""
    predicted = load_json(answer)
    valid = isinstance(predicted, dict) and is_numeric_list(predicted.get("boxes"), 4, config.reject_nonfinite)
    return FULL_STRUCTURE_BONUS if valid else 0.0


@register_scorer("spatial grounding", structure=spatial_structure)
def spatial_grounding_accuracy(answer: str, ground_truth: str, data_type: str, config: RewardConfig) -> float:
    """Box IoU of the ``boxes``."""
    pair = _json_dicts(answer, ground_truth)
    if pair is None:
        return 0.0
    predicted, expected = pair
    return box_iou(predicted.get("boxes"), expected.get("boxes"), config.reject_nonfinite)


def _frame_boxes_structure(answer: str, ground_truth: str, config: RewardConfig, needs_time: bool) -> float:
    """0.25 for a valid ``{["time": [s, e],] "boxes": {frame: box}}`` shape, plus 0.25 times the share of
    ground-truth frame keys that the answer also has."""
    predicted, expected = load_json(answer), load_json(ground_truth)
    shape_bonus = 0.0
    if isinstance(predicted, dict):
        predicted_time = predicted.get("time")
        predicted_boxes = predicted.get("boxes")
        time_ok = not needs_time or (isinstance(predicted_time, list) and len(predicted_time) == 2)
        if (
            time_ok
            and isinstance(predicted_boxes, dict)
            and all_numeric_lists(predicted_boxes.values(), 4, config.reject_nonfinite)
        ):
            shape_bonus = 0.25
    coverage_bonus = 0.0
    if isinstance(predicted, dict) and isinstance(expected, dict):
        predicted_boxes, expected_boxes = predicted.get("boxes", {}), expected.get("boxes", {})
        if isinstance(predicted_boxes, dict) and isinstance(expected_boxes, dict) and expected_boxes:
            shared = len(predicted_boxes.keys() & expected_boxes.keys())
            coverage_bonus = 0.25 * max(0.0, min(1.0, shared / float(len(expected_boxes))))
    return shape_bonus + coverage_bonus


def spatial_temporal_structure(answer: str, ground_truth: str, data_type: str, config: RewardConfig) -> float:
    """Shape ``{"time": [s, e], "boxes": {frame: box}}`` (0.25) plus frame-key coverage (up to 0.25)."""
    return _frame_boxes_structure(answer, ground_truth, config, needs_time=True)


def tracking_structure(answer: str, ground_truth: str, data_type: str, config: RewardConfig) -> float:
    """Shape ``{"boxes": {frame: box}}`` (0.25) plus frame-key coverage (up to 0.25)."""
    return _frame_boxes_structure(answer, ground_truth, config, needs_time=False)


@register_scorer("spatial-temporal grounding", structure=spatial_temporal_structure)
def spatial_temporal_accuracy(answer: str, ground_truth: str, data_type: str, config: RewardConfig) -> float:
    """``0.5 * tIoU(time) + 0.5 * mIoU`` over the frames both ``boxes`` dicts have (or, with
    ``strict_st_miou``, over all frames of either)."""
    pair = _json_dicts(answer, ground_truth)
    if pair is None:
        return 0.0
    predicted, expected = pair
    temporal = interval_iou(predicted.get("time"), expected.get("time"), config.reject_nonfinite)
    predicted_boxes, expected_boxes = predicted.get("boxes"), expected.get("boxes")
    if isinstance(predicted_boxes, dict) and isinstance(expected_boxes, dict):
        spatial = mean_iou_over_common_frames(
            predicted_boxes, expected_boxes, charge_extra_frames=config.strict_st_miou, reject_nonfinite=config.reject_nonfinite
        )
    else:
        spatial = 0.0
    return 0.5 * temporal + 0.5 * spatial


@register_scorer("tracking", structure=tracking_structure)
def tracking_accuracy(answer: str, ground_truth: str, data_type: str, config: RewardConfig) -> float:
    """Mean box IoU over the ground-truth frames (a frame missing from the answer scores 0)."""
    pair = _json_dicts(answer, ground_truth)
    if pair is None:
        return 0.0
    predicted, expected = pair
    predicted_boxes, expected_boxes = predicted.get("boxes"), expected.get("boxes")
    if not (isinstance(predicted_boxes, dict) and isinstance(expected_boxes, dict)):
        return 0.0
    return mean_iou_over_gt_frames(predicted_boxes, expected_boxes, config.reject_nonfinite)


def _is_point_triple(points, reject_nonfinite: bool) -> bool:
    return (
        isinstance(points, list)
        and len(points) == _POINTS_PER_SET
        and all_numeric_lists(points, 2, reject_nonfinite)
    )


def segmentation_structure(answer: str, ground_truth: str, data_type: str, config: RewardConfig) -> float:
    """0.5 for ``{"boxes": box, "positive_points": 3 points, "negative_points": 3 points}``, video answers
    also needing a numeric ``time``; 0 for any other data type."""
    if data_type not in ("image", "video"):
        return 0.0
    predicted = load_json(answer)
    reject = config.reject_nonfinite
    valid = (
        isinstance(predicted, dict)
        and (data_type == "image" or _is_json_number(predicted.get("time"), reject))
        and is_numeric_list(predicted.get("boxes"), 4, reject)
        and _is_point_triple(predicted.get("positive_points"), reject)
        and _is_point_triple(predicted.get("negative_points"), reject)
    )
    return FULL_STRUCTURE_BONUS if valid else 0.0


@register_scorer("segmentation", structure=segmentation_structure)
def segmentation_accuracy(answer: str, ground_truth: str, data_type: str, config: RewardConfig) -> float:
    """Image: ``0.5 IoU + 0.25 pos + 0.25 neg``; video: ``0.3 IoU + 0.3 exp(-|dt| / 2) + 0.2 pos + 0.2 neg``.

    ``pos``/``neg`` are point-triple similarities (sigma = ``point_sigma``); malformed point triples on
    either side, or a non-numeric video ``time``, give 0. Steps follow the reference's order, so that an
    overflow raises in the same cases.
    """
    pair = _json_dicts(answer, ground_truth)
    if pair is None:
        return 0.0
    predicted, expected = pair
    reject = config.reject_nonfinite
    iou = box_iou(predicted.get("boxes"), expected.get("boxes"), reject)
    point_keys = ("positive_points", "negative_points")
    if not all(
        _is_point_triple(predicted.get(key), reject) and _is_point_triple(expected.get(key), reject) for key in point_keys
    ):
        return 0.0
    positive, negative = (
        point_triple_similarity(predicted[key], expected[key], config.point_sigma) for key in point_keys
    )
    if data_type == "image":
        return 0.5 * iou + 0.25 * positive + 0.25 * negative
    if data_type == "video":
        predicted_time, expected_time = predicted.get("time"), expected.get("time")
        if not (_is_json_number(predicted_time, reject) and _is_json_number(expected_time, reject)):
            return 0.0
        time_similarity = math.exp(-abs(float(predicted_time) - float(expected_time)) / 2.0)
        return 0.3 * iou + 0.3 * time_similarity + 0.2 * positive + 0.2 * negative
    return 0.0
