"""Inter- and intra-task balance of GRPO, GRPO without std normalisation, and EMA-GRPO.

    python benchmarks/task_balance.py [--output docs/task_balance.png] [--steps 50] [--seed 0]

Simulates a seeded multi-task reward stream: each step holds ``--groups`` prompt groups of 8 rollouts per
task, for 6 tasks with binary rewards (0/1), continuous rewards of small spread, and continuous rewards of
large spread. A continuous task's group centres and within-group spreads scale with the task's spread,
and a quarter of its groups are nearly constant (within-group std 2% of the task's spread). Every step
goes through verl's ``compute_advantage`` three times: ``grpo``, ``grpo`` with
``norm_adv_by_std_in_grpo=False``, and the recipe's ``ema_grpo`` (config composed from ``+recipe=onethinker``).

Two measures, over all steps:

* inter-task balance: the mean |advantage| of each task. Without std normalisation it follows the task's
  reward spread, so wide-spread tasks dominate the gradient.
* intra-task balance: across the groups of one task, the coefficient of variation (std / mean) of the
  gain, i.e. a group's mean |advantage| per unit of mean |reward - group mean|. Plain GRPO's gain is
  1 / (the group's own std), so nearly constant groups are blown up to full-size advantages; a constant
  gain (CV 0) weighs a unit of reward difference the same in every group of the task.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import verl  # noqa: E402, F401  (loads the onethinker plugin, as every verl process does)
from hydra import compose, initialize_config_dir  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.trainer.ppo import ray_trainer  # noqa: E402
from verl.utils.config import omega_conf_to_dataclass  # noqa: E402

from onethinker_verl.advantage import ema_grpo  # noqa: E402

GROUP_SIZE = 8
RESPONSE_LEN = 4
NEAR_CONSTANT_SHARE = 0.25
# (problem_type, data_type, reward kind, parameter): for "binary", the Beta(a, b) of a group's success
# rate; for "continuous", the task's spread s (group centres 0.5 + 0.5 s N(0, 1), within-group std
# s U(0.5, 1), or 0.02 s for nearly constant groups).
TASKS = [
    ("multiple choice", "video", "binary", (2.0, 2.0)),
    ("numerical", "image", "binary", (1.0, 3.0)),
    ("OCR", "image", "continuous", 0.02),
    ("tracking", "video", "continuous", 0.05),
    ("spatial grounding", "image", "continuous", 0.2),
    ("segmentation", "image", "continuous", 0.3),
]
METHODS = {
    "GRPO": {"adv_estimator": "grpo", "norm_adv_by_std_in_grpo": True},
    "GRPO, no std": {"adv_estimator": "grpo", "norm_adv_by_std_in_grpo": False},
    "EMA-GRPO": {"adv_estimator": "ema_grpo"},
}


def algorithm_config():
    """The ``algorithm`` section of verl's ``ppo_trainer`` config composed with ``+recipe=onethinker``."""
    config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        config = compose(config_name="ppo_trainer", overrides=["+recipe=onethinker"])
    return omega_conf_to_dataclass(config.algorithm)


def task_label(task: tuple) -> str:
    return ema_grpo.task_key(task[0], task[1])


def tick_label(task: tuple) -> str:
    """A task's axis label, wrapped, with its reward kind."""
    kind = "0/1 reward" if task[2] == "binary" else f"spread {task[3]:g}"
    return task_label(task).replace(" ", "\n").replace("/", "/\n") + f"\n[{kind}]"


def simulate_step(rng: np.random.Generator, groups_per_task: int) -> np.ndarray:
    """Scores of one step, shape (tasks, groups, GROUP_SIZE), in [0, 1]."""
    scores = np.empty((len(TASKS), groups_per_task, GROUP_SIZE))
    for t, (_, _, kind, parameter) in enumerate(TASKS):
        if kind == "binary":
            success = rng.beta(*parameter, size=(groups_per_task, 1))
            scores[t] = (rng.random((groups_per_task, GROUP_SIZE)) < success).astype(float)
        else:
            centre = 0.5 + 0.5 * parameter * rng.standard_normal((groups_per_task, 1))
            near_constant = rng.random((groups_per_task, 1)) < NEAR_CONSTANT_SHARE
            spread = parameter * np.where(near_constant, 0.02, rng.uniform(0.5, 1.0, size=(groups_per_task, 1)))
            scores[t] = np.clip(centre + spread * rng.standard_normal((groups_per_task, GROUP_SIZE)), 0.0, 1.0)
    return scores


def to_batch(scores: np.ndarray, step: int) -> DataProto:
    """A trainer-like DataProto of one step: the score on the last token, a uid per group, extra_info."""
    num_tasks, num_groups, _ = scores.shape
    flat = torch.as_tensor(scores.reshape(-1), dtype=torch.float32)
    token_level_rewards = torch.zeros(len(flat), RESPONSE_LEN)
    token_level_rewards[:, -1] = flat
    task_of = np.repeat(np.arange(num_tasks), num_groups * GROUP_SIZE)
    uids = np.array([f"{step}-{group}" for group in range(num_tasks * num_groups) for _ in range(GROUP_SIZE)], object)
    extra_info = np.empty(len(flat), dtype=object)
    extra_info[:] = [{"problem_type": TASKS[t][0], "data_type": TASKS[t][1]} for t in task_of]
    return DataProto.from_dict(
        tensors={"token_level_rewards": token_level_rewards, "response_mask": torch.ones(len(flat), RESPONSE_LEN)},
        non_tensors={"uid": uids, "extra_info": extra_info},
    )


