"""The smoke and Qwen2.5-VL variants of the recipe and the launch scripts, through verl's own entry point."""

import os
import subprocess
import sys

import pytest
import yaml
from omegaconf import OmegaConf

from conftest import REPO_ROOT, compose_recipe, config_leaves
from onethinker_verl.startup_check import check_config


def _differences(recipe):
    reference = config_leaves(OmegaConf.to_container(compose_recipe(), resolve=False))
    variant = config_leaves(OmegaConf.to_container(compose_recipe(recipe=recipe), resolve=False))
    assert variant.keys() == reference.keys()
    return {key for key in reference if variant[key] != reference[key]}


# What each variant is for, and so the only keys it may change (checked against the composed reference).
SMOKE_PURPOSE = {
    # data: the bundled sample corpus instead of a required one
    "data.train_files", "data.val_files", "data.media_root",
    # scale: one node, a 2B model, batches and lengths that fit 22 tiny rows, a few steps
    "actor_rollout_ref.model.path", "data.train_batch_size", "data.max_prompt_length", "data.max_response_length",
    "actor_rollout_ref.actor.ppo_mini_batch_size", "actor_rollout_ref.rollout.n",
    "actor_rollout_ref.rollout.tensor_model_parallel_size", "actor_rollout_ref.rollout.max_model_len",
    "algorithm.filter_groups.max_num_gen_batches", "trainer.experiment_name", "trainer.nnodes",
    "trainer.total_epochs", "trainer.total_training_steps", "trainer.test_freq", "trainer.save_freq",
}


def test_smoke_recipe_is_the_reference_on_one_small_node():
    changed = _differences("onethinker_smoke")
    assert changed <= SMOKE_PURPOSE, sorted(changed - SMOKE_PURPOSE)
    smoke = compose_recipe(recipe="onethinker_smoke")
    assert (smoke.trainer.nnodes, smoke.trainer.n_gpus_per_node) == (1, 8)
    assert "2B" in smoke.actor_rollout_ref.model.path
    assert smoke.data.train_files.endswith("rl_train.jsonl")  # the bundled sample corpus
    # a corpus of 22 rows gives at least the requested steps, and each batch is whole mini-batches
    assert 22 // smoke.data.train_batch_size * smoke.trainer.total_epochs >= smoke.trainer.total_training_steps
    assert smoke.data.train_batch_size % smoke.actor_rollout_ref.actor.ppo_mini_batch_size == 0
    # vLLM's context is still prompt + response, as in the reference
    assert smoke.actor_rollout_ref.rollout.max_model_len == smoke.data.max_prompt_length + smoke.data.max_response_length
    check_config(smoke)  # workable: the start-up check lets it through


def test_qwen25vl_recipe_changes_only_the_policy():
    assert _differences("onethinker_qwen25vl_7b") == {"actor_rollout_ref.model.path", "trainer.experiment_name"}
    assert compose_recipe(recipe="onethinker_qwen25vl_7b").actor_rollout_ref.model.path == "Qwen/Qwen2.5-VL-7B-Instruct"


def test_single_node_launcher_prints_and_runs_the_training_command(tmp_path):
    env = dict(os.environ, RECIPE="onethinker_smoke", MODEL_PATH="/models/my-sft", N_GPUS="4", OUTPUT_DIR=str(tmp_path))
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "recipes" / "launch_single_node.sh"), "actor_rollout_ref.rollout.n=2", "--cfg", "job"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    first_line, printed = done.stdout.split("\n", 1)
    assert first_line.startswith("Running: python -m verl.trainer.main_ppo +recipe=onethinker_smoke")
    config = yaml.safe_load(printed)
    assert config["actor_rollout_ref"]["model"]["path"] == "/models/my-sft"
    assert config["actor_rollout_ref"]["rollout"]["n"] == 2
    assert config["trainer"]["n_gpus_per_node"] == 4
    assert config["trainer"]["default_local_dir"] == str(tmp_path)


