"""Benchmark scores by the reference protocol (OneThinker's ``Evaluation/Eval/eval_bench.py``).

This is the default scoring of ``python -m onethinker_verl.evaluate score``. It reproduces, per output
row, the reference's ``accuracy`` and ``components`` and, per benchmark file, its ``metrics`` dict with
the reference's own names. What the reference does, and therefore what this module does:

- the prediction is the stripped content of the first ``<answer>...</answer>`` of the raw output, or
  the whole stripped output when there is none -- *no* tag normalisation (the training reward has one);
- the ground truth is the row's ``solution`` read the same way;
- multiple choice: 1 when the first *character* of the stripped prediction, upper-cased, equals that of
  the ground truth and is a letter A-Z (so ``"(B)"`` scores 0); an empty prediction against an empty
  ground truth scores 1, as ``"" in "ABC..."`` is true in Python;
- numerical: both ``float()`` after removing commas, equal after ``round(x, 2)``;
- regression: mean relative accuracy in float64, thresholds ``0.5 + 0.05 k`` (k = 0..9), relative
  error ``|p - t| / |t|`` compared with ``1 - θ`` strictly; a target with ``|t| < 1e-12`` scores 0;
- OCR: ``1 - WER`` clipped; open-ended: mean ROUGE-1/2/L F (stemmed), clipped; math: math_verify,
  then mathruler, then exact string equality;
- temporal grounding: tIoU of ``time``; components ``{"tiou"}``;
- spatial grounding: box IoU of ``boxes``; components ``{"iou"}``. The published ``iou_2d`` has a typo
  (``inter_x2, inter_y2 = min(x2, X2)``) that raises on every pair of valid boxes; this module uses
  the evident fix ``inter_y2 = min(y2, Y2)`` (:func:`onethinker_verl.reward.geometry.box_iou`);
- spatial-temporal grounding: accuracy ``0.5 tIoU + 0.5 mIoU`` with the mIoU over the frame keys the
  prediction shares with the ground truth; components ``{"tiou", "miou_inter"}``;
- tracking: mean box IoU over every ground-truth frame (missing frames 0); components ``{"miou_gt"}``;
- segmentation: accuracy 0 and no components here; masks are scored by :mod:`onethinker_verl.evaluate.reference.masks`;
- any other problem type: accuracy 0, no components.

Aggregation (:class:`MetricAccumulator`) keys everything by the row's stripped ``problem_type`` as
written (so ``OCR`` and ``ocr`` are separate): ``overall/acc``, ``<type>/acc``, and for each component
``<type>/<component>/mean`` and ``<type>/<component>/R@0.3|0.5|0.7`` (fraction of rows with the
component >= the threshold).

Inputs on which the reference would raise (an ``output`` that is not a string, a ``problem_type`` or
``data_type`` that is not a string, a non-string ``solution`` for the text tasks) are scored 0 with the
task's zero components and counted in ``RowScore.crashed``; the reference run would have stopped there.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from onethinker_verl.reward import text_metrics
from onethinker_verl.reward.geometry import box_iou, interval_iou, mean_iou_over_common_frames, mean_iou_over_gt_frames
from onethinker_verl.reward.math_grading import math_correct
from onethinker_verl.reward.parsing import extract_answer, load_json, parse_number

RECALL_THRESHOLDS = (0.3, 0.5, 0.7)
OVERALL_ACCURACY = "overall/acc"
# Bound, in seconds, on one symbolic math comparison. The reference relies on math_verify's own timeouts
# (5 s for parsing, 5 s for verifying); a check that needs longer scores 0 there as here.
MATH_TIMEOUT_S = 15.0
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# The components an unreadable answer of each task has in the reference (all zero).
ZERO_COMPONENTS = {
    "temporal grounding": ("tiou",),
    "spatial grounding": ("iou",),
    "spatial-temporal grounding": ("tiou", "miou_inter"),
    "tracking": ("miou_gt",),
}


@dataclass(frozen=True)
class RowScore:
    """One row's reference scores; ``crashed`` names why the reference would have raised on it."""

    accuracy: float
    components: dict[str, float] = field(default_factory=dict)
    crashed: str | None = None


