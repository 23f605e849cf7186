"""CPU dry run of the OneThinker recipe: one training step short of generation and the policy update,
through verl's real code, on the bundled sample corpus.

    python -m onethinker_verl.dry_run [HYDRA_OVERRIDE ...]

What runs for real: ``+recipe=onethinker`` composed on verl's ``ppo_trainer`` config, with the bundled sample
as ``data.train_files`` (plus overrides), and the recipe's start-up check;
verl's ``create_rl_dataset`` building ``OneThinkerDataset`` with a real Qwen2-VL processor class;
``collate_fn``; verl's ``RewardLoopManager`` with ``RewardLoopWorker`` Ray actors scoring with the
``onethinker`` manager; TransferQueue; verl's v1 ``ReplayBuffer.sample`` with the online accuracy filter;
verl's v1 ``PPOTrainer._compute_advantage`` with ``ema_grpo``. What is simulated: the policy. Each prompt
gets canned responses built from its ground truth (all right, half right, or all wrong, by row), tokenised
by a tokenizer trained on the spot, since no model can be downloaded or run here. It prints the step's
per-task reward, filter and EMA-GRPO metrics.
"""

import argparse
import json
import logging
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

PLANS = ("all right", "half right", "all wrong")  # by row index modulo 3
WRONG_ANSWER = "zzzz"
THINKING = "<think>Looking at the frames carefully.</think>"
PROMPT_LEN = 8
PAD, EOS = "<pad>", "<eos>"

# A Qwen-VL style chat template: media items become vision start, one pad token the processor expands, end.
QWEN_VL_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                          "<|image_pad|>", "<|video_pad|>"]
QWEN_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def train_tokenizer(texts):
    """A byte-level BPE tokenizer trained on ``texts`` (decoding gives the text back exactly)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=[PAD, EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=PAD, eos_token=EOS)


def tiny_qwen_vl_processor(vocabulary_text: str):
    """A real ``Qwen2VLProcessor`` (default image and video processors) around a word-level tokenizer
    trained on ``vocabulary_text``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(
        [vocabulary_text], trainers.WordLevelTrainer(special_tokens=["[UNK]", *QWEN_VL_SPECIAL_TOKENS])
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", eos_token="<|im_end|>", pad_token="<|endoftext|>",
        chat_template=QWEN_VL_CHAT_TEMPLATE,
    )
    return Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(), tokenizer=fast, video_processor=Qwen2VLVideoProcessor(),
        chat_template=QWEN_VL_CHAT_TEMPLATE,
    )


def compose_recipe(*overrides: str, recipe: str = "onethinker"):
    """verl's ``ppo_trainer`` config composed with ``+recipe=<recipe>`` and ``overrides``, as main_ppo does."""
    import verl
    from hydra import compose, initialize_config_dir

    config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose(config_name="ppo_trainer", overrides=[f"+recipe={recipe}", *overrides])


