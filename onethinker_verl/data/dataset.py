"""``OneThinkerDataset``: verl's RLHFDataset for OneThinker rows (``data.custom_cls``).

What it adds to verl's class:
- reads raw OneThinker JSON / JSON Lines as well as the parquet of ``data_prep/prepare_rl.py``;
- builds each prompt from the row's task fields with the configured templates (``data.prompt_templates``),
  so a replaced template file takes effect for prepared and raw data alike;
- resolves media paths against ``data.media_root`` and attaches the sampling settings (``data.video_fps``,
  ``data.video_max_frames``, ``data.image_max_pixels``, ...) to every image/video item, which is where
  qwen_vl_utils reads them when verl's agent loop decodes the media;
- start-up touches no media beyond an existence check (one ``stat`` per distinct file): a missing file is an
  error naming it and its row, unless ``data.skip_missing_media=true``, which drops such rows and logs how
  many; rows whose offline ``prompt_length`` column (``prepare_rl.py --prompt-length-model``) exceeds
  ``data.max_prompt_length`` are dropped and counted (``data.filter_by_prompt_length_column``);
- overrides the class-level decoding entry points verl's agent loop calls (``process_multi_modal_info``,
  ``process_vision_info``) so the n sessions of a prompt share one decode (:mod:`.media_cache`), optionally
  reading pre-sampled frames (:mod:`.presampled`).
"""

import json
import logging
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from verl.utils.dataset.rl_dataset import RLHFDataset

from . import media_cache
from .media import (
    ROW_LABEL_KEY,
    MediaSettings,
    check_mode_from_config,
    describe_row,
    media_root_from_config,
    resolve_media_path,
)
from .parquet import PROMPT_LENGTH_COLUMN, PROMPT_LENGTH_METADATA
from .prompts import build_chat_prompt, load_templates
from .raw_corpus import convert_raw_corpus, is_raw_corpus

logger = logging.getLogger(__name__)

_MISSING_LISTED = 5  # missing files named in the error / warning; the rest are counted


def _length_filter_mode(config) -> bool | None:
    """``data.filter_by_prompt_length_column``: None (default) = filter when the column exists, true = the
    column is required, false = off."""
    value = config.get("filter_by_prompt_length_column", None)
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"data.filter_by_prompt_length_column must be true, false or null, got {value!r}")
    return value


def _sample_positions(total: int, max_samples: int, config) -> np.ndarray | None:
    """The rows verl's ``_read_files_and_tokenize`` keeps for ``max_samples`` (same RNG, same draw)."""
    if not 0 < max_samples < total:
        return None
    if config.get("shuffle", False):
        seed = config.get("seed")
        return np.random.default_rng(*((seed,) if seed is not None else ())).choice(total, size=max_samples, replace=False)
    return np.arange(max_samples)


def _missing_media_rows(table: pa.Table, columns: list[str], media_root: str | None) -> list[tuple[int, str]]:
    """``(row position, first missing file)`` for each row of ``table`` with a missing local file.

    Vectorised over the list columns; each distinct path is stat-ed once (several questions often share a
    video), so 600k rows cost a few seconds of ``stat`` and no decoding."""
    first_missing: dict[int, str] = {}
    exists: dict[str, bool] = {}
    for column in columns:
        values = table.column(column).combine_chunks()
        if pa.types.is_null(values.type):
            continue
        flat = pc.list_flatten(values)
        if not pa.types.is_string(flat.type) and not pa.types.is_large_string(flat.type):
            continue  # images given as structs / bytes: nothing on disk to check
        parents = pc.list_parent_indices(values).to_numpy()
        for position, path in zip(parents.tolist(), flat.to_pylist(), strict=True):
            if path is None or position in first_missing:
                continue
            resolved = resolve_media_path(path, media_root)
            if resolved not in exists:
                exists[resolved] = "://" in resolved or os.path.isfile(resolved)
            if not exists[resolved]:
                first_missing[position] = resolved
    return sorted(first_missing.items())


def _too_long_rows(table: pa.Table, max_prompt_length: int) -> np.ndarray:
    lengths = table.column(PROMPT_LENGTH_COLUMN).combine_chunks()
    if lengths.null_count:
        raise ValueError(
            f"column '{PROMPT_LENGTH_COLUMN}' has {lengths.null_count} empty value(s): rerun "
            "data_prep/prepare_rl.py --prompt-length-model, which rejects rows it cannot measure"
        )
    return np.flatnonzero(lengths.to_numpy(zero_copy_only=False) > max_prompt_length)


