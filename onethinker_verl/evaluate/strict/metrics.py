"""Per-item benchmark scores for the ten OneThinker tasks.

:func:`score_item` turns one prediction (raw model output, ground truth, masks) into an
:class:`ItemScore`; :mod:`onethinker_verl.evaluate.strict.aggregate` averages those per benchmark.
Answers are extracted exactly as the training reward does (rewards.md); what differs from the
reward is the scoring (benchmark definitions, data-and-recipe.md "Evaluation").

Units: times in seconds, boxes ``[x1, y1, x2, y2]`` in whatever units the data uses (IoU does
not care), masks as COCO RLE in pixels.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import math_verify
import numpy as np
from mathruler.grader import grade_answer
from rouge_score import rouge_scorer

from onethinker_verl.data.tasks import canonical_problem_type
from onethinker_verl.evaluate import masks as mask_ops
from onethinker_verl.reward.geometry import box_iou, interval_iou, is_numeric_list
from onethinker_verl.reward.parsing import extract_answer as answer_block
from onethinker_verl.reward.parsing import load_json, normalise_tags, parse_number, unwrap_ground_truth

# Task families: the problem types that share one set of benchmark metrics.
QUESTION_ANSWERING = "question answering"
TEMPORAL_GROUNDING = "temporal grounding"
SPATIAL_GROUNDING = "spatial grounding"
SPATIO_TEMPORAL_GROUNDING = "spatial-temporal grounding"
TRACKING = "tracking"
IMAGE_SEGMENTATION = "image segmentation"
VIDEO_SEGMENTATION = "video segmentation"

QA_PROBLEM_TYPES = ("multiple choice", "numerical", "regression", "ocr", "open-ended", "math")

# Relative-error tolerances of mean relative accuracy: θ = 0.50, 0.55, ..., 0.95.
MRA_CONFIDENCES = np.linspace(0.5, 0.95, 10)
# math_verify's own (signal-based) limits, in seconds, so one pathological answer cannot stall a run.
MATH_TIMEOUT_S = 5


class InvalidGroundTruth(ValueError):
    """The ground truth (or ground-truth mask) of a line is unusable: a data error, not a model error."""


class UnknownTask(ValueError):
    """The line's problem_type / data_type pair names no benchmark task."""


@dataclass(frozen=True)
class ItemScore:
    """Scores of one prediction.

    ``values`` holds the per-item numbers its family aggregates: ``accuracy`` (QA), ``tiou``
    (temporal), ``iou`` (spatial), ``tiou`` + ``box_iou`` (spatio-temporal), ``iou`` +
    ``intersection`` + ``union`` in pixels (image segmentation), ``j`` + ``f`` (video
    segmentation). Tracking keeps ``frame_ious``, one box IoU per ground-truth frame.
    ``unparsed`` marks an answer (or predicted mask) that could not be read; it scored as wrong.
    """

    family: str
    values: dict[str, float] = field(default_factory=dict)
    frame_ious: tuple[float, ...] = ()
    unparsed: bool = False


# --------------------------- answer reading, shared with the reward --------------------------


def extract_answer(response: str) -> str:
    """The answer the reward scores for accuracy: the first ``<answer>`` block of the tag-normalised
    response, or the whole stripped normalised response when there is none or it is empty."""
    normalized = normalise_tags(response)
    return answer_block(normalized) or normalized.strip()


def parse_json_dict(text: str) -> dict | None:
    """``json.loads(text)`` when that is a JSON object, else None (read-only: it may be memoised)."""
    value = load_json(text)
    return value if isinstance(value, dict) else None


def numeric_list(value: object, length: int) -> list[float] | None:
    """``value`` as floats when it is a list of exactly ``length`` finite numbers, else None.

    Unlike the reward's shape check, NaN and infinity are rejected: they would poison benchmark means.
    """
    if not is_numeric_list(value, length, reject_nonfinite=True):
        return None
    return [float(v) for v in value]



def task_family(problem_type: str, data_type: str | None) -> str:
    """Family of metrics for a problem type (case-insensitive); segmentation splits by data_type."""
    canonical = canonical_problem_type(problem_type)
    if canonical is None:
        raise UnknownTask(f"unknown problem_type {problem_type!r}")
    kind = canonical.lower()
    if kind in QA_PROBLEM_TYPES:
        return QUESTION_ANSWERING
    if kind in (TEMPORAL_GROUNDING, SPATIAL_GROUNDING, SPATIO_TEMPORAL_GROUNDING, TRACKING):
        return kind
    if kind == "segmentation":
        media = (data_type or "").strip().lower()
        if media == "image":
            return IMAGE_SEGMENTATION
        if media == "video":
            return VIDEO_SEGMENTATION
        raise UnknownTask(f"segmentation needs data_type 'image' or 'video', got {data_type!r}")
    raise UnknownTask(f"problem_type {problem_type!r} has no benchmark metric")


