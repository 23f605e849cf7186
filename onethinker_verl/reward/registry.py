"""Per-problem-type dispatch of the accuracy and structure (answer-shape bonus) scorers.

Built-in scorers register themselves in :mod:`onethinker_verl.reward.scorers`; a user package adds or
replaces one the same way, at import time::

    from onethinker_verl.reward import register_scorer

    @register_scorer("counting", structure=my_counting_shape_bonus)
    def counting_accuracy(answer, ground_truth, data_type, config):
        ...  # -> float in [0, 1]

Problem types are matched case-insensitively. Without ``structure`` the task gets the full 0.5 bonus,
like every unstructured task of the reference.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from onethinker_verl.reward.config import RewardConfig

logger = logging.getLogger(__name__)

# (answer, ground_truth, data_type, config) -> accuracy in [0, 1]; data_type arrives lower-cased.
AccuracyScorer = Callable[[str, str, str, RewardConfig], float]
# (answer, ground_truth, data_type, config) -> structure bonus in [0, 0.5]; answer is "" when absent.
StructureScorer = Callable[[str, str, str, RewardConfig], float]

FULL_STRUCTURE_BONUS = 0.5


def full_structure_bonus(answer: str, ground_truth: str, data_type: str, config: RewardConfig) -> float:
    """The bonus of unstructured tasks: always the full 0.5."""
    return FULL_STRUCTURE_BONUS


@dataclass(frozen=True)
class TaskScorer:
    """The two per-task parts of the reward."""

    accuracy: AccuracyScorer
    structure: StructureScorer


_SCORERS: dict[str, TaskScorer] = {}


def register_scorer(problem_type: str, *, structure: StructureScorer = full_structure_bonus):
    """Decorator registering an accuracy scorer (and its structure scorer) for ``problem_type``.

    Registering a problem type again replaces its scorers (logged), so a user package can override a
    built-in one.
    """
    key = problem_type.lower()

    def decorator(accuracy: AccuracyScorer) -> AccuracyScorer:
        if key in _SCORERS:
            logger.info("reward scorer for problem type %r replaced by %s", key, getattr(accuracy, "__qualname__", accuracy))
        _SCORERS[key] = TaskScorer(accuracy=accuracy, structure=structure)
        return accuracy

    return decorator


def get_scorer(problem_type: str) -> TaskScorer | None:
    """The scorers of ``problem_type`` (case-insensitive), or None for an unknown type."""
    return _SCORERS.get(problem_type.lower())


def registered_problem_types() -> list[str]:
    """Lower-cased names of every registered problem type."""
    return sorted(_SCORERS)
