"""The one place that installs the glue: per trainer object, only what that trainer's config asks for.

:mod:`onethinker_verl.plugin` calls :func:`install_v1_trainer_glue` when verl imports
``verl.trainer.ppo.v1.trainer_base`` and :func:`install_legacy_trainer_glue` when it imports
``verl.trainer.ppo.ray_trainer``. Each wraps its trainer class's ``__init__`` once; the wrapper reads the
config when a trainer is built and calls :func:`install_onethinker_glue`. A run that uses neither
``algorithm.adv_estimator=ema_grpo``, nor ``reward.reward_manager.name=onethinker``, nor
``algorithm.online_filter.enable`` gets nothing: its trainer object is verl's, untouched, and no glue runs
during its steps.
"""

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from onethinker_verl.glue.method_wrapping import wrap_attribute

logger = logging.getLogger(__name__)

INSTALLED_ATTR = "_onethinker_glue"
V1_TRAINER_MODULE = "verl.trainer.ppo.v1.trainer_base"


@dataclass(frozen=True)
class GlueNeeds:
    """What a trainer's config asks of the glue."""

    ema_grpo: bool  # algorithm.adv_estimator=ema_grpo
    onethinker_reward: bool  # reward.reward_manager.name=onethinker
    online_filter: bool  # algorithm.online_filter.enable
    normalize_model_scores: bool  # reward.reward_manager.model_scoring.{enable,normalize_by_group}

    @classmethod
    def from_config(cls, config: Any) -> "GlueNeeds":
        from onethinker_verl.glue.model_score_normalization import normalization_requested
        from onethinker_verl.glue.online_filter import online_filter_settings
        from onethinker_verl.glue.task_identity import ESTIMATORS_NEEDING_TASKS

        manager = config.get("reward", {}).get("reward_manager", {}) or {}
        onethinker_reward = manager.get("name", None) == "onethinker"
        return cls(
            ema_grpo=config.algorithm.adv_estimator in ESTIMATORS_NEEDING_TASKS,
            onethinker_reward=onethinker_reward,
            online_filter=online_filter_settings(config.algorithm) is not None,
            normalize_model_scores=onethinker_reward and normalization_requested(config),
        )

    def any(self) -> bool:
        return self.ema_grpo or self.onethinker_reward or self.online_filter


def install_onethinker_glue(trainer: Any) -> GlueNeeds:
    """Install on ``trainer`` (a v1 ``PPOTrainer`` or a legacy ``RayPPOTrainer``, its ``config`` set) the glue
    its config needs; idempotent. Trainer constructors call it; call it yourself for a trainer object built
    without its ``__init__``."""
    installed = getattr(trainer, INSTALLED_ATTR, None)
    if installed is not None:
        return installed
    needs = GlueNeeds.from_config(trainer.config)
    if needs.any():
        v1_module = sys.modules.get(V1_TRAINER_MODULE)
        if v1_module is not None and isinstance(trainer, v1_module.PPOTrainer):
            _install_on_v1_trainer(trainer, needs)
        else:
            _install_on_legacy_trainer(trainer, needs)
        logger.info("onethinker-verl: trainer glue installed on %s for %s", type(trainer).__name__, needs)
        setattr(trainer, INSTALLED_ATTR, needs)  # a stock trainer keeps verl's attributes only
    return needs


def _install_on_v1_trainer(trainer: Any, needs: GlueNeeds) -> None:
    from onethinker_verl.glue import (
        ema_checkpoint,
        model_score_normalization,
        online_filter,
        step_metrics,
        task_identity,
    )

    # Wrappers around _compute_advantage, innermost first: the estimator sees the tasks, the metrics are
    # taken after model scores are normalised.
    if needs.ema_grpo:
        task_identity.provide_tasks_in_v1_advantage_step(trainer)
        ema_checkpoint.save_and_restore_moments_with_checkpoints(trainer)
    reward_metrics = needs.onethinker_reward and not needs.online_filter  # else the filter reports them
    if reward_metrics or needs.ema_grpo:
        step_metrics.add_metrics_in_v1_advantage_step(
            trainer, reward_metrics=reward_metrics, estimator_metrics=needs.ema_grpo
        )
    if needs.normalize_model_scores:
        model_score_normalization.normalize_model_scores_in_v1_advantage_step(trainer)
    if needs.online_filter:
        # PPOTrainer.__init__ has built the replay buffer; a trainer built without it may not have one yet.
        if getattr(trainer, "replay_buffer", None) is None:
            trainer.replay_buffer = trainer._build_replay_buffer()
        online_filter.attach_online_filter(trainer.replay_buffer, trainer.config)


def _install_on_legacy_trainer(trainer: Any, needs: GlueNeeds) -> None:
    from onethinker_verl.glue import ema_checkpoint, legacy_fit, step_metrics, task_identity

    if needs.online_filter:
        raise ValueError(
            "algorithm.online_filter is implemented for verl's v1 trainer (trainer.use_v1=true, the default); "
            "the legacy trainer (trainer.use_v1=false) has no group filtering. Set "
            "algorithm.online_filter.enable=false or use the v1 trainer."
        )
    if needs.ema_grpo:
        task_identity.provide_tasks_in_legacy_compute_advantage()
        ema_checkpoint.save_and_restore_moments_with_checkpoints(trainer)
    step_metrics.add_metrics_in_legacy_compute_data_metrics()
    legacy_fit.scope_glue_to_fit(trainer, needs)


def _install_at_construction(init: Callable) -> Callable:
    def init_with_onethinker_glue(self, *args, **kwargs):
        init(self, *args, **kwargs)
        install_onethinker_glue(self)

    return init_with_onethinker_glue


def install_v1_trainer_glue() -> None:
    """Make every v1 ``PPOTrainer`` built from now on install the glue its config needs."""
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer

    wrap_attribute(PPOTrainer, "__init__", _install_at_construction)


def install_legacy_trainer_glue() -> None:
    """Make every legacy ``RayPPOTrainer`` built from now on install the glue its config needs."""
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    wrap_attribute(RayPPOTrainer, "__init__", _install_at_construction)
