"""Reading trajectory fields from TransferQueue that verl 0.9.1's v1 trainer does not fetch itself.

``PPOTrainer._compute_advantage`` reads a fixed list of tensor fields (``uid``, ``response_mask``,
``rm_scores``, log-probs, values). The agent loop also stores each dataset row's fields with every
trajectory (``extra_info``, which names the task) and ``extra_fields["reward_extra_info"]`` (the reward
manager's parts); the glue reads those here, once per step and only when the trainer's config needs them.
"""

from collections.abc import Sequence


def fetch_trajectory_fields(keys: Sequence[str], partition_id: str, fields: list[str]) -> dict[str, list]:
    """Non-tensor fields of trajectories in TransferQueue, each as a list in the order of ``keys``."""
    import transfer_queue as tq

    try:
        fetched = tq.kv_batch_get(keys=list(keys), partition_id=partition_id, select_fields=fields)
        return {field: [getattr(v, "data", v) for v in fetched.pop(field).tolist()] for field in fields}
    except Exception as exc:
        raise RuntimeError(
            f"onethinker-verl: could not read {fields} of the batch's trajectories from TransferQueue ({exc!r}); "
            "verl's agent loop stores each dataset row's fields (extra_info with problem_type/data_type, needed by "
            "ema_grpo) and extra_fields (the reward manager's reward_extra_info) with every trajectory"
        ) from exc


def reward_extra_info_of(extra_fields) -> dict:
    """The reward manager's ``reward_extra_info`` of one trajectory, from its ``extra_fields``."""
    extra_fields = getattr(extra_fields, "data", extra_fields)
    return extra_fields.get("reward_extra_info", {}) if isinstance(extra_fields, dict) else {}

