"""CPU mode (onethinker_verl/cpu/): on only with trainer.device=cpu, nothing changed otherwise, and one-line
refusals of what the CPU cannot serve."""

import json
import os
import subprocess
import sys

import psutil
import pytest

from conftest import REPO_ROOT, compose_recipe

# Composes a GPU-style run (the reference recipe) in a fresh process and reports everything CPU mode could
# touch: every resolved config leaf, the platform verl picks, the engine registry and the process-group
# function verl's workers call. With argv[1] == "without", the plugin's CPU pieces cannot be imported.
GPU_RUN_REPORT = r"""
import json, sys
if sys.argv[1] == "without":
    sys.modules["onethinker_verl.cpu"] = None  # every CPU registration of the plugin fails to import
from omegaconf import OmegaConf
from onethinker_verl.dry_run import compose_recipe
from conftest import config_leaves
config = compose_recipe("actor_rollout_ref.model.path=/models/sft", "data.train_files=/data/train.parquet")
if sys.argv[1] == "with":
    from onethinker_verl.cpu.mode import CpuMode
    CpuMode().on_job_start(config)  # the callback on a GPU-style config
import verl.workers.engine_workers as engine_workers
import verl.utils.distributed as distributed
from verl.plugin.platform import get_platform
from verl.workers.engine import EngineRegistry
import os
print(json.dumps({
    "leaves": {k: repr(v) for k, v in config_leaves(OmegaConf.to_container(config, resolve=True)).items()},
    "platform": type(get_platform()).__name__,
    "device_env": os.environ.get("VERL_PLATFORM"),
    "cuda_engine": EngineRegistry._engines["language_model"]["fsdp"]["cuda"].__name__,
    "process_group_is_verls": engine_workers.initialize_global_process_group_ray
        is distributed.initialize_global_process_group_ray,
}))
"""


