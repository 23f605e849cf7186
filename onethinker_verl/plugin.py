"""verl plugin entry point: registers every onethinker-verl component with verl, lazily.

verl imports this module (entry-point group ``verl.plugins``) from ``import verl`` in every process that
imports verl: the driver, the TaskRunner and each Ray worker. Most of those processes never use most
components, and importing what a component extends costs seconds (``verl.trainer.ppo.core_algos`` alone
about 1.7 s). So this module imports nothing of verl: each row of :data:`LAZY_REGISTRATIONS` names the verl
module a component extends, and the component is registered right after verl itself imports that module
(:mod:`onethinker_verl.post_import_hooks`). Only the OmegaConf resolvers are registered at once: Hydra needs
them while composing a recipe in the driver, and omegaconf is already loaded by ``import verl``.

verl logs a failed plugin import only at DEBUG level, so each registration is attempted separately and a
failure is logged as a WARNING naming the component; the others still register. Each success is logged
at INFO.
"""

import importlib
import logging
from typing import NamedTuple

from onethinker_verl import post_import_hooks

logger = logging.getLogger(__name__)


class LazyRegistration(NamedTuple):
    """When ``verl_module`` has been imported, import ``target`` (``"package.module"``) or call it
    (``"package.module:function"``, called with no arguments); ``provides`` names what that registers."""

    verl_module: str
    target: str
    provides: str


# The one table of lazy registrations. To extend another part of verl, add a row here.
LAZY_REGISTRATIONS = (
    LazyRegistration(
        "verl.trainer.ppo.core_algos", "onethinker_verl.advantage.ema_grpo", "advantage estimator 'ema_grpo'"
    ),
    LazyRegistration(
        "verl.experimental.reward_loop.reward_manager", "onethinker_verl.reward.manager", "reward manager 'onethinker'"
    ),
    LazyRegistration(
        "verl.trainer.ppo.v1.trainer_base",
        "onethinker_verl.glue.install:install_v1_trainer_glue",
        "v1 trainer glue (task identity, EMA state in checkpoints, per-task metrics, online filter)",
    ),
    LazyRegistration(
        "verl.trainer.ppo.ray_trainer",
        "onethinker_verl.glue.install:install_legacy_trainer_glue",
        "legacy trainer glue (task identity, EMA state in checkpoints, per-task metrics)",
    ),
    LazyRegistration(
        "verl.workers.engine_workers",
        "onethinker_verl.sft.freeze:install",
        "SFT freezing of vision tower / projector (model.freeze_* keys, FSDP2 engine)",
    ),
    LazyRegistration(
        "verl.workers.rollout.base", "onethinker_verl.rollout.registration:register_adapter",
        "rollout backend 'hf' worker adapter (get_rollout_class)",
    ),
    LazyRegistration(
        "verl.workers.rollout.replica", "onethinker_verl.rollout.registration:register_replica",
        "rollout backend 'hf' replica (RolloutReplicaRegistry)",
    ),
    LazyRegistration(
        "verl.plugin.platform.platform_manager", "onethinker_verl.cpu.platform:register_platform",
        "platform 'cpu' (selected only by trainer.device=cpu)",
    ),
    LazyRegistration(
        "verl.workers.engine.fsdp.transformer_impl", "onethinker_verl.cpu.engines:register_engines",
        "FSDP engines for device 'cpu'",
    ),
    LazyRegistration(
        "verl.workers.engine_workers", "onethinker_verl.cpu.process_group:install",
        "gloo process group for workers on the CPU platform (CPU mode only)",
    ),
    LazyRegistration(
        "verl.single_controller.ray.base",
        "onethinker_verl.resource_wait:install",
        "warnings while Ray placement groups are pending (what is asked, what the cluster has)",
    ),
)

RESOLVERS_DESCRIPTION = "OmegaConf resolvers 'onethinker_sample', 'onethinker_required'"


def run_registration(registration: LazyRegistration) -> bool:
    """Import or call ``registration.target``; log the outcome. True on success."""
    module_name, _, function_name = registration.target.partition(":")
    try:
        module = importlib.import_module(module_name)
        if function_name:
            getattr(module, function_name)()
    except Exception as exc:  # a broken component must not hide the others, but must be loud
        logger.warning(
            "onethinker-verl: failed to register %s (%s, on import of %s): %r",
            registration.provides,
            registration.target,
            registration.verl_module,
            exc,
        )
        return False
    logger.info("onethinker-verl registered with verl: %s", registration.provides)
    return True


def register() -> None:
    """Register the resolvers now and every row of :data:`LAZY_REGISTRATIONS` when verl imports its module."""
    try:
        importlib.import_module("onethinker_verl.resolvers")
    except Exception as exc:
        logger.warning("onethinker-verl: failed to register %s: %r", RESOLVERS_DESCRIPTION, exc)
    else:
        logger.info("onethinker-verl registered with verl: %s", RESOLVERS_DESCRIPTION)
    for registration in LAZY_REGISTRATIONS:
        post_import_hooks.when_imported(registration.verl_module, lambda _module, r=registration: run_registration(r))
    logger.info(
        "onethinker-verl: %s register when verl imports %s",
        ", ".join(r.provides.split(" (")[0] for r in LAZY_REGISTRATIONS),
        ", ".join(r.verl_module for r in LAZY_REGISTRATIONS),
    )


register()
