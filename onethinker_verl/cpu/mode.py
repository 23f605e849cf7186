"""The CPU-mode switch: ``trainer.device=cpu``, and the settings a CPU run cannot serve.

verl's ``main_ppo`` never runs its workers on the CPU by itself (:mod:`onethinker_verl.cpu`). Asked for
explicitly with ``trainer.device=cpu``, the Hydra callback :class:`CpuMode` (declared by
``+recipe=onethinker_cpu``) checks the configuration in the driver, before Ray starts, and selects the
``cpu`` platform (:mod:`.platform`) for the driver and, through the environment the local Ray cluster
inherits, for every Ray worker. Nothing is detected: on any machine, a run without ``trainer.device=cpu`` is
left exactly as it was.

:func:`cpu_mode_problems` lists, one line each, what the CPU cannot serve; :func:`check_cpu_mode` raises
them. Each line reads ``onethinker-verl CPU mode: <key>=<value>: <why>; <what works>``.
"""

import logging
import os
from typing import Any

import psutil
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from onethinker_verl.cpu import CPU_PLATFORM

logger = logging.getLogger(__name__)

PREFIX = "onethinker-verl CPU mode"
CPU_ATTENTION = ("sdpa", "eager")
TRANSFER_THREADS_ENV = "TQ_NUM_THREADS"  # TransferQueue's threads per transfer (transfer_queue.client)


class CpuModeError(ValueError):
    """Settings CPU mode cannot serve; ``problems`` holds one line per setting."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def cpu_mode_requested(config: DictConfig) -> bool:
    return str(OmegaConf.select(config, "trainer.device", default="")).lower() == CPU_PLATFORM


def _line(key: str, value: Any, why: str, fix: str) -> str:
    return f"{PREFIX}: {key}={value}: {why}; {fix}"


def cpu_mode_problems(config: DictConfig) -> list[str]:
    """One line per setting of a ``trainer.device=cpu`` run that cannot work on the CPU (empty otherwise)."""
    if not cpu_mode_requested(config):
        return []
    select = lambda key, default=None: OmegaConf.select(config, key, default=default)  # noqa: E731
    problems = []
    for role in ("actor", "ref"):
        key = f"actor_rollout_ref.{role}.strategy"
        if select(key) == "fsdp":
            problems.append(_line(
                key, "fsdp", "FSDP1 cannot run on the CPU (it refuses CPU parameters with sync_module_states)",
                "use fsdp2",
            ))
    rollout = select("actor_rollout_ref.rollout.name")
    if rollout != "hf":
        problems.append(_line(
            "actor_rollout_ref.rollout.name", rollout, f"{rollout} needs a GPU", "use hf (transformers generation)",
        ))
    attention = select("actor_rollout_ref.model.override_config.attn_implementation", "flash_attention_2")
    if attention not in CPU_ATTENTION:
        problems.append(_line(
            "actor_rollout_ref.model.override_config.attn_implementation", attention,
            "flash attention needs a GPU", "use sdpa",
        ))
    if select("actor_rollout_ref.model.use_remove_padding", False):
        problems.append(_line(
            "actor_rollout_ref.model.use_remove_padding", True,
            "verl's padding-free (packed) vision-language attention calls flash attention", "set it to false",
        ))
    nnodes = int(select("trainer.nnodes", 1))
    if nnodes != 1:
        problems.append(_line("trainer.nnodes", nnodes, "CPU mode runs on this machine only", "set it to 1"))
    if select("ray_kwargs.ray_init.address") not in (None, "local"):
        problems.append(_line(
            "ray_kwargs.ray_init.address", select("ray_kwargs.ray_init.address"),
            "CPU mode starts its own local Ray (its workers inherit the CPU platform from this process)",
            "leave the address unset",
        ))
    workers = nnodes * int(select("trainer.n_gpus_per_node", 1))
    logical_gpus = select("ray_kwargs.ray_init.num_gpus")
    if logical_gpus is None or int(logical_gpus) < workers:
        problems.append(_line(
            "ray_kwargs.ray_init.num_gpus", logical_gpus,
            f"verl schedules each of its {workers} workers (trainer.n_gpus_per_node) on a Ray GPU, which CPU "
            "mode provides as logical GPUs", f"set it to {workers}",
        ))
    return problems


def check_cpu_mode(config: DictConfig) -> None:
    """Raise :class:`CpuModeError` if ``config`` asks for the CPU with settings the CPU cannot serve."""
    problems = cpu_mode_problems(config)
    if problems:
        raise CpuModeError(problems)


def switch_on() -> None:
    """Select the ``cpu`` platform in this process and in the Ray workers it starts (they inherit the
    environment of the local Ray cluster this process starts), and size TransferQueue's threads to the
    physical cores."""
    from verl.plugin.platform import get_platform, set_platform

    from onethinker_verl.cpu.platform import PlatformCPU

    os.environ["VERL_PLATFORM"] = CPU_PLATFORM
    # TransferQueue runs 8 threads a transfer unless told otherwise, clamps them to the physical cores itself,
    # and warns on every transfer of every step when it does; a user's own setting wins
    os.environ.setdefault(TRANSFER_THREADS_ENV, str(min(8, psutil.cpu_count(logical=False) or 1)))
    if get_platform().device_name != CPU_PLATFORM:  # chosen earlier in this process, before the switch
        set_platform(PlatformCPU())
    logger.info("onethinker-verl: CPU mode on (trainer.device=cpu): verl's workers run on the CPU platform")


class CpuMode(Callback):
    """Hydra callback (``hydra.callbacks``): for ``trainer.device=cpu``, refuse what the CPU cannot serve
    (status 1, one line per setting) or switch CPU mode on; any other run is left alone."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not cpu_mode_requested(config):
            return
        problems = cpu_mode_problems(config)
        if problems:
            raise SystemExit("\n".join(problems))
        switch_on()
