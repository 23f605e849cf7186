"""Knobs of the multi-task reward. The defaults reproduce the published OneThinker reward exactly."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class RewardConfig:
    """Configuration of :func:`onethinker_verl.reward.compute_score`, passed as its keyword arguments.

    Attributes:
        format_weight: ``w`` in ``overall = (1 - w) * accuracy + w * format + structure``.
        point_sigma: sigma of the segmentation point similarity, in the points' coordinate units
            (50 suits the 0-1000 normalised coordinates of Qwen3-VL).
        strict_st_miou: hardening, off by default. Spatial-temporal mIoU is averaged over the union of
            predicted and ground-truth frame keys, so padding the answer with extra frames costs reward
            (the reference averages over common frames only).
        reject_nonfinite: hardening, off by default. NaN and infinity no longer count as numeric in the
            shape checks and numeric lists (the reference accepts anything ``float()`` converts).
        slow_path_timeout_s: wall-clock bound, in seconds, on one symbolic-math check (math_verify /
            mathruler's sympy path, run in a killable worker process) and on one OCR / ROUGE computation
            (checked in-process; only huge texts come near it). Running past it scores accuracy 0,
            which is what the reference's own math_verify timeout yields (after 5 s there). 0.4 s keeps
            every item under half a second; ordinary answers take milliseconds.
    """

    format_weight: float = 0.1
    point_sigma: float = 50.0
    strict_st_miou: bool = False
    reject_nonfinite: bool = False
    slow_path_timeout_s: float = 0.4


_FIELD_NAMES = frozenset(field.name for field in dataclasses.fields(RewardConfig))
DEFAULT_CONFIG = RewardConfig()


def reward_config_from_kwargs(**knobs) -> RewardConfig:
    """Build a :class:`RewardConfig` from keyword knobs; unknown names raise ``TypeError`` naming them.

    Memoised on the knob values: verl passes the same ``reward_kwargs`` on every call.
    """
    unknown = sorted(set(knobs) - _FIELD_NAMES)
    if unknown:
        raise TypeError(
            f"unknown reward knob(s) {', '.join(map(repr, unknown))}; valid knobs are {', '.join(sorted(_FIELD_NAMES))}"
        )
    if not knobs:
        return DEFAULT_CONFIG
    return _config_from_items(tuple(sorted(knobs.items())))


@lru_cache(maxsize=64)
def _config_from_items(items: tuple) -> RewardConfig:
    return RewardConfig(**dict(items))
