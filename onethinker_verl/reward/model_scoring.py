"""Opt-in model-based scoring of ``open-ended`` answers, served by verl's reward-model machinery.

The reference OneThinker code can replace the ROUGE accuracy of open-ended items by a reward model's score
(POLAR-7B behind vLLM, asked in batches of 64 with the question, the reference answer and the extracted
output). Here the model is the one verl 0.9.1 starts from ``reward.reward_model.*``: verl launches the
server(s) and a router, and hands the router's ``host:port`` to every reward manager as
``reward_router_address``. The router forwards any path, so the manager posts to the server's pooling
endpoint through it.

Three pieces live here:

* :class:`ModelScoringConfig`, the ``reward.reward_manager.model_scoring`` settings;
* :class:`BatchedRewardModelClient`, which collects the single-sample requests that verl's reward loop makes
  concurrently into batches of up to ``batch_size`` texts per HTTP request; a batch that fails in any way
  (HTTP error, timeout, malformed reply) yields ``None`` for each of its items, and the caller keeps ROUGE;
* :func:`apply_group_normalization`, the optional per-prompt-group normalisation. It needs every member of
  a group, which no reward manager sees in verl 0.9.1 (the reward loop scores one sample per
  ``run_single`` call, spread over several workers), so the trainer glue applies it to the gathered batch.
"""

import asyncio
import logging
import math
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import aiohttp
from verl.base_config import BaseConfig

from onethinker_verl.reward.parsing import extract_answer, normalise_tags
from onethinker_verl.reward.scoring import overall_score

logger = logging.getLogger(__name__)

# POLAR's "sft" wrapper: reference trajectory, reward token, policy trajectory, end token
# (RewardModelClient._encode in InternLM/POLAR).
POLAR_PROMPT_TEMPLATE = "{question}\n{reference}<|reward|>{question}\n{output}[UNUSED_TOKEN_130]"

# Keys the manager adds to reward_extra_info when model scoring is enabled.
MODEL_SCORE_KEY = "model_score"  # raw model score of a model-scored item, else None
MODEL_FALLBACK_KEY = "model_score_fallback"  # 1.0: its batch failed and ROUGE was kept; 0.0: scored; None: n/a


@dataclass
class ModelScoringConfig(BaseConfig):
    """Settings of model-based open-ended scoring (``reward.reward_manager.model_scoring``).

    Args:
        enable: Score ``open-ended`` answers with the reward model instead of ROUGE. Needs
            ``reward.reward_model.enable=true`` (verl then starts the model server) and
            ``reward.custom_reward_function.path`` set (otherwise verl's reward loop bypasses every reward
            manager and scores with the model alone).
        endpoint: Path posted to, through verl's reward router. ``pooling`` is vLLM's endpoint for reward
            models (POLAR is served as one); ``classify`` is what verl's own discriminative path uses.
        batch_size: Most texts per request (64 in the reference).
        batch_wait_s: How long a partly filled batch waits for more concurrent requests before it is sent.
        timeout_s: Total time allowed for one batch request; past it the batch falls back to ROUGE.
        normalize_by_group: Normalise model scores within each prompt group (z-score, then min-max to
            [0, 1]; zero spread gives 1.0). Applied by :func:`apply_group_normalization` in the trainer glue.
        prompt_template: Text sent for one item; ``{question}``, ``{reference}`` and ``{output}`` are filled
            in. The default is POLAR's format.
    """

    enable: bool = False
    endpoint: str = "pooling"
    batch_size: int = 64
    batch_wait_s: float = 0.05
    timeout_s: float = 120.0
    normalize_by_group: bool = False
    prompt_template: str = POLAR_PROMPT_TEMPLATE

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"model_scoring.batch_size must be at least 1, got {self.batch_size}")
        if self.timeout_s <= 0:
            raise ValueError(f"model_scoring.timeout_s must be positive, got {self.timeout_s}")


