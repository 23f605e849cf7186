"""Replacing a method of one object (or one class) by a wrapper around it, once, with a clear error when
verl lacks the method (the glue was checked against verl 0.9.1 only)."""

import functools
import types
from collections.abc import Callable
from typing import Any

CHECKED_VERL_VERSIONS = ("0.9.1",)
WRAPPED_MARK = "__onethinker_wrapped__"
# Set on a class-level method that decides an object's glue on first use (onethinker_verl.glue.install).
DECIDES_GLUE_MARK = "__onethinker_decides_glue__"


def wrap_attribute(owner: Any, name: str, make_wrapper: Callable[[Callable], Callable]) -> bool:
    """Set ``owner.name = make_wrapper(owner.name)`` unless this ``make_wrapper`` already wrapped it; True if
    it wrapped now.

    ``owner`` is a module, a class (the wrapper is then an unbound function taking ``self``) or an instance
    (the original is the bound method and the wrapper is stored on the instance, shadowing the class's
    method for that object only).
    """
    original = getattr(owner, name, None)
    decider = getattr(original, "__func__", None)
    if getattr(decider, DECIDES_GLUE_MARK, False):
        # On an object, wrap verl's own method: the class-level decider would call back into this attribute.
        original = types.MethodType(decider.__wrapped__, owner)
    if original is None:
        import verl

        raise RuntimeError(
            f"onethinker-verl glue: {getattr(owner, '__name__', type(owner).__name__)}.{name} not found in verl "
            f"{verl.__version__}; the glue was checked against verl {', '.join(CHECKED_VERL_VERSIONS)}"
        )
    # Several glue modules may wrap the same method (layered); each one wraps it once.
    applied = getattr(original, WRAPPED_MARK, frozenset())
    kind = f"{make_wrapper.__module__}.{make_wrapper.__qualname__}"
    if kind in applied:
        return False
    wrapper = functools.wraps(original)(make_wrapper(original))
    setattr(wrapper, WRAPPED_MARK, applied | {kind})
    setattr(owner, name, wrapper)
    return True
