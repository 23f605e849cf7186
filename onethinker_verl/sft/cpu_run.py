"""Run verl's SFT trainer on the CPU: a CPU device platform registered through verl's platform registry.

    python -m onethinker_verl.sft.cpu_run HYDRA_OVERRIDE ... [--- HYDRA_OVERRIDE ...]
    torchrun --standalone --nproc_per_node=2 -m onethinker_verl.sft.cpu_run HYDRA_OVERRIDE ...

verl 0.9.1 resolves its accelerator through ``verl.plugin.platform`` (``PlatformRegistry`` plus the
``VERL_PLATFORM`` override). Registering a ``cpu`` platform there, before anything asks for the platform,
lets ``verl.trainer.sft_trainer`` run unchanged with ``engine.strategy=fsdp2`` over gloo. This module
registers it (and verl's FSDP engine for the ``cpu`` device) and then runs verl's own
``verl.trainer.sft_trainer`` entry point (its Hydra ``main``) with the given overrides, under torchrun or, without
it, as rank 0 of a world of 1; each ``---`` starts another run in the same process (verl and the models are
imported once). What differs from a GPU node is only here: the platform, the device module (zero memory
statistics) and a plain gloo process group. The SFT tests and the miniature pipeline
(:mod:`onethinker_verl.miniature`) run SFT through it; add ``trainer.device=cpu`` and the CPU model settings
(:data:`CPU_MODEL_OVERRIDES`) to the overrides.
"""

import contextlib
import os
import runpy
import sys
import types

import torch


def _cpu_device_module() -> types.ModuleType:
    """``torch.cpu`` plus the CUDA-style calls verl makes on its device module (memory statistics are zero,
    random state is the CPU generator's)."""
    module = types.ModuleType("verl_cpu_device")
    module.__getattr__ = lambda name: getattr(torch.cpu, name)
    for name in ("memory_reserved", "memory_allocated", "max_memory_reserved", "max_memory_allocated"):
        setattr(module, name, lambda *args, **kwargs: 0)
    for name in ("empty_cache", "reset_peak_memory_stats", "reset_accumulated_memory_stats", "ipc_collect",
                 "set_device", "set_per_process_memory_fraction"):
        setattr(module, name, lambda *args, **kwargs: None)
    module.mem_get_info = lambda *args, **kwargs: (0, 0)
    module.get_rng_state = lambda *args, **kwargs: torch.get_rng_state()
    module.set_rng_state = lambda state, *args, **kwargs: torch.set_rng_state(state)
    module.manual_seed = torch.manual_seed
    module.get_device_name = lambda *args, **kwargs: "cpu"
    return module


def register_cpu_platform() -> None:
    """Register and select a ``cpu`` platform in verl's platform registry (idempotent)."""
    from verl.plugin.platform import PlatformBase, PlatformRegistry, set_platform

    @PlatformRegistry.register(platform="cpu")
    class PlatformCPU(PlatformBase):
        device_name = "cpu"
        vendor_name = "cpu"
        device_module = _cpu_device_module()

        def is_available(self) -> bool:
            return True

        def current_device(self):
            # verl moves modules with ``.to(get_device_id())``; an integer there would mean a CUDA device.
            return torch.device("cpu")

        def device_count(self) -> int:
            return 1

        def set_device(self, device_index: int) -> None:
            return None

        def synchronize(self, device_index=None) -> None:
            return None

        def manual_seed(self, seed: int) -> None:
            torch.manual_seed(seed)

        def manual_seed_all(self, seed: int) -> None:
            torch.manual_seed(seed)

        def set_allocator_settings(self, settings: str) -> None:
            return None

        def empty_cache(self) -> None:
            return None

        def get_device_capability(self, device_index: int = 0):
            return None, None

        def communication_backend_name(self) -> str:
            return "gloo"

        def visible_devices_envvar(self) -> str:
            return "CUDA_VISIBLE_DEVICES"

        @contextlib.contextmanager
        def nvtx_range(self, msg: str):
            yield

        def profiler_start(self) -> None:
            return None

        def profiler_stop(self) -> None:
            return None

        def ray_resource_name(self) -> str:
            return "CPU"

        def ray_noset_envvars(self) -> list[str]:
            return []

        def is_ipc_supported(self) -> bool:
            return False

        def cudart(self):
            return None

    os.environ["VERL_PLATFORM"] = "cpu"
    set_platform(PlatformCPU())

    # verl registers its FSDP engines per device ("cuda", "npu"); the same classes serve the CPU.
    from verl.workers.engine import EngineRegistry
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead

    if "cpu" not in EngineRegistry._engines["language_model"]["fsdp2"]:
        EngineRegistry.register(model_type="language_model", backend=["fsdp", "fsdp2"], device="cpu")(
            FSDPEngineWithLMHead
        )


def single_process_environment() -> None:
    """torch.distributed's env:// rendezvous for a world of one process (what torchrun would set)."""
    for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_WORLD_SIZE", "1"),
                       ("MASTER_ADDR", "127.0.0.1")):
        os.environ.setdefault(key, value)
    if "MASTER_PORT" not in os.environ:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(probe.getsockname()[1])


def use_one_gloo_process_group() -> None:
    """One plain gloo process group for all runs of this process.

    verl builds the backend string ``cpu:gloo,<device>:<backend>``, which torch refuses when the device is itself
    ``cpu`` (a duplicate device type). And each ``run_sft`` creates and destroys the global group; under
    torchrun a second creation meets the first one's keys in the agent's store and can hang, so the group is
    created once, kept between runs and destroyed at exit."""
    from datetime import timedelta

    import verl.utils.distributed

    def initialize_gloo_process_group(timeout_second=36000):
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group(backend="gloo", timeout=timedelta(seconds=timeout_second))
        return int(os.environ["LOCAL_RANK"]), int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])

    def keep_process_group():
        torch.distributed.barrier()  # every rank has finished the run

    verl.utils.distributed.initialize_global_process_group = initialize_gloo_process_group
    verl.utils.distributed.destroy_global_process_group = keep_process_group


RUN_SEPARATOR = "---"
# The CPU has no flash-attention: sdpa, and no padding-free packing (verl's packed Qwen2.5-VL attention calls
# flash-attention).
CPU_MODEL_OVERRIDES = ("trainer.device=cpu", "model.use_remove_padding=false",
                       "model.override_config.attn_implementation=sdpa")


def main(arguments: list[str]) -> None:
    single_process_environment()
    register_cpu_platform()
    use_one_gloo_process_group()
    runs = [[]]
    for argument in arguments:
        if argument == RUN_SEPARATOR:
            runs.append([])
        else:
            runs[-1].append(argument)
    for overrides in runs:
        sys.argv = ["verl.trainer.sft_trainer", *overrides]
        runpy.run_module("verl.trainer.sft_trainer", run_name="__main__", alter_sys=True)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
