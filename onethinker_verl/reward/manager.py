"""The ``onethinker`` reward manager for verl 0.9.1's reward loop.

Selected with ``reward.reward_manager.name=onethinker``. verl's ``RewardLoopWorker`` builds it through
``verl.trainer.ppo.reward.load_reward_manager`` as ``cls(config=<full trainer config>, tokenizer=<policy
tokenizer>, compute_score=<custom function or verl's default>, reward_router_address=...,
reward_model_tokenizer=...)`` and awaits :meth:`OneThinkerRewardManager.run_single` once per sample.

Its settings live next to ``name`` under ``reward.reward_manager`` and are read as
:class:`OneThinkerRewardManagerConfig`. The recipe points that node's ``_target_`` at this class so that
Hydra instantiation of the node accepts the extra keys (verl's own ``RewardManagerConfig`` rejects them).
"""

import asyncio
import dataclasses
import inspect
import logging
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Optional

from verl import DataProto
from verl.experimental.reward_loop.reward_manager import register
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase
from verl.utils.config import omega_conf_to_dataclass
from verl.workers.config.reward import RewardManagerConfig

from onethinker_verl.benchmark_scoring.validation import benchmark_extra_info, is_benchmark_row
from onethinker_verl.data.tasks import TASK_NAMES, task_name
from onethinker_verl.reward import compute_score as onethinker_compute_score
from onethinker_verl.reward.config import RewardConfig
from onethinker_verl.reward.metrics import REWARD_PARTS, per_task_key
from onethinker_verl.reward.model_scoring import (
    MODEL_FALLBACK_KEY,
    MODEL_SCORE_KEY,
    BatchedRewardModelClient,
    ModelScoringConfig,
    extracted_output,
    question_text,
)
from onethinker_verl.reward.parsing import unwrap_ground_truth
from onethinker_verl.reward.scoring import overall_score

logger = logging.getLogger(__name__)

MANAGER_NAME = "onethinker"
OPEN_ENDED = "open-ended"


@dataclass
class OneThinkerRewardManagerConfig(RewardManagerConfig):
    """``reward.reward_manager`` for the ``onethinker`` manager: verl's fields plus the scoring knobs.

    The scoring knobs mirror :class:`onethinker_verl.reward.config.RewardConfig` (same names and defaults)
    and are passed to ``compute_score`` as keyword arguments.

    Args:
        format_weight: ``w`` in ``overall = (1 - w) * accuracy + w * format + structure``.
        point_sigma: σ of the segmentation point similarity (for 0-1000 coordinates).
        strict_st_miou: Opt-in: spatial-temporal mIoU over the union of frames, not the common ones.
        reject_nonfinite: Opt-in: NaN and infinity no longer count as numbers in shape checks.
        slow_path_timeout_s: Bound on one symbolic-math check or oversized text metric, in seconds.
        model_scoring: Model-based scoring of open-ended answers (off by default).
    """

    format_weight: float = 0.1
    point_sigma: float = 50.0
    strict_st_miou: bool = False
    reject_nonfinite: bool = False
    slow_path_timeout_s: float = 0.4
    model_scoring: ModelScoringConfig = field(default_factory=ModelScoringConfig)

    def __post_init__(self):
        # verl 0.9.1's RewardManagerConfig.__post_init__ calls super().__post_init__(), which BaseConfig does
        # not define, so that class cannot be instantiated at all; its checks are repeated here instead.
        if self.source == "register":
            from verl.experimental.reward_loop.reward_manager.registry import REWARD_MANAGER

            if self.name not in REWARD_MANAGER:
                raise ValueError(f"reward manager {self.name!r} is not registered; known: {sorted(REWARD_MANAGER)}")
        elif self.source == "importlib":
            if self.module is None or self.module.path is None:
                raise ValueError("reward.reward_manager.module.path must be set when source is 'importlib'")
        if not 0.0 <= self.format_weight <= 1.0:
            raise ValueError(f"format_weight must lie in [0, 1], got {self.format_weight}")
        if self.point_sigma <= 0:
            raise ValueError(f"point_sigma must be positive, got {self.point_sigma}")

    def scoring_kwargs(self) -> dict[str, Any]:
        """The knobs of ``onethinker_verl.reward.compute_score``, passed to it as keyword arguments."""
        return {knob.name: getattr(self, knob.name) for knob in dataclasses.fields(RewardConfig)}


