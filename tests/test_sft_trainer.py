"""recipes/onethinker_sft.yaml through verl's own SFT trainer (``verl.trainer.sft_trainer``, FSDP2 over two
ranks started by torchrun, on a CPU platform registered in verl's platform registry,
:mod:`onethinker_verl.sft.cpu_run`), one step
each for tiny random Qwen3-VL and Qwen2.5-VL on the sample's image and video rows; then the SFT checkpoint
handed to the RL recipe.

One torchrun launch runs all trainer runs (verl is imported once per rank): Qwen3-VL, Qwen2.5-VL, then Qwen3-VL
with ``engine.strategy=fsdp``, which must be refused.
"""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import compose_recipe
from onethinker_verl.sft.cpu_run import CPU_MODEL_OVERRIDES
from onethinker_verl.data.sample import sample_dir, sample_file
from test_sft_dataset import prepare

FAMILIES = ("qwen3_vl", "qwen2_5_vl")
RANKS = 2  # FSDP2 shards every tensor, frozen and trained, over both ranks
# What the reference freezes (LLaMA-Factory freeze_vision_tower + freeze_multi_modal_projector), by name in the
# saved checkpoint (Qwen3-VL saves "model.visual.*", Qwen2.5-VL its original layout "visual.*").
FROZEN = re.compile(r"(^|\.)visual\.(patch_embed|blocks|merger)\.")
VISUAL = re.compile(r"(^|\.)visual\.")


@pytest.fixture(scope="module")
def sft_runs(tmp_path_factory, tiny_vl_checkpoint):
    work = tmp_path_factory.mktemp("sft_runs")
    parquet = prepare(work / "data", sample_file("sft_image.json"), sample_file("sft_video.json"))
    common = [
        "+recipe=onethinker_sft",
        f"data.train_files={parquet}",
        f"data.media_root={sample_dir()}",
        "data.train_batch_size=4",  # the sample's 2 image + 2 video rows in one step (micro-batches of 1)
        "data.num_workers=0",
        "trainer.total_training_steps=1",
        "trainer.logger=[console]",
        *CPU_MODEL_OVERRIDES,
    ]
    arguments = []
    for family in FAMILIES:
        arguments += [*common, f"model.path={tiny_vl_checkpoint(family)}", f"trainer.default_local_dir={work / family}", "---"]
    arguments += [*common, f"model.path={tiny_vl_checkpoint('qwen3_vl')}", "engine.strategy=fsdp",
                  f"trainer.default_local_dir={work / 'fsdp1'}"]
    # from a folder outside the repository: the recipe is found through the Hydra search-path plugin
    launch = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={RANKS}",
         "-m", "onethinker_verl.sft.cpu_run", *arguments],
        cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        output, _ = launch.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(launch.pid, signal.SIGKILL)  # torchrun and both ranks
        output, _ = launch.communicate()
        pytest.fail(f"the SFT runs did not finish in 600 s:\n{output[-3000:]}")
    return work, launch.returncode, output


def step_dir(work: Path, family: str) -> Path:
    return work / family / "global_step_1"


@pytest.mark.parametrize("family", FAMILIES)
def test_one_step_trains_the_language_model_and_leaves_the_frozen_vision_bit_identical(
    sft_runs, tiny_vl_checkpoint, family
):
    work, _, output = sft_runs
    assert step_dir(work, family).is_dir(), output[-3000:]
    before = load_file(tiny_vl_checkpoint(family) / "model.safetensors")
    after = load_file(step_dir(work, family) / "huggingface" / "model.safetensors")
    assert before.keys() == after.keys()
    frozen = {name for name in before if FROZEN.search(name)}
    assert frozen and all(torch.equal(before[name], after[name]) for name in frozen)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    language_model = {name for name in before if not VISUAL.search(name)}
    assert language_model <= changed
    if family == "qwen3_vl":
        # the reference's freeze lists leave the position embedding and the deepstack mergers trainable
        kept_trainable = {n for n in before if "visual.pos_embed." in n or "deepstack_merger_list" in n}
        assert len(kept_trainable) == 7 and kept_trainable <= changed
    assert changed == set(before) - frozen

    # start-up report, and an optimizer that holds the trainable tensors only (no state for frozen ones)
    frozen_count = sum(before[name].numel() for name in frozen)
    trainable_count = sum(before[name].numel() for name in set(before) - frozen)
    report = re.search(rf"SFT freezing \({family}\).* (\d+) parameters in (\d+) tensors frozen, (\d+) parameters", output)
    assert report and (int(report[1]), int(report[2]), int(report[3])) == (frozen_count, len(frozen), trainable_count)
    assert len(re.findall(rf"SFT freezing \({family}\)", output)) == 1  # rank 0 reports, once
    state_elements = 0
    for rank in range(RANKS):
        optimizer = torch.load(step_dir(work, family) / f"optim_world_size_{RANKS}_rank_{rank}.pt", weights_only=False)
        assert len(optimizer["param_groups"][0]["params"]) == len(before) - len(frozen)
        state_elements += sum(state["exp_avg"].to_local().numel() for state in optimizer["state"].values())
    assert state_elements == trainable_count  # each rank holds its shard of the trainable tensors' state only

    loss = re.findall(r"train/loss:([0-9.]+)", output)
    assert loss and all(np.isfinite(float(value)) for value in loss)


