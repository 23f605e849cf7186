"""Speed of the ``ema_grpo`` advantage estimator inside verl's ``compute_advantage``.

    python benchmarks/ema_grpo.py [--sizes 1024 8192] [--repeats 20] [--response-len 1024] [--clock cpu]

Builds a trainer-like batch per size (groups of 8 rollouts with uuid ``uid``s, ~10 task keys, token rewards
on the last response token, ``extra_info`` dicts), composes the algorithm config from ``+recipe=onethinker``
as ``main_ppo`` does, and times, as the median of ``--repeats`` runs after warm-up:

* ``ema_grpo``: ``verl.trainer.ppo.ray_trainer.compute_advantage`` with the recipe's config;
* ``grpo``: verl's built-in GRPO on the same batch, for scale;
* ``reference``: the loop-over-samples implementation of the spec (``_spec_ema_grpo.py``).

A second table splits the time: the per-sample stage (task keys from ``extra_info``, grouping, moments,
scaling; ``task_keys_from_extra_info`` + ``ema_grpo_advantages`` against the reference's loop) and the
(B, L) tensor work every estimator does (outcome score = sum of token rewards; a fresh advantages tensor
= per-sample value x response mask), which bounds the end-to-end speed-up. It also checks that
``ema_grpo`` and the reference agree (max |difference| over all tokens).

``--clock cpu`` times this process's CPU time (user + system, page faults included) with one torch thread
instead of wall time: on a machine shared with other jobs, wall time mostly measures waiting for a core.
"""

import argparse
import statistics
import time
import uuid
from pathlib import Path

import numpy as np
import torch
import verl  # noqa: F401  (loads the onethinker plugin, as every verl process does)
from hydra import compose, initialize_config_dir
from verl import DataProto
from verl.trainer.ppo import ray_trainer
from verl.utils.config import omega_conf_to_dataclass


from _spec_ema_grpo import SpecEmaGrpo

from onethinker_verl.advantage import ema_grpo

# (problem_type, data_type, reward kind): 11 pairs, 10 task keys (multiple choice covers image and video).
TASKS = [
    ("multiple choice", "image", "binary"),
    ("multiple choice", "video", "binary"),
    ("numerical", "image", "binary"),
    ("OCR", "image", "continuous"),
    ("free-form", "video", "continuous"),
    ("regression", "video", "continuous"),
    ("spatial grounding", "image", "continuous"),
    ("temporal grounding", "video", "continuous"),
    ("tracking", "video", "continuous"),
    ("segmentation", "image", "continuous"),
    ("segmentation", "video", "continuous"),
]
TASK_KEYS = sorted({ema_grpo.task_key(problem_type, data_type) for problem_type, data_type, _ in TASKS})


def algorithm_config():
    """The ``algorithm`` section of verl's ``ppo_trainer`` config composed with ``+recipe=onethinker``."""
    config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        config = compose(config_name="ppo_trainer", overrides=["+recipe=onethinker"])
    return omega_conf_to_dataclass(config.algorithm)


