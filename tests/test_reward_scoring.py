"""Exactness of the OneThinker reward: hand-computed cases, equivalence with the reference-style
implementation (benchmarks/reward_reference.py) on generated batches, registry, knobs, hardening flags."""

from __future__ import annotations

import json
import math
import random
import re
import string
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest


from reward_reference import reference_score, reference_wer
from reward_samples import TASKS, make_batch, wrap

from onethinker_verl.reward import RewardConfig, compute_score, get_scorer, register_scorer, registered_problem_types  # noqa: E402
from onethinker_verl.reward import parsing, registry, text_metrics  # noqa: E402
from onethinker_verl.reward.math_grading import multiple_choice_correct  # noqa: E402

TOLERANCE = 1e-6
KEYS = ("score", "format", "accuracy", "structure")


def score(response, ground_truth, problem_type, data_type="image", **knobs):
    return compute_score("test", response, ground_truth, {"problem_type": problem_type, "data_type": data_type}, **knobs)


def well_formed(answer: str) -> str:
    return f"<think>reasoning</think><answer>{answer}</answer>"


def assert_close(actual: dict, expected: dict):
    for key in KEYS:
        assert actual[key] == pytest.approx(expected[key], abs=TOLERANCE), (key, actual, expected)


# ------------------------------------------------------------------------------------- hand-computed cases
def test_overall_combines_parts_with_format_weight():
    result = score(well_formed("A"), "A", "multiple choice")
    assert result == {"score": 0.9 * 1 + 0.1 * 1 + 0.5, "format": 1.0, "accuracy": 1.0, "structure": 0.5}
    heavier = score(well_formed("A"), "A", "multiple choice", format_weight=0.5)
    assert heavier["score"] == pytest.approx(0.5 + 0.5 + 0.5)


def test_format_zero_forces_structure_zero_but_keeps_accuracy():
    result = score("The answer is <answer>B</answer>", "B", "multiple choice")
    assert result == {"score": pytest.approx(0.9), "format": 0.0, "accuracy": 1.0, "structure": 0.0}


@pytest.mark.parametrize(
    "response, expected_format",
    [
        ("<think>a</think><answer>b</answer>", 1.0),
        ("  <think>\na\n</think>\n\n<answer>b</answer>\n ", 1.0),
        ("< think >a< / think > <answer > b </ answer>", 1.0),  # step 0 repairs spaced tags
        ("<think>a</think><answer>b</answer><answer>c</answer>", 1.0),  # two answer blocks still pass
        ("<think>a</think>x<answer>b</answer>", 0.0),
        ("<answer>b</answer>", 0.0),
        ("<think>a</think><answer>b</answer>trailing", 0.0),
        ("<think>a</think><answer>b", 0.0),
    ],
)
def test_format_reward(response, expected_format):
    assert score(response, "b", "open-ended")["format"] == expected_format


def test_tag_normalisation_also_rewrites_answers():
    # "1 / 2" becomes "1/2" before extraction (spec step 0): a numerical 0.5 is not parsed from it.
    assert parsing.normalise_tags("x = 1 / 2 < b >") == "x = 1/2<b>"
    assert score(well_formed("1 / 2"), "1/2", "OCR")["accuracy"] == 1.0


def test_ground_truth_unwrapping():
    assert parsing.unwrap_ground_truth("<answer> C </answer>") == "C"
    assert parsing.unwrap_ground_truth("<answer>   </answer>") == "<answer>   </answer>"
    assert parsing.unwrap_ground_truth(" 42 ") == " 42 "


def test_missing_answer_falls_back_to_whole_response_for_accuracy_only():
    result = score("  7  ", "7", "numerical")
    assert (result["accuracy"], result["format"], result["structure"]) == (1.0, 0.0, 0.0)
    result = score("<think>x</think><answer></answer>", '{"time": [0, 1]}', "temporal grounding")
    assert result["structure"] == 0.0  # empty answer: structure sees ""


def test_problem_type_is_case_insensitive_and_unknown_types_score_zero_accuracy():
    assert score(well_formed("hello world"), "hello world", "ocr")["accuracy"] == 1.0
    assert score(well_formed("hello world"), "hello world", "OCR")["accuracy"] == 1.0
    unknown = score(well_formed("x"), "x", "counting")
    assert (unknown["accuracy"], unknown["structure"]) == (0.0, 0.5)