def canned_responses(row_index: int, ground_truth: str, n: int) -> list[str]:
    """The simulated policy's n answers to row ``row_index``: right ones quote the ground truth."""
    inner = ground_truth.split("<answer>", 1)[-1].split("</answer>", 1)[0].strip()
    answer = inner if "<answer>" in ground_truth and inner else ground_truth
    right = {"all right": n, "half right": n // 2, "all wrong": 0}[PLANS[row_index % len(PLANS)]]
    right_response = f"{THINKING}<answer>{answer}</answer>"
    wrong_response = f"{THINKING}<answer>{WRONG_ANSWER}</answer>"
    return [right_response] * right + [wrong_response] * (n - right)


def rollout_batch(batch: dict, tokenizer, n: int):
    """Collated prompts repeated n times with canned responses, laid out as verl's reward loop receives them."""
    from tensordict import TensorDict
    from verl import DataProto

    texts, prompts, responses, masks = [], [], [], []
    columns = {key: [] for key in ("data_source", "reward_model", "extra_info", "raw_prompt", "uid")}
    encoded = [
        [tokenizer.encode(text) + [tokenizer.eos_token_id] for text in canned_responses(i, rm["ground_truth"], n)]
        for i, rm in enumerate(batch["reward_model"])
    ]
    response_len = max(len(ids) for group in encoded for ids in group)
    for i, group in enumerate(encoded):
        for ids, text in zip(group, canned_responses(i, batch["reward_model"][i]["ground_truth"], n), strict=True):
            prompts.append([tokenizer.pad_token_id] * (PROMPT_LEN - 1) + [tokenizer.eos_token_id])
            responses.append(ids + [tokenizer.pad_token_id] * (response_len - len(ids)))
            masks.append([0] * (PROMPT_LEN - 1) + [1] * (1 + len(ids)) + [0] * (response_len - len(ids)))
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


def write_trajectories(tq, data, rewards) -> list[str]:
    """Prompt records and scored trajectories in TransferQueue, as verl's v1 agent loop leaves them."""
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    uids = list(data.non_tensor_batch["uid"])
    groups = list(dict.fromkeys(uids))
    tq.kv_batch_put(
        keys=groups,
        partition_id="train",
        tags=[{"is_prompt": True, "status": "finished", "global_steps": 1} for _ in groups],
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
    return keys


@dataclass
class DryRunResult:
    config: object  # the composed config
    rollouts: object  # DataProto of all rollouts (prompts repeated n times, canned responses)
    texts: list  # response text of each rollout
    sequence_rewards: list  # overall reward of each rollout, from verl's reward loop
    trajectory_keys: list  # TransferQueue key of each rollout, in rollout order
    kept_keys: list  # trajectory keys the online filter kept, in sampled order
    advantages: list  # advantage of each kept trajectory (same order as kept_keys)
    metrics: dict  # the step's metrics: online filter, per-task reward, EMA-GRPO
    reward_extra_info: dict  # the reward loop's per-rollout extra info, column-wise (rollout order)


def run_dry_run(overrides=(), rollouts_per_prompt: int = 4, workdir=None) -> DryRunResult:
    """One simulated step of the recipe on the bundled sample corpus (see the module docstring)."""
    import ray
    import transfer_queue as tq
    from torch.utils.data import DataLoader
    from verl.experimental.reward_loop.reward_loop import RewardLoopManager
    from verl.trainer.ppo.utils import create_rl_dataset
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
    from verl.utils.dataset.rl_dataset import collate_fn

    from onethinker_verl.data.sample import sample_file
    from onethinker_verl.glue.install import install_onethinker_glue
    from onethinker_verl.resolvers import bundled_sample_path
    from onethinker_verl.startup_check import check_config

    workdir = Path(workdir or tempfile.mkdtemp(prefix="onethinker_dry_run_"))
    rows = [json.loads(line) for line in open(sample_file("rl_train.jsonl"), encoding="utf-8")]
    kept_groups = sum(1 for i in range(len(rows)) if PLANS[i % len(PLANS)] == "half right")
    tokenizer = train_tokenizer([json.dumps(rows), THINKING, WRONG_ANSWER])
    tokenizer.save_pretrained(workdir / "model")
    config = compose_recipe(
        f"data.train_files={sample_file('rl_train.jsonl')}",  # the main recipe requires a corpus: the bundled one
        f"data.val_files={sample_file('rl_train.jsonl')}",
        f"data.media_root={bundled_sample_path()}",
        f"actor_rollout_ref.model.path={workdir / 'model'}",
        f"actor_rollout_ref.rollout.n={rollouts_per_prompt}",
        f"data.train_batch_size={kept_groups}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={kept_groups}",
        "reward.num_workers=1",
        f"+data.cache_dir={workdir / 'cache'}",
        # Filter over-long prompts in this process: a worker pool forked after Ray has started its threads
        # (as in a test session that already runs Ray) can deadlock.
        "data.filter_overlong_prompts_workers=null",
        *overrides,
    )
    check_config(config)  # the start-up check main_ppo runs (as a Hydra callback) before Ray
    processor = tiny_qwen_vl_processor(" ".join(json.dumps(rows).replace('"', " ").split()))
    dataset = create_rl_dataset([config.data.train_files], config.data, processor.tokenizer, processor)
    batch = next(iter(DataLoader(dataset, batch_size=len(dataset), collate_fn=collate_fn, shuffle=False)))
    rollouts, texts = rollout_batch(batch, tokenizer, rollouts_per_prompt)

    if not ray.is_initialized():
        # Logical CPUs: TransferQueue's controller and storage units each reserve one.
        ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False)
    tq.init()
    rewards = RewardLoopManager(config).compute_rm_score(rollouts)
    keys = write_trajectories(tq, rollouts, rewards)

    trainer = PPOTrainerSync.__new__(PPOTrainerSync)  # verl's trainer class without its GPU workers
    trainer.config, trainer.trainer_mode, trainer.global_steps = config, "sync", 1

    def no_generation(num_prompts):
        raise RuntimeError(f"the dry run has no policy to generate {num_prompts} more prompts")

    trainer._add_prompts_to_generate = no_generation
    trainer.replay_buffer = trainer._build_replay_buffer()
    install_onethinker_glue(trainer)  # what PPOTrainer.__init__ does with the plugin loaded
    sampled, metrics = trainer.replay_buffer.sample(global_steps=1, partition_id="train", batch_size=kept_groups)
    trainer._compute_advantage(sampled, metrics)
    stored = tq.kv_batch_get(keys=sampled.keys, partition_id="train", select_fields=["advantages"])["advantages"]
    tq.kv_clear(keys=list(sampled.keys), partition_id="train")
    return DryRunResult(
        config=config,
        rollouts=rollouts,
        texts=texts,
        sequence_rewards=rewards.batch["rm_scores"].sum(-1).tolist(),
        trajectory_keys=keys,
        kept_keys=list(sampled.keys),
        advantages=[row[0].item() for row in stored.unbind(0)],  # constant over each response
        metrics=metrics,
        reward_extra_info={key: list(rewards.non_tensor_batch[key]) for key in rewards.meta_info["reward_extra_keys"]},
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides applied after +recipe=onethinker")
    parser.add_argument("--rollouts", type=int, default=4, help="responses per prompt (rollout.n)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = run_dry_run(args.overrides, args.rollouts)
    print(f"{len(result.texts)} rollouts scored by verl's reward loop; kept {len(result.kept_keys)} trajectories")
    for key in sorted(result.metrics):
        value = result.metrics[key]
        if isinstance(value, (int, float)) and key.split("/")[0] in ("reward", "online_filter", "ema_grpo"):
            print(f"  {key:<55} {value:10.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
