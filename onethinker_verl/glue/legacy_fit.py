"""Scoping the legacy trainer's glue to the ``fit`` of the trainers that asked for it.

verl 0.9.1's legacy trainer (``trainer.use_v1=false``, ``RayPPOTrainer``) offers no per-trainer hook for its
step metrics: ``RayPPOTrainer.fit`` calls the module function
``verl.trainer.ppo.ray_trainer.compute_data_metrics``, which the glue therefore wraps module-wide
(:mod:`.step_metrics`). So that this wrapper stays inert for every other caller in the process (a stock
trainer, a test, a benchmark), it acts only while the ``fit`` of a trainer whose config asked for it is
running: that ``fit`` is wrapped on the trainer object to set what it needs.
"""

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any, Optional

from onethinker_verl.glue.method_wrapping import wrap_attribute

_active: contextvars.ContextVar[Optional[Any]] = contextvars.ContextVar("onethinker_legacy_glue", default=None)


def active_needs() -> Optional[Any]:
    """The :class:`~onethinker_verl.glue.install.GlueNeeds` of the legacy trainer whose ``fit`` is running."""
    return _active.get()


@contextlib.contextmanager
def legacy_glue_active(needs: Any) -> Iterator[None]:
    """Run the block as inside the ``fit`` of a legacy trainer that needs ``needs``."""
    token = _active.set(needs)
    try:
        yield
    finally:
        _active.reset(token)


def scope_glue_to_fit(trainer: Any, needs: Any) -> None:
    """Wrap ``trainer.fit`` so the module-wide legacy wrappers act, with ``needs``, while it runs."""

    def make_wrapper(fit: Callable) -> Callable:
        def fit_with_onethinker_glue(*args, **kwargs):
            with legacy_glue_active(needs):
                return fit(*args, **kwargs)

        return fit_with_onethinker_glue

    wrap_attribute(trainer, "fit", make_wrapper)
