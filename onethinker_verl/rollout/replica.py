"""The ``RolloutReplica`` of ``rollout.name=hf``: one generation server per rollout worker.

Wraps ``verl.workers.rollout.replica.RolloutReplica`` (what ``RolloutReplicaRegistry.get(name)`` returns to
``LLMServerManager``). verl's own replicas start vLLM / SGLang / TRT-LLM servers; this one starts an
:class:`~onethinker_verl.rollout.server.HfServer` on the node of the worker it serves, on that worker's
device (CPU, or the worker's GPU: the server sees the worker's device ids, as verl's vLLM replica arranges).
The server's handle is what the agent loop calls; its "address" is only a dictionary key.
"""

import logging

from verl.workers.rollout.replica import RolloutReplica

from onethinker_verl.rollout.checks import hf_rollout_problems

logger = logging.getLogger(__name__)


class HfReplica(RolloutReplica):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        problems = hf_rollout_problems(self.config)
        if problems:
            raise ValueError(problems[0])

    async def launch_servers(self):
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from verl.utils.device import get_device_name, get_platform, get_resource_name

        from onethinker_verl.rollout.server import CopyCounter, HfServer, copy_counter_name, server_name

        if len(self.workers) != self.world_size:
            raise ValueError(f"hf rollout: replica {self.replica_rank} has {len(self.workers)} workers, expected 1")
        resource = get_resource_name()
        node_id, device_ids = await self.workers[0].__ray_call__.remote(
            lambda worker: (
                ray.get_runtime_context().get_node_id(),
                [str(i) for i in ray.get_runtime_context().get_accelerator_ids().get(resource, [])],
            )
        )
        # one counter of prompt copies for all replicas of the job (the first replica to get here creates it)
        copy_counter = ray.remote(CopyCounter).options(
            name=copy_counter_name(), get_if_exists=True, num_cpus=0
        ).remote()
        platform = get_platform()
        device = get_device_name()
        name = server_name(self.replica_rank)
        server = (
            ray.remote(HfServer)
            .options(
                name=name,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False),
                # the worker holds this node's CPU / GPU reservation; the server shares it, as vLLM's does
                num_cpus=0,
                max_concurrency=self.max_concurrency,
                runtime_env={"env_vars": {var: "1" for var in platform.ray_noset_envvars()}},
            )
            .remote(
                config=self.config,
                model_config=self.model_config,
                replica_rank=self.replica_rank,
                device=device,
                visible_devices=",".join(device_ids) if device_ids else None,
                visible_devices_envvar=platform.visible_devices_envvar(),
                copy_counter=copy_counter,
            )
        )
        await server.launch.remote()
        self.servers = [server]
        self._server_handle = server
        self._server_address = name
        logger.info("hf rollout replica %d started on %s (%s)", self.replica_rank, device, name)
