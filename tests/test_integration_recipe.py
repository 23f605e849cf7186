"""The OneThinker recipe end to end through verl's real machinery, on the CPU, via the dry run.

:func:`onethinker_verl.dry_run.run_dry_run` composes ``+recipe=onethinker``, builds ``OneThinkerDataset``
from the bundled sample corpus with verl's ``create_rl_dataset`` (real Qwen2-VL processor class), scores canned rollouts with verl's ``RewardLoopManager`` Ray actors running the
``onethinker`` manager, writes the trajectories to TransferQueue as verl's agent loop does, samples them
with verl's v1 ``ReplayBuffer`` under the online accuracy filter, and runs verl's v1
``PPOTrainer._compute_advantage`` with ``ema_grpo``.

Replaced: generation (canned responses built from each prompt's ground truth: all right, half right or
all wrong by row) and the actor update. The expected values below come from the reward spec by hand and
from the loop-based EMA-GRPO reference, not from the code under test.
"""

import json
import logging
import re
from collections import defaultdict

import pytest
from verl.trainer.ppo.metric_utils import process_validation_metrics

from onethinker_verl.advantage import ema_grpo
from onethinker_verl.dry_run import PLANS, WRONG_ANSWER, run_dry_run
from onethinker_verl.glue import online_filter as online_filter_glue
from onethinker_verl.glue.ema_checkpoint import EMA_STATE_FILE, save_estimator_state
from onethinker_verl.data.tasks import task_name
from _spec_ema_grpo import SpecEmaGrpo
from test_ema_grpo import canonical_key

N = 4
# A well-formatted non-JSON answer earns the 0.5 shape bonus except in tasks whose answer must be JSON.
JSON_TASKS = {"temporal grounding", "spatial grounding", "spatial-temporal grounding", "tracking", "segmentation"}
# The one spelling of each task (README, Metrics).
TASK_NAMES = {"multiple_choice", "numerical", "regression", "ocr", "open_ended", "math", "temporal_grounding",
              "spatial_grounding", "spatial_temporal_grounding", "tracking", "segmentation"}


