"""The smoke and Qwen2.5-VL variants of the recipe and the launch scripts, through verl's own entry point."""

import os
import subprocess
import sys

import yaml
from verl.utils.config import omega_conf_to_dataclass

from conftest import REPO_ROOT, compose_recipe


def test_smoke_recipe_is_the_reference_on_one_small_node():
    reference, smoke = compose_recipe(), compose_recipe(recipe="onethinker_smoke")
    assert (smoke.trainer.nnodes, smoke.trainer.n_gpus_per_node) == (1, 8)
    assert smoke.data.train_batch_size < reference.data.train_batch_size
    assert smoke.data.max_response_length < reference.data.max_response_length
    assert "2B" in smoke.actor_rollout_ref.model.path
    assert smoke.data.train_files.endswith("rl_train.jsonl")  # the bundled sample corpus
    # the algorithm, reward and filter are the reference's
    assert smoke.algorithm.adv_estimator == "ema_grpo" and smoke.reward.reward_manager.name == "onethinker"
    assert smoke.algorithm.online_filter == reference.algorithm.online_filter
    assert omega_conf_to_dataclass(smoke.algorithm).ema_grpo == omega_conf_to_dataclass(reference.algorithm).ema_grpo


def test_qwen25vl_recipe_changes_only_the_policy():
    variant = compose_recipe(recipe="onethinker_qwen25vl_7b")
    assert variant.actor_rollout_ref.model.path == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert variant.algorithm == compose_recipe().algorithm
    assert variant.data.train_batch_size == 128


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
