"""Command line: ``python -m onethinker_verl.evaluate --predictions P.jsonl --output R.json``.

Exit codes: 0 done; 1 the predictions file cannot be read; 2 ``--strict`` met a malformed line.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from onethinker_verl.evaluate.aggregate import METRIC_NAMES
from onethinker_verl.evaluate.evaluation import EvaluationResult, MalformedInputError, evaluate_file

logger = logging.getLogger("onethinker_verl.evaluate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m onethinker_verl.evaluate",
        description="Benchmark metrics of OneThinker predictions (JSONL, one prediction per line).",
    )
    parser.add_argument("--predictions", required=True, type=Path, help="JSONL predictions file")
    parser.add_argument("--output", required=True, type=Path, help="where to write the JSON report")
    parser.add_argument("--markdown", type=Path, help="also write a Markdown report here")
    parser.add_argument("--plots", type=Path, help="also write PNG plots into this folder")
    parser.add_argument("--strict", action="store_true", help="fail on the first malformed line instead of skipping it")
    return parser


def summary_lines(result: EvaluationResult) -> list[str]:
    """One line per benchmark with its metrics in percent, for the terminal."""
    lines = []
    for family, metric_names in METRIC_NAMES.items():
        for name, benchmark in sorted(result.benchmarks.items()):
            if benchmark.family == family:
                metrics = benchmark.metrics()
                shown = "  ".join(f"{metric}={100 * metrics[metric]:.1f}" for metric in metric_names)
                lines.append(f"{name:<32} {family:<28} n={len(benchmark.items):<6} {shown}")
    lines.append(f"skipped lines: {len(result.skipped)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = evaluate_file(args.predictions, strict=args.strict)
    except OSError as exc:
        logger.error("cannot read %s: %s", args.predictions, exc)
        return 1
    except MalformedInputError as exc:
        logger.error("%s (--strict)", exc)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %s", args.output)
    if args.markdown or args.plots:
        # Imported here so that the JSON-only path never loads matplotlib.
        from onethinker_verl.evaluate.report import render_markdown, write_plots

        plots = write_plots(result, args.plots) if args.plots else None
        if args.markdown:
            args.markdown.parent.mkdir(parents=True, exist_ok=True)
            markdown = render_markdown(result, plots, base_dir=args.markdown.parent)
            args.markdown.write_text(markdown, encoding="utf-8")
            logger.info("wrote %s", args.markdown)
    print("\n".join(summary_lines(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
