"""Everything that depends on verl's internals, in one place: per-sample task identity for EMA-GRPO,
EMA-GRPO state in checkpoints, per-task metrics in the step metrics, and the online accuracy filter.

What it bridges (checked against verl 0.9.1):

* verl calls an advantage estimator with ``token_level_rewards``, ``response_mask``, ``config`` and the
  group ``index`` only; the per-sample ``non_tensor_batch`` (where ``extra_info`` carries the task) reaches
  just the built-in GDPO estimator. :func:`verl.trainer.ppo.ray_trainer.compute_advantage` is wrapped so
  that the batch's ``non_tensor_batch`` is available to the estimator through :func:`current_sample_data`
  for the duration of the call. This covers the legacy trainer (``trainer.use_v1=false``) and direct calls.
* The default v1 trainer (``trainer.use_v1=true``) fetches a fixed list of fields from TransferQueue for
  its advantage step, without ``extra_info``. ``PPOTrainer._compute_advantage`` is wrapped to also fetch
  each trajectory's ``extra_info`` (the agent loop stores the dataset row's fields with every trajectory)
  when the configured estimator needs it, and the reward manager's ``reward_extra_info`` for per-task reward
  metrics (the v1 trainer logs none during training).
* The v1 trainer's replay buffer (``algorithm.filter_groups``) drops groups whose metric is identical
  across the group. With ``algorithm.online_filter.enable`` its group classification is replaced by
  OneThinker's band rule (:mod:`onethinker_verl.online_filter`), its refills are counted against
  ``filter_groups.max_num_gen_batches`` (which verl's v1 buffer itself ignores), and ``sample`` reports
  per-step filter metrics. The legacy trainer has no group filtering: enabling the band there is an error.
* Optional per-group normalisation of model-scored open-ended rewards needs the whole group, which no
  reward manager sees: in the v1 advantage step the batch's ``rm_scores`` are rewritten first.
* Both trainers' ``_save_checkpoint`` / ``_load_checkpoint`` are wrapped to save and restore the EMA-GRPO
  moving moments in the ``global_step_N`` folder, and ``compute_data_metrics`` (which both trainers call
  once per step) is wrapped to add the estimator's per-task metrics to the step's metrics (and, in the
  legacy trainer, whose batch carries the reward columns, the per-task reward metrics).

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
from collections import Counter
from collections.abc import Mapping
from typing import Any, Callable, Optional

import numpy as np
import verl
from verl.trainer.ppo import ray_trainer
from verl.trainer.ppo.v1 import replay_buffer, trainer_base

from onethinker_verl.online_filter import OnlineFilterState, band_decision

logger = logging.getLogger(__name__)

CHECKED_VERL_VERSIONS = ("0.9.1",)
EMA_STATE_FILE = "onethinker_ema_grpo.json"
ONLINE_FILTER_ATTR = "_onethinker_online_filter"
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


def fetch_trajectory_fields(keys: list[str], partition_id: str, fields: list[str]) -> dict[str, list]:
    """Non-tensor fields of trajectories in TransferQueue, each as a list in the order of ``keys``."""
    import transfer_queue as tq

    try:
        fetched = tq.kv_batch_get(keys=keys, partition_id=partition_id, select_fields=fields)
        return {field: [getattr(v, "data", v) for v in fetched.pop(field).tolist()] for field in fields}
    except Exception as exc:
        raise RuntimeError(
            f"onethinker-verl: could not read {fields} of the batch's trajectories from TransferQueue ({exc!r}); "
            "the agent loop stores each dataset row's fields with its trajectories (ema_grpo needs extra_info "
            "with problem_type/data_type)"
        ) from exc


def reward_extra_info_columns(extra_fields: list) -> dict[str, list]:
    """Column-wise ``reward_extra_info`` of trajectories from their ``extra_fields`` dicts."""
    infos = [fields.get("reward_extra_info", {}) if isinstance(fields, dict) else {} for fields in extra_fields]
    keys = dict.fromkeys(key for info in infos for key in info)
    return {key: [info.get(key) for info in infos] for key in keys}


def normalize_model_scores_by_group(config: Any, keys: list[str], partition_id: str, columns: dict) -> dict:
    """With ``reward.reward_manager.model_scoring.normalize_by_group``, replace the model-scored open-ended
    rewards of the batch by their per-group normalised values, in TransferQueue's ``rm_scores`` (which the
    advantage step reads next); returns the updated reward columns. A reward manager sees one sample at a
    time, so this needs the whole batch and happens here."""
    import torch
    import transfer_queue as tq
    from tensordict import TensorDict

    from onethinker_verl.reward.model_scoring import MODEL_SCORE_KEY, apply_group_normalization

    manager = config.reward.reward_manager
    settings = manager.get("model_scoring", None)
    if not (settings and settings.get("enable", False) and settings.get("normalize_by_group", False)):
        return columns
    if MODEL_SCORE_KEY not in columns:
        raise RuntimeError("model_scoring.normalize_by_group is on but the rewards carry no model scores")
    scores, columns = apply_group_normalization(
        columns, [key.split("_")[0] for key in keys], float(manager.get("format_weight", 0.1))
    )
    old = tq.kv_batch_get(keys=keys, partition_id=partition_id, select_fields=["rm_scores"])["rm_scores"]
    new = []
    for row, score in zip(old.unbind(0), scores, strict=True):
        # verl puts a trajectory's reward on its last response token
        rewards = torch.zeros_like(row)
        rewards[-1] = score
        new.append(rewards)
    nested = torch.nested.as_nested_tensor(new, layout=torch.jagged)
    fields = TensorDict({"rm_scores": nested}, batch_size=len(keys))
    tq.kv_batch_put(keys=keys, partition_id=partition_id, fields=fields)
    return columns


def _v1_advantage_step_with_onethinker(compute_advantage_step: Callable) -> Callable:
    def compute_advantage_step_with_onethinker(self, batch, metrics):
        from onethinker_verl.reward.metrics import per_task_reward_metrics

        keys = list(batch.keys)
        needs_task = self.config.algorithm.adv_estimator in ESTIMATORS_NEEDING_SAMPLE_DATA
        fields = ["extra_fields", "extra_info"] if needs_task else ["extra_fields"]
        fetched = fetch_trajectory_fields(keys, batch.partition_id, fields)
        columns = reward_extra_info_columns(fetched["extra_fields"])
        columns = normalize_model_scores_by_group(self.config, keys, batch.partition_id, columns)
        # The v1 trainer logs no reward extra info during training; add the per-task reward parts here.
        metrics.update(per_task_reward_metrics(columns))
        if not needs_task:
            return compute_advantage_step(self, batch, metrics)
        extra_info = np.empty(len(keys), dtype=object)
        extra_info[:] = fetched["extra_info"]
        with provide_sample_data({"extra_info": extra_info}):
            return compute_advantage_step(self, batch, metrics)

    return compute_advantage_step_with_onethinker


def _with_onethinker_metrics(compute_data_metrics: Callable) -> Callable:
    def compute_data_metrics_with_onethinker(batch, *args, **kwargs):
        from onethinker_verl.advantage.ema_grpo import pop_step_metrics
        from onethinker_verl.reward.metrics import per_task_reward_metrics

        metrics = compute_data_metrics(batch, *args, **kwargs)
        # The legacy trainer keeps the reward manager's extra info as batch columns.
        metrics.update(per_task_reward_metrics(batch.non_tensor_batch))
        metrics.update(pop_step_metrics())
        return metrics

    return compute_data_metrics_with_onethinker


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


def _online_filter_settings(algorithm: Any) -> Optional[Mapping[str, Any]]:
    section = algorithm.get("online_filter", None)
    return section if section is not None and section.get("enable", False) else None


def attach_online_filter(buffer: Any, config: Any) -> Optional[OnlineFilterState]:
    """Give a v1 replay buffer OneThinker's band filter when ``algorithm.online_filter.enable`` is set."""
    band = _online_filter_settings(config.algorithm)
    if band is None:
        return None
    filter_groups = config.algorithm.get("filter_groups", None)
    if filter_groups is None or not filter_groups.get("enable", False):
        raise ValueError(
            "algorithm.online_filter.enable=true needs algorithm.filter_groups.enable=true (with metric=accuracy): "
            "verl's group filtering is what replaces dropped groups with fresh prompts"
        )
    if not isinstance(buffer, replay_buffer.ReplayBuffer) or buffer.filter_groups_metric is None:
        raise ValueError(
            "algorithm.online_filter works with verl's built-in v1 replay buffer; a custom sampler "
            "(trainer.v1.sampler.custom_sampler) must implement its own filtering"
        )
    state = OnlineFilterState(
        metric=buffer.filter_groups_metric,
        low=float(band.get("low")),
        high=float(band.get("high")),
        max_gen_batches=int(filter_groups.get("max_num_gen_batches", 0) or 0),
        train_batch_size=int(config.data.train_batch_size),
    )
    refill = buffer.refill_fn

    def counted_refill(prompts: int):
        state.charge_refill(prompts)
        return refill(prompts)

    buffer.refill_fn = counted_refill
    setattr(buffer, ONLINE_FILTER_ATTR, state)
    logger.info(
        "onethinker-verl: online filter keeps groups with %s < mean %s < %s, at most %s generation batches per step "
        "(algorithm.filter_groups.max_num_gen_batches, enforced here)",
        state.low,
        state.metric,
        state.high,
        state.max_gen_batches if state.max_gen_batches > 0 else "unlimited",
    )
    return state


