"""Per-item benchmark scores and their aggregation, on cases computed by hand."""

import json

import pytest

from onethinker_verl.evaluate.strict.aggregate import benchmark_metrics, recall_curves
from onethinker_verl.evaluate.strict.metrics import (
    IMAGE_SEGMENTATION,
    SPATIAL_GROUNDING,
    TEMPORAL_GROUNDING,
    TRACKING,
    VIDEO_SEGMENTATION,
    InvalidGroundTruth,
    ItemScore,
    UnknownTask,
    score_item,
)


def qa(problem_type: str, response: str, ground_truth: str) -> ItemScore:
    return score_item(problem_type, "image", response, ground_truth)


def wrap(answer) -> str:
    text = answer if isinstance(answer, str) else json.dumps(answer)
    return f"<think>reasoning</think> <answer>{text}</answer>"


@pytest.mark.parametrize(
    ("response", "ground_truth", "expected"),
    [
        (wrap("B. red"), "<answer>B</answer>", 1.0),
        (wrap("(c)"), "C", 1.0),
        (wrap("A"), "B", 0.0),
        ("D", "D", 1.0),  # no answer tag: the whole response is the answer
    ],
)
def test_multiple_choice_by_first_letter(response, ground_truth, expected):
    assert qa("multiple choice", response, ground_truth).values["accuracy"] == expected


def test_multiple_choice_without_a_letter_is_unparsed():
    score = qa("Multiple Choice", wrap("42"), "A")
    assert score.values["accuracy"] == 0.0 and score.unparsed


@pytest.mark.parametrize(
    ("answer", "gt", "expected"), [("3.141", "3.14", 1.0), ("3.146", "3.14", 0.0), ("1,000", "1000", 1.0)]
)
def test_numerical_rounds_to_two_decimals(answer, gt, expected):
    assert qa("numerical", wrap(answer), gt).values["accuracy"] == expected


def test_numerical_garbage_is_unparsed():
    score = qa("numerical", wrap("about three"), "3")
    assert score.values["accuracy"] == 0.0 and score.unparsed


@pytest.mark.parametrize(
    ("answer", "gt", "expected"),
    [
        ("10", "10", 1.0),
        # relative error 0.2 passes θ with 0.2 < 1 - θ: θ = 0.50 ... 0.75 (6 of 10); θ = 0.8 is a tie and fails.
        ("1.2", "1", 0.6),
        # relative error 0.5 passes no θ (0.5 < 0.5 is false).
        ("15", "10", 0.0),
        ("0", "0", 0.0),  # target 0 scores 0 by definition
    ],
)
def test_regression_mean_relative_accuracy(answer, gt, expected):
    assert qa("regression", wrap(answer), gt).values["accuracy"] == pytest.approx(expected)


def test_ocr_is_one_minus_word_error_rate():
    # gt "hello there world" vs "hello world": one deletion over 3 gt words.
    assert qa("OCR", wrap("hello world"), "hello there world").values["accuracy"] == pytest.approx(2 / 3)
    # more errors than gt words clips at 0.
    assert qa("ocr", wrap("a b c d e f"), "x").values["accuracy"] == 0.0


def test_open_ended_rouge_extremes():
    assert qa("open-ended", wrap("the cats were sitting"), "the cat was sitting").values["accuracy"] > 0.5
    assert qa("open-ended", wrap("the cat sat"), "the cat sat").values["accuracy"] == pytest.approx(1.0)
    assert qa("open-ended", wrap("zebra"), "the cat sat").values["accuracy"] == 0.0


def test_math_symbolic_equivalence():
    assert qa("math", wrap(r"\frac{1}{2}"), "0.5").values["accuracy"] == 1.0
    assert qa("math", wrap("3"), "0.5").values["accuracy"] == 0.0


def test_tag_whitespace_is_normalised_before_extraction():
    assert qa("multiple choice", "<think>x</think>< answer > C </ answer >", "C").values["accuracy"] == 1.0


def test_temporal_grounding_tiou():
    score = score_item("temporal grounding", "video", wrap({"time": [0, 10]}), '{"time": [5, 10]}')
    assert score.values["tiou"] == pytest.approx(0.5)
    bad = score_item("temporal grounding", "video", wrap("from 5 to 10"), '{"time": [5, 10]}')
    assert bad.values["tiou"] == 0.0 and bad.unparsed


def test_spatial_grounding_box_iou():
    # [0,0,2,2] vs [1,1,3,3]: intersection 1, union 4 + 4 - 1 = 7.
    score = score_item("spatial grounding", "image", wrap({"boxes": [0, 0, 2, 2]}), '{"boxes": [1, 1, 3, 3]}')
    assert score.values["iou"] == pytest.approx(1 / 7)


