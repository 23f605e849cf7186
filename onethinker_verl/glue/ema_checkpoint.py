"""The EMA-GRPO moving moments in verl 0.9.1's checkpoints.

The moments are the estimator's state across steps; verl's checkpoints hold model, optimizer and
dataloader state only. For a trainer that uses ``ema_grpo``, its ``_save_checkpoint`` and
``_load_checkpoint`` (``PPOTrainer`` of the v1 trainer, ``RayPPOTrainer`` of the legacy one; both write the
``global_step_N`` folder, then ``latest_checkpointed_iteration.txt``, then, v1 only, call the
``trainer.checkpoint_callback_class`` hook) are wrapped on that trainer object:

* save: the moments are written to ``global_step_N/onethinker_ema_grpo.json`` *before* verl's save starts, so
  the file exists before verl writes its ``latest_checkpointed_iteration.txt`` marker (which makes the folder
  the one to resume from) and before the callback (which may upload the folder). A crash in between leaves
  the marker on the previous, complete checkpoint.
* load: after verl has resumed from a folder, the moments are read from it. A missing or unreadable file is
  an error (resuming would silently restart every task's std from one batch) unless
  ``algorithm.ema_grpo.allow_fresh_moments_on_resume=true``, which turns it into a WARNING. A file written
  before task keys used the canonical task names (format 1: ``"multiple choice"``, ``"OCR"``) is read with its
  keys renamed (``multiple_choice``, ``ocr``); the next save writes the current format.
"""

import json
import logging
import math
import os
from collections.abc import Callable
from typing import Any

from onethinker_verl.glue.method_wrapping import wrap_attribute

logger = logging.getLogger(__name__)

EMA_STATE_FILE = "onethinker_ema_grpo.json"
# 2: task keys in the canonical task names (``multiple_choice``, ``ocr``, ``segmentation/image``).
# 1: task keys as the problem types were spelled in the data (``multiple choice``, ``OCR``); still read.
STATE_FORMAT = 2
READABLE_FORMATS = (1, 2)
ALLOW_FRESH_SETTING = "algorithm.ema_grpo.allow_fresh_moments_on_resume"


class EmaStateError(RuntimeError):
    """A checkpoint's EMA-GRPO moments are missing or unreadable."""


def checkpoint_step_folder(trainer_config: Any, global_steps: int) -> str:
    """The ``global_step_N`` folder verl writes for step ``global_steps`` (a relative dir is taken from cwd)."""
    return os.path.join(os.path.abspath(trainer_config.default_local_dir), f"global_step_{global_steps}")


def save_estimator_state(step_folder: str, global_steps: int) -> str:
    """Write the EMA-GRPO moments into ``step_folder`` (atomically: temporary file, then rename); its path."""
    from onethinker_verl.advantage.ema_grpo import TASK_MOMENTS

    os.makedirs(step_folder, exist_ok=True)
    path = os.path.join(step_folder, EMA_STATE_FILE)
    state = {"format": STATE_FORMAT, "global_step": global_steps, "task_moments": TASK_MOMENTS.state_dict()}
    # JSON round-trips Python floats exactly (shortest repr), so a resumed run continues bit for bit.
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(path + ".tmp", path)
    return path


def read_estimator_state(step_folder: str, global_steps: int) -> dict[str, list[float]]:
    """The moments saved in ``step_folder`` for step ``global_steps``; EmaStateError if missing or corrupt."""
    path = os.path.join(step_folder, EMA_STATE_FILE)
    if not os.path.exists(path):
        raise EmaStateError(f"the checkpoint {step_folder} has no {EMA_STATE_FILE}")
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
        if state.get("format") not in READABLE_FORMATS:
            raise ValueError(f"format {state.get('format')!r}, expected one of {READABLE_FORMATS}")
        if state.get("global_step") != global_steps:
            raise ValueError(f"written at step {state.get('global_step')!r}, the checkpoint is step {global_steps}")
        moments = state["task_moments"]
        if not isinstance(moments, dict):
            raise ValueError("task_moments is not a mapping")
        for task, pair in moments.items():
            if not (isinstance(pair, list) and len(pair) == 2 and all(_finite_number(v) for v in pair)):
                raise ValueError(f"task {task!r}: expected [first moment, second moment], got {pair!r}")
        if state["format"] == 1:
            moments = _with_canonical_task_keys(moments)
    except (OSError, ValueError, KeyError, AttributeError) as exc:  # JSONDecodeError is a ValueError
        raise EmaStateError(f"{path} is unreadable: {exc}") from exc
    return moments