def _build_replay_buffer_with_online_filter(build_replay_buffer: Callable) -> Callable:
    def build_replay_buffer_with_online_filter(self):
        buffer = build_replay_buffer(self)
        attach_online_filter(buffer, self.config)
        return buffer

    return build_replay_buffer_with_online_filter


def fetch_group_metric(keys: list[str], partition_id: str, metric: str) -> dict[str, list[float]]:
    """``reward_extra_info[metric]`` of each trajectory in TransferQueue, grouped by prompt uid."""
    import transfer_queue as tq

    values_by_uid: dict[str, list[float]] = {}
    if not keys:
        return values_by_uid
    data = tq.kv_batch_get(keys=keys, partition_id=partition_id, select_fields=["extra_fields"])
    for key, extra_fields in zip(keys, list(data["extra_fields"]), strict=True):
        extra_fields = getattr(extra_fields, "data", extra_fields)
        reward_extra_info = extra_fields.get("reward_extra_info", {}) if isinstance(extra_fields, dict) else {}
        if metric not in reward_extra_info:
            raise RuntimeError(
                f"online filter: trajectory {key} has no {metric!r} in its reward_extra_info "
                f"(keys: {sorted(reward_extra_info)}); use reward.reward_manager.name=onethinker or set "
                "algorithm.filter_groups.metric to a key the reward manager reports"
            )
        values_by_uid.setdefault(key.split("_")[0], []).append(float(reward_extra_info[metric]))
    return values_by_uid


