"""The reference SFT run's media budgets (no verl import: ``data_prep/prepare_sft.py`` reads them too)."""

from onethinker_verl.data.media import MediaSettings

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
