"""The ``ema_grpo`` advantage estimator, registered with verl's advantage-estimator registry.

Plain GRPO divides each group's centred rewards by that group's own standard deviation, which blows up
groups whose rewards barely differ; dropping the division lets tasks with wide reward spreads dominate.
EMA-GRPO divides by a per-task standard deviation tracked as an exponential moving average across steps
(OneThinker, arXiv 2512.03043). The task of a sample comes from its ``extra_info`` (``problem_type`` and
``data_type``), which verl 0.9.1 does not hand to estimators: :mod:`onethinker_verl.verl_glue` supplies it.
"""

import threading
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np
import torch
from verl.trainer.ppo.core_algos import register_adv_est

from onethinker_verl import verl_glue
from onethinker_verl.advantage.config import EmaGrpoConfig
from onethinker_verl.advantage.task_moments import TaskMoments

ESTIMATOR_NAME = "ema_grpo"

# One set of moving moments per process: the estimator runs in the trainer's driver process, once per step.
TASK_MOMENTS = TaskMoments()

_pending_metrics: dict[str, float] = {}
_metrics_lock = threading.Lock()


def task_key(problem_type: str, data_type: Optional[str]) -> str:
    """The moment-tracking key of a sample: its problem type, with segmentation split by modality."""
    if problem_type == "segmentation":
        modality = str(data_type).lower() if data_type is not None else ""
        if modality in ("image", "video"):
            return f"segmentation/{modality}"
    return problem_type


def task_keys_from_extra_info(extra_infos: Sequence[Any]) -> list[str]:
    """Task keys of a batch from each sample's ``extra_info`` dict; a row without ``problem_type`` is an error."""
    keys = []
    for row, info in enumerate(extra_infos):
        # `type(...) is dict` first: the Mapping ABC check costs about 1 us a sample.
        problem_type = info.get("problem_type") if type(info) is dict or isinstance(info, Mapping) else None
        if not isinstance(problem_type, str) or not problem_type:
            raise ValueError(
                f"ema_grpo: sample {row} has no 'problem_type' in its extra_info (got {info!r}); EMA-GRPO needs "
                "every sample's task. Prepare data with data_prep/prepare_rl.py or the onethinker dataset class, "
                "which put problem_type and data_type into extra_info."
            )
        keys.append(task_key(problem_type, info.get("data_type")) if problem_type == "segmentation" else problem_type)
    return keys


def ema_grpo_config(config: Any) -> EmaGrpoConfig:
    """The estimator's hyperparameters from ``algorithm.ema_grpo`` (dataclass, DictConfig or dict), or defaults."""
    section = None if config is None else config.get("ema_grpo", None)
    if section is None:
        return EmaGrpoConfig()
    if isinstance(section, EmaGrpoConfig):
        return section
    return EmaGrpoConfig(**{key: value for key, value in section.items() if key != "_target_"})


def pop_step_metrics() -> dict[str, float]:
    """Metrics of the latest estimator call(s) not yet logged; the trainer glue adds them to the step's metrics."""
    with _metrics_lock:
        metrics = dict(_pending_metrics)
        _pending_metrics.clear()
    return metrics


