"""OneThinker's online group filtering: keep a prompt group only if the group mean of a reward part
(``accuracy`` by default) lies strictly between two thresholds, refill the batch, and give up after a
bounded number of generation batches.

verl's own group filter (``algorithm.filter_groups``) drops groups whose metric is identical across the
group and refills them from the dataloader. This module supplies the band rule and the bookkeeping
(dropped-low / dropped-high counts, generation batches used, the try limit); :mod:`onethinker_verl.verl_glue`
plugs it into verl's v1 replay buffer.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

DROPPED_LOW = "low"
DROPPED_HIGH = "high"


def band_decision(values: Sequence[float], low: float, high: float) -> Optional[str]:
    """Why a group is dropped (:data:`DROPPED_LOW` / :data:`DROPPED_HIGH`), or None when it is kept.

    Args:
        values: the group's per-trajectory metric values (e.g. accuracy in [0, 1]).
        low, high: the group is kept only when ``low < mean(values) < high``.
    """
    mean = math.fsum(values) / len(values)
    if mean <= low:
        return DROPPED_LOW
    if mean >= high:
        return DROPPED_HIGH
    return None


class OnlineFilterExhausted(RuntimeError):
    """The batch could not be filled within the allowed number of generation batches."""


@dataclass
class OnlineFilterState:
    """Per-step bookkeeping of the band filter for one replay buffer.

    Args:
        metric: the ``reward_extra_info`` key whose group mean is filtered.
        low, high: the band (exclusive).
        max_gen_batches: generation batches allowed per training batch (<= 0: unlimited).
        train_batch_size: prompts per training batch; refilled prompts are counted in units of it.
    """

    metric: str
    low: float
    high: float
    max_gen_batches: int
    train_batch_size: int
    dropped: dict[str, int] = field(default_factory=lambda: {DROPPED_LOW: 0, DROPPED_HIGH: 0})
    refilled_prompts: int = 0
    # partition -> uid -> (decision, group mean), for groups already classified (finished groups never change)
    decisions: dict[str, dict[str, tuple[Optional[str], float]]] = field(default_factory=dict)

    def start_step(self) -> None:
        self.dropped = {DROPPED_LOW: 0, DROPPED_HIGH: 0}
        self.refilled_prompts = 0

    def record_decision(self, decision: Optional[str]) -> None:
        if decision is not None:
            self.dropped[decision] += 1

    def gen_batches_used(self) -> float:
        """The first generation batch plus refills, in training-batch units."""
        return 1.0 + self.refilled_prompts / self.train_batch_size

    def charge_refill(self, prompts: int) -> None:
        """Count ``prompts`` more prompts sent to generation; fail once the try budget is spent."""
        self.refilled_prompts += prompts
        if self.max_gen_batches > 0 and self.gen_batches_used() > self.max_gen_batches:
            raise OnlineFilterExhausted(
                f"online filter: could not fill a batch of {self.train_batch_size} prompt groups within "
                f"algorithm.filter_groups.max_num_gen_batches={self.max_gen_batches} generation batches: "
                f"{self.dropped[DROPPED_LOW]} groups had mean {self.metric} <= {self.low} and "
                f"{self.dropped[DROPPED_HIGH]} had mean {self.metric} >= {self.high}. Loosen "
                "algorithm.online_filter.low/high, raise max_num_gen_batches, or check the reward."
            )

    def step_metrics(self, kept_groups: int) -> dict[str, float]:
        return {
            "online_filter/groups_kept": float(kept_groups),
            "online_filter/dropped_low": float(self.dropped[DROPPED_LOW]),
            "online_filter/dropped_high": float(self.dropped[DROPPED_HIGH]),
            "online_filter/gen_batches_used": self.gen_batches_used(),
        }
