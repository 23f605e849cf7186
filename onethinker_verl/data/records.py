"""Streaming readers for JSON-array and JSON-Lines files.

Corpus files hold hundreds of thousands of rows, so neither format is ever parsed whole: a JSON array is cut
into its top-level elements by a small scanner that only tracks nesting and strings (the C regex engine skips
everything else), and each element is parsed on its own. A malformed element therefore costs one row, not
the file.
"""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_CHUNK_CHARS = 1 << 20
# the characters that change nesting, plus the string delimiter; everything else is skipped in C
_STRUCTURAL = re.compile(r'[\[\]{}"]')
_STRING_BODY = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_SEPARATOR = re.compile(r"[\s,]*")
_SCALAR_END = re.compile(r"[,\]\s]")


@dataclass
class Record:
    """One input row: its 1-based position (array element number or JSONL line number), the parsed value
    or, when it could not be parsed, ``None`` and the parser's message."""

    position: int
    value: object = None
    error: str | None = None


def detect_format(path: str | Path) -> str:
    """``"array"`` when the first non-blank character is ``[``, else ``"jsonl"``."""
    with open(path, encoding="utf-8-sig") as handle:
        while True:
            chunk = handle.read(4096)
            if not chunk:
                return "jsonl"
            stripped = chunk.lstrip()
            if stripped:
                return "array" if stripped[0] == "[" else "jsonl"


def iter_records(path: str | Path) -> Iterator[Record]:
    """Every row of a JSON array or JSON Lines file, in file order."""
    if detect_format(path) == "array":
        yield from _iter_array(path)
    else:
        yield from _iter_lines(path)


def _parse(position: int, text: str) -> Record:
    try:
        return Record(position, json.loads(text))
    except json.JSONDecodeError as exc:
        return Record(position, error=f"{exc.msg} (column {exc.colno})")


def _iter_lines(path) -> Iterator[Record]:
    with open(path, encoding="utf-8-sig") as handle:
        for line_number, line in enumerate(handle, start=1):
            if line.strip():
                yield _parse(line_number, line)


def _iter_array(path) -> Iterator[Record]:
    with open(path, encoding="utf-8-sig") as handle:
        scanner = _ArrayScanner(handle)
        position = 0
        while True:
            if not scanner.skip_to_next_element():
                return  # closing bracket (or end of file after a complete element)
            position += 1
            text = scanner.take_element()
            if text is None:
                yield Record(position, error="the file ends inside this element (truncated file?)")
                return
            yield _parse(position, text)


class _ArrayScanner:
    """Cuts the top-level elements out of a JSON array read chunk by chunk."""

    def __init__(self, handle):
        self._handle = handle
        self._buffer = ""
        self._cursor = 0
        self._at_eof = False
        while "[" not in self._buffer:
            if not self._read_more():
                raise ValueError(f"{handle.name}: expected a JSON array, found no '['")
        self._cursor = self._buffer.index("[") + 1

    def _read_more(self) -> bool:
        if self._at_eof:
            return False
        chunk = self._handle.read(_CHUNK_CHARS)
        if not chunk:
            self._at_eof = True
            return False
        # drop what has been consumed so the buffer holds about one chunk plus the current element
        self._buffer = self._buffer[self._cursor :] + chunk
        self._cursor = 0
        return True

    def skip_to_next_element(self) -> bool:
        """Move to the first character of the next element; False at the closing bracket or end of file."""
        while True:
            self._cursor = _SEPARATOR.match(self._buffer, self._cursor).end()
            if self._cursor < len(self._buffer):
                return self._buffer[self._cursor] != "]"
            if not self._read_more():
                return False

    def take_element(self) -> str | None:
        """The text of the element at the cursor, or None when the file ends inside it."""
        start = self._cursor
        scan = start
        depth = 0
        scalar = self._buffer[start] not in '[{"'
        while True:
            end = self._find_end(start, scan, depth, scalar)
            if isinstance(end, int):
                self._cursor = end
                return self._buffer[start:end]
            scan, depth = end
            # keep the element's start at the buffer's beginning across the refill
            self._cursor = start
            if not self._read_more():
                return None
            scan -= start
            start = 0

    def _find_end(self, start: int, scan: int, depth: int, scalar: bool):
        """End offset of the element, or ``(resume_offset, depth)`` when the buffer ends first."""
        buffer = self._buffer
        if scalar:
            match = _SCALAR_END.search(buffer, scan)
            return match.start() if match else (len(buffer), 0)
        match = _STRUCTURAL.search(buffer, scan)
        while match:
            char = match.group()
            if char == '"':
                string = _STRING_BODY.match(buffer, match.start())
                if string is None:
                    return (match.start(), depth)  # the string goes on past the buffer
                scan = string.end()
                if depth == 0:
                    return scan  # the element is a bare string
            else:
                depth += 1 if char in "[{" else -1
                scan = match.end()
                if depth == 0:
                    return scan
            match = _STRUCTURAL.search(buffer, scan)
        return (len(buffer), depth)
