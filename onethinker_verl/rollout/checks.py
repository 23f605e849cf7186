"""Settings the hf rollout backend cannot serve, refused in one line each.

The backend runs one copy of the model per rollout replica (no tensor parallelism), so
``rollout.tensor_model_parallel_size`` above 1 would make verl group several workers into a replica whose
model is not sharded; verl would then start fewer, larger replicas than the user meant without a word.
:func:`hf_rollout_problems` is checked by the Hydra callback :class:`HfRolloutCheck` (declared by the recipes,
before Ray starts) and again by the replica itself (:mod:`.replica`), so a run composed without the recipes
fails too, though later.
"""

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from onethinker_verl.rollout import BACKEND_NAME

PREFIX = "onethinker-verl hf rollout"


def hf_rollout_problems(rollout: Any) -> list[str]:
    """One line per setting of the rollout config section ``rollout`` (DictConfig, dict or RolloutConfig)
    that the hf backend cannot serve; empty when the backend is not selected."""
    get = rollout.get if hasattr(rollout, "get") else lambda key, default=None: getattr(rollout, key, default)
    if get("name") != BACKEND_NAME:
        return []
    problems = []
    for key in ("tensor_model_parallel_size", "pipeline_model_parallel_size", "data_parallel_size"):
        value = int(get(key, 1) or 1)
        if value > 1:
            problems.append(
                f"{PREFIX}: actor_rollout_ref.rollout.{key}={value}: the hf backend runs one whole copy of the "
                f"model per rollout worker and cannot shard it; set it to 1 (or use rollout.name=vllm)"
            )
    return problems


class HfRolloutCheck(Callback):
    """Hydra callback (``hydra.callbacks``): ends the process with status 1 and one line per refused setting,
    before verl's ``main`` runs."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        rollout = OmegaConf.select(config, "actor_rollout_ref.rollout", default=None)
        problems = hf_rollout_problems(rollout) if rollout is not None else []
        if problems:
            raise SystemExit("\n".join(problems))