def _with_canonical_task_keys(moments: dict[str, list[float]]) -> dict[str, list[float]]:
    """Format-1 moments under the canonical task keys; two old keys of one task are an error."""
    from onethinker_verl.advantage.ema_grpo import canonical_task_key

    renamed: dict[str, list[float]] = {}
    old_key_of: dict[str, str] = {}
    for old_key, pair in moments.items():
        key = canonical_task_key(old_key)
        if key in renamed:
            raise ValueError(f"tasks {old_key_of[key]!r} and {old_key!r} are both task {key!r}")
        renamed[key], old_key_of[key] = pair, old_key
    return renamed


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def restore_estimator_state(step_folder: str, global_steps: int, allow_fresh: bool) -> bool:
    """Load the moments of ``step_folder`` into the estimator; True if restored. A missing or corrupt file
    raises EmaStateError, or, with ``allow_fresh``, logs a WARNING and leaves the moments empty."""
    from onethinker_verl.advantage.ema_grpo import TASK_MOMENTS

    try:
        moments = read_estimator_state(step_folder, global_steps)
    except EmaStateError as exc:
        if not allow_fresh:
            raise EmaStateError(
                f"onethinker-verl: cannot resume EMA-GRPO: {exc}. The per-task moving moments would restart "
                f"from the next batch. Resume from a checkpoint saved with ema_grpo, or set "
                f"{ALLOW_FRESH_SETTING}=true to accept fresh moments."
            ) from exc
        logger.warning(
            "onethinker-verl: %s; %s=true, so the EMA-GRPO moments restart from the next batch",
            exc,
            ALLOW_FRESH_SETTING,
        )
        TASK_MOMENTS.reset()
        return False
    TASK_MOMENTS.load_state_dict(moments)
    logger.info("onethinker-verl: restored EMA-GRPO moments of %d tasks from %s", len(moments), step_folder)
    return True


def resumed_step_folder(trainer_config: Any) -> str:
    """The ``global_step_N`` folder verl's ``_load_checkpoint`` resumed from (same lookup as verl's)."""
    if trainer_config.resume_mode == "resume_path":
        return os.path.abspath(trainer_config.resume_from_path)
    from verl.utils.checkpoint.checkpoint_manager import find_latest_ckpt_path

    return find_latest_ckpt_path(os.path.abspath(trainer_config.default_local_dir))


def save_and_restore_moments_with_checkpoints(trainer: Any) -> None:
    """Wrap ``trainer._save_checkpoint`` / ``_load_checkpoint`` (either trainer) to carry the EMA-GRPO moments."""

    def make_save(save_checkpoint: Callable) -> Callable:
        def save_checkpoint_with_moments(*args, **kwargs):
            step_folder = checkpoint_step_folder(trainer.config.trainer, trainer.global_steps)
            save_estimator_state(step_folder, trainer.global_steps)
            return save_checkpoint(*args, **kwargs)

        return save_checkpoint_with_moments

    def make_load(load_checkpoint: Callable) -> Callable:
        def load_checkpoint_with_moments(*args, **kwargs):
            result = load_checkpoint(*args, **kwargs)
            if trainer.config.trainer.resume_mode != "disable" and getattr(trainer, "global_steps", 0) > 0:
                settings = trainer.config.algorithm.get("ema_grpo", None) or {}
                allow_fresh = bool(settings.get("allow_fresh_moments_on_resume", False))
                restore_estimator_state(resumed_step_folder(trainer.config.trainer), trainer.global_steps, allow_fresh)
            return result

        return load_checkpoint_with_moments

    wrap_attribute(trainer, "_save_checkpoint", make_save)
    wrap_attribute(trainer, "_load_checkpoint", make_load)
