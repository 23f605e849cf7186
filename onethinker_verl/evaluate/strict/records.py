"""Reading the predictions file: one JSON object per line, validated, streamed.

A line needs ``benchmark`` (str), ``problem_type`` (str), ``response`` (str or null, the raw model
output) and ``ground_truth`` (str as in the eval files; a JSON object or list is re-serialised, a
number is stringified). ``data_type`` is needed for segmentation, as is ``gt_masks``;
``pred_masks`` is optional (missing means the prediction is unreadable). Masks are one COCO RLE
dict (image) or a mapping frame → RLE (video).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REQUIRED_KEYS = ("benchmark", "problem_type", "response", "ground_truth")


@dataclass(frozen=True)
class MalformedLine:
    """A line that cannot be evaluated: its 1-based number and why."""

    line: int
    reason: str


@dataclass(frozen=True)
class Prediction:
    """One validated prediction line."""

    line: int
    benchmark: str
    problem_type: str
    data_type: str | None
    response: str
    ground_truth: str
    pred_masks: object = None
    gt_masks: object = None


def parse_line(line_number: int, text: str) -> Prediction | MalformedLine:
    """Validate one line of the predictions file."""
    try:
        row = json.loads(text)
    except ValueError as exc:
        return MalformedLine(line_number, f"invalid JSON: {exc}")
    if not isinstance(row, dict):
        return MalformedLine(line_number, "not a JSON object")
    missing = [key for key in REQUIRED_KEYS if key not in row]
    if missing:
        return MalformedLine(line_number, f"missing keys: {', '.join(missing)}")
    for key in ("benchmark", "problem_type"):
        if not isinstance(row[key], str) or not row[key].strip():
            return MalformedLine(line_number, f"{key!r} must be a non-empty string")
    if row["response"] is not None and not isinstance(row["response"], str):
        return MalformedLine(line_number, "'response' must be a string")
    ground_truth = _ground_truth_text(row["ground_truth"])
    if ground_truth is None:
        return MalformedLine(line_number, "'ground_truth' must be a string, number or JSON object")
    data_type = row.get("data_type")
    if data_type is not None and not isinstance(data_type, str):
        return MalformedLine(line_number, "'data_type' must be a string")
    if row["problem_type"].strip().lower() == "segmentation" and row.get("gt_masks") is None:
        return MalformedLine(line_number, "segmentation needs 'gt_masks'")
    return Prediction(
        line=line_number,
        benchmark=row["benchmark"].strip(),
        problem_type=row["problem_type"],
        data_type=data_type,
        response=row["response"] or "",
        ground_truth=ground_truth,
        pred_masks=row.get("pred_masks"),
        gt_masks=row.get("gt_masks"),
    )


def _ground_truth_text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def read_predictions(path: str | Path) -> Iterator[Prediction | MalformedLine]:
    """Stream the file's lines as predictions or malformed-line notes; blank lines are skipped."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line_number, text in enumerate(handle, start=1):
            if text.strip():
                yield parse_line(line_number, text)