def gpu_run_reports(*modes: str) -> list[dict]:
    """The report of each mode, from processes run side by side."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests")]))
    env.pop("VERL_PLATFORM", None)
    runs = [subprocess.Popen([sys.executable, "-c", GPU_RUN_REPORT, mode], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env) for mode in modes]
    reports = []
    for run in runs:
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr[-3000:]
        reports.append(json.loads(stdout.strip().splitlines()[-1]))
    return reports


def test_a_gpu_style_run_is_exactly_as_without_the_cpu_pieces():
    with_pieces, without = gpu_run_reports("with", "without")
    assert with_pieces["leaves"] == without["leaves"]  # every resolved leaf, compared one by one
    assert len(with_pieces["leaves"]) > 500
    assert with_pieces["leaves"]["trainer.device"] == "'cuda'"
    assert with_pieces["platform"] == without["platform"] != "PlatformCPU"
    assert with_pieces["device_env"] is None and without["device_env"] is None
    assert with_pieces["cuda_engine"] == without["cuda_engine"]
    assert with_pieces["process_group_is_verls"] and without["process_group_is_verls"]


def cpu_config(*overrides):
    return compose_recipe("actor_rollout_ref.model.path=/models/tiny", *overrides, recipe="onethinker_cpu")


@pytest.mark.parametrize(
    "override, key",
    [
        ("actor_rollout_ref.actor.strategy=fsdp", "actor_rollout_ref.actor.strategy=fsdp: FSDP1 cannot run"),
        ("actor_rollout_ref.rollout.name=vllm", "actor_rollout_ref.rollout.name=vllm: vllm needs a GPU"),
        ("actor_rollout_ref.model.override_config.attn_implementation=flash_attention_2",
         "attn_implementation=flash_attention_2: flash attention needs a GPU"),
        ("actor_rollout_ref.model.use_remove_padding=true", "use_remove_padding=True"),
        ("+ray_kwargs.ray_init.address=10.0.0.1:6379", "ray_kwargs.ray_init.address=10.0.0.1:6379"),
        ("ray_kwargs.ray_init.num_gpus=1", "ray_kwargs.ray_init.num_gpus=1"),
        ("trainer.nnodes=2", "trainer.nnodes=2"),
    ],
)
def test_cpu_mode_refuses_what_the_cpu_cannot_serve_one_line_each(override, key):
    from onethinker_verl.cpu.mode import CpuModeError, check_cpu_mode, cpu_mode_problems

    assert cpu_mode_problems(cpu_config()) == []
    problems = cpu_mode_problems(cpu_config(override))
    assert any(key in line for line in problems), problems
    assert all(line.startswith("onethinker-verl CPU mode: ") and "\n" not in line for line in problems)
    with pytest.raises(CpuModeError):
        check_cpu_mode(cpu_config(override))


def test_cpu_mode_is_never_asked_by_a_gpu_config():
    from onethinker_verl.cpu.mode import cpu_mode_problems, cpu_mode_requested

    config = compose_recipe("actor_rollout_ref.model.path=/m", "data.train_files=/d")
    assert not cpu_mode_requested(config) and cpu_mode_problems(config) == []


def test_the_switch_selects_the_cpu_platform_and_its_pieces(monkeypatch):
    import verl.workers.engine_workers as engine_workers
    from verl.plugin.platform import get_platform, set_platform
    from verl.utils.device import get_device_name
    from verl.workers.engine import EngineRegistry

    from onethinker_verl.cpu import process_group
    from onethinker_verl.cpu.mode import CpuMode

    previous = get_platform()
    original = engine_workers.initialize_global_process_group_ray
    # set, then deleted: monkeypatch restores only what it recorded, and the switch sets the variable
    for name in ("VERL_PLATFORM", "TQ_NUM_THREADS"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    try:
        CpuMode().on_job_start(cpu_config())
        assert os.environ["VERL_PLATFORM"] == "cpu" and get_device_name() == "cpu"
        # TransferQueue's threads within the physical cores, so that it has nothing to warn about
        assert 1 <= int(os.environ["TQ_NUM_THREADS"]) <= min(8, psutil.cpu_count(logical=False))
        assert get_platform().ray_resource_name() == "GPU"  # verl schedules its workers on (logical) GPUs
        assert EngineRegistry.get_engine_cls("language_model", "fsdp2").__name__ == "FSDPEngineWithLMHead"
        process_group.install()
        wrapped = engine_workers.initialize_global_process_group_ray
        assert wrapped is not original and wrapped.gloo_on_cpu
        # the wrapper hands verl's function a plain gloo backend instead of "cpu:gloo,cpu:gloo"
        import torch.distributed

        seen = {}
        monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
        monkeypatch.setattr(torch.distributed, "init_process_group", lambda **kwargs: seen.update(kwargs))
        wrapped()
        assert seen["backend"] == "gloo"
    finally:
        engine_workers.initialize_global_process_group_ray = original
        set_platform(previous)


def test_main_ppo_refuses_in_one_line_before_ray_starts(tmp_path, tiny_vl_checkpoint):
    """Through verl's entry point: CPU mode on FSDP1, and the hf rollout with tensor parallelism (on a real
    model folder, which the start-up check would otherwise refuse first)."""
    base = [sys.executable, "-m", "verl.trainer.main_ppo", "+recipe=onethinker_cpu",
            f"actor_rollout_ref.model.path={tiny_vl_checkpoint('qwen3_vl')}", f"trainer.default_local_dir={tmp_path / 'ckpt'}"]
    cases = {
        "onethinker-verl CPU mode: actor_rollout_ref.actor.strategy=fsdp: FSDP1 cannot run on the CPU":
            "actor_rollout_ref.actor.strategy=fsdp",
        "onethinker-verl hf rollout: actor_rollout_ref.rollout.tensor_model_parallel_size=2":
            "actor_rollout_ref.rollout.tensor_model_parallel_size=2",
    }
    runs = {expected: subprocess.Popen([*base, override], cwd=tmp_path, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
            for expected, override in cases.items()}
    for expected, run in runs.items():
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 1, stderr[-2000:]
        assert expected in stderr and "Traceback" not in stderr, stderr[-2000:]
        assert "ray init kwargs" not in stdout  # refused before verl starts Ray
