"""Run verl's SFT trainer on the CPU: a CPU device platform registered through verl's platform registry.

    python -m onethinker_verl.sft.cpu_run HYDRA_OVERRIDE ... [--- HYDRA_OVERRIDE ...]
    torchrun --standalone --nproc_per_node=2 -m onethinker_verl.sft.cpu_run HYDRA_OVERRIDE ...

verl 0.9.1 resolves its accelerator through ``verl.plugin.platform`` (``PlatformRegistry`` plus the
``VERL_PLATFORM`` override). Selecting the plugin's ``cpu`` platform there (:mod:`onethinker_verl.cpu`, whose
FSDP engine registrations for the ``cpu`` device come with it), before anything asks for the platform, lets
``verl.trainer.sft_trainer`` run unchanged with ``engine.strategy=fsdp2`` over gloo. This module selects it and
then runs verl's own ``verl.trainer.sft_trainer`` entry point (its Hydra ``main``) with the given overrides,
under torchrun or, without it, as rank 0 of a world of 1; each ``---`` starts another run in the same process
(verl and the models are imported once). What differs from a GPU node is only the platform and a plain gloo
process group (this module's: the SFT trainer builds its group itself). The SFT tests and the miniature pipeline
(:mod:`onethinker_verl.miniature`) run SFT through it; add ``trainer.device=cpu`` and the CPU model settings
(:data:`CPU_MODEL_OVERRIDES`) to the overrides.
"""

import os
import runpy
import sys

import torch

from onethinker_verl.cpu.mode import switch_on


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
    switch_on()  # verl's `cpu` platform (onethinker_verl.cpu); the plugin registers its FSDP engines for `cpu`
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