def test_spatio_temporal_grounding_uses_common_frames():
    gt = {"time": [1, 3], "boxes": {"1": [0, 0, 10, 10], "2": [0, 0, 2, 2], "3": [0, 0, 4, 4]}}
    answer = {"time": [0, 2], "boxes": {"1": [0, 0, 10, 5], "2": [1, 1, 3, 3], "7": [0, 0, 1, 1]}}
    score = score_item("spatial-temporal grounding", "video", wrap(answer), json.dumps(gt))
    assert score.values["tiou"] == pytest.approx(1 / 3)  # [0,2] vs [1,3]
    assert score.values["box_iou"] == pytest.approx((0.5 + 1 / 7) / 2)  # frames 1 and 2 only
    assert not score.unparsed


def test_tracking_missing_frames_score_zero():
    gt = {"boxes": {"1": [0, 0, 10, 10], "2": [0, 0, 10, 10], "3": [0, 0, 2, 2], "4": [0, 0, 1, 1]}}
    answer = {"boxes": {"1": [0, 0, 10, 10], "2": [0, 0, 10, 5], "3": [1, 1, 3, 3]}}
    score = score_item("tracking", "video", wrap(answer), json.dumps(gt))
    assert score.frame_ious == pytest.approx((1.0, 0.5, 1 / 7, 0.0))


def test_bad_ground_truth_and_unknown_task_raise():
    with pytest.raises(InvalidGroundTruth):
        score_item("spatial grounding", "image", wrap({"boxes": [0, 0, 1, 1]}), "not json")
    with pytest.raises(InvalidGroundTruth):
        score_item("multiple choice", "image", "A", "42")
    with pytest.raises(UnknownTask):
        score_item("captioning", "image", "x", "y")
    with pytest.raises(UnknownTask):
        score_item("segmentation", "text", "x", "{}", gt_masks={"size": [1, 1], "counts": [1]})


def test_temporal_recalls_count_ties_as_hits():
    items = [ItemScore(TEMPORAL_GROUNDING, {"tiou": t}) for t in (0.2, 0.3, 0.5, 0.69, 0.7)]
    metrics = benchmark_metrics(TEMPORAL_GROUNDING, items)
    assert metrics["miou"] == pytest.approx(2.39 / 5)
    assert (metrics["r@0.3"], metrics["r@0.5"], metrics["r@0.7"]) == (0.8, 0.6, 0.2)
    curve = recall_curves(TEMPORAL_GROUNDING, items)["tIoU"]
    assert curve[0] == 1.0 and curve[-1] == 0.0


def test_spatial_accuracy_at_half():
    items = [ItemScore(SPATIAL_GROUNDING, {"iou": v}) for v in (0.5, 0.49, 0.9, 0.0)]
    metrics = benchmark_metrics(SPATIAL_GROUNDING, items)
    assert metrics["acc@0.5"] == 0.5 and metrics["miou"] == pytest.approx(1.89 / 4)


def test_tracking_averages_per_sequence_first():
    # Sequence A (2 frames): mean 0.5, success@0.5 1/2, success@0.75 1/2.
    # Sequence B (4 frames): mean 0.7, success@0.5 1, success@0.75 1/2.
    items = [ItemScore(TRACKING, frame_ious=(1.0, 0.0)), ItemScore(TRACKING, frame_ious=(0.6, 0.6, 0.8, 0.8))]
    metrics = benchmark_metrics(TRACKING, items)
    assert metrics["ao"] == pytest.approx(0.6)
    assert metrics["sr@0.5"] == pytest.approx(0.75)
    assert metrics["sr@0.75"] == pytest.approx(0.5)


def test_image_segmentation_giou_and_ciou():
    items = [
        ItemScore(IMAGE_SEGMENTATION, {"iou": 8 / 24, "intersection": 8, "union": 24}),
        ItemScore(IMAGE_SEGMENTATION, {"iou": 1.0, "intersection": 16, "union": 16}),
    ]
    metrics = benchmark_metrics(IMAGE_SEGMENTATION, items)
    assert metrics["giou"] == pytest.approx((1 / 3 + 1) / 2)
    assert metrics["ciou"] == pytest.approx(24 / 40)


def test_video_segmentation_j_and_f_mean():
    items = [ItemScore(VIDEO_SEGMENTATION, {"j": 0.2, "f": 0.6}), ItemScore(VIDEO_SEGMENTATION, {"j": 0.4, "f": 1.0})]
    metrics = benchmark_metrics(VIDEO_SEGMENTATION, items)
    assert metrics["j"] == pytest.approx(0.3) and metrics["f"] == pytest.approx(0.8)
    assert metrics["j&f"] == pytest.approx(0.55)
