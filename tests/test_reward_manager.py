"""The ``onethinker`` reward manager, driven through verl 0.9.1's own reward-loop code.

Responses are token ids of a byte-level BPE tokenizer trained here on the canned texts, so decoding is
exact and goes through the same ``PreTrainedTokenizerFast.decode`` call verl's managers make. Expected
scores are worked out by hand from the rewards spec (or, for ROUGE, with ``rouge_score`` directly).
"""

import asyncio
import json
import math
import time

import numpy as np
import pytest
import torch
from tensordict import TensorDict

import verl  # noqa: F401  (loads the onethinker plugin, as every verl process does)
from verl import DataProto

from conftest import compose_recipe, train_tokenizer

MANAGER_TARGET = "onethinker_verl.reward.manager.OneThinkerRewardManagerConfig"
PROMPT_LENGTH = 16
RESPONSE_LENGTH = 96

THINK = "<think>Look at the frames and compare the options.</think>"
TRACK_GT = json.dumps({"boxes": {"0": [0, 0, 10, 10], "1": [5, 0, 15, 10]}})
TRACK_ANSWER = json.dumps({"boxes": {"0": [0, 0, 10, 10], "1": [0, 0, 10, 10]}})
OPEN_GT = "A red car drives past a small shop"
OPEN_ANSWER = "A red car passes a shop"

# (response, ground truth, problem type, expected overall, expected accuracy, format, structure)
# overall = 0.9 * accuracy + 0.1 * format + structure, structure 0 without format (format_weight 0.1)
CASES = {
    "mc_correct": (f"{THINK}<answer>B</answer>", "B", "multiple choice", 1.5, 1.0, 1.0, 0.5),
    "mc_wrong": (f"{THINK}<answer>C</answer>", "B", "multiple choice", 0.6, 0.0, 1.0, 0.5),
    # no tags: format 0, so structure 0; the whole response is the answer
    "mc_unformatted": ("B", "B", "multiple choice", 0.9, 1.0, 0.0, 0.0),
    # 3.14159 and 3.14 agree to 2 decimals
    "numerical": (f"{THINK}\n<answer>3.14159</answer>", "<answer>3.14</answer>", "numerical", 1.5, 1.0, 1.0, 0.5),
    # spaced tags are normalised; tIoU of [2, 6] and [4, 8]: 2 / 6
    "temporal": (
        f"< think >ok</ think > <answer>{json.dumps({'time': [2.0, 6.0]})}</answer>",
        json.dumps({"time": [4.0, 8.0]}),
        "temporal grounding",
        0.9 / 3 + 0.6,
        1 / 3,
        1.0,
        0.5,
    ),
    # frame 0 IoU 1, frame 1 IoU 50 / 150; structure 0.25 (shape) + 0.25 * 2/2 (frames)
    "tracking": (f"{THINK}<answer>{TRACK_ANSWER}</answer>", TRACK_GT, "tracking", 0.9 * 2 / 3 + 0.6, 2 / 3, 1.0, 0.5),
}


def rouge_accuracy(reference: str, prediction: str) -> float:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    scores = scorer.score(reference, prediction)
    return min(1.0, max(0.0, sum(scores[key].fmeasure for key in ("rouge1", "rouge2", "rougeL")) / 3))


def canned_texts():
    texts = [text for case in CASES.values() for text in case[:2]]
    return texts + [OPEN_GT, OPEN_ANSWER, "What happens in the video?"]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(canned_texts())


