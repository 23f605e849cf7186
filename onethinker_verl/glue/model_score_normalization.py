"""Per-group normalisation of model-scored open-ended rewards (``reward.reward_manager.model_scoring.
normalize_by_group``), before verl 0.9.1's v1 advantage step.

A reward manager scores one sample at a time, so normalising a group's model scores needs the whole batch;
verl offers no hook between scoring and the advantage computation. ``PPOTrainer._compute_advantage`` of one
trainer object is wrapped to rewrite, first, each real (non-padding) trajectory's ``rm_scores`` (which the
advantage step reads next) and its ``reward_extra_info`` (which the per-task metrics read) in TransferQueue.
"""

from collections.abc import Callable
from typing import Any

import numpy as np

from onethinker_verl.glue.method_wrapping import wrap_attribute
from onethinker_verl.glue.padding import padding_mask
from onethinker_verl.glue.trajectory_fields import fetch_trajectory_fields, reward_extra_info_of
from onethinker_verl.reward.metrics import reward_extra_info_columns


def normalization_requested(config: Any) -> bool:
    """Whether the ``onethinker`` manager's model scoring asks for per-group normalisation."""
    manager = config.reward.reward_manager
    settings = manager.get("model_scoring", None)
    return bool(settings and settings.get("enable", False) and settings.get("normalize_by_group", False))


def normalize_model_scores_in_v1_advantage_step(trainer: Any) -> None:
    """Wrap ``trainer._compute_advantage`` (a v1 ``PPOTrainer``) to normalise model scores per group first."""
    format_weight = float(trainer.config.reward.reward_manager.get("format_weight", 0.1))

    def make_wrapper(compute_advantage_step: Callable) -> Callable:
        def compute_advantage_step_with_normalized_scores(batch, metrics):
            real = np.flatnonzero(~padding_mask(batch.tags))
            keys = [batch.keys[i] for i in real]
            if keys:
                rewrite_model_scores(keys, batch.partition_id, format_weight)
            return compute_advantage_step(batch, metrics)

        return compute_advantage_step_with_normalized_scores

    wrap_attribute(trainer, "_compute_advantage", make_wrapper)


def rewrite_model_scores(keys: list[str], partition_id: str, format_weight: float) -> None:
    """Replace the model-scored rewards of these trajectories by their per-group normalised values, in
    TransferQueue's ``rm_scores`` and ``extra_fields``. Trajectory keys are ``{uid}_{session}_{index}``."""
    import torch
    import transfer_queue as tq
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    from onethinker_verl.reward.model_scoring import MODEL_SCORE_KEY, apply_group_normalization

    fetched = fetch_trajectory_fields(keys, partition_id, ["extra_fields"])
    infos = [reward_extra_info_of(fields) for fields in fetched["extra_fields"]]
    columns = reward_extra_info_columns(infos)
    if MODEL_SCORE_KEY not in columns:
        raise RuntimeError("model_scoring.normalize_by_group is on but the rewards carry no model scores")
    scores, columns = apply_group_normalization(columns, [key.split("_")[0] for key in keys], format_weight)
    old = tq.kv_batch_get(keys=keys, partition_id=partition_id, select_fields=["rm_scores"])["rm_scores"]
    rows = []
    for i, (row, score) in enumerate(zip(old.unbind(0), scores, strict=True)):
        rewards = torch.zeros_like(row)
        rewards[-1] = score  # verl puts a trajectory's reward on its last response token
        extra_fields = dict(getattr(fetched["extra_fields"][i], "data", fetched["extra_fields"][i]))
        extra_fields["reward_extra_info"] = {key: values[i] for key, values in columns.items()}
        rows.append({"rm_scores": rewards, "extra_fields": extra_fields})
    tq.kv_batch_put(keys=keys, partition_id=partition_id, fields=list_of_dict_to_tensordict(rows))
