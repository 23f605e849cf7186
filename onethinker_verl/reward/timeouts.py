"""A killable worker process that bounds the wall-clock time of calls that cannot bound themselves.

sympy (behind math_verify and mathruler) can run for ever, or inside one C call (``10**10**10``), on
adversarial answers. math_verify's own timeout uses ``signal.alarm``, which only works in the main thread
of the main interpreter, while verl scores from worker threads and async executors. A call routed here
runs in a separate process -- in that process's main thread, so math_verify's own timeouts behave exactly
as in the reference -- and is abandoned, and the process killed and replaced, when it runs past its
bound. Results on ordinary inputs are identical to calling the function in-process.

The worker is a plain ``python -c`` subprocess (not ``multiprocessing``): it needs no ``__main__``
guard in the caller and also works from daemonic processes, which may not fork ``multiprocessing``
children. Requests are length-prefixed pickles over its stdin/stdout.
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("!Q")
_STARTUP_TIMEOUT_S = 120.0


class WorkerTimeout(TimeoutError):
    """The worker did not answer within the bound; it has been killed."""


class WorkerError(RuntimeError):
    """The function raised inside the worker (message carries the remote exception's repr)."""


class BoundedWorker:
    """A lazily started worker process; :meth:`call` runs ``module:function(*args)`` in it with a bound.

    Thread-safe: concurrent callers are serialised (one request in flight). ``preload`` names modules the
    worker imports, and ``warmup`` calls it makes, before it reports ready, so that import time (about
    2 s for sympy and math_verify) never counts against a call's bound. Once a call has had to be killed,
    a standby worker is kept ready in the background, so the next call does not wait for those imports.
    """

    def __init__(self, preload: tuple[str, ...] = (), warmup: tuple[tuple[str, tuple], ...] = ()):
        self._preload = preload
        self._warmup = warmup
        self._lock = threading.Lock()  # one request in flight; guards _process
        self._standby_lock = threading.Lock()  # guards _standby and _standby_starting
        self._process: subprocess.Popen | None = None
        self._standby: subprocess.Popen | None = None
        self._standby_starting = False

    def call(self, function_path: str, args: tuple, timeout_s: float) -> Any:
        """Return ``function(*args)`` computed in the worker; raise WorkerTimeout or WorkerError."""
        with self._lock:
            process = self._active_process()
            _write_message(process.stdin, (function_path, args))
            try:
                status, value = _read_message(process.stdout, timeout_s)
            except (WorkerTimeout, EOFError, OSError) as exc:
                _stop(process)
                self._process = None
                self._prepare_standby_in_background()
                if isinstance(exc, WorkerTimeout):
                    logger.warning("reward worker: %s exceeded %.1f s; worker replaced", function_path, timeout_s)
                    raise
                raise WorkerError(f"reward worker died during {function_path}: {exc!r}") from exc
        if status == "ok":
            return value
        raise WorkerError(value)

    def close(self) -> None:
        """Stop the worker processes, if running."""
        with self._lock:
            if self._process is not None:
                _stop(self._process)
                self._process = None
        with self._standby_lock:
            if self._standby is not None:
                _stop(self._standby)
                self._standby = None

    def _active_process(self) -> subprocess.Popen:
        if self._process is not None and self._process.poll() is None:
            return self._process
        with self._standby_lock:
            standby, self._standby = self._standby, None
        self._process = standby if standby is not None and standby.poll() is None else self._spawn()
        return self._process

    def start_in_background(self) -> None:
        """Start the worker's imports now, in the background, so the first bounded call does not wait."""
        with self._lock:
            running = self._process is not None and self._process.poll() is None
        if not running:
            self._prepare_standby_in_background()

    def _prepare_standby_in_background(self) -> None:
        with self._standby_lock:
            if self._standby is not None or self._standby_starting:
                return
            self._standby_starting = True
        threading.Thread(target=self._prepare_standby, name="reward-worker-standby", daemon=True).start()

    def _prepare_standby(self) -> None:
        try:
            process = self._spawn()
        except WorkerError:  # the next call spawns its own worker and reports the failure
            logger.warning("reward worker: standby failed to start", exc_info=True)
            process = None
        with self._standby_lock:
            self._standby_starting = False
            if process is not None and self._standby is None:
                self._standby = process
            elif process is not None:
                _stop(process)

    def _spawn(self) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-c", f"from {__name__} import _serve; _serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,  # the worker's logging goes to ours
        )
        try:
            _write_message(process.stdin, (self._preload, self._warmup))
            status, value = _read_message(process.stdout, _STARTUP_TIMEOUT_S)
        except (WorkerTimeout, EOFError, OSError) as exc:
            status, value = "error", repr(exc)
        if status != "ready":
            _stop(process)
            # Loud: every item needing the worker scores 0 until this is fixed.
            logger.error("reward worker failed to start: %s", value)
            raise WorkerError(f"reward worker failed to start: {value}")
        return process


def _stop(process: subprocess.Popen) -> None:
    process.kill()
    process.wait()
    for stream in (process.stdin, process.stdout):
        stream.close()


def _write_message(stream, message: Any) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def _read_exactly(stream, size: int, deadline: float | None) -> bytes:
    chunks, remaining = [], size
    fd = stream.fileno()
    while remaining:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise WorkerTimeout
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise EOFError("worker closed its output")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _read_message(stream, timeout_s: float | None) -> Any:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    (size,) = _HEADER.unpack(_read_exactly(stream, _HEADER.size, deadline))
    return pickle.loads(_read_exactly(stream, size, deadline))


def _resolve(function_path: str):
    module_name, _, attribute = function_path.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def _serve() -> None:
    """Worker main loop: answer ``(function_path, args)`` requests until stdin closes."""
    requests = sys.stdin.buffer
    # Keep the protocol channel private: anything a library prints goes to stderr instead.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        preload, warmup = _read_message(requests, None)
        for module_name in preload:
            importlib.import_module(module_name)
        for function_path, args in warmup:
            _resolve(function_path)(*args)
    except Exception as exc:  # report any start-up failure to the parent instead of dying silently
        _write_message(replies, ("error", repr(exc)))
        return
    reply = ("ready", None)
    while True:
        try:
            _write_message(replies, reply)
            function_path, args = _read_message(requests, None)
        except (EOFError, BrokenPipeError):  # the parent has gone or stopped this worker
            return
        try:
            reply = ("ok", _resolve(function_path)(*args))
        except Exception as exc:  # the parent decides what a failed call means
            reply = ("error", repr(exc))