def _band_filtered_keys(dapo_filtered_keys: Callable) -> Callable:
    def band_filtered_keys(self, partition_id):
        state = getattr(self, ONLINE_FILTER_ATTR, None)
        if state is None or partition_id == "val":
            return dapo_filtered_keys(self, partition_id)
        finished = self.finished_keys[partition_id]
        decisions = state.decisions.setdefault(partition_id, {})
        for uid in decisions.keys() - finished:
            del decisions[uid]
        new_uids = finished - decisions.keys()
        # Trajectory keys are {uid}_{session}_{index}; verl splits them the same way.
        keys = [key for key in self.partitions[partition_id] if key.split("_")[0] in new_uids]
        values_by_uid = fetch_group_metric(keys, partition_id, state.metric)
        for uid in new_uids:
            values = values_by_uid.get(uid)
            if not values:
                raise RuntimeError(f"online filter: finished prompt group {uid} has no trajectories to classify")
            decision = band_decision(values, state.low, state.high)
            decisions[uid] = (decision, round(float(np.mean(values)), 4))
            state.record_decision(decision)
        dropped = {uid: mean for uid, (decision, mean) in decisions.items() if decision is not None}
        # verl's DAPO diagnostics table expects {metric value: group count}.
        return set(dropped), Counter(dropped.values())

    return band_filtered_keys


def _sample_with_filter_metrics(sample: Callable) -> Callable:
    def sample_with_filter_metrics(self, global_steps, partition_id, batch_size, *args, **kwargs):
        state = getattr(self, ONLINE_FILTER_ATTR, None)
        if state is None or partition_id == "val":
            return sample(self, global_steps, partition_id, batch_size, *args, **kwargs)
        state.start_step()
        batch, metrics = sample(self, global_steps, partition_id, batch_size, *args, **kwargs)
        kept_groups = len({key.split("_")[0] for key in batch.keys})
        metrics.update(state.step_metrics(kept_groups))
        return batch, metrics

    return sample_with_filter_metrics


def _refuse_online_filter_in_legacy_trainer(fit: Callable) -> Callable:
    def fit_without_online_filter(self, *args, **kwargs):
        if _online_filter_settings(self.config.algorithm) is not None:
            raise ValueError(
                "algorithm.online_filter is implemented for verl's v1 trainer (trainer.use_v1=true, the default); "
                "the legacy trainer (trainer.use_v1=false) has no group filtering. Set "
                "algorithm.online_filter.enable=false or use the v1 trainer."
            )
        return fit(self, *args, **kwargs)

    return fit_without_online_filter


def install() -> None:
    """Apply every patch (idempotent). Raises if verl lacks something the glue needs."""
    if verl.__version__ not in CHECKED_VERL_VERSIONS:
        logger.warning(
            "onethinker-verl glue was checked against verl %s, found %s",
            ", ".join(CHECKED_VERL_VERSIONS),
            verl.__version__,
        )
    _replace(ray_trainer, "compute_advantage", _with_sample_data)
    _replace(trainer_base.PPOTrainer, "_compute_advantage", _v1_advantage_step_with_onethinker)
    for module in (ray_trainer, trainer_base):
        _replace(module, "compute_data_metrics", _with_onethinker_metrics)
    for trainer_cls in (ray_trainer.RayPPOTrainer, trainer_base.PPOTrainer):
        _replace(trainer_cls, "_save_checkpoint", _save_with_estimator_state)
        _replace(trainer_cls, "_load_checkpoint", _load_with_estimator_state)
    _replace(trainer_base.PPOTrainer, "_build_replay_buffer", _build_replay_buffer_with_online_filter)
    _replace(replay_buffer.ReplayBuffer, "_dapo_filtered_keys", _band_filtered_keys)
    for buffer_cls in (replay_buffer.ReplayBuffer, replay_buffer.ReplayBufferAsync):
        if "sample" in vars(buffer_cls):
            _replace(buffer_cls, "sample", _sample_with_filter_metrics)
    _replace(ray_trainer.RayPPOTrainer, "fit", _refuse_online_filter_in_legacy_trainer)


install()