@pytest.fixture(scope="module")
def tokenizer_dir(tokenizer, tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_tokenizer")
    tokenizer.save_pretrained(path)
    return path


def make_item(
    tokenizer,
    response: str,
    ground_truth: str,
    problem_type: str,
    data_type: str = "image",
    uid: str = "group-0",
    data_source: str = "unit",
    question: str = "What happens in the video?",
) -> DataProto:
    """One rollout laid out as verl's reward loop receives it: left-padded prompt, right-padded response
    ending in EOS, attention mask over both."""
    prompt_ids = tokenizer.encode(question)[-PROMPT_LENGTH:]
    response_ids = tokenizer.encode(response) + [tokenizer.eos_token_id]
    assert len(response_ids) <= RESPONSE_LENGTH, "test response too long for the fixed layout"
    prompt_pad = PROMPT_LENGTH - len(prompt_ids)
    response_pad = RESPONSE_LENGTH - len(response_ids)
    prompts = torch.tensor([[tokenizer.pad_token_id] * prompt_pad + prompt_ids])
    responses = torch.tensor([response_ids + [tokenizer.pad_token_id] * response_pad])
    attention_mask = torch.tensor(
        [[0] * prompt_pad + [1] * (len(prompt_ids) + len(response_ids)) + [0] * response_pad]
    )
    non_tensor = {
        "data_source": data_source,
        "reward_model": {"ground_truth": ground_truth, "style": "rule"},
        "extra_info": {"problem_type": problem_type, "data_type": data_type},
        "uid": uid,
        "raw_prompt": [{"role": "user", "content": question}],
    }
    non_tensor_batch = {}
    for key, value in non_tensor.items():
        column = np.empty(1, dtype=object)
        column[0] = value
        non_tensor_batch[key] = column
    batch = TensorDict({"prompts": prompts, "responses": responses, "attention_mask": attention_mask}, batch_size=1)
    return DataProto(batch=batch, non_tensor_batch=non_tensor_batch)


def manager_overrides(*extra: str, tokenizer_path=None) -> list[str]:
    """Overrides that select the manager the way the recipe does, plus ``extra`` (``++`` so they work
    whether or not the recipe already lists the key)."""
    overrides = ["reward.reward_manager.name=onethinker", f"++reward.reward_manager._target_={MANAGER_TARGET}"]
    if tokenizer_path is not None:
        overrides.append(f"actor_rollout_ref.model.path={tokenizer_path}")
    return overrides + list(extra)


def load_manager(tokenizer, *overrides: str, reward_router_address=None):
    """The manager built by verl's own factory, with the arguments ``RewardLoopWorker`` passes."""
    from verl.trainer.ppo.reward import load_reward_manager

    config = compose_recipe(*manager_overrides(*overrides))
    return load_reward_manager(
        config, tokenizer, reward_router_address=reward_router_address, reward_model_tokenizer=None
    )


def score(manager, item: DataProto) -> dict:
    return asyncio.run(manager.run_single(item))


def test_registered_after_plain_import_verl():
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
    from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

    manager_cls = get_reward_manager_cls("onethinker")
    assert issubclass(manager_cls, RewardManagerBase)
    assert manager_cls.__module__ == "onethinker_verl.reward.manager"


@pytest.mark.parametrize("case", sorted(CASES))
def test_scores_match_hand_computed_values(tokenizer, case):
    response, ground_truth, problem_type, overall, accuracy, format_score, structure = CASES[case]
    manager = load_manager(tokenizer)
    result = score(manager, make_item(tokenizer, response, ground_truth, problem_type))
    info = result["reward_extra_info"]
    assert result["reward_score"] == pytest.approx(overall)
    assert info["score"] == pytest.approx(overall)
    assert info["accuracy"] == pytest.approx(accuracy)
    assert info["format"] == format_score
    assert info["structure"] == pytest.approx(structure)


def test_open_ended_uses_rouge_by_default(tokenizer):
    manager = load_manager(tokenizer)
    response = f"{THINK}<answer>{OPEN_ANSWER}</answer>"
    info = score(manager, make_item(tokenizer, response, OPEN_GT, "open-ended"))["reward_extra_info"]
    accuracy = rouge_accuracy(OPEN_GT, OPEN_ANSWER)
    assert 0.0 < accuracy < 1.0
    assert info["accuracy"] == pytest.approx(accuracy)
    assert info["score"] == pytest.approx(0.9 * accuracy + 0.6)
    assert "model_score" not in info  # model scoring is off by default


def test_padding_and_eos_do_not_reach_the_scorer(tokenizer):
    """The valid response length comes from the attention mask; EOS is a special token and is skipped.
    An unformatted 'B' stays a correct answer only if nothing is appended to it."""
    manager = load_manager(tokenizer)
    item = make_item(tokenizer, "B", "B", "multiple choice")
    valid = int(item.batch["attention_mask"][0, PROMPT_LENGTH:].sum())
    assert valid < RESPONSE_LENGTH  # the layout really has padding
    item.batch["responses"][0, valid:] = tokenizer.encode("C")[0]  # garbage beyond the mask must be ignored
    assert score(manager, item)["reward_score"] == pytest.approx(0.9)


def test_extra_info_has_task_and_per_task_copies(tokenizer):
    from onethinker_verl.data.tasks import TASK_NAMES

    manager = load_manager(tokenizer)
    response, ground_truth, problem_type, overall, accuracy, *_ = CASES["tracking"]
    info = score(manager, make_item(tokenizer, response, ground_truth, problem_type))["reward_extra_info"]
    assert info["task"] == "tracking"
    assert info["accuracy/tracking"] == pytest.approx(accuracy)
    assert info["score/tracking"] == pytest.approx(overall)
    assert info["format/tracking"] == 1.0
    assert info["accuracy/multiple_choice"] is None
    assert info["score/spatial_temporal_grounding"] is None
    assert len(TASK_NAMES) == 11
    parts = ("score", "accuracy", "format", "structure")
    assert all(f"{part}/{task}" in info for task in TASK_NAMES for part in parts)


def test_problem_type_is_case_insensitive_in_task_name(tokenizer):
    manager = load_manager(tokenizer)
    info = score(manager, make_item(tokenizer, f"{THINK}<answer>hello world</answer>", "hello world", "OCR"))[
        "reward_extra_info"
    ]
    assert info["task"] == "ocr"
    assert info["accuracy/ocr"] == 1.0


def test_hydra_config_converts_with_verl_and_cli_override_changes_scores(tokenizer):
    """The composed ``reward.reward_manager`` node instantiates through verl's ``omega_conf_to_dataclass``
    (Hydra ``_target_``), and a command-line value of a knob reaches the scores."""
    from verl.utils.config import omega_conf_to_dataclass

    from onethinker_verl.reward.manager import OneThinkerRewardManagerConfig
    from onethinker_verl.reward.model_scoring import ModelScoringConfig

    overrides = [
        "++reward.reward_manager.format_weight=0.5",
        "++reward.reward_manager.point_sigma=25.0",
        "++reward.reward_manager.model_scoring._target_=onethinker_verl.reward.model_scoring.ModelScoringConfig",
        "++reward.reward_manager.model_scoring.batch_size=8",
    ]
    config = compose_recipe(*manager_overrides(*overrides))
    converted = omega_conf_to_dataclass(config.reward.reward_manager)
    assert isinstance(converted, OneThinkerRewardManagerConfig)
    assert converted.name == "onethinker"
    assert converted.format_weight == 0.5 and converted.point_sigma == 25.0
    assert isinstance(converted.model_scoring, ModelScoringConfig)
    assert converted.model_scoring.batch_size == 8 and converted.model_scoring.enable is False

    # correct answer without the required format: overall = 1 - w
    unformatted = make_item(tokenizer, "B", "B", "multiple choice")
    assert score(load_manager(tokenizer), unformatted)["reward_score"] == pytest.approx(0.9)
    assert score(load_manager(tokenizer, "++reward.reward_manager.format_weight=0.5"), unformatted)[
        "reward_score"
    ] == pytest.approx(0.5)


def test_manager_knobs_mirror_the_scoring_config():
    """Every knob of the scoring core can be set from the manager config, with the same default."""
    import dataclasses

    from onethinker_verl.reward.config import RewardConfig
    from onethinker_verl.reward.manager import OneThinkerRewardManagerConfig

    manager_defaults = OneThinkerRewardManagerConfig(name="onethinker").scoring_kwargs()
    assert manager_defaults == dataclasses.asdict(RewardConfig())


def test_unknown_manager_key_is_rejected(tokenizer):
    with pytest.raises(Exception, match="no_such_knob"):
        load_manager(tokenizer, "++reward.reward_manager.no_such_knob=1")


def test_model_scoring_without_reward_model_server_fails_loudly(tokenizer):
    with pytest.raises(ValueError, match="reward.reward_model.enable"):
        load_manager(tokenizer, "++reward.reward_manager.model_scoring.enable=true")


def test_scoring_runs_off_the_event_loop(tokenizer, monkeypatch):
    """A slow scoring call must not block other coroutines on verl's event loop."""
    import onethinker_verl.reward.manager as manager_module

    real_compute_score = manager_module.onethinker_compute_score

    def slow_compute_score(**kwargs):
        time.sleep(0.3)
        return real_compute_score(**kwargs)

    monkeypatch.setattr(manager_module, "onethinker_compute_score", slow_compute_score)
    manager = load_manager(tokenizer)
    item = make_item(tokenizer, *CASES["mc_correct"][:3])

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.create_task(ticker())
        result = await manager.run_single(item)
        ticking.cancel()
        return result, ticks

    result, ticks = asyncio.run(main())
    assert result["reward_score"] == pytest.approx(1.5)
    assert ticks >= 10  # the loop kept running during the 0.3 s of scoring


def mixed_batch(tokenizer) -> tuple[DataProto, list[float]]:
    """Two tracking rollouts (one prompt group) among other tasks, with their hand-computed accuracies."""
    far_box = [50, 50, 60, 60]
    tracking_wrong = f"{THINK}<answer>{json.dumps({'boxes': {'0': far_box, '1': far_box}})}</answer>"
    items = [
        make_item(tokenizer, *CASES["mc_correct"][:3], uid="mc", data_source="mixed"),
        make_item(tokenizer, *CASES["tracking"][:3], uid="track", data_source="mixed"),
        make_item(tokenizer, tracking_wrong, TRACK_GT, "tracking", uid="track", data_source="mixed"),
        make_item(tokenizer, *CASES["mc_wrong"][:3], uid="mc", data_source="mixed"),
    ]
    # tracking: 2/3, and 0 for boxes that overlap no ground-truth box (shape and frames still complete)
    return DataProto.concat(items), [1.0, 2 / 3, 0.0, 0.0]


def test_reward_loop_worker_scores_a_batch_and_verl_metrics_are_per_task(tokenizer, tokenizer_dir):
    """verl's ``RewardLoopWorker`` (built exactly as ``RewardLoopManager`` builds its Ray actors, minus Ray)
    loads the manager from the config and scores a batch; the columns it yields give per-task validation
    metrics through verl's ``process_validation_metrics`` and per-task step metrics through
    ``per_task_reward_metrics`` that average over that task's items only."""
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
    from verl.trainer.ppo.metric_utils import process_validation_metrics

    from onethinker_verl.reward.manager import OneThinkerRewardManager
    from onethinker_verl.reward.metrics import per_task_reward_metrics

    config = compose_recipe(*manager_overrides(tokenizer_path=tokenizer_dir))
    worker = RewardLoopWorker(config, reward_router_address=None)
    assert isinstance(worker.reward_manager, OneThinkerRewardManager)
    data, accuracies = mixed_batch(tokenizer)
    outputs = asyncio.run(worker.compute_score_batch(data))

    # the same column building as RewardLoopManager.compute_rm_score: keys of item 0, looked up in all
    infos = [output["reward_extra_info"] for output in outputs]
    columns = {key: np.array([info[key] for info in infos]) for key in infos[0]}
    assert [info["accuracy"] for info in infos] == pytest.approx(accuracies)

    validation = process_validation_metrics(
        list(data.non_tensor_batch["data_source"]), list(data.non_tensor_batch["uid"]), columns
    )["mixed"]
    assert validation["accuracy/tracking"]["mean@2"] == pytest.approx((2 / 3 + 0.0) / 2)
    assert validation["accuracy/multiple_choice"]["mean@2"] == pytest.approx(0.5)
    assert validation["accuracy"]["mean@2"] == pytest.approx(np.mean(accuracies))

    step_metrics = per_task_reward_metrics(columns)
    assert step_metrics["reward/accuracy/tracking"] == pytest.approx(1 / 3)
    assert step_metrics["reward/accuracy/multiple_choice"] == pytest.approx(0.5)
    assert step_metrics["reward/format/tracking"] == 1.0
    assert step_metrics["reward/count/tracking"] == 2.0
    assert step_metrics["reward/score/multiple_choice"] == pytest.approx((1.5 + 0.6) / 2)


def test_per_task_reward_metrics_ignores_none_and_nan():
    from onethinker_verl.reward.metrics import per_task_reward_metrics

    columns = {
        "task": np.array(["math", "math", "ocr"]),
        "accuracy": np.array([1.0, math.nan, 0.25], dtype=object),
        "format": [None, 1.0, 0.0],
    }
    metrics = per_task_reward_metrics(columns)
    assert metrics == {
        "reward/count/math": 2.0,
        "reward/count/ocr": 1.0,
        "reward/accuracy/math": 1.0,
        "reward/accuracy/ocr": 0.25,
        "reward/format/math": 1.0,
        "reward/format/ocr": 0.0,
    }
    assert per_task_reward_metrics({"acc": [1.0]}) == {}


def test_reward_loop_manager_with_ray_actor(tokenizer, tokenizer_dir, ray_transfer_queue):
    """verl's ``RewardLoopManager`` starts a ``RewardLoopWorker`` Ray actor (a fresh process that loads the
    plugin through ``import verl``) and assembles ``rm_scores`` and the extra-info columns."""
    from verl.experimental.reward_loop.reward_loop import RewardLoopManager

    config = compose_recipe(*manager_overrides("reward.num_workers=1", tokenizer_path=tokenizer_dir))
    data, accuracies = mixed_batch(tokenizer)
    output = RewardLoopManager(config).compute_rm_score(data)
    sequence_rewards = output.batch["rm_scores"].sum(-1).tolist()
    # overall = 0.9 * accuracy + 0.1 * format + structure; all four items are well formatted
    assert sequence_rewards == pytest.approx([0.9 * accuracy + 0.6 for accuracy in accuracies])
    last_valid = data.batch["attention_mask"][:, PROMPT_LENGTH:].sum(-1) - 1
    assert output.batch["rm_scores"][torch.arange(4), last_valid].tolist() == pytest.approx(sequence_rewards)
    assert list(output.non_tensor_batch["task"]) == ["multiple_choice", "tracking", "tracking", "multiple_choice"]
    assert "accuracy/tracking" in output.meta_info["reward_extra_keys"]
