"""The package graph of ``onethinker_verl``: nothing outside ``evaluate/`` imports the evaluation package
(training never loads it), and the evaluation's two protocols (``evaluate/strict``, ``evaluate/reference``)
do not import each other. Read from the source with :mod:`ast`, so lazy imports inside functions count."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "onethinker_verl"


def module_name(path: Path, root: Path = PACKAGE_ROOT) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, root: Path = PACKAGE_ROOT) -> set[str]:
    """Every module ``path`` imports, absolute (relative imports resolved against ``path``'s package)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            # ``from onethinker_verl import evaluate`` imports the sub-module.
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return found


def modules_under(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def is_within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_import_resolution_sees_absolute_relative_and_lazy_imports(tmp_path):
    """The parser the checks below rely on finds each kind of import (else they would pass vacuously)."""
    package = tmp_path / "onethinker_verl" / "reward"
    package.mkdir(parents=True)
    source = package / "probe.py"
    source.write_text(
        "import onethinker_verl.evaluate.report\n"
        "from ..evaluate import suite\n"
        "def lazy():\n    from onethinker_verl.evaluate.strict.metrics import score_item\n"
    )
    found = imported_modules(source, root=tmp_path / "onethinker_verl")
    assert {"onethinker_verl.evaluate.report", "onethinker_verl.evaluate.suite", "onethinker_verl.evaluate.strict.metrics"} <= found


def test_nothing_outside_evaluate_imports_evaluate():
    evaluate = PACKAGE_ROOT / "evaluate"
    offenders = [
        f"{path.relative_to(PACKAGE_ROOT.parent)} imports {module}"
        for path in modules_under(PACKAGE_ROOT)
        if evaluate not in path.parents
        for module in sorted(imported_modules(path))
        if is_within(module, "onethinker_verl.evaluate")
    ]
    assert len(modules_under(PACKAGE_ROOT)) > 50
    assert not offenders, offenders


@pytest.mark.parametrize(
    ("protocol", "other"),
    [("onethinker_verl.evaluate.strict", "onethinker_verl.evaluate.reference"), ("onethinker_verl.evaluate.reference", "onethinker_verl.evaluate.strict")],
)
def test_evaluation_protocols_do_not_import_each_other(protocol, other):
    folder = PACKAGE_ROOT.joinpath(*protocol.split(".")[1:])
    sources = modules_under(folder)
    assert len(sources) >= 3, f"{folder} holds the {protocol.rsplit('.', 1)[1]} protocol"
    offenders = [
        f"{path.name} imports {module}" for path in sources for module in sorted(imported_modules(path)) if is_within(module, other)
    ]
    assert not offenders, offenders


def test_shared_benchmark_scoring_does_not_import_evaluate():
    """The reference-rule scoring used by training's validation and by evaluation lives outside both."""
    sources = modules_under(PACKAGE_ROOT / "benchmark_scoring")
    assert sources
    assert not [
        path.name for path in sources for module in imported_modules(path) if is_within(module, "onethinker_verl.evaluate")
    ]