def letters(text):
    """A name with case, spaces, hyphens and underscores ignored: every spelling of a task looks the same."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def task_spellings(names):
    """{task: spellings seen} over the '/'-separated parts of ``names`` that name a task in any spelling."""
    by_letters = {letters(task): task for task in TASK_NAMES}
    seen = defaultdict(set)
    for name in names:
        for part in name.split("/"):
            if letters(part) in by_letters:
                seen[by_letters[letters(part)]].add(part)
    return seen


def test_one_simulated_step_through_verls_machinery(transfer_queue, tmp_path):
    ema_grpo.TASK_MOMENTS.reset()
    result = run_dry_run(rollouts_per_prompt=N, workdir=tmp_path)
    infos = result.rollouts.non_tensor_batch["extra_info"]
    uids = result.rollouts.non_tensor_batch["uid"]

    # the main recipe has no default corpus: the dry run passes the bundled one; every row reached the reward loop
    assert result.config.data.train_files.endswith("rl_train.jsonl")
    rows = len(set(uids))
    assert len(result.texts) == rows * N

    # reward: right = accuracy 1, format 1, full shape bonus = 1.5; wrong = format only + shape bonus
    for i, text in enumerate(result.texts):
        problem_type = infos[i]["problem_type"]
        expected = 0.1 + (0.0 if problem_type in JSON_TASKS else 0.5) if WRONG_ANSWER in text else 1.5
        assert result.sequence_rewards[i] == pytest.approx(expected, abs=1e-6), (problem_type, text)

    # online filter: all-right groups (mean accuracy 1) and all-wrong ones (0) are dropped
    plan_of = {f"prompt{i}": PLANS[i % 3] for i in range(rows)}
    kept = {key.split("_")[0] for key in result.kept_keys}
    assert kept == {uid for uid, plan in plan_of.items() if plan == "half right"}
    assert result.metrics["online_filter/dropped_high"] == sum(plan == "all right" for plan in plan_of.values())
    assert result.metrics["online_filter/dropped_low"] == sum(plan == "all wrong" for plan in plan_of.values())
    assert result.metrics["online_filter/groups_kept"] == len(kept)

    # EMA-GRPO inside verl's v1 advantage step equals the loop-based reference on the kept trajectories
    picked = [result.trajectory_keys.index(key) for key in result.kept_keys]
    expected = SpecEmaGrpo().step(
        [result.sequence_rewards[j] for j in picked],
        [uids[j] for j in picked],
        [infos[j]["problem_type"] for j in picked],
        [infos[j]["data_type"] for j in picked],
    )
    assert result.advantages == pytest.approx(expected, abs=1e-5)

    # per-task step metrics over every scored group, kept and dropped: the share of right answers per task
    right = {}
    for info, text in zip(infos, result.texts, strict=True):
        right.setdefault(task_name(info["problem_type"]), []).append(WRONG_ANSWER not in text)
    reward_accuracy = {k: v for k, v in result.metrics.items() if k.startswith("reward/accuracy/")}
    assert reward_accuracy == pytest.approx({f"reward/accuracy/{task}": sum(v) / len(v) for task, v in right.items()})
    for j in picked:
        key = canonical_key(SpecEmaGrpo.key(infos[j]["problem_type"], infos[j]["data_type"]))
        assert f"ema_grpo/moving_std/{key}" in result.metrics


def test_every_metric_key_and_the_moments_file_spell_each_task_one_way(
    transfer_queue, tmp_path, caplog, monkeypatch
):
    """The task part of every name one step produces (training metrics of the reward, the filter and
    EMA-GRPO; verl's validation keys of the same rollouts, benchmark keys included; data sources; the
    reward's task column; the EMA-GRPO moments file) is spelled one way per task. The recipe's
    max_num_gen_batches is announced as enforced, and verl's line saying it is ignored is not printed."""
    ema_grpo.TASK_MOMENTS.reset()
    monkeypatch.setattr(online_filter_glue, "_budget_announced", False)  # as in a fresh process
    with caplog.at_level(logging.WARNING):
        result = run_dry_run(rollouts_per_prompt=N, workdir=tmp_path)
    budget = [r.getMessage() for r in caplog.records if "algorithm.filter_groups.max_num_gen_batches" in r.getMessage()]
    assert len(budget) == 1 and "=20 is enforced by the onethinker online filter" in budget[0], budget
    extra = result.reward_extra_info
    data_sources = list(result.rollouts.non_tensor_batch["data_source"])
    validation = process_validation_metrics(data_sources, list(result.rollouts.non_tensor_batch["uid"]), extra)
    validation_keys = [f"val-aux/{source}/{key}" for source, by_key in validation.items() for key in by_key]
    save_estimator_state(str(tmp_path / "step"), 1)
    moments_keys = json.loads((tmp_path / "step" / EMA_STATE_FILE).read_text())["task_moments"]

    names = [*result.metrics, *validation_keys, *extra, *data_sources, *extra["task"], *moments_keys]
    spellings = task_spellings(names)
    assert spellings == {task: {task} for task in TASK_NAMES}  # all eleven tasks appear, each spelled one way
    # each family names the tasks it reports (the filter kept groups of some tasks only)
    assert {"multiple_choice", "ocr", "spatial_temporal_grounding"} <= set(task_spellings(
        key for key in result.metrics if key.startswith("ema_grpo/")))
    assert set(task_spellings(key for key in result.metrics if key.startswith("reward/"))) == TASK_NAMES
    assert set(task_spellings(key for key in result.metrics if key.startswith("online_filter/"))) == TASK_NAMES
    assert {"multiple_choice", "ocr", "spatial_temporal_grounding"} <= set(task_spellings(
        key for key in extra if key.startswith("bench/")))
