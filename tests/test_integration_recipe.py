"""The OneThinker recipe end to end through verl's real machinery, on the CPU.

Runs for real: Hydra composition of ``+recipe=onethinker`` on verl's ``ppo_trainer`` config; verl's
``create_rl_dataset`` building ``OneThinkerDataset`` from the bundled sample corpus (with a real Qwen2-VL
processor class around a tiny tokenizer, filtering over-long prompts), verl's ``collate_fn`` and a
``DataLoader``; verl's ``RewardLoopManager`` starting ``RewardLoopWorker`` Ray actors that score with the
registered ``onethinker`` reward manager (loaded in those processes by ``import verl``); TransferQueue
holding the trajectories as verl's agent loop writes them; verl's v1 ``ReplayBuffer.sample`` with the
online accuracy-band filter; verl's v1 ``PPOTrainer._compute_advantage`` with ``ema_grpo``.

Replaced: generation (each prompt gets canned responses built from its ground truth: a perfect answer or
a wrong one, tokenised with a tiny byte-level tokenizer) and everything after the advantage step (the actor
update). The trainer object is verl's class without its GPU workers.
"""

import json
from collections import Counter

import numpy as np
import pytest
import torch
import verl  # noqa: F401
from tensordict import TensorDict
from torch.utils.data import DataLoader
from transfer_queue import KVBatchMeta
from verl import DataProto
from verl.experimental.reward_loop.reward_loop import RewardLoopManager
from verl.trainer.ppo.utils import create_rl_dataset
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.utils.dataset.rl_dataset import collate_fn
from verl.utils.tensordict_utils import list_of_dict_to_tensordict

from conftest import compose_recipe, tiny_qwen_vl_processor, train_tokenizer
from onethinker_verl.advantage import ema_grpo
from onethinker_verl.data.sample import sample_file
from test_ema_grpo import SpecEmaGrpo

N = 4  # rollouts per prompt
PROMPT_LEN, RESPONSE_LEN = 8, 160
WRONG = "zzzz"
# Answer-shape bonus of a well-formatted answer that is not JSON: 0 for the JSON-answer tasks, 0.5 otherwise.
JSON_TASKS = {"temporal grounding", "spatial grounding", "spatial-temporal grounding", "tracking", "segmentation"}
PLAN = ("all perfect", "half perfect", "all wrong")  # by row index modulo 3


def unwrap(ground_truth: str) -> str:
    inner = ground_truth.split("<answer>", 1)[-1].split("</answer>", 1)[0].strip()
    return inner if "<answer>" in ground_truth and inner else ground_truth


