"""``OneThinkerDataset``: verl's RLHFDataset for OneThinker rows (``data.custom_cls``).

What it adds to verl's class:
- reads raw OneThinker JSON / JSON Lines as well as the parquet of ``data_prep/prepare_rl.py``;
- builds each prompt from the row's task fields with the configured templates (``data.prompt_templates``),
  so a replaced template file takes effect for prepared and raw data alike;
- resolves media paths against ``data.media_root`` and attaches the sampling settings (``data.video_fps``,
  ``data.video_max_frames``, ``data.image_max_pixels``, ...) to every image/video item, which is where
  qwen_vl_utils reads them when verl's agent loop decodes the media;
- checks at start-up that every media file exists: a missing file is an error naming it and its row,
  unless ``data.skip_missing_media=true``, which drops such rows and logs how many.
"""

import logging
import os

from verl.utils.dataset.rl_dataset import RLHFDataset

from .media import MediaSettings, resolve_media_path
from .prompts import build_chat_prompt, load_templates
from .raw_corpus import convert_raw_corpus, is_raw_corpus

logger = logging.getLogger(__name__)

_MISSING_LISTED = 5  # missing files named in the error / warning; the rest are counted


class OneThinkerDataset(RLHFDataset):
    def __init__(self, data_files, tokenizer, config, processor=None, max_samples: int = -1):
        self.media_root = config.get("media_root", None)
        if self.media_root is not None:
            self.media_root = os.path.expanduser(str(self.media_root))
            if not os.path.isdir(self.media_root):
                raise FileNotFoundError(f"data.media_root is not a folder: {self.media_root}")
        self.media_settings = MediaSettings.from_config(config)
        self.templates = load_templates(config.get("prompt_templates", None))
        self.skip_missing_media = bool(config.get("skip_missing_media", False))
        self.check_media_on_load = bool(config.get("check_media_on_load", True))
        self.skipped_missing_media = 0
        super().__init__(data_files, tokenizer, config, processor=processor, max_samples=max_samples)

    def _read_files_and_tokenize(self):
        cache_dir = os.path.expanduser(self.config.get("cache_dir", "~/.cache/verl/rlhf"))
        self.data_files = [
            convert_raw_corpus(path, cache_dir, self.templates) if is_raw_corpus(path) else path
            for path in self.data_files
        ]
        super()._read_files_and_tokenize()
        if self.check_media_on_load:
            self._drop_or_fail_on_missing_media()

    def _resolve(self, path: str) -> str:
        return resolve_media_path(path, self.media_root)

    def _drop_or_fail_on_missing_media(self) -> None:
        columns = [key for key in (self.image_key, self.video_key) if key in self.dataframe.column_names]
        if not columns:
            return
        keep, missing = [], []
        batch_size = 8192
        view = self.dataframe.select_columns(columns + ["extra_info"])
        for start in range(0, len(view), batch_size):
            batch = view[start : start + batch_size]
            for offset in range(len(batch["extra_info"])):
                paths = [self._resolve(p) for key in columns for p in (batch[key][offset] or []) if isinstance(p, str)]
                absent = [path for path in paths if "://" not in path and not os.path.isfile(path)]
                if absent:
                    missing.append((start + offset, batch["extra_info"][offset] or {}, absent[0]))
                else:
                    keep.append(start + offset)
        if not missing:
            return
        listed = "; ".join(f"row {_describe_row(pos, info)}: {path}" for pos, info, path in missing[:_MISSING_LISTED])
        more = f" (and {len(missing) - _MISSING_LISTED} more rows)" if len(missing) > _MISSING_LISTED else ""
        if not self.skip_missing_media:
            raise FileNotFoundError(
                f"{len(missing)} row(s) of {self.original_data_files} point at missing media (data.media_root="
                f"{self.media_root}): {listed}{more}. Fix data.media_root, or set data.skip_missing_media=true "
                "to train without these rows."
            )
        self.skipped_missing_media = len(missing)
        logger.warning(
            "data.skip_missing_media: skipped %d of %d rows whose media are missing: %s%s",
            len(missing),
            len(self.dataframe),
            listed,
            more,
        )
        self.dataframe = self.dataframe.select(keep)

    def _media_item(self, path, modality: str, row: dict) -> object:
        """The content item for one image/video: resolved path plus sampling settings."""
        if not isinstance(path, str):
            return path  # already an image object / dict: verl's own handling applies
        resolved = self._resolve(path)
        if "://" not in resolved and not os.path.isfile(resolved):
            raise FileNotFoundError(
                f"row {_describe_row(None, row.get('extra_info') or {})}: {modality} file not found: {resolved} "
                f"(data.media_root={self.media_root})"
            )
        if modality == "image":
            return self.media_settings.image_item(resolved)
        return self.media_settings.video_item(resolved)

    def _build_messages(self, example: dict, key: str):
        example = dict(example)
        images = [self._media_item(p, "image", example) for p in example.get(self.image_key) or []]
        videos = [self._media_item(p, "video", example) for p in example.get(self.video_key) or []]
        example[self.image_key], example[self.video_key] = images, videos
        info = example.get("extra_info") or {}
        if info.get("question") and info.get("problem_type"):
            example[key] = build_chat_prompt(
                info["question"],
                info["problem_type"],
                info.get("data_type") or "image",
                list(info.get("options") or []),
                len(images),
                len(videos),
                self.templates,
            )
        return super()._build_messages(example, key)


def _describe_row(position, info: dict) -> str:
    parts = [f"id={info.get('id')!r}"] if info.get("id") is not None else []
    if info.get("index") is not None:
        parts.append(f"input position {info['index']}")
    if position is not None:
        parts.append(f"dataset index {position}")
    return ", ".join(parts) or "?"