def extracted_output(response: str) -> str:
    """The policy's answer as the accuracy scorers see it: the first ``<answer>`` block of the tag-normalised
    response, or the whole stripped response when there is none or it is empty (rewards spec)."""
    normalized = normalise_tags(response)
    return extract_answer(normalized) or normalized.strip()


def _last_scalar(value: Any) -> float:
    """The reward in one item of a pooling/classify reply: the last number of a possibly nested list.

    vLLM's ``pooling`` gives per-token rewards ``[[r_1], ..., [r_n]]`` (the reward is the last token's),
    ``classify`` gives class probabilities (verl reads the last one), an embedding-style reply ``[r]``.
    """
    while isinstance(value, list):
        if not value:
            raise ValueError("empty score list in reward model reply")
        value = value[-1]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"reward model reply holds a non-number score: {value!r}")
    score = float(value)
    if not math.isfinite(score):
        raise ValueError(f"reward model reply holds a non-finite score: {score}")
    return score


def parse_scores(reply: Any, expected: int) -> list[float]:
    """Scores from a vLLM pooling/classify reply ``{"data": [{"index": i, "data"|"probs"|"embedding": ...}]}``.

    Raises ``ValueError`` unless the reply holds exactly one finite score per input.
    """
    if not isinstance(reply, Mapping) or not isinstance(reply.get("data"), list):
        raise ValueError(f"reward model reply has no 'data' list: {str(reply)[:200]}")
    items = reply["data"]
    if len(items) != expected:
        raise ValueError(f"reward model returned {len(items)} scores for {expected} inputs")
    scores: list[Optional[float]] = [None] * expected
    for position, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ValueError(f"reward model reply item is not an object: {item!r}")
        index = item.get("index", position)
        if not isinstance(index, int) or not 0 <= index < expected or scores[index] is not None:
            raise ValueError(f"reward model reply has a bad or repeated index: {index!r}")
        payload = next((item[key] for key in ("data", "probs", "embedding") if key in item), None)
        scores[index] = _last_scalar(payload)
    return scores


