"""Media paths and checks: where a row's files are, whether they exist or decode, and the per-item
sampling settings qwen_vl_utils reads.

verl 0.9.1 decodes images and videos in the agent loop through ``qwen_vl_utils.process_vision_info``, which
takes its settings from each content item (``{"type": "video", "video": path, "fps": 2, "max_frames": 128,
"max_pixels": ...}``). The dataset therefore attaches the configured settings to every item of the raw
prompt, and they travel with the prompt to whichever worker decodes it.
"""

import os
from dataclasses import dataclass

from .corpus import MEDIA_MISSING, MEDIA_UNREADABLE, RowRejected

CHECK_MODES = ("exists", "decode", "off")


def resolve_media_path(path: str, media_root: str | os.PathLike | None) -> str:
    """Absolute paths and URLs stay as they are; relative paths are joined to ``media_root`` when one is set."""
    if media_root is None or os.path.isabs(path) or "://" in path:
        return path
    return os.path.join(os.fspath(media_root), path)


def media_root_from_config(config, check: bool = True) -> str | None:
    """``data.media_root`` with ``~`` expanded (None when unset); with ``check``, a missing folder is an error."""
    root = config.get("media_root", None) if config is not None else None
    if root is None:
        return None
    root = os.path.expanduser(str(root))
    if check and not os.path.isdir(root):
        raise FileNotFoundError(f"data.media_root is not a folder: {root}")
    return root


def check_mode_from_config(value) -> str:
    """``data.check_media_on_load`` as one of :data:`CHECK_MODES` (true = ``exists``, false = ``off``)."""
    if isinstance(value, bool):
        return "exists" if value else "off"
    if value not in CHECK_MODES:
        raise ValueError(f"data.check_media_on_load must be true, false or one of {CHECK_MODES}, got {value!r}")
    return value


def describe_row(position, info) -> str:
    """``id='...', source file x, input position n, dataset index m`` from a row's ``extra_info``, for messages."""
    info = info if isinstance(info, dict) else {}
    parts = [f"id={info['id']!r}"] if info.get("id") is not None else []
    if info.get("source_file"):
        parts.append(f"source file {info['source_file']}")
    if info.get("index") is not None:
        parts.append(f"input position {info['index']}")
    if position is not None:
        parts.append(f"dataset index {position}")
    return ", ".join(parts) or "?"


def check_media_file(path: str, modality: str, mode: str) -> None:
    """Raise :class:`RowRejected` when ``path`` fails the check ``mode`` (one of :data:`CHECK_MODES`).

    ``decode`` runs :func:`decode_problem`, which catches truncated files that still open.
    """
    if mode == "off" or "://" in path:
        return
    if not os.path.isfile(path):
        raise RowRejected(MEDIA_MISSING, path)
    if mode != "decode":
        return
    problem = decode_problem(path, modality)
    if problem is not None:
        raise RowRejected(MEDIA_UNREADABLE, f"{path}: {problem}".strip())


def decode_problem(path: str, modality: str) -> str | None:
    """The decoder's reason why ``path`` cannot be used, or None: images are opened fully with PIL, videos
    opened with decord (the default reader) and their first and last frames read. What the decoder writes to
    stderr (decord: FFmpeg's own reason, e.g. ``moov atom not found``) is part of the reason, not printed."""
    from .decoder_output import captured_stderr, with_output

    with captured_stderr() as output:
        try:
            if modality == "image":
                from PIL import Image

                with Image.open(path) as image:
                    image.load()
            else:
                import decord

                reader = decord.VideoReader(path, num_threads=1)
                if len(reader) == 0:
                    raise ValueError("no frames")
                reader[0]
                reader[len(reader) - 1]
            problem = None
        except Exception as exc:  # any decoder failure means the file cannot be trained on
            problem = f"{type(exc).__name__}: {exc}".strip()
    return None if problem is None else with_output(problem, output)


@dataclass(frozen=True)
class MediaSettings:
    """Sampling settings attached to each image/video item; None leaves qwen_vl_utils' own default."""

    image_min_pixels: int | None = 3136
    image_max_pixels: int | None = 1048576
    video_fps: float | None = 2.0
    video_max_frames: int | None = 128
    video_min_pixels: int | None = 4096
    video_max_pixels: int | None = 65536
    video_total_pixels: int | None = None

    @classmethod
    def from_config(cls, config, defaults: "MediaSettings | None" = None) -> "MediaSettings":
        """Read ``data.image_min_pixels`` etc.; keys that are absent keep ``defaults`` (the RL recipe's above)."""
        defaults = defaults or cls()
        values = {}
        for name in cls.__dataclass_fields__:
            value = config.get(name, getattr(defaults, name)) if config is not None else getattr(defaults, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
                raise ValueError(f"data.{name} must be a positive number or null, got {value!r}")
            values[name] = value
        return cls(**values)

    def image_item(self, path: str) -> dict:
        item = {"image": path}
        _put(item, "min_pixels", self.image_min_pixels)
        _put(item, "max_pixels", self.image_max_pixels)
        return item

    def video_item(self, path: str) -> dict:
        item = {"video": path}
        _put(item, "fps", self.video_fps)
        _put(item, "max_frames", self.video_max_frames)
        _put(item, "min_pixels", self.video_min_pixels)
        _put(item, "max_pixels", self.video_max_pixels)
        _put(item, "total_pixels", self.video_total_pixels)
        return item


def _put(item: dict, key: str, value) -> None:
    if value is not None:
        item[key] = value



# OneThinkerDataset labels each media item with its row, so a decode failure in a rollout worker names it
# (qwen_vl_utils and the chat templates ignore unknown item keys).
ROW_LABEL_KEY = "onethinker_row"
# Keys of a qwen_vl_utils content item that name the media or the row rather than how it is decoded.
_NOT_SETTINGS = frozenset({"type", "image", "image_url", "video", ROW_LABEL_KEY})


def item_settings(item: dict) -> tuple:
    """The decode settings of a content item, canonical (sorted; numbers as floats, so ``2`` and ``2.0``
    are one setting): part of the media cache key and of the pre-sampled folder name."""
    return tuple(
        sorted(
            (key, float(value) if isinstance(value, int | float) and not isinstance(value, bool) else repr(value))
            for key, value in item.items()
            if key not in _NOT_SETTINGS
        )
    )


def check_video_reader_backend(config) -> str | None:
    """``data.video_reader_backend``: ``decord``, ``torchvision``, ``torchcodec`` or null (qwen_vl_utils' own
    choice: ``FORCE_QWENVL_VIDEO_READER``, else torchcodec when installed, else decord)."""
    backend = None if config is None else config.get("video_reader_backend", None)
    if backend is None:
        return None
    from qwen_vl_utils import vision_process

    if backend not in vision_process.VIDEO_READER_BACKENDS:
        raise ValueError(
            f"data.video_reader_backend must be one of {sorted(vision_process.VIDEO_READER_BACKENDS)} or null, "
            f"got {backend!r}"
        )
    return backend


def apply_video_reader_backend(config) -> None:
    """Make qwen_vl_utils read videos with ``data.video_reader_backend`` in this process (see
    :func:`check_video_reader_backend`). The setting travels with the data config, so it reaches every
    rollout worker without environment variables."""
    backend = check_video_reader_backend(config)
    if backend is None:
        return
    from qwen_vl_utils import vision_process

    if vision_process.FORCE_QWENVL_VIDEO_READER != backend:
        vision_process.FORCE_QWENVL_VIDEO_READER = backend
        vision_process.get_video_reader_backend.cache_clear()