# Canned items that take each slow path of the scoring once: a LaTeX math answer goes to the bounded math
# worker (a process that imports sympy and math_verify, about 2 s to start) and an open-ended answer needs
# nltk's Porter stemmer behind ROUGE (about 1 s to import).
_WARM_UP_ITEMS = (
    ("math", "<think>warm-up</think><answer>\\frac{1}{2}</answer>", "0.5"),
    ("open-ended", "<think>warm-up</think><answer>a person is walking home</answer>", "someone walks home"),
)


def warm_up_slow_paths(scoring_kwargs: dict[str, Any]) -> None:
    """Score the canned items once, so that the first real item of a process costs no more than a later one
    (without it, the first math answer waited about 1 s for the worker, the first open-ended one 0.9 s)."""
    for problem_type, response, ground_truth in _WARM_UP_ITEMS:
        onethinker_compute_score(
            data_source="onethinker-warm-up",
            solution_str=response,
            ground_truth=ground_truth,
            extra_info={"problem_type": problem_type},
            **scoring_kwargs,
        )


def load_manager_config(config: Any) -> OneThinkerRewardManagerConfig:
    """Read ``config.reward.reward_manager`` as :class:`OneThinkerRewardManagerConfig`; absent knobs take
    their defaults, unknown keys raise."""
    return omega_conf_to_dataclass(config.reward.reward_manager, OneThinkerRewardManagerConfig)


