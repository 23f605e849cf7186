"""The glue inside verl's default (v1) trainer, on a real local Ray cluster with TransferQueue.

Trajectories are written to TransferQueue in the layout verl's agent loop writes them (keys
``{uid}_{session}_{index}``, the dataset row's fields such as ``extra_info`` and ``extra_fields`` holding
``reward_extra_info``). Generation is replaced by writing finished trajectories directly; the methods under
test are verl's own ``PPOTrainer._compute_advantage`` / ``_build_replay_buffer`` and ``ReplayBuffer.sample``,
called on a trainer object built without its GPU workers.
"""

import numpy as np
import pytest
import torch
import verl  # noqa: F401
from transfer_queue import KVBatchMeta
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.utils.tensordict_utils import list_of_dict_to_tensordict

from conftest import compose_recipe
from onethinker_verl.advantage import ema_grpo
from onethinker_verl.online_filter import OnlineFilterExhausted
from _spec_ema_grpo import SpecEmaGrpo

PARTITION = "train"


@pytest.fixture
def tq(transfer_queue):
    ema_grpo.TASK_MOMENTS.reset()
    return transfer_queue


def trainer_without_workers(*overrides, refill=None):
    """verl's sync v1 trainer class with its config, skipping __init__ (which starts GPU workers)."""
    trainer = PPOTrainerSync.__new__(PPOTrainerSync)
    trainer.config = compose_recipe("data.train_batch_size=2", "actor_rollout_ref.rollout.n=4", *overrides)
    trainer.trainer_mode = "sync"
    trainer.global_steps = 1
    if refill is not None:
        trainer._add_prompts_to_generate = refill
    return trainer


def put_finished_group(tq, uid, scores, accuracies, problem_type="tracking", data_type="video", step=1):
    """One prompt group as the agent loop leaves it: a finished prompt record plus its trajectories."""
    tq.kv_batch_put(
        keys=[uid], partition_id=PARTITION, tags=[{"is_prompt": True, "status": "finished", "global_steps": step}]
    )
    keys, fields, tags = [], [], []
    for session, (score, accuracy) in enumerate(zip(scores, accuracies, strict=True)):
        length = 3 + session % 3
        rm_scores = torch.zeros(length)
        rm_scores[-1] = score
        keys.append(f"{uid}_{session}_0")
        fields.append(
            {
                "uid": uid,
                "response_mask": torch.ones(length, dtype=torch.int64),
                "rm_scores": rm_scores,
                "old_log_probs": torch.zeros(length),
                "extra_info": {"problem_type": problem_type, "data_type": data_type, "index": 0},
                "extra_fields": {
                    "reward_extra_info": {"score": score, "accuracy": accuracy, "task": problem_type.replace(" ", "_")}
                },
            }
        )
        tags.append({"status": "success", "global_steps": step, "min_global_steps": step, "max_global_steps": step})
    tq.kv_batch_put(keys=keys, partition_id=PARTITION, fields=list_of_dict_to_tensordict(fields), tags=tags)
    return keys, tags


def test_v1_advantage_step_gets_each_trajectorys_task(tq):
    rng = np.random.default_rng(0)
    groups = [
        ("g0", "tracking", "video"),
        ("g1", "tracking", "video"),
        ("g2", "multiple choice", "image"),
        ("g3", "segmentation", "image"),
        ("g4", "segmentation", "video"),
    ]
    spec = SpecEmaGrpo()
    trainer = trainer_without_workers()
    for step in range(2):
        keys, tags, scores, uids, problem_types, data_types = [], [], [], [], [], []
        for name, problem_type, data_type in groups:
            uid = f"s{step}{name}"
            group_scores = rng.uniform(0, 1.5, 4).round(3).tolist()
            k, t = put_finished_group(tq, uid, group_scores, [s / 1.5 for s in group_scores], problem_type, data_type)
            keys += k
            tags += t
            scores += group_scores
            uids += [uid] * 4
            problem_types += [problem_type] * 4
            data_types += [data_type] * 4
        metrics = {}
        trainer._compute_advantage(KVBatchMeta(partition_id=PARTITION, keys=keys, tags=tags), metrics)
        stored = tq.kv_batch_get(keys=keys, partition_id=PARTITION, select_fields=["advantages"])["advantages"]
        got = [row[0].item() for row in stored.unbind(0)]  # advantages are constant over each response
        expected = spec.step(scores, uids, problem_types, data_types)
        np.testing.assert_allclose(got, expected, atol=1e-5)
        assert metrics["reward/accuracy/tracking"] == pytest.approx(
            np.mean([s / 1.5 for s, p in zip(scores, problem_types) if p == "tracking"])
        )
        assert metrics["reward/count/multiple_choice"] == 4
        tq.kv_clear(keys=keys, partition_id=PARTITION)
    assert set(ema_grpo.TASK_MOMENTS.keys()) == {"tracking", "multiple choice", "segmentation/image", "segmentation/video"}


def test_v1_advantage_step_without_task_fails_loudly(tq):
    keys, tags = put_finished_group(tq, "notask", [0.0, 1.0, 0.5, 1.5], [0, 1, 0, 1], problem_type="")
    with pytest.raises(ValueError, match="has no 'problem_type'"):
        trainer_without_workers()._compute_advantage(KVBatchMeta(partition_id=PARTITION, keys=keys, tags=tags), {})


