"""One decode per image/video for all concurrent callers in a process, then a byte-bounded cache.

Wraps ``verl.utils.dataset.rl_dataset.RLHFDataset.process_multi_modal_info`` / ``process_vision_info``: in
verl 0.9.1 the agent loop calls the dataset *class*'s async ``process_multi_modal_info(messages,
image_patch_size=..., config=data_config)`` once per session, and the n = 8 sessions of a prompt run
concurrently in one agent-loop worker process, so verl decodes each video n times per step (about 5 CPU-s
each for a 60 s clip at 2 fps). ``OneThinkerDataset`` routes both entry points here:

- **in-flight de-duplication**: the first caller for a media item decodes it in an executor thread (off the
  event loop, as verl does); every other caller for the same item awaits that decode's future;
- **cache**: the decoded result is then kept, least recently used first out, up to ``data.media_cache_bytes``
  bytes (default :data:`DEFAULT_CACHE_BYTES`; 0 keeps nothing, concurrent callers still share one decode).

The key of an item is its resolved path, the file's identity (device, inode, size, mtime_ns, ctime_ns,
stat-ed at every call) and every setting that changes the result (all of the item's keys but its path and
row label, the image patch size, the video reader backend, qwen_vl_utils' ``MODEL_SEQ_LEN``, the
pre-sampled root): a file rewritten on disk gets a new key, and a decode during which the file changed is
not kept. Every caller gets its own copy, equal to what ``qwen_vl_utils.process_vision_info(messages,
image_patch_size=..., return_video_metadata=True)`` returns: videos are held as uint8 (qwen_vl_utils'
resize yields whole numbers in 0..255, checked per item; otherwise the float frames are held) and handed
out as a fresh float32 tensor with a fresh metadata dict, images as ``PIL.Image.copy()``. Nothing a caller does to
its result reaches the cache. Items without a file identity (PIL images, URLs, frame lists) are decoded per
call, as verl does.

A decode failure fails the calling sessions with :class:`MediaDecodeError` naming the file and the row
(verl then handles the failed session); the failure is not cached. Counts (hits, shared, misses, evicted,
bytes held) are logged every ``data.media_cache_log_every_s`` seconds and returned by :func:`stats`.
"""

import asyncio
import concurrent.futures
import copy
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .media import (
    ROW_LABEL_KEY,
    apply_video_reader_backend,
    check_video_reader_backend,
    decode_problem,
    item_settings,
)

logger = logging.getLogger(__name__)

# 2 GiB per agent-loop worker: verl's default 8 workers share a 128-prompt step, 16 prompts each in flight;
# a 128-frame video at the recipe's 65,536-pixel budget is ~25 MB as uint8, so 16 prompts need ~0.4 GB and
# the rest keeps recently used videos for the next prompts sharing them (several questions per video).
DEFAULT_CACHE_BYTES = 2 << 30
DEFAULT_LOG_EVERY_S = 300.0


class MediaDecodeError(RuntimeError):
    """An image/video of a row could not be decoded (message names the file and the row)."""


@dataclass
class CacheStats:
    hits: int = 0  # served from the cache
    shared: int = 0  # joined a decode another caller had started
    misses: int = 0  # decoded
    uncacheable: int = 0  # decoded per call: no file identity (PIL image, URL, frame list)
    failures: int = 0  # decodes that raised
    evicted: int = 0  # entries dropped to stay under the bound
    not_kept: int = 0  # results not kept: larger than the bound, or the file changed during the decode
    bytes_held: int = 0
    entries: int = 0
    max_bytes: int = DEFAULT_CACHE_BYTES


@dataclass(frozen=True)
class _Stored:
    """A decoded item as held: never handed out, only copied from."""

    kind: str  # "image" or "video"
    value: object  # PIL image, or (numpy frames as held, dtype handed out, metadata dict)
    nbytes: int


