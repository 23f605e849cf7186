"""``rollout.name=hf`` in verl's two rollout registries (called from the plugin's lazy table).

verl 0.9.1 looks a backend up twice: ``verl.workers.rollout.base.get_rollout_class(name, "async")`` reads the
module-level ``_ROLLOUT_REGISTRY`` (keyed ``(name, mode)``, values "module.Class") for the worker-side
adapter, and ``verl.workers.rollout.replica.RolloutReplicaRegistry`` (keyed by name, values loaders) for the
replica. Neither has an extension hook other than adding an entry, which is what this module does, each
function once verl has imported the module holding the registry.
"""

from onethinker_verl.rollout import BACKEND_NAME

ADAPTER_CLASS = "onethinker_verl.rollout.adapter.HfRolloutAdapter"


def register_adapter() -> None:
    """``get_rollout_class("hf", "async")`` -> :class:`~onethinker_verl.rollout.adapter.HfRolloutAdapter`."""
    from verl.workers.rollout import base

    base._ROLLOUT_REGISTRY[(BACKEND_NAME, "async")] = ADAPTER_CLASS


def _load_replica():
    from onethinker_verl.rollout.replica import HfReplica

    return HfReplica


def register_replica() -> None:
    """``RolloutReplicaRegistry.get("hf")`` -> :class:`~onethinker_verl.rollout.replica.HfReplica`."""
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    RolloutReplicaRegistry.register(BACKEND_NAME, _load_replica)
