"""Pre-sampled video (opt-in, ``data.presampled_video_root``): decode each video once offline, read the
frames at training time.

``data_prep/presample_videos.py`` runs ``qwen_vl_utils.fetch_video`` on every video of the corpus with the
recipe's sampling settings and stores its output: the sampled, resized frames as a uint8 array
(``T x C x H x W``, ``.frames.npy``, exactly the values qwen_vl_utils returns as float32) and a JSON file
with the video metadata the processor turns into timestamps (original ``fps``, ``frames_indices``,
``total_num_frames``, the backend), the source file's size and mtime, and the settings. A rollout worker
then loads the array instead of decoding (:func:`load_presampled`, called by :mod:`.media_cache`), so the
model gets the same frames, timestamps and token count.

Layout: ``ROOT/<settings folder>/<video path relative to data.media_root>.{frames.npy,json}``; the settings
folder name is a digest of every decode setting of the item (fps, frame limits, pixel budgets), the image
patch size, qwen_vl_utils' ``MODEL_SEQ_LEN`` and the video reader (``data.video_reader_backend``), so frames
sampled for other settings are never read. An
entry that is absent, or whose source video changed since (size or mtime differ), is not used: the video is
decoded on the fly and the event is counted and logged (:func:`presampled_stats`). Copy the media with their
times preserved (``rsync -a``, ``cp -p``) or presample again.
"""

import hashlib
import json
import logging
import os
import threading
from pathlib import Path

import numpy as np
import torch

from .decoder_output import VideoDecodeFailed, fetch_video_explained
from .media import apply_video_reader_backend, item_settings, media_root_from_config

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
FRAMES_SUFFIX = ".frames.npy"
META_SUFFIX = ".json"

_counts_lock = threading.Lock()
_counts = {"read": 0, "absent": 0, "stale": 0}


def presampled_root(config) -> str | None:
    root = None if config is None else config.get("presampled_video_root", None)
    return None if root is None else os.path.expanduser(str(root))


def presampled_stats() -> dict:
    """This process's pre-sampled reads and fall-backs to decoding (absent / stale entries)."""
    with _counts_lock:
        return dict(_counts)


def settings_folder(item: dict, image_patch_size: int) -> str:
    """Folder name for the decode settings of ``item`` (see the module docstring)."""
    from qwen_vl_utils import vision_process

    described = json.dumps(
        {
            "version": FORMAT_VERSION,
            "settings": item_settings(item),
            "image_patch_size": int(image_patch_size),
            "model_seq_len": vision_process.MODEL_SEQ_LEN,
            # readers may convert colours differently: frames are only valid for the reader that made them
            "reader": vision_process.get_video_reader_backend(),
        },
        sort_keys=True,
    )
    return "s-" + hashlib.sha256(described.encode()).hexdigest()[:12]


def entry_base(root: str, video_path: str, media_root: str | None, item: dict, image_patch_size: int) -> Path:
    """``ROOT/<settings folder>/<relative path>``; add :data:`FRAMES_SUFFIX` / :data:`META_SUFFIX`."""
    absolute = os.path.abspath(video_path)
    if media_root is not None:
        relative = os.path.relpath(absolute, os.path.abspath(media_root))
        if relative.startswith(os.pardir):
            relative = os.path.join("_abs", absolute.lstrip(os.sep))
    else:
        relative = os.path.join("_abs", absolute.lstrip(os.sep))
    return Path(root) / settings_folder(item, image_patch_size) / relative


def _source_identity(path: str) -> dict:
    stat = os.stat(path)
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _count(event: str, message: str | None = None, *args) -> None:
    with _counts_lock:
        _counts[event] += 1
        seen = _counts[event]
    if message is not None and (seen == 1 or seen % 1000 == 0):
        logger.warning(message + " (%d such videos so far in this process)", *args, seen)


