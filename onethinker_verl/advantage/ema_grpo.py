"""The ``ema_grpo`` advantage estimator, registered with verl's advantage-estimator registry.

Plain GRPO divides each group's centred rewards by that group's own standard deviation, which blows up
groups whose rewards barely differ; dropping the division lets tasks with wide reward spreads dominate.
EMA-GRPO divides by a per-task standard deviation tracked as an exponential moving average across steps
(OneThinker, arXiv 2512.03043). The task of a sample comes from its ``extra_info`` (``problem_type`` and
``data_type``), which verl 0.9.1 does not hand to estimators: the trainer glue
(:mod:`onethinker_verl.glue.task_identity`) provides it through :mod:`onethinker_verl.advantage.sample_data`.
Task keys and metrics name a task with :func:`onethinker_verl.data.tasks.task_name`.

Rows verl's v1 trainer adds as padding (marked ``is_padding`` in the sample data) get advantage 0 and are
left out of the moments and the metrics; a group with a single real sample (its siblings' sessions failed)
gets advantage 0 and is counted in ``ema_grpo/singleton_groups``.
"""

import threading
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np
import torch
from verl.trainer.ppo.core_algos import register_adv_est

from onethinker_verl.advantage.config import EmaGrpoConfig
from onethinker_verl.advantage.sample_data import EXTRA_INFO, IS_PADDING, current_sample_data
from onethinker_verl.advantage.task_moments import TaskMoments
from onethinker_verl.data.tasks import task_name

ESTIMATOR_NAME = "ema_grpo"
# The task whose moments are kept per modality.
SEGMENTATION = task_name("segmentation")

# One set of moving moments per process: the estimator runs in the trainer's driver process, once per step.
TASK_MOMENTS = TaskMoments()

_pending_metrics: dict[str, float] = {}
_metrics_lock = threading.Lock()


def task_key(problem_type: str, data_type: Optional[str]) -> str:
    """The moment-tracking key of a sample: its task's :func:`~onethinker_verl.data.tasks.task_name`, with
    segmentation split by modality (``segmentation/image``, ``segmentation/video``)."""
    name = task_name(problem_type)
    if name == SEGMENTATION:
        modality = str(data_type).lower() if data_type is not None else ""
        if modality in ("image", "video"):
            return f"{SEGMENTATION}/{modality}"
    return name


def canonical_task_key(key: str) -> str:
    """A task key as written before task names were canonical (the problem type as spelled in the data:
    ``"multiple choice"``, ``"OCR"``, ``"segmentation/image"``) in today's spelling; today's keys map to
    themselves."""
    task, _, modality = key.partition("/")
    if task_name(task) == SEGMENTATION and modality:
        return f"{SEGMENTATION}/{modality}"
    return task_name(key)


def task_keys_from_extra_info(extra_infos: Sequence[Any], rows: Optional[Sequence[int]] = None) -> list[str]:
    """Task keys of a batch from each sample's ``extra_info`` dict; a row without ``problem_type`` is an error
    naming the sample (its position in the batch: ``rows[i]`` when given, else ``i``)."""
    keys = []
    for position, info in enumerate(extra_infos):
        # `type(...) is dict` first: the Mapping ABC check costs about 1 us a sample.
        problem_type = info.get("problem_type") if type(info) is dict or isinstance(info, Mapping) else None
        if not isinstance(problem_type, str) or not problem_type:
            sample = position if rows is None else rows[position]
            raise ValueError(
                f"ema_grpo: sample {sample} has no 'problem_type' in its extra_info (got {info!r}); EMA-GRPO needs "
                "every sample's task. Prepare data with data_prep/prepare_rl.py or the onethinker dataset class, "
                "which put problem_type and data_type into extra_info."
            )
        name = task_name(problem_type)
        keys.append(task_key(problem_type, info.get("data_type")) if name == SEGMENTATION else name)
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
    """EMA-GRPO advantages of one batch of real (non-padding) samples, updating ``moments`` first.

    Args:
        scores: (B,) float64 outcome score per sample.
        group_ids: (B,) prompt-group id per sample (any hashable values).
        task_keys: B task keys.
        moments: the per-task moving moments, updated in place.
        cfg: hyperparameters.

    Returns:
        (B,) float64 advantage per sample, and per-task metrics of this step. A group with one sample gets
        advantage 0 (no sibling to compare with); its score still enters its task's moments.
    """
    groups, group_of, group_size = _factorize(group_ids)
    task_names, task_of, task_size = _factorize(task_keys)

    # Moments are updated before scaling: this step's std already includes this step's scores.
    batch_m1 = np.bincount(task_of, weights=scores) / task_size
    batch_m2 = np.bincount(task_of, weights=scores * scores) / task_size
    moments.update(task_names, batch_m1, batch_m2, cfg.decay)
    task_std = np.array([moments.std(name, cfg.min_std) for name in task_names])

    group_mean = np.bincount(group_of, weights=scores) / group_size
    centred = scores - group_mean[group_of] if cfg.center else scores
    advantages = centred / (task_std[task_of] + cfg.eps)

    # The guard rail acts per group of a task (a group normally holds one task); one-sample units have
    # no spread to fall back to and take no part in it.
    _, unit_of, unit_size = np.unique(group_of * len(task_names) + task_of, return_inverse=True, return_counts=True)
    unit_mean = np.bincount(unit_of, weights=scores) / unit_size
    unit_std = np.sqrt(np.bincount(unit_of, weights=(scores - unit_mean[unit_of]) ** 2) / unit_size)
    unit_is_pair = unit_size >= 2
    unit_fell_back = (np.bincount(unit_of, weights=np.abs(advantages) > cfg.guard) > 0) & unit_is_pair
    advantages = np.where(unit_fell_back[unit_of], centred / (unit_std[unit_of] + cfg.eps), advantages)
    advantages[group_size[group_of] < 2] = 0.0

    unit_task = np.zeros(len(unit_size), dtype=np.int64)
    unit_task[unit_of] = task_of
    metrics = {
        "ema_grpo/guard_fallback_frac": _share(unit_fell_back, unit_is_pair),
        "ema_grpo/singleton_groups": float(np.count_nonzero(group_size < 2)),
    }
    for index, name in enumerate(task_names):
        in_task = unit_task == index
        metrics[f"ema_grpo/moving_mean/{name}"] = moments.mean(name)
        metrics[f"ema_grpo/moving_std/{name}"] = float(task_std[index])
        metrics[f"ema_grpo/guard_fallback_frac/{name}"] = _share(unit_fell_back & in_task, unit_is_pair & in_task)
    return advantages, metrics