def run_stream(steps: int, groups_per_task: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Scores and each method's per-sample advantages, all of shape (steps, tasks, groups, GROUP_SIZE)."""
    config = algorithm_config()
    rng = np.random.default_rng(seed)
    ema_grpo.TASK_MOMENTS.reset()
    all_scores, advantages = [], {name: [] for name in METHODS}
    for step in range(steps):
        scores = simulate_step(rng, groups_per_task)
        all_scores.append(scores)
        for name, kwargs in METHODS.items():
            out = ray_trainer.compute_advantage(to_batch(scores, step), config=config, **kwargs)
            advantages[name].append(out.batch["advantages"][:, -1].double().numpy().reshape(scores.shape))
    ema_grpo.TASK_MOMENTS.reset()
    ema_grpo.pop_step_metrics()
    return np.stack(all_scores), {name: np.stack(values) for name, values in advantages.items()}


def balance(scores: np.ndarray, advantages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per task: mean |advantage|, and the CV across groups of the gain |advantage| / |reward - group mean|."""
    per_task = np.moveaxis(advantages, 1, 0).reshape(len(TASKS), -1, GROUP_SIZE)  # (tasks, all groups, G)
    task_scores = np.moveaxis(scores, 1, 0).reshape(len(TASKS), -1, GROUP_SIZE)
    mean_abs = np.abs(per_task).mean(axis=(1, 2))
    deviation = np.abs(task_scores - task_scores.mean(axis=-1, keepdims=True)).mean(axis=-1)
    gain_cv = np.empty(len(TASKS))
    for t in range(len(TASKS)):
        varied = deviation[t] > 1e-6  # groups with identical rewards get zero advantage under every method
        gain = np.abs(per_task[t][varied]).mean(axis=-1) / deviation[t][varied]
        gain_cv[t] = gain.std() / gain.mean()
    return mean_abs, gain_cv


def print_table(title: str, values: dict[str, np.ndarray], labels: list[str], ratio_row: bool) -> None:
    width = max(len(label) for label in labels)
    header = f"{'task':<{width}} | " + " | ".join(f"{name:>12}" for name in values)
    print(f"\n{title}\n{header}\n{'-' * len(header)}")
    for t, label in enumerate(labels):
        print(f"{label:<{width}} | " + " | ".join(f"{column[t]:>12.3f}" for column in values.values()))
    if ratio_row:
        print(f"{'max / min':<{width}} | " + " | ".join(f"{col.max() / col.min():>12.1f}" for col in values.values()))


def plot(mean_abs: dict[str, np.ndarray], gain_cv: dict[str, np.ndarray], output: Path) -> None:
    figure, (inter, intra) = plt.subplots(1, 2, figsize=(13, 4.8))
    positions = np.arange(len(TASKS))
    width = 0.8 / len(METHODS)
    for i, name in enumerate(METHODS):
        offset = positions + (i - (len(METHODS) - 1) / 2) * width
        for axis, values in ((inter, mean_abs), (intra, gain_cv)):
            bars = axis.bar(offset, values[name], width, label=name)
            axis.bar_label(bars, fmt="%.2f", fontsize=6.5, padding=1)
    inter.set_title("(a) inter-task: mean |advantage| per task\n(equal bars = every task weighs the same)")
    inter.set_ylabel("mean |advantage|")
    intra.set_title(
        "(b) intra-task: spread across groups of |advantage| per unit\n"
        "reward difference (CV; 0 = every group scaled alike)"
    )
    intra.set_ylabel("coefficient of variation across groups")
    for axis, values in ((inter, mean_abs), (intra, gain_cv)):
        axis.set_xticks(positions, [tick_label(task) for task in TASKS], fontsize=8.5)
        axis.set_ylim(0, 1.3 * max(column.max() for column in values.values()))  # room for the legend
        axis.grid(axis="y", alpha=0.3)
        axis.legend(fontsize=9, ncol=len(METHODS), loc="upper center")
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=90)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("docs/task_balance.png"), help="PNG to write")
    parser.add_argument("--steps", type=int, default=50, help="training steps to simulate")
    parser.add_argument("--groups", type=int, default=16, help="prompt groups per task per step")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    scores, advantages = run_stream(args.steps, args.groups, args.seed)
    results = {name: balance(scores, values) for name, values in advantages.items()}
    mean_abs = {name: result[0] for name, result in results.items()}
    gain_cv = {name: result[1] for name, result in results.items()}
    labels = [task_label(task) for task in TASKS]
    print(f"{args.steps} steps x {len(TASKS)} tasks x {args.groups} groups of {GROUP_SIZE}, seed {args.seed}")
    print_table("(a) inter-task: mean |advantage| per task", mean_abs, labels, ratio_row=True)
    intra_title = "(b) intra-task: CV across groups of |advantage| / |reward - group mean|"
    print_table(intra_title, gain_cv, labels, ratio_row=False)
    plot(mean_abs, gain_cv, args.output)
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