def test_numerical_rounds_to_two_decimals():
    assert score(well_formed("1,234.561"), "1234.56", "numerical")["accuracy"] == 1.0
    assert score(well_formed("1234.57"), "1234.56", "numerical")["accuracy"] == 0.0
    assert score(well_formed("many"), "3", "numerical")["accuracy"] == 0.0


def test_regression_mean_relative_accuracy_in_float32():
    # relative error 0.25: passes theta = 0.50 ... 0.70 (0.25 < 1 - theta); at theta = 0.75 it ties -> 5 of 10
    assert score(well_formed("75"), "100", "regression")["accuracy"] == pytest.approx(0.5)
    # relative error 0.02: passes all thresholds below 0.98, i.e. all ten
    assert score(well_formed("98"), "100", "regression")["accuracy"] == pytest.approx(1.0)
    # relative error 0.34 passes theta = 0.50 ... 0.65 -> 4 of 10, reported as float32(0.4) like the reference
    assert score(well_formed("66"), "100", "regression")["accuracy"] == pytest.approx(0.4000000059604645, abs=1e-12)


def test_regression_thresholds_match_torch():
    import numpy as np
    import torch

    from onethinker_verl.reward.scorers import _REGRESSION_TOLERANCES

    expected = (1 - torch.arange(0.5, 0.95 + 0.025, 0.05, dtype=torch.float32)).numpy()
    assert np.array_equal(_REGRESSION_TOLERANCES, expected)


def test_ocr_word_error_rate():
    # one substitution in four words: WER 1/4
    assert score(well_formed("the red car stops"), "the blue car stops", "OCR")["accuracy"] == pytest.approx(0.75)
    assert score(well_formed("a b c d e f g h"), "a b c", "OCR")["accuracy"] == 0.0


def test_grounding_ious_by_hand():
    assert score(well_formed('{"time": [0, 10]}'), '{"time": [5, 15]}', "temporal grounding")["accuracy"] == pytest.approx(5 / 15)
    box = score(well_formed('{"boxes": [0, 0, 10, 10]}'), '{"boxes": [5, 5, 15, 15]}', "spatial grounding")
    assert box["accuracy"] == pytest.approx(25 / 175)
    gt = json.dumps({"time": [0, 10], "boxes": {"1": [0, 0, 10, 10], "2": [0, 0, 10, 10]}})
    pred = json.dumps({"time": [0, 5], "boxes": {"1": [0, 0, 10, 10], "9": [0, 0, 1, 1]}})
    st = score(well_formed(pred), gt, "spatial-temporal grounding", "video")
    assert st["accuracy"] == pytest.approx(0.5 * 0.5 + 0.5 * 1.0)
    assert st["structure"] == pytest.approx(0.25 + 0.25 * 1 / 2)
    tracking = score(well_formed(json.dumps({"boxes": {"1": [0, 0, 10, 10]}})), gt, "tracking", "video")
    assert tracking["accuracy"] == pytest.approx(0.5)  # frame 2 missing counts 0
    assert tracking["structure"] == pytest.approx(0.25 + 0.125)


def test_segmentation_by_hand():
    gt = {"boxes": [0, 0, 10, 10], "positive_points": [[0, 0], [10, 0], [0, 10]], "negative_points": [[5, 5], [6, 6], [7, 7]]}
    shuffled = dict(gt, positive_points=[[0, 10], [0, 0], [10, 0]])  # same points, another order
    image = score(well_formed(json.dumps(shuffled)), json.dumps(gt), "segmentation", "image")
    assert (image["accuracy"], image["structure"]) == (pytest.approx(1.0), 0.5)
    shifted = dict(gt, negative_points=[[5, 35], [6, 36], [7, 37]])  # every point 30 away: d = 30
    expected_neg = math.exp(-(30**2) / (2 * 50**2))
    assert score(well_formed(json.dumps(shifted)), json.dumps(gt), "segmentation", "image")["accuracy"] == pytest.approx(
        0.5 + 0.25 + 0.25 * expected_neg
    )
    video_gt, video_pred = dict(gt, time=3.0), dict(gt, time=5.0)
    video = score(well_formed(json.dumps(video_pred)), json.dumps(video_gt), "segmentation", "video")
    assert video["accuracy"] == pytest.approx(0.3 + 0.3 * math.exp(-1.0) + 0.2 + 0.2)
    assert score(well_formed(json.dumps(dict(gt, time="5"))), json.dumps(video_gt), "segmentation", "video")["accuracy"] == 0.0
    assert score(well_formed(json.dumps(gt)), json.dumps(gt), "segmentation", "audio")["accuracy"] == 0.0
    # point_sigma is the Gaussian's width
    wide = score(well_formed(json.dumps(shifted)), json.dumps(gt), "segmentation", "image", point_sigma=100.0)
    assert wide["accuracy"] == pytest.approx(0.75 + 0.25 * math.exp(-(30**2) / (2 * 100**2)))


