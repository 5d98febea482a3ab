"""Dependencies are declared where they are used: every third-party package the product's
modules import is named in pyproject.toml (the runtime list, or the extra that guards it), and
the runtime list names nothing the product does not import (a package only the tests or the
README's reading snippet use belongs to an extra)."""

from __future__ import annotations

import ast
import functools
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
PRODUCT = ("pipelines", "transforms", "models", "synth")


def _imported_top_level_modules() -> dict[str, set[str]]:
    """Top-level module -> the product files that import it (absolute imports only)."""
    imported: dict[str, set[str]] = {}
    for package in PRODUCT:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    imported.setdefault(name.split(".")[0], set()).add(str(path.relative_to(REPO)))
    return imported


def _third_party(imported: dict[str, set[str]]) -> dict[str, set[str]]:
    ours = set(PRODUCT) | {"bench", "tests"}
    return {
        module: files
        for module, files in imported.items()
        if module not in sys.stdlib_module_names and module not in ours
    }


def _declared() -> tuple[set[str], set[str]]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    extras = {
        canonicalize_name(Requirement(r).name)
        for requirements in project["optional-dependencies"].values()
        for r in requirements
    }
    return runtime, extras


@functools.cache
def _module_distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def _distributions(module: str) -> set[str]:
    return {canonicalize_name(d) for d in _module_distributions().get(module, [])}


def test_every_imported_package_is_declared():
    runtime, extras = _declared()
    undeclared = {
        module: sorted(files)
        for module, files in _third_party(_imported_top_level_modules()).items()
        if not _distributions(module) & (runtime | extras)
    }
    assert undeclared == {}, f"imported but not in pyproject.toml: {undeclared}"


def test_every_runtime_dependency_is_imported_by_the_product():
    runtime, _ = _declared()
    used: set[str] = set()
    for module in _third_party(_imported_top_level_modules()):
        used |= _distributions(module)
    assert runtime - used == set(), "runtime dependencies no product module imports"
