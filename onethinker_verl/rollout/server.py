"""The hf generation server: the Ray actor behind verl's server handle for ``rollout.name=hf``.

verl's agent loop calls ``server_handle.generate(request_id, prompt_ids=, sampling_params=, image_data=,
video_data=, mm_processor_kwargs=, priority=)`` (``verl.workers.rollout.llm_server.LLMServerClient.generate``)
and the replica calls ``wake_up`` / ``sleep`` / ``abort_all_requests`` / ``clear_kv_cache`` and the like
(``verl.workers.rollout.replica.RolloutReplica``); the worker-side adapter (:mod:`.adapter`) calls
``resume`` / ``update_weights`` / ``finish_weight_update`` / ``release``. Server addresses are only dictionary
keys to verl (no HTTP).

Requests are served one at a time (the model is not batched). The copy number that seeds a request
(:mod:`.sampling`) is counted across all replicas by one :class:`CopyCounter` actor: the n copies of a
prompt are spread over the replicas by verl's load balancer, and per-replica counting would give copies on
different replicas the same seed (the same response). Generation runs in a thread so that the actor
keeps answering; an exception there fails that request with ``hf rollout: request <id> failed: <reason>``.
It is caught inside the thread and raised again here: an exception such as StopIteration raised through
``asyncio.to_thread`` cannot be set on an asyncio future and left the caller waiting forever.
"""

import asyncio
import hashlib
import json
import logging
import os
from collections import Counter
from typing import Any, Optional

logger = logging.getLogger(__name__)


class CopyCounter:
    """How many requests with the same prompt have arrived in this sampling round, over all replicas (wrap
    with ``ray.remote``; one per Ray job, named :func:`copy_counter_name`)."""

    def __init__(self):
        self.counts: Counter = Counter()

    def take(self, prompt_key: str) -> int:
        """The copy number of a newly arrived request with this prompt (0 for the first)."""
        number = self.counts[prompt_key]
        self.counts[prompt_key] += 1
        return number

    def reset(self) -> None:
        self.counts.clear()


def copy_counter_name() -> str:
    import ray

    return f"hf_rollout_copies_{ray.get_runtime_context().get_job_id()}"


def server_name(replica_rank: int) -> str:
    """Ray actor name of a replica's server, unique within the Ray job (the adapter finds it by name)."""
    import ray

    return f"hf_rollout_server_{ray.get_runtime_context().get_job_id()}_{replica_rank}"


