"""Reference-protocol scores (OneThinker's eval_bench.py / seg_post_sam2.py), on cases worked out by hand.

Each case names the difference from the project's strict protocol (``--protocol strict``) or from the
training reward that it pins down.
"""

import json

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from onethinker_verl.evaluate.strict.evaluation import evaluate_predictions, predictions_from_outputs
from onethinker_verl.evaluate.reference.outputs import BenchmarkOutput, score_benchmark
from onethinker_verl.benchmark_scoring.reference import MetricAccumulator, extract_prediction, score_row
from onethinker_verl.evaluate.reference.masks import (
    boundary_f_score,
    boundary_tolerance,
    inner_boundary,
    read_prompts,
    region_iou,
    score_segmentation_row,
)
from onethinker_verl.reward import compute_score


def answer(value) -> str:
    return f"<think>t</think><answer>{value if isinstance(value, str) else json.dumps(value)}</answer>"


def row(problem_type: str, output, solution, **extra) -> dict:
    return {"problem_type": problem_type, "data_type": "image", "output": output, "solution": solution, **extra}


def accuracy(problem_type: str, output, solution) -> float:
    return score_row(row(problem_type, output, solution)).accuracy


# ------------------------------------------------------------------------------ answers and QA tasks


@pytest.mark.parametrize(
    ("output", "solution", "expected"),
    [
        (answer("B. red"), "<answer>B</answer>", 1.0),
        (answer("b"), "B", 1.0),  # upper-cased
        (answer("(B)"), "B", 0.0),  # first character, not first letter (strict protocol: 1)
        (answer("4"), "4", 0.0),  # equal first characters that are not letters A-Z
        ("   ", "", 1.0),  # "" == "" and "" in "ABC...": the reference's quirk, kept
        ("B because", "B", 1.0),  # no answer tag: the whole stripped output
    ],
)
def test_multiple_choice_first_character(output, solution, expected):
    assert accuracy("multiple choice", output, solution) == expected


def test_no_tag_normalisation_unlike_the_reward():
    spaced = "<think>t</think>< answer >B</ answer >"
    assert extract_prediction(spaced) == spaced  # no <answer> block without normalisation
    assert accuracy("multiple choice", spaced, "B") == 0.0  # first character "<"
    assert compute_score("onethinker", spaced, "B", {"problem_type": "multiple choice"})["accuracy"] == 1.0


@pytest.mark.parametrize(
    ("output", "solution", "expected"),
    [
        ("1.04", "1", 1.0),  # relative error 0.04 < 1 - 0.95 for all ten thresholds
        ("1.05", "1", 0.9),  # 1.05 - 1 = 0.050000000000000044, not < 1 - 0.95 (same float): nine of ten
        ("1.5", "1", 0.0),  # 0.5 < 1 - 0.5 is false
        ("0.3", "0", 0.0),  # target 0 scores 0
        ("1,100", "1000", 0.8),  # commas dropped; relative error 0.1 < 1 - θ for θ <= 0.85 (0.15 ... 0.5)
        ("abc", "1", 0.0),
    ],
)
def test_regression_mean_relative_accuracy_in_float64(output, solution, expected):
    assert accuracy("regression", answer(output), solution) == pytest.approx(expected, abs=1e-12)


def test_regression_threshold_differs_from_the_float32_reward():
    # In float64 the reference's 1.05 vs 1 misses the tightest threshold; the training reward (float32,
    # |g| + 1e-8) does not, so the two protocols really differ here.
    reward = compute_score("onethinker", answer("1.05"), "1", {"problem_type": "regression"})["accuracy"]
    assert accuracy("regression", answer("1.05"), "1") == 0.9 and reward == 1.0


@pytest.mark.parametrize(("output", "expected"), [("1,000.004", 1.0), ("999.99", 0.0), ("nan", 0.0)])
def test_numerical_two_decimals(output, expected):
    assert accuracy("numerical", answer(output), "1000") == expected


def test_ocr_and_open_ended():
    assert accuracy("OCR", answer("hello big world"), "hello world") == pytest.approx(0.5)  # 1 - 1/2
    assert accuracy("ocr", answer("hello world"), "hello world") == 1.0
    assert accuracy("open-ended", answer("a red car"), "a red car") == pytest.approx(1.0)


def test_math_symbolic_equivalence():
    assert accuracy("math", answer("$\\frac{1}{2}$"), "0.5") == 1.0
    assert accuracy("math", answer("3"), "4") == 0.0


# ------------------------------------------------------------------------------------ grounding tasks


def test_spatial_grounding_uses_the_fixed_iou_2d():
    # The published iou_2d unpacks min(x2, X2) into two names and raises for any two valid boxes; with
    # the evident fix min(y2, Y2): intersection 10 x 5 = 50, union 100 + 50 - 50 = 100.
    score = score_row(row("spatial grounding", answer({"boxes": [0, 0, 10, 10]}), '{"boxes": [0, 0, 10, 5]}'))
    assert (score.accuracy, score.components) == (0.5, {"iou": 0.5})