def score_item(
    problem_type: str,
    data_type: str | None,
    response: str,
    ground_truth: str,
    pred_masks: object = None,
    gt_masks: object = None,
) -> ItemScore:
    """Score one prediction. Raises :class:`UnknownTask` or :class:`InvalidGroundTruth` for bad data;
    a bad answer never raises, it scores 0 with ``unparsed=True``."""
    family = task_family(problem_type, data_type)
    kind = problem_type.strip().lower()
    if family == IMAGE_SEGMENTATION:
        return _score_image_segmentation(pred_masks, gt_masks)
    if family == VIDEO_SEGMENTATION:
        return _score_video_segmentation(pred_masks, gt_masks)
    answer = extract_answer(response)
    gt = unwrap_ground_truth(ground_truth)
    if family == QUESTION_ANSWERING:
        accuracy, parsed = _QA_SCORERS[kind](answer, gt)
        return ItemScore(family, {"accuracy": accuracy}, unparsed=not parsed)
    return _GROUNDING_SCORERS[family](parse_json_dict(answer), _parse_ground_truth_json(gt))


# ----------------------------------- question answering -------------------------------------
# Each scorer takes (answer, gt) and returns (accuracy in [0, 1], whether the answer was readable).

_FIRST_LETTER = re.compile(r"[A-Za-z]")


def _first_letter(text: str) -> str | None:
    match = _FIRST_LETTER.search(text)
    return match.group(0).upper() if match else None


def multiple_choice_accuracy(answer: str, gt: str) -> tuple[float, bool]:
    """1 when the first letter of the answer equals the ground-truth letter (case-insensitive)."""
    gt_letter = _first_letter(gt)
    if gt_letter is None:
        raise InvalidGroundTruth(f"multiple-choice ground truth has no letter: {gt!r}")
    letter = _first_letter(answer)
    return float(letter == gt_letter), letter is not None


def _ground_truth_float(gt: str) -> float:
    value = parse_number(gt)
    if value is None or not math.isfinite(value):
        raise InvalidGroundTruth(f"ground truth is not a number: {gt!r}")
    return value


def numerical_accuracy(answer: str, gt: str) -> tuple[float, bool]:
    """1 when both numbers (commas removed) are equal after rounding to 2 decimals."""
    target = _ground_truth_float(gt)
    value = parse_number(answer)
    if value is None:
        return 0.0, False
    return float(round(value, 2) == round(target, 2)), True