def _factorize(values: Sequence[Any]) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Distinct values in first-seen order, the code of each value, and the count of each code.

    Hash-based: ``np.unique`` sorts the Python objects (uuid strings), several times slower at 8,192 samples.
    """
    codes: dict[Any, int] = {}
    inverse = np.fromiter((codes.setdefault(value, len(codes)) for value in values), dtype=np.intp, count=len(values))
    return list(codes), inverse, np.bincount(inverse, minlength=len(codes))


def ema_grpo_advantages(
    scores: np.ndarray,
    group_ids: Sequence[Any],
    task_keys: Sequence[str],
    moments: TaskMoments,
    cfg: EmaGrpoConfig,
) -> tuple[np.ndarray, dict[str, float]]:
    """EMA-GRPO advantages of one batch, updating ``moments`` first.

    Args:
        scores: (B,) float64 outcome score per sample.
        group_ids: (B,) prompt-group id per sample (any hashable values).
        task_keys: B task keys.
        moments: the per-task moving moments, updated in place.
        cfg: hyperparameters.

    Returns:
        (B,) float64 advantage per sample, and per-task metrics of this step.
    """
    groups, group_of, group_size = _factorize(group_ids)
    if (group_size < 2).any():
        small = [groups[i] for i in np.flatnonzero(group_size < 2)[:5]]
        raise ValueError(
            f"ema_grpo: every prompt group needs at least 2 samples (rollout.n >= 2); groups {small} have 1"
        )
    task_names, task_of, task_size = _factorize(task_keys)

    # Moments are updated before scaling: this step's std already includes this step's scores.
    batch_m1 = np.bincount(task_of, weights=scores) / task_size
    batch_m2 = np.bincount(task_of, weights=scores * scores) / task_size
    moments.update(task_names, batch_m1, batch_m2, cfg.decay)
    task_std = np.array([moments.std(name, cfg.min_std) for name in task_names])

    group_mean = np.bincount(group_of, weights=scores) / group_size
    centred = scores - group_mean[group_of] if cfg.center else scores
    advantages = centred / (task_std[task_of] + cfg.eps)

    # The guard rail acts per group of a task (a group normally holds one task).
    _, unit_of, unit_size = np.unique(group_of * len(task_names) + task_of, return_inverse=True, return_counts=True)
    unit_mean = np.bincount(unit_of, weights=scores) / unit_size
    unit_std = np.sqrt(np.bincount(unit_of, weights=(scores - unit_mean[unit_of]) ** 2) / unit_size)
    unit_fell_back = np.bincount(unit_of, weights=np.abs(advantages) > cfg.guard) > 0
    fell_back = unit_fell_back[unit_of]
    advantages = np.where(fell_back, centred / (unit_std[unit_of] + cfg.eps), advantages)

    unit_task = np.zeros(len(unit_size), dtype=np.int64)
    unit_task[unit_of] = task_of
    metrics = {"ema_grpo/guard_fallback_frac": float(unit_fell_back.mean())}
    for index, name in enumerate(task_names):
        metrics[f"ema_grpo/moving_mean/{name}"] = moments.mean(name)
        metrics[f"ema_grpo/moving_std/{name}"] = float(task_std[index])
        metrics[f"ema_grpo/guard_fallback_frac/{name}"] = float(unit_fell_back[unit_task == index].mean())
    return advantages, metrics


_NUMPY_DTYPES = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}


def broadcast_over_response(per_sample: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """``per_sample[:, None] * response_mask`` as a new (B, L) tensor.

    On the CPU the output is allocated by numpy, which asks the kernel for transparent huge pages for large
    arrays; torch's allocator does not by default, and the first-touch page faults of a fresh (8192, 1024)
    float32 tensor cost about four times the multiplication itself.
    """
    dtype = torch.result_type(per_sample, response_mask)
    if response_mask.device.type != "cpu" or dtype not in _NUMPY_DTYPES:
        return per_sample.unsqueeze(-1) * response_mask
    out = torch.from_numpy(np.empty(tuple(response_mask.shape), dtype=_NUMPY_DTYPES[dtype]))
    return torch.mul(per_sample.unsqueeze(-1), response_mask, out=out)


@register_adv_est(ESTIMATOR_NAME)
def compute_ema_grpo_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Optional[np.ndarray] = None,
    config: Any = None,
    non_tensor_batch: Optional[Mapping[str, np.ndarray]] = None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """EMA-GRPO outcome advantages for verl's ``compute_advantage``.

    Args:
        token_level_rewards: (B, L) rewards; a sample's outcome score is their sum.
        response_mask: (B, L) 1 on response tokens.
        index: (B,) prompt-group uid of each sample.
        config: the algorithm config; ``config.ema_grpo`` holds the hyperparameters.
        non_tensor_batch: per-sample data with ``extra_info``; when verl does not pass it (0.9.1), it comes
            from :func:`onethinker_verl.verl_glue.current_sample_data`.

    Returns:
        (advantages, returns), both (B, L): the per-sample advantage broadcast over the response and masked.
    """
    if index is None:
        raise ValueError("ema_grpo: verl passed no group index (non_tensor_batch['uid']); it is required")
    sample_data = non_tensor_batch if non_tensor_batch is not None else verl_glue.current_sample_data()
    if sample_data is None or "extra_info" not in sample_data:
        raise RuntimeError(
            "ema_grpo: the task of each sample did not reach the estimator. It needs each sample's extra_info "
            "(problem_type, data_type); onethinker_verl.verl_glue supplies it inside verl's trainers and "
            "verl.trainer.ppo.ray_trainer.compute_advantage. Is the onethinker plugin loaded (import verl)?"
        )
    extra_info = sample_data["extra_info"]
    if len(extra_info) != token_level_rewards.shape[0]:
        raise RuntimeError(
            f"ema_grpo: {len(extra_info)} extra_info rows for {token_level_rewards.shape[0]} samples; "
            "the per-sample data does not match the batch"
        )
    cfg = ema_grpo_config(config)
    scores = token_level_rewards.sum(dim=-1).to(torch.float64).cpu().numpy()
    advantages, metrics = ema_grpo_advantages(scores, index, task_keys_from_extra_info(extra_info), TASK_MOMENTS, cfg)
    with _metrics_lock:
        _pending_metrics.update(metrics)
    per_sample = torch.as_tensor(advantages, dtype=token_level_rewards.dtype, device=token_level_rewards.device)
    advantages_tokens = broadcast_over_response(per_sample, response_mask)
    return advantages_tokens, advantages_tokens