def extract_prediction(output: Any) -> str:
    """The reference's ``extract_answer``: first ``<answer>`` block stripped, else the stripped text; "" for non-text."""
    if not isinstance(output, str):
        return ""
    answer = extract_answer(output)
    return answer if answer is not None else output.strip()


def _float_or_none(text: Any) -> float | None:
    # The reference's normalize_number swallows every failure, non-strings included.
    return parse_number(text) if isinstance(text, str) else None


def mean_relative_accuracy(prediction: float, target: float) -> float:
    """Fraction of θ = 0.5 + 0.05 k (k = 0..9) with ``|p - t| / |t| < 1 - θ``; 0 when ``|t| < 1e-12``."""
    if abs(target) < 1e-12:
        return 0.0
    relative_error = abs(prediction - target) / abs(target)
    # θ is formed exactly as the reference forms it, so threshold ties fall on the same side.
    return sum(relative_error < (1.0 - (0.5 + 0.05 * k)) for k in range(10)) / 10.0


def _json_or_none(text: Any) -> Any:
    # The reference's _json: non-strings and malformed text alike give None. Parses are shared: read only.
    return load_json(text) if isinstance(text, str) else None


def _math_equivalent(gt: Any, prediction: str) -> bool:
    if isinstance(gt, str):
        # math_verify, falling back to mathruler, bounded (memoised worker; see reward.math_grading).
        return math_correct(prediction, gt, MATH_TIMEOUT_S)
    # A non-string ground truth (a number in the file): the reference's math_verify.parse of it yields [],
    # which never verifies, so the row scores 0 (and its fallbacks are never reached).
    return False


def reference_accuracy(output: Any, solution: Any, problem_type: Any) -> tuple[float, dict[str, float]]:
    """The reference's ``accuracy_only``: (accuracy in [0, 1], components). May raise where it does."""
    prediction = extract_prediction(output) or output.strip()
    gt = extract_prediction(solution) or solution or ""
    kind = (problem_type or "").strip().lower()

    if kind == "multiple choice":
        letter = prediction.strip()[:1].upper() if prediction else ""
        gt_letter = gt.strip()[:1].upper() if gt else ""
        return (1.0 if letter == gt_letter and letter in _LETTERS else 0.0), {}
    if kind == "numerical":
        value, target = _float_or_none(prediction), _float_or_none(gt)
        correct = value is not None and target is not None and round(value, 2) == round(target, 2)
        return (1.0 if correct else 0.0), {}
    if kind == "regression":
        value, target = _float_or_none(prediction), _float_or_none(gt)
        if value is None or target is None:
            return 0.0, {}
        return mean_relative_accuracy(value, target), {}
    if kind == "ocr":
        if not isinstance(gt, str):
            gt.split()  # the reference's wer() fails here
        return text_metrics.ocr_accuracy(gt, prediction), {}
    if kind == "open-ended":
        if not isinstance(gt, str):
            gt.lower()  # rouge_score's tokenizer fails here
        return max(0.0, min(1.0, text_metrics.rouge_accuracy(gt, prediction))), {}
    if kind == "math":
        return (1.0 if _math_equivalent(gt, prediction) else 0.0), {}

    answer, truth = _json_or_none(prediction), _json_or_none(gt)
    answer = answer if isinstance(answer, dict) else None
    truth = truth if isinstance(truth, dict) else None
    if kind == "temporal grounding":
        tiou = interval_iou(answer.get("time") if answer else None, truth.get("time") if truth else None)
        return float(tiou), {"tiou": float(tiou)}
    if kind == "spatial grounding":
        iou = box_iou(answer.get("boxes") if answer else None, truth.get("boxes") if truth else None)
        return float(iou), {"iou": float(iou)}
    if kind == "spatial-temporal grounding":
        if answer is None or truth is None:
            return 0.0, {"tiou": 0.0, "miou_inter": 0.0}
        tiou = interval_iou(answer.get("time"), truth.get("time"))
        boxes, gt_boxes = answer.get("boxes"), truth.get("boxes")
        if isinstance(boxes, dict) and isinstance(gt_boxes, dict):
            miou = mean_iou_over_common_frames(boxes, gt_boxes)
        else:
            miou = 0.0
        return float(0.5 * tiou + 0.5 * miou), {"tiou": float(tiou), "miou_inter": float(miou)}
    if kind == "tracking":
        if answer is None or truth is None:
            return 0.0, {"miou_gt": 0.0}
        boxes, gt_boxes = answer.get("boxes"), truth.get("boxes")
        miou = mean_iou_over_gt_frames(
            boxes if isinstance(boxes, dict) else {}, gt_boxes if isinstance(gt_boxes, dict) else {}
        )
        return float(miou), {"miou_gt": float(miou)}
    return 0.0, {}  # segmentation (masks are scored separately) and unknown problem types


