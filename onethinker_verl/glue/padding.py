"""Which rows of a v1 training batch verl added as padding.

verl 0.9.1's v1 trainer pads every training batch in ``PPOTrainer._balance_batch`` with
``verl.trainer.ppo.padding_utils.upsample_batch_to_divisible_size`` until its size divides the data-parallel
size and the mini-batch sizes (a failed rollout session leaves a batch short). The pad rows copy the first
trajectory's non-tensor fields (so its ``extra_info`` with its task, and its ``reward_extra_info``), carry
zero rewards and an all-zero response mask, all share one ``pad<hex>`` uid, and are marked
``is_padding=True`` in their TransferQueue tag. verl leaves them out of its own metrics
(``PPOTrainer._compute_metrics``); the glue leaves them out of the EMA-GRPO moments and advantages, the
per-task metrics and the model-score normalisation. The online filter runs before padding is added.
"""

from collections.abc import Mapping, Sequence

import numpy as np


def padding_mask(tags: Sequence[Mapping]) -> np.ndarray:
    """(B,) bool: True for the rows whose TransferQueue tag marks them as verl's padding."""
    return np.fromiter((bool(tag.get("is_padding", False)) for tag in tags), dtype=bool, count=len(tags))