def test_nan_accuracy_of_the_reference_is_reported_as_zero():
    gt = {"boxes": [0, 0, 10, 10], "positive_points": [[0, 0]] * 3, "negative_points": [[1, 1]] * 3, "time": 1.0}
    pred = json.dumps(gt).replace("1.0}", "NaN}")
    result = score(well_formed(pred), json.dumps(gt), "segmentation", "video")
    assert result["accuracy"] == 0.0 and math.isfinite(result["score"])


# ------------------------------------------------------------------------- equivalence with the reference
def _extra_malformed_items():
    rng = random.Random(7)
    cases = []
    for _wrapping in range(len(TASKS)):  # several random wrappings of every answer
        for answer in ("", "null", "[]", "{}", '{"time": "a"}', '{"boxes": {"1": [1, 2, 3]}}', '{"boxes": [1e400, 0, 1, 1]}',
                       '{"time": [NaN, 1]}', '{"boxes": {"1": [true, 0, 1, 1]}}', "1" * 5000, "\u00e9\u4e2d < / >", "{" * 50):
            cases.append((wrap(rng, answer, 20), rng.choice(('{"time": [1, 2], "boxes": {"1": [0, 0, 5, 5]}}', "A", "3.5"))))
    return cases


def test_fast_scores_equal_reference_on_generated_batches():
    batch = make_batch(groups_per_task=12, seed=11, think_words=60)
    items = [(item.response, item.ground_truth, item.problem_type, item.data_type) for item in batch]
    for response, ground_truth in _extra_malformed_items():
        for problem_type, data_type in TASKS:
            items.append((response, ground_truth, problem_type.upper() if len(items) % 2 else problem_type, data_type))
    mismatches = []
    for response, ground_truth, problem_type, data_type in items:
        fast = score(response, ground_truth, problem_type, data_type)
        expected = reference_score(response, ground_truth, problem_type, data_type)
        if any(abs(fast[key] - expected[key]) > TOLERANCE for key in KEYS):
            mismatches.append((problem_type, response[-120:], ground_truth, fast, expected))
    assert len(items) > 2500
    assert mismatches == []


def test_text_steps_equal_reference_regexes_on_random_strings():
    rng = random.Random(3)
    alphabet = [" ", "\n", "\t", "\u00a0", "<", ">", "/", "a", "<think>", "</think>", "<answer>", "</answer>", " < / answer > "]
    format_re = re.compile(r"\s*<think>.*?</think>\s*<answer>.*?</answer>\s*", re.DOTALL)
    answer_re = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 25)))
        assert parsing.normalise_tags(text) == re.sub(r"\s*(<|>|/)\s*", r"\1", text)
        assert parsing.has_valid_format(text) == bool(format_re.fullmatch(text))
        match = answer_re.search(text)
        assert parsing.extract_answer(text) == (match.group(1).strip() if match else None)
    many_tags = "a < b > c / " * 5000  # beyond the per-piece path: the regex fallback
    assert parsing.normalise_tags(many_tags) == re.sub(r"\s*(<|>|/)\s*", r"\1", many_tags)


def test_text_metrics_equal_rouge_score_and_full_table_wer():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    rng = random.Random(5)
    vocabulary = ["running", "runs", "ran", "cats", "cat", "the", "a", "Dog!", "dogs", "42", "x-ray", "é", "jumping"]
    for _ in range(1500):
        gt = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 30)))
        answer = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 40)))
        scores = scorer.score(gt, answer)
        expected = max(0.0, min(1.0, sum(scores[key].fmeasure for key in ("rouge1", "rouge2", "rougeL")) / 3.0))
        assert text_metrics.rouge_accuracy(gt, answer) == pytest.approx(expected, abs=1e-12)
        assert text_metrics.ocr_accuracy(gt, answer) == pytest.approx(max(0.0, min(1.0, 1.0 - reference_wer(gt, answer))), abs=1e-12)


