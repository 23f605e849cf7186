"""OneThinker multi-task reward: per-task scorers, their registry, and verl's ``compute_score`` entry point.

Use in verl through ``reward.custom_reward_function.path/name`` (``compute_score``), or build on
:func:`score_response` in a reward manager. Register a scorer for a new problem type with
:func:`register_scorer`.
"""

from onethinker_verl.reward.config import RewardConfig, reward_config_from_kwargs
from onethinker_verl.reward.registry import TaskScorer, get_scorer, register_scorer, registered_problem_types
from onethinker_verl.reward.scoring import compute_score, score_response

__all__ = [
    "RewardConfig",
    "TaskScorer",
    "compute_score",
    "get_scorer",
    "register_scorer",
    "registered_problem_types",
    "reward_config_from_kwargs",
    "score_response",
]
