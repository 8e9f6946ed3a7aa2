"""Imports run one way, and the folders show the layers (docs/getting-started.md, "The package"):

    ground (errors, registry, yamlio, labels, validation, rundir)
    < train/ (one trial) and results/ (a run folder read back: no torch, no sweep reader)   siblings
    < spec/ (the sweep file) < plan < run/ (executing a plan) and analysis/                  siblings
    < tuning/ and repro/ (papers, claims, studies)                                           siblings
    < app (the use cases) < cli < __main__

A module imports only from lower layers, from its own folder, or (ground) from the ground modules before it; no
module imports another in a circle (a package's face importing its own members to register them aside)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "kdtune"
GROUND = ("kdtune.errors", "kdtune.registry", "kdtune.yamlio", "kdtune.labels", "kdtune.validation", "kdtune.rundir")
LAYERS = [  # (level, the modules or folders of it); modules of one level but different entries never import each other
    (1, ("kdtune.train", "kdtune.results")),
    (2, ("kdtune.spec",)),
    (3, ("kdtune.plan",)),
    (4, ("kdtune.run", "kdtune.analysis")),
    (5, ("kdtune.tuning", "kdtune.repro")),
    (6, ("kdtune.app",)),
    (7, ("kdtune.cli",)),
    (8, ("kdtune.__main__",)),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def imports(module: str, in_functions: bool | None = None) -> set[str]:
    """The kdtune modules ``module`` imports (a name imported from a package counts as its module where it is one):
    only inside functions (True), only at module level (False), or all (None)."""
    tree = ast.parse(MODULES[module].read_text())
    inner = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(f)}
    out = set()
    for n in ast.walk(tree):
        if in_functions is not None and (id(n) in inner) != in_functions:
            continue
        if isinstance(n, ast.ImportFrom) and n.module and n.module.split(".")[0] == "kdtune":
            out |= {f"{n.module}.{a.name}" if f"{n.module}.{a.name}" in MODULES else n.module for a in n.names}
        elif isinstance(n, ast.Import):
            out |= {a.name for a in n.names if a.name.split(".")[0] == "kdtune"}
    return {m for m in out if m != module}


def place(module: str) -> tuple[int, str]:
    """A module's layer and the folder (or module) of it that it belongs to; the package's face is ground."""
    if module in (*GROUND, "kdtune"):
        return 0, module
    for level, entries in LAYERS:
        for entry in entries:
            if module == entry or module.startswith(entry + "."):
                return level, entry
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to docs/getting-started.md's table)")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_below_it_or_in_its_own_folder(module):
    level, home = place(module)
    for target in sorted(imports(module)):
        their_level, theirs = place(target)
        if level == 0:  # the ground modules: each only those before it (and kdtune's face, its version)
            allowed = target == "kdtune" or (target in GROUND and GROUND.index(target) < GROUND.index(module))
            assert allowed or module == "kdtune", f"{module} (ground) imports {target}"
        else:
            assert their_level < level or theirs == home, f"{module} ({home}, layer {level}) imports {target} ({theirs})"


def test_no_module_imports_another_in_a_circle():
    faces = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    graph = {m: {t for t in imports(m) if not (m in faces and t.startswith(m + "."))} for m in MODULES}
    seen: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(m: str, path: list[str]) -> None:
        seen[m] = 1
        for t in graph.get(m, ()):
            assert seen.get(t) != 1, "import circle: " + " → ".join([*path[path.index(t) :], t])
            if t not in seen:
                visit(t, [*path, t])
        seen[m] = 2

    for m in MODULES:
        if m not in seen:
            visit(m, [m])


def test_the_layers_hold_every_module_and_name_no_missing_one():
    named = [e for _, entries in LAYERS for e in entries] + list(GROUND)
    assert all(e in MODULES for e in named), [e for e in named if e not in MODULES]
    assert {place(m)[1] for m in MODULES} <= {*named, "kdtune"}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("kdtune.tuning.")))
def test_tuning_imports_what_it_runs_at_the_top(module):
    late = [m for m in imports(module, in_functions=True) if m.startswith(("kdtune.run", "kdtune.results", "kdtune.train",
                                                                            "kdtune.plan"))]  # fmt: skip
    assert not late, f"{module} imports {late} inside functions"


def test_trial_config_lives_below_planner_and_trainer():
    from kdtune import plan
    from kdtune.train import config, trainer

    assert plan.TrialConfig is config.TrialConfig and trainer.TrialConfig is config.TrialConfig
    assert "kdtune.train.config" in imports("kdtune.train.trainer") and "kdtune.train.config" in imports("kdtune.plan")


@pytest.mark.parametrize(
    "module",
    ["results.reader", "results.status", "results.tables", "repro.claims", "repro.reference", "labels", "rundir", "app", "cli"],
)
def test_reading_a_run_folder_imports_neither_torch_nor_the_sweep_reader(module):
    """The reader of a run folder and what reads its table (status, tables, claims, reference checks), and the command
    line itself, stay light: ``kdtune status`` and ``kdtune report`` start without torch and never read a sweep file."""
    code = f"import sys, kdtune.{module}; print(sorted(m for m in ('torch', 'kdtune.spec', 'kdtune.plan') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"import kdtune.{module} loads {out}"
