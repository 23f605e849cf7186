"""Per-task reward metrics; a task is named with :func:`onethinker_verl.data.tasks.task_name` (the manager's
``task`` column).

How verl 0.9.1 uses a reward manager's ``reward_extra_info`` (both the v1 and the legacy trainer):

* Validation: every numeric key becomes ``val-aux/<data_source>/<key>/mean@N`` (and std/best/worst),
  averaged per prompt and then over prompts, with ``None`` values skipped and string values ignored
  (``process_validation_metrics``). The manager therefore also writes per-task copies such as
  ``accuracy/tracking`` that are ``None`` for items of other tasks, so those means cover that task only.
* Training: neither trainer turns reward extra info into step metrics (only the GDPO estimator's own keys).
  :func:`per_task_reward_metrics` computes them from the ``task`` column and the part columns; the trainer
  glue (:mod:`onethinker_verl.glue.step_metrics`, or :mod:`onethinker_verl.glue.online_filter` over every
  scored group, kept and dropped, when the online filter is on) adds its result to the step metrics.
"""

import math
import numbers
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np

# Parts of the reward the manager reports for every item.
REWARD_PARTS = ("score", "accuracy", "format", "structure")


def per_task_key(part: str, task: str) -> str:
    """Key of the per-task copy of a reward part in reward_extra_info, e.g. ``accuracy/tracking``."""
    return f"{part}/{task}"


def per_task_reward_metrics(reward_extra_infos: Mapping[str, Sequence[Any]]) -> dict[str, float]:
    """Step metrics ``reward/<part>/<task>`` (mean over that task's items) and ``reward/count/<task>``.

    Args:
        reward_extra_infos: Column-wise reward extra info of one batch (lists or numpy arrays), holding the
            manager's ``task`` column and the columns of :data:`REWARD_PARTS`. Items whose value for a part
            is ``None``, NaN or not a number (another reward function's string, say) are left out of that
            part's mean, as verl's validation metrics leave out strings.

    Returns:
        An empty dict when the batch carries no ``task`` column (another reward manager was used).
    """
    if "task" not in reward_extra_infos:
        return {}
    tasks = [str(task) for task in reward_extra_infos["task"]]
    metrics: dict[str, float] = {}
    for task, count in Counter(tasks).items():
        metrics[f"reward/count/{task}"] = float(count)
    for part in REWARD_PARTS:
        if part not in reward_extra_infos:
            continue
        values_by_task: dict[str, list[float]] = defaultdict(list)
        for task, value in zip(tasks, reward_extra_infos[part], strict=True):
            value = numeric_value(value)
            if value is not None:
                values_by_task[task].append(value)
        for task, values in values_by_task.items():
            metrics[f"reward/{part}/{task}"] = sum(values) / len(values)
    return metrics


def numeric_value(value: Any) -> Optional[float]:
    """``value`` as a float (booleans as 0/1), or None for None, NaN and anything that is not a real number."""
    if not isinstance(value, (numbers.Real, np.bool_, np.number)):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def reward_extra_info_columns(infos: Sequence[dict]) -> dict[str, list]:
    """Column-wise view of per-trajectory ``reward_extra_info`` dicts (``None`` where a key is missing)."""
    keys = dict.fromkeys(key for info in infos for key in info)
    return {key: [info.get(key) for info in infos] for key in keys}