class OneThinkerDataset(RLHFDataset):
    def __init__(self, data_files, tokenizer, config, processor=None, max_samples: int = -1):
        self.media_root = media_root_from_config(config)
        self.media_settings = MediaSettings.from_config(config)
        self.templates = load_templates(config.get("prompt_templates", None))
        self.length_filter_mode = _length_filter_mode(config)
        media_cache.cache_settings(config)  # the rollout workers read these keys: fail on a typo here, at start-up
        self.skipped_missing_media = 0
        self.dropped_overlong = 0
        super().__init__(data_files, tokenizer, config, processor=processor, max_samples=max_samples)

    # ---- start-up: no media decoded ------------------------------------------------------------------

    @classmethod
    def count_usable_rows(cls, data_files, data_config, max_samples: int = -1) -> int:
        """Rows a dataset built from ``data_files`` with ``data_config`` would hold, without building it.

        Applies the same start-up filtering as ``__init__``: verl's ``max_samples`` draw, the offline
        ``prompt_length`` column filter and the missing-media check (an error naming the file and row unless
        ``data.skip_missing_media``). Needs no tokenizer and decodes no media: it reads only the media and
        length columns of the parquet files (raw JSON is converted once, as ``__init__`` does, into the
        shared cache) and stats each distinct media file once, so 600k rows take seconds.
        verl's own decode-based ``filter_overlong_prompts`` is not replayed (the recipe turns it off); with it
        on, the result is an upper bound.
        """
        from verl.utils.fs import copy_to_local

        files = [data_files] if isinstance(data_files, str | os.PathLike) else list(data_files)
        cache_dir = os.path.expanduser(data_config.get("cache_dir", "~/.cache/verl/rlhf"))
        templates = None
        tables = []
        for path in files:
            path = copy_to_local(src=os.fspath(path), cache_dir=cache_dir, use_shm=data_config.get("use_shm", False))
            if is_raw_corpus(path):
                templates = templates or load_templates(data_config.get("prompt_templates", None))
                path = convert_raw_corpus(path, cache_dir, templates)
            tables.append(_startup_columns(path, data_config))
        table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
        kept = _startup_filter(table, data_config, media_root_from_config(data_config), max_samples, files)
        return len(kept)

    def maybe_filter_out_long_prompts(self, dataframe=None):
        """verl calls this after its ``max_samples`` draw: apply the cheap start-up filters first, then
        verl's own decode-based length filter (off in the recipe) on what is left."""
        dataframe = self.dataframe if dataframe is None else dataframe
        if PROMPT_LENGTH_COLUMN in dataframe.column_names and self.length_filter_mode is not False:
            self._warn_if_lengths_were_measured_differently()
        columns = [c for c in _startup_column_names(self.config) if c in dataframe.column_names]
        if columns:
            table = dataframe.select_columns(columns).with_format("arrow")[:]
        else:
            table = pa.table({"_": pa.nulls(len(dataframe), pa.int8())})
        kept, report = _startup_filter(
            table, self.config, self.media_root, -1, self.original_data_files, dataframe=dataframe, with_report=True
        )
        self.skipped_missing_media, self.dropped_overlong = report
        if len(kept) < len(dataframe):
            dataframe = dataframe.select(kept)
        return super().maybe_filter_out_long_prompts(dataframe)

    def _warn_if_lengths_were_measured_differently(self) -> None:
        """Lengths measured at other sampling settings than this run's filter the wrong rows: say so."""
        import pyarrow.parquet as pq

        current = vars(self.media_settings)
        for path in self.data_files:
            recorded = (pq.read_schema(path).metadata or {}).get(PROMPT_LENGTH_METADATA)
            if recorded is None:
                continue
            measured = json.loads(recorded)
            if measured.get("media_settings") != current:
                logger.warning(
                    "%s: its prompt_length column was measured with media settings %s (model %s), this run "
                    "uses %s: the length filter may keep or drop the wrong rows; rerun data_prep/prepare_rl.py "
                    "--prompt-length-model with the recipe's settings",
                    path,
                    measured.get("media_settings"),
                    measured.get("model"),
                    current,
                )

    def _read_files_and_tokenize(self):
        cache_dir = os.path.expanduser(self.config.get("cache_dir", "~/.cache/verl/rlhf"))
        self.data_files = [
            convert_raw_corpus(path, cache_dir, self.templates) if is_raw_corpus(path) else path
            for path in self.data_files
        ]
        super()._read_files_and_tokenize()

    def _resolve(self, path: str) -> str:
        return resolve_media_path(path, self.media_root)

    # ---- items ---------------------------------------------------------------------------------------

    def _media_item(self, path, modality: str, row: dict) -> object:
        """The content item for one image/video: resolved path, sampling settings and the row's label (so a
        decode failure in the rollout worker names the row)."""
        if not isinstance(path, str):
            return path  # already an image object / dict: verl's own handling applies
        resolved = self._resolve(path)
        label = describe_row(None, row.get("extra_info") or {})
        if "://" not in resolved and not os.path.isfile(resolved):
            raise FileNotFoundError(
                f"row {label}: {modality} file not found: {resolved} (data.media_root={self.media_root})"
            )
        item = self.media_settings.image_item(resolved) if modality == "image" else self.media_settings.video_item(resolved)
        item[ROW_LABEL_KEY] = label
        return item

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

    # ---- decoding in the rollout worker (class level: the dataset is never built there) ---------------

    @classmethod
    async def process_multi_modal_info(cls, messages: list[dict], image_patch_size, config):
        """verl's agent loop entry point: ``(images, videos, audios)`` exactly as verl's RLHFDataset returns
        them, with each image/video decoded once per process for all concurrent callers (:mod:`.media_cache`)."""
        images, videos = await media_cache.process_vision_info_shared(messages, image_patch_size, config)
        return images, videos, cls._extract_audio_info(messages)

    @classmethod
    async def process_vision_info(cls, messages: list[dict], image_patch_size, config):
        """``(images, videos)`` for callers of verl's older entry point; same sharing as above."""
        return await media_cache.process_vision_info_shared(messages, image_patch_size, config)

    @classmethod
    def _process_multi_modal_info(cls, messages: list[dict], image_patch_size, config):
        """Synchronous variant verl's own length filter uses; shares the same cache."""
        images, videos = media_cache.process_vision_info_shared_sync(messages, image_patch_size, config)
        return images, videos, cls._extract_audio_info(messages)


