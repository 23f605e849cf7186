"""The one place that installs the glue: per trainer object, only what that trainer's config asks for.

:mod:`onethinker_verl.plugin` calls :func:`install_v1_trainer_glue` when verl imports
``verl.trainer.ppo.v1.trainer_base`` and :func:`install_legacy_trainer_glue` when it imports
``verl.trainer.ppo.ray_trainer``. Each wraps its trainer class's ``__init__`` once; the wrapper reads the
config when a trainer is built and calls :func:`install_onethinker_glue`. A run that uses neither
``algorithm.adv_estimator=ema_grpo``, nor ``reward.reward_manager.name=onethinker``, nor
``algorithm.online_filter.enable`` gets nothing: its trainer object is verl's, untouched, and no glue runs
during its steps (each glued method costs it one set-membership test per call).

A trainer object built without its ``__init__`` (``PPOTrainer.__new__`` plus a ``config``, as tools and tests
do to skip starting GPU workers) gets its glue decided at its first call of a glued method
(``_compute_advantage``, ``_save_checkpoint``, ``_load_checkpoint``; ``_build_replay_buffer`` attaches the
online filter to every buffer it builds for a config that enables it).
"""

import logging
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from onethinker_verl.glue.method_wrapping import DECIDES_GLUE_MARK, wrap_attribute

logger = logging.getLogger(__name__)

V1_TRAINER_MODULE = "verl.trainer.ppo.v1.trainer_base"
# What each trainer object's config asked of the glue, once decided (installed, or nothing needed); kept
# outside the objects so that a stock trainer carries verl's attributes only.
_DECIDED: "weakref.WeakKeyDictionary[Any, GlueNeeds]" = weakref.WeakKeyDictionary()


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
    decided = _DECIDED.get(trainer)
    if decided is not None:
        return decided
    needs = GlueNeeds.from_config(trainer.config)
    _DECIDED[trainer] = needs
    if needs.any():
        v1_module = sys.modules.get(V1_TRAINER_MODULE)
        if v1_module is not None and isinstance(trainer, v1_module.PPOTrainer):
            _install_on_v1_trainer(trainer, needs)
        else:
            _install_on_legacy_trainer(trainer, needs)
        logger.info("onethinker-verl: trainer glue installed on %s for %s", type(trainer).__name__, needs)
    return needs


def _install_on_v1_trainer(trainer: Any, needs: GlueNeeds) -> None:
    from onethinker_verl.glue import ema_checkpoint, model_score_normalization, step_metrics, task_identity

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
    # The online filter is attached by PPOTrainer._build_replay_buffer itself (install_v1_trainer_glue).


def _install_on_legacy_trainer(trainer: Any, needs: GlueNeeds) -> None:
    from onethinker_verl.glue import ema_checkpoint, legacy_fit, step_metrics

    if needs.online_filter:
        raise ValueError(
            "algorithm.online_filter is implemented for verl's v1 trainer (trainer.use_v1=true, the default); "
            "the legacy trainer (trainer.use_v1=false) has no group filtering. Set "
            "algorithm.online_filter.enable=false or use the v1 trainer."
        )
    if needs.ema_grpo:
        ema_checkpoint.save_and_restore_moments_with_checkpoints(trainer)
    step_metrics.add_metrics_in_legacy_compute_data_metrics()
    legacy_fit.scope_glue_to_fit(trainer, needs)


def _install_at_construction(init: Callable) -> Callable:
    def init_with_onethinker_glue(self, *args, **kwargs):
        init(self, *args, **kwargs)
        install_onethinker_glue(self)

    return init_with_onethinker_glue


def _decide_glue_on_first_use(method: Callable) -> Callable:
    """Class-level wrapper of a glued method: an object whose glue is not decided yet (built without
    ``__init__``) gets it now; the call then goes to the object's own wrapper, if any, else to verl's method."""
    name = method.__name__

    def method_after_deciding_glue(self, *args, **kwargs):
        if self not in _DECIDED:
            install_onethinker_glue(self)
        own = vars(self).get(name)
        if own is not None:
            return own(*args, **kwargs)
        return method(self, *args, **kwargs)

    setattr(method_after_deciding_glue, DECIDES_GLUE_MARK, True)
    return method_after_deciding_glue


def _attach_online_filter_when_built(build_replay_buffer: Callable) -> Callable:
    def build_replay_buffer_with_online_filter(self):
        from onethinker_verl.glue.online_filter import (
            attach_online_filter,
            online_filter_settings,
            verl_budget_warning_withheld,
        )

        if online_filter_settings(self.config.algorithm) is None:
            return build_replay_buffer(self)
        with verl_budget_warning_withheld():  # the filter enforces the budget verl says it ignores
            buffer = build_replay_buffer(self)
        attach_online_filter(buffer, self.config)
        return buffer

    return build_replay_buffer_with_online_filter


def install_v1_trainer_glue() -> None:
    """Make every v1 ``PPOTrainer`` built from now on install the glue its config needs."""
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer

    wrap_attribute(PPOTrainer, "__init__", _install_at_construction)
    for name in ("_compute_advantage", "_save_checkpoint", "_load_checkpoint"):
        wrap_attribute(PPOTrainer, name, _decide_glue_on_first_use)
    wrap_attribute(PPOTrainer, "_build_replay_buffer", _attach_online_filter_when_built)


def install_legacy_trainer_glue() -> None:
    """Make every legacy ``RayPPOTrainer`` built from now on install the glue its config needs, and give
    ``ema_grpo`` each sample's task in verl's module-level ``compute_advantage``."""
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    from onethinker_verl.glue.task_identity import provide_tasks_to_compute_advantage

    provide_tasks_to_compute_advantage()
    wrap_attribute(RayPPOTrainer, "__init__", _install_at_construction)
    for name in ("_save_checkpoint", "_load_checkpoint"):
        wrap_attribute(RayPPOTrainer, name, _decide_glue_on_first_use)