def mean_relative_accuracy(answer: str, gt: str) -> tuple[float, bool]:
    """Strict MRA: fraction of θ in 0.50..0.95 with |p - g| / |g| < 1 - θ; 0 when g = 0."""
    target = _ground_truth_float(gt)
    value = parse_number(answer)
    if value is None or not math.isfinite(value):
        return 0.0, False
    if target == 0:
        return 0.0, True
    relative_error = abs(value - target) / abs(target)
    return float(np.mean(relative_error < 1 - MRA_CONFIDENCES)), True


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level Levenshtein distance (words split on whitespace) / max(1, reference words)."""
    ref_words = reference.split()
    hyp_words = hypothesis.split()
    previous = list(range(len(hyp_words) + 1))
    for i, ref_word in enumerate(ref_words, start=1):
        current = [i]
        for j, hyp_word in enumerate(hyp_words, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word)))
        previous = current
    return previous[-1] / max(1, len(ref_words))


def ocr_accuracy(answer: str, gt: str) -> tuple[float, bool]:
    """1 − WER(gt, answer), clipped to [0, 1]."""
    return max(0.0, min(1.0, 1.0 - word_error_rate(gt, answer))), bool(answer)


@lru_cache(maxsize=1)
def _rouge() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def rouge_accuracy(answer: str, gt: str) -> tuple[float, bool]:
    """Mean of the ROUGE-1, ROUGE-2 and ROUGE-L F-measures (Porter stemming), reference = gt."""
    scores = _rouge().score(gt, answer)
    mean_f = sum(score.fmeasure for score in scores.values()) / len(scores)
    return max(0.0, min(1.0, mean_f)), bool(answer)


def math_accuracy(answer: str, gt: str) -> tuple[float, bool]:
    """1 when math_verify finds the answer symbolically equal to the gt (mathruler if it raises)."""
    try:
        parsed_answer = math_verify.parse(answer, parsing_timeout=MATH_TIMEOUT_S)
        parsed_gt = math_verify.parse(gt, parsing_timeout=MATH_TIMEOUT_S)
        correct = math_verify.verify(parsed_gt, parsed_answer, timeout_seconds=MATH_TIMEOUT_S)
    except Exception:  # math_verify's timeouts and sympy failures: fall back as the reward does
        return float(grade_answer(answer, gt)), bool(answer)
    return float(correct), bool(parsed_answer)


_QA_SCORERS = {
    "multiple choice": multiple_choice_accuracy,
    "numerical": numerical_accuracy,
    "regression": mean_relative_accuracy,
    "ocr": ocr_accuracy,
    "open-ended": rouge_accuracy,
    "math": math_accuracy,
}


# ------------------------------------------ grounding ----------------------------------------


def _parse_ground_truth_json(gt: str) -> dict:
    parsed = parse_json_dict(gt)
    if parsed is None:
        raise InvalidGroundTruth(f"ground truth is not a JSON object: {gt[:80]!r}")
    return parsed


def _gt_field(gt: dict, key: str, length: int) -> list[float]:
    value = numeric_list(gt.get(key), length)
    if value is None:
        raise InvalidGroundTruth(f"ground-truth {key!r} is not {length} finite numbers")
    return value


def _gt_frame_boxes(gt: dict) -> dict[str, list[float]]:
    boxes = gt.get("boxes")
    if not isinstance(boxes, dict) or not boxes:
        raise InvalidGroundTruth("ground-truth 'boxes' is not a non-empty frame -> box mapping")
    parsed = {key: numeric_list(box, 4) for key, box in boxes.items()}
    if any(box is None for box in parsed.values()):
        raise InvalidGroundTruth("a ground-truth box is not 4 finite numbers")
    return parsed


def _answer_frame_boxes(answer: dict | None) -> dict[str, list[float] | None] | None:
    """Answer boxes keyed by frame; a malformed individual box is None (IoU 0)."""
    if answer is None or not isinstance(answer.get("boxes"), dict):
        return None
    return {key: numeric_list(box, 4) for key, box in answer["boxes"].items()}


def score_temporal_grounding(answer: dict | None, gt: dict) -> ItemScore:
    """tIoU of the ``time`` spans."""
    gt_time = _gt_field(gt, "time", 2)
    time = numeric_list(answer.get("time"), 2) if answer is not None else None
    tiou = interval_iou(time, gt_time) if time is not None else 0.0
    return ItemScore(TEMPORAL_GROUNDING, {"tiou": tiou}, unparsed=time is None)


def score_spatial_grounding(answer: dict | None, gt: dict) -> ItemScore:
    """Box IoU of ``boxes`` (one box)."""
    gt_box = _gt_field(gt, "boxes", 4)
    box = numeric_list(answer.get("boxes"), 4) if answer is not None else None
    iou = box_iou(box, gt_box) if box is not None else 0.0
    return ItemScore(SPATIAL_GROUNDING, {"iou": iou}, unparsed=box is None)


def score_spatio_temporal_grounding(answer: dict | None, gt: dict) -> ItemScore:
    """tIoU of ``time`` and the mean box IoU over the frame keys present in both ``boxes``.

    Frames only in the prediction or only in the ground truth are ignored (as in the reward); no
    common frame gives box IoU 0. Parts that parse are scored even when another part does not.
    """
    gt_time = _gt_field(gt, "time", 2)
    gt_boxes = _gt_frame_boxes(gt)
    time = numeric_list(answer.get("time"), 2) if answer is not None else None
    boxes = _answer_frame_boxes(answer)
    tiou = interval_iou(time, gt_time) if time is not None else 0.0
    common = [key for key in gt_boxes if boxes is not None and key in boxes]
    ious = [box_iou(boxes[key], gt_boxes[key]) if boxes[key] is not None else 0.0 for key in common]
    mean_box_iou = sum(ious) / len(ious) if ious else 0.0
    unparsed = time is None or boxes is None
    return ItemScore(SPATIO_TEMPORAL_GROUNDING, {"tiou": tiou, "box_iou": mean_box_iou}, unparsed=unparsed)


def score_tracking(answer: dict | None, gt: dict) -> ItemScore:
    """Box IoU for every ground-truth frame key; a frame the prediction lacks has IoU 0."""
    gt_boxes = _gt_frame_boxes(gt)
    boxes = _answer_frame_boxes(answer)
    found = boxes or {}
    frame_ious = tuple(
        box_iou(found[key], gt_box) if found.get(key) is not None else 0.0 for key, gt_box in gt_boxes.items()
    )
    return ItemScore(TRACKING, frame_ious=frame_ious, unparsed=boxes is None)


_GROUNDING_SCORERS = {
    TEMPORAL_GROUNDING: score_temporal_grounding,
    SPATIAL_GROUNDING: score_spatial_grounding,
    SPATIO_TEMPORAL_GROUNDING: score_spatio_temporal_grounding,
    TRACKING: score_tracking,
}


# ---------------------------------------- segmentation ---------------------------------------


def _frame_mapping(masks: object) -> dict[str, object]:
    """Masks as frame → RLE (or None for an empty frame); one bare RLE becomes frame "0"."""
    if mask_ops.is_rle(masks):
        return {"0": masks}
    if isinstance(masks, Mapping):
        return dict(masks)
    raise mask_ops.MaskFormatError("masks must be one COCO RLE or a mapping frame -> RLE")


def _decode_gt_frames(gt_masks: object) -> dict[str, np.ndarray]:
    """Ground-truth frames decoded to (H, W) bool arrays; a None frame is empty at the common size."""
    try:
        frames = _frame_mapping(gt_masks)
        sizes = {mask_ops.rle_size(rle) for rle in frames.values() if rle is not None}
        if len(sizes) != 1:
            raise mask_ops.MaskFormatError(f"ground-truth frames need one common size, got {sorted(sizes)}")
        (size,) = sizes
        return {
            key: mask_ops.decode_rle(rle) if rle is not None else np.zeros(size, dtype=bool)
            for key, rle in frames.items()
        }
    except (mask_ops.MaskFormatError, TypeError, ValueError) as exc:
        raise InvalidGroundTruth(f"bad gt_masks: {exc}") from exc


def _decode_pred_frames(pred_masks: object, gt_frames: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], bool]:
    """Predicted mask per ground-truth frame (empty where absent) and whether the masks were readable.

    Unreadable predicted masks (missing, undecodable, wrong size) become empty masks everywhere.
    """
    empty = {key: np.zeros_like(mask) for key, mask in gt_frames.items()}
    if pred_masks is None:
        return empty, False
    try:
        frames = _frame_mapping(pred_masks)
        if len(frames) == 1 and len(gt_frames) == 1:
            # A single image: match the one prediction with the one ground truth whatever the keys.
            frames = {next(iter(gt_frames)): next(iter(frames.values()))}
        decoded = dict(empty)
        for key, gt_mask in gt_frames.items():
            if frames.get(key) is None:
                continue
            mask = mask_ops.decode_rle(frames[key])
            if mask.shape != gt_mask.shape:
                raise mask_ops.MaskFormatError(f"frame {key}: predicted {mask.shape} vs ground truth {gt_mask.shape}")
            decoded[key] = mask
        return decoded, True
    except (mask_ops.MaskFormatError, TypeError, ValueError):
        return empty, False


def _score_image_segmentation(pred_masks: object, gt_masks: object) -> ItemScore:
    """Mask IoU of one image plus its pixel intersection and union (for cIoU)."""
    gt_frames = _decode_gt_frames(gt_masks)
    if len(gt_frames) != 1:
        raise InvalidGroundTruth(f"image segmentation needs one ground-truth mask, got {len(gt_frames)}")
    pred_frames, readable = _decode_pred_frames(pred_masks, gt_frames)
    (key,) = gt_frames
    intersection, union = mask_ops.intersection_and_union(pred_frames[key], gt_frames[key])
    iou = 1.0 if union == 0 else intersection / union
    values = {"iou": iou, "intersection": float(intersection), "union": float(union)}
    return ItemScore(IMAGE_SEGMENTATION, values, unparsed=not readable)


def _score_video_segmentation(pred_masks: object, gt_masks: object) -> ItemScore:
    """J and F averaged over the ground-truth frames of one object."""
    gt_frames = _decode_gt_frames(gt_masks)
    pred_frames, readable = _decode_pred_frames(pred_masks, gt_frames)
    j_values = [mask_ops.region_iou(pred_frames[key], gt) for key, gt in gt_frames.items()]
    f_values = [mask_ops.boundary_f_measure(pred_frames[key], gt) for key, gt in gt_frames.items()]
    values = {"j": float(np.mean(j_values)), "f": float(np.mean(f_values))}
    return ItemScore(VIDEO_SEGMENTATION, values, unparsed=not readable)


_ZERO_VALUES = {
    QUESTION_ANSWERING: {"accuracy": 0.0},
    TEMPORAL_GROUNDING: {"tiou": 0.0},
    SPATIAL_GROUNDING: {"iou": 0.0},
    SPATIO_TEMPORAL_GROUNDING: {"tiou": 0.0, "box_iou": 0.0},
    IMAGE_SEGMENTATION: {"iou": 0.0, "intersection": 0.0, "union": 0.0},
    VIDEO_SEGMENTATION: {"j": 0.0, "f": 0.0},
}


def zero_score(family: str) -> ItemScore:
    """An unreadable answer of ``family``: every overlap 0 (a tracking sequence of one missed frame)."""
    if family == TRACKING:
        return ItemScore(TRACKING, frame_ious=(0.0,), unparsed=True)
    return ItemScore(family, dict(_ZERO_VALUES[family]), unparsed=True)