class SharedMediaDecoder:
    """Thread-safe in-flight de-duplication plus an LRU bounded in bytes (see the module docstring)."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES, log_every_s: float = DEFAULT_LOG_EVERY_S):
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple, _Stored] = OrderedDict()
        self._inflight: dict[tuple, concurrent.futures.Future] = {}
        self._stats = CacheStats(max_bytes=max_bytes)
        self.log_every_s = log_every_s
        self._last_log = time.monotonic()

    def configure(self, max_bytes: int, log_every_s: float) -> None:
        with self._lock:
            self._stats.max_bytes = max_bytes
            self.log_every_s = log_every_s
            self._evict_locked()

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(**asdict(self._stats))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._stats = CacheStats(max_bytes=self._stats.max_bytes)

    def claim(self, key: tuple) -> tuple[str, object]:
        """``("hit", stored)``, ``("wait", future)`` or ``("own", future)``: the owner must :meth:`publish`."""
        with self._lock:
            stored = self._entries.get(key)
            if stored is not None:
                self._entries.move_to_end(key)
                self._stats.hits += 1
                return "hit", stored
            future = self._inflight.get(key)
            if future is not None:
                self._stats.shared += 1
                return "wait", future
            future = concurrent.futures.Future()
            self._inflight[key] = future
            self._stats.misses += 1
            return "own", future

    def publish(self, key: tuple, future: concurrent.futures.Future, stored: _Stored | None, exc=None, keep=True):
        """End the owner's decode: keep ``stored`` (when ``keep`` and it fits) and wake every waiter."""
        with self._lock:
            self._inflight.pop(key, None)
            if exc is not None:
                self._stats.failures += 1
            elif keep and 0 < stored.nbytes <= self._stats.max_bytes:
                self._entries[key] = stored
                self._stats.bytes_held += stored.nbytes
                self._evict_locked()
            else:
                self._stats.not_kept += self._stats.max_bytes > 0
            self._stats.entries = len(self._entries)
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(stored)
        self._maybe_log()

    def count_uncacheable(self) -> None:
        with self._lock:
            self._stats.uncacheable += 1

    def _evict_locked(self) -> None:
        while self._entries and self._stats.bytes_held > self._stats.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._stats.bytes_held -= dropped.nbytes
            self._stats.evicted += 1
        self._stats.entries = len(self._entries)

    def _maybe_log(self) -> None:
        now = time.monotonic()
        if self.log_every_s <= 0 or now - self._last_log < self.log_every_s:
            return
        self._last_log = now
        logger.info("media cache (pid %d): %s", os.getpid(), format_stats(self.stats()))


def format_stats(stats: CacheStats) -> str:
    return (
        f"hits={stats.hits} shared={stats.shared} misses={stats.misses} uncacheable={stats.uncacheable} "
        f"failures={stats.failures} evicted={stats.evicted} not_kept={stats.not_kept} entries={stats.entries} "
        f"held={stats.bytes_held / 2**20:.1f} MiB of {stats.max_bytes / 2**20:.0f} MiB"
    )


_decoder = SharedMediaDecoder()


def stats() -> CacheStats:
    """This process's counts and bytes held."""
    return _decoder.stats()


def clear() -> None:
    """Drop every kept result and reset the counts (tests, benchmarks)."""
    _decoder.clear()


def cache_settings(config) -> tuple[int, float]:
    """``(data.media_cache_bytes, data.media_cache_log_every_s)``, validated (also checks
    ``data.video_reader_backend``); OneThinkerDataset calls it at start-up so a typo fails there."""
    max_bytes = DEFAULT_CACHE_BYTES if config is None else config.get("media_cache_bytes", DEFAULT_CACHE_BYTES)
    log_every = DEFAULT_LOG_EVERY_S if config is None else config.get("media_cache_log_every_s", DEFAULT_LOG_EVERY_S)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
        raise ValueError(f"data.media_cache_bytes must be a whole number of bytes >= 0, got {max_bytes!r}")
    if isinstance(log_every, bool) or not isinstance(log_every, int | float) or log_every < 0:
        raise ValueError(f"data.media_cache_log_every_s must be a number of seconds >= 0, got {log_every!r}")
    check_video_reader_backend(config)
    return max_bytes, float(log_every)


def _configure(config) -> None:
    max_bytes, log_every = cache_settings(config)
    if max_bytes != _decoder._stats.max_bytes or log_every != _decoder.log_every_s:
        _decoder.configure(max_bytes, log_every)
    apply_video_reader_backend(config)


# ---- items -------------------------------------------------------------------------------------------


def _kind(item: dict) -> str:
    if "image" in item or "image_url" in item:
        return "image"
    if "video" in item:
        return "video"
    raise ValueError("image, image_url or video should in content.")  # qwen_vl_utils' own message


def _source(item: dict) -> object:
    return item.get("video") if _kind(item) == "video" else item.get("image", item.get("image_url"))


def _local_path(source) -> str | None:
    if not isinstance(source, str) or source.startswith(("http://", "https://", "data:")):
        return None
    return source[7:] if source.startswith("file://") else source


def _identity(path: str) -> tuple:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _row_label(item: dict) -> str:
    return item.get(ROW_LABEL_KEY) or "?"


def _item_key(item: dict, image_patch_size, config) -> tuple | None:
    """The cache key (see the module docstring), or None for items without a file identity."""
    from qwen_vl_utils import vision_process

    kind = _kind(item)
    path = _local_path(_source(item))
    if path is None:
        return None
    real = os.path.realpath(path)
    settings = item_settings(item)
    environment = (int(image_patch_size), vision_process.MODEL_SEQ_LEN)
    if kind == "video":
        from .presampled import presampled_root

        environment += (vision_process.get_video_reader_backend(), presampled_root(config))
    return (kind, real, _identity(real), settings, environment)


