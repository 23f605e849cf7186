"""Worker side of the hf rollout: where verl's ``naive`` checkpoint engine path hands over the actor's weights.

Wraps ``verl.workers.rollout.base.BaseRollout`` (the class ``get_rollout_class(name, "async")`` returns, built in
every actor/rollout worker by ``ActorRolloutRefWorker.init_model``). In a synchronous run verl forces the
``naive`` engine: after init and after every update each worker calls ``resume(["weights"])``,
``update_weights(<generator of (HF name, full tensor)>)`` and ``resume(["kv_cache"])``
(``ActorRolloutRefWorker.update_weights``). Every rank drains the generator (FSDP2 gathers each full tensor
collectively) and, since an hf replica is one worker (no tensor parallelism, :mod:`.checks`), every rank
sends the tensors to its own replica's server (:mod:`.server`) in buckets of
``checkpoint_engine.update_weights_bucket_megabytes``.
"""

import logging
import os
from typing import Any

from verl.workers.rollout.base import BaseRollout

from onethinker_verl.rollout.checks import hf_rollout_problems

logger = logging.getLogger(__name__)


class HfRolloutAdapter(BaseRollout):
    """``BaseRollout`` for ``rollout.name=hf``: forwards weights and wake / sleep to the replica's server."""

    def __init__(self, config: Any, model_config: Any, device_mesh: Any, replica_rank: int = -1):
        super().__init__(config, model_config, device_mesh)
        problems = hf_rollout_problems(self.config)
        if problems:
            raise ValueError(problems[0])
        # one worker per replica, so the replica rank is the worker's rank
        self.replica_rank = int(os.environ.get("RANK", 0)) if replica_rank == -1 else replica_rank
        self.bucket_bytes = int(self.config.checkpoint_engine.update_weights_bucket_megabytes) << 20
        self._server = None

    def _server_handle(self):
        if self._server is None:
            import ray

            from onethinker_verl.rollout.server import server_name

            self._server = ray.get_actor(server_name(self.replica_rank))
        return self._server

    async def resume(self, tags: list[str]):
        await self._server_handle().resume.remote(tags)

    async def update_weights(self, weights, wire_format: str = "named_tensors", **kwargs: Any):
        if wire_format != "named_tensors":
            raise NotImplementedError(f"hf rollout: weight wire format {wire_format!r}; only named_tensors")
        bucket, bucket_size, total = [], 0, 0
        async for name, tensor in _iterate(weights):
            tensor = tensor.detach().to("cpu", copy=True)
            bucket.append((name, tensor))
            bucket_size += tensor.nbytes
            if bucket_size >= self.bucket_bytes:
                total += await self._server_handle().update_weights.remote(bucket)
                bucket, bucket_size = [], 0
        if bucket:
            total += await self._server_handle().update_weights.remote(bucket)
        await self._server_handle().finish_weight_update.remote(kwargs.get("global_steps"))
        logger.info("hf rollout: %d tensors sent to replica %d", total, self.replica_rank)

    async def release(self):
        await self._server_handle().release.remote()


async def _iterate(weights):
    """Both plain and async generators of (name, tensor)."""
    if hasattr(weights, "__aiter__"):
        async for item in weights:
            yield item
    else:
        for item in weights:
            yield item
