"""Benchmark output files: reading, scoring by the reference protocol, and atomic writing.

The format is the reference's (``eval_bench.py``): one JSON object per benchmark,
``{"results": [row, ...], "metrics": {...}, "meta": {...}}``, where each row is the benchmark's input
row plus ``output`` (the raw model text, null when generation failed), ``prediction`` (the extracted
answer), ``accuracy`` and, when not empty, ``components``. Segmentation rows also carry
``predicted_answer_norm`` and, once masks exist, ``pred_masks``, ``reward`` and ``status`` (as the
reference's SAM2 step writes them). A bare JSON list of rows is read too.

The project's earlier predictions format (JSON Lines with ``benchmark``, ``problem_type``,
``data_type``, ``response``, ``ground_truth``, ``gt_masks``, ``pred_masks``) is converted row by row
into that format (:func:`row_from_prediction_line`), one benchmark per ``benchmark`` value.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onethinker_verl.benchmark_scoring.reference import MetricAccumulator, extract_prediction, score_row
from onethinker_verl.data.raw_corpus import benchmark_name_of_file
from onethinker_verl.evaluate import masks as mask_ops
from onethinker_verl.evaluate.reference.masks import SegmentationAccumulator, score_segmentation_row

logger = logging.getLogger(__name__)

# How many crashed / failed rows the meta lists individually (all are counted).
LISTED_ROWS = 50
GENERATION_ERROR = "generation_error"
# Mask metrics (the reference's SAM2 step) are named image/... and video/...
MASK_METRIC_PREFIXES = ("image/", "video/")


class OutputFormatError(ValueError):
    """A predictions / output file that cannot be read; the message names the file and the problem."""


@dataclass
class BenchmarkOutput:
    """One benchmark's rows (in the reference's output format) and the file's meta."""

    name: str
    results: list[dict]
    meta: dict = field(default_factory=dict)
    source: str = ""


@dataclass
class ScoredBenchmark:
    """A benchmark after scoring: its rows (with accuracy, components, reward, status), metrics, counts."""

    name: str
    results: list[dict]
    metrics: dict[str, float]
    meta: dict

    def to_json(self) -> dict:
        payload = {"results": self.results, "metrics": self.metrics, "meta": self.meta}
        masks = {name: value for name, value in self.metrics.items() if name.startswith(MASK_METRIC_PREFIXES)}
        if masks:
            payload["avg_rewards"] = masks  # where the reference's SAM2 step puts them
        return payload


def benchmark_name_of(path: str | os.PathLike, meta: Mapping | None = None) -> str:
    """``meta["benchmark"]``, else the stem of ``meta["input_json"]`` or of the file, without ``eval_``."""
    meta = meta or {}
    if isinstance(meta.get("benchmark"), str) and meta["benchmark"]:
        return meta["benchmark"]
    return benchmark_name_of_file(meta["input_json"] if isinstance(meta.get("input_json"), str) else path)


