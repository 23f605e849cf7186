"""Convert OneThinker RL rows (JSON array or JSON Lines) into the parquet verl's RLHFDataset reads.

Writes OUT/train.parquet (+ OUT/val.parquet with --val-ratio or --val-size) and OUT/rejected.jsonl, one line
per rejected input row with its position, id and reason. Media paths are stored as they appear in the input:
relative to --media-root, which training must then get as ``data.media_root``.
The input is streamed; memory does not grow with the file.

``--check-media decode`` (probe every file with the decoder) and ``--prompt-length-model MODEL`` (add a
``prompt_length`` column: tokens of each prompt, vision tokens included, as the model's processor counts them
at the --video-*/--image-* settings; the dataset then drops rows over ``data.max_prompt_length`` at start-up
without decoding) run in ``--workers`` processes (default: all cores), results kept in input order.
"""

import argparse
import json
import os
import random
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
from tqdm import tqdm

from onethinker_verl.data.cli import (
    add_field_name_options,
    add_media_check_option,
    add_media_settings_options,
    converter_parser,
    field_names_from_args,
    media_settings_from_args,
    run_converter,
)
from onethinker_verl.data.corpus import (
    MALFORMED_JSON,
    OVER_TASK_CAP,
    RowRejected,
    parse_row,
    row_id_of,
    verl_rl_record,
)
from onethinker_verl.data.parquet import PROMPT_LENGTH_COLUMN, PROMPT_LENGTH_METADATA, RL_SCHEMA, BatchedParquetWriter
from onethinker_verl.data.prompts import load_templates
from onethinker_verl.data.records import iter_records
from onethinker_verl.data.report import ConversionReport
from onethinker_verl.data.row_work import RowWorkOptions, needs_worker_pool, ordered_row_work

EXAMPLES = [
    "python data_prep/prepare_rl.py --input onethinker_rl_train.json --media-root /data/onethinker "
    "--output data/onethinker_rl --val-size 512",
    "python data_prep/prepare_rl.py --input onethinker_rl_train.json --media-root /data/onethinker "
    "--output data/onethinker_rl --check-media decode --prompt-length-model /ckpt/sft/huggingface",
]


