"""The whole RL loop on the CPU through verl's own entry point: ``python -m verl.trainer.main_ppo
+recipe=onethinker_cpu`` with a tiny random Qwen3-VL, the hf rollout backend and CPU mode.

Two runs (about 70 s each on 2 cores):
* ``straight``: 2 steps from scratch at a large learning rate (0.05), a checkpoint each step;
* ``resumed``: starts from the straight run's step-1 checkpoint (what a 1-step run leaves) and runs step 2.

What would break on a cluster is asserted: the rollout's log-probs agree with the actor's recomputation at
step 1 and, after an update that moved the weights a lot, at step 2 (the weights reached the rollout); the
actor's weights changed; every checkpoint holds the EMA-GRPO moments; and step 2 after a resume equals step
2 of the uninterrupted run (metrics, advantages, EMA moments, and each group's responses and scores as a set,
since the n copies of a prompt may come back in another order).

A random model scores 0 under the OneThinker reward, so the runs score with tests/cpu_loop_reward.py and
turn the group filters off (they would drop every group of equal scores); nothing else is changed.
"""

import json
import math
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from onethinker_verl.cpu.ray_temp import short_ray_temp_dir

LEARNING_RATE = 0.05  # large, so that step 2's policy differs clearly from step 1's
# Not compared between the runs: times, memory and throughput (perf/), and how the rows happened to split
# between the two workers (a group's rows may arrive permuted; the balanced split and the mean are compared).
NOT_COMPARED = ("timing_s/", "timing_per_token_ms/", "global_seqlen/min", "global_seqlen/max",
                "global_seqlen/minmax_diff")