def test_temporal_grounding_components():
    score = score_row(row("temporal grounding", answer({"time": [0, 10]}), '<answer>{"time": [5, 10]}</answer>'))
    assert score.components == {"tiou": 0.5} and score.accuracy == 0.5
    unreadable = score_row(row("temporal grounding", answer("soon"), '{"time": [5, 10]}'))
    assert unreadable.components == {"tiou": 0.0} and unreadable.crashed is None


def test_spatial_temporal_grounding_mean_over_common_frames():
    gt = {"time": [0, 4], "boxes": {"1": [0, 0, 10, 10], "2": [0, 0, 10, 10]}}
    # frame "1" exact, "9" only in the prediction (ignored), "2" only in the ground truth (ignored)
    prediction = {"time": [2, 4], "boxes": {"1": [0, 0, 10, 10], "9": [50, 50, 60, 60]}}
    score = score_row(row("spatial-temporal grounding", answer(prediction), json.dumps(gt)))
    assert score.components == {"tiou": 0.5, "miou_inter": 1.0}
    assert score.accuracy == pytest.approx(0.75)


def test_tracking_mean_over_ground_truth_frames():
    gt = {"boxes": {"1": [0, 0, 10, 10], "2": [0, 0, 10, 10]}}
    score = score_row(row("tracking", answer({"boxes": {"1": [0, 0, 10, 10]}}), json.dumps(gt)))
    assert score.components == {"miou_gt": 0.5} and score.accuracy == 0.5


def test_segmentation_and_unknown_types_score_zero_without_components():
    assert score_row(row("segmentation", answer({"boxes": [0, 0, 1, 1]}), "{}")) .components == {}
    assert score_row(row("counting", answer("3"), "3")).accuracy == 0.0


@pytest.mark.parametrize(
    ("bad_row", "reason"),
    [
        (row("temporal grounding", None, '{"time": [0, 1]}'), "AttributeError"),  # output is not text
        (row("multiple choice", answer("A"), 1), "AttributeError"),  # non-string solution: gt.strip()
        ({"problem_type": None, "output": "A", "solution": "A"}, "AttributeError"),
    ],
)
def test_inputs_the_reference_would_crash_on_score_zero_and_are_counted(bad_row, reason):
    score = score_row(bad_row)
    assert score.accuracy == 0.0 and score.crashed.startswith(reason)
    benchmark = score_benchmark(BenchmarkOutput("b", [bad_row, row("multiple choice", answer("A"), "A")]))
    assert benchmark.meta["crashed_rows"] == 1 and benchmark.metrics["overall/acc"] == 0.5


def test_aggregation_names_and_recalls_per_problem_type():
    accumulator = MetricAccumulator()
    accumulator.add("OCR", 1.0, {})
    accumulator.add("ocr ", 0.0, {})  # stripped, but case kept: a separate key, as in the reference
    accumulator.add("temporal grounding", 0.5, {"tiou": 0.5})
    accumulator.add("temporal grounding", 0.3, {"tiou": 0.3})
    metrics = accumulator.metrics()
    assert metrics["overall/acc"] == pytest.approx(1.8 / 4)
    assert (metrics["OCR/acc"], metrics["ocr/acc"]) == (1.0, 0.0)
    assert metrics["temporal grounding/tiou/mean"] == pytest.approx(0.4)
    # recall counts value >= threshold
    assert metrics["temporal grounding/tiou/R@0.3"] == 1.0
    assert metrics["temporal grounding/tiou/R@0.5"] == 0.5
    assert metrics["temporal grounding/tiou/R@0.7"] == 0.0


# --------------------------------------------------------------------------------------- segmentation


def square(top: int, left: int, side: int = 4, size: int = 20) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


def rle(mask: np.ndarray) -> dict:
    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(encoded["size"]), "counts": encoded["counts"].decode("ascii")}


PROMPTS = {"boxes": [100, 100, 300, 300], "positive_points": [[200, 200]] * 3, "negative_points": [[900, 900]] * 3}


def test_region_iou_is_zero_on_two_empty_masks_unlike_davis():
    empty = np.zeros((5, 5), dtype=bool)
    assert region_iou(empty, empty) == 0.0
    assert boundary_f_score(empty, empty) == 1.0


def test_boundary_f_with_inner_8_neighbour_boundary_and_square_tolerance():
    gt, pred = square(2, 2), square(2, 4)
    # inner boundary of a 4x4 square: its 12 outer pixels
    assert inner_boundary(gt).sum() == 12 and not inner_boundary(gt)[3:5, 3:5].any()
    # an object touching the image border: its border pixels are boundary too
    assert inner_boundary(np.ones((3, 3), dtype=bool)).sum() == 8
    assert boundary_tolerance((20, 20)) == 1  # max(1, round(0.0075 * 28.3))
    assert boundary_tolerance((400, 400)) == 4  # round(4.24)
    # radius 1: 8 of the 12 predicted boundary pixels lie within one pixel (square) of the ground
    # truth's boundary, and 8 of 12 the other way: P = R = F = 2/3 (DAVIS-style F gives 10/16)
    assert boundary_f_score(pred, gt) == pytest.approx(2 / 3)
    assert region_iou(pred, gt) == pytest.approx(8 / 24)


