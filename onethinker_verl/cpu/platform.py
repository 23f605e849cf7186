"""A ``cpu`` platform for verl's platform registry (``verl.plugin.platform.PlatformRegistry``).

verl resolves its accelerator through ``verl.plugin.platform.get_platform``: the ``VERL_PLATFORM`` override,
else the first registered platform that reports itself available, else ``nvidia``. It has no CPU platform, so
without a GPU it falls back to ``nvidia`` and ``main_ppo``'s ``auto_set_device`` rewrites
``trainer.device=cpu`` to ``cuda``. This platform is registered in every process but never reports itself
available (so it is never auto-detected on any machine); it is selected only through ``VERL_PLATFORM=cpu``,
which :mod:`onethinker_verl.cpu.mode` sets when a run asks for ``trainer.device=cpu``.

Its Ray resource name is ``GPU``: verl's ``ResourcePoolManager`` counts and reserves GPUs only
(``_check_resource_available``, ``create_resource_pool``), so a CPU run gives Ray logical GPUs
(``ray_kwargs.ray_init.num_gpus``), one per worker, and verl schedules its workers on those.
"""

import contextlib
import types
from typing import Any

import torch
from verl.plugin.platform.platform_base import PlatformBase
from verl.plugin.platform.platform_manager import PlatformRegistry

from onethinker_verl.cpu import CPU_PLATFORM


def cpu_device_module() -> types.ModuleType:
    """``torch.cpu`` plus the CUDA-style calls verl makes on its device module (memory statistics read zero,
    the random state is the CPU generator's)."""
    module = types.ModuleType("onethinker_cpu_device")
    module.__getattr__ = lambda name: getattr(torch.cpu, name)
    for name in ("memory_reserved", "memory_allocated", "max_memory_reserved", "max_memory_allocated"):
        setattr(module, name, lambda *args, **kwargs: 0)
    for name in ("empty_cache", "reset_peak_memory_stats", "reset_accumulated_memory_stats", "ipc_collect",
                 "set_device", "set_per_process_memory_fraction", "synchronize"):
        setattr(module, name, lambda *args, **kwargs: None)
    module.mem_get_info = lambda *args, **kwargs: (0, 0)
    module.get_rng_state = lambda *args, **kwargs: torch.get_rng_state()
    module.set_rng_state = lambda state, *args, **kwargs: torch.set_rng_state(state)
    module.manual_seed = torch.manual_seed
    module.manual_seed_all = torch.manual_seed
    module.device_count = lambda: 1
    module.is_available = lambda: True
    module.get_device_name = lambda *args, **kwargs: "cpu"
    return module


class PlatformCPU(PlatformBase):
    """verl's platform interface on the CPU."""

    device_name = "cpu"
    vendor_name = "cpu"
    device_module = cpu_device_module()

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        return False  # never auto-detected: selected only by VERL_PLATFORM=cpu

    def current_device(self) -> torch.device:
        # verl moves modules with ``.to(get_device_id())``; an integer there would mean a CUDA device
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

    def get_device_capability(self, device_index: int = 0) -> tuple[None, None]:
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
        return "GPU"  # logical GPUs: see the module docstring

    def ray_resource_options(self, num_gpus: float) -> dict[str, Any]:
        return {"num_gpus": num_gpus}

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> None:
        return None


def register_platform() -> None:
    """Add the ``cpu`` platform to verl's registry (called once verl has imported its platform manager)."""
    PlatformRegistry.register(platform=CPU_PLATFORM)(PlatformCPU)