def responses_for(row_index: int, ground_truth: str) -> list[str]:
    plan = PLAN[row_index % 3]
    perfect = f"<think>Looking at the frames carefully.</think><answer>{unwrap(ground_truth)}</answer>"
    wrong = f"<think>Looking at the frames carefully.</think><answer>{WRONG}</answer>"
    n_perfect = {"all perfect": N, "half perfect": N // 2, "all wrong": 0}[plan]
    return [perfect] * n_perfect + [wrong] * (N - n_perfect)


def rollout_batch(batch: dict, tokenizer) -> tuple[DataProto, list[str]]:
    """The collated prompts repeated N times with canned responses, laid out as verl's reward loop gets them."""
    rows, texts = len(batch["raw_prompt"]), []
    columns = {key: [] for key in ("data_source", "reward_model", "extra_info", "raw_prompt", "uid")}
    prompts, responses, masks = [], [], []
    for i in range(rows):
        for text in responses_for(i, batch["reward_model"][i]["ground_truth"]):
            ids = tokenizer.encode(text) + [tokenizer.eos_token_id]
            assert len(ids) <= RESPONSE_LEN, "canned response longer than the test layout"
            prompts.append([tokenizer.pad_token_id] * (PROMPT_LEN - 1) + [tokenizer.eos_token_id])
            responses.append(ids + [tokenizer.pad_token_id] * (RESPONSE_LEN - len(ids)))
            masks.append([0] * (PROMPT_LEN - 1) + [1] * (1 + len(ids)) + [0] * (RESPONSE_LEN - len(ids)))
            for key in columns:
                columns[key].append(f"prompt{i}" if key == "uid" else batch[key][i])
            texts.append(text)
    non_tensors = {}
    for key, values in columns.items():
        non_tensors[key] = np.empty(len(values), dtype=object)
        non_tensors[key][:] = values
    tensors = TensorDict(
        {"prompts": torch.tensor(prompts), "responses": torch.tensor(responses), "attention_mask": torch.tensor(masks)},
        batch_size=len(texts),
    )
    return DataProto(batch=tensors, non_tensor_batch=non_tensors), texts


def write_trajectories(tq, data: DataProto, rewards: DataProto) -> None:
    """Prompt records and trajectories in TransferQueue as verl's v1 agent loop leaves them after scoring."""
    uids = list(data.non_tensor_batch["uid"])
    tq.kv_batch_put(
        keys=list(dict.fromkeys(uids)),
        partition_id="train",
        tags=[{"is_prompt": True, "status": "finished", "global_steps": 1} for _ in dict.fromkeys(uids)],
    )
    extra_keys = rewards.meta_info["reward_extra_keys"]
    keys, fields, tags, session = [], [], [], Counter()
    for i, uid in enumerate(uids):
        length = int(data.batch["attention_mask"][i, PROMPT_LEN:].sum())
        keys.append(f"{uid}_{session[uid]}_0")
        session[uid] += 1
        fields.append(
            {
                "uid": uid,
                "response_mask": torch.ones(length, dtype=torch.int64),
                "rm_scores": rewards.batch["rm_scores"][i, :length].clone(),
                "old_log_probs": torch.zeros(length),
                "extra_info": data.non_tensor_batch["extra_info"][i],
                "extra_fields": {"reward_extra_info": {k: rewards.non_tensor_batch[k][i] for k in extra_keys}},
            }
        )
        tags.append({"status": "success", "global_steps": 1, "min_global_steps": 1, "max_global_steps": 1})
    tq.kv_batch_put(keys=keys, partition_id="train", fields=list_of_dict_to_tensordict(fields), tags=tags)


def test_onethinker_recipe_through_verls_machinery(ray_transfer_queue, tmp_path):
    tq = ray_transfer_queue
    ema_grpo.TASK_MOMENTS.reset()
    rows = [json.loads(line) for line in open(sample_file("rl_train.jsonl"), encoding="utf-8")]
    kept_rows = sum(1 for i in range(len(rows)) if PLAN[i % 3] == "half perfect")

    tokenizer = train_tokenizer([json.dumps(rows), "<think>Looking at the frames carefully.</think>", WRONG])
    tokenizer.save_pretrained(tmp_path / "model")
    config = compose_recipe(
        f"actor_rollout_ref.model.path={tmp_path / 'model'}",
        f"actor_rollout_ref.rollout.n={N}",
        f"data.train_batch_size={kept_rows}",
        "reward.num_workers=1",
        f"+data.cache_dir={tmp_path / 'cache'}",
    )

    # 1. data: the recipe's default train files (the bundled corpus) through verl's dataset factory
    processor = tiny_qwen_vl_processor(" ".join(json.dumps(rows).replace('"', " ").split()))
    assert config.data.train_files == sample_file("rl_train.jsonl")  # the recipe's resolver, resolved
    dataset = create_rl_dataset([config.data.train_files], config.data, processor.tokenizer, processor)
    assert len(dataset) == len(rows)
    batch = next(iter(DataLoader(dataset, batch_size=len(dataset), collate_fn=collate_fn, shuffle=False)))

    # 2. reward: verl's reward-loop Ray actor(s) with the onethinker manager
    data, texts = rollout_batch(batch, tokenizer)
    rewards = RewardLoopManager(config).compute_rm_score(data)
    sequence_rewards = rewards.batch["rm_scores"].sum(-1).tolist()
    for i, text in enumerate(texts):
        problem_type = data.non_tensor_batch["extra_info"][i]["problem_type"]
        if WRONG in text:
            expected = 0.1 + (0.0 if problem_type in JSON_TASKS else 0.5)  # format only + answer shape
        else:
            expected = 1.5  # perfect: accuracy 1, format 1, full answer-shape bonus
        assert sequence_rewards[i] == pytest.approx(expected, abs=1e-6), (problem_type, text)

    # 3. online filter in verl's v1 replay buffer: only the half-perfect groups survive
    write_trajectories(tq, data, rewards)
    trainer = PPOTrainerSync.__new__(PPOTrainerSync)
    trainer.config, trainer.trainer_mode, trainer.global_steps = config, "sync", 1
    trainer._add_prompts_to_generate = lambda n: pytest.fail(f"no refill expected, asked for {n}")
    buffer = trainer._build_replay_buffer()
    sampled, sample_metrics = buffer.sample(global_steps=1, partition_id="train", batch_size=kept_rows)
    kept_uids = {key.split("_")[0] for key in sampled.keys}
    assert kept_uids == {f"prompt{i}" for i in range(len(rows)) if PLAN[i % 3] == "half perfect"}
    assert sample_metrics["online_filter/dropped_high"] == sum(1 for i in range(len(rows)) if i % 3 == 0)
    assert sample_metrics["online_filter/dropped_low"] == sum(1 for i in range(len(rows)) if i % 3 == 2)

    # 4. EMA-GRPO inside verl's v1 advantage step, on the kept groups
    metrics = {}
    trainer._compute_advantage(sampled, metrics)
    stored = tq.kv_batch_get(keys=sampled.keys, partition_id="train", select_fields=["advantages"])["advantages"]
    index_of = {f"{uid}_{s}_0": j for j, (uid, s) in enumerate(
        (uid, s) for uid in dict.fromkeys(data.non_tensor_batch["uid"]) for s in range(N)
    )}
    picked = [index_of[key] for key in sampled.keys]
    expected = SpecEmaGrpo().step(
        [sequence_rewards[j] for j in picked],
        [data.non_tensor_batch["uid"][j] for j in picked],
        [data.non_tensor_batch["extra_info"][j]["problem_type"] for j in picked],
        [data.non_tensor_batch["extra_info"][j]["data_type"] for j in picked],
    )
    np.testing.assert_allclose([row[0].item() for row in stored.unbind(0)], expected, atol=1e-5)

    # 5. per-task step metrics: every kept group has 2 of 4 answers right
    kept_tasks = {data.non_tensor_batch["extra_info"][j]["problem_type"] for j in picked}
    reward_accuracy = {k: v for k, v in metrics.items() if k.startswith("reward/accuracy/")}
    assert len(reward_accuracy) == len(kept_tasks)
    assert all(value == pytest.approx(0.5) for value in reward_accuracy.values())
    estimator_metrics = ema_grpo.pop_step_metrics()
    for j in picked:
        info = data.non_tensor_batch["extra_info"][j]
        assert f"ema_grpo/moving_std/{SpecEmaGrpo.key(info['problem_type'], info['data_type'])}" in estimator_metrics
