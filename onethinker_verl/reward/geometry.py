"""Numeric-list checks and overlap measures shared by the reward and the evaluation code.

Conventions (those of the OneThinker data):
- an interval is ``[start, end]`` in seconds (or frame indices; any unit, the same for both arguments);
- a box is ``[x1, y1, x2, y2]``, top-left then bottom-right corner, in pixels or in the 0-1000 normalised
  coordinates of Qwen3-VL (IoU is unit-free);
- a point is ``[x, y]`` in the same units as the boxes;
- frame-keyed boxes are a dict ``{frame_key: box}`` as parsed from JSON (keys are strings).

"Numeric" means every element converts with ``float()`` -- so numeric strings, booleans, NaN and
infinity count, exactly as in the reference -- unless ``reject_nonfinite`` asks for finite values only.
Argument order matters for bit-exact reproduction with NaN inputs (Python's ``max``/``min`` keep their
first argument when a comparison with NaN is false): the prediction always comes first.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from typing import Any

_UNION_EPSILON = 1e-12
_POINT_PAIRINGS = tuple(itertools.permutations(range(3)))


def is_numeric_list(value: Any, length: int, reject_nonfinite: bool = False) -> bool:
    """Whether ``value`` is a ``list`` of exactly ``length`` elements that all convert with ``float()``.

    With ``reject_nonfinite`` the converted values must also be finite (no NaN, no infinity).
    """
    if not isinstance(value, list) or len(value) != length:
        return False
    try:
        if reject_nonfinite:
            return all(math.isfinite(float(element)) for element in value)
        for element in value:
            float(element)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def all_numeric_lists(values: Iterable, length: int, reject_nonfinite: bool = False) -> bool:
    """Whether every item of ``values`` passes :func:`is_numeric_list` (True when there are none).

    One loop rather than a call per item: a tracking answer may hold hundreds of thousands of boxes.
    """
    try:
        for value in values:
            if not isinstance(value, list) or len(value) != length:
                return False
            for element in value:
                if reject_nonfinite:
                    if not math.isfinite(float(element)):
                        return False
                else:
                    float(element)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def interval_iou(pred: Any, gt: Any, reject_nonfinite: bool = False) -> float:
    """1-D IoU of two ``[start, end]`` intervals; 0 unless both are numeric lists of length 2.

    ``inter = max(0, min(e1, e2) - max(s1, s2))``, ``union = max(e1, e2) - min(s1, s2)``; the IoU is
    ``inter / union`` when ``union > 1e-12``, else 0. Reversed intervals are not reordered (reference).
    """
    if not (is_numeric_list(pred, 2, reject_nonfinite) and is_numeric_list(gt, 2, reject_nonfinite)):
        return 0.0
    s1, e1 = float(pred[0]), float(pred[1])
    s2, e2 = float(gt[0]), float(gt[1])
    inter = max(0.0, min(e1, e2) - max(s1, s2))
    union = max(e1, e2) - min(s1, s2)
    return inter / union if union > _UNION_EPSILON else 0.0


def box_iou(pred: Any, gt: Any, reject_nonfinite: bool = False) -> float:
    """IoU of two ``[x1, y1, x2, y2]`` boxes; 0 unless both are numeric lists of length 4.

    Areas are ``max(0, x2 - x1) * max(0, y2 - y1)`` (degenerate or reversed boxes have area 0); the IoU is
    ``inter / (area_pred + area_gt - inter)`` when that union exceeds 1e-12, else 0.
    """
    if not (is_numeric_list(pred, 4, reject_nonfinite) and is_numeric_list(gt, 4, reject_nonfinite)):
        return 0.0
    x1, y1, x2, y2 = (float(v) for v in pred)
    gx1, gy1, gx2, gy2 = (float(v) for v in gt)
    inter_w = max(0.0, min(x2, gx2) - max(x1, gx1))
    inter_h = max(0.0, min(y2, gy2) - max(y1, gy1))
    inter = inter_w * inter_h
    area_pred = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    area_gt = max(0.0, gx2 - gx1) * max(0.0, gy2 - gy1)
    union = area_pred + area_gt - inter
    return inter / union if union > _UNION_EPSILON else 0.0


def mean_iou_over_gt_frames(pred_boxes: Mapping, gt_boxes: Mapping, reject_nonfinite: bool = False) -> float:
    """Tracking mIoU: mean over every ground-truth frame key of the box IoU with the predicted box of the
    same key (a frame missing from the prediction scores 0). An empty ground truth gives 0.

    Cost is linear in the number of ground-truth frames, whatever the size of the prediction.
    """
    if not gt_boxes:
        return 0.0
    total = 0.0
    for key, gt_box in gt_boxes.items():
        total += box_iou(pred_boxes.get(key, []), gt_box, reject_nonfinite)
    return total / len(gt_boxes)


def mean_iou_over_common_frames(
    pred_boxes: Mapping, gt_boxes: Mapping, charge_extra_frames: bool = False, reject_nonfinite: bool = False
) -> float:
    """Spatial-temporal mIoU: mean box IoU over the frame keys present in both dicts (0 if none).

    Frames only in the prediction or only in the ground truth are ignored, as in the reference -- which
    lets a policy pad its answer with frames at no cost. With ``charge_extra_frames`` the mean is taken
    over the union of keys instead, every frame present on one side only scoring 0.
    """
    common = [key for key in pred_boxes if key in gt_boxes]
    if not common:
        return 0.0
    total = 0.0
    for key in common:
        total += box_iou(pred_boxes[key], gt_boxes[key], reject_nonfinite)
    count = len(pred_boxes) + len(gt_boxes) - len(common) if charge_extra_frames else len(common)
    return total / count


def point_triple_similarity(pred_points: list, gt_points: list, sigma: float) -> float:
    """Similarity in [0, 1] of two triples of ``[x, y]`` points (the caller checks the shapes).

    ``d`` = (minimum over the 6 pairings of the summed Euclidean distances) / 3; similarity =
    ``exp(-d**2 / (2 * sigma**2))``. A pairing in which some distance overflows to infinity is skipped,
    as in the reference; if all are, the similarity is 0. ``sigma`` is in the points' units (50 suits
    the 0-1000 scale).
    """
    best_sum = math.inf
    for pairing in _POINT_PAIRINGS:
        summed = 0.0
        for gt_index, pred_index in enumerate(pairing):
            pred_point, gt_point = pred_points[pred_index], gt_points[gt_index]
            distance = math.hypot(float(pred_point[0]) - float(gt_point[0]), float(pred_point[1]) - float(gt_point[1]))
            if math.isinf(distance):
                break
            summed += distance
        else:
            best_sum = min(best_sum, summed)
    if math.isinf(best_sum):
        return 0.0
    mean_distance = best_sum / 3.0
    similarity = math.exp(-(mean_distance**2) / (2 * sigma**2))
    return max(0.0, min(1.0, similarity))
