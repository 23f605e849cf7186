"""Run a callback right after a given module has been imported, by whoever imports it.

The plugin loads inside ``import verl`` in every process, but most of what it extends (the advantage
estimator registry in ``verl.trainer.ppo.core_algos``, the reward-manager registry, the trainers) costs
seconds to import and is not needed by most of those processes. Registering eagerly would import all of
it; instead :func:`when_imported` defers each registration until verl itself imports the module being
extended. Implemented as a ``sys.meta_path`` finder that, for the watched names only, wraps the real
loader so that the callbacks run once the module's code has finished executing. A module that is
already imported gets its callbacks at once. Nothing here imports verl.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Callable
from types import ModuleType

Callback = Callable[[ModuleType], None]


class _LoaderRunningCallbacks(importlib.abc.Loader):
    """Delegates to the real loader, then runs the callbacks; the module keeps its real loader."""

    def __init__(self, loader, module_name: str, finder: "_PostImportFinder"):
        self._loader = loader
        self._module_name = module_name
        self._finder = finder

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # inspect, linecache and importlib.reload see the module's own loader, not this wrapper.
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        module = sys.modules.get(module.__name__, module)
        for callback in self._finder.take(self._module_name):
            callback(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for a watched module name it asks the other finders and wraps their loader.

    The callbacks are taken when the module has been executed, not when its spec is found: code that only
    looks a module up (``importlib.util.find_spec``) must not use them up.
    """

    def __init__(self):
        self.pending: dict[str, list[Callback]] = {}
        self._lock = threading.Lock()
        self._searching = threading.local()

    def find_spec(self, fullname, path, target=None):
        if fullname not in self.pending or getattr(self._searching, "active", False):
            return None
        self._searching.active = True
        try:
            spec = _find_spec_without(self, fullname, path, target)
        finally:
            self._searching.active = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _LoaderRunningCallbacks(spec.loader, fullname, self)
        return spec

    def take(self, module_name: str) -> list[Callback]:
        """The callbacks waiting for ``module_name`` (removed); stops watching once none is left."""
        with self._lock:
            callbacks = self.pending.pop(module_name, [])
            if not self.pending and self in sys.meta_path:
                sys.meta_path.remove(self)  # nothing left to watch: no cost on later imports
        return callbacks


def _find_spec_without(skipped, fullname, path, target):
    for finder in list(sys.meta_path):
        if finder is skipped or not hasattr(finder, "find_spec"):
            continue
        spec = finder.find_spec(fullname, path, target)
        if spec is not None:
            return spec
    return None


_FINDER = _PostImportFinder()


def when_imported(module_name: str, callback: Callback) -> None:
    """Call ``callback(module)`` once ``module_name`` has been imported (now, if it already is).

    The callback runs inside the import statement that loaded the module, after the module's own code;
    exceptions it raises propagate into that import, so callers catch and report their own failures. A
    module whose import is in progress when this is called is not hooked (its loader already runs); the
    plugin calls this from ``import verl``, before any module it watches starts importing.
    """
    module = sys.modules.get(module_name)
    if module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False):
        callback(module)
        return
    with _FINDER._lock:
        _FINDER.pending.setdefault(module_name, []).append(callback)
        if _FINDER not in sys.meta_path:
            sys.meta_path.insert(0, _FINDER)


def pending_modules() -> list[str]:
    """Watched module names whose import has not happened yet."""
    with _FINDER._lock:
        return sorted(_FINDER.pending)