def main_ppo(workdir: Path, model: Path, *overrides: str) -> subprocess.CompletedProcess:
    """One main_ppo run in ``workdir`` (its file logger writes there), with only ordinary overrides."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "verl.trainer.main_ppo", "+recipe=onethinker_cpu",
        f"actor_rollout_ref.model.path={model}",
        f"trainer.default_local_dir={workdir / 'checkpoints'}",
        f"trainer.rollout_data_dir={workdir / 'rollouts'}",
        "trainer.logger=[console,file]",
        f"reward.custom_reward_function.path={REPO_ROOT / 'tests' / 'cpu_loop_reward.py'}",
        "reward.custom_reward_function.name=compute_score",
        "algorithm.filter_groups.enable=false", "algorithm.online_filter.enable=false",
        f"actor_rollout_ref.actor.optim.lr={LEARNING_RATE}",
        *overrides,
    ]
    # Ray's socket paths must stay under 108 bytes, which pytest's temporary folders can exceed
    with short_ray_temp_dir("ray_e2e_") as ray_dir:
        command.append(f"+ray_kwargs.ray_init._temp_dir={ray_dir}")
        done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=900)
    (workdir / "log.txt").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    # CPU mode sizes TransferQueue's threads to the machine: no warning on every transfer
    assert "should not exceed total physical CPU cores" not in done.stdout + done.stderr
    return done


def step_metrics(workdir: Path) -> dict[int, dict]:
    lines = (workdir / "onethinker" / "onethinker_cpu.jsonl").read_text().splitlines()
    return {record["step"]: record["data"] for record in map(json.loads, lines)}


def groups(workdir: Path, step: int) -> dict[str, Counter]:
    """Each prompt's responses and scores at ``step``, as a multiset (verl's rollout dump)."""
    by_prompt = defaultdict(Counter)
    for line in (workdir / "rollouts" / f"{step}.jsonl").read_text().splitlines():
        row = json.loads(line)
        by_prompt[row["input"]][(row["output"], round(row["score"], 6))] += 1
    return dict(by_prompt)


def actor_weights(checkpoint: Path) -> dict:
    """The full actor weights of a checkpoint (both FSDP2 shards joined along dimension 0)."""
    import torch

    shards = [
        torch.load(checkpoint / "actor" / f"model_world_size_2_rank_{rank}.pt", weights_only=False, map_location="cpu")
        for rank in range(2)
    ]
    local = lambda tensor: tensor.to_local() if hasattr(tensor, "to_local") else tensor  # noqa: E731
    return {name: torch.cat([local(shard[name]) for shard in shards]) for name in shards[0]}


@pytest.fixture(scope="module")
def cpu_runs(tmp_path_factory, tiny_vl_checkpoint):
    model = tiny_vl_checkpoint("qwen3_vl")
    work = tmp_path_factory.mktemp("cpu_loop")
    straight = work / "straight"
    main_ppo(straight, model)
    resumed = work / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(straight / "checkpoints" / "global_step_1", resumed / "checkpoints" / "global_step_1")
    (resumed / "checkpoints" / "latest_checkpointed_iteration.txt").write_text("1")
    resumed_run = main_ppo(resumed, model)
    return straight, resumed, resumed_run


def test_rollout_log_probs_agree_with_the_actor_before_and_after_an_update(cpu_runs):
    straight, _, _ = cpu_runs
    metrics = step_metrics(straight)
    assert sorted(metrics) == [1, 2]
    for step in (1, 2):
        # verl's own comparison of the rollout's token probabilities with the actor's recomputation
        assert metrics[step]["training/rollout_probs_diff_valid"] == 1
        assert metrics[step]["training/rollout_probs_diff_max"] < 1e-5, (step, metrics[step])
        assert metrics[step]["training/rollout_actor_probs_pearson_corr"] > 0.999, (step, metrics[step])
    assert metrics[1]["actor/grad_norm"] > 0  # the reward had a spread, so step 1 updated the policy


def test_the_copies_of_a_prompt_are_different_samples(cpu_runs):
    straight, _, _ = cpu_runs
    for step in (1, 2):
        for prompt, responses in groups(straight, step).items():
            # 4 copies spread over 2 replicas: each got its own seed (no response came back twice)
            assert sum(responses.values()) == 4 and max(responses.values()) == 1, (step, prompt[:80], responses)


def test_the_update_moved_the_weights_the_step_2_rollout_used(cpu_runs):
    straight, _, _ = cpu_runs
    import torch

    before = actor_weights(straight / "checkpoints" / "global_step_1")
    after = actor_weights(straight / "checkpoints" / "global_step_2")
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert len(changed) > len(before) // 2, f"{len(changed)} of {len(before)} tensors changed"
    # at this learning rate each changed tensor moved by about lr per element (Adam): far past any
    # log-prob tolerance, so a rollout still on the old weights would fail the step-2 agreement above
    largest = max((after[name] - before[name]).abs().max().item() for name in changed)
    assert largest > LEARNING_RATE / 2


def test_every_checkpoint_holds_the_ema_moments(cpu_runs):
    straight, resumed, _ = cpu_runs
    for checkpoint in [straight / "checkpoints" / "global_step_1", straight / "checkpoints" / "global_step_2",
                       resumed / "checkpoints" / "global_step_2"]:
        moments = json.loads((checkpoint / "onethinker_ema_grpo.json").read_text())
        assert moments, checkpoint


def test_resuming_after_step_1_repeats_step_2_of_the_uninterrupted_run(cpu_runs):
    straight, resumed, resumed_run = cpu_runs
    log = resumed_run.stdout + resumed_run.stderr
    assert f"Resuming from {resumed / 'checkpoints' / 'global_step_1'}" in log
    resumed_metrics = step_metrics(resumed)
    assert sorted(resumed_metrics) == [2]  # the resumed run continued at the next step
    expected, got = step_metrics(straight)[2], resumed_metrics[2]
    compared = [key for key in expected if not (key.startswith(NOT_COMPARED) or "perf/" in key)]
    assert any(key.startswith("critic/advantages/") for key in compared)
    differing = {
        key: (expected[key], got.get(key)) for key in compared
        if not (isinstance(expected[key], (int, float)) and isinstance(got.get(key), (int, float))
                and math.isclose(expected[key], got[key], rel_tol=1e-4, abs_tol=1e-6))
        and expected[key] != got.get(key)
    }
    assert not differing, differing
    # each group's responses and scores, as a set
    assert groups(resumed, 2) == groups(straight, 2)
    # the EMA moments after step 2 (the file's numbers)
    ema = [json.loads((run / "checkpoints" / "global_step_2" / "onethinker_ema_grpo.json").read_text())
           for run in (straight, resumed)]
    assert ema[0]["global_step"] == ema[1]["global_step"] == 2
    assert _numbers(ema[1]) == pytest.approx(_numbers(ema[0]), rel=1e-5, abs=1e-8)


def _numbers(node, prefix=""):
    """Every number of a JSON document as {path: value}."""
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in _numbers(value, f"{prefix}{key}.").items()}
    if isinstance(node, list):
        return {k: v for i, value in enumerate(node) for k, v in _numbers(value, f"{prefix}{i}.").items()}
    return {prefix[:-1]: node}
