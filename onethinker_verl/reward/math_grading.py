"""Answer equivalence for multiple-choice and math items: exact fast paths, memoisation, bounded slow path.

Reference behaviour (spec):
- multiple choice: ``mathruler.grader.grade_answer(answer.strip(), gt.strip())``;
- math: ``math_verify.verify(math_verify.parse(gt), math_verify.parse(answer))``, falling back to
  ``grade_answer(answer, gt)`` if math_verify raises.

Both reach sympy, which costs milliseconds per call (``grade_answer("A", "B")`` simplifies ``a - b``) and
can hang on adversarial input. So:
1. results are memoised on the exact ``(answer, ground truth)`` strings (the 8 responses of a group
   repeat themselves);
2. ``grade_answer`` is re-traced here step for step with mathruler's own helpers, except that the sympy
   comparison is decided directly where its outcome is certain: two single letters (optionally wrapped
   in balanced parentheses) -- sympy parses such a letter as that ``Symbol`` (no lower-case letter names
   a sympy object; the tests check all 26), so ``simplify(a - b) == 0`` iff the letters are equal; two
   canonical integers (no leading zeros: sympy rejects "01"); expressions mathruler refuses to evaluate;
   expressions with unbalanced round brackets, which fail to parse;
3. math answers that are both canonical integers compare by string (math_verify parses them to
   ``Integer``\\s, equal iff the digits are); so do ``\\boxed{N}`` and ``x = N`` (one ASCII letter,
   optional spaces around ``=``) around a canonical integer N, whose ``math_verify.parse`` result is
   exactly that of N (only its boxed pattern, resp. its number pattern after a space or ``=``, matches;
   the tests compare the parses);
4. everything else runs in :class:`~onethinker_verl.reward.timeouts.BoundedWorker` under
   ``slow_path_timeout_s``; running past it scores 0, as the reference's own math_verify timeout does.
"""

from __future__ import annotations

import re
from functools import lru_cache

from mathruler import grader as mathruler_grader
from mathruler.math_normalize import normalize_answer

from onethinker_verl.reward.timeouts import BoundedWorker, WorkerTimeout

_MEMO_MAX_CHARS = 4096
# Inputs this long, or with LaTeX (pylatexenc parsing), are graded entirely in the worker.
_INLINE_GRADE_MAX_CHARS = 256

_WRAPPED_LETTER = re.compile(r"(\(*)([a-z])(\)*)")
_CANONICAL_INTEGER = re.compile(r"0|-?[1-9][0-9]{0,14}")
_INTEGER_IN_ANSWER_FORM = re.compile(r"\\boxed\{(0|-?[1-9][0-9]{0,14})\}|[A-Za-z] ?= ?(0|-?[1-9][0-9]{0,14})")

SLOW_PATH_WORKER = BoundedWorker(
    preload=(__name__,),
    # math_verify and mathruler import more on first use; do it before the worker reports ready.
    warmup=((f"{__name__}:math_equivalent_unbounded", ("\\frac{1}{2}", "0.5")), (f"{__name__}:grade_answer", ("a", "b"))),
)


def grade_answer(given: str, ground_truth: str) -> bool:
    """``mathruler.grader.grade_answer`` itself, importable by path for the worker."""
    return mathruler_grader.grade_answer(given, ground_truth)


def math_equivalent_unbounded(ground_truth: str, answer: str) -> bool:
    """The reference math check: math_verify, falling back to mathruler if math_verify raises.

    Unbounded (math_verify's signal timeout only works in a main thread): call through the worker.
    """
    import math_verify  # heavy import (sympy, latex2sympy); only the worker needs it

    try:
        return bool(math_verify.verify(_math_verify_parse(ground_truth), _math_verify_parse(answer)))
    except Exception:  # the reference falls back on any math_verify failure
        return mathruler_grader.grade_answer(answer, ground_truth)


@lru_cache(maxsize=4096)
def _math_verify_parse(text: str):
    """``math_verify.parse`` memoised per string (worker side): a group's ground truth and its repeated
    answers are parsed once. Its ANTLR LaTeX parser costs milliseconds per string; ``verify`` does not
    modify the parsed lists it is given."""
    import math_verify

    return math_verify.parse(text)


def _bounded(function_name: str, args: tuple, timeout_s: float) -> bool:
    try:
        return bool(SLOW_PATH_WORKER.call(f"{__name__}:{function_name}", args, timeout_s))
    except WorkerTimeout:
        return False


def _letters_or_integers_equal(gt_elem: str, given_elem: str) -> bool | None:
    """Decide ``are_equal_under_sympy`` without sympy for wrapped single letters or plain integers.

    Returns None when the pair is of neither kind.
    """
    gt_letter, given_letter = _WRAPPED_LETTER.fullmatch(gt_elem), _WRAPPED_LETTER.fullmatch(given_elem)
    if (
        gt_letter
        and given_letter
        and len(gt_letter[1]) == len(gt_letter[3])
        and len(given_letter[1]) == len(given_letter[3])
    ):
        return gt_letter[2] == given_letter[2]
    if _CANONICAL_INTEGER.fullmatch(gt_elem) and _CANONICAL_INTEGER.fullmatch(given_elem):
        return int(gt_elem) == int(given_elem)
    return None