class BatchedRewardModelClient:
    """Scores texts with the reward model behind verl's router, batching concurrent requests.

    verl's reward loop calls ``run_single`` once per sample, concurrently on one event loop (the agent loop
    streams finished trajectories; the colocated path gathers a chunk at once). Each call here parks its
    text; a batch is sent as soon as ``batch_size`` texts wait, or ``batch_wait_s`` after the first one.
    """

    def __init__(self, router_address: str, model_name: Optional[str], settings: ModelScoringConfig):
        self.url = f"http://{router_address}/{settings.endpoint.lstrip('/')}"
        self.model_name = model_name
        self.settings = settings
        self._waiting: list[tuple[str, asyncio.Future]] = []
        self._timer: Optional[asyncio.TimerHandle] = None
        self._in_flight: set[asyncio.Task] = set()

    async def score(self, text: str) -> Optional[float]:
        """The model's score for ``text``, or ``None`` when its batch failed."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting.append((text, future))
        if len(self._waiting) >= self.settings.batch_size:
            self._send_waiting()
        elif self._timer is None:
            self._timer = loop.call_later(self.settings.batch_wait_s, self._send_waiting)
        return await future

    def _send_waiting(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiting:
            batch = self._waiting[: self.settings.batch_size]
            self._waiting = self._waiting[self.settings.batch_size :]
            task = asyncio.get_running_loop().create_task(self._score_batch(batch))
            # keep a reference: the loop holds tasks weakly
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _score_batch(self, batch: list[tuple[str, asyncio.Future]]) -> None:
        texts = [text for text, _ in batch]
        try:
            scores = await self._post(texts)
        except Exception as exc:  # any failure of a batch means ROUGE for the whole batch
            logger.warning(
                "model scoring: a batch of %d open-ended items failed (%s: %s); they keep their ROUGE accuracy",
                len(batch),
                type(exc).__name__,
                exc,
            )
            scores = [None] * len(batch)
        for (_, future), score in zip(batch, scores, strict=True):
            if not future.done():
                future.set_result(score)

    async def _post(self, texts: list[str]) -> list[float]:
        payload: dict[str, Any] = {"input": texts}
        if self.model_name:
            payload["model"] = self.model_name
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.post(self.url, json=payload) as response:
                response.raise_for_status()
                reply = await response.json(content_type=None)
        return parse_scores(reply, expected=len(texts))


def question_text(extra_info: Mapping[str, Any], raw_prompt: Any) -> str:
    """The question shown to the reward model: ``extra_info["question"]`` when the data has it, else the
    text of the last user message of the chat prompt (image/video parts dropped)."""
    question = extra_info.get("question") if isinstance(extra_info, Mapping) else None
    if isinstance(question, str) and question.strip():
        return question.strip()
    if raw_prompt is None:
        return ""
    for message in reversed(list(raw_prompt)):
        if isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content", "")
            if isinstance(content, str):
                return content.strip()
            parts = [part.get("text", "") for part in content if isinstance(part, Mapping)]
            return "\n".join(part for part in parts if part).strip()
    return ""


def normalize_within_groups(scores: Sequence[float], group_ids: Sequence[Hashable]) -> list[float]:
    """Per-group z-score followed by per-group min-max to [0, 1], as the reference normalises model scores.

    A group whose scores are all equal (zero spread) gets 1.0 for every member.
    """
    if len(scores) != len(group_ids):
        raise ValueError(f"{len(scores)} scores but {len(group_ids)} group ids")
    members: dict[Hashable, list[int]] = defaultdict(list)
    for position, group in enumerate(group_ids):
        members[group].append(position)
    normalized = [0.0] * len(scores)
    for positions in members.values():
        values = [float(scores[i]) for i in positions]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        if std == 0.0:
            for i in positions:
                normalized[i] = 1.0
            continue
        z_scores = [(v - mean) / std for v in values]
        low, high = min(z_scores), max(z_scores)
        for i, z in zip(positions, z_scores, strict=True):
            normalized[i] = (z - low) / (high - low)
    return normalized


def apply_group_normalization(
    reward_extra_infos: Mapping[str, Sequence[Any]],
    group_ids: Sequence[Hashable],
    format_weight: float,
) -> tuple[list[float], dict[str, list[Any]]]:
    """Replace the raw model scores of a whole batch by their per-group normalised values.

    Call it where the batch's reward extra info and group ids (``uid``) are gathered, before advantages are
    computed. Only items the model actually scored take part (``model_score`` set, no fallback); items whose
    batch fell back keep their ROUGE accuracy and are left out of their group's normalisation.

    Args:
        reward_extra_infos: Column-wise reward extra info of the batch, as the manager produced it (needs
            ``score``, ``accuracy``, ``format``, ``structure``, ``task`` and ``model_score``).
        group_ids: The prompt-group id of every item (verl's ``uid``).
        format_weight: ``w`` of the overall score, the manager's ``format_weight``.

    Returns:
        The new overall score of every item (to be written as its sequence reward), and a copy of the
        extra info with ``accuracy``, ``score`` and their per-task copies updated.
    """
    from onethinker_verl.reward.metrics import per_task_key

    updated = {key: list(values) for key, values in reward_extra_infos.items()}
    model_scored = [i for i, value in enumerate(updated[MODEL_SCORE_KEY]) if value is not None]
    normalized = normalize_within_groups(
        [updated[MODEL_SCORE_KEY][i] for i in model_scored], [group_ids[i] for i in model_scored]
    )
    for i, accuracy in zip(model_scored, normalized, strict=True):
        score = overall_score(accuracy, float(updated["format"][i]), float(updated["structure"][i]), format_weight)
        task = updated["task"][i]
        for part, value in (("accuracy", accuracy), ("score", score)):
            updated[part][i] = value
            if per_task_key(part, task) in updated:
                updated[per_task_key(part, task)][i] = value
    return [float(score) for score in updated["score"]], updated
