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
        decay: weight of the old moments in the per-task moving averages of E[x] and E[x^2], in [0, 1).
        min_std: floor of the per-task standard deviation, in reward units (> 0).
        eps: added to every divisor (>= 0).
        guard: a group whose largest |advantage| exceeds this falls back to plain GRPO scaling (> 0).
        center: subtract each group's mean score before scaling.
        allow_fresh_moments_on_resume: resuming from a checkpoint whose moments file is missing or unreadable
            is an error; with this set it is a WARNING and the moments restart from the next batch.
    """

    decay: float = 0.99
    min_std: float = 1e-3
    eps: float = 1e-6
    guard: float = 5.0
    center: bool = True
    allow_fresh_moments_on_resume: bool = False

    def __post_init__(self):
        key = "algorithm.ema_grpo"
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(
                f"{key}.decay={self.decay}: the weight of the old moments must lie in [0, 1) (1 would never learn "
                "a task's spread); use e.g. 0.99, the reference value"
            )
        if not self.min_std > 0.0:
            raise ValueError(
                f"{key}.min_std={self.min_std}: the floor of a task's std must be > 0, or a task whose rewards "
                "never vary divides by zero; use e.g. 0.001, the reference value"
            )
        if not self.eps >= 0.0:
            raise ValueError(f"{key}.eps={self.eps}: a negative term added to a std can make it zero or negative; "
                             "use a value >= 0, e.g. 1e-6, the reference value")
        if not self.guard > 0.0:
            raise ValueError(
                f"{key}.guard={self.guard}: every group's largest |advantage| exceeds a bound <= 0, so every group "
                "would fall back to plain GRPO; use a value > 0, e.g. 5.0, the reference value"
            )


@dataclass
class OnlineFilterConfig(BaseConfig):
    """OneThinker's online filtering: keep a prompt group only if the group mean of the reward part named by
    ``algorithm.filter_groups.metric`` (``accuracy`` in the recipe) lies strictly between ``low`` and
    ``high``. Dropped groups are replaced by fresh prompts until the batch is full, for at most
    ``algorithm.filter_groups.max_num_gen_batches`` generation batches (<= 0: no limit).

    Args:
        enable: use this band rule instead of verl's "metric identical across the group" rule
            (needs ``algorithm.filter_groups.enable=true``, which turns refilling on).
        low: groups with mean <= low are dropped (0 <= low < high).
        high: groups with mean >= high are dropped (high <= 1).
    """

    enable: bool = False
    low: float = 0.01
    high: float = 0.99

    def __post_init__(self):
        key = "algorithm.online_filter"
        for name in ("low", "high"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(
                    f"{key}.{name}={value}: the band bounds a mean accuracy, which lies in [0, 1]; use a value in "
                    "[0, 1] (the reference: low 0.01, high 0.99)"
                )
        if not self.low < self.high:
            raise ValueError(
                f"{key}.low={self.low}: the band keeps groups with low < mean < high, and low >= high={self.high} "
                "keeps none, so no batch could ever be filled; set low < high (the reference: 0.01 < 0.99)"
            )


@dataclass
class OneThinkerAlgoConfig(AlgoConfig):
    """verl's :class:`AlgoConfig` plus the OneThinker sections ``ema_grpo`` and ``online_filter``."""

    ema_grpo: EmaGrpoConfig = field(default_factory=EmaGrpoConfig)
    online_filter: OnlineFilterConfig = field(default_factory=OnlineFilterConfig)