def problem_type_key(problem_type: Any) -> str:
    """The reference's per-type metric prefix: the problem type stripped, case kept ("" when absent)."""
    if isinstance(problem_type, str):
        return problem_type.strip()
    return "" if not problem_type else str(problem_type).strip()


def score_row(row: dict) -> RowScore:
    """Reference accuracy and components of one output row (``output``, ``solution``, ``problem_type``,
    ``data_type``). Where the reference would raise, the row scores 0 with its task's zero components."""
    output = row.get("output")
    problem_type = row.get("problem_type", "")
    try:
        if not isinstance(problem_type, str):
            # eval_bench.py's main loop calls problem_type.strip() on every row before scoring it.
            raise AttributeError(f"problem_type is {type(problem_type).__name__}, not a string")
        data_type = row.get("data_type")
        if data_type and not isinstance(data_type, str):
            raise AttributeError(f"data_type is {type(data_type).__name__}, not a string")
        accuracy, components = reference_accuracy(output, row.get("solution", ""), problem_type)
    except Exception as exc:  # noqa: BLE001 -- every failure of the reference's code path is counted, not raised
        kind = problem_type_key(problem_type).lower()
        zeros = {name: 0.0 for name in ZERO_COMPONENTS.get(kind, ())}
        return RowScore(0.0, zeros, crashed=f"{type(exc).__name__}: {exc}")
    return RowScore(float(accuracy), {name: float(value) for name, value in components.items()})


@dataclass
class MetricAccumulator:
    """Running sums of the reference's ``metrics`` dict; add rows with :meth:`add`, read :meth:`metrics`."""

    accuracy_sum: float = 0.0
    count: int = 0
    type_sums: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    type_counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    component_sums: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))
    component_counts: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    component_hits: dict[str, dict[str, dict[float, int]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    )

    def add(self, problem_type: Any, accuracy: float, components: dict[str, float]) -> None:
        key = problem_type_key(problem_type)
        self.accuracy_sum += float(accuracy)
        self.count += 1
        self.type_sums[key] += float(accuracy)
        self.type_counts[key] += 1
        for name, value in components.items():
            value = float(value)
            self.component_sums[key][name] += value
            self.component_counts[key][name] += 1
            for threshold in RECALL_THRESHOLDS:
                if value >= threshold:
                    self.component_hits[key][name][threshold] += 1

    def metrics(self) -> dict[str, float]:
        """``overall/acc``, ``<type>/acc``, ``<type>/<component>/mean`` and ``.../R@<t>``, as the reference names them."""
        result = {OVERALL_ACCURACY: self.accuracy_sum / max(1, self.count)}
        for key, count in self.type_counts.items():
            result[f"{key}/acc"] = self.type_sums[key] / max(1, count)
        for key, sums in self.component_sums.items():
            for name, total in sums.items():
                count = self.component_counts[key][name]
                result[f"{key}/{name}/mean"] = total / count
                for threshold in RECALL_THRESHOLDS:
                    result[f"{key}/{name}/R@{threshold}"] = self.component_hits[key][name][threshold] / count
        return result
