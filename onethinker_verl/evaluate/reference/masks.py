"""Segmentation scores by the reference protocol (OneThinker's ``Evaluation/Eval/seg_post_sam2.py``).

A segmentation row of a benchmark output file carries the ground truth the reference reads:
``resolution`` ``{"width": W, "height": H}`` in pixels, ``fps`` (video; frames per second of the frame
folder SAM2 reads), and ``segmentation_output`` with ``segmentation_rle`` (image: one COCO RLE; video:
frame key -> RLE) and, for video, ``frames`` (the frame keys in order; the k-th key is frame index k,
taken at k / fps seconds). The predicted masks are ``pred_masks``: one COCO RLE for an image row,
``{frame index: RLE}`` for a video row (written by :mod:`onethinker_verl.evaluate.sam2_bridge`, or by any other segmenter).

Per row, as the reference does:
- prompts are read from the answer (``predicted_answer_norm``, else ``prediction``, else the extracted
  ``output``); an image row whose answer has neither a box nor a point is left out (status
  ``no-prompts``, also when masks are given; masks given for a row whose ``output``, ``prediction`` and
  ``predicted_answer_norm`` are all null or absent, i.e. another segmenter's, are scored); a row whose prompts the reference cannot read (a non-numeric coordinate, NaN) is
  left out with status ``error: ...``; a video row with ``fps`` <= 0 (``bad-fps``) or no frame list
  (``no-frames-list``) is left out; every left-out row is counted;
- masks are compared at ``H x W``; a mask of another size is resized (nearest neighbour);
- image: ``IoU = inter / union`` (0 when the union is empty), with ``inter`` and ``union`` in pixels;
  a row without a ground-truth mask scores IoU 0 with inter = union = 0;
- video, per ground-truth frame with a mask: ``J`` = region IoU, **0 when both masks are empty** (DAVIS
  says 1), ``F`` = :func:`boundary_f_score`; a frame without a predicted mask scores J = F = 0; the row's
  J, F are means over its frames and ``J&F = (J + F) / 2`` (all 0 without any ground-truth frame).
Aggregation over the rows left in: ``video/J``, ``video/F``, ``video/J&F`` (mean of the rows' J&F),
``image/IoU`` = ``image/gIoU`` (mean IoU) and ``image/cIoU`` (total inter / total union, 0 when empty).

All masks are 2-D arrays of shape (height, width); boolean or 0/1.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image
from skimage.morphology import dilation

from onethinker_verl.benchmark_scoring.reference import extract_prediction
from onethinker_verl.evaluate import masks as mask_ops

# Boundary match tolerance as a fraction of the image diagonal, and the smallest radius in pixels.
BOUNDARY_TOLERANCE_RATIO = 0.0075
# Coordinates in model answers are normalised to 0-1000 (Qwen3-VL); the reference scales them to pixels.
NORMALIZED_SCALE = 1000.0
STATUS_OK = "ok"


class ReferenceRowError(ValueError):
    """The reference's SAM2 step would have failed on this row; it is left out with status ``error: ...``."""


# ------------------------------------------------------------------------------------- mask measures


def region_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """``|pred ∩ gt| / |pred ∪ gt|``; 0 when both masks are empty (the reference's ``compute_iou``)."""
    intersection, union = mask_ops.intersection_and_union(pred.astype(bool), gt.astype(bool))
    return intersection / union if union > 0 else 0.0