def _current_entry(base: Path, video_path: str) -> tuple[dict | None, str]:
    """``(stored metadata, "current")`` for an entry that is complete (the JSON is written last) and made from
    the video as it is now on disk, else ``(None, "absent")`` or ``(None, "stale")``."""
    try:
        entry = json.loads(base.with_name(base.name + META_SUFFIX).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None, "absent"
    if entry.get("source") != _source_identity(video_path):
        return None, "stale"
    return entry, "current"


def load_presampled(item: dict, image_patch_size: int, config) -> tuple[np.ndarray, dict] | None:
    """``(uint8 frames T x C x H x W, metadata)``: as float32, the frames are what ``fetch_video(...,
    return_video_metadata=True)`` returns, with the same metadata. None when pre-sampling is off or the entry
    is absent / stale (then the caller decodes)."""
    root = presampled_root(config)
    video = item.get("video")
    if root is None or not isinstance(video, str) or "://" in video:
        return None
    base = entry_base(root, video, media_root_from_config(config, check=False), item, image_patch_size)
    entry, state = _current_entry(base, video)
    if state == "absent":
        _count("absent", "no pre-sampled frames for %s (looked for %s): decoding it", video, base)
        return None
    if state == "stale":
        _count("stale", "pre-sampled frames of %s are older than the video (%s): decoding it", video, base)
        return None
    frames = np.load(base.with_name(base.name + FRAMES_SUFFIX))
    metadata = dict(entry["metadata"])
    for key in entry["tensor_keys"]:
        metadata[key] = torch.tensor(metadata[key])
    _count("read")
    return frames, metadata


def is_current(root: str, video_path: str, media_root: str | None, item: dict, image_patch_size: int) -> bool:
    """Whether a complete, fresh entry exists."""
    base = entry_base(root, video_path, media_root, item, image_patch_size)
    return _current_entry(base, video_path)[1] == "current" and base.with_name(base.name + FRAMES_SUFFIX).is_file()


def write_presampled(root: str, item: dict, media_root: str | None, image_patch_size: int) -> tuple[int, float]:
    """Decode ``item["video"]`` as the rollout worker would and store it; returns the bytes written and the
    video's duration in seconds.

    Raises :class:`~.decoder_output.VideoDecodeFailed` (the chosen reader's reason first) for a broken file,
    and ValueError when the file changed while it was read."""
    video_path = item["video"]
    before = _source_identity(video_path)
    (frames, metadata), _sample_fps = fetch_video_explained(
        item, return_video_sample_fps=True, image_patch_size=image_patch_size, return_video_metadata=True
    )
    if _source_identity(video_path) != before:
        raise ValueError(f"{video_path} changed while it was read")
    as_bytes = frames.to(torch.uint8)
    if not torch.equal(as_bytes.to(frames.dtype), frames):
        raise ValueError(f"{video_path}: decoded frames are not whole numbers in 0..255; cannot store them as uint8")
    tensor_keys = sorted(key for key, value in metadata.items() if isinstance(value, torch.Tensor))
    stored_metadata = {key: value.tolist() if key in tensor_keys else value for key, value in metadata.items()}

    base = entry_base(root, video_path, media_root, item, image_patch_size)
    base.parent.mkdir(parents=True, exist_ok=True)
    frames_path = base.with_name(base.name + FRAMES_SUFFIX)
    partial = frames_path.with_name(f"{frames_path.name}.{os.getpid()}.partial")
    with open(partial, "wb") as handle:
        np.save(handle, as_bytes.numpy())
    os.replace(partial, frames_path)
    entry = {
        "version": FORMAT_VERSION,
        "source": before,
        "video": video_path,
        "settings": dict(item_settings(item)),
        "image_patch_size": int(image_patch_size),
        "shape": list(as_bytes.shape),
        "metadata": stored_metadata,
        "tensor_keys": tensor_keys,
    }
    meta_path = base.with_name(base.name + META_SUFFIX)
    partial = meta_path.with_name(f"{meta_path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(entry))
    os.replace(partial, meta_path)
    seconds = stored_metadata["total_num_frames"] / stored_metadata["fps"]
    return frames_path.stat().st_size + meta_path.stat().st_size, seconds


def presample_videos(
    root: str, items: list[dict], media_root: str | None, image_patch_size: int, reader: str | None
) -> list[dict]:
    """Worker body of ``data_prep/presample_videos.py`` (a process-pool task or a Ray task): presample each
    item with the video ``reader`` (a ``data.video_reader_backend`` value), one result per item:
    ``{"video", "bytes", "seconds"}`` or ``{"video", "error"}`` (the decoder's reason). ``seconds`` is the
    video's duration, for the storage-per-hour figure."""
    apply_video_reader_backend({"video_reader_backend": reader})
    results = []
    for item in items:
        try:
            written, seconds = write_presampled(root, item, media_root, image_patch_size)
            results.append({"video": item["video"], "bytes": written, "seconds": seconds})
        except VideoDecodeFailed as failed:  # its message is the reason, the chosen reader's first
            results.append({"video": item["video"], "error": str(failed)})
        except Exception as exc:  # one broken video must not stop the others; the caller reports it
            results.append({"video": item["video"], "error": f"{type(exc).__name__}: {exc}"})
    return results
