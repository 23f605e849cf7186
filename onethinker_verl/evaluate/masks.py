"""Binary masks for the segmentation benchmarks: COCO RLE decoding, region IoU (J) and the DAVIS
boundary F-measure (F).

All masks here are 2-D boolean numpy arrays of shape (height, width) in pixels.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np
from pycocotools import mask as coco_mask
from skimage.morphology import dilation, disk

# DAVIS matches boundaries within 0.8% of the image diagonal.
DAVIS_BOUNDARY_THRESHOLD = 0.008


class MaskFormatError(ValueError):
    """A mask value is not a usable COCO run-length encoding."""


def is_rle(value: object) -> bool:
    """True when ``value`` looks like one COCO RLE dict (has ``size`` and ``counts``)."""
    return isinstance(value, Mapping) and "size" in value and "counts" in value


def decode_rle(rle: Mapping) -> np.ndarray:
    """Decode one COCO RLE into a boolean mask of shape ``rle["size"]`` = (height, width).

    ``counts`` may be the compressed string (str or bytes) or the uncompressed list of run
    lengths; the list form is converted with ``frPyObjects`` first, as pycocotools expects.
    """
    if not is_rle(rle):
        raise MaskFormatError("a COCO RLE needs 'size' and 'counts'")
    try:
        height, width = (int(v) for v in rle["size"])
    except (TypeError, ValueError) as exc:
        raise MaskFormatError(f"bad RLE size {rle['size']!r}") from exc
    if height <= 0 or width <= 0:
        raise MaskFormatError(f"bad RLE size {rle['size']!r}")
    counts = rle["counts"]
    if isinstance(counts, list):
        compressed = coco_mask.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    elif isinstance(counts, (str, bytes)):
        compressed = {"size": [height, width], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    else:
        raise MaskFormatError(f"RLE counts must be a string or a list, got {type(counts).__name__}")
    try:
        with warnings.catch_warnings():
            # pycocotools' Cython layer trips numpy 2's copy-keyword DeprecationWarning on every call.
            warnings.simplefilter("ignore", DeprecationWarning)
            decoded = coco_mask.decode(compressed)
    except Exception as exc:  # pycocotools raises bare Exceptions on corrupt counts
        raise MaskFormatError(f"undecodable RLE: {exc}") from exc
    if decoded.shape != (height, width):
        raise MaskFormatError(f"RLE decodes to {decoded.shape}, not its size {(height, width)}")
    return decoded.astype(bool)


def rle_size(rle: Mapping) -> tuple[int, int]:
    """(height, width) declared by an RLE, without decoding it."""
    if not is_rle(rle):
        raise MaskFormatError("a COCO RLE needs 'size' and 'counts'")
    height, width = (int(v) for v in rle["size"])
    return height, width


def intersection_and_union(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    """Pixel counts of ``pred & gt`` and ``pred | gt``; both masks have the same (H, W) shape."""
    return int(np.logical_and(pred, gt).sum()), int(np.logical_or(pred, gt).sum())


def region_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Region similarity J = |pred ∩ gt| / |pred ∪ gt|; 1.0 when both masks are empty (DAVIS)."""
    intersection, union = intersection_and_union(pred, gt)
    return 1.0 if union == 0 else intersection / union


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary of a (H, W) mask, as DAVIS' ``seg2bmap`` defines it.

    A pixel is a boundary pixel when its value differs from its right, lower or lower-right
    neighbour. Pixels outside the image are not neighbours: the last row compares only with the
    right neighbour, the last column only with the lower one, and the bottom-right pixel is never
    a boundary. So the outline of an object sits on its own pixels along its right/bottom edges and
    on the background pixels just outside its left/top edges.
    """
    mask = mask.astype(bool)
    right = np.zeros_like(mask)
    below = np.zeros_like(mask)
    below_right = np.zeros_like(mask)
    right[:, :-1] = mask[:, 1:]
    below[:-1, :] = mask[1:, :]
    below_right[:-1, :-1] = mask[1:, 1:]
    boundary = (mask ^ right) | (mask ^ below) | (mask ^ below_right)
    boundary[-1, :] = mask[-1, :] ^ right[-1, :]
    boundary[:, -1] = mask[:, -1] ^ below[:, -1]
    boundary[-1, -1] = False
    return boundary


def boundary_tolerance_pixels(shape: tuple[int, int], bound_th: float = DAVIS_BOUNDARY_THRESHOLD) -> int:
    """Matching radius in pixels: ``bound_th`` itself when >= 1, else ceil(bound_th × image diagonal)."""
    if bound_th >= 1:
        return int(bound_th)
    return int(math.ceil(bound_th * math.hypot(shape[0], shape[1])))


def boundary_f_measure(pred: np.ndarray, gt: np.ndarray, bound_th: float = DAVIS_BOUNDARY_THRESHOLD) -> float:
    """DAVIS contour accuracy F of one (H, W) frame.

    Boundaries come from :func:`boundary_map`; a predicted boundary pixel counts as matched when a
    ground-truth boundary pixel lies within the disk of radius ``boundary_tolerance_pixels`` around
    it, and the other way round for recall. precision = matched predicted / predicted boundary
    pixels, recall = matched ground-truth / ground-truth boundary pixels, F = 2PR / (P + R).
    Empty boundaries follow DAVIS: both empty → P = R = 1 (F = 1); only the prediction empty →
    P = 1, R = 0; only the ground truth empty → P = 0, R = 1 (F = 0 in both one-sided cases).
    """
    if pred.shape != gt.shape:
        raise MaskFormatError(f"mask shapes differ: {pred.shape} vs {gt.shape}")
    radius = boundary_tolerance_pixels(pred.shape, bound_th)
    pred_boundary = boundary_map(pred)
    gt_boundary = boundary_map(gt)
    n_pred = int(pred_boundary.sum())
    n_gt = int(gt_boundary.sum())
    if n_pred == 0 or n_gt == 0:
        precision = 1.0 if n_pred == 0 else 0.0
        recall = 1.0 if n_gt == 0 else 0.0
    else:
        pred_boundary, gt_boundary = _crop_around(pred_boundary, gt_boundary, radius)
        footprint = disk(radius)
        # Pixels outside the image are background, never boundary.
        pred_reach = dilation(pred_boundary, footprint, mode="constant", cval=0)
        gt_reach = dilation(gt_boundary, footprint, mode="constant", cval=0)
        precision = float(np.logical_and(pred_boundary, gt_reach).sum()) / n_pred
        recall = float(np.logical_and(gt_boundary, pred_reach).sum()) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _crop_around(first: np.ndarray, second: np.ndarray, margin: int) -> tuple[np.ndarray, np.ndarray]:
    """Crop both (H, W) boundary maps to the box holding all their pixels plus ``margin``.

    Dilation only matters within ``margin`` of a boundary pixel, so matching on the crop gives the
    same counts as on the full frame while costing far less on large video frames.
    """
    rows, cols = np.nonzero(first | second)
    top = max(0, rows.min() - margin)
    left = max(0, cols.min() - margin)
    bottom = rows.max() + margin + 1
    right = cols.max() + margin + 1
    return first[top:bottom, left:right], second[top:bottom, left:right]
