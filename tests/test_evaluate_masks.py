"""Masks: COCO RLE decoding, region IoU (J) and the DAVIS boundary F-measure, on hand-checked cases."""

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from onethinker_verl.evaluate.masks import (
    MaskFormatError,
    boundary_f_measure,
    boundary_map,
    boundary_tolerance_pixels,
    decode_rle,
    region_iou,
)


def square(top: int, left: int, side: int = 4, shape=(20, 20)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


def test_compressed_rle_round_trip_bytes_and_str():
    rng = np.random.default_rng(0)
    mask = rng.random((7, 11)) > 0.5
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert np.array_equal(decode_rle(rle), mask)
    as_text = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
    assert np.array_equal(decode_rle(as_text), mask)


def test_uncompressed_rle_counts_are_column_major_runs():
    # 2x3 mask; column-major order reads col0 (0, 0), col1 (1, 1), col2 (0, 1): runs of 0s/1s = 2, 2, 1, 1.
    expected = np.array([[0, 1, 0], [0, 1, 1]], dtype=bool)
    assert np.array_equal(decode_rle({"size": [2, 3], "counts": [2, 2, 1, 1]}), expected)


def test_bad_rle_raises_format_error():
    with pytest.raises(MaskFormatError):
        decode_rle({"size": [2, 3]})
    with pytest.raises(MaskFormatError):
        decode_rle({"size": [2, 3], "counts": 5})


def test_region_iou_of_shifted_squares_and_empty_masks():
    # 4x4 squares shifted by 2 columns: overlap 4x2 = 8, union 16 + 16 - 8 = 24.
    assert region_iou(square(2, 4), square(2, 2)) == pytest.approx(8 / 24)
    empty = np.zeros((20, 20), dtype=bool)
    assert region_iou(empty, empty) == 1.0
    assert region_iou(empty, square(2, 2)) == 0.0


def test_boundary_map_of_a_square_is_the_ring_through_its_top_left_neighbours():
    # Square rows/cols 2..5: right/bottom edge pixels are its own (row 5, col 5); the top/left edges
    # sit on the background just outside (row 1, col 1). So the boundary is the ring of the 5x5 block
    # rows/cols 1..5: 16 pixels.
    ring = np.zeros((10, 10), dtype=bool)
    ring[1:6, 1:6] = True
    ring[2:5, 2:5] = False
    assert np.array_equal(boundary_map(square(2, 2, shape=(10, 10))), ring)


def test_boundary_tolerance_is_ceil_of_0_008_diagonal():
    assert boundary_tolerance_pixels((20, 20)) == 1  # 0.008 * 28.3 = 0.23
    assert boundary_tolerance_pixels((480, 854)) == 8  # 0.008 * 979.6 = 7.84
    assert boundary_tolerance_pixels((480, 854), bound_th=3) == 3


def test_f_measure_of_square_shifted_by_two_pixels():
    # 20x20 frame: tolerance 1 pixel, i.e. the 4-neighbourhood cross. Both boundaries are 16-pixel rings
    # (rows 1..5; gt cols 1..5, prediction cols 3..7). A predicted pixel matches when a gt ring pixel is
    # on it or 4-adjacent:
    #   top and bottom rows (cols 3..7): cols 3, 4, 5 lie on the gt ring, col 6 touches col 5, col 7 misses -> 4 + 4
    #   left column (col 3, rows 2..4): rows 2 and 4 touch the gt top/bottom rows, row 3 misses -> 2
    #   right column (col 7, rows 2..4): nothing within reach -> 0
    # precision = 10/16; by mirror symmetry recall = 10/16; F = 10/16.
    assert boundary_f_measure(square(2, 4), square(2, 2)) == pytest.approx(10 / 16)


def test_f_measure_shift_within_tolerance_and_identity_and_far():
    assert boundary_f_measure(square(2, 2), square(2, 2)) == 1.0
    # One-column shift: every ring pixel is on or 4-adjacent to the other ring.
    assert boundary_f_measure(square(2, 3), square(2, 2)) == 1.0
    assert boundary_f_measure(square(12, 12), square(2, 2)) == 0.0


def test_f_measure_empty_cases_follow_davis():
    empty = np.zeros((20, 20), dtype=bool)
    assert boundary_f_measure(empty, empty) == 1.0
    assert boundary_f_measure(empty, square(2, 2)) == 0.0
    assert boundary_f_measure(square(2, 2), empty) == 0.0


def test_f_measure_larger_tolerance_on_large_frame():
    # 480x854 frame: tolerance 8 pixels, so a 5-pixel shift of a large square matches everywhere
    # and a 20-pixel shift only where the rings overlap.
    shape = (480, 854)
    gt = square(100, 100, side=200, shape=shape)
    assert boundary_f_measure(square(100, 105, side=200, shape=shape), gt) == 1.0
    shifted = boundary_f_measure(square(100, 300, side=200, shape=shape), gt)
    assert 0.0 < shifted < 1.0