def test_prompts_are_scaled_rounded_and_clipped_like_the_reference():
    prompts = read_prompts(json.dumps({"boxes": [300, 10, 100, 1200], "positive_points": [[5, 5], [1, 2, 3]], "time": "2.5"}), 20, 10)
    # x: 300 * 20 / 1000 = 6, 100 -> 2 (corners re-ordered); y: 10 * 10 / 1000 = 0.1 -> 0, 1200 -> 12 clipped to 10
    assert prompts.box.tolist() == [2, 0, 6, 10]
    assert prompts.points.tolist() == [[0, 0]] and prompts.labels.tolist() == [1]  # 0.1 -> 0; malformed point skipped
    assert prompts.time_s == 2.5
    # round() halves to even: 25 * 20 / 1000 = 0.5 -> 0, 75 * 20 / 1000 = 1.5 -> 2
    assert read_prompts({"boxes": [25, 0, 75, 0]}, 20, 20).box.tolist() == [0, 0, 2, 0]


def image_row(gt_mask, answer_value=PROMPTS, size=20) -> dict:
    return {
        "problem_type": "segmentation", "data_type": "image", "output": answer(answer_value), "solution": "{}",
        "resolution": {"width": size, "height": size}, "segmentation_output": {"segmentation_rle": rle(gt_mask)},
    }


def test_image_gIoU_and_cIoU_leave_out_rows_without_prompts():
    rows = [
        {**image_row(square(2, 2)), "pred_masks": rle(square(2, 4))},  # I 8, U 24
        {**image_row(square(8, 8), answer_value={"boxes": "none"}), "pred_masks": rle(square(8, 8))},  # no prompts
        {**image_row(square(8, 8)), "pred_masks": rle(square(8, 8))},  # exact: I 16, U 16
    ]
    scored = score_benchmark(BenchmarkOutput("seg", rows))
    assert [r["status"] for r in scored.results] == ["ok", "no-prompts", "ok"]
    assert scored.metrics["image/gIoU"] == pytest.approx((1 / 3 + 1) / 2) == scored.metrics["image/IoU"]
    assert scored.metrics["image/cIoU"] == pytest.approx((8 + 16) / (24 + 16))
    assert scored.meta["segmentation"]["left_out"] == {"no-prompts": 1}
    # the strict protocol counts every row: the third row's IoU 1 and the prompt-less row's IoU 1 too
    strict = evaluate_predictions(predictions_from_outputs([BenchmarkOutput("seg", rows)])).to_json()["seg"]
    assert strict["giou"] == pytest.approx((1 / 3 + 1 + 1) / 3)


def test_masks_from_another_segmenter_without_an_answer_are_scored():
    given = {**image_row(square(2, 2)), "output": None, "pred_masks": rle(square(2, 2))}
    assert score_segmentation_row(given, given["pred_masks"]) == ("ok", {"IoU": 1.0, "inter": 16, "union": 16})
    empty_answer = {**given, "output": ""}  # the model answered nothing: no prompts, left out as in the reference
    assert score_segmentation_row(empty_answer, empty_answer["pred_masks"]) == ("no-prompts", None)


def test_image_masks_of_another_size_are_resized_nearest():
    big = np.kron(square(2, 2), np.ones((2, 2), dtype=bool))  # 40x40 version of the same square
    status, reward = score_segmentation_row(image_row(square(2, 2)), rle(big))
    assert status == "ok" and reward["IoU"] == 1.0


def test_video_j_f_over_ground_truth_frames():
    frames = ["00000", "00001", "00002", "00003"]
    video = {
        "problem_type": "segmentation", "data_type": "video", "output": answer({**PROMPTS, "time": 1}),
        "solution": "{}", "fps": 2, "resolution": {"width": 20, "height": 20},
        "segmentation_output": {"frames": frames, "segmentation_rle": {
            "00000": rle(square(2, 2)), "00001": rle(square(2, 2)), "00002": rle(np.zeros((20, 20), bool))}},
        # frame 0: shifted (J 1/3, F 2/3); frame 1: no prediction (0, 0); frame 2: both empty (J 0, F 1);
        # frame 3 has no ground truth and does not count
        "pred_masks": {"0": rle(square(2, 4)), "2": rle(np.zeros((20, 20), bool)), "3": rle(square(0, 0))},
    }
    scored = score_benchmark(BenchmarkOutput("vos", [video, {**video, "fps": 0}]))
    j, f = (1 / 3 + 0 + 0) / 3, (2 / 3 + 0 + 1) / 3
    assert scored.results[0]["reward"] == pytest.approx({"J": j, "F": f, "J&F": (j + f) / 2})
    assert scored.results[1]["status"] == "bad-fps"
    assert scored.metrics["video/J&F"] == pytest.approx((j + f) / 2)


def test_unreadable_prompt_coordinates_leave_the_row_out_with_an_error():
    bad = {**image_row(square(2, 2), {"boxes": ["a", 0, 1, 1]}), "pred_masks": rle(square(2, 2))}
    status, reward = score_segmentation_row(bad, bad["pred_masks"])
    assert status.startswith("error:") and reward is None
