"""verl's actor and rollout workers on the CPU, on request only: ``trainer.device=cpu``.

verl 0.9.1 cannot run ``main_ppo`` without an accelerator. Each gap is bridged in its own module:

* :mod:`.platform`: a ``cpu`` platform in verl's platform registry, never auto-detected;
* :mod:`.engines`: verl's FSDP engines registered for the device ``cpu``;
* :mod:`.process_group`: a plain ``gloo`` process group for the workers;
* :mod:`.mode`: the switch (a Hydra callback reading ``trainer.device``) and the refusal of settings the CPU
  cannot serve.

Nothing here changes a run that does not ask for the CPU: the platform is selected only by the switch, the
engine registrations add a device key only the CPU looks up, and the process-group change is installed only
in processes whose platform is the CPU.
"""

CPU_PLATFORM = "cpu"