@register(MANAGER_NAME)
class OneThinkerRewardManager(RewardManagerBase):
    """Scores one rollout with the OneThinker multi-task reward.

    ``reward_score`` is the overall score; ``reward_extra_info`` holds the parts (``score``, ``accuracy``,
    ``format``, ``structure``), the ``task`` name, per-task copies of the parts (``accuracy/tracking``,
    ...) that are ``None`` for items of other tasks, and the benchmark metrics of
    :mod:`onethinker_verl.benchmark_scoring.validation` (``bench/...``, ``None`` outside benchmark rows). With model
    scoring on it also holds ``model_score`` and ``model_score_fallback``. Every item carries the same keys,
    as verl's batching requires.
    """

    def __init__(
        self,
        config,
        tokenizer,
        compute_score,
        reward_router_address: Optional[str] = None,
        reward_model_tokenizer=None,
    ):
        super().__init__(config, tokenizer, compute_score)
        self.settings = load_manager_config(config)
        # Without reward.custom_reward_function verl hands over its generic default scorer, which knows no
        # OneThinker task; a configured custom function is honoured (verl already merged its reward_kwargs).
        custom_function_path = (config.reward.get("custom_reward_function") or {}).get("path")
        self.compute_score = compute_score if custom_function_path else onethinker_compute_score
        self.is_async_compute_score = inspect.iscoroutinefunction(self.compute_score)
        self.scoring_kwargs = self.settings.scoring_kwargs()
        self.reward_model_tokenizer = reward_model_tokenizer
        self.model_client = self._make_model_client(config, reward_router_address)
        if self.compute_score is onethinker_compute_score:
            warm_up_slow_paths(self.scoring_kwargs)

    def _make_model_client(self, config, reward_router_address: Optional[str]) -> Optional[BatchedRewardModelClient]:
        model_scoring = self.settings.model_scoring
        if not model_scoring.enable:
            return None
        if reward_router_address is None:
            raise ValueError(
                "reward.reward_manager.model_scoring.enable=true needs verl's reward model server: set "
                "reward.reward_model.enable=true (with model_path and rollout settings) and "
                "reward.custom_reward_function.path, so that verl starts the server and routes scoring "
                "through this manager"
            )
        model_name = config.reward.reward_model.get("model_path")
        logger.info(
            "onethinker reward: open-ended answers scored by %s via %s (batches of %d)",
            model_name,
            reward_router_address,
            model_scoring.batch_size,
        )
        return BatchedRewardModelClient(reward_router_address, model_name, model_scoring)

    async def run_single(self, data: DataProto) -> dict:
        # For multi-sequence outputs only the last sequence is scored, as in verl's naive manager.
        data_item = data[-1]
        response_ids = data_item.batch["responses"]
        response_length = response_ids.shape[-1]
        valid_response_length = data_item.batch["attention_mask"][-response_length:].sum()
        valid_response_ids = response_ids[:valid_response_length]

        sample = data_item.non_tensor_batch
        data_source = sample["data_source"]
        ground_truth = sample["reward_model"]["ground_truth"]
        # a copy: the dict is shared with the batch, and scoring functions may annotate it
        extra_info = dict(sample.get("extra_info") or {})

        # Decoding and rule-based scoring are CPU-bound: run them in the default executor, as verl's naive
        # manager does, so the event loop keeps serving the other samples. The running loop is used rather
        # than the one captured at construction, which is not always the one awaiting this call.
        loop = asyncio.get_running_loop()
        response_str = await loop.run_in_executor(
            None, partial(self.tokenizer.decode, valid_response_ids, skip_special_tokens=True)
        )
        score_call = partial(
            self.compute_score,
            data_source=data_source,
            solution_str=response_str,
            ground_truth=ground_truth,
            extra_info=extra_info,
            **self.scoring_kwargs,
        )
        result = await score_call() if self.is_async_compute_score else await loop.run_in_executor(None, score_call)
        parts = {part: float(result[part]) for part in REWARD_PARTS}
        problem_type = extra_info.get("problem_type")
        task = task_name(problem_type)

        reward_extra_info: dict[str, Any] = {}
        if self.model_client is not None:
            model_score = None
            fallback = None
            if isinstance(problem_type, str) and problem_type.strip().lower() == OPEN_ENDED:
                model_score = await self._model_score(response_str, ground_truth, extra_info, sample)
                fallback = 1.0 if model_score is None else 0.0
                if model_score is not None:
                    parts["accuracy"] = model_score
                    parts["score"] = overall_score(
                        model_score, parts["format"], parts["structure"], self.settings.format_weight
                    )
            reward_extra_info[MODEL_SCORE_KEY] = model_score
            reward_extra_info[MODEL_FALLBACK_KEY] = fallback

        reward_extra_info.update(parts)
        reward_extra_info["task"] = task
        for known_task in TASK_NAMES:
            for part in REWARD_PARTS:
                reward_extra_info[per_task_key(part, known_task)] = parts[part] if known_task == task else None
        # Rows of a benchmark file (validation) also carry the benchmark's reference metrics, None elsewhere.
        benchmark_metrics = partial(benchmark_extra_info, response_str, ground_truth, extra_info)
        if is_benchmark_row(extra_info):
            reward_extra_info.update(await loop.run_in_executor(None, benchmark_metrics))
        else:
            reward_extra_info.update(benchmark_metrics())
        return {"reward_score": parts["score"], "reward_extra_info": reward_extra_info}

    async def _model_score(self, response_str: str, ground_truth: str, extra_info: dict, sample: dict):
        """The reward model's score of one open-ended answer, or ``None`` when its batch failed."""
        text = self.settings.model_scoring.prompt_template.format(
            question=question_text(extra_info, sample.get("raw_prompt")),
            reference=unwrap_ground_truth(ground_truth),
            output=extracted_output(response_str),
        )
        return await self.model_client.score(text)
