"""Convert OneThinker SFT files into the parquet verl's multi-turn SFT trainer reads.

Input rows are the release's layout: ``messages`` (``{role, content}`` turns, ``<image>`` / ``<video>``
placeholders in the user text) with ``images`` or ``videos`` path lists. Output: OUT/train.parquet
(+ OUT/val.parquet with --val-ratio) with ``messages``, ``images``, ``videos`` as verl's
``MultiTurnSFTDataset`` expects, and OUT/rejected.jsonl. Each media item is the dict qwen_vl_utils reads,
with the sampling settings given here (defaults: the reference SFT run's budgets).

Media paths are written absolute, which verl's own SFT dataset (no media root) needs. With
``--relative-paths`` they are written as they appear in the input, relative to --media-root, as
``prepare_rl.py`` does; training then gets ``data.media_root`` (``OneThinkerSFTDataset``, the recipe's
dataset, resolves them and applies the recipe's media budgets over the stored ones).
"""

import argparse
import os
import random
import sys
from pathlib import Path

from tqdm import tqdm

from onethinker_verl.data.cli import (
    add_media_check_option,
    add_media_settings_options,
    converter_parser,
    media_settings_from_args,
    run_converter,
)
from onethinker_verl.data.corpus import (
    MALFORMED_JSON,
    MALFORMED_MEDIA_FIELD,
    MALFORMED_MESSAGES,
    MEDIA_DOES_NOT_MATCH,
    NOT_AN_OBJECT,
    RowRejected,
)
from onethinker_verl.data.media import check_media_file, resolve_media_path
from onethinker_verl.data.parquet import SFT_SCHEMA, BatchedParquetWriter
from onethinker_verl.data.prompts import count_placeholders
from onethinker_verl.data.records import iter_records
from onethinker_verl.data.report import ConversionReport
from onethinker_verl.sft.settings import SFT_MEDIA_DEFAULTS

EXAMPLES = [
    "python data_prep/prepare_sft.py --input onethinker_sft_image.json onethinker_sft_video.json "
    "--media-root /data/onethinker --output data/onethinker_sft",
    "python data_prep/prepare_sft.py --input onethinker_sft_image.json onethinker_sft_video.json "
    "--media-root /data/onethinker --relative-paths --check-media decode --output data/onethinker_sft",
]

_ROLES = ("system", "user", "assistant")


def parse_args(argv=None) -> argparse.Namespace:
    parser = converter_parser(__doc__, EXAMPLES)
    parser.add_argument("--input", required=True, nargs="+", help="SFT JSON array / JSON Lines file(s)")
    parser.add_argument("--media-root", default=None, help="folder the rows' media paths are relative to")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument(
        "--relative-paths",
        action="store_true",
        help="write media paths as in the input (relative to --media-root; train with data.media_root)",
    )
    parser.add_argument("--val-ratio", type=float, default=None, help="fraction of rows sent to val.parquet")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-rows", type=int, default=2000, help="rows per parquet row group")
    add_media_settings_options(parser, SFT_MEDIA_DEFAULTS)
    add_media_check_option(parser)
    args = parser.parse_args(argv)
    if args.val_ratio is not None and not 0.0 < args.val_ratio < 1.0:
        parser.error(f"--val-ratio must be between 0 and 1, got {args.val_ratio}")
    for path in args.input:
        if not Path(path).is_file():
            parser.error(f"--input file not found: {path}")
    return args


def _path_list(raw: dict, key: str) -> list[str]:
    value = raw.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise RowRejected(MALFORMED_MEDIA_FIELD, f"'{key}' must be a path or a list of paths")
    return value


def parse_sft_row(raw) -> tuple[list[dict], list[str], list[str]]:
    """The row's turns and media paths; raises :class:`RowRejected`."""
    if not isinstance(raw, dict):
        raise RowRejected(NOT_AN_OBJECT, f"got {type(raw).__name__}")
    messages = raw.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RowRejected(MALFORMED_MESSAGES, "'messages' must be a non-empty list of {role, content}")
    turns = []
    for turn in messages:
        if not isinstance(turn, dict) or turn.get("role") not in _ROLES or not isinstance(turn.get("content"), str):
            raise RowRejected(MALFORMED_MESSAGES, f"bad turn {str(turn)[:120]!r}")
        turns.append({"role": turn["role"], "content": turn["content"]})
    roles = [turn["role"] for turn in turns]
    if "user" not in roles or roles[-1] != "assistant" or not turns[-1]["content"].strip():
        raise RowRejected(MALFORMED_MESSAGES, "needs a user turn and must end with a non-empty assistant turn")
    images, videos = _path_list(raw, "images"), _path_list(raw, "videos")
    placed = [0, 0]
    for turn in turns:
        found = count_placeholders(turn["content"])
        placed = [placed[0] + found[0], placed[1] + found[1]]
    if tuple(placed) != (len(images), len(videos)):
        raise RowRejected(
            MEDIA_DOES_NOT_MATCH,
            f"{placed[0]} <image> / {placed[1]} <video> placeholders for {len(images)} image(s) / {len(videos)} video(s)",
        )
    return turns, images, videos


def convert(args: argparse.Namespace) -> ConversionReport:
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    settings = media_settings_from_args(args)
    rng = random.Random(args.seed)
    report = ConversionReport(output / "rejected.jsonl")
    train = BatchedParquetWriter(output / "train.parquet", SFT_SCHEMA, args.batch_rows)
    val = BatchedParquetWriter(output / "val.parquet", SFT_SCHEMA, args.batch_rows) if args.val_ratio else None
    try:
        for input_path in args.input:
            source = input_path if len(args.input) > 1 else None
            for record in tqdm(iter_records(input_path), desc=f"converting {Path(input_path).name}", unit=" rows"):
                if record.error is not None:
                    report.add_rejected(record.position, MALFORMED_JSON, record.error, source=source)
                    continue
                row_id = record.value.get("id") if isinstance(record.value, dict) else None
                try:
                    turns, images, videos = parse_sft_row(record.value)
                    for modality, paths in (("image", images), ("video", videos)):
                        for path in paths:
                            check_media_file(resolve_media_path(path, args.media_root), modality, args.check_media)
                    if not args.relative_paths:
                        images = [os.path.abspath(resolve_media_path(p, args.media_root)) for p in images]
                        videos = [os.path.abspath(resolve_media_path(p, args.media_root)) for p in videos]
                except RowRejected as rejection:
                    report.add_rejected(record.position, rejection.reason, rejection.detail, row_id, source)
                    continue
                modality = "video" if videos else "image" if images else "text"
                to_val = val is not None and rng.random() < args.val_ratio
                (val if to_val else train).write(
                    {
                        "messages": turns,
                        "images": [settings.image_item(path) for path in images],
                        "videos": [settings.video_item(path) for path in videos],
                        "data_source": f"onethinker-sft/{modality}",
                        "extra_info": {
                            "index": record.position,
                            "id": str(row_id) if row_id is not None else f"row-{record.position}",
                            "source_file": Path(input_path).name,
                        },
                    }
                )
                report.add_written("val" if to_val else "train", "sft", modality)
    finally:
        train.close()
        if val is not None:
            val.close()
        report.close()
    return report


def main(argv=None) -> int:
    return run_converter(parse_args, convert, argv)


if __name__ == "__main__":
    sys.exit(main())