def test_rouge_tokens_equal_rouge_score_tokenizer_on_varied_text():
    """The memoised piece -> token map and ``str.split`` reproduce rouge_score's tokenizer exactly."""
    from rouge_score import rouge_scorer

    tokenizer = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)._tokenizer
    rng = random.Random(11)
    pieces = ["Running", "generously", "ies", "sses", "cats", "ÉTÉ", "İstanbul", "x-ray", "a1b2", "1234", "the",
              "agreed", "feed", "hopping", "relational", "ﬁnal", "\u00a0", "\t", "--", "...", "caresses", "ponies"]
    for _ in range(2000):
        text = rng.choice(["", " ", "\n"]).join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        assert text_metrics.rouge_tokens(text) == tokenizer.tokenize(text)


def test_integer_math_answer_forms_parse_like_the_integer():
    """``\\boxed{N}`` and ``x = N`` are decided in-process as N: math_verify parses them to exactly N's parse."""
    import math_verify
    from sympy import srepr

    from onethinker_verl.reward.math_grading import _parsed_integer

    def parsed(text):
        return [(type(part), part if isinstance(part, str) else srepr(part)) for part in math_verify.parse(text)]

    rng = random.Random(13)
    numbers = [str(n) for n in range(-30, 31)] + [str(rng.randint(-(10**15) + 1, 10**15 - 1)) for _ in range(60)]
    for number in numbers:
        letter = rng.choice(string.ascii_letters)
        forms = [f"\\boxed{{{number}}}", f"{letter}={number}", f"{letter} = {number}", f"{letter}= {number}"]
        for form in forms:
            assert _parsed_integer(form) == number
            assert parsed(form) == parsed(number), form
    for other in ["\\boxed{01}", "x = 1.0", "xy = 3", "x == 3", "\\boxed{-0}", "x = -0", "\\boxed{ 3}", "x =  3"]:
        assert _parsed_integer(other) is None


def test_no_lowercase_letter_names_a_sympy_object():
    """The multiple-choice letter shortcut relies on sympy parsing each letter as its own Symbol."""
    import sympy
    from mathruler.grader import _sympy_parse

    assert all(_sympy_parse(letter) == sympy.Symbol(letter) for letter in string.ascii_lowercase)


def test_multiple_choice_shortcuts_equal_grade_answer():
    from mathruler.grader import grade_answer

    rng = random.Random(9)
    forms = ["{}", "({})", "(({}))", "{})", "({}", "{}.", "[{}]", "{} cat", "Option {}", " {} ", "{},{}", "-{}"]
    letters = "ABCDEabe"
    pairs = {("12", "12"), ("012", "12"), ("-3", "3"), ("1,000", "1000"), ("(1,2)", "(1,2)"), ("(a,b)", "(a, c)")}
    while len(pairs) < 160:
        pairs.add((rng.choice(forms).format(rng.choice(letters), rng.choice(letters)), rng.choice(letters)))
    for given, truth in sorted(pairs):
        assert multiple_choice_correct(given, truth, 30.0) == grade_answer(given.strip(), truth.strip()), (given, truth)


# ----------------------------------------------------------------------------------------- registry, API
def test_register_scorer_adds_and_replaces_problem_types():
    original = get_scorer("ocr")

    @register_scorer("Counting")
    def counting_accuracy(answer, ground_truth, data_type, config):
        return 1.0 if answer == ground_truth else 0.0

    def never_valid(answer, ground_truth, data_type, config):
        return 0.0

    try:
        assert "counting" in registered_problem_types()
        assert score(well_formed("3"), "3", "COUNTING")["accuracy"] == 1.0
        register_scorer("OCR", structure=never_valid)(counting_accuracy)
        replaced = score(well_formed("a b"), "a c", "ocr")
        assert (replaced["accuracy"], replaced["structure"]) == (0.0, 0.0)
    finally:
        registry._SCORERS.pop("counting", None)
        registry._SCORERS["ocr"] = original


