"""``evaluate run``: the paper's benchmark table in one command, by the reference protocol.

    python -m onethinker_verl.evaluate run --suite onethinker --bench-dir BENCH --model CKPT --out-dir OUT

Finds the 23 benchmark files of the reference's ``eval_bench_all.sh`` in ``BENCH`` (those absent are
listed and skipped), generates the model's outputs (:mod:`.generation`, resumable), runs SAM2 on the
five segmentation files when ``sam2`` is installed and a checkpoint is given (:mod:`.sam2_bridge`;
otherwise says so and reports those files without mask metrics), scores everything (:mod:`.reference.outputs`)
and writes ``OUT/report.json``, ``OUT/report.md`` (published numbers beside ours, from
``published.yaml`` or ``--published``) and ``OUT/plots/``. The image-QA and captioning benchmarks run
through VLMEvalKit (README, :mod:`.vlmevalkit`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from onethinker_verl.evaluate.generation import DEFAULT_MAX_FAILED_FRACTION, GenerationSettings, generate, summarise_outputs
from onethinker_verl.evaluate.reference.outputs import ScoredBenchmark, read_outputs, score_benchmark, write_json_atomic
from onethinker_verl.evaluate.report import load_published, render_reference_markdown, write_reference_plots
from onethinker_verl.evaluate.sam2_bridge import Sam2SetupError, check_sam2_setup, run_sam2, sam2_available

logger = logging.getLogger(__name__)

# eval_bench_all.sh's datasets, in its order: video QA, temporal grounding, spatial grounding,
# spatio-temporal grounding, tracking, image segmentation, video segmentation.
SUITES = {
    "onethinker": (
        "eval_longvideoreason.json", "eval_mmvu.json", "eval_videomathqa.json", "eval_videomme.json", "eval_videommmu.json",
        "eval_charades.json", "eval_anet_rtl.json", "eval_activitynet.json",
        "eval_refcoco_testA.json", "eval_refcoco_testB.json", "eval_refcoco_val.json", "eval_refcocop_testA.json",
        "eval_refcocop_testB.json", "eval_refcocop_val.json", "eval_refcocog_test.json", "eval_refcocog_val.json",
        "eval_stvg.json",
        "eval_got10k.json",
        "eval_seg_refcoco.json", "eval_seg_refcocog.json", "eval_seg_refcocop.json",
        "eval_seg_mevis.json", "eval_seg_reasonvos.json",
    ),
}
SEGMENTATION_FILES = frozenset(name for name in SUITES["onethinker"] if name.startswith("eval_seg_"))


def find_suite_files(suite: str, bench_dir: str | Path) -> tuple[list[Path], list[str]]:
    """(files found in ``bench_dir``, names missing) for a suite; ``.jsonl`` stands in for ``.json``."""
    found, missing = [], []
    for name in SUITES[suite]:
        candidates = [Path(bench_dir) / name, Path(bench_dir) / (Path(name).stem + ".jsonl")]
        present = next((path for path in candidates if path.is_file()), None)
        if present is None:
            missing.append(name)
        else:
            found.append(present)
    return found, missing


def score_files(paths: list[Path], scored_dir: Path | None = None) -> list[ScoredBenchmark]:
    """Score output files by the reference protocol (re-writing them into ``scored_dir`` when given)."""
    scored = []
    for path in paths:
        for benchmark in read_outputs(path):
            result = score_benchmark(benchmark)
            if scored_dir is not None:
                write_json_atomic(scored_dir / f"{result.name}.json", result.to_json())
            scored.append(result)
    return scored


def write_report(scored: list[ScoredBenchmark], out_dir: Path, published_path: str | None = None,
                 plots_dir: Path | None = None, markdown_path: Path | None = None, json_path: Path | None = None,
                 plots: bool = True) -> dict:
    """``report.json`` (metrics and counts per benchmark), ``report.md`` and (with ``plots``) PNG plots in
    ``plots_dir`` (default: ``plots/`` beside the Markdown report); returns the JSON."""
    published = load_published(published_path)
    report = {benchmark.name: {"metrics": benchmark.metrics,
                               "meta": {k: v for k, v in benchmark.meta.items() if k not in ("generation",)}}
              for benchmark in scored}
    json_path = json_path or out_dir / "report.json"
    write_json_atomic(json_path, report)
    markdown_path = markdown_path or out_dir / "report.md"
    plots_dir = plots_dir or markdown_path.parent / "plots"
    pngs = write_reference_plots(scored, published, plots_dir) if plots else []
    markdown_path.parent.mkdir(parents=True, exist_ok=True)
    markdown_path.write_text(render_reference_markdown(scored, published, pngs, base_dir=markdown_path.parent), encoding="utf-8")
    logger.info("wrote %s and %s", json_path, markdown_path)
    return report


def sam2_ready(files: int, sam2_checkpoint: str | None, sam2_config: str, device: str) -> bool:
    """Whether the suite's SAM2 stage will run on its ``files`` segmentation files, decided before generation:
    without a checkpoint it says that there will be no mask metrics; with one it checks SAM2's set-up (config,
    checkpoint against config, device) and refuses a bad one (:class:`Sam2SetupError`) before any generation."""
    if not sam2_checkpoint:
        logger.warning("no --sam2-checkpoint given: the %d segmentation files are reported without mask metrics", files)
        return False
    if not sam2_available():
        raise Sam2SetupError("--sam2-checkpoint given but SAM2 is not installed (packages sam2 and torch); see the README's "
                             "SAM2 section, or drop --sam2-checkpoint to report the segmentation files without mask metrics")
    check_sam2_setup(sam2_config, sam2_checkpoint, device)
    return True


def run_suite(suite: str, bench_dir: str | Path, model_path: str, out_dir: str | Path, settings: GenerationSettings,
              sam2_checkpoint: str | None = None, sam2_config: str = "configs/sam2.1/sam2.1_hiera_l.yaml",
              device: str = "auto", published_path: str | None = None,
              max_failed_fraction: float = DEFAULT_MAX_FAILED_FRACTION) -> dict:
    """Generation, SAM2 and scoring over a suite's files found in ``bench_dir``; returns report.json's content.

    Raises :class:`~onethinker_verl.evaluate.generation.GenerationFailed` before SAM2 when every row failed
    generation, and :class:`~onethinker_verl.evaluate.generation.TooManyFailedRows` after writing the
    report when more than ``max_failed_fraction`` of the rows did."""
    out_dir = Path(out_dir)
    files, missing = find_suite_files(suite, bench_dir)
    if missing:
        logger.warning("%d of %d %s benchmark files are not in %s and are skipped: %s",
                       len(missing), len(SUITES[suite]), suite, bench_dir, ", ".join(missing))
    if not files:
        raise FileNotFoundError(f"none of the {suite} benchmark files is in {bench_dir}")
    is_segmentation = [Path(path).stem + ".json" in SEGMENTATION_FILES for path in files]
    use_sam2 = any(is_segmentation) and sam2_ready(sum(is_segmentation), sam2_checkpoint, sam2_config, device)
    generation_dir = out_dir / "generation"
    outputs = generate(files, generation_dir, model_path, settings)
    failures = summarise_outputs(outputs)
    if failures.failed == failures.rows:
        failures.check(max_failed_fraction)  # every row failed: nothing to segment, score or report
    if use_sam2:
        segmentation = [output for output, segmenting in zip(outputs, is_segmentation) if segmenting]
        run_sam2(segmentation, sam2_checkpoint, sam2_config, settings.media_root, device)
    scored = score_files(outputs)
    report = write_report(scored, out_dir, published_path)
    failures.check(max_failed_fraction)
    return report
