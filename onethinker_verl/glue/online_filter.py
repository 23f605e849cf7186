"""OneThinker's accuracy-band group filter inside verl 0.9.1's v1 replay buffer.

verl's v1 ``ReplayBuffer`` (``algorithm.filter_groups``) evicts finished groups whose metric is identical
across the group (``ReplayBuffer._dapo_filtered_keys``) and refills them. With
``algorithm.online_filter.enable`` the replay buffer of one trainer object gets, in place of that method,
OneThinker's band rule (:mod:`onethinker_verl.online_filter`): a group is evicted unless
``low < mean(metric) < high``. Unlike verl's rule it also checks the groups with failed sessions (over the
trajectories that did finish); it enforces ``filter_groups.max_num_gen_batches`` (verl's v1 buffer ignores
it), charging one generation batch per ``train_batch_size`` replaced groups as the reference does; and its
``sample`` reports per-step metrics: kept/dropped/failed group counts (overall and per task) and the
per-task reward metrics over every scored group, kept and dropped. The legacy trainer has no group
filtering: the start-up check refuses the band there, and building a legacy trainer with it is an error.

verl's ``PPOTrainer._build_replay_buffer`` (through ``_resolve_filter_groups_metric``) warns that
``max_num_gen_batches`` "is ignored by the built-in V1 ReplayBuffer". For a buffer the band filter is attached
to that is wrong: :func:`verl_budget_warning_withheld` holds back that one record while such a buffer is
built (every other record passes), and :func:`attach_online_filter` says at WARNING, once per process, that
the budget is enforced.
"""

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Optional

from onethinker_verl.glue.method_wrapping import wrap_attribute
from onethinker_verl.glue.trajectory_fields import fetch_trajectory_fields, reward_extra_info_of
from onethinker_verl.online_filter import GroupDecision, OnlineFilterState, band_decision, group_mean

logger = logging.getLogger(__name__)

VALIDATION_PARTITION = "val"
# The filter state of a replay buffer that has the band filter.
ONLINE_FILTER_ATTR = "_onethinker_online_filter"
# verl 0.9.1's warning (verl.trainer.ppo.v1.trainer_base, PPOTrainer._resolve_filter_groups_metric) that the
# built-in V1 ReplayBuffer does not bound generation batches; the band filter does.
VERL_TRAINER_LOGGER = "verl.trainer.ppo.v1.trainer_base"
VERL_BUDGET_IGNORED_MESSAGE = (
    "algorithm.filter_groups.max_num_gen_batches=%s is ignored by the built-in V1 ReplayBuffer"
)
# Whether this process has announced the enforced budget (one run per process: the trainer's).
_budget_announced = False


def _is_verl_budget_ignored_record(record: logging.LogRecord) -> bool:
    return isinstance(record.msg, str) and record.msg.startswith(VERL_BUDGET_IGNORED_MESSAGE)


@contextmanager
def verl_budget_warning_withheld() -> Iterator[None]:
    """While verl builds a replay buffer that gets the band filter, drop verl's record saying
    ``max_num_gen_batches`` is ignored (only that record; should verl reword it, it is printed and
    :func:`attach_online_filter`'s WARNING follows it)."""
    verl_logger = logging.getLogger(VERL_TRAINER_LOGGER)

    def keep(record: logging.LogRecord) -> bool:
        return not _is_verl_budget_ignored_record(record)

    verl_logger.addFilter(keep)
    try:
        yield
    finally:
        verl_logger.removeFilter(keep)


def online_filter_settings(algorithm: Any) -> Optional[Any]:
    """``algorithm.online_filter`` when it is enabled, else None."""
    section = algorithm.get("online_filter", None)
    return section if section is not None and section.get("enable", False) else None