def inner_boundary(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with fewer than 8 mask pixels among their 8 neighbours (outside the image counts as
    background, so object pixels on the image border are boundary)."""
    padded = np.pad(mask.astype(np.uint8), 1)
    height, width = mask.shape
    neighbours = np.zeros((height, width), dtype=np.uint8)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if (dy, dx) != (1, 1):
                neighbours += padded[dy : dy + height, dx : dx + width]
    return mask.astype(bool) & (neighbours < 8)


def boundary_tolerance(shape: tuple[int, int]) -> int:
    """Match radius in pixels: ``max(1, round(0.0075 × diagonal))`` (Python's round: halves to even)."""
    return max(1, int(round(BOUNDARY_TOLERANCE_RATIO * math.hypot(shape[0], shape[1]))))


def boundary_f_score(pred: np.ndarray, gt: np.ndarray) -> float:
    """The reference's boundary F-measure of one (H, W) frame.

    Both masks empty: 1; exactly one empty: 0. Otherwise boundaries are :func:`inner_boundary`; a
    boundary pixel is matched when the other mask's boundary has a pixel inside the square of
    half-width :func:`boundary_tolerance` around it; precision and recall are the matched fractions of
    the predicted and ground-truth boundary pixels; F = 2PR / (P + R) (0 when P + R = 0).
    """
    pred, gt = pred.astype(bool), gt.astype(bool)
    if not pred.any() and not gt.any():
        return 1.0
    if not pred.any() or not gt.any():
        return 0.0
    radius = boundary_tolerance(pred.shape)
    pred_boundary, gt_boundary = inner_boundary(pred), inner_boundary(gt)
    square = np.ones((2 * radius + 1, 2 * radius + 1), dtype=bool)
    # Pixels outside the image are background, never boundary.
    pred_reach = dilation(pred_boundary, square, mode="constant", cval=0)
    gt_reach = dilation(gt_boundary, square, mode="constant", cval=0)
    precision = float((pred_boundary & gt_reach).sum()) / float(pred_boundary.sum())
    recall = float((gt_boundary & pred_reach).sum()) / float(gt_boundary.sum())
    if precision + recall == 0:
        return 0.0
    return 2.0 * precision * recall / (precision + recall)


# ------------------------------------------------------------------------------------------ prompts


@dataclass(frozen=True)
class Prompts:
    """SAM2 prompts in pixels: box (4,) ``[x1, y1, x2, y2]`` or None, points (N, 2) with labels (N,)
    (1 positive, 0 negative) or None, and the prompted time in seconds (0 when absent)."""

    box: np.ndarray | None
    points: np.ndarray | None
    labels: np.ndarray | None
    time_s: float

    @property
    def empty(self) -> bool:
        return self.box is None and self.points is None


def _to_pixel(value: Any, size: int) -> int:
    """``value`` in 0-1000 units to a pixel coordinate: rounded (halves to even), clipped to [0, size]."""
    return int(max(0, min(size, round(float(value * size / NORMALIZED_SCALE)))))


def _pixel_points(points: Any, width: int, height: int) -> np.ndarray:
    if not isinstance(points, list):
        return np.zeros((0, 2), dtype=np.float32)
    pixels = [
        [_to_pixel(point[0], width), _to_pixel(point[1], height)]
        for point in points
        if isinstance(point, list | tuple) and len(point) == 2
    ]
    return np.array(pixels, dtype=np.float32) if pixels else np.zeros((0, 2), dtype=np.float32)


_ANSWER_KEYS = ("predicted_answer_norm", "prediction", "output")


def has_answer(row: Mapping) -> bool:
    """Whether the row holds a model answer at all (an empty one counts; null or absent does not)."""
    return any(row.get(key) is not None for key in _ANSWER_KEYS)


def answer_text(row: Mapping) -> Any:
    """The answer the SAM2 step reads: ``predicted_answer_norm``, else ``prediction``, else from ``output``."""
    for key in ("predicted_answer_norm", "prediction"):
        if key in row:
            return row[key]
    return extract_prediction(row.get("output"))


def read_prompts(answer: Any, width: int, height: int) -> Prompts:
    """Prompts from an answer (JSON text or dict) in 0-1000 units, as the reference reads them.

    A box is used when ``boxes`` is a list of 4 values (corners re-ordered after scaling); any number of
    ``[x, y]`` pairs are used as points (malformed entries skipped); ``time`` falls back to 0 when absent
    or not a number. Raises :class:`ReferenceRowError` where the reference raises (a coordinate that is
    not a number, NaN or infinite coordinates, an answer that is JSON but not an object).
    """
    try:
        parsed = json.loads(answer) if isinstance(answer, str) else (answer if isinstance(answer, dict) else {})
    except (ValueError, RecursionError):
        parsed = {}
    if not isinstance(parsed, dict):
        raise ReferenceRowError(f"answer is JSON {type(parsed).__name__}, not an object")
    try:
        time_s = float(parsed["time"]) if parsed.get("time") is not None else 0.0
    except (TypeError, ValueError, OverflowError):
        time_s = 0.0
    try:
        box = None
        boxes = parsed.get("boxes")
        if isinstance(boxes, list | tuple) and len(boxes) == 4:
            x1, y1 = _to_pixel(boxes[0], width), _to_pixel(boxes[1], height)
            x2, y2 = _to_pixel(boxes[2], width), _to_pixel(boxes[3], height)
            box = np.array([min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)], dtype=np.float32)
        positives = _pixel_points(parsed.get("positive_points", []), width, height)
        negatives = _pixel_points(parsed.get("negative_points", []), width, height)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ReferenceRowError(f"unreadable prompt coordinates: {exc}") from None
    if len(positives) + len(negatives) == 0:
        return Prompts(box, None, None, time_s)
    labels = np.concatenate([np.ones(len(positives), dtype=np.int32), np.zeros(len(negatives), dtype=np.int32)])
    return Prompts(box, np.concatenate([positives, negatives]), labels, time_s)


# ---------------------------------------------------------------------------------------- row scores


@dataclass(frozen=True)
class SegmentationGroundTruth:
    """What scoring needs of a segmentation row: media kind, size, fps, frame keys and masks (RLEs)."""

    data_type: str
    width: int
    height: int
    fps: float | None
    frames: list  # frame keys as written (the reference looks them up unconverted)
    masks: Any  # image: one RLE (or None); video: frame key -> RLE


def ground_truth_of(row: Mapping) -> SegmentationGroundTruth:
    """Read the row's ground truth; raises :class:`ReferenceRowError` where the reference would fail."""
    data_type = row.get("data_type")
    resolution = row.get("resolution") or {}
    try:
        width, height = int(resolution.get("width")), int(resolution.get("height"))
    except (TypeError, ValueError, AttributeError) as exc:
        raise ReferenceRowError(f"resolution must hold integer width and height: {exc}") from None
    if width <= 0 or height <= 0:
        raise ReferenceRowError(f"resolution must be positive, got {width}x{height}")
    if data_type == "image":
        # An absent ground truth scores IoU 0; a null one fails in the reference.
        output = row["segmentation_output"] if "segmentation_output" in row else {}
        if not isinstance(output, Mapping):
            raise ReferenceRowError("segmentation_output must be an object")
        return SegmentationGroundTruth("image", width, height, None, [], output.get("segmentation_rle") or None)
    try:
        fps = float(row.get("fps", 0) or 0)
    except (TypeError, ValueError) as exc:
        raise ReferenceRowError(f"fps is not a number: {exc}") from None
    output = row.get("segmentation_output") or {}
    if not isinstance(output, Mapping):
        raise ReferenceRowError("segmentation_output must be an object")
    frames = output.get("frames") or []
    masks = output.get("segmentation_rle") or {}
    if not isinstance(frames, list) or not isinstance(masks, Mapping):
        raise ReferenceRowError("segmentation_output needs a 'frames' list and a 'segmentation_rle' object")
    return SegmentationGroundTruth("video", width, height, fps, frames, masks)


def decode_at(rle: Any, height: int, width: int) -> np.ndarray:
    """One COCO RLE as a (height, width) boolean mask, resized by nearest neighbour when it differs."""
    mask = mask_ops.decode_rle(rle)
    if mask.shape != (height, width):
        mask = np.array(Image.fromarray(mask.astype(np.uint8)).resize((width, height), Image.NEAREST)) > 0
    return mask


def _frame_mask(pred_masks: Any, index: int) -> Any:
    if not isinstance(pred_masks, Mapping):
        return None
    found = pred_masks.get(str(index))
    return found if found is not None else pred_masks.get(index)


def score_segmentation_row(row: Mapping, pred_masks: Any) -> tuple[str, dict | None]:
    """(status, reward) of one segmentation row, as the reference's SAM2 step reports them.

    ``reward`` is ``{"IoU", "inter", "union"}`` (image) or ``{"J", "F", "J&F"}`` (video) when the
    status is ``ok``, else None (the row is left out of the aggregate). ``pred_masks`` None means no
    mask was predicted at all (scored as empty masks).
    """
    data_type = row.get("data_type")
    if data_type not in ("image", "video"):
        return "skip-unknown-data_type", None
    try:
        truth = ground_truth_of(row)
        prompts = read_prompts(answer_text(row), truth.width, truth.height)
        if data_type == "image":
            # Masks handed in for a row without any model answer (another segmenter's) are scored as they are.
            if prompts.empty and (pred_masks is None or has_answer(row)):
                return "no-prompts", None
            return STATUS_OK, _image_reward(truth, pred_masks)
        if truth.fps <= 0:
            return "bad-fps", None
        if not truth.frames:
            return "no-frames-list", None
        return STATUS_OK, _video_reward(truth, pred_masks)
    except (ReferenceRowError, mask_ops.MaskFormatError) as exc:
        return f"error: {exc}", None


def _image_reward(truth: SegmentationGroundTruth, pred_masks: Any) -> dict:
    if not truth.masks:
        return {"IoU": 0.0, "inter": 0, "union": 0}
    gt = decode_at(truth.masks, truth.height, truth.width)
    pred = decode_at(pred_masks, truth.height, truth.width) if pred_masks is not None else np.zeros_like(gt)
    intersection, union = mask_ops.intersection_and_union(pred, gt)
    return {"IoU": intersection / union if union > 0 else 0.0, "inter": intersection, "union": union}


def _video_reward(truth: SegmentationGroundTruth, pred_masks: Any) -> dict:
    j_values, f_values = [], []
    for index, key in enumerate(truth.frames):
        rle = truth.masks.get(key)
        if not rle:
            continue
        gt = decode_at(rle, truth.height, truth.width)
        predicted = _frame_mask(pred_masks, index)
        if predicted is None:
            j_values.append(0.0)
            f_values.append(0.0)
            continue
        pred = decode_at(predicted, truth.height, truth.width)
        j_values.append(region_iou(pred, gt))
        f_values.append(boundary_f_score(pred, gt))
    if not j_values:
        return {"J": 0.0, "F": 0.0, "J&F": 0.0}
    j, f = float(np.mean(j_values)), float(np.mean(f_values))
    return {"J": j, "F": f, "J&F": (j + f) / 2.0}


@dataclass
class SegmentationAccumulator:
    """The reference's ``avg_rewards`` over the rows scored ``ok``; counts the rows left out by status."""

    video_j: list[float] = field(default_factory=list)
    video_f: list[float] = field(default_factory=list)
    video_jf: list[float] = field(default_factory=list)
    image_iou: list[float] = field(default_factory=list)
    total_intersection: int = 0
    total_union: int = 0
    left_out: dict[str, int] = field(default_factory=dict)

    def add(self, status: str, reward: dict | None) -> None:
        if status != STATUS_OK or not isinstance(reward, dict):
            reason = status.split(":", 1)[0]
            self.left_out[reason] = self.left_out.get(reason, 0) + 1
            return
        if "J" in reward:
            self.video_j.append(reward["J"])
            self.video_f.append(reward["F"])
            self.video_jf.append(reward["J&F"])
        if "IoU" in reward:
            self.image_iou.append(reward["IoU"])
            self.total_intersection += int(reward.get("inter", 0))
            self.total_union += int(reward.get("union", 0))

    def metrics(self) -> dict[str, float]:
        result = {}
        if self.video_j:
            result["video/J"] = float(np.mean(self.video_j))
            result["video/F"] = float(np.mean(self.video_f))
            result["video/J&F"] = float(np.mean(self.video_jf))
        if self.image_iou:
            giou = float(np.mean(self.image_iou))
            result["image/IoU"] = giou
            result["image/gIoU"] = giou
            result["image/cIoU"] = self.total_intersection / self.total_union if self.total_union > 0 else 0.0
        return result
