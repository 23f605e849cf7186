"""Command line: ``python -m onethinker_verl.evaluate {generate,score,sam2,run} ...``.

- ``generate``: model outputs for benchmark files (reference input/output format, reference protocol);
- ``score``: metrics of output files (reference format) or of the project's predictions JSONL, by the
  reference protocol (default) or the project's strict protocol (``--protocol strict``);
- ``sam2``: masks for the segmentation rows of output files with SAM2, then re-scoring;
- ``run``: all of the above over a suite's benchmark files, with the Markdown report.

Without a subcommand the arguments are those of ``score`` (the earlier command line).
Exit codes: 0 done; 1 an input or the model cannot be read, or every row failed generation; 2 ``--strict``
met a malformed line; 3 SAM2 missing; 4 more rows than ``--max-failed-fraction`` failed generation.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from onethinker_verl.evaluate.strict.aggregate import METRIC_NAMES
from onethinker_verl.evaluate.strict.evaluation import (
    EvaluationResult,
    MalformedInputError,
    evaluate_file,
    evaluate_predictions,
    predictions_from_outputs,
)
from onethinker_verl.evaluate.generation import (
    BackendUnavailable,
    GenerationFailed,
    add_generation_arguments,
    generate,
    settings_from_arguments,
    summarise_outputs,
)
from onethinker_verl.evaluate.reference.outputs import OutputFormatError, read_outputs

logger = logging.getLogger("onethinker_verl.evaluate")

EXIT_CODES = ("exit codes: 0 done; 1 an input or the model cannot be read, or every row failed generation; "
              "2 score --strict met a malformed line; 3 SAM2 is not installed; "
              "4 more rows than --max-failed-fraction failed generation (outputs and report are written)")

SUBCOMMANDS = ("generate", "score", "sam2", "run")
PROTOCOLS = ("reference", "strict")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m onethinker_verl.evaluate", description=__doc__.split("\n")[0],
                                     epilog=EXIT_CODES)
    commands = parser.add_subparsers(dest="command", required=True)

    generate_parser = commands.add_parser("generate", help="model outputs for benchmark files", epilog=EXIT_CODES)
    generate_parser.add_argument("--model", required=True, help="checkpoint folder with config.json (Hugging Face format)")
    generate_parser.add_argument("--inputs", required=True, nargs="+", type=Path, help="benchmark files (.json / .jsonl)")
    generate_parser.add_argument("--out-dir", required=True, type=Path, help="where OUT/<stem><suffix>.json go")
    add_generation_arguments(generate_parser)

    score = commands.add_parser("score", help="metrics of output / predictions files")
    _add_score_arguments(score)

    sam2 = commands.add_parser("sam2", help="SAM2 masks for the segmentation rows of output files")
    sam2.add_argument("--outputs", required=True, nargs="+", type=Path, help="output files (rewritten in place)")
    sam2.add_argument("--checkpoint", required=True, help="SAM2 checkpoint (.pt)")
    sam2.add_argument("--config", default="configs/sam2.1/sam2.1_hiera_l.yaml",
                      help="SAM2 model config name, as the sam2 package names it (default: %(default)s)")
    sam2.add_argument("--media-root", default=None,
                      help="folder the rows' relative media paths start from (default: the current folder)")
    sam2.add_argument("--device", default="auto",
                      help="torch device SAM2 runs on; auto (default): cuda when available, else mps, else cpu, as the reference")

    run = commands.add_parser("run", help="generation, SAM2 and scoring over a suite, with the report", epilog=EXIT_CODES)
    run.add_argument("--suite", default="onethinker", choices=("onethinker",),
                     help="benchmark files to look for in --bench-dir: onethinker = the 23 files of the reference's "
                     "eval_bench_all.sh (default: %(default)s)")
    run.add_argument("--bench-dir", required=True, type=Path, help="folder holding the eval_*.json files")
    run.add_argument("--model", required=True, help="checkpoint folder with config.json (Hugging Face format)")
    run.add_argument("--out-dir", required=True, type=Path, help="where generation/, report.json, report.md and plots/ go")
    run.add_argument("--sam2-checkpoint", default=None, help="SAM2 checkpoint (.pt); without it no mask metrics")
    run.add_argument("--sam2-config", default="configs/sam2.1/sam2.1_hiera_l.yaml",
                     help="SAM2 model config name, as the sam2 package names it (default: %(default)s)")
    run.add_argument("--device", default="auto",
                     help="torch device SAM2 runs on; auto (default): cuda when available, else mps, else cpu, as the reference")
    run.add_argument("--published", default=None, help="published-numbers YAML (default: the packaged published.yaml)")
    add_generation_arguments(run)
    return parser


def _add_score_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--predictions", "--outputs", dest="predictions", required=True, nargs="+", type=Path,
                        help="output files (reference format) or predictions JSONL")
    parser.add_argument("--output", required=True, type=Path, help="where to write the JSON report")
    parser.add_argument("--markdown", type=Path, help="also write a Markdown report here")
    parser.add_argument("--plots", type=Path, help="also write PNG plots into this folder")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="reference",
                        help="reference: OneThinker's eval_bench.py / seg_post_sam2.py metrics (default); "
                        "strict: the project's stricter variants (DAVIS J/F, first letter, tag normalisation)")
    parser.add_argument("--published", default=None,
                        help="published-numbers YAML for the reference report (default: the packaged published.yaml)")
    parser.add_argument("--scored-dir", type=Path, default=None,
                        help="reference protocol: where each re-scored benchmark file (per-row accuracy, components, "
                        "mask rewards) goes (default: <output stem>_scored/ beside --output)")
    parser.add_argument("--strict", action="store_true", help="strict protocol: fail on the first malformed line instead of skipping it")


def summary_lines(result: EvaluationResult) -> list[str]:
    """One line per benchmark with its strict-protocol metrics in percent, for the terminal."""
    lines = []
    for family, metric_names in METRIC_NAMES.items():
        for name, benchmark in sorted(result.benchmarks.items()):
            if benchmark.family == family:
                metrics = benchmark.metrics()
                shown = "  ".join(f"{metric}={100 * metrics[metric]:.1f}" for metric in metric_names)
                lines.append(f"{name:<32} {family:<28} n={len(benchmark.items):<6} {shown}")
    lines.append(f"skipped lines: {len(result.skipped)}")
    return lines


def _score(args) -> int:
    if args.protocol == "reference":
        from onethinker_verl.evaluate.report import headline_metric
        from onethinker_verl.evaluate.suite import score_files, write_report

        scored_dir = args.scored_dir or args.output.parent / f"{args.output.stem}_scored"
        scored, empty = [], []
        try:
            for path in args.predictions:
                of_file = score_files([path], scored_dir)
                scored += of_file
                if not any(benchmark.meta["rows"] for benchmark in of_file):
                    empty.append(str(path))
        except (OSError, OutputFormatError) as exc:
            logger.error("%s", exc)
            return 1
        if empty:
            # a report of 0.0 over no rows would read as a result
            logger.error("nothing to score in %s: no rows (an empty output file: did its generation run?)", ", ".join(empty))
            return 1
        write_report(scored, args.output.parent, args.published, plots_dir=args.plots, plots=args.plots is not None,
                     markdown_path=args.markdown or args.output.with_suffix(".md"), json_path=args.output)
        for benchmark in scored:
            metric = headline_metric(benchmark.metrics)
            print(f"{benchmark.name:<32} n={benchmark.meta['rows']:<6} {metric}={100 * benchmark.metrics[metric]:.1f}")
        return 0
    try:
        if len(args.predictions) == 1 and args.predictions[0].suffix == ".jsonl" and _is_prediction_lines(args.predictions[0]):
            result = evaluate_file(args.predictions[0], strict=args.strict)
        else:
            benchmarks = [benchmark for path in args.predictions for benchmark in read_outputs(path)]
            result = evaluate_predictions(predictions_from_outputs(benchmarks), strict=args.strict)
    except (OSError, OutputFormatError) as exc:
        logger.error("cannot read the predictions: %s", exc)
        return 1
    except MalformedInputError as exc:
        logger.error("%s (--strict)", exc)
        return 2
    if not any(benchmark.items for benchmark in result.benchmarks.values()):
        logger.error("nothing to score in %s: no predictions (%d lines skipped)",
                     ", ".join(map(str, args.predictions)), len(result.skipped))
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %s", args.output)
    if args.markdown or args.plots:
        # Imported here so that the JSON-only path never loads matplotlib.
        from onethinker_verl.evaluate.report import render_markdown, write_plots

        plots = write_plots(result, args.plots) if args.plots else None
        if args.markdown:
            args.markdown.parent.mkdir(parents=True, exist_ok=True)
            args.markdown.write_text(render_markdown(result, plots, base_dir=args.markdown.parent), encoding="utf-8")
            logger.info("wrote %s", args.markdown)
    print("\n".join(summary_lines(result)))
    return 0


def _is_prediction_lines(path: Path) -> bool:
    """Whether a .jsonl file is the project's predictions format (lines with ``response``)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip():
                try:
                    return "response" in json.loads(line)
                except (ValueError, TypeError):
                    return True  # malformed first line: the strict reader reports it
    return True


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help"):
        argv = ["score", *argv]  # the earlier command line had no subcommand
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "score":
        return _score(args)
    try:
        return _run_command(args)
    except GenerationFailed as exc:
        logger.error("%s", exc)
        return exc.exit_code
    except (BackendUnavailable, FileNotFoundError, ValueError) as exc:
        # a missing backend, model, benchmark folder or input, or an output of another input: say so, no traceback
        logger.error("%s", exc)
        return 1


def _run_command(args) -> int:
    if args.command == "generate":
        outputs = generate(args.inputs, args.out_dir, args.model, settings_from_arguments(args))
        summarise_outputs(outputs).check(args.max_failed_fraction)
        return 0
    if args.command == "sam2":
        from onethinker_verl.evaluate.sam2_bridge import EXIT_SAM2_MISSING, run_sam2, sam2_available

        if not sam2_available():
            logger.error("SAM2 is not installed (needs the `sam2` and `torch` packages); no masks written. "
                         "Rows that already carry pred_masks are scored without it.")
            return EXIT_SAM2_MISSING
        run_sam2(args.outputs, args.checkpoint, args.config, args.media_root, args.device)
        return 0
    from onethinker_verl.evaluate.suite import run_suite

    settings = settings_from_arguments(args)
    if settings.media_root is None:
        settings = dataclasses.replace(settings, media_root=str(args.bench_dir))
    run_suite(args.suite, args.bench_dir, args.model, args.out_dir, settings, args.sam2_checkpoint, args.sam2_config,
              args.device, args.published, max_failed_fraction=args.max_failed_fraction)
    return 0


if __name__ == "__main__":
    sys.exit(main())