def attach_online_filter(buffer: Any, config: Any) -> OnlineFilterState:
    """Give this v1 replay buffer OneThinker's band filter (``algorithm.online_filter`` must be enabled);
    a buffer that already has it keeps its state."""
    from verl.trainer.ppo.v1 import replay_buffer

    attached = getattr(buffer, ONLINE_FILTER_ATTR, None)
    if attached is not None:
        return attached

    band = online_filter_settings(config.algorithm)
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
    replaces_failed_groups = isinstance(buffer, replay_buffer.ReplayBufferAsync) or buffer.sync_refill_failed_groups
    batch_size_of_step = {"value": state.train_batch_size}

    def make_filtered_keys(dapo_filtered_keys: Callable) -> Callable:
        def band_filtered_keys(partition_id):
            if partition_id == VALIDATION_PARTITION:
                return dapo_filtered_keys(partition_id)
            dropped = decide_new_groups(buffer, state, partition_id, replaces_failed_groups)
            decisions = state.decisions[partition_id]
            terminal = buffer.finished_keys[partition_id] | buffer.failure_keys[partition_id]
            lost = state.empty_failed[partition_id] if replaces_failed_groups else set()
            state.check_budget(len(terminal - dropped.keys() - lost), batch_size_of_step["value"])
            # verl's filtered-reward table expects {metric value: group count}.
            return set(dropped), Counter(round(decisions[uid].mean, 4) for uid in dropped)

        return band_filtered_keys

    def make_sample(sample: Callable) -> Callable:
        def sample_with_online_filter(global_steps, partition_id, batch_size, *args, **kwargs):
            if partition_id == VALIDATION_PARTITION:
                return sample(global_steps, partition_id, batch_size, *args, **kwargs)
            state.start_step()
            batch_size_of_step["value"] = batch_size
            batch, metrics = sample(global_steps, partition_id, batch_size, *args, **kwargs)
            decisions = state.decisions.get(partition_id, {})
            kept = {key.split("_")[0] for key in batch.keys}
            metrics.update(state.pop_step_metrics([decisions[uid].task for uid in kept if uid in decisions]))
            return batch, metrics

        return sample_with_online_filter

    def make_refill(refill: Callable) -> Callable:
        def refill_counted(num_prompts):
            state.prompts_dispatched += num_prompts
            return refill(num_prompts)

        return refill_counted

    wrap_attribute(buffer, "_dapo_filtered_keys", make_filtered_keys)
    wrap_attribute(buffer, "sample", make_sample)
    wrap_attribute(buffer, "refill_fn", make_refill)
    setattr(buffer, ONLINE_FILTER_ATTR, state)
    logger.info(
        "onethinker-verl: online filter keeps groups with %s < mean %s < %s, at most %s generation batches per step",
        state.low,
        state.metric,
        state.high,
        state.max_gen_batches if state.max_gen_batches > 0 else "unlimited",
    )
    _announce_budget(state.max_gen_batches)
    return state


def _announce_budget(max_gen_batches: int) -> None:
    """Say once per process, at WARNING (shown by default), that the generation-batch budget is enforced."""
    global _budget_announced
    if max_gen_batches <= 0 or _budget_announced:
        return
    _budget_announced = True
    logger.warning(
        "onethinker-verl: algorithm.filter_groups.max_num_gen_batches=%d is enforced by the onethinker online "
        "filter: a training step that cannot fill its batch within %d generation batches fails (verl's built-in "
        "V1 ReplayBuffer alone would ignore the setting)",
        max_gen_batches,
        max_gen_batches,
    )


def decide_new_groups(buffer: Any, state: OnlineFilterState, partition_id: str, replaces_failed: bool) -> dict:
    """Classify the terminal groups of ``partition_id`` not decided yet (one TransferQueue read); return
    ``{uid: decision}`` of every decided group that is dropped."""
    decisions = state.decisions.setdefault(partition_id, {})
    empty_failed = state.empty_failed.setdefault(partition_id, set())
    finished, failed = buffer.finished_keys[partition_id], buffer.failure_keys[partition_id]
    terminal = finished | failed
    for uid in decisions.keys() - terminal:  # evicted or trained on: forget
        del decisions[uid]
    empty_failed &= terminal
    new = terminal - decisions.keys() - empty_failed
    # Trajectory keys are {uid}_{session}_{index}; verl splits them the same way.
    keys = [key for key in buffer.partitions[partition_id] if key.split("_")[0] in new]
    infos_by_uid: dict[str, list[dict]] = {}
    if keys:
        fetched = fetch_trajectory_fields(keys, partition_id, ["extra_fields"])
        for key, extra_fields in zip(keys, fetched["extra_fields"], strict=True):
            info = reward_extra_info_of(extra_fields)
            if state.metric not in info:
                raise RuntimeError(
                    f"online filter: trajectory {key} has no {state.metric!r} in its reward_extra_info "
                    f"(keys: {sorted(info)}); use reward.reward_manager.name=onethinker or set "
                    "algorithm.filter_groups.metric to a key the reward manager reports"
                )
            infos_by_uid.setdefault(key.split("_")[0], []).append(info)
    for uid in new:
        infos = infos_by_uid.get(uid)
        if not infos:
            if uid in failed:  # every session failed: nothing to score
                empty_failed.add(uid)
                state.record_empty_failed_group(replaced=replaces_failed)
                continue
            raise RuntimeError(f"online filter: finished prompt group {uid} has no trajectories to classify")
        mean = group_mean([float(info[state.metric]) for info in infos])
        group = GroupDecision(
            dropped=band_decision(mean, state.low, state.high),
            mean=mean,
            task=str(infos[0].get("task", "unknown")),
            failed=uid in failed,
        )
        decisions[uid] = group
        state.record_group(group, infos)
    return {uid: group for uid, group in decisions.items() if group.dropped is not None}
