"""The reference SFT run's media budgets and the stored media layout (no verl import: ``data_prep/prepare_sft.py``
and the SFT start-up check read them too)."""

from collections.abc import Iterator

from onethinker_verl.data.media import MediaSettings, resolve_media_path

# LLaMA-Factory `examples/train_full/onethinker_qwen3_sft.yaml`: image_max_pixels 802816, video_fps 2,
# video_maxlen 128, video_max_pixels 100352 (per frame); the minimums are LLaMA-Factory's defaults,
# image_min_pixels 32*32 and video_min_pixels 16*16. No whole-video budget.
SFT_MEDIA_DEFAULTS = MediaSettings(
    image_min_pixels=32 * 32,
    image_max_pixels=802816,
    video_fps=2.0,
    video_max_frames=128,
    video_min_pixels=16 * 16,
    video_max_pixels=100352,
    video_total_pixels=None,
)


def stored_media_paths(items, media_root) -> Iterator[str]:
    """The resolved file paths of one row's stored ``images`` / ``videos`` value (plain lists): each item is a
    path or a qwen_vl_utils item dict (``{"image": path, ...}``, ``{"video": path or [frame paths], ...}``)."""
    for raw in items or []:
        path = raw.get("image", raw.get("video")) if isinstance(raw, dict) else raw
        for one in path if isinstance(path, list) else [path]:
            if isinstance(one, str):
                yield resolve_media_path(one, media_root)