def parse_args(argv=None) -> argparse.Namespace:
    parser = converter_parser(__doc__, EXAMPLES)
    parser.add_argument("--input", required=True, nargs="+", help="JSON array or JSON Lines file(s)")
    parser.add_argument("--media-root", default=None, help="folder the rows' media paths are relative to")
    parser.add_argument("--output", required=True, help="output folder")
    split = parser.add_mutually_exclusive_group()
    split.add_argument("--val-ratio", type=float, default=None, help="fraction of rows sent to val.parquet")
    split.add_argument("--val-size", type=int, default=None, help="number of rows sent to val.parquet (uniform)")
    parser.add_argument(
        "--max-per-task",
        type=int,
        default=None,
        help="keep at most this many rows per task and modality (the first ones in input order); "
        "the rest are rejected as 'over per-task cap'",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the validation split (default: %(default)s)")
    parser.add_argument("--prompt-templates", default=None, help="prompt template YAML (default: packaged)")
    parser.add_argument("--batch-rows", type=int, default=5000, help="rows per parquet row group")
    parser.add_argument(
        "--prompt-length-model",
        default=None,
        help="processor folder of the policy (e.g. the SFT checkpoint): adds the prompt_length column",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count(),
        help="processes for --check-media decode and --prompt-length-model (default: all cores, %(default)s)",
    )
    add_field_name_options(parser)
    add_media_check_option(parser)
    add_media_settings_options(parser)
    args = parser.parse_args(argv)
    if args.workers <= 0:
        parser.error(f"--workers must be positive, got {args.workers}")
    if args.val_ratio is not None and not 0.0 < args.val_ratio < 1.0:
        parser.error(f"--val-ratio must be between 0 and 1, got {args.val_ratio}")
    if args.val_size is not None and args.val_size <= 0:
        parser.error(f"--val-size must be positive, got {args.val_size}")
    if args.max_per_task is not None and args.max_per_task <= 0:
        parser.error(f"--max-per-task must be positive, got {args.max_per_task}")
    for path in args.input:
        if not Path(path).is_file():
            parser.error(f"--input file not found: {path}")
    return args


class ValidationSplit:
    """Routes written rows to train or val: a fixed fraction, or a uniform reservoir of a fixed size whose
    evicted rows go to train, so the split needs one pass and holds at most ``size`` rows."""

    def __init__(self, train: BatchedParquetWriter, val, report: ConversionReport, ratio, size, seed: int):
        self.train, self.val, self.report = train, val, report
        self.ratio, self.size = ratio, size
        self.rng = random.Random(seed)
        self.reservoir: list[tuple[dict, str, str]] = []
        self.seen = 0

    def add(self, record: dict, task: str, modality: str) -> None:
        if self.size is not None:
            self.seen += 1
            if len(self.reservoir) < self.size:
                self.reservoir.append((record, task, modality))
                return
            slot = self.rng.randrange(self.seen)
            if slot < self.size:
                evicted = self.reservoir[slot]
                self.reservoir[slot] = (record, task, modality)
                record, task, modality = evicted
            self._place(record, task, modality, to_val=False)
            return
        self._place(record, task, modality)

    def _place(self, record, task, modality, to_val=None):
        if to_val is None:
            to_val = self.ratio is not None and self.rng.random() < self.ratio
        (self.val if to_val else self.train).write(record)
        self.report.add_written("val" if to_val else "train", task, modality)

    def finish(self) -> None:
        for record, task, modality in self.reservoir:
            self._place(record, task, modality, to_val=True)
        self.reservoir = []


def _parsed_rows(args, names):
    """``(row, position, (row, position, source, raw id, rejection))`` for every input row, in input order:
    ``row`` None and ``rejection`` ``(reason, detail)`` for a row that does not parse. Those travel through
    :func:`ordered_row_work` too, so ``rejected.jsonl`` keeps the input order however many workers check media."""
    multiple_inputs = len(args.input) > 1
    for input_path in args.input:
        source = input_path if multiple_inputs else None
        records = iter_records(input_path)
        for record in tqdm(records, desc=f"converting {Path(input_path).name}", unit=" rows", mininterval=1.0):
            if record.error is not None:
                yield None, record.position, (None, record.position, source, None, (MALFORMED_JSON, record.error))
                continue
            raw_id = row_id_of(record.value, names)
            try:
                row = parse_row(record.value, names, fallback_id=f"row-{record.position}")
            except RowRejected as rejection:
                rejected = (rejection.reason, rejection.detail)
                yield None, record.position, (None, record.position, source, raw_id, rejected)
                continue
            yield row, record.position, (row, record.position, source, raw_id, None)


def _output_schema(args, options: RowWorkOptions):
    if args.prompt_length_model is None:
        return RL_SCHEMA
    measured = {"model": args.prompt_length_model, "media_settings": vars(options.media_settings)}
    schema = RL_SCHEMA.append(pa.field(PROMPT_LENGTH_COLUMN, pa.int64()))
    return schema.with_metadata({PROMPT_LENGTH_METADATA: json.dumps(measured).encode()})


def convert(args: argparse.Namespace) -> ConversionReport:
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    templates = load_templates(args.prompt_templates)
    names = field_names_from_args(args)
    wants_val = args.val_ratio is not None or args.val_size is not None
    options = RowWorkOptions(
        media_root=args.media_root,
        check_media=args.check_media,
        templates=templates,
        prompt_length_model=args.prompt_length_model,
        media_settings=media_settings_from_args(args),
    )
    workers = args.workers if needs_worker_pool(options) else 1

    report = ConversionReport(output / "rejected.jsonl")
    per_task = Counter()
    schema = _output_schema(args, options)
    train = BatchedParquetWriter(output / "train.parquet", schema, args.batch_rows)
    val = BatchedParquetWriter(output / "val.parquet", schema, args.batch_rows) if wants_val else None
    split = ValidationSplit(train, val, report, args.val_ratio, args.val_size, args.seed)
    try:
        for (row, position, source, raw_id, parse_rejection), outcome in ordered_row_work(
            _parsed_rows(args, names), options, workers
        ):
            if parse_rejection is not None:
                report.add_rejected(position, *parse_rejection, raw_id, source)
                continue
            if outcome.rejection is not None:
                report.add_rejected(position, *outcome.rejection, raw_id, source)
                continue
            task_key = (row.problem_type, row.data_type)
            if args.max_per_task is not None and per_task[task_key] >= args.max_per_task:
                report.add_rejected(position, OVER_TASK_CAP, "", row.row_id, source)
                continue
            per_task[task_key] += 1
            record = verl_rl_record(row, position, templates)
            if args.prompt_length_model is not None:
                record[PROMPT_LENGTH_COLUMN] = outcome.prompt_length
            split.add(record, row.problem_type, row.data_type)
        split.finish()
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
