"""Everything that depends on verl's internals, in one place: per-sample task identity for EMA-GRPO,
EMA-GRPO state in checkpoints, and its per-task metrics in the step metrics.

What it bridges (checked against verl 0.9.1):

* verl calls an advantage estimator with ``token_level_rewards``, ``response_mask``, ``config`` and the
  group ``index`` only; the per-sample ``non_tensor_batch`` (where ``extra_info`` carries the task) reaches
  just the built-in GDPO estimator. :func:`verl.trainer.ppo.ray_trainer.compute_advantage` is wrapped so
  that the batch's ``non_tensor_batch`` is available to the estimator through :func:`current_sample_data`
  for the duration of the call. This covers the legacy trainer (``trainer.use_v1=false``) and direct calls.
* The default v1 trainer (``trainer.use_v1=true``) fetches a fixed list of fields from TransferQueue for
  its advantage step, without ``extra_info``. ``PPOTrainer._compute_advantage`` is wrapped to also fetch
  each trajectory's ``extra_info`` (the agent loop stores the dataset row's fields with every trajectory)
  when the configured estimator needs it.
* Both trainers' ``_save_checkpoint`` / ``_load_checkpoint`` are wrapped to save and restore the EMA-GRPO
  moving moments in the ``global_step_N`` folder, and ``compute_data_metrics`` (which both trainers call
  once per step) is wrapped to add the estimator's per-task metrics to the step's metrics.

When verl passes per-sample data to every estimator that accepts it (upstream PR verl-project/verl#7473),
the estimator uses the ``non_tensor_batch`` argument it is given and the sample-data context becomes a
no-op. If a patched attribute is missing (another verl version), importing this module raises with the
attribute's name, and the plugin logs that failure as a WARNING.
"""

import contextlib
import contextvars
import functools
import json
import logging
import os
from collections.abc import Mapping
from typing import Any, Callable, Optional

import numpy as np
import verl
from verl.trainer.ppo import ray_trainer
from verl.trainer.ppo.v1 import trainer_base

logger = logging.getLogger(__name__)

CHECKED_VERL_VERSIONS = ("0.9.1",)
EMA_STATE_FILE = "onethinker_ema_grpo.json"
# Estimators whose inputs must include each sample's extra_info.
ESTIMATORS_NEEDING_SAMPLE_DATA = frozenset({"ema_grpo"})

_sample_data: contextvars.ContextVar[Optional[Mapping[str, Any]]] = contextvars.ContextVar(
    "onethinker_sample_data", default=None
)


def current_sample_data() -> Optional[Mapping[str, Any]]:
    """The per-sample (non-tensor) data of the batch whose advantages are being computed, if any."""
    return _sample_data.get()


@contextlib.contextmanager
def provide_sample_data(sample_data: Mapping[str, Any]):
    """Make ``sample_data`` (e.g. ``{"extra_info": array of dicts}``) visible to estimators in this block."""
    token = _sample_data.set(sample_data)
    try:
        yield
    finally:
        _sample_data.reset(token)


def _replace(owner: Any, name: str, make_wrapper: Callable[[Callable], Callable]) -> None:
    """Replace ``owner.name`` by ``make_wrapper(original)`` once (re-imports must not wrap twice)."""
    if not hasattr(owner, name):
        raise RuntimeError(
            f"onethinker-verl glue: {owner.__name__}.{name} not found in verl {verl.__version__}; "
            f"the glue was checked against verl {', '.join(CHECKED_VERL_VERSIONS)}"
        )
    original = getattr(owner, name)
    if getattr(original, "__onethinker_wrapped__", False):
        return
    wrapper = functools.wraps(original)(make_wrapper(original))
    wrapper.__onethinker_wrapped__ = True
    setattr(owner, name, wrapper)


def _with_sample_data(compute_advantage: Callable) -> Callable:
    def compute_advantage_with_sample_data(data, *args, **kwargs):
        if "extra_info" not in data.non_tensor_batch:
            # The v1 trainer's DataProto carries only uid; its sample data was provided one level up.
            return compute_advantage(data, *args, **kwargs)
        with provide_sample_data(data.non_tensor_batch):
            return compute_advantage(data, *args, **kwargs)

    return compute_advantage_with_sample_data


def fetch_trajectory_extra_info(keys: list[str], partition_id: str) -> np.ndarray:
    """Each trajectory's ``extra_info`` from TransferQueue, in the order of ``keys``."""
    import transfer_queue as tq

    try:
        fetched = tq.kv_batch_get(keys=keys, partition_id=partition_id, select_fields=["extra_info"])
        values = fetched.pop("extra_info").tolist()
    except Exception as exc:
        raise RuntimeError(
            "onethinker-verl: could not read the trajectories' extra_info from TransferQueue for the "
            f"advantage step ({exc!r}); ema_grpo needs problem_type/data_type in every dataset row's extra_info"
        ) from exc
    extra_info = np.empty(len(values), dtype=object)
    extra_info[:] = values
    return extra_info


