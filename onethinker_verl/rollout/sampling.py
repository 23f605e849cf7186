"""verl's per-request sampling parameters as generation settings, and per-request seeds.

verl's agent loop (``AgentLoopWorker.generate_sequences``) sends every request a dict with ``temperature``,
``top_p``, ``top_k`` (-1 = off), ``repetition_penalty`` and ``logprobs``, optionally ``max_tokens`` /
``max_new_tokens`` and ``seed``; the token budget otherwise follows the rollout config as in verl's vLLM
server (``vLLMHttpServer.generate``): at most ``response_length``, never past ``max_model_len``.

Seeds. ``rollout.n`` copies of a prompt reach the server as separate, identical requests, in an order that
depends on scheduling, spread over the replicas. So that a run is reproducible (and a resumed run repeats
what an uninterrupted one would have generated), each request is seeded from the rollout seed, its prompt
and how many identical prompts have already arrived, at any replica, in this sampling round (a round ends
when verl puts the replicas to sleep). The k-th copy of a prompt always gets the same seed; which of the n rows of a group it lands in can
follow arrival order, so a group's responses are reproducible as a set.
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SamplingSettings:
    """What one request samples with.

    temperature: 0 means greedy decoding; top_k: 0 means off; max_new_tokens: >= 1 tokens; seed: the
    request's random seed (see :func:`request_seed`)."""

    temperature: float
    top_p: float
    top_k: int
    repetition_penalty: float
    max_new_tokens: int
    seed: int


def max_model_len(rollout_config: Any) -> int:
    """The context length the rollout allows: ``max_model_len``, else prompt plus response length."""
    configured = getattr(rollout_config, "max_model_len", None)
    return int(configured or rollout_config.prompt_length + rollout_config.response_length)


def sampling_settings(sampling_params: dict[str, Any], rollout_config: Any, prompt_length: int, seed: int) -> SamplingSettings:
    """Settings for one request of ``prompt_length`` tokens; ``seed`` is used unless the request names one."""
    room = max_model_len(rollout_config) - prompt_length
    if room < 1:
        raise ValueError(
            f"prompt of {prompt_length} tokens leaves no room to generate within max_model_len "
            f"{max_model_len(rollout_config)}"
        )
    if "max_tokens" in sampling_params:
        budget = int(sampling_params["max_tokens"])
    elif "max_new_tokens" in sampling_params:
        budget = int(sampling_params["max_new_tokens"])
    else:
        budget = min(
            rollout_config.response_length,
            rollout_config.prompt_length + rollout_config.response_length - prompt_length,
        )
    top_k = int(sampling_params.get("top_k", rollout_config.top_k))
    return SamplingSettings(
        temperature=float(sampling_params.get("temperature", rollout_config.temperature)),
        top_p=float(sampling_params.get("top_p", rollout_config.top_p)),
        top_k=max(top_k, 0),
        repetition_penalty=float(sampling_params.get("repetition_penalty", rollout_config.repetition_penalty)),
        max_new_tokens=max(1, min(budget, room)),
        seed=int(sampling_params.get("seed", seed)),
    )


def request_seed(rollout_seed: int, prompt_ids: list[int], occurrence: int) -> int:
    """A 63-bit seed from the rollout seed, the prompt's token ids and the copy number ``occurrence``
    (0 for the first request with these ids in a sampling round)."""
    text = json.dumps([int(rollout_seed), int(occurrence), [int(token) for token in prompt_ids]])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1