def _share(selected: np.ndarray, eligible: np.ndarray) -> float:
    """Fraction of the ``eligible`` entries that are ``selected`` (0 when none is eligible)."""
    count = np.count_nonzero(eligible)
    return float(np.count_nonzero(selected & eligible) / count) if count else 0.0


def padding_rows(sample_data: Mapping[str, Any], batch_size: int) -> Optional[np.ndarray]:
    """(B,) bool mask of the rows verl added as padding, or None when the batch has none."""
    is_padding = sample_data.get(IS_PADDING)
    if is_padding is None:
        return None
    is_padding = np.asarray(is_padding, dtype=bool)
    if is_padding.shape != (batch_size,):
        raise RuntimeError(f"ema_grpo: padding mask of shape {is_padding.shape} for {batch_size} samples")
    return is_padding if is_padding.any() else None


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
        non_tensor_batch: per-sample data with ``extra_info`` (and optionally ``is_padding``); when verl does
            not pass it (0.9.1), it comes from :func:`onethinker_verl.advantage.sample_data.current_sample_data`.

    Returns:
        (advantages, returns), both (B, L): the per-sample advantage broadcast over the response and masked;
        0 on every token of padding rows and of one-sample groups.
    """
    if index is None:
        raise ValueError("ema_grpo: verl passed no group index (non_tensor_batch['uid']); it is required")
    sample_data = non_tensor_batch if non_tensor_batch is not None else current_sample_data()
    if sample_data is None or EXTRA_INFO not in sample_data:
        raise RuntimeError(
            "ema_grpo: the task of each sample did not reach the estimator. It needs each sample's extra_info "
            "(problem_type, data_type); onethinker_verl.glue.task_identity supplies it inside verl's trainers "
            "(installed when a trainer is built with algorithm.adv_estimator=ema_grpo). Is the onethinker "
            "plugin loaded (import verl), or, when calling compute_advantage yourself, wrap the call in "
            "onethinker_verl.advantage.sample_data.provide_sample_data({'extra_info': ...})?"
        )
    extra_info = sample_data[EXTRA_INFO]
    batch_size = token_level_rewards.shape[0]
    if len(extra_info) != batch_size:
        raise RuntimeError(
            f"ema_grpo: {len(extra_info)} extra_info rows for {batch_size} samples; "
            "the per-sample data does not match the batch"
        )
    cfg = ema_grpo_config(config)
    scores = token_level_rewards.sum(dim=-1).to(torch.float64).cpu().numpy()
    padding = padding_rows(sample_data, batch_size)
    if padding is None:
        advantages, metrics = ema_grpo_advantages(
            scores, index, task_keys_from_extra_info(extra_info), TASK_MOMENTS, cfg
        )
    else:
        # Padding rows carry a copy of another row's task and a zero reward: they must not count as answers.
        real = np.flatnonzero(~padding)
        advantages = np.zeros(batch_size, dtype=np.float64)
        metrics = {}
        if len(real):
            advantages[real], metrics = ema_grpo_advantages(
                scores[real],
                [index[i] for i in real],
                task_keys_from_extra_info([extra_info[i] for i in real], rows=real),
                TASK_MOMENTS,
                cfg,
            )
    with _metrics_lock:
        _pending_metrics.update(metrics)
    per_sample = torch.as_tensor(advantages, dtype=token_level_rewards.dtype, device=token_level_rewards.device)
    advantages_tokens = broadcast_over_response(per_sample, response_mask)
    return advantages_tokens, advantages_tokens
