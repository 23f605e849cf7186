"""Text-level steps of the OneThinker reward: tag normalisation, format check, answer extraction, JSON.

Every function here is linear in the length of its input. The reference implementation uses regular
expressions with nested lazy quantifiers (``<answer>\\s*(.*?)\\s*</answer>``, ``\\s*(<|>|/)\\s*``) that
backtrack quadratically on adversarial responses (megabytes of spaces, thousands of unclosed tags); the
versions here compute exactly the same results with ``str.find`` and anchored patterns.
"""

from __future__ import annotations

import gc
import json
import re
import threading
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"

# The reference's ``re.sub(r"\s*(<|>|/)\s*", r"\1", text)`` removes every whitespace run directly after or
# directly before a tag character (and retries every position inside a long whitespace run that no tag
# follows: quadratic). Here the text is cut at its tag characters and each piece stripped on the sides that
# touch one -- a few C string operations for a normal response. Texts with very many tag characters use
# two linear substitutions instead: runs after a tag character, then, on the reversed text, runs before one.
_TAG_THEN_WHITESPACE = re.compile(r"([<>/])\s+")
_MAX_PIECES_STRIPPED_IN_PYTHON = 4096
# ``</think>``, optional whitespace, ``<answer>``: the hinge of the required format.
_THINK_THEN_ANSWER = re.compile(r"</think>\s*<answer>")

# Strings longer than this are parsed but not memoised (the cache would pin megabytes per entry).
_JSON_CACHE_MAX_CHARS = 65_536
# Parsing a JSON text this long allocates enough containers to trigger repeated full garbage
# collections, which more than double its cost (a 200,000-frame tracking answer); none of them can free
# anything, so the collector is paused for the parse.
_JSON_PAUSE_GC_CHARS = 1 << 20


def normalise_tags(text: str) -> str:
    """Step 0 of the spec: drop every whitespace run directly before or after ``<``, ``>`` or ``/``."""
    pieces = text.replace("<", "/").replace(">", "/").split("/")
    if len(pieces) > _MAX_PIECES_STRIPPED_IN_PYTHON:
        after_removed = _TAG_THEN_WHITESPACE.sub(r"\1", text)
        return _TAG_THEN_WHITESPACE.sub(r"\1", after_removed[::-1])[::-1]
    last = len(pieces) - 1
    normalised = []
    tag_position = 0  # index in ``text`` of the tag character that follows the current piece
    for index, piece in enumerate(pieces):
        tag_position += len(piece)
        if index:
            piece = piece.lstrip()
        if index < last:
            normalised.append(piece.rstrip())
            normalised.append(text[tag_position])
            tag_position += 1
        else:
            normalised.append(piece)
    return "".join(normalised)


def has_valid_format(response: str) -> bool:
    """Whether ``response`` is ``\\s* <think> ... </think> \\s* <answer> ... </answer> \\s*`` as a whole.

    Equivalent to the reference's ``re.fullmatch(r"\\s*<think>.*?</think>\\s*<answer>.*?</answer>\\s*",
    re.DOTALL)``: the match exists iff the text (whitespace-stripped) starts with ``<think>``, ends with
    ``</answer>``, and the earliest ``</think>\\s*<answer>`` after the opening tag ends no later than the
    start of that final ``</answer>``. (``str.strip`` and ``re``'s ``\\s`` use the same whitespace set.)
    """
    body = response.strip()
    if not (body.startswith(THINK_OPEN) and body.endswith(ANSWER_CLOSE)):
        return False
    hinge = _THINK_THEN_ANSWER.search(body, len(THINK_OPEN))
    return hinge is not None and hinge.end() <= len(body) - len(ANSWER_CLOSE)


def extract_answer(text: str) -> str | None:
    """Stripped content of the first ``<answer>...</answer>`` (shortest match), or None without one.

    Same as the reference's ``re.search(r"<answer>\\s*(.*?)\\s*</answer>", text, re.DOTALL)`` followed by
    ``.strip()``: the leftmost match opens at the first ``<answer>`` and closes at the first ``</answer>``
    after it; if that opening tag has no closing tag after it, no later one has either.
    """
    start = text.find(ANSWER_OPEN)
    if start < 0:
        return None
    content_start = start + len(ANSWER_OPEN)
    end = text.find(ANSWER_CLOSE, content_start)
    if end < 0:
        return None
    return text[content_start:end].strip()


def unwrap_ground_truth(ground_truth: str) -> str:
    """The ground truth's ``<answer>`` content when present and non-empty, else the whole string (unstripped)."""
    return extract_answer(ground_truth) or ground_truth


def parse_number(text: str) -> float | None:
    """``float(text)`` after removing commas, or None when that fails (NaN and infinity parse)."""
    try:
        return float(text.replace(",", ""))
    except (ValueError, OverflowError):
        return None


def load_json(text: str) -> Any:
    """``json.loads(text)``, or None when it fails (malformed, too deep, integers beyond Python's digit limit).

    Results are memoised -- short strings in an LRU cache (a prompt's ground truth is parsed once for its
    whole rollout group), the last large string per thread (an answer is parsed once for structure and
    accuracy) -- so callers must treat the returned object as read-only.
    """
    if len(text) <= _JSON_CACHE_MAX_CHARS:
        return _load_json_cached(text)
    # A large answer is parsed by both the structure and the accuracy scorer of the same item: keep the
    # last large parse of this thread only.
    last = getattr(_last_large_json, "value", None)
    if last is not None and last[0] is text:
        return last[1]
    if len(text) >= _JSON_PAUSE_GC_CHARS:
        with _garbage_collection_paused():
            parsed = _load_json_uncached(text)
    else:
        parsed = _load_json_uncached(text)
    _last_large_json.value = (text, parsed)
    return parsed


@contextmanager
def _garbage_collection_paused():
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _load_json_uncached(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError and the int-digit limit are ValueErrors
        return None


_load_json_cached = lru_cache(maxsize=8192)(_load_json_uncached)
_last_large_json = threading.local()
