"""A video decoder's failure in the decoder's own words, and its console noise kept out of the console.

Two things hide why a video does not decode:

* decord (through FFmpeg's ``av_log``) writes its reasons -- ``moov atom not found``, ``Invalid data found
  when processing input`` -- from C straight to file descriptor 2, and raises only ``Error reading <path>...``;
* ``qwen_vl_utils.fetch_video`` (``vision_process.fetch_video``) catches the chosen reader's exception, logs
  it as a warning and retries with torchvision, so the exception that reaches the caller is the fallback's
  (with recent torchvision: ``module 'torchvision.io' has no attribute 'read_video'``).

:func:`captured_stderr` redirects file descriptor 2 into a temporary file around a decode call, so that
output becomes part of the reason instead of console noise. :func:`fetch_video_explained` wraps
``fetch_video``: on failure it raises :class:`VideoDecodeFailed` whose message starts with the chosen reader's
reason (its exception and what it wrote to stderr), the fallback's failure second.

File descriptor 2 belongs to the whole process: while a capture is on, any thread's stderr goes into it. The
captures are therefore short (one file) and meant for the offline tools (``data_prep/``) and for probes of a
file that already failed, not for the decoding path of a training run.
"""

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator

logger = logging.getLogger(__name__)

_capture_lock = threading.RLock()
# FFmpeg's "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d1c0] " and decord's "[05:38:10] /src/video/video_reader.cc:83: "
_LINE_PREFIX = re.compile(r"^(\[[^\]]* @ 0x[0-9a-fA-F]+\]\s*|\[\d\d:\d\d:\d\d\]\s*\S+:\d+:\s*)+")
# qwen_vl_utils' warning when the chosen reader fails: "video_reader_backend decord error, use torchvision as
# default, msg: <the reader's exception>"
_READER_FAILED = re.compile(r"video_reader_backend (?P<reader>\S+) error, use (?P<fallback>\S+) as default, msg: ")


class CapturedOutput:
    """What a :func:`captured_stderr` block wrote to file descriptor 2 (set when the block ends)."""

    text: str = ""

    @property
    def messages(self) -> str:
        """The captured lines without FFmpeg's / decord's source prefixes, repeats dropped, joined by ``; ``."""
        seen: dict[str, None] = {}
        for line in self.text.splitlines():
            line = _LINE_PREFIX.sub("", line).strip()
            if line:
                seen.setdefault(line, None)
        return "; ".join(seen)


@contextlib.contextmanager
def captured_stderr() -> Iterator[CapturedOutput]:
    """Send everything written to file descriptor 2 (C libraries included) to a buffer for the block."""
    captured = CapturedOutput()
    with _capture_lock, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", errors="replace")


def with_output(reason: str, captured: CapturedOutput) -> str:
    """``reason`` followed by what the decoder printed, when it printed anything."""
    printed = captured.messages
    return f"{reason} (decoder output: {printed})" if printed else reason


class VideoDecodeFailed(RuntimeError):
    """A video the chosen reader (and qwen_vl_utils' fallback) could not read; the message is the reason."""


class _ReaderFailures(logging.Filter):
    """Takes qwen_vl_utils' "reader failed, falling back" warnings of this thread off the log, keeping them."""

    def __init__(self):
        super().__init__()
        self.thread = threading.get_ident()
        self.failures: list[tuple[str, str, str]] = []  # (reader, fallback, the reader's exception)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self.thread:
            return True
        found = _READER_FAILED.match(record.getMessage())
        if found is None:
            return True
        self.failures.append((found["reader"], found["fallback"], record.getMessage()[found.end():]))
        return False


def fetch_video_explained(item: dict, **kwargs):
    """``qwen_vl_utils.fetch_video(item, **kwargs)`` with its stderr captured; a failure raises
    :class:`VideoDecodeFailed` reading ``<reader>: <reason> (decoder output: ...)`` and, when qwen_vl_utils
    fell back to another reader, ``; fallback <reader>: <its failure>``. A success read by the fallback is
    logged at WARNING with the chosen reader's reason."""
    from qwen_vl_utils import fetch_video, vision_process

    chosen = vision_process.get_video_reader_backend()  # outside the capture: it prints its choice once
    failures = _ReaderFailures()
    vision_process.logger.addFilter(failures)
    try:
        with captured_stderr() as output:
            try:
                result = fetch_video(item, **kwargs)
                error = None
            except Exception as raised:  # every reader failure is reported through VideoDecodeFailed
                result, error = None, raised
    finally:
        vision_process.logger.removeFilter(failures)
    if error is None:
        for reader, fallback, reason in failures.failures:
            logger.warning("%s: %s could not read it (%s); read with %s instead",
                           item.get("video"), reader, with_output(reason, output), fallback)
        return result
    final = f"{type(error).__name__}: {error}"
    if not failures.failures:  # the chosen reader's own failure reached us
        raise VideoDecodeFailed(f"{chosen}: {with_output(final, output)}") from error
    reader, fallback, reason = failures.failures[0]
    raise VideoDecodeFailed(f"{reader}: {with_output(reason, output)}; fallback {fallback}: {final}") from error