def _startup_column_names(config) -> list[str]:
    return [config.get("image_key", "images"), config.get("video_key", "videos"), PROMPT_LENGTH_COLUMN]


def _startup_columns(parquet_path: str, config) -> pa.Table:
    """Only the columns start-up filtering reads (no prompt text, no ground truth)."""
    import pyarrow.parquet as pq

    names = set(pq.read_schema(parquet_path).names)
    wanted = [c for c in _startup_column_names(config) if c in names]
    if wanted:
        return pq.read_table(parquet_path, columns=wanted)
    return pa.table({"_": pa.nulls(pq.ParquetFile(parquet_path).metadata.num_rows, pa.int8())})


def _startup_filter(table, config, media_root, max_samples, files, dataframe=None, with_report=False):
    """Row positions of ``table`` that survive start-up filtering, in order (see ``count_usable_rows``).

    ``dataframe`` (when given) is where ``extra_info`` of offending rows is read for messages."""
    positions = _sample_positions(table.num_rows, max_samples, config)
    if positions is not None:
        table = table.take(pa.array(positions))
    keep = np.ones(table.num_rows, dtype=bool)

    mode = _length_filter_mode(config)
    dropped_overlong = 0
    has_lengths = PROMPT_LENGTH_COLUMN in table.column_names
    if mode is True and not has_lengths:
        raise ValueError(
            f"data.filter_by_prompt_length_column=true but {files} have no '{PROMPT_LENGTH_COLUMN}' column: "
            "prepare them with data_prep/prepare_rl.py --prompt-length-model MODEL"
        )
    if has_lengths and mode is not False:
        max_length = int(config.get("max_prompt_length", 1024))
        too_long = _too_long_rows(table, max_length)
        keep[too_long] = False
        dropped_overlong = len(too_long)
        if dropped_overlong and with_report:
            logger.warning(
                "data.filter_by_prompt_length_column: dropped %d of %d rows whose prompt_length exceeds "
                "data.max_prompt_length=%d",
                dropped_overlong,
                table.num_rows,
                max_length,
            )

    skipped_missing = 0
    # Start-up only stats files ("decode" checks belong to data_prep/prepare_rl.py --check-media decode).
    if check_mode_from_config(config.get("check_media_on_load", True)) != "off":
        columns = [c for c in (config.get("image_key", "images"), config.get("video_key", "videos")) if c in table.column_names]
        missing = [(pos, path) for pos, path in _missing_media_rows(table, columns, media_root) if keep[pos]]
        if missing:
            described = [
                (pos, (dataframe[pos]["extra_info"] or {}) if dataframe is not None else {}, path)
                for pos, path in missing[:_MISSING_LISTED]
            ]
            listed = "; ".join(f"row {describe_row(pos, info)}: {path}" for pos, info, path in described)
            more = f" (and {len(missing) - _MISSING_LISTED} more rows)" if len(missing) > _MISSING_LISTED else ""
            if not bool(config.get("skip_missing_media", False)):
                raise FileNotFoundError(
                    f"{len(missing)} row(s) of {files} point at missing media (data.media_root={media_root}): "
                    f"{listed}{more}. Fix data.media_root, or set data.skip_missing_media=true to train without "
                    "these rows."
                )
            skipped_missing = len(missing)
            keep[[pos for pos, _ in missing]] = False
            if with_report:
                logger.warning(
                    "data.skip_missing_media: skipped %d of %d rows whose media are missing: %s%s",
                    skipped_missing,
                    table.num_rows,
                    listed,
                    more,
                )
    kept = np.flatnonzero(keep).tolist()
    return (kept, (skipped_missing, dropped_overlong)) if with_report else kept
