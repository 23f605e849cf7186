"""Human-readable outputs of an evaluation: Markdown reports and matplotlib PNG plots, for the reference
protocol (default; :func:`render_reference_markdown`) and the project's strict protocol (:func:`render_markdown`).

Tables and plots show metrics as percentages (the JSON report keeps fractions in [0, 1]).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on training or CI machines
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)

from onethinker_verl.evaluate.strict.aggregate import CURVE_THRESHOLDS, METRIC_NAMES  # noqa: E402
from onethinker_verl.evaluate.strict.evaluation import LISTED_SKIPPED_LINES, EvaluationResult  # noqa: E402
from onethinker_verl.evaluate.strict.metrics import TRACKING  # noqa: E402

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


def _save_figure(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


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
    return _save_figure(figure, path)


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
    return _save_figure(figure, path)


# ------------------------------------------------------------------ reference protocol (the default)

DEFAULT_PUBLISHED_PATH = Path(__file__).with_name("published.yaml")
# Component metrics whose recall against the threshold is plotted, per problem type.
_CURVE_COMPONENTS = (("temporal grounding", "tiou"), ("spatial grounding", "iou"), ("spatial-temporal grounding", "tiou"),
                     ("spatial-temporal grounding", "miou_inter"), ("tracking", "miou_gt"))


def load_published(path: str | os.PathLike | None = None) -> dict[str, dict]:
    """Published numbers: benchmark name -> {metric, value (percent), source, runner}; see published.yaml."""
    import yaml

    source = Path(path) if path else DEFAULT_PUBLISHED_PATH
    document = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    benchmarks = document.get("benchmarks") or {}
    if not isinstance(benchmarks, dict):
        raise ValueError(f"{source}: 'benchmarks' must be a mapping of benchmark name to an entry")
    for name, entry in benchmarks.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("metric"), str) or not isinstance(entry.get("value"), int | float):
            raise ValueError(f"{source}: benchmarks.{name} needs a string 'metric' and a numeric 'value' (percent)")
    return benchmarks


def headline_metric(metrics: dict[str, float]) -> str:
    """The metric a benchmark is summarised by: J&F, gIoU, Acc@0.5, tracking mIoU, tIoU, else overall accuracy."""
    for name in ("video/J&F", "image/gIoU", "spatial grounding/iou/R@0.5", "tracking/miou_gt/mean",
                 "spatial-temporal grounding/tiou/mean", "temporal grounding/tiou/mean"):
        if name in metrics:
            return name
    return "overall/acc"


def render_reference_markdown(scored: list, published: dict[str, dict], plots: list[Path] | None = None,
                              base_dir: Path | None = None) -> str:
    """The report of reference-protocol results (:class:`~onethinker_verl.evaluate.reference.outputs.ScoredBenchmark`
    list): a summary with published numbers beside ours, then every metric of every benchmark."""
    lines = [
        "# Benchmark evaluation (reference protocol)",
        "",
        "Scores follow OneThinker's `eval_bench.py` / `seg_post_sam2.py` (metric names are the reference's; "
        "values in percent). `published` is from the table file; Δ = ours − published.",
        "",
        "| benchmark | rows | metric | ours | published | Δ |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for benchmark in scored:
        metric, ours, theirs = headline_of(benchmark, published)
        reference = "–" if math.isnan(theirs) else f"{theirs:.1f}"  # NaN: nothing published for this metric
        delta = "–" if math.isnan(theirs) else f"{ours - theirs:+.1f}"
        lines.append(f"| {_escape(benchmark.name)} | {benchmark.meta['rows']} | `{metric}` | {ours:.1f} | {reference} | {delta} |")
    elsewhere = {name: entry for name, entry in published.items() if name not in {b.name for b in scored}}
    if elsewhere:
        lines += ["", "Published numbers without a result here (VLMEvalKit benchmarks are run through VLMEvalKit, see README):", ""]
        lines += [f"- {name}: {entry['metric']} {entry['value']:.1f} ({entry.get('runner', 'eval_bench')})"
                  for name, entry in sorted(elsewhere.items())]
    lines.append("")
    for benchmark in scored:
        meta = benchmark.meta
        lines += [f"## {_escape(benchmark.name)}", ""]
        notes = [f"rows: {meta['rows']}"]
        if meta.get("generation_failed_rows"):
            notes.append(f"{meta['generation_failed_rows']} failed generation (media unreadable; scored 0)")
        if meta.get("crashed_rows"):
            notes.append(f"{meta['crashed_rows']} on which the reference would raise (scored 0)")
        segmentation = meta.get("segmentation")
        if segmentation:
            left_out = ", ".join(f"{count} {reason}" for reason, count in sorted(segmentation["left_out"].items()))
            notes.append(f"segmentation: {segmentation['scored']} of {segmentation['rows']} rows mask-scored"
                         + (f" (left out as in the reference: {left_out})" if left_out else ""))
        lines += ["; ".join(notes) + ".", "", "| metric | value |", "|---|---:|"]
        lines += [f"| `{_escape(name)}` | {100 * value:.1f} |" for name, value in benchmark.metrics.items()]
        lines.append("")
    for png in plots or []:
        link = os.path.relpath(png, base_dir) if base_dir is not None else str(png)
        lines += [f"![{png.stem}]({Path(link).as_posix()})", ""]
    return "\n".join(lines)


def _plot_headline(scored: list, published: dict[str, dict], path: Path) -> Path:
    """Horizontal bars, one row per benchmark (top to bottom in report order), labelled with the benchmark
    and the metric it is summarised by; ours and published side by side, values at the bar ends, the
    legend above the axes so that it never covers a bar. Readable from 1 to a few dozen benchmarks."""
    headlines = [headline_of(benchmark, published) for benchmark in scored]
    labels = [f"{benchmark.name}\n{metric}" for benchmark, (metric, _, _) in zip(scored, headlines)]
    figure, axes = plt.subplots(figsize=(8, 1.6 + 0.55 * len(scored)))
    rows = range(len(scored))
    for offset, label, values in ((-0.2, "ours", [ours for _, ours, _ in headlines]),
                                  (0.2, "published", [theirs for _, _, theirs in headlines])):
        bars = axes.barh([row + offset for row in rows], values, height=0.4, label=label)
        axes.bar_label(bars, labels=["" if math.isnan(value) else f"{value:.1f}" for value in values], padding=2, fontsize="small")
    axes.set_yticks(list(rows), labels, fontsize="small")
    axes.set_ylim(len(scored) - 0.5, -0.5)  # first benchmark on top
    axes.set_xlim(0, 110)  # room for the value labels of bars near 100
    axes.set_xlabel("headline metric of each benchmark, named under it (%)")
    axes.set_title("Headline metric per benchmark: ours vs published", fontsize="medium", pad=24)
    axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, fontsize="small", frameon=False)
    return _save_figure(figure, path)


def headline_of(benchmark, published: dict[str, dict]) -> tuple[str, float, float]:
    """(metric, ours in percent, published in percent or NaN) of one scored benchmark: the published entry's
    metric when the benchmark has it, else :func:`headline_metric`."""
    entry = published.get(benchmark.name)
    metric = entry["metric"] if entry and entry["metric"] in benchmark.metrics else headline_metric(benchmark.metrics)
    theirs = entry["value"] if entry and entry["metric"] == metric else float("nan")
    return metric, 100 * benchmark.metrics[metric], theirs


def write_reference_plots(scored: list, published: dict[str, dict], directory: str | os.PathLike) -> list[Path]:
    """PNG plots: headline metric per benchmark (ours beside published), and recall vs threshold curves
    of the grounding / tracking components. Returns the files written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    if scored:
        written.append(_plot_headline(scored, published, directory / "headline.png"))
    curves = []
    for problem_type, component in _CURVE_COMPONENTS:
        for benchmark in scored:
            values = [row["components"][component] for row in benchmark.results
                      if str(row.get("problem_type", "")).strip().lower() == problem_type and component in row.get("components", {})]
            if values:
                curves.append((f"{benchmark.name}: {problem_type} {component}", values))
    if curves:
        figure, axes = plt.subplots(figsize=(7, 4))
        for label, values in curves:
            recall = [100 * sum(value >= threshold for value in values) / len(values) for threshold in CURVE_THRESHOLDS]
            axes.plot(CURVE_THRESHOLDS, recall, marker=".", label=label)
        axes.set_xlabel("threshold")
        axes.set_ylabel("recall (%)")
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 100)
        axes.legend(fontsize="x-small")
        written.append(_save_figure(figure, directory / "recall_curves.png"))
    return written
