"""pyproject.toml declares every third-party import of kdtune/: an import line of the package names a distribution of
``[project].dependencies`` or of one of its extras, an optional one (an extra's) is imported only inside functions, and
no core dependency is stale (imported by nothing, nor loaded by a library kdtune calls)."""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "kdtune"
# import name → distribution, where the installed metadata cannot say (an extra not installed here)
NOT_INSTALLED = {"torchvision": "torchvision", "mlflow": "mlflow", "wandb": "wandb", "h5py": "h5py"}
# imported, but installed by the distribution that pins it exactly (declaring it apart would fight that pin)
PROVIDED_BY = {"pydantic_core": "pydantic"}
# loaded by a library kdtune calls, never by an import line of kdtune: declared for what needs it
INDIRECT = {"pyarrow": "DataFrame.to_parquet / read_parquet", "jinja2": "pandas' Styler (the LaTeX tables)"}
# the extra each optional import belongs to
OPTIONAL = {"torchvision": "download", "h5py": "data", "mlflow": "mlflow", "wandb": "wandb"}


def _name(requirement: str) -> str:
    """The PEP 503 normalised name of a requirement string (``ray[tune]>=2.60`` → ``ray``)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def declared() -> tuple[set[str], dict[str, set[str]]]:
    """The core dependencies and each extra's (dev, the developers' tools, left out: kdtune never imports them)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = {k: {_name(r) for r in v} for k, v in project.get("optional-dependencies", {}).items() if k != "dev"}
    return {_name(r) for r in project["dependencies"]}, extras


def imports() -> dict[str, dict[str, bool]]:
    """Top-level third-party import name → file → whether every import of it there sits inside a function."""
    out: dict[str, dict[str, bool]] = {}
    for path in sorted(PKG.rglob("*.py")):
        tree = ast.parse(path.read_text())
        inner = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(f)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "kdtune":
                    continue
                where = str(path.relative_to(REPO))
                out.setdefault(top, {})[where] = out.get(top, {}).get(where, True) and id(node) in inner
    return out


@functools.cache
def _installed() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distributions(module: str) -> set[str]:
    """The distributions an import name may come from (``mlflow``: mlflow or mlflow-skinny)."""
    if module in PROVIDED_BY:
        return {PROVIDED_BY[module]}
    found = _installed().get(module)
    if not found:
        assert module in NOT_INSTALLED, f"{module}: not installed here and not in NOT_INSTALLED"
        return {NOT_INSTALLED[module]}
    return {_name(d) for d in found}


def test_every_import_is_declared():
    core, extras = declared()
    known = core.union(*extras.values())
    missing = {m: sorted(files) for m, files in imports().items() if not distributions(m) & known}
    assert not missing, f"imported by kdtune but not declared in pyproject.toml: {missing}"


def test_optional_imports_are_an_extras_and_inside_functions():
    core, extras = declared()
    found = imports()
    for module, extra in OPTIONAL.items():
        dists = distributions(module)
        assert not dists & core, f"{module} ({dists}) is optional: it must not be a core dependency"
        assert dists & extras.get(extra, set()), f"{module} ({dists}) belongs to the extra {extra!r}"
        top_level = [f for f, inside in found.get(module, {}).items() if not inside]
        assert not top_level, f"{module} is imported at module level in {top_level}: kdtune must import without it"


def test_libraries_loaded_by_libraries_are_declared():
    core, _ = declared()
    assert {_name(d) for d in INDIRECT} <= core


def test_no_core_dependency_is_stale():
    core, _ = declared()
    used = set().union(*(distributions(m) for m in imports())) | {_name(d) for d in INDIRECT}
    assert not core - used, f"declared in pyproject.toml but imported by nothing in kdtune/: {sorted(core - used)}"


def test_the_scan_sees_what_kdtune_imports():
    """The scan is not vacuous: it finds the packages every part of kdtune stands on, and the optional ones."""
    found = imports()
    assert {"torch", "ray", "pandas", "pydantic", "filelock", "yaml", "optuna"} <= set(found)
    assert {"torchvision", "mlflow", "wandb", "h5py"} <= set(found)
    assert distributions("yaml") == {"pyyaml"} and distributions("sklearn") == {"scikit-learn"}
