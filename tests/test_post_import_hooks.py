"""The post-import hooks the plugin registers its components with (no verl needed: plain modules)."""

import importlib
import importlib.util
import sys

import pytest

from onethinker_verl import post_import_hooks


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A fresh package ``hooked_pkg`` with a submodule ``extended`` that records its own execution."""
    root = tmp_path / "hooked_pkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "extended.py").write_text("EXECUTED = []\nEXECUTED.append('body')\nREGISTRY = {}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "hooked_pkg.extended"
    for name in ("hooked_pkg", "hooked_pkg.extended"):
        sys.modules.pop(name, None)


def test_callback_runs_once_after_the_module_body_and_not_on_a_mere_lookup(package):
    seen = []

    def register(module):
        seen.append(list(module.EXECUTED))  # the body has run: the registry exists
        module.REGISTRY["ours"] = True

    post_import_hooks.when_imported(package, register)
    assert importlib.util.find_spec(package) is not None and seen == []  # looking up does not use it up
    module = importlib.import_module(package)
    assert seen == [["body"]] and module.REGISTRY == {"ours": True}
    assert type(module.__loader__).__name__ == "SourceFileLoader"  # the module keeps its real loader
    assert package not in post_import_hooks.pending_modules()
    importlib.reload(module)
    assert seen == [["body"]]  # once


def test_already_imported_module_gets_the_callback_at_once(package):
    module = importlib.import_module(package)
    post_import_hooks.when_imported(package, lambda m: m.REGISTRY.setdefault("late", True))
    assert module.REGISTRY == {"late": True}
