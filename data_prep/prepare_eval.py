"""Convert OneThinker evaluation files into the JSON Lines rows the evaluation code reads.

    python data_prep/prepare_eval.py --input eval/mmmu.json eval/charades_sta.json \
        --media-root /data/onethinker_eval --output data/eval_rows.jsonl

Each input file is one benchmark, named after the file (``mmmu.json`` -> ``mmmu``) unless a row carries
``benchmark`` or ``--benchmark`` is given. Rows use the single ``path`` (plus ``additional_path`` for
``video-image`` rows: a video and one extra image). Each output line has ``benchmark``, ``id``,
``problem_type``, ``data_type``, ``prompt`` (the user text with ``<image>``/``<video>`` placeholders, built by
the same prompt builder as training), ``images`` / ``videos`` (absolute paths), ``ground_truth``,
``question`` and ``options``. Rejected rows go to OUTPUT.rejected.jsonl (with the file they came from).
"""

import argparse
import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from onethinker_verl.data.cli import add_field_name_options, add_media_check_option, field_names_from_args, run_converter
from onethinker_verl.data.corpus import MALFORMED_JSON, RowRejected, parse_row, row_id_of
from onethinker_verl.data.media import check_media_file, resolve_media_path
from onethinker_verl.data.prompts import build_prompt_text, load_templates
from onethinker_verl.data.records import iter_records
from onethinker_verl.data.report import ConversionReport


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, nargs="+", help="evaluation JSON / JSON Lines file(s)")
    parser.add_argument("--media-root", default=None, help="folder the rows' media paths are relative to")
    parser.add_argument("--output", required=True, help="output .jsonl file")
    parser.add_argument("--benchmark", default=None, help="benchmark name for every row (default: file name)")
    parser.add_argument("--prompt-templates", default=None, help="prompt template YAML (default: packaged)")
    add_field_name_options(parser)
    add_media_check_option(parser)
    args = parser.parse_args(argv)
    for path in args.input:
        if not Path(path).is_file():
            parser.error(f"--input file not found: {path}")
    return args


def convert(args: argparse.Namespace) -> ConversionReport:
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    templates = load_templates(args.prompt_templates)
    names = field_names_from_args(args)
    report = ConversionReport(output.with_suffix(".rejected.jsonl"))
    try:
        with open(output, "w", encoding="utf-8") as sink:
            for input_path in args.input:
                default_benchmark = args.benchmark or Path(input_path).stem
                for record in tqdm(iter_records(input_path), desc=f"converting {Path(input_path).name}", unit=" rows"):
                    if record.error is not None:
                        report.add_rejected(record.position, MALFORMED_JSON, record.error, source=input_path)
                        continue
                    try:
                        row = parse_row(record.value, names, fallback_id=f"row-{record.position}")
                        images = [os.path.abspath(resolve_media_path(p, args.media_root)) for p in row.images]
                        videos = [os.path.abspath(resolve_media_path(p, args.media_root)) for p in row.videos]
                        for modality, paths in (("image", images), ("video", videos)):
                            for path in paths:
                                check_media_file(path, modality, args.check_media)
                    except RowRejected as rejection:
                        row_id = row_id_of(record.value, names)
                        report.add_rejected(record.position, rejection.reason, rejection.detail, row_id, input_path)
                        continue
                    benchmark = args.benchmark or record.value.get("benchmark") or default_benchmark
                    prompt = build_prompt_text(
                        row.question, row.problem_type, row.data_type, row.options, len(images), len(videos), templates
                    )
                    eval_row = {
                        "benchmark": benchmark,
                        "id": row.row_id,
                        "problem_type": row.problem_type,
                        "data_type": row.data_type,
                        "prompt": prompt,
                        "images": images,
                        "videos": videos,
                        "ground_truth": row.ground_truth,
                        "question": row.question,
                        "options": row.options,
                    }
                    sink.write(json.dumps(eval_row, ensure_ascii=False) + "\n")
                    report.add_written(benchmark, row.problem_type, row.data_type)
    finally:
        report.close()
    return report


def main(argv=None) -> int:
    return run_converter(parse_args, convert, argv)


if __name__ == "__main__":
    sys.exit(main())