def _grade_answer_traced(given: str, ground_truth: str, timeout_s: float) -> bool:
    """``mathruler.grader.grade_answer`` step for step, with the sympy comparison short-cut or bounded."""
    if normalize_answer(ground_truth) == normalize_answer(given):
        return True
    gt_normalized = mathruler_grader._normalize(ground_truth)
    given_normalized = mathruler_grader._normalize(given)
    if gt_normalized == given_normalized:
        return True
    if len(given_normalized) == 0:
        return False
    gt_elems = mathruler_grader.split_tuple(gt_normalized)
    given_elems = mathruler_grader.split_tuple(given_normalized)
    if len(gt_elems) > 1 and (gt_normalized[0] != given_normalized[0] or gt_normalized[-1] != given_normalized[-1]):
        return False
    if len(gt_elems) != len(given_elems):
        return False
    for gt_elem, given_elem in zip(gt_elems, given_elems):
        if mathruler_grader._is_frac(gt_elem) and mathruler_grader._is_frac(given_elem):
            is_correct = gt_elem == given_elem
        elif mathruler_grader._str_is_int(gt_elem) != mathruler_grader._str_is_int(given_elem):
            is_correct = False
        else:
            is_correct = _letters_or_integers_equal(gt_elem, given_elem)
            if is_correct is None:
                is_correct = _sympy_difference_is_zero(gt_elem, given_elem, timeout_s)
        if not is_correct:
            return False
    return True


def _sympy_difference_is_zero(gt_elem: str, given_elem: str, timeout_s: float) -> bool:
    """mathruler's ``are_equal_under_sympy``; the cases it refuses or cannot parse are decided in-process.

    It returns False without sympy when ``should_allow_eval`` refuses the expression (e.g. more than two
    distinct letters: any answer written in words), and False when parsing raises, which an unbalanced
    count of round brackets always does (no quotes or comments can hide a bracket from Python's parser).
    """
    expression = f"({gt_elem})-({given_elem})"
    if not mathruler_grader.should_allow_eval(expression):
        return False
    if expression.count("(") != expression.count(")") and not any(char in expression for char in "'\"#"):
        return False
    return _bounded("are_equal_under_sympy", (gt_elem, given_elem), timeout_s)


def are_equal_under_sympy(gt_elem: str, given_elem: str) -> bool:
    """mathruler's sympy comparison, importable by path for the worker."""
    return mathruler_grader.are_equal_under_sympy(gt_elem, given_elem)


def _grade_answer_bounded(given: str, ground_truth: str, timeout_s: float) -> bool:
    if max(len(given), len(ground_truth)) > _INLINE_GRADE_MAX_CHARS or "\\" in given or "\\" in ground_truth:
        return _bounded("grade_answer", (given, ground_truth), timeout_s)
    return _grade_answer_traced(given, ground_truth, timeout_s)


def _parsed_integer(text: str) -> str | None:
    """The canonical integer N when ``math_verify.parse(text)`` is exactly ``parse(N)``: ``text`` is N,
    ``\\boxed{N}`` or ``x = N`` (see the module docstring); else None."""
    if _CANONICAL_INTEGER.fullmatch(text):
        return text
    form = _INTEGER_IN_ANSWER_FORM.fullmatch(text)
    return None if form is None else form[1] or form[2]


def _math_equivalent_bounded(ground_truth: str, answer: str, timeout_s: float) -> bool:
    truth_integer = _parsed_integer(ground_truth)
    if truth_integer is not None:
        answer_integer = _parsed_integer(answer)
        if answer_integer is not None:
            return truth_integer == answer_integer
    return _bounded("math_equivalent_unbounded", (ground_truth, answer), timeout_s)


_grade_answer_memo = lru_cache(maxsize=1 << 16)(_grade_answer_bounded)
_math_equivalent_memo = lru_cache(maxsize=1 << 16)(_math_equivalent_bounded)


def multiple_choice_correct(answer: str, ground_truth: str, timeout_s: float) -> bool:
    """``grade_answer(answer.strip(), ground_truth.strip())``, fast and bounded by ``timeout_s`` seconds."""
    given, truth = answer.strip(), ground_truth.strip()
    if len(given) <= _MEMO_MAX_CHARS and len(truth) <= _MEMO_MAX_CHARS:
        return _grade_answer_memo(given, truth, timeout_s)
    return _grade_answer_bounded(given, truth, timeout_s)


def math_correct(answer: str, ground_truth: str, timeout_s: float) -> bool:
    """The reference math check (math_verify, mathruler fallback), fast and bounded by ``timeout_s`` seconds."""
    if len(answer) <= _MEMO_MAX_CHARS and len(ground_truth) <= _MEMO_MAX_CHARS:
        return _math_equivalent_memo(ground_truth, answer, timeout_s)
    return _math_equivalent_bounded(ground_truth, answer, timeout_s)
