"""Per-task metrics in verl 0.9.1's step metrics: the reward parts of each task and the EMA-GRPO moments.

Neither trainer turns a reward manager's ``reward_extra_info`` into training metrics, and an advantage
estimator has no way to return metrics. So:

* v1 trainer: ``PPOTrainer._compute_advantage`` of one trainer object is wrapped to add
  ``reward/<part>/<task>`` and ``reward/count/<task>`` (from the trajectories' ``reward_extra_info``,
  padding rows left out) and the estimator's ``ema_grpo/*`` metrics to the ``metrics`` dict verl passes it.
  With the online filter on, the reward metrics come from the filter instead, over every scored group.
* legacy trainer: its ``fit`` keeps the reward extra info as batch columns and calls
  ``verl.trainer.ppo.ray_trainer.compute_data_metrics`` once per step; that module function is wrapped when
  the first legacy trainer that needs it is built, and adds metrics only inside the ``fit`` of such a trainer
  (:mod:`.legacy_fit`).
"""

from collections.abc import Callable
from typing import Any

from onethinker_verl.glue.legacy_fit import active_needs
from onethinker_verl.glue.method_wrapping import wrap_attribute
from onethinker_verl.glue.padding import padding_mask
from onethinker_verl.glue.trajectory_fields import fetch_trajectory_fields, reward_extra_info_of
from onethinker_verl.reward.metrics import per_task_reward_metrics, reward_extra_info_columns


def _estimator_metrics() -> dict[str, float]:
    from onethinker_verl.advantage.ema_grpo import pop_step_metrics

    return pop_step_metrics()


def add_metrics_in_v1_advantage_step(trainer: Any, reward_metrics: bool, estimator_metrics: bool) -> None:
    """Wrap ``trainer._compute_advantage`` (a v1 ``PPOTrainer``) to add per-task reward metrics (when
    ``reward_metrics``) and the EMA-GRPO metrics (when ``estimator_metrics``) to the step's metrics."""

    def make_wrapper(compute_advantage_step: Callable) -> Callable:
        def compute_advantage_step_with_metrics(batch, metrics):
            if reward_metrics:
                fetched = fetch_trajectory_fields(batch.keys, batch.partition_id, ["extra_fields"])
                real = ~padding_mask(batch.tags)
                infos = [reward_extra_info_of(f) for f, is_real in zip(fetched["extra_fields"], real) if is_real]
                metrics.update(per_task_reward_metrics(reward_extra_info_columns(infos)))
            result = compute_advantage_step(batch, metrics)
            if estimator_metrics:
                metrics.update(_estimator_metrics())
            return result

        return compute_advantage_step_with_metrics

    wrap_attribute(trainer, "_compute_advantage", make_wrapper)


def add_metrics_in_legacy_compute_data_metrics() -> None:
    """Wrap ``verl.trainer.ppo.ray_trainer.compute_data_metrics`` (called once per legacy step) to add the
    per-task reward metrics of the batch's reward columns and the EMA-GRPO metrics."""
    from verl.trainer.ppo import ray_trainer

    def make_wrapper(compute_data_metrics: Callable) -> Callable:
        def compute_data_metrics_with_onethinker(batch, *args, **kwargs):
            metrics = compute_data_metrics(batch, *args, **kwargs)
            needs = active_needs()
            if needs is not None and needs.onethinker_reward:
                metrics.update(per_task_reward_metrics(batch.non_tensor_batch))
            if needs is not None and needs.ema_grpo:
                metrics.update(_estimator_metrics())
            return metrics

        return compute_data_metrics_with_onethinker

    wrap_attribute(ray_trainer, "compute_data_metrics", make_wrapper)
