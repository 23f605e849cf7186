"""Single-process throughput of the OneThinker reward on a mixed batch of rollout groups.

    python benchmarks/reward_throughput.py [--groups-per-task 40] [--think-words 200] [--skip-reference]

Builds ``groups-per-task`` prompts for each of the 12 task kinds, 8 responses each (thinking text, right,
wrong and malformed answers; see ``reward_samples.py``), scores them in prompt order through
``onethinker_verl.reward.compute_score`` and through the reference-style implementation
(``reward_reference.py``), and prints items/s overall and per task, p50/p99/max latency, and how many
items the two disagree on (must be 0).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reward_reference import reference_score  # noqa: E402
from reward_samples import make_batch  # noqa: E402

from onethinker_verl.reward import compute_score  # noqa: E402
from onethinker_verl.reward.math_grading import SLOW_PATH_WORKER  # noqa: E402


def _task_label(item) -> str:
    return f"{item.problem_type} ({item.data_type})" if item.problem_type == "segmentation" else item.problem_type


def _score_all(batch, score_one):
    """Score every item; return the results, total seconds, per-item latencies and per-task seconds."""
    results, latencies, per_task = [], [], defaultdict(float)
    started = time.perf_counter()
    for item in batch:
        item_started = time.perf_counter()
        results.append(score_one(item))
        elapsed = time.perf_counter() - item_started
        latencies.append(elapsed)
        per_task[_task_label(item)] += elapsed
    return results, time.perf_counter() - started, latencies, per_task


def _fast(item):
    return compute_score(
        data_source="benchmark",
        solution_str=item.response,
        ground_truth=item.ground_truth,
        extra_info={"problem_type": item.problem_type, "data_type": item.data_type},
    )


def _reference(item):
    return reference_score(item.response, item.ground_truth, item.problem_type, item.data_type)


def _percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _latency_line(name, latencies):
    return (
        f"{name:>10} latency  p50 {statistics.median(latencies) * 1e6:8.1f} us   "
        f"p99 {_percentile(latencies, 0.99) * 1e3:8.2f} ms   max {max(latencies) * 1e3:8.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups-per-task", type=int, default=40)
    parser.add_argument("--think-words", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-reference", action="store_true", help="time only the fast implementation")
    args = parser.parse_args()

    batch = make_batch(args.groups_per_task, seed=args.seed, think_words=args.think_words)
    mean_chars = sum(len(item.response) for item in batch) / len(batch)
    print(f"batch: {len(batch)} items = {args.groups_per_task} groups x 8 responses x 12 task kinds, "
          f"mean response {mean_chars:.0f} chars")

    started = time.perf_counter()
    SLOW_PATH_WORKER.call("onethinker_verl.reward.math_grading:grade_answer", ("a", "b"), 120.0)
    print(f"slow-path worker start-up (once per process, not timed below): {time.perf_counter() - started:.2f} s")

    fast_results, fast_total, fast_latencies, fast_per_task = _score_all(batch, _fast)
    runs = [("fast", fast_total, fast_latencies, fast_per_task)]
    mismatches = None
    if not args.skip_reference:
        reference_results, ref_total, ref_latencies, ref_per_task = _score_all(batch, _reference)
        runs.append(("reference", ref_total, ref_latencies, ref_per_task))
        mismatches = sum(
            any(abs(fast[key] - ref[key]) > 1e-6 for key in ref) for fast, ref in zip(fast_results, reference_results)
        )

    counts = defaultdict(int)
    for item in batch:
        counts[_task_label(item)] += 1
    header = f"{'task':<34}{'items':>6}" + "".join(f"{name + ' it/s':>18}" for name, *_ in runs)
    if len(runs) == 2:
        header += f"{'speed-up':>10}"
    print(header)
    for task, count in counts.items():
        rates = [count / per_task[task] for _, _, _, per_task in runs]
        line = f"{task:<34}{count:>6}" + "".join(f"{rate:>18,.0f}" for rate in rates)
        if len(rates) == 2:
            line += f"{rates[0] / rates[1]:>9.1f}x"
        print(line)
    overall = [len(batch) / total for _, total, _, _ in runs]
    line = f"{'OVERALL':<34}{len(batch):>6}" + "".join(f"{rate:>18,.0f}" for rate in overall)
    if len(overall) == 2:
        line += f"{overall[0] / overall[1]:>9.1f}x"
    print(line)
    for name, _, latencies, _ in runs:
        print(_latency_line(name, latencies))
    if mismatches is not None:
        print(f"items where fast and reference differ by more than 1e-6: {mismatches}")
    SLOW_PATH_WORKER.close()


if __name__ == "__main__":
    main()
