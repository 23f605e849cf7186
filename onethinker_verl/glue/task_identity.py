"""Each sample's task reaches the ``ema_grpo`` estimator, in both of verl 0.9.1's trainers.

verl calls an advantage estimator with ``token_level_rewards``, ``response_mask``, ``config`` and the group
``index`` only; per-sample data (``extra_info``, which names the task) reaches just the built-in GDPO
estimator (upstream PR verl-project/verl#7473 would change that). The glue therefore provides it through
:mod:`onethinker_verl.advantage.sample_data` for the duration of verl's call:

* v1 trainer (``trainer.use_v1=true``, the default): ``PPOTrainer._compute_advantage`` of one trainer
  object is wrapped to read each trajectory's ``extra_info`` from TransferQueue (one read per step) and to
  mark the rows verl added as padding (:mod:`.padding`).
* legacy trainer (``trainer.use_v1=false``) and direct calls: ``verl.trainer.ppo.ray_trainer.compute_advantage``
  gets a ``DataProto`` that already holds ``extra_info``; that module function is wrapped when verl imports
  the module, and for ``adv_estimator=ema_grpo`` (and no sample data provided one level up) hands the
  estimator the batch's ``non_tensor_batch``. Any other estimator goes straight to verl's function. The
  legacy trainer never pads its training batch; a batch that carries an ``is_padding`` column is honoured
  all the same.
"""

from collections.abc import Callable
from typing import Any

import numpy as np

from onethinker_verl.advantage.sample_data import EXTRA_INFO, IS_PADDING, current_sample_data, provide_sample_data
from onethinker_verl.glue.method_wrapping import wrap_attribute
from onethinker_verl.glue.padding import padding_mask
from onethinker_verl.glue.trajectory_fields import fetch_trajectory_fields

# Estimators that read each sample's task from the sample data.
ESTIMATORS_NEEDING_TASKS = frozenset({"ema_grpo"})


def provide_tasks_in_v1_advantage_step(trainer: Any) -> None:
    """Wrap ``trainer._compute_advantage`` (a v1 ``PPOTrainer``) so the estimator sees each row's task."""

    def make_wrapper(compute_advantage_step: Callable) -> Callable:
        def compute_advantage_step_with_tasks(batch, metrics):
            fetched = fetch_trajectory_fields(batch.keys, batch.partition_id, [EXTRA_INFO])
            extra_info = np.empty(len(batch.keys), dtype=object)
            extra_info[:] = fetched[EXTRA_INFO]
            sample_data = {EXTRA_INFO: extra_info, IS_PADDING: padding_mask(batch.tags)}
            with provide_sample_data(sample_data):
                return compute_advantage_step(batch, metrics)

        return compute_advantage_step_with_tasks

    wrap_attribute(trainer, "_compute_advantage", make_wrapper)


def provide_tasks_to_compute_advantage() -> None:
    """Wrap ``verl.trainer.ppo.ray_trainer.compute_advantage`` (the legacy trainer's advantage step, also
    called directly by tools and tests) so that ``ema_grpo`` sees the batch's ``non_tensor_batch``; every other
    estimator goes to verl's function unchanged."""
    from verl.trainer.ppo import ray_trainer

    def make_wrapper(compute_advantage: Callable) -> Callable:
        def compute_advantage_with_tasks(data, adv_estimator, *args, **kwargs):
            if adv_estimator not in ESTIMATORS_NEEDING_TASKS or current_sample_data() is not None:
                return compute_advantage(data, adv_estimator, *args, **kwargs)
            with provide_sample_data(data.non_tensor_batch):
                return compute_advantage(data, adv_estimator, *args, **kwargs)

        return compute_advantage_with_tasks

    wrap_attribute(ray_trainer, "compute_advantage", make_wrapper)