def make_batch(rng: np.random.Generator, num_samples: int, group_size: int, response_len: int) -> DataProto:
    """A DataProto as the trainer holds it at the advantage step; a group's rollouts are contiguous."""
    num_groups = num_samples // group_size
    task_of_group = rng.integers(0, len(TASKS), num_groups)
    binary = np.array([kind == "binary" for _, _, kind in TASKS])[task_of_group]
    group_scores = np.where(
        binary[:, None],
        rng.integers(0, 2, (num_groups, group_size)).astype(float),
        rng.beta(2.0, 2.0, (num_groups, group_size)),
    )
    scores = torch.as_tensor(group_scores.reshape(-1), dtype=torch.float32)
    lengths = torch.as_tensor(rng.integers(1, response_len + 1, num_samples))
    response_mask = (torch.arange(response_len)[None, :] < lengths[:, None]).float()
    token_level_rewards = torch.zeros(num_samples, response_len)
    token_level_rewards[torch.arange(num_samples), lengths - 1] = scores

    uids = np.repeat(np.array([str(uuid.UUID(int=int(rng.integers(2**63)))) for _ in range(num_groups)]), group_size)
    extra_info = np.empty(num_samples, dtype=object)
    extra_info[:] = [
        {"problem_type": TASKS[task][0], "data_type": TASKS[task][1], "index": int(row), "split": "train"}
        for row, task in enumerate(np.repeat(task_of_group, group_size))
    ]
    return DataProto.from_dict(
        tensors={"token_level_rewards": token_level_rewards, "response_mask": response_mask},
        non_tensors={"uid": uids.astype(object), "extra_info": extra_info},
    )


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def median_ms(run, repeats: int, clock=time.perf_counter, warmup: int = 3) -> float:
    """Median time of ``run()`` on ``clock`` in milliseconds over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        started = clock()
        run()
        times.append(clock() - started)
    return 1e3 * statistics.median(times)


def benchmark_size(config, num_samples: int, group_size: int, response_len: int, repeats: int, clock) -> dict:
    """Median milliseconds of ema_grpo, grpo and the reference on one batch, and their max |difference|."""
    data = make_batch(np.random.default_rng(num_samples), num_samples, group_size, response_len)
    rewards, mask = data.batch["token_level_rewards"], data.batch["response_mask"]
    uids, extra_info = data.non_tensor_batch["uid"], data.non_tensor_batch["extra_info"]

    ema_grpo.TASK_MOMENTS.reset()
    fast = ray_trainer.compute_advantage(data, adv_estimator=config.adv_estimator, config=config).batch["advantages"]
    expected, _ = SpecEmaGrpo().estimate(rewards, mask, uids, extra_info)
    max_diff = (fast.double() - expected.double()).abs().max().item()

    reference = SpecEmaGrpo()
    scores = rewards.sum(dim=-1)
    score_list, uid_list = scores.tolist(), list(uids)
    ema_cfg = ema_grpo.ema_grpo_config(config)

    def timed(run):
        return median_ms(run, repeats, clock)

    result = {
        "samples": num_samples,
        "ema_grpo": timed(lambda: ray_trainer.compute_advantage(data, adv_estimator="ema_grpo", config=config)),
        "grpo": timed(lambda: ray_trainer.compute_advantage(data, adv_estimator="grpo", config=config)),
        "reference": timed(lambda: reference.estimate(rewards, mask, uids, extra_info)),
        "ema_grpo_per_sample": timed(
            lambda: ema_grpo.ema_grpo_advantages(
                scores.double().numpy(),
                np.asarray(uids, dtype=object),
                ema_grpo.task_keys_from_extra_info(extra_info),
                ema_grpo.TASK_MOMENTS,
                ema_cfg,
            )
        ),
        "reference_per_sample": timed(
            lambda: reference.step(
                score_list,
                uid_list,
                [info["problem_type"] for info in extra_info],
                [info.get("data_type") for info in extra_info],
            )
        ),
        "tensor_work": timed(lambda: rewards.sum(dim=-1).unsqueeze(-1) * mask),
        "max_diff": max_diff,
    }
    ema_grpo.TASK_MOMENTS.reset()
    ema_grpo.pop_step_metrics()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 8192], help="samples per batch")
    parser.add_argument("--group-size", type=int, default=8, help="rollouts per prompt")
    parser.add_argument("--response-len", type=int, default=1024, help="response tokens per sample")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per measurement (median)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="cpu: process CPU time, 1 thread")
    args = parser.parse_args()
    if args.clock == "cpu":
        torch.set_num_threads(1)

    config = algorithm_config()
    print(
        f"estimator {config.adv_estimator!r} via verl compute_advantage; {len(TASK_KEYS)} task keys, "
        f"groups of {args.group_size}, response length {args.response_len}, "
        f"median {args.clock} time of {args.repeats} runs"
    )
    rows = [
        benchmark_size(config, size, args.group_size, args.response_len, args.repeats, CLOCKS[args.clock])
        for size in args.sizes
    ]

    print("\nEnd to end, verl compute_advantage (ms)")
    header = f"{'samples':>8} | {'ema_grpo':>8} | {'reference':>9} | {'speed-up':>8} | {'verl grpo':>9} | max |diff|"
    print(header + "\n" + "-" * len(header))
    for row in rows:
        print(
            f"{row['samples']:>8} | {row['ema_grpo']:>8.2f} | {row['reference']:>9.2f} | "
            f"{row['reference'] / row['ema_grpo']:>7.1f}x | {row['grpo']:>9.2f} | {row['max_diff']:.1e}"
        )

    print("\nBreakdown (ms): per-sample stage, and the (B, L) tensor work both implementations do")
    header = f"{'samples':>8} | ema_grpo per-sample | reference per-sample | speed-up | (B, L) tensor work"
    print(header + "\n" + "-" * len(header))
    for row in rows:
        print(
            f"{row['samples']:>8} | {row['ema_grpo_per_sample']:>19.2f} | {row['reference_per_sample']:>20.2f} | "
            f"{row['reference_per_sample'] / row['ema_grpo_per_sample']:>7.1f}x | {row['tensor_work']:>18.2f}"
        )


if __name__ == "__main__":
    main()
