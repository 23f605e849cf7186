"""Mistakes a newcomer makes with the entry points, each answered by one line naming the key (exit status 1, no
traceback): a model path that is no Qwen-VL model, the SFT recipe without data or with missing media (before
torchrun starts any worker, through the launch script), and each recipe given to the other trainer.

The verl launches import verl (seconds of CPU each); they start together when the first test needs them.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from onethinker_verl.model_folder import ModelFolderError, check_model_folder
from onethinker_verl.startup_check import PREFIX

REPO = Path(__file__).resolve().parents[1]
LAUNCH_TIMEOUT_S = 300
ENV = dict(os.environ, PYTHONUNBUFFERED="1", HYDRA_FULL_ERROR="0", PYTHONPATH=str(REPO))


def _model_folder(folder: Path, model_type: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    return folder


def _sft_parquet(path: Path, image: str) -> Path:
    messages = [{"role": "user", "content": "<image>What colour?"}, {"role": "assistant", "content": "blue"}]
    pq.write_table(pa.table({"messages": [messages], "images": [[{"image": image}]]}), path)
    return path


@pytest.fixture(scope="module")
def launches(tmp_path_factory):
    """Each launch, started together in its own empty working directory: argv, extra environment and the
    keys of the refusal lines it must print (in any order)."""
    base = tmp_path_factory.mktemp("entry_errors")
    Image.new("RGB", (16, 16), (0, 0, 255)).save(base / "blue.png")
    missing_media = _sft_parquet(base / "missing_media.parquet", str(base / "gone.png"))
    good = _sft_parquet(base / "good.parquet", str(base / "blue.png"))
    not_a_model = base / "tokenizer_only"
    not_a_model.mkdir()
    (not_a_model / "tokenizer_config.json").write_text("{}")
    llama = _model_folder(base / "llama", "llama")
    python, sft, ppo = sys.executable, ["-m", "verl.trainer.sft_trainer"], ["-m", "verl.trainer.main_ppo"]
    specs = {
        "sft_without_data": ([python, *sft, "+recipe=onethinker_sft"], {}, ["data.train_files=(not set)"]),
        "sft_missing_media_and_model": (
            [python, *sft, "+recipe=onethinker_sft", f"data.train_files={missing_media}", f"model.path={base}/nope"],
            {}, ["data.media_root=", f"model.path={base}/nope: no such folder"]),
        "sft_trainer_given_rl_recipe": ([python, *sft, "+recipe=onethinker"], {}, ["recipe=onethinker: "]),
        "main_ppo_given_sft_recipe": ([python, *ppo, "+recipe=onethinker_sft"], {}, ["recipe=onethinker_sft: "]),
        "main_ppo_model_not_a_model": (
            # a Ray cluster address keeps the machine's GPU count (checked elsewhere) out of this case
            [python, *ppo, "+recipe=onethinker_smoke", f"actor_rollout_ref.model.path={not_a_model}",
             "+ray_kwargs.ray_init.address=127.0.0.1:1"],
            {}, [f"actor_rollout_ref.model.path={not_a_model}: this folder has no config.json"]),
        # the launch script checks before torchrun starts any worker
        "sft_launch_script_missing_media": (
            ["bash", str(REPO / "recipes" / "launch_sft_single_node.sh")],
            {"TRAIN_FILES": str(missing_media), "N_GPUS": "1"}, ["data.media_root="]),
        "sft_check_llama_model": (
            [python, "-m", "onethinker_verl.sft.startup_check", "+recipe=onethinker_sft",
             f"data.train_files={good}", f"model.path={llama}"],
            {}, [f"model.path={llama}: config.json says model_type='llama', not a Qwen-VL model"]),
    }
    running = {}
    for name, (argv, extra_env, expected) in specs.items():
        cwd = base / name
        cwd.mkdir()
        with open(cwd / "stdout.txt", "w") as stdout, open(cwd / "stderr.txt", "w") as stderr:
            process = subprocess.Popen(argv, cwd=cwd, env={**ENV, **extra_env}, stdout=stdout, stderr=stderr)
        running[name] = (process, cwd, expected)
    done = {}
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    for name, (process, cwd, expected) in running.items():
        try:
            rc = process.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            process.kill()
            rc = process.wait()
        done[name] = dict(rc=rc, expected=expected, stdout=(cwd / "stdout.txt").read_text(),
                          stderr=(cwd / "stderr.txt").read_text())
    return done


@pytest.mark.parametrize("name", ["sft_without_data", "sft_missing_media_and_model", "sft_trainer_given_rl_recipe",
                                  "main_ppo_given_sft_recipe", "main_ppo_model_not_a_model",
                                  "sft_launch_script_missing_media", "sft_check_llama_model"])
def test_refused_in_one_line_per_key_without_traceback(launches, name):
    launch = launches[name]
    shown = f"stdout:\n{launch['stdout'][-3000:]}\nstderr:\n{launch['stderr'][-3000:]}"
    assert launch["rc"] == 1, shown
    refusals = [line for line in launch["stderr"].splitlines() if line.startswith(PREFIX)]
    for expected in launch["expected"]:
        assert any(line.startswith(f"{PREFIX}: {expected}") for line in refusals), (expected, shown)
    assert len(refusals) == len(launch["expected"]), shown
    assert all("; " in line for line in refusals), shown  # <key>=<value>: <why>; <what would work>
    for sign in ("Traceback", "ChildFailedError", "Running: torchrun", "Started a local Ray instance"):
        assert sign not in launch["stdout"] + launch["stderr"], (sign, shown)


def test_model_folder_check_names_the_key_and_accepts_qwen_vl(tmp_path):
    qwen = _model_folder(tmp_path / "qwen", "qwen3_vl")
    check_model_folder(str(qwen), "model.path")
    check_model_folder("Qwen/Qwen3-VL-8B-Instruct", "model.path")  # a hub id: left to transformers unless cached
    check_model_folder("hdfs://cluster/models/sft", "model.path")  # copied by verl, not checkable here
    (tmp_path / "weights.bin").write_bytes(b"")
    refused = {
        str(tmp_path / "nope"): "no such folder",
        "nope": "no such folder",
        str(tmp_path / "weights.bin"): "is a file, not a model folder",
        str(tmp_path): "this folder has no config.json",
        str(_model_folder(tmp_path / "text_only", "qwen2")): "config.json says model_type='qwen2', not a Qwen-VL model",
    }
    for path, why in refused.items():
        with pytest.raises(ModelFolderError) as error:
            check_model_folder(path, "--model")
        assert str(error.value).startswith(f"--model={path}: {why}") and "\n" not in str(error.value)