def test_fsdp1_is_refused_with_a_clear_message(sft_runs):
    work, returncode, output = sft_runs
    assert returncode != 0
    assert "need engine.strategy=fsdp2, got engine.strategy=fsdp" in output
    assert not (work / "fsdp1" / "global_step_1").exists()


def test_sft_checkpoint_is_the_rl_recipes_model(sft_runs, tmp_path):
    """The HF checkpoint of the Qwen3-VL run as actor_rollout_ref.model.path of the RL recipe: verl's
    create_rl_dataset builds OneThinkerDataset with its tokenizer and processor, a video prompt renders with
    the model's rotary positions, and the onethinker reward manager scores an answer tokenised by it."""
    from transformers import AutoModelForImageTextToText
    from verl.trainer.ppo.reward import load_reward_manager
    from verl.trainer.ppo.utils import create_rl_dataset
    from verl.utils import hf_processor, hf_tokenizer
    from verl.utils.tokenizer.tokenizer import build_multimodal_processor_inputs

    from onethinker_verl.data.dataset import OneThinkerDataset
    from test_reward_manager import make_item, score

    work, _, output = sft_runs
    checkpoint = step_dir(work, "qwen3_vl") / "huggingface"
    assert checkpoint.is_dir(), output[-3000:]
    config = compose_recipe(
        f"actor_rollout_ref.model.path={checkpoint}",
        f"data.train_files={sample_file('rl_train.jsonl')}",
        f"data.media_root={sample_dir()}",
        f"+data.cache_dir={tmp_path / 'cache'}",
    )
    model_path = config.actor_rollout_ref.model.path
    assert AutoModelForImageTextToText.from_pretrained(model_path).config.model_type == "qwen3_vl"
    tokenizer, processor = hf_tokenizer(model_path), hf_processor(model_path)
    dataset = create_rl_dataset([config.data.train_files], config.data, tokenizer, processor)
    assert isinstance(dataset, OneThinkerDataset)

    row = next(dataset[i] for i in range(len(dataset)) if (dataset[i]["extra_info"] or {}).get("data_type") == "video")
    images, videos, _ = asyncio.run(
        OneThinkerDataset.process_multi_modal_info(
            row["raw_prompt"], image_patch_size=processor.image_processor.patch_size, config=config.data
        )
    )
    text = processor.apply_chat_template(row["raw_prompt"], add_generation_prompt=True, tokenize=False)
    inputs = build_multimodal_processor_inputs(processor, text=[text], images=images, videos=videos)
    assert int((inputs["input_ids"] == processor.video_token_id).sum()) > 0
    positions, _ = processor.get_rope_index(
        input_ids=inputs["input_ids"], mm_token_type_ids=inputs["mm_token_type_ids"],
        video_grid_thw=inputs["video_grid_thw"], attention_mask=inputs["attention_mask"],
    )
    assert positions.shape == (3, 1, inputs["input_ids"].shape[1])

    manager = load_reward_manager(config, tokenizer, reward_router_address=None, reward_model_tokenizer=None)
    ground_truth = row["reward_model"]["ground_truth"]
    answer = ground_truth.split("<answer>")[-1].split("</answer>")[0]
    item = make_item(tokenizer, f"<think>Following the square.</think><answer>{answer}</answer>", ground_truth,
                     row["extra_info"]["problem_type"], data_type="video")
    result = score(manager, item)
    assert result["reward_extra_info"]["accuracy"] == 1.0, json.dumps(result, default=str)
