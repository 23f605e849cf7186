"""A plain ``gloo`` process group for verl's workers on the CPU.

Wraps ``verl.utils.distributed.initialize_global_process_group_ray`` as ``verl.workers.engine_workers`` calls
it (``TrainingWorker.__init__``): with no backend given it builds ``"cpu:gloo,<device>:<backend>"``, which on
the CPU platform is ``"cpu:gloo,cpu:gloo"`` and ``torch.distributed.init_process_group`` refuses ("Duplicate
device type cpu"). On the CPU the one backend is plain ``gloo``. Installed only in processes whose platform
is the CPU; an explicit backend is passed through unchanged.
"""

import functools
import os

from onethinker_verl.cpu import CPU_PLATFORM


def install() -> None:
    """Wrap ``engine_workers.initialize_global_process_group_ray`` (called once engine_workers is imported)."""
    if os.environ.get("VERL_PLATFORM", "").strip().lower() != CPU_PLATFORM:
        return  # not a CPU-mode process: verl's function stays as it is
    from verl.utils.device import get_device_name
    from verl.workers import engine_workers

    if get_device_name() != CPU_PLATFORM or getattr(engine_workers.initialize_global_process_group_ray, "gloo_on_cpu", False):
        return
    initialize = engine_workers.initialize_global_process_group_ray

    @functools.wraps(initialize)
    def initialize_on_cpu(timeout_second=None, backend=None):
        return initialize(timeout_second=timeout_second, backend=backend or "gloo")

    initialize_on_cpu.gloo_on_cpu = True
    engine_workers.initialize_global_process_group_ray = initialize_on_cpu