# What the CPU variant is for, and so the only keys it may change or add (checked leaf by leaf).
CPU_PURPOSE = {
    # data: the bundled sample corpus, tiny batches, lengths and videos
    "data.train_files", "data.val_files", "data.media_root", "data.train_batch_size", "data.max_prompt_length",
    "data.max_response_length", "data.video_max_frames",
    # processes sized for a 2-core machine: one agent-loop and one reward-loop worker, no dataloader workers
    "data.dataloader_num_workers", "actor_rollout_ref.rollout.agent.num_workers", "reward.num_workers",
    # the model: a required local folder; what the CPU cannot run (flash attention, padding-free packing)
    "actor_rollout_ref.model.path", "actor_rollout_ref.model.use_remove_padding",
    "actor_rollout_ref.model.enable_gradient_checkpointing", "actor_rollout_ref.model.override_config.attn_implementation",
    # the actor: FSDP2 (FSDP1 fails on the CPU), fp32 compute, no torch.compile, one mini-batch a step
    "actor_rollout_ref.actor.strategy", "actor_rollout_ref.actor.ppo_mini_batch_size",
    "actor_rollout_ref.actor.use_torch_compile", "actor_rollout_ref.actor.fsdp_config.mixed_precision",
    "actor_rollout_ref.actor.fsdp_config.mixed_precision.param_dtype",
    "actor_rollout_ref.actor.fsdp_config.mixed_precision.reduce_dtype",
    "actor_rollout_ref.actor.fsdp_config.mixed_precision.buffer_dtype",
    # the rollout: the hf backend, unsharded, fp32, its log-probs kept
    "actor_rollout_ref.rollout.name", "actor_rollout_ref.rollout.n", "actor_rollout_ref.rollout.tensor_model_parallel_size",
    "actor_rollout_ref.rollout.dtype", "actor_rollout_ref.rollout.max_model_len",
    "actor_rollout_ref.rollout.calculate_log_probs",
    # TransferQueue sized for a 2-core machine
    "transfer_queue.backend.SimpleStorage.num_data_storage_units", "transfer_queue.backend.SimpleStorage.total_storage_size",
    # CPU mode and its Ray resources; a short checked run
    "trainer.device", "trainer.nnodes", "trainer.n_gpus_per_node", "trainer.experiment_name", "trainer.logger",
    "trainer.total_training_steps", "trainer.save_freq", "ray_kwargs.ray_init.num_cpus", "ray_kwargs.ray_init.num_gpus",
}


def test_cpu_recipe_is_the_reference_with_only_cpu_and_scale_changes():
    reference = config_leaves(OmegaConf.to_container(compose_recipe(), resolve=False))
    cpu = config_leaves(OmegaConf.to_container(compose_recipe(recipe="onethinker_cpu"), resolve=False))
    changed = {key for key in reference.keys() | cpu.keys() if reference.get(key, "<absent>") != cpu.get(key, "<absent>")}
    assert changed <= CPU_PURPOSE, sorted(changed - CPU_PURPOSE)
    # the algorithm, reward, optimizer and filter are the reference's, leaf by leaf (only the number of
    # reward-loop processes differs)
    for prefix in ("algorithm.", "reward.", "actor_rollout_ref.actor.optim.", "actor_rollout_ref.actor.clip_ratio"):
        assert not {key for key in changed if key.startswith(prefix)} - {"reward.num_workers"}, prefix
    config = compose_recipe("actor_rollout_ref.model.path=/models/tiny", recipe="onethinker_cpu")
    assert config.data.train_files.endswith("rl_train.jsonl")  # the bundled sample corpus
    assert config.actor_rollout_ref.rollout.max_model_len == config.data.max_prompt_length + config.data.max_response_length
    assert config.ray_kwargs.ray_init.num_gpus == config.trainer.nnodes * config.trainer.n_gpus_per_node
    assert config.data.train_batch_size % config.actor_rollout_ref.actor.ppo_mini_batch_size == 0
    check_config(config)  # the start-up check lets it through

    from onethinker_verl.cpu.mode import cpu_mode_problems
    from onethinker_verl.rollout.checks import hf_rollout_problems

    assert cpu_mode_problems(config) == [] and hf_rollout_problems(config.actor_rollout_ref.rollout) == []


def test_cpu_recipe_requires_a_model_folder():
    from omegaconf.errors import InterpolationResolutionError

    config = compose_recipe(recipe="onethinker_cpu")
    with pytest.raises(InterpolationResolutionError, match="actor_rollout_ref.model.path"):
        _ = config.actor_rollout_ref.model.path
