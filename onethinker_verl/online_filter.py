"""OneThinker's online group filtering: keep a prompt group only if the group mean of a reward part
(``accuracy`` by default) lies strictly between two thresholds, refill the batch, and give up after a
bounded number of generation batches.

verl's own group filter (``algorithm.filter_groups``) drops groups whose metric is identical across the
group and refills them from the dataloader. This module holds the band rule and the per-step bookkeeping
(decisions, the generation-batch budget, metrics); :mod:`onethinker_verl.glue.online_filter` plugs it into
verl's v1 replay buffer.

The budget counts generation batches as the reference does: each training batch of ``N`` prompt groups
starts from one generation batch, and every ``N`` groups that have to be replaced (dropped by the band, or
lost to failed sessions that verl replaces) cost one more. verl's sync replay buffer dispatches two
refill prompts per dropped group to fill the batch faster; those speculative prompts are reported
(``online_filter/prompts_dispatched``) but not charged.
"""

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

from onethinker_verl.reward.metrics import per_task_reward_metrics, reward_extra_info_columns

DROPPED_LOW = "low"
DROPPED_HIGH = "high"


def group_mean(values: Sequence[float]) -> float:
    """The mean of a group's per-trajectory metric values (e.g. accuracy in [0, 1]), exactly rounded."""
    return math.fsum(values) / len(values)


def band_decision(mean: float, low: float, high: float) -> Optional[str]:
    """Why a group is dropped (:data:`DROPPED_LOW` / :data:`DROPPED_HIGH`), or None when it is kept.

    Args:
        mean: the group's :func:`group_mean` of the filtered metric.
        low, high: the group is kept only when ``low < mean < high``.
    """
    if mean <= low:
        return DROPPED_LOW
    if mean >= high:
        return DROPPED_HIGH
    return None


class OnlineFilterExhausted(RuntimeError):
    """The batch could not be filled within the allowed number of generation batches."""


@dataclass
class GroupDecision:
    """The band filter's verdict on one finished prompt group."""

    dropped: Optional[str]  # DROPPED_LOW, DROPPED_HIGH or None (kept)
    mean: float  # group mean of the filtered metric
    task: str
    failed: bool  # at least one of its sessions failed


@dataclass
class OnlineFilterState:
    """Bookkeeping of the band filter for one replay buffer.

    Args:
        metric: the ``reward_extra_info`` key whose group mean is filtered.
        low, high: the band (exclusive).
        max_gen_batches: generation batches allowed per training batch (<= 0: unlimited).
        train_batch_size: prompt groups per training batch (``N``).
    """

    metric: str
    low: float
    high: float
    max_gen_batches: int
    train_batch_size: int
    # Groups charged against this step's budget (dropped by the band or replaced after failed sessions).
    replaced_groups: int = 0
    # Counts and per-trajectory reward extra info of the groups decided since the last step's metrics.
    dropped: Counter = field(default_factory=Counter)
    dropped_by_task: Counter = field(default_factory=Counter)
    failed_groups: int = 0
    prompts_dispatched: int = 0
    scored_items: list = field(default_factory=list)
    # partition -> uid -> decision, for groups already decided (terminal groups never change)
    decisions: dict[str, dict[str, GroupDecision]] = field(default_factory=dict)
    # partition -> uids of failed groups without any trajectory already counted
    empty_failed: dict[str, set] = field(default_factory=dict)

    def start_step(self) -> None:
        """A new training batch: the generation-batch budget starts again."""
        self.replaced_groups = 0

    def record_group(self, decision: GroupDecision, reward_extra_infos: list[dict]) -> None:
        """Count one newly decided group; ``reward_extra_infos`` of its trajectories feed the reward metrics."""
        self.scored_items.extend(reward_extra_infos)
        self.failed_groups += decision.failed
        if decision.dropped is not None:
            self.dropped[decision.dropped] += 1
            self.dropped_by_task[decision.task] += 1
            self.replaced_groups += 1

    def record_empty_failed_group(self, replaced: bool) -> None:
        """Count a group all of whose sessions failed (no trajectory to score); charged if verl replaces it."""
        self.failed_groups += 1
        self.replaced_groups += replaced

    def gen_batches_used(self) -> float:
        """The first generation batch plus the replaced groups, in training-batch units."""
        return 1.0 + self.replaced_groups / self.train_batch_size

    def check_budget(self, sampleable_groups: int, batch_size: int) -> None:
        """Fail once the budget is spent while fewer than ``batch_size`` groups can be sampled."""
        if self.max_gen_batches <= 0 or sampleable_groups >= batch_size:
            return
        if self.gen_batches_used() > self.max_gen_batches:
            raise OnlineFilterExhausted(
                f"online filter: could not fill a batch of {batch_size} prompt groups within "
                f"algorithm.filter_groups.max_num_gen_batches={self.max_gen_batches} generation batches: "
                f"{self.dropped[DROPPED_LOW]} groups had mean {self.metric} <= {self.low}, "
                f"{self.dropped[DROPPED_HIGH]} had mean {self.metric} >= {self.high} and {self.failed_groups} had "
                f"failed sessions. Loosen algorithm.online_filter.low/high, raise max_num_gen_batches, or check "
                "the reward and the rollout."
            )

    def pop_step_metrics(self, kept_tasks: Sequence[str]) -> dict[str, float]:
        """This step's metrics (groups in the batch: ``kept_tasks``, one task per group); clears the counts.

        The per-task reward metrics cover every group scored since the last call, kept or dropped, so a task
        whose groups are all dropped shows its (collapsed) reward instead of disappearing.
        """
        metrics = {
            "online_filter/groups_kept": float(len(kept_tasks)),
            "online_filter/dropped_low": float(self.dropped[DROPPED_LOW]),
            "online_filter/dropped_high": float(self.dropped[DROPPED_HIGH]),
            "online_filter/failed_groups": float(self.failed_groups),
            "online_filter/gen_batches_used": self.gen_batches_used(),
            "online_filter/prompts_dispatched": float(self.prompts_dispatched),
        }
        for task, count in Counter(kept_tasks).items():
            metrics[f"online_filter/kept/{task}"] = float(count)
        for task, count in self.dropped_by_task.items():
            metrics[f"online_filter/dropped/{task}"] = float(count)
        metrics.update(per_task_reward_metrics(reward_extra_info_columns(self.scored_items)))
        self.dropped.clear()
        self.dropped_by_task.clear()
        self.failed_groups = 0
        self.prompts_dispatched = 0
        self.scored_items = []
        return metrics
