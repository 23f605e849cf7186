"""Convert OneThinker evaluation files into the JSON Lines rows the evaluation code reads.

Each input file is one benchmark, named after the file without the reference's ``eval_`` prefix
(``eval_charades.json`` -> ``charades``) unless a row carries ``benchmark`` or ``--benchmark`` is given. Rows
use the single ``path`` (plus ``additional_path`` for ``video-image`` rows: a video and one extra image). Each
output line has ``benchmark``, ``id``, ``problem_type``, ``data_type``, ``prompt`` (the user text with
``<image>``/``<video>`` placeholders, built by the same prompt builder as training), ``images`` / ``videos``
(absolute paths), ``ground_truth``, ``question`` and ``options``.

Segmentation rows also carry the ground truth mask scoring needs, checked here: ``resolution``
(``{"width", "height"}`` in pixels), ``segmentation_output`` as in the benchmark file (image:
``segmentation_rle``, one COCO RLE; video: ``frames``, the frame keys in order, frame k at k / fps seconds,
and ``segmentation_rle``, frame key -> RLE), ``fps`` (video, > 0), and the same masks as ``gt_masks`` (one RLE,
or frame key -> RLE in frame order). A row whose masks name frames outside its frame list, or lack any of
these, is rejected as malformed ground truth. Rejected rows go to OUTPUT.rejected.jsonl (with the file they
came from). ``--verl-parquet VAL.parquet`` also writes the accepted rows in verl's layout for
``data.val_files`` (absolute media paths, so training's ``data.media_root`` does not matter; ``data_source`` =
benchmark and ``extra_info.benchmark`` set, so verl reports each benchmark's reference metrics).
"""

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from onethinker_verl.data.cli import (
    add_field_name_options,
    add_media_check_option,
    converter_parser,
    field_names_from_args,
    run_converter,
)
from onethinker_verl.data.corpus import (
    MALFORMED_GROUND_TRUTH,
    MALFORMED_JSON,
    RowRejected,
    parse_row,
    row_id_of,
    verl_rl_record,
)
from onethinker_verl.data.media import check_media_file, resolve_media_path
from onethinker_verl.data.parquet import RL_SCHEMA, BatchedParquetWriter
from onethinker_verl.data.prompts import build_prompt_text, load_templates
from onethinker_verl.data.raw_corpus import mark_benchmark
from onethinker_verl.data.records import iter_records
from onethinker_verl.data.report import ConversionReport

EXAMPLES = [
    "python data_prep/prepare_eval.py --input eval/mmmu.json eval/charades_sta.json "
    "--media-root /data/onethinker_eval --output data/eval_rows.jsonl",
    "python data_prep/prepare_eval.py --input eval/mmmu.json --media-root /data/onethinker_eval "
    "--output data/eval_rows.jsonl --verl-parquet data/val.parquet",
]


def segmentation_ground_truth(raw: dict, data_type: str) -> dict:
    """The mask ground truth of a segmentation row (see the module docstring); raises RowRejected."""
    from onethinker_verl.evaluate import masks as mask_ops  # scikit-image: imported on use, not for --help

    def reject(detail: str):
        raise RowRejected(MALFORMED_GROUND_TRUTH, f"segmentation: {detail}")

    resolution = raw.get("resolution")
    if not isinstance(resolution, dict) or not all(
        isinstance(resolution.get(key), int) and not isinstance(resolution.get(key), bool) and resolution[key] > 0
        for key in ("width", "height")
    ):
        reject(f"'resolution' must be {{'width': W, 'height': H}} in positive pixels, got {resolution!r}")
    output = raw.get("segmentation_output")
    if not isinstance(output, dict):
        reject("'segmentation_output' must be an object")
    masks = output.get("segmentation_rle")
    carried = {"resolution": resolution, "segmentation_output": output}
    if data_type == "image":
        if not mask_ops.is_rle(masks):
            reject("image 'segmentation_output.segmentation_rle' must be one COCO RLE")
        carried["gt_masks"] = masks
        return carried
    frames, fps = output.get("frames"), raw.get("fps")
    if not isinstance(frames, list) or not frames:
        reject("video 'segmentation_output.frames' must be a non-empty list of frame keys")
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not fps > 0:
        reject(f"video 'fps' must be a positive number, got {fps!r}")
    if not isinstance(masks, dict) or not all(mask_ops.is_rle(rle) for rle in masks.values()):
        reject("video 'segmentation_output.segmentation_rle' must map frame keys to COCO RLEs")
    unknown = [key for key in masks if key not in frames]
    if unknown:
        reject(f"masks for frames not in 'frames' (the reference would ignore them): {unknown[:5]}")
    carried["fps"] = fps
    carried["gt_masks"] = {key: masks.get(key) for key in frames}
    return carried


def parse_args(argv=None) -> argparse.Namespace:
    parser = converter_parser(__doc__, EXAMPLES)
    parser.add_argument("--input", required=True, nargs="+", help="evaluation JSON / JSON Lines file(s)")
    parser.add_argument("--media-root", default=None, help="folder the rows' media paths are relative to")
    parser.add_argument("--output", required=True, help="output .jsonl file")
    parser.add_argument("--benchmark", default=None, help="benchmark name for every row (default: file name)")
    parser.add_argument("--prompt-templates", default=None, help="prompt template YAML (default: packaged)")
    parser.add_argument(
        "--verl-parquet",
        default=None,
        help="also write the accepted rows as a verl parquet for data.val_files (absolute media paths, "
        "data_source = benchmark, extra_info.benchmark set: verl then reports the benchmark metrics per benchmark)",
    )
    add_field_name_options(parser)
    add_media_check_option(parser)
    args = parser.parse_args(argv)
    for path in args.input:
        if not Path(path).is_file():
            parser.error(f"--input file not found: {path}")
    return args


def convert(args: argparse.Namespace) -> ConversionReport:
    from onethinker_verl.evaluate.reference.outputs import benchmark_name_of  # imports the reward scorers: not for --help

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    templates = load_templates(args.prompt_templates)
    names = field_names_from_args(args)
    report = ConversionReport(output.with_suffix(".rejected.jsonl"))
    parquet = BatchedParquetWriter(args.verl_parquet, RL_SCHEMA) if args.verl_parquet else None
    try:
        with open(output, "w", encoding="utf-8") as sink:
            for input_path in args.input:
                default_benchmark = benchmark_name_of(input_path)
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
                        masks = (
                            segmentation_ground_truth(record.value, row.data_type)
                            if row.problem_type == "segmentation"
                            else {}
                        )
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
                        **masks,
                    }
                    sink.write(json.dumps(eval_row, ensure_ascii=False) + "\n")
                    if parquet is not None:
                        resolved = dataclasses.replace(row, images=images, videos=videos)
                        parquet.write(mark_benchmark(verl_rl_record(resolved, record.position, templates), benchmark))
                    report.add_written(benchmark, row.problem_type, row.data_type)
    finally:
        report.close()
        if parquet is not None:
            parquet.close()
    return report


def main(argv=None) -> int:
    return run_converter(parse_args, convert, argv)


if __name__ == "__main__":
    sys.exit(main())
