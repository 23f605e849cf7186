"""Benchmark-level metrics from per-item scores, and the recall curves the report plots.

Every metric is a fraction in [0, 1] (the Markdown report shows percentages). Averaging:
items (questions, sequences, referred objects) count equally within a benchmark; tracking and
video segmentation first average over the frames of a sequence, then over sequences.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from onethinker_verl.evaluate.strict.metrics import (
    IMAGE_SEGMENTATION,
    QUESTION_ANSWERING,
    SPATIAL_GROUNDING,
    SPATIO_TEMPORAL_GROUNDING,
    TEMPORAL_GROUNDING,
    TRACKING,
    VIDEO_SEGMENTATION,
    ItemScore,
)

RECALL_THRESHOLDS = (0.3, 0.5, 0.7)
SUCCESS_THRESHOLDS = (0.5, 0.75)
# IoU thresholds of the plotted recall / success curves.
CURVE_THRESHOLDS = np.linspace(0.0, 1.0, 21)

# Families in report order, each with its metric names in table order.
METRIC_NAMES: dict[str, tuple[str, ...]] = {
    QUESTION_ANSWERING: ("accuracy",),
    TEMPORAL_GROUNDING: ("miou", *(f"r@{t}" for t in RECALL_THRESHOLDS)),
    SPATIAL_GROUNDING: ("acc@0.5", "miou"),
    SPATIO_TEMPORAL_GROUNDING: (
        "tiou",
        "miou",
        *(f"tiou_r@{t}" for t in RECALL_THRESHOLDS),
        *(f"miou_r@{t}" for t in RECALL_THRESHOLDS),
    ),
    TRACKING: ("ao", *(f"sr@{t}" for t in SUCCESS_THRESHOLDS)),
    IMAGE_SEGMENTATION: ("giou", "ciou"),
    VIDEO_SEGMENTATION: ("j", "f", "j&f"),
}

# The one number per family that the overall summary averages across benchmarks.
HEADLINE_METRIC = {
    QUESTION_ANSWERING: "accuracy",
    TEMPORAL_GROUNDING: "miou",
    SPATIAL_GROUNDING: "acc@0.5",
    SPATIO_TEMPORAL_GROUNDING: "miou",
    TRACKING: "ao",
    IMAGE_SEGMENTATION: "giou",
    VIDEO_SEGMENTATION: "j&f",
}


def _column(items: Sequence[ItemScore], name: str) -> np.ndarray:
    return np.array([item.values[name] for item in items], dtype=np.float64)


def _recall(values: np.ndarray, threshold: float) -> float:
    """Fraction of values >= threshold."""
    return float(np.mean(values >= threshold))


def _per_sequence_success(items: Sequence[ItemScore], threshold: float) -> float:
    """Success rate of each sequence (fraction of its frames with IoU >= threshold), averaged over sequences."""
    return float(np.mean([np.mean(np.asarray(item.frame_ious) >= threshold) for item in items]))


def benchmark_metrics(family: str, items: Sequence[ItemScore]) -> dict[str, float]:
    """The metrics of :data:`METRIC_NAMES` ``[family]`` over a non-empty list of item scores."""
    if family == QUESTION_ANSWERING:
        return {"accuracy": float(_column(items, "accuracy").mean())}
    if family == TEMPORAL_GROUNDING:
        tious = _column(items, "tiou")
        return {"miou": float(tious.mean()), **{f"r@{t}": _recall(tious, t) for t in RECALL_THRESHOLDS}}
    if family == SPATIAL_GROUNDING:
        ious = _column(items, "iou")
        return {"acc@0.5": _recall(ious, 0.5), "miou": float(ious.mean())}
    if family == SPATIO_TEMPORAL_GROUNDING:
        tious = _column(items, "tiou")
        box_ious = _column(items, "box_iou")
        return {
            "tiou": float(tious.mean()),
            "miou": float(box_ious.mean()),
            **{f"tiou_r@{t}": _recall(tious, t) for t in RECALL_THRESHOLDS},
            **{f"miou_r@{t}": _recall(box_ious, t) for t in RECALL_THRESHOLDS},
        }
    if family == TRACKING:
        average_overlap = float(np.mean([np.mean(item.frame_ious) for item in items]))
        return {"ao": average_overlap, **{f"sr@{t}": _per_sequence_success(items, t) for t in SUCCESS_THRESHOLDS}}
    if family == IMAGE_SEGMENTATION:
        total_union = _column(items, "union").sum()
        # Nothing to segment anywhere counts as perfect, like an empty-vs-empty mask.
        ciou = float(_column(items, "intersection").sum() / total_union) if total_union > 0 else 1.0
        return {"giou": float(_column(items, "iou").mean()), "ciou": ciou}
    if family == VIDEO_SEGMENTATION:
        j = float(_column(items, "j").mean())
        f = float(_column(items, "f").mean())
        return {"j": j, "f": f, "j&f": (j + f) / 2}
    raise ValueError(f"unknown task family {family!r}")


def recall_curves(family: str, items: Sequence[ItemScore]) -> dict[str, np.ndarray]:
    """Recall (success rate for tracking) at each of :data:`CURVE_THRESHOLDS`, per overlap kind.

    Keys name the overlap ("tIoU", "IoU", "box IoU"); empty for families without such a curve.
    """
    if family == TEMPORAL_GROUNDING:
        return {"tIoU": _curve(_column(items, "tiou"))}
    if family == SPATIAL_GROUNDING:
        return {"IoU": _curve(_column(items, "iou"))}
    if family == SPATIO_TEMPORAL_GROUNDING:
        return {"tIoU": _curve(_column(items, "tiou")), "box IoU": _curve(_column(items, "box_iou"))}
    if family == TRACKING:
        return {"IoU": np.array([_per_sequence_success(items, t) for t in CURVE_THRESHOLDS])}
    return {}


def _curve(values: np.ndarray) -> np.ndarray:
    return np.array([_recall(values, t) for t in CURVE_THRESHOLDS])