def read_outputs(path: str | os.PathLike) -> list[BenchmarkOutput]:
    """The benchmarks in a file: one for a reference output (or a bare list of rows), one per
    ``benchmark`` value for the project's JSON Lines predictions."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("{") or stripped.startswith("["):
        try:
            payload = json.loads(text)
        except ValueError as exc:
            if stripped.startswith("{"):  # maybe JSON Lines whose first row is an object
                return _read_prediction_lines(path, text)
            raise OutputFormatError(f"{path}: not valid JSON: {exc}") from None
        if isinstance(payload, dict) and "results" in payload:
            results, meta = payload["results"], payload.get("meta") or {}
        elif isinstance(payload, list):
            results, meta = payload, {}
        else:
            raise OutputFormatError(f"{path}: expected {{'results': [...]}} or a list of rows")
        if not isinstance(results, list) or not all(isinstance(row, dict) for row in results):
            raise OutputFormatError(f"{path}: 'results' must be a list of objects")
        return [BenchmarkOutput(benchmark_name_of(path, meta), results, dict(meta), str(path))]
    return _read_prediction_lines(path, text)


def _read_prediction_lines(path: Path, text: str) -> list[BenchmarkOutput]:
    groups: dict[str, list[dict]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise OutputFormatError(f"{path}, line {number}: invalid JSON: {exc}") from None
        if not isinstance(value, dict) or not isinstance(value.get("benchmark"), str) or not value["benchmark"].strip():
            raise OutputFormatError(f"{path}, line {number}: a predictions line needs a non-empty 'benchmark'")
        groups.setdefault(value["benchmark"].strip(), []).append(row_from_prediction_line(value))
    return [BenchmarkOutput(name, rows, {"benchmark": name}, str(path)) for name, rows in groups.items()]


def row_from_prediction_line(line: Mapping) -> dict:
    """One line of the project's predictions JSONL as a reference output row.

    ``response`` becomes ``output``, ``ground_truth`` becomes ``solution``. Segmentation ground truth
    ``gt_masks`` (one RLE, or frame key -> RLE) becomes ``segmentation_output`` with ``frames`` in the
    mapping's order, ``resolution`` comes from the RLE size, and video ``pred_masks`` keyed like
    ``gt_masks`` are re-keyed by frame index. Such rows have no fps; 1 stands in (fps only places the
    SAM2 prompt in time, which ready-made masks do not need).
    """
    row = {key: value for key, value in line.items() if key not in ("response", "ground_truth", "gt_masks", "pred_masks")}
    row["output"] = line.get("response")
    truth = line.get("ground_truth", "")
    row["solution"] = truth if isinstance(truth, str) else json.dumps(truth)
    gt_masks, pred_masks = line.get("gt_masks"), line.get("pred_masks")
    if gt_masks is None:
        if pred_masks is not None:
            row["pred_masks"] = pred_masks
        return row
    if mask_ops.is_rle(gt_masks):
        height, width = mask_ops.rle_size(gt_masks)
        row["segmentation_output"] = {"segmentation_rle": gt_masks}
        if isinstance(pred_masks, Mapping) and not mask_ops.is_rle(pred_masks) and len(pred_masks) == 1:
            pred_masks = next(iter(pred_masks.values()))  # one image given as {key: RLE}
        if pred_masks is not None:
            row["pred_masks"] = pred_masks
    elif isinstance(gt_masks, Mapping):
        frames = list(gt_masks)
        sizes = {mask_ops.rle_size(rle) for rle in gt_masks.values() if rle is not None}
        height, width = sizes.pop() if sizes else (0, 0)
        row["segmentation_output"] = {"frames": frames, "segmentation_rle": {k: v for k, v in gt_masks.items() if v is not None}}
        row.setdefault("fps", 1)
        if isinstance(pred_masks, Mapping):
            row["pred_masks"] = {str(index): pred_masks[key] for index, key in enumerate(frames) if pred_masks.get(key) is not None}
    else:
        raise OutputFormatError("gt_masks must be one COCO RLE or a mapping frame -> RLE")
    row.setdefault("resolution", {"width": width, "height": height})
    return row


def score_benchmark(benchmark: BenchmarkOutput) -> ScoredBenchmark:
    """Re-score every row by the reference protocol; returns the rows with ``prediction``,
    ``accuracy``, ``components`` (and for segmentation ``reward`` / ``status``), the metrics and counts.

    Rows are scored from ``output``; stored accuracies are not trusted. Segmentation rows are mask-scored
    from ``pred_masks``; rows the reference's own SAM2 step already scored (``status`` and ``reward``,
    no masks) enter the mask metrics as written; rows with neither are counted as not mask-scored.
    """
    accumulator = MetricAccumulator()
    segmentation = SegmentationAccumulator()
    crashed, failed, results = [], [], []
    for index, source_row in enumerate(benchmark.results):
        row = dict(source_row)
        score = score_row(row)
        row["prediction"] = extract_prediction(row.get("output"))
        row["accuracy"] = score.accuracy
        row.pop("components", None)
        if score.components:
            row["components"] = score.components
        if row.get(GENERATION_ERROR):
            failed.append({"index": index, "reason": row[GENERATION_ERROR]})
        elif score.crashed:
            crashed.append({"index": index, "reason": score.crashed})
        accumulator.add(row.get("problem_type", ""), score.accuracy, score.components)
        if isinstance(row.get("problem_type"), str) and row["problem_type"].strip().lower() == "segmentation":
            row["predicted_answer_norm"] = row["prediction"]
            if "pred_masks" in row:
                status, reward = score_segmentation_row(row, row["pred_masks"])
                row["status"], row["reward"] = status, reward
                segmentation.add(status, reward)
            elif isinstance(row.get("status"), str) and "reward" in row:
                # Already scored by the reference's own SAM2 step (its *_sam2.json): aggregated as written.
                segmentation.add(row["status"], row["reward"])
        results.append(row)
    metrics = accumulator.metrics()
    metrics.update(segmentation.metrics())
    segmentation_rows = sum(
        1 for row in results if isinstance(row.get("problem_type"), str) and row["problem_type"].strip().lower() == "segmentation"
    )
    meta = dict(benchmark.meta)
    meta.update(
        {
            "benchmark": benchmark.name,
            "protocol": "reference",
            "rows": len(results),
            "crashed_rows": len(crashed),
            "crashed": crashed[:LISTED_ROWS],
            "generation_failed_rows": len(failed),
            "generation_failed": failed[:LISTED_ROWS],
        }
    )
    if segmentation_rows:
        masked = sum(1 for row in results if "pred_masks" in row or "status" in row)
        meta["segmentation"] = {
            "rows": segmentation_rows,
            "with_masks": masked,
            "scored": masked - sum(segmentation.left_out.values()),
            "left_out": dict(segmentation.left_out),
        }
        if masked == 0:
            logger.warning("%s: none of the %d segmentation rows has pred_masks (run the sam2 step), so it has no mask metrics",
                           benchmark.name, segmentation_rows)
        elif masked < segmentation_rows:
            logger.warning("%s: %d of %d segmentation rows have no pred_masks (run the sam2 step); mask metrics cover the other %d",
                           benchmark.name, segmentation_rows - masked, segmentation_rows, masked)
    if crashed:
        logger.warning("%s: %d rows on which the reference would raise were scored 0 (see meta.crashed)", benchmark.name, len(crashed))
    return ScoredBenchmark(benchmark.name, results, metrics, meta)


def write_json_atomic(path: str | os.PathLike, payload: Any) -> None:
    """Write ``payload`` as indented JSON through a temporary file in the same folder and a rename, so
    a crash mid-write leaves the previous file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as sink:
            json.dump(payload, sink, indent=2, ensure_ascii=False)
            sink.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
