"""Text accuracies: OCR (word error rate) and open-ended (ROUGE-1/2/L), bit-identical to the reference.

The reference builds a new ``rouge_score.RougeScorer`` per call, Porter-stems every token again, and fills
an ``m x n`` LCS table; the word error rate also fills a full table. Here the ground-truth side is
prepared once per distinct string, the token of every distinct word is memoised, the LCS length comes
from the bit-parallel algorithm (Hyyro 2004; one big-integer step per prediction token that occurs in
the ground truth), the
word edit distance from bit-parallel Levenshtein (Hyyro 2003), skipped entirely when the length
difference alone already drives the OCR accuracy to 0. Loops over huge inputs check a deadline, so
both metrics stay bounded in-process (pure Python: no C call here can run long).
All arithmetic on the resulting counts follows ``rouge_score`` operation for operation.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

from rouge_score.tokenize import NON_ALPHANUM_RE, VALID_TOKEN_RE

_CACHE_MAX_CHARS = 65_536
# Loops over more items than this check their deadline every this many items (a clock read per item
# would slow ordinary inputs down; this many steps take well under a millisecond).
_DEADLINE_STRIDE = 2048



@lru_cache(maxsize=1)
def _porter_stemmer():
    """The stemmer of rouge_score's ``DefaultTokenizer(use_stemmer=True)``: nltk's ``PorterStemmer()`` in its
    default mode. Imported on first use: nltk takes about a second to import, and most processes that load
    this package (every verl worker imports the plugin) never score an open-ended answer."""
    from nltk.stem import porter

    return porter.PorterStemmer()

_TOKEN_MEMO_MAX_ENTRIES = 1 << 17


class _TokenMemo(dict):
    """Piece -> its ROUGE token, computed once per distinct piece (the Porter stemmer is the cost).

    A piece is a run of ``[a-z0-9]`` (what survives the tokenizer's substitution); its token is the stem
    when the piece is longer than 3 characters, else the piece, and "" when rouge_score's final
    ``VALID_TOKEN_RE`` check would drop it. Cleared when full, so adversarial vocabularies stay bounded.
    """

    def __missing__(self, piece: str) -> str:
        token = _porter_stemmer().stem(piece) if len(piece) > 3 else piece
        if not VALID_TOKEN_RE.match(token):
            token = ""
        if len(self) >= _TOKEN_MEMO_MAX_ENTRIES:
            self.clear()
        self[piece] = token
        return token


_token_of = _TokenMemo().__getitem__


def check_deadline(deadline: float | None) -> None:
    """Raise ``TimeoutError`` once ``time.monotonic()`` has passed ``deadline`` (None: no deadline)."""
    if deadline is not None and time.monotonic() > deadline:
        raise TimeoutError("text metric exceeded its time bound")


def rouge_tokens(text: str, deadline: float | None = None) -> list[str]:
    """``rouge_score``'s tokenisation with Porter stemming: lower-case, split on non-alphanumerics, stem
    tokens longer than 3 characters, keep ``[a-z0-9]+`` tokens. Raises TimeoutError past ``deadline``.

    After ``NON_ALPHANUM_RE`` only ``[a-z0-9]`` and spaces remain, so ``str.split()`` yields exactly the
    non-empty pieces of rouge_score's ``SPACES_RE.split`` (the empty ones fail its validity check).
    """
    pieces = NON_ALPHANUM_RE.sub(" ", text.lower()).split()
    if len(pieces) <= _DEADLINE_STRIDE:
        return [token for token in map(_token_of, pieces) if token]
    tokens = []  # stemming costs ~20 us per distinct long token: a huge answer must be able to stop
    for start in range(0, len(pieces), _DEADLINE_STRIDE):
        check_deadline(deadline)
        tokens.extend(token for token in map(_token_of, pieces[start : start + _DEADLINE_STRIDE]) if token)
    return tokens


@dataclass(frozen=True)
class _RougeReference:
    """Everything ROUGE needs from the reference (ground-truth) side, computed once per string."""

    length: int
    unigrams: tuple  # (token, count) pairs
    bigrams: tuple  # ((token, token), count) pairs
    position_masks: dict  # token -> bit mask of its positions in the reference (for the LCS)


def _prepare_reference(text: str, deadline: float | None = None) -> _RougeReference:
    tokens = rouge_tokens(text, deadline)
    masks: dict[str, int] = {}
    for position, token in enumerate(tokens):
        masks[token] = masks.get(token, 0) | (1 << position)
    unigrams = tuple(Counter(tokens).items())
    bigrams = tuple(Counter(pairwise(tokens)).items())
    return _RougeReference(len(tokens), unigrams, bigrams, masks)


_prepare_reference_cached = lru_cache(maxsize=4096)(_prepare_reference)


def _f_measure(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _ngram_f_measure(reference: tuple, reference_total: int, prediction: Counter, prediction_total: int) -> float:
    """rouge_score's ``_score_ngrams`` F-measure; the totals are the sums of the two Counters' values
    (n-gram counts of token lists: ``len(tokens) - n + 1``, at least 0)."""
    overlap = 0
    predicted_count = prediction.get
    for ngram, count in reference:
        predicted = predicted_count(ngram)
        if predicted:
            overlap += min(count, predicted)
    precision = overlap / max(prediction_total, 1)
    recall = overlap / max(reference_total, 1)
    return _f_measure(precision, recall)


def _lcs_length(reference: _RougeReference, prediction_tokens: list[str], deadline: float | None) -> int:
    """Length of the longest common subsequence, bit-parallel over the reference positions.

    Prediction tokens absent from the reference leave the state unchanged, so only the position masks
    of the others are visited."""
    all_ones = (1 << reference.length) - 1
    state = all_ones
    masks = [mask for mask in map(reference.position_masks.get, prediction_tokens) if mask]
    for start in range(0, len(masks), _DEADLINE_STRIDE):
        if start:
            check_deadline(deadline)
        for match in masks[start : start + _DEADLINE_STRIDE]:
            carry = state & match
            state = ((state + carry) | (state - carry)) & all_ones
    return reference.length - state.bit_count()


def rouge_accuracy(ground_truth: str, answer: str, deadline: float | None = None) -> float:
    """Mean of the ROUGE-1, ROUGE-2 and ROUGE-L F-measures (reference = ground truth, Porter stemming),
    clipped to [0, 1]; equal to ``rouge_score.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)``.
    Raises TimeoutError once ``time.monotonic()`` passes ``deadline``.
    """
    if len(ground_truth) <= _CACHE_MAX_CHARS:
        reference = _prepare_reference_cached(ground_truth)
    else:
        reference = _prepare_reference(ground_truth, deadline)
    prediction_tokens = rouge_tokens(answer, deadline)
    length = len(prediction_tokens)
    rouge1 = _ngram_f_measure(reference.unigrams, reference.length, Counter(prediction_tokens), length)
    rouge2 = _ngram_f_measure(
        reference.bigrams,
        max(reference.length - 1, 0),
        Counter(pairwise(prediction_tokens)),
        max(length - 1, 0),
    )
    if reference.length and prediction_tokens:
        lcs = _lcs_length(reference, prediction_tokens, deadline)
        rouge_l = _f_measure(lcs / length, lcs / reference.length)
    else:
        rouge_l = 0.0
    return max(0.0, min(1.0, (rouge1 + rouge2 + rouge_l) / 3.0))


def _word_edit_distance(reference: list[str], hypothesis: list[str], deadline: float | None = None) -> int:
    """Levenshtein distance between two word lists (unit costs), bit-parallel over the reference words
    (Hyyro 2003): one column of the edit table per hypothesis word, its vertical deltas packed in ints."""
    if not reference:
        return len(hypothesis)
    masks: dict[str, int] = {}
    for position, word in enumerate(reference):
        masks[word] = masks.get(word, 0) | (1 << position)
    all_ones = (1 << len(reference)) - 1
    top_bit = 1 << (len(reference) - 1)
    plus_vertical, minus_vertical = all_ones, 0
    distance = len(reference)
    for index, word in enumerate(hypothesis):
        if index % _DEADLINE_STRIDE == _DEADLINE_STRIDE - 1:  # each step costs O(reference words / 64)
            check_deadline(deadline)
        match = masks.get(word, 0)
        vertical_change = match | minus_vertical
        horizontal_change = (((match & plus_vertical) + plus_vertical) ^ plus_vertical) | match
        plus_horizontal = minus_vertical | (~(horizontal_change | plus_vertical) & all_ones)
        minus_horizontal = plus_vertical & horizontal_change
        if plus_horizontal & top_bit:
            distance += 1
        elif minus_horizontal & top_bit:
            distance -= 1
        # Row 0 of the table grows by one per column, hence the carried-in 1.
        plus_horizontal = ((plus_horizontal << 1) | 1) & all_ones
        minus_horizontal = (minus_horizontal << 1) & all_ones
        plus_vertical = minus_horizontal | (~(vertical_change | plus_horizontal) & all_ones)
        minus_vertical = plus_horizontal & vertical_change
    return distance


def ocr_accuracy(ground_truth: str, answer: str, deadline: float | None = None) -> float:
    """``max(0, min(1, 1 - WER))`` with WER = word-level edit distance / max(1, ground-truth word count).
    Raises TimeoutError once ``time.monotonic()`` passes ``deadline``."""
    reference, hypothesis = ground_truth.split(), answer.split()
    denominator = max(1, len(reference))
    # The edit distance is at least the length difference; once that reaches the denominator the
    # accuracy is exactly 0 and the quadratic table is not needed.
    if abs(len(hypothesis) - len(reference)) >= denominator:
        return 0.0
    return max(0.0, min(1.0, 1.0 - _word_edit_distance(reference, hypothesis, deadline) / denominator))
