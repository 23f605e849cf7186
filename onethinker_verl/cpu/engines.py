"""verl's FSDP engines for the device ``cpu``.

Wraps ``verl.workers.engine.base.EngineRegistry.get_engine_cls``, which looks engines up by the platform's
device name: verl registers its FSDP engines (``FSDPEngineWithLMHead``, ``FSDPEngineWithValueHead``) for
``cuda`` and ``npu`` only. The same classes serve the CPU (FSDP2 over gloo), so they are registered under
``cpu`` too; only a process whose platform is the CPU ever looks that key up.
"""

from onethinker_verl.cpu import CPU_PLATFORM


def register_engines() -> None:
    """Register verl's language-model and value-model FSDP engines for ``cpu`` (idempotent)."""
    from verl.workers.engine import EngineRegistry
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead, FSDPEngineWithValueHead

    for model_type, engine in (("language_model", FSDPEngineWithLMHead), ("value_model", FSDPEngineWithValueHead)):
        backends = [b for b in ("fsdp", "fsdp2") if CPU_PLATFORM not in EngineRegistry._engines[model_type].get(b, {})]
        if backends:
            EngineRegistry.register(model_type=model_type, backend=backends, device=CPU_PLATFORM)(engine)
