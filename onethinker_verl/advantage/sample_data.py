"""Per-sample data of the batch whose advantages are being computed, handed from the trainer glue to the
estimators (verl 0.9.1 passes estimators no per-sample data; see :mod:`onethinker_verl.glue.task_identity`).

A neutral meeting point: the glue sets the data around verl's call, the estimator reads it, and neither
imports the other. Keys of the mapping:

* ``extra_info``: (B,) object array of each sample's dataset ``extra_info`` dict (its task).
* ``is_padding``: optional (B,) bool array, True for rows verl added as padding (they carry no answer).
"""

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from typing import Any, Optional

EXTRA_INFO = "extra_info"
IS_PADDING = "is_padding"

_sample_data: contextvars.ContextVar[Optional[Mapping[str, Any]]] = contextvars.ContextVar(
    "onethinker_sample_data", default=None
)


def current_sample_data() -> Optional[Mapping[str, Any]]:
    """The per-sample data provided for the advantage computation in progress, if any."""
    return _sample_data.get()


@contextlib.contextmanager
def provide_sample_data(sample_data: Mapping[str, Any]) -> Iterator[None]:
    """Make ``sample_data`` visible to estimators called inside this block (this thread / task only)."""
    token = _sample_data.set(sample_data)
    try:
        yield
    finally:
        _sample_data.reset(token)