class HfServer:
    """One replica's model and its generation (wrap with ``ray.remote``).

    ``device``: "cpu", or a device type ("cuda", "npu") with ``visible_devices`` the worker's device ids,
    so the model sits on the GPU of the worker it serves. ``copy_counter``: the job's :class:`CopyCounter`
    actor; without one (a server on its own) copies are counted here."""

    def __init__(
        self, config: Any, model_config: Any, replica_rank: int, device: str = "cpu",
        visible_devices: Optional[str] = None, visible_devices_envvar: Optional[str] = None,
        copy_counter: Any = None,
    ):
        if device != "cpu" and visible_devices is not None and visible_devices_envvar:
            os.environ[visible_devices_envvar] = visible_devices  # before the first CUDA call of this process
        self.config = config
        self.model_config = model_config
        self.replica_rank = replica_rank
        self.device = device if device == "cpu" else f"{device}:0"
        self.generator = None
        self._generation_lock = asyncio.Lock()
        self.copy_counter = copy_counter
        self._local_copies = CopyCounter()
        self.global_steps: Optional[int] = None
        self.offloaded = False

    async def launch(self) -> None:
        """Load the model, tokenizer and processor (verl's ``HFModelConfig`` loads the latter two)."""
        await asyncio.to_thread(self._load)

    def _load(self) -> None:
        import torch

        from verl.utils.config import omega_conf_to_dataclass
        from verl.workers.config import HFModelConfig, RolloutConfig

        from onethinker_verl.rollout.generator import HfGenerator, load_model

        self.config = omega_conf_to_dataclass(self.config, dataclass_type=RolloutConfig)
        self.model_config = omega_conf_to_dataclass(self.model_config, dataclass_type=HFModelConfig)
        dtype = getattr(torch, str(self.config.dtype))
        model = load_model(
            self.model_config.local_path, dtype, self.device, trust_remote_code=self.model_config.trust_remote_code
        )
        self.generator = HfGenerator(model, self.model_config.tokenizer, self.model_config.processor)
        logger.info(
            "hf rollout replica %d: %s on %s in %s, never sampling vision tokens %s",
            self.replica_rank, self.model_config.local_path, self.device, dtype, self.generator.forbidden_token_ids,
        )

    async def generate(
        self,
        request_id: str,
        *,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        image_data: Optional[list[Any]] = None,
        video_data: Optional[list[Any]] = None,
        mm_processor_kwargs: Optional[dict[str, Any]] = None,
        priority: int = 0,
        **kwargs: Any,
    ):
        """verl's token-in, token-out call: one sampled response with its log-probs (``TokenOutput``)."""
        from onethinker_verl.rollout.sampling import request_seed, sampling_settings

        prompt_ids = [int(token) for token in prompt_ids]
        # the copy number is taken on arrival, before waiting for the model, so copies get distinct seeds
        prompt_key = hashlib.sha256(json.dumps(prompt_ids).encode()).hexdigest()
        if self.copy_counter is None:
            occurrence = self._local_copies.take(prompt_key)
        else:
            occurrence = await self.copy_counter.take.remote(prompt_key)
        try:
            settings = sampling_settings(
                sampling_params, self.config, len(prompt_ids), request_seed(self.config.seed, prompt_ids, occurrence)
            )
        except Exception as error:
            raise RuntimeError(f"hf rollout: request {request_id} failed: {error}") from None
        async with self._generation_lock:
            outcome, error = await asyncio.to_thread(
                self._generate_caught, prompt_ids, settings, image_data, video_data, mm_processor_kwargs
            )
        if error is not None:
            raise RuntimeError(f"hf rollout: request {request_id} failed: {type(error).__name__}: {error}") from error
        outcome.extra_fields["global_steps"] = self.global_steps
        return outcome

    def _generate_caught(self, *args: Any) -> tuple[Any, Optional[BaseException]]:
        """Run the generation; return (output, None) or (None, the exception), never raise (see module doc)."""
        try:
            if self.generator is None:
                raise RuntimeError("the model is not loaded (launch() was not called)")
            return self.generator.generate(*args), None
        except Exception as error:  # noqa: BLE001 - handed back to the event loop, raised there with the request id
            logger.exception("hf rollout generation failed")
            return None, error

    # ---- weights (called by the worker-side adapter on verl's naive checkpoint-engine path) ----

    async def update_weights(self, named_tensors: list) -> int:
        async with self._generation_lock:
            return await asyncio.to_thread(self.generator.load_weights, named_tensors)

    async def finish_weight_update(self, global_steps: Optional[int] = None) -> None:
        self.global_steps = global_steps
        logger.info("hf rollout replica %d: weights updated (global step %s)", self.replica_rank, global_steps)

    async def resume(self, tags: list[str]) -> None:
        if "weights" in tags:
            await self._to_device()

    async def release(self) -> None:
        await self.sleep()

    # ---- replica control (verl's RolloutReplica) ----

    async def wake_up(self) -> None:
        await self._to_device()

    async def sleep(self) -> None:
        """End of a sampling round: copy numbers restart; on an accelerator the weights leave its memory."""
        self._local_copies.reset()
        if self.copy_counter is not None:
            await self.copy_counter.reset.remote()
        if self.device != "cpu" and self.generator is not None and self.config.free_cache_engine:
            async with self._generation_lock:
                await asyncio.to_thread(self.generator.model.to, "cpu")
                self.offloaded = True
                await asyncio.to_thread(_empty_device_cache)

    async def _to_device(self) -> None:
        if self.offloaded:
            async with self._generation_lock:
                await asyncio.to_thread(self.generator.model.to, self.device)
                self.offloaded = False

    async def abort_all_requests(self, reject_request: bool = False) -> dict[str, Any]:
        """Nothing is queued outside the request being generated, which runs to its end."""
        return {"aborted_count": 0, "request_ids": []}

    async def resume_generation(self) -> None:
        return None

    async def clear_kv_cache(self) -> None:
        return None  # generate() keeps no cache between requests

    async def release_kv_cache(self) -> None:
        return None

    async def resume_kv_cache(self) -> None:
        return None

    async def start_profile(self, **kwargs: Any) -> None:
        return None

    async def stop_profile(self) -> None:
        return None


def _empty_device_cache() -> None:
    from verl.utils.device import get_torch_device

    get_torch_device().empty_cache()
