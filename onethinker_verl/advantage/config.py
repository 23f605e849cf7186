"""Dataclass configs that give the recipe's extra algorithm settings a home verl accepts.

verl instantiates ``algorithm`` as :class:`verl.trainer.config.AlgoConfig`, which rejects unknown keys.
The recipe therefore points ``algorithm._target_`` at :class:`OneThinkerAlgoConfig`, a subclass that
adds the ``ema_grpo`` and ``online_filter`` sections; everything verl reads from ``AlgoConfig`` is
unchanged, and every added key can be overridden on the command line
(``algorithm.ema_grpo.decay=0.95``).
"""

from dataclasses import dataclass, field

from verl.base_config import BaseConfig
from verl.trainer.config import AlgoConfig


@dataclass
class EmaGrpoConfig(BaseConfig):
    """Hyperparameters of the ``ema_grpo`` estimator (defaults are the OneThinker reference values).

    Args:
        decay: weight of the old moments in the per-task moving averages of E[x] and E[x^2].
        min_std: floor of the per-task standard deviation, in reward units.
        eps: added to every divisor.
        guard: a group whose largest |advantage| exceeds this falls back to plain GRPO scaling.
        center: subtract each group's mean score before scaling.
    """

    decay: float = 0.99
    min_std: float = 1e-3
    eps: float = 1e-6
    guard: float = 5.0
    center: bool = True

    def __post_init__(self):
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(f"algorithm.ema_grpo.decay must be in [0, 1), got {self.decay}")
        for name in ("min_std", "eps", "guard"):
            if getattr(self, name) < 0:
                raise ValueError(f"algorithm.ema_grpo.{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class OnlineFilterConfig(BaseConfig):
    """OneThinker's online filtering: keep a prompt group only if the group mean of the reward part named by
    ``algorithm.filter_groups.metric`` (``accuracy`` in the recipe) lies strictly between ``low`` and
    ``high``. Dropped groups are replaced by fresh prompts until the batch is full, for at most
    ``algorithm.filter_groups.max_num_gen_batches`` generation batches (<= 0: no limit).

    Args:
        enable: use this band rule instead of verl's "metric identical across the group" rule
            (needs ``algorithm.filter_groups.enable=true``, which turns refilling on).
        low: groups with mean <= low are dropped.
        high: groups with mean >= high are dropped.
    """

    enable: bool = False
    low: float = 0.01
    high: float = 0.99

    def __post_init__(self):
        if not self.low < self.high:
            raise ValueError(f"algorithm.online_filter needs low < high, got low={self.low}, high={self.high}")


@dataclass
class OneThinkerAlgoConfig(AlgoConfig):
    """verl's :class:`AlgoConfig` plus the OneThinker sections ``ema_grpo`` and ``online_filter``."""

    ema_grpo: EmaGrpoConfig = field(default_factory=EmaGrpoConfig)
    online_filter: OnlineFilterConfig = field(default_factory=OnlineFilterConfig)
