"""Human-readable outputs of an evaluation: a Markdown report and matplotlib PNG plots.

Tables and plots show metrics as percentages (the JSON report keeps fractions in [0, 1]).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on training or CI machines
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)

from onethinker_verl.evaluate.aggregate import CURVE_THRESHOLDS, METRIC_NAMES  # noqa: E402
from onethinker_verl.evaluate.evaluation import LISTED_SKIPPED_LINES, EvaluationResult  # noqa: E402
from onethinker_verl.evaluate.metrics import TRACKING  # noqa: E402

TASK_DESCRIPTIONS = {
    "question answering": "accuracy: multiple choice by first letter, numerical at 2 decimals, regression by "
    "mean relative accuracy, OCR as 1 − WER, open-ended as mean ROUGE-1/2/L F, math by symbolic equivalence",
    "temporal grounding": "mean tIoU and recall at tIoU ≥ 0.3 / 0.5 / 0.7",
    "spatial grounding": "accuracy at box IoU ≥ 0.5 and mean box IoU",
    "spatial-temporal grounding": "mean tIoU, mean box IoU over common frames, and their recalls",
    "tracking": "average overlap and success rates at IoU 0.5 / 0.75 (per-sequence, then averaged)",
    "image segmentation": "gIoU (mean per-image IoU) and cIoU (total intersection / total union)",
    "video segmentation": "J (region IoU), F (DAVIS boundary F-measure), J&F",
}


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def render_markdown(result: EvaluationResult, plots: dict[str, list[Path]] | None = None, base_dir: Path | None = None) -> str:
    """The report as Markdown: a summary, then one table per task family (benchmarks as rows).

    ``plots`` maps a family to its PNG files; they are linked relative to ``base_dir`` (the
    Markdown file's folder) when given.
    """
    summary = result.summary()
    lines = [
        "# Benchmark evaluation",
        "",
        f"{summary['count']} predictions in {summary['benchmarks']} benchmarks; "
        f"{summary['unparsed']} unparsed answers (scored as wrong); {summary['skipped_lines']} skipped lines.",
        "Metrics are percentages.",
        "",
    ]
    for family, metric_names in METRIC_NAMES.items():
        members = sorted((r for r in result.benchmarks.values() if r.family == family), key=lambda r: r.name)
        if not members:
            continue
        lines += [f"## {family.capitalize()}", "", TASK_DESCRIPTIONS[family] + ".", ""]
        lines.append("| benchmark | count | unparsed | " + " | ".join(metric_names) + " |")
        lines.append("|---|---:|---:|" + "---:|" * len(metric_names))
        for member in members:
            metrics = member.metrics()
            cells = [_escape(member.name), str(len(member.items)), str(member.unparsed)]
            cells += [_percent(metrics[name]) for name in metric_names]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        for png in (plots or {}).get(family, []):
            link = os.path.relpath(png, base_dir) if base_dir is not None else str(png)
            lines += [f"![{family}: {png.stem}]({Path(link).as_posix()})", ""]
    if result.skipped:
        lines += ["## Skipped lines", "", "| line | reason |", "|---:|---|"]
        lines += [f"| {s.line} | {_escape(s.reason)} |" for s in result.skipped[:LISTED_SKIPPED_LINES]]
        if len(result.skipped) > LISTED_SKIPPED_LINES:
            lines.append(f"| … | {len(result.skipped) - LISTED_SKIPPED_LINES} more |")
        lines.append("")
    return "\n".join(lines)


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_plots(result: EvaluationResult, directory: str | Path) -> dict[str, list[Path]]:
    """Write per-family PNGs into ``directory``: metric bars per benchmark, and for grounding and
    tracking the recall (success) vs IoU-threshold curves. Returns the files per family."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    for family, metric_names in METRIC_NAMES.items():
        members = sorted((r for r in result.benchmarks.values() if r.family == family), key=lambda r: r.name)
        if not members:
            continue
        files = [_plot_bars(family, metric_names, members, directory / f"bars_{_slug(family)}.png")]
        curves = {member.name: member.curves() for member in members}
        if any(curves.values()):
            files.append(_plot_curves(family, curves, directory / f"recall_{_slug(family)}.png"))
        written[family] = files
    return written


def _plot_bars(family: str, metric_names: tuple[str, ...], members: list, path: Path) -> Path:
    """Grouped bars: one group per benchmark, one bar per metric."""
    figure, axes = plt.subplots(figsize=(max(6.0, 1.2 * len(members) * len(metric_names) ** 0.5 + 2), 4))
    width = 0.8 / len(metric_names)
    for index, name in enumerate(metric_names):
        heights = [100 * member.metrics()[name] for member in members]
        positions = [position + (index - (len(metric_names) - 1) / 2) * width for position in range(len(members))]
        axes.bar(positions, heights, width=width, label=name)
    axes.set_xticks(range(len(members)), [member.name for member in members], rotation=30, ha="right")
    axes.set_ylim(0, 100)
    axes.set_ylabel("%")
    axes.set_title(family)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _plot_curves(family: str, curves: dict[str, dict], path: Path) -> Path:
    """One panel per overlap kind (tIoU, box IoU); one line per benchmark."""
    kinds = sorted({kind for per_benchmark in curves.values() for kind in per_benchmark})
    figure, panels = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 4), squeeze=False)
    ylabel = "success rate (%)" if family == TRACKING else "recall (%)"
    for panel, kind in zip(panels[0], kinds):
        for name, per_benchmark in curves.items():
            panel.plot(CURVE_THRESHOLDS, 100 * per_benchmark[kind], marker=".", label=name)
        panel.set_xlabel(f"{kind} threshold")
        panel.set_ylabel(ylabel)
        panel.set_xlim(0, 1)
        panel.set_ylim(0, 100)
        panel.set_title(f"{family}: {kind}")
        panel.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