def test_unknown_knob_raises_type_error_naming_it():
    with pytest.raises(TypeError, match="format_wieght"):
        score(well_formed("A"), "A", "multiple choice", format_wieght=0.2)


def test_problem_and_data_type_as_keyword_arguments():
    gt = json.dumps({"boxes": [0, 0, 10, 10], "positive_points": [[0, 0]] * 3, "negative_points": [[1, 1]] * 3})
    by_kwargs = compute_score("s", well_formed(gt), gt, None, problem_type="Segmentation", data_type="IMAGE")
    assert by_kwargs["accuracy"] == pytest.approx(1.0)
    overridden = compute_score("s", well_formed(gt), gt, {"problem_type": "math", "data_type": "image"}, problem_type="segmentation")
    assert overridden["accuracy"] == pytest.approx(1.0)
    assert RewardConfig().format_weight == 0.1 and RewardConfig().point_sigma == 50.0


def test_scores_are_identical_from_worker_threads():
    batch = [item for item in make_batch(groups_per_task=2, seed=4, think_words=30) if item.problem_type in ("math", "multiple choice")]
    batch += [make_batch(1, seed=1)[0]]
    expected = [reference_score(i.response, i.ground_truth, i.problem_type, i.data_type) for i in batch]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda i: score(i.response, i.ground_truth, i.problem_type, i.data_type), batch))
    assert threading.current_thread() is threading.main_thread()
    for fast, ref in zip(results, expected):
        assert_close(fast, ref)


# ------------------------------------------------------------------------------------------ hardening flags
def test_strict_st_miou_charges_padded_frames():
    gt = json.dumps({"time": [0, 10], "boxes": {"1": [0, 0, 10, 10]}})
    padded = json.dumps({"time": [0, 10], "boxes": {"1": [0, 0, 10, 10], **{str(k): [0, 0, 1, 1] for k in range(2, 10)}}})
    # The reference hole: nine frames predicted, one right, eight invented -- full marks.
    assert score(well_formed(padded), gt, "spatial-temporal grounding", "video")["accuracy"] == pytest.approx(1.0)
    strict = score(well_formed(padded), gt, "spatial-temporal grounding", "video", strict_st_miou=True)
    assert strict["accuracy"] == pytest.approx(0.5 * 1.0 + 0.5 * (1.0 / 9))


def test_reject_nonfinite_closes_nan_and_infinity_holes():
    # Reference hole: NaN/Infinity coordinates pass the shape checks and earn the structure bonus.
    nan_box = well_formed('{"boxes": [NaN, 0, Infinity, 10]}')
    assert score(nan_box, '{"boxes": [0, 0, 10, 10]}', "spatial grounding")["structure"] == 0.5
    assert score(nan_box, '{"boxes": [0, 0, 10, 10]}', "spatial grounding", reject_nonfinite=True)["structure"] == 0.0
    # ... and in numeric lists used for accuracy: an infinite interval is "numeric" by default.
    infinite = well_formed('{"time": [-Infinity, Infinity]}')
    assert score(infinite, '{"time": [0, 10]}', "temporal grounding")["structure"] == 0.5
    assert score(infinite, '{"time": [0, 10]}', "temporal grounding", reject_nonfinite=True)["structure"] == 0.0
    seg = {"boxes": [0, 0, 10, 10], "positive_points": [[0, 0]] * 3, "negative_points": [[1, 1]] * 3, "time": 1.0}
    nan_time = well_formed(json.dumps(seg).replace("1.0}", "NaN}"))
    assert score(nan_time, json.dumps(seg), "segmentation", "video")["structure"] == 0.5
    assert score(nan_time, json.dumps(seg), "segmentation", "video", reject_nonfinite=True)["structure"] == 0.0


def test_compute_score_accepts_what_verls_naive_manager_passes_with_a_reward_model():
    """verl's managers add reward_router_address / reward_model_tokenizer when a reward model is on."""
    result = compute_score(
        data_source="x",
        solution_str="<think>t</think><answer>B</answer>",
        ground_truth="B",
        extra_info={"problem_type": "multiple choice", "data_type": "image"},
        reward_router_address="127.0.0.1:1",
        reward_model_tokenizer=None,
    )
    assert result["score"] == pytest.approx(1.5)