def _decode(item: dict, image_patch_size, config) -> _Stored:
    """What ``qwen_vl_utils.process_vision_info`` computes for one item (or the pre-sampled frames), in the
    form it is held."""
    from qwen_vl_utils import fetch_image, fetch_video

    if _kind(item) == "image":
        image = fetch_image(item, image_patch_size=image_patch_size)
        return _Stored("image", image, image.width * image.height * len(image.getbands()))
    from .presampled import load_presampled

    presampled = load_presampled(item, image_patch_size, config)
    if presampled is not None:
        frames, metadata = presampled  # uint8 frames whose float32 values are what fetch_video returns
        return _Stored("video", (frames, np.float32, metadata), frames.nbytes)
    (video, metadata), _sample_fps = fetch_video(
        item, return_video_sample_fps=True, image_patch_size=image_patch_size, return_video_metadata=True
    )
    frames = video.numpy()
    dtype = frames.dtype
    if dtype == np.float32:
        as_bytes = frames.astype(np.uint8)
        if np.array_equal(as_bytes, frames):  # whole numbers in 0..255: hold a quarter of the bytes
            frames = as_bytes
    return _Stored("video", (frames, dtype, copy.deepcopy(metadata)), frames.nbytes)


def _thaw(stored: _Stored):
    """A caller's own copy of a held result (numpy's conversion: about 3x cheaper than torch's here)."""
    if stored.kind == "image":
        return stored.value.copy()
    held, dtype, metadata = stored.value
    return torch.from_numpy(held.astype(dtype, copy=True)), copy.deepcopy(metadata)


def _decode_and_publish(key, future, item, image_patch_size, config) -> None:
    """Owner side, in an executor thread: decode, keep unless the file changed meanwhile, wake waiters."""
    try:
        stored = _decode(item, image_patch_size, config)
        unchanged = _identity(key[1]) == key[2]
    except BaseException as exc:  # every waiter must wake, whatever the decoder raised
        _decoder.publish(key, future, None, exc=exc)
        return
    _decoder.publish(key, future, stored, keep=unchanged)


def _failure(item: dict, exc: BaseException) -> MediaDecodeError:
    """The session's error: file, row and, since qwen_vl_utils' fallback reader can hide the first reader's
    message, the decoder's own reason from a probe of the file first (with what it printed), then what
    qwen_vl_utils raised."""
    kind = _kind(item)
    source = _source(item)
    path = _local_path(source)
    if path is not None and not os.path.isfile(path):
        reason = "file not found"
    else:
        probe = decode_problem(path, kind) if path is not None else None
        raised = f"{type(exc).__name__}: {exc}"
        reason = f"decoder: {probe}; qwen_vl_utils raised {raised}" if probe else raised
    return MediaDecodeError(f"row {_row_label(item)}: cannot decode {kind} {source}: {reason}")


def _vision_items(messages) -> list[dict]:
    from qwen_vl_utils import extract_vision_info

    return extract_vision_info(messages) if messages else []


def _assemble(items: list[dict], results: list) -> tuple[list | None, list | None]:
    images = [r for item, r in zip(items, results, strict=True) if _kind(item) == "image"]
    videos = [r for item, r in zip(items, results, strict=True) if _kind(item) == "video"]
    return images or None, videos or None


def process_vision_info_shared_sync(messages, image_patch_size, config) -> tuple[list | None, list | None]:
    """``qwen_vl_utils.process_vision_info(messages, image_patch_size=..., return_video_metadata=True)`` with
    the sharing above, blocking the calling thread (verl's in-process length filter)."""
    _configure(config)
    items = _vision_items(messages)
    results = []
    for item in items:
        try:
            key = _item_key(item, image_patch_size, config)
            if key is None:
                _decoder.count_uncacheable()
                results.append(_thaw(_decode(item, image_patch_size, config)))
                continue
            state, payload = _decoder.claim(key)
            if state == "own":
                _decode_and_publish(key, payload, item, image_patch_size, config)
            stored = payload if state == "hit" else payload.result()
        except Exception as exc:
            raise _failure(item, exc) from exc
        results.append(_thaw(stored))
    return _assemble(items, results)


async def process_vision_info_shared(messages, image_patch_size, config) -> tuple[list | None, list | None]:
    """Async form for verl's agent loop: decodes and copies run in the loop's default executor; callers that
    wait for another's decode hold no thread."""
    _configure(config)
    loop = asyncio.get_running_loop()
    items = _vision_items(messages)
    results = []
    for item in items:
        try:
            key = await loop.run_in_executor(None, _item_key, item, image_patch_size, config)
            if key is None:
                _decoder.count_uncacheable()
                stored = await loop.run_in_executor(None, _decode, item, image_patch_size, config)
                results.append(await loop.run_in_executor(None, _thaw, stored))
                continue
            state, payload = _decoder.claim(key)
            if state == "own":
                # submitted before any await: the decode runs and wakes the waiters even if this task is cancelled
                owner = loop.run_in_executor(None, _decode_and_publish, key, payload, item, image_patch_size, config)
                await owner
            stored = payload if state == "hit" else await asyncio.wrap_future(payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise _failure(item, exc) from exc
        results.append(await loop.run_in_executor(None, _thaw, stored))
    return _assemble(items, results)
