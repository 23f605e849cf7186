"""Time data_prep/prepare_rl.py on a synthetic corpus and report wall time and peak memory.

    python benchmarks/prepare_rl_speed.py --rows 100000

Writes a JSON-array file of synthetic OneThinker rows covering every task (media check off, so no media
files are needed), runs the converter in a child process and prints its wall time and peak RSS (the child's
``ru_maxrss``, read through ``os.wait4``). Target on the project's 2-core machine: under 60 s and 2 GB.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_TASKS = [
    ("multiple choice", "image", "<answer>B</answer>", ["A. a cat", "B. a dog", "C. a bird", "D. a fish"]),
    ("numerical", "video", "12", None),
    ("regression", "image", "3.75", None),
    ("OCR", "image", "SPEED LIMIT 40", None),
    ("open-ended", "video", "A man rides a bicycle along the river.", None),
    ("math", "image", "\\frac{3}{4}", None),
    ("temporal grounding", "video", json.dumps({"time": [3.2, 8.9]}), None),
    ("spatial grounding", "image", json.dumps({"boxes": [10, 20, 110, 220]}), None),
    ("spatial-temporal grounding", "video", json.dumps({"time": [1.0, 3.0], "boxes": {"1": [1, 2, 3, 4]}}), None),
    ("tracking", "video", json.dumps({"boxes": {str(s): [s, s, s + 40, s + 60] for s in range(1, 9)}}), None),
    (
        "segmentation",
        "image",
        json.dumps({"boxes": [5, 5, 50, 50], "positive_points": [[20, 20]] * 3, "negative_points": [[1, 1]] * 3}),
        None,
    ),
]


def write_synthetic(path: Path, rows: int) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("[\n")
        for index in range(rows):
            problem_type, data_type, answer, options = _TASKS[index % len(_TASKS)]
            media_key = "images" if data_type == "image" else "videos"
            row = {
                "problem_id": index,
                "problem": f"Question number {index}: describe what happens in this {data_type} in detail, please.",
                "answer": answer,
                "problem_type": problem_type,
                "data_type": data_type,
                media_key: [f"{data_type}s/set{index % 97}/item_{index}.{'jpg' if data_type == 'image' else 'mp4'}"],
                "data_source": "synthetic",
            }
            if options:
                row["options"] = options
            handle.write(("," if index else "") + json.dumps(row) + "\n")
        handle.write("]\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        corpus = Path(workdir) / "rows.json"
        write_synthetic(corpus, args.rows)
        command = [
            sys.executable,
            str(REPO / "data_prep" / "prepare_rl.py"),
            "--input", str(corpus),
            "--output", str(Path(workdir) / "out"),
            "--check-media", "off",
            "--val-size", "500",
        ]  # fmt: skip
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        summary = child.stdout.read()
        if os.waitstatus_to_exitcode(status) != 0:
            print(summary)
            print(f"converter failed with exit status {os.waitstatus_to_exitcode(status)}")
            return 1
        print(summary.strip())
        print(f"input file: {corpus.stat().st_size / 1e6:.1f} MB, {args.rows} rows")
        print(f"converter wall time: {seconds:.1f} s")
        print(f"converter peak RSS: {usage.ru_maxrss / 1024:.0f} MB")  # ru_maxrss is in KiB on Linux
    return 0


if __name__ == "__main__":
    sys.exit(main())