class FakeGeneration:
    """Stands in for rollout: each refilled prompt becomes a finished group with the next accuracies."""

    def __init__(self, tq, accuracy_groups):
        self.tq, self.pending, self.made, self.requested = tq, list(accuracy_groups), {}, []

    def __call__(self, num_prompts):
        self.requested.append(num_prompts)
        for _ in range(num_prompts):
            accuracies = self.pending.pop(0) if self.pending else [0.0] * 4
            uid = f"refill{len(self.made)}"
            self.made[uid] = accuracies
            put_finished_group(self.tq, uid, accuracies, accuracies)
        return num_prompts


def test_online_filter_keeps_groups_strictly_inside_the_band(tq):
    generation = FakeGeneration(tq, [[0.5, 0.5, 1.0, 0.0], [0.25, 0.0, 0.0, 0.0]] + [[1.0] * 4] * 4)
    trainer = trainer_without_workers(refill=generation)
    buffer = trainer._build_replay_buffer()
    # Neither group below is constant, so verl's own rule (drop groups with identical metric) would keep both.
    groups = {
        "almostwrong": [0.0, 0.0, 0.0, 0.02],  # mean 0.005 <= 0.01: dropped low
        "almostright": [1.0, 1.0, 1.0, 0.97],  # mean 0.9925 >= 0.99: dropped high
        "mixed": [1.0, 0.0, 0.0, 0.0],  # mean 0.25: kept
    }
    for uid, accuracies in groups.items():
        put_finished_group(tq, uid, accuracies, accuracies)
    batch, metrics = buffer.sample(global_steps=1, partition_id=PARTITION, batch_size=2)
    kept = {key.split("_")[0] for key in batch.keys}
    groups.update(generation.made)
    # One group survives the first pass, so verl refills; which in-band groups it then picks is its choice.
    assert len(kept) == 2
    assert all(0.01 < np.mean(groups[uid]) < 0.99 for uid in kept), {uid: groups[uid] for uid in kept}
    assert metrics["online_filter/groups_kept"] == 2
    assert metrics["online_filter/dropped_low"] == 1
    assert metrics["online_filter/dropped_high"] == 1
    assert metrics["online_filter/gen_batches_used"] == pytest.approx(1 + sum(generation.requested) / 2)
    assert metrics["training/filter_groups/evicted_samples"] == 2


def test_online_filter_gives_up_after_the_configured_tries(tq):
    generation = FakeGeneration(tq, [])  # every refilled group is all wrong
    trainer = trainer_without_workers("algorithm.filter_groups.max_num_gen_batches=3", refill=generation)
    buffer = trainer._build_replay_buffer()
    put_finished_group(tq, "bad1", [0.0] * 4, [0.0] * 4)
    put_finished_group(tq, "bad2", [1.0] * 4, [1.0] * 4)
    with pytest.raises(OnlineFilterExhausted, match="max_num_gen_batches=3"):
        buffer.sample(global_steps=1, partition_id=PARTITION, batch_size=2)
    assert sum(generation.requested) <= (3 - 1) * 2


def test_online_filter_needs_verls_group_filtering_on():
    trainer = trainer_without_workers("algorithm.filter_groups.enable=false", refill=lambda n: n)
    with pytest.raises(ValueError, match="needs algorithm.filter_groups.enable=true"):
        trainer._build_replay_buffer()


def test_model_scores_are_normalised_per_group_before_the_advantage_step(tq):
    """model_scoring.normalize_by_group: z-score then min-max within each group, overall recomputed."""
    from onethinker_verl.reward.model_scoring import MODEL_SCORE_KEY

    raw_model_scores = [-3.0, -1.0, -2.0, -1.0]
    keys, tags = put_finished_group(tq, "open", [0.0] * 4, [0.2] * 4, problem_type="open-ended", data_type="image")
    # the manager's reward_extra_info of model-scored, well-formatted open-ended answers
    fields = [
        {"extra_fields": {"reward_extra_info": {
            "score": 0.0, "accuracy": 0.2, "format": 1.0, "structure": 0.5, "task": "open_ended", MODEL_SCORE_KEY: m,
        }}}
        for m in raw_model_scores
    ]
    tq.kv_batch_put(keys=keys, partition_id=PARTITION, fields=list_of_dict_to_tensordict(fields))
    trainer = trainer_without_workers(
        "algorithm.adv_estimator=grpo",
        "reward.reward_manager.model_scoring.enable=true",
        "reward.reward_manager.model_scoring.normalize_by_group=true",
    )
    metrics = {}
    trainer._compute_advantage(KVBatchMeta(partition_id=PARTITION, keys=keys, tags=tags), metrics)
    mean = np.mean(raw_model_scores)
    z = (np.array(raw_model_scores) - mean) / np.std(raw_model_scores)
    accuracy = (z - z.min()) / (z.max() - z.min())  # [0, 1, 0.5, 1]
    expected_scores = 0.9 * accuracy + 0.1 * 1.0 + 0.5
    rm_scores = tq.kv_batch_get(keys=keys, partition_id=PARTITION, select_fields=["rm_scores"])["rm_scores"]
    np.testing.assert_allclose([row.sum().item() for row in rm_scores.unbind(0)], expected_scores, atol=1e-6)
    assert metrics["reward/accuracy/open_ended"] == pytest.approx(accuracy.mean())
    advantages = tq.kv_batch_get(keys=keys, partition_id=PARTITION, select_fields=["advantages"])["advantages"]
    got = np.array([row[0].item() for row in advantages.unbind(0)])
    np.testing.assert_allclose(got, (expected_scores - expected_scores.mean()) / (expected_scores.std(ddof=1) + 1e-6), atol=1e-5)
