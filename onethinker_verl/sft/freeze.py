"""Frozen vision tower and projector in verl's SFT trainer, as the reference SFT run freezes them.

verl 0.9.1 has no working switch for this: ``actor.freeze_vision_tower`` is declared and never read, and
``FSDPEngine._build_optimizer`` (``verl.workers.engine.fsdp.transformer_impl``) hands
``module.parameters()`` -- every parameter -- to ``build_optimizer``. This module bridges that gap:

- :class:`HFModelConfigWithFreezing`, verl's ``HFModelConfig`` plus three keys, selected in the recipe with
  ``model._target_``, so the keys reach the engine through verl's own config path (in the torchrun trainer
  and in Ray workers alike);
- wraps ``FSDPEngine._build_module`` to set ``requires_grad=False`` on the frozen parameters before FSDP2
  shards the module, and logs trainable / frozen parameter counts at start-up;
- wraps ``FSDPEngine._build_optimizer`` to give the optimizer the trainable parameters only (frozen ones
  get no AdamW state and are never updated: no weight decay, no step);
- wraps ``TrainingWorker.__init__`` (``verl.workers.engine_workers``) to refuse freezing with any engine
  but ``fsdp2``: ``engine.strategy=fsdp`` flattens parameters and cannot mix frozen and trained tensors,
  and the other engines do not read these keys.

Which modules are frozen follows LLaMA-Factory, which ran the reference SFT (``freeze_vision_tower: true``,
``freeze_multi_modal_projector: true``): per model family a list of vision-tower modules and one projector.
For Qwen3-VL that leaves ``visual.pos_embed`` and the deepstack mergers trainable, as in the reference.
Installed lazily by the plugin (when verl imports ``verl.workers.engine_workers``), and by the config class
itself when it is built with a freezing key set (so the keys are never ignored, even with verl's plugin loading
off); a run without the keys pays one attribute lookup.
"""

import functools
import logging
import os
from dataclasses import dataclass, field

from verl.workers.config import HFModelConfig

logger = logging.getLogger(__name__)
logger.setLevel(os.getenv("ONETHINKER_LOGGING_LEVEL", "INFO"))

# LLaMA-Factory's composite-model table (model_type -> vision tower modules, projector), which decides what
# `freeze_vision_tower` / `freeze_multi_modal_projector` freeze in the reference run.
VISION_TOWER_MODULES = {
    "qwen2_vl": ("visual.patch_embed", "visual.blocks"),
    "qwen2_5_vl": ("visual.patch_embed", "visual.blocks"),
    "qwen3_vl": ("visual.patch_embed", "visual.blocks"),
    "qwen3_vl_moe": ("visual.patch_embed", "visual.blocks"),
}
PROJECTOR_MODULES = {
    "qwen2_vl": ("visual.merger",),
    "qwen2_5_vl": ("visual.merger",),
    "qwen3_vl": ("visual.merger",),
    "qwen3_vl_moe": ("visual.merger",),
}
SUPPORTED_STRATEGY = "fsdp2"


@dataclass
class HFModelConfigWithFreezing(HFModelConfig):
    """verl's ``HFModelConfig`` with the freezing keys of the reference SFT run.

    Args:
        freeze_vision_tower: freeze the family's vision tower modules (:data:`VISION_TOWER_MODULES`).
        freeze_multi_modal_projector: freeze the family's vision-to-language projector (:data:`PROJECTOR_MODULES`).
        freeze_modules: further modules to freeze, as dotted paths inside the model (``"visual.pos_embed"``);
            a parameter is frozen when these name components occur in its name.
    """

    freeze_vision_tower: bool = False
    freeze_multi_modal_projector: bool = False
    freeze_modules: list = field(default_factory=list)

    def __post_init__(self):
        super().__post_init__()
        for key in ("freeze_vision_tower", "freeze_multi_modal_projector"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"model.{key} must be true or false, got {getattr(self, key)!r}")
        if not all(isinstance(name, str) and name.strip(".") for name in self.freeze_modules):
            raise ValueError(f"model.freeze_modules must be a list of dotted module paths, got {self.freeze_modules!r}")
        if self.freeze_vision_tower or self.freeze_multi_modal_projector or self.freeze_modules:
            # The plugin installs the wrappers when verl imports its engine workers; installing here as well
            # keeps the keys honoured in a process where verl's plugin loading is off (VERL_USE_EXTERNAL_PLUGINS).
            install()


def frozen_module_paths(model_config) -> tuple[str, ...]:
    """The module paths ``model_config`` asks to freeze; empty when it asks for nothing (or is verl's plain
    ``HFModelConfig``). Raises ValueError for a model family without a known vision tower / projector."""
    wants_tower = bool(getattr(model_config, "freeze_vision_tower", False))
    wants_projector = bool(getattr(model_config, "freeze_multi_modal_projector", False))
    extra = tuple(getattr(model_config, "freeze_modules", None) or ())
    if not (wants_tower or wants_projector or extra):
        return ()
    model_type = getattr(model_config.hf_config, "model_type", None)
    paths = []
    for wanted, table, key in (
        (wants_tower, VISION_TOWER_MODULES, "freeze_vision_tower"),
        (wants_projector, PROJECTOR_MODULES, "freeze_multi_modal_projector"),
    ):
        if not wanted:
            continue
        if model_type not in table:
            raise ValueError(
                f"model.{key}=true: no vision modules known for model type {model_type!r} (known: "
                f"{sorted(table)}); name the modules in model.freeze_modules instead"
            )
        paths.extend(table[model_type])
    paths.extend(path.strip(".") for path in extra)
    return tuple(dict.fromkeys(paths))


