"""Seconds and memory of the RL loop on the CPU: ``main_ppo +recipe=onethinker_cpu`` with a tiny model.

    python benchmarks/cpu_loop.py [--steps 3] [--family qwen3_vl] [--workdir DIR]

Runs verl's own entry point as a user would (a tiny random model built on the spot, the bundled sample
corpus, the test reward of tests/cpu_loop_reward.py so that the policy actually updates, group filters off)
and samples the proportional set size (PSS, /proc/<pid>/smaps_rollup) of the whole process tree (driver,
Ray, TaskRunner, workers, hf servers, TransferQueue) every 0.2 s. Reports, per step, verl's own step time
(``timing_s/step``, ``timing_s/gen``, ``timing_s/update_actor``), the wall time between the step's metrics
lines and the peak PSS while the step ran; then start-up time, total wall time and the run's peak PSS.
Logs go to <workdir>/log.txt.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def pss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--family", default="qwen3_vl")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cpu_loop_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)

    from onethinker_verl.cpu.ray_temp import short_ray_temp_dir
    from onethinker_verl.tiny_model import build_tiny_vl_checkpoint

    model = build_tiny_vl_checkpoint(args.family, workdir / "model")
    command = [
        sys.executable, "-m", "verl.trainer.main_ppo", "+recipe=onethinker_cpu",
        f"actor_rollout_ref.model.path={model}", f"trainer.default_local_dir={workdir / 'checkpoints'}",
        f"trainer.total_training_steps={args.steps}", "trainer.logger=[console,file]",
        f"reward.custom_reward_function.path={REPO_ROOT / 'tests' / 'cpu_loop_reward.py'}",
        "algorithm.filter_groups.enable=false", "algorithm.online_filter.enable=false",
    ]
    metrics_file = workdir / "onethinker" / "onethinker_cpu.jsonl"
    start = time.monotonic()
    samples: list[tuple[float, int]] = []
    step_ends: dict[int, float] = {}
    # Ray's socket paths must stay under 108 bytes: its folder lives in /tmp, not under --workdir
    with open(workdir / "log.txt", "w") as log, short_ray_temp_dir("ray_bench_") as ray_dir:
        command.append(f"+ray_kwargs.ray_init._temp_dir={ray_dir}")
        process = subprocess.Popen(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
        while process.poll() is None:
            samples.append((time.monotonic() - start, pss_bytes(process_tree(process.pid))))
            if metrics_file.exists():
                for line in metrics_file.read_text().splitlines():
                    step_ends.setdefault(json.loads(line)["step"], time.monotonic() - start)
            time.sleep(0.2)
    total = time.monotonic() - start
    if process.returncode != 0:
        print(f"main_ppo failed (exit {process.returncode}); see {workdir / 'log.txt'}", file=sys.stderr)
        return 1
    metrics = {record["step"]: record["data"] for record in map(json.loads, metrics_file.read_text().splitlines())}
    gib = 1 << 30
    print(f"main_ppo +recipe=onethinker_cpu, tiny {args.family}, {args.steps} steps, {os.cpu_count()} CPUs")
    print("step  verl step s  gen s  update s  wall s  peak PSS GiB")
    previous = None
    for step in sorted(metrics):
        end = step_ends.get(step, total)
        begin = previous if previous is not None else end - metrics[step]["timing_s/step"]
        peak = max((pss for t, pss in samples if begin <= t <= end), default=0)
        m = metrics[step]
        print(f"{step:>4}  {m['timing_s/step']:>11.1f}  {m['timing_s/gen']:>5.1f}  {m['timing_s/update_actor']:>8.2f}"
              f"  {end - begin:>6.1f}  {peak / gib:>12.2f}")
        previous = end
    first_step_start = step_ends[min(metrics)] - metrics[min(metrics)]["timing_s/step"]
    print(f"start-up until step 1: {first_step_start:.0f} s; whole run: {total:.0f} s; "
          f"peak PSS of the run: {max(p for _, p in samples) / gib:.2f} GiB")
    print("rollout vs actor, max |p_rollout - p_actor| per step: "
          + ", ".join(f"{metrics[s]['training/rollout_probs_diff_max']:.1e}" for s in sorted(metrics)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