def _v1_advantage_with_sample_data(compute_advantage_step: Callable) -> Callable:
    def compute_advantage_step_with_sample_data(self, batch, metrics):
        if self.config.algorithm.adv_estimator not in ESTIMATORS_NEEDING_SAMPLE_DATA:
            return compute_advantage_step(self, batch, metrics)
        extra_info = fetch_trajectory_extra_info(list(batch.keys), batch.partition_id)
        with provide_sample_data({"extra_info": extra_info}):
            return compute_advantage_step(self, batch, metrics)

    return compute_advantage_step_with_sample_data


def _with_estimator_metrics(compute_data_metrics: Callable) -> Callable:
    def compute_data_metrics_with_estimator(*args, **kwargs):
        from onethinker_verl.advantage.ema_grpo import pop_step_metrics

        metrics = compute_data_metrics(*args, **kwargs)
        metrics.update(pop_step_metrics())
        return metrics

    return compute_data_metrics_with_estimator


def checkpoint_step_folder(trainer_config: Any, global_steps: int) -> str:
    """The ``global_step_N`` folder verl writes for step ``global_steps`` (relative dirs are taken from cwd)."""
    return os.path.join(os.path.abspath(trainer_config.default_local_dir), f"global_step_{global_steps}")


def save_estimator_state(step_folder: str) -> None:
    """Write the EMA-GRPO moving moments into a checkpoint's ``global_step_N`` folder."""
    from onethinker_verl.advantage.ema_grpo import TASK_MOMENTS

    os.makedirs(step_folder, exist_ok=True)
    path = os.path.join(step_folder, EMA_STATE_FILE)
    # JSON round-trips Python floats exactly (shortest repr), so a resumed run continues bit for bit.
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump({"task_moments": TASK_MOMENTS.state_dict()}, handle)
    os.replace(path + ".tmp", path)


def load_estimator_state(step_folder: str, required: bool) -> bool:
    """Restore the EMA-GRPO moving moments from a ``global_step_N`` folder; True if a state was found."""
    from onethinker_verl.advantage.ema_grpo import TASK_MOMENTS

    path = os.path.join(step_folder, EMA_STATE_FILE)
    if not os.path.exists(path):
        if required:
            logger.warning(
                "onethinker-verl: resuming from %s without %s: the EMA-GRPO moments restart from the next batch",
                step_folder,
                EMA_STATE_FILE,
            )
        return False
    with open(path, encoding="utf-8") as handle:
        TASK_MOMENTS.load_state_dict(json.load(handle)["task_moments"])
    logger.info("onethinker-verl: restored EMA-GRPO moments of %d tasks from %s", len(TASK_MOMENTS.keys()), path)
    return True


def _resumed_step_folder(trainer_config: Any, global_steps: int) -> str:
    if trainer_config.resume_mode == "resume_path":
        return os.path.abspath(trainer_config.resume_from_path)
    return checkpoint_step_folder(trainer_config, global_steps)


def _save_with_estimator_state(save_checkpoint: Callable) -> Callable:
    def save_checkpoint_with_estimator_state(self, *args, **kwargs):
        result = save_checkpoint(self, *args, **kwargs)
        save_estimator_state(checkpoint_step_folder(self.config.trainer, self.global_steps))
        return result

    return save_checkpoint_with_estimator_state


def _load_with_estimator_state(load_checkpoint: Callable) -> Callable:
    def load_checkpoint_with_estimator_state(self, *args, **kwargs):
        result = load_checkpoint(self, *args, **kwargs)
        if self.config.trainer.resume_mode != "disable" and getattr(self, "global_steps", 0) > 0:
            needed = self.config.algorithm.adv_estimator in ESTIMATORS_NEEDING_SAMPLE_DATA
            load_estimator_state(_resumed_step_folder(self.config.trainer, self.global_steps), required=needed)
        return result

    return load_checkpoint_with_estimator_state


def install() -> None:
    """Apply every patch (idempotent). Raises if verl lacks something the glue needs."""
    if verl.__version__ not in CHECKED_VERL_VERSIONS:
        logger.warning(
            "onethinker-verl glue was checked against verl %s, found %s",
            ", ".join(CHECKED_VERL_VERSIONS),
            verl.__version__,
        )
    _replace(ray_trainer, "compute_advantage", _with_sample_data)
    _replace(trainer_base.PPOTrainer, "_compute_advantage", _v1_advantage_with_sample_data)
    for module in (ray_trainer, trainer_base):
        _replace(module, "compute_data_metrics", _with_estimator_metrics)
    for trainer_cls in (ray_trainer.RayPPOTrainer, trainer_base.PPOTrainer):
        _replace(trainer_cls, "_save_checkpoint", _save_with_estimator_state)
        _replace(trainer_cls, "_load_checkpoint", _load_with_estimator_state)


install()