def is_frozen(parameter_name: str, module_paths) -> bool:
    """Whether ``parameter_name`` lies inside one of ``module_paths``, matched on whole name components
    (``visual.merger`` matches ``model.visual.merger.mlp.0.weight``, not ``visual.deepstack_merger_list``)."""
    parts = parameter_name.split(".")
    for path in module_paths:
        wanted = path.split(".")
        for start in range(len(parts) - len(wanted) + 1):
            if parts[start : start + len(wanted)] == wanted:
                return True
    return False


def freeze_parameters(module, module_paths) -> dict:
    """Set ``requires_grad=False`` on every parameter inside ``module_paths``; return the counts
    (``frozen_parameters``, ``frozen_tensors``, ``trainable_parameters``, ``trainable_tensors``).
    Raises ValueError when a path matches no parameter (a misspelt path must not train silently)."""
    matched = dict.fromkeys(module_paths, 0)
    counts = dict(frozen_parameters=0, frozen_tensors=0, trainable_parameters=0, trainable_tensors=0)
    for name, parameter in module.named_parameters():
        hits = [path for path in module_paths if is_frozen(name, (path,))]
        for path in hits:
            matched[path] += 1
        if hits:
            parameter.requires_grad_(False)
        kind = "trainable" if parameter.requires_grad else "frozen"
        counts[f"{kind}_parameters"] += parameter.numel()
        counts[f"{kind}_tensors"] += 1
    unmatched = [path for path, hits in matched.items() if hits == 0]
    if unmatched:
        raise ValueError(f"freezing: no parameter of {type(module).__name__} lies inside {unmatched}")
    return counts


def check_strategy(model_config, engine_config, engine) -> None:
    """Refuse freezing keys with an engine that cannot honour them (anything but FSDP2)."""
    if not frozen_module_paths(model_config):
        return
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngine

    strategy = getattr(engine_config, "strategy", None)
    if strategy != SUPPORTED_STRATEGY or not isinstance(engine, FSDPEngine):
        raise ValueError(
            f"model.freeze_vision_tower / freeze_multi_modal_projector / freeze_modules need "
            f"engine.strategy={SUPPORTED_STRATEGY}, got engine.strategy={strategy} ({type(engine).__name__}): "
            "FSDP1 flattens parameters and cannot keep frozen tensors beside trained ones, and other engines "
            "do not read these keys. Set engine.strategy=fsdp2, or unset the freezing keys."
        )
    if getattr(model_config, "lora_rank", 0) > 0:
        raise ValueError(
            "model.freeze_* keys apply to full fine-tuning; with model.lora_rank > 0 the base model is frozen "
            "already. Unset the freezing keys or set model.lora_rank=0."
        )


def install() -> None:
    """Wrap ``TrainingWorker.__init__``, ``FSDPEngine._build_module`` and ``FSDPEngine._build_optimizer``
    (idempotent)."""
    from verl.workers.config.optimizer import build_optimizer as build_verl_optimizer
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngine
    from verl.workers.engine_workers import TrainingWorker

    if getattr(FSDPEngine, "_onethinker_freezing", False):
        return
    original_worker_init = TrainingWorker.__init__
    original_build_module = FSDPEngine._build_module
    original_build_optimizer = FSDPEngine._build_optimizer

    @functools.wraps(original_worker_init)
    def worker_init_checking_strategy(self, config, *args, **kwargs):
        original_worker_init(self, config, *args, **kwargs)
        check_strategy(self.model_config, self.engine_config, self.engine)

    @functools.wraps(original_build_module)
    def build_module_with_frozen_parts(self):
        module = original_build_module(self)
        paths = frozen_module_paths(self.model_config)
        if paths:
            check_strategy(self.model_config, self.engine_config, self)
            counts = freeze_parameters(module, paths)
            if self.rank == 0:  # every rank freezes the same tensors; one report
                logger.info(
                    "SFT freezing (%s): frozen %s -> %d parameters in %d tensors frozen, %d parameters in %d "
                    "tensors trainable",
                    self.model_config.hf_config.model_type,
                    ", ".join(paths),
                    counts["frozen_parameters"],
                    counts["frozen_tensors"],
                    counts["trainable_parameters"],
                    counts["trainable_tensors"],
                )
            self.frozen_parameter_counts = counts
        return module

    @functools.wraps(original_build_optimizer)
    def build_trainable_optimizer(self, module):
        if not frozen_module_paths(self.model_config):
            return original_build_optimizer(self, module)
        return build_verl_optimizer([p for p in module.parameters() if p.requires_grad], self.optimizer_config)

    TrainingWorker.__init__ = worker_init_checking_strategy
    FSDPEngine._build_module = build_module_with_frozen_parts
    FSDPEngine._build_optimizer = build_trainable_optimizer
    FSDPEngine._onethinker_freezing = True
