"""Imports run one way: config (what a trial is) below the planner and the trainer, the sweep file's reader
(spec) below the planner, the planner and trainer below ``kdtune tune``, which imports them at the top of its
module instead of reaching for them inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "kdtune"


def imports(module: str, in_functions: bool | None = None) -> set[str]:
    """The kdtune modules ``module`` (a path under kdtune/) imports; only those inside functions (True), only those
    at module level (False), or all (None)."""
    tree = ast.parse((PKG / module).read_text())
    inner = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(f)}
    out = set()
    for n in ast.walk(tree):
        if in_functions is not None and (id(n) in inner) != in_functions:
            continue
        if isinstance(n, ast.ImportFrom) and n.module:
            out |= {n.module} | {f"{n.module}.{a.name}" for a in n.names}
        elif isinstance(n, ast.Import):
            out |= {a.name for a in n.names}
    return {m for m in out if m == "kdtune" or m.startswith("kdtune.")}


def _under(names: set[str], *packages: str) -> list[str]:
    return sorted(m for m in names if any(m == p or m.startswith(p + ".") for p in packages))


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("plan.py", ("kdtune.tuning", "kdtune.train", "kdtune.execute", "kdtune.results")),
        ("train.py", ("kdtune.plan", "kdtune.spec", "kdtune.tuning", "kdtune.execute", "kdtune.results")),
        ("config.py", ("kdtune.spec", "kdtune.plan", "kdtune.train", "kdtune.tuning", "kdtune.execute", "kdtune.results")),
        ("spec.py", ("kdtune.plan", "kdtune.train", "kdtune.tuning", "kdtune.execute", "kdtune.results")),
        ("batched.py", ("kdtune.plan", "kdtune.spec", "kdtune.tuning", "kdtune.execute")),
        ("validation.py", ("kdtune.spec", "kdtune.plan", "kdtune.train", "kdtune.tuning", "kdtune.execute", "kdtune.results")),
        ("overrides.py", ("kdtune.spec", "kdtune.plan", "kdtune.train", "kdtune.tuning", "kdtune.execute", "kdtune.results")),
        # tables read the results' vocabulary (REPORT_KEYS, SETTING_COLUMNS …) from config, not the sweep file's reader
        ("report.py", ("kdtune.spec", "kdtune.plan", "kdtune.tuning", "kdtune.execute")),
        ("claims.py", ("kdtune.spec", "kdtune.plan", "kdtune.tuning", "kdtune.execute")),
        ("reference.py", ("kdtune.spec", "kdtune.plan", "kdtune.tuning", "kdtune.execute")),
        ("status.py", ("kdtune.spec", "kdtune.plan", "kdtune.tuning", "kdtune.execute")),
    ],
)
def test_lower_modules_do_not_import_upper_ones(module, forbidden):
    assert not _under(imports(module), *forbidden)


@pytest.mark.parametrize("module", sorted(p.name for p in (PKG / "tuning").glob("*.py")))
def test_tuning_imports_execute_results_batched_and_train_at_the_top(module):
    late = _under(imports(f"tuning/{module}", in_functions=True), "kdtune.execute", "kdtune.results", "kdtune.batched",
                  "kdtune.train", "kdtune.plan")  # fmt: skip
    assert not late, f"kdtune/tuning/{module} imports {late} inside functions"


def test_trial_config_lives_below_planner_and_trainer():
    from kdtune import config, plan, train

    assert plan.TrialConfig is config.TrialConfig and train.TrialConfig is config.TrialConfig
    assert "kdtune.config.TrialConfig" in imports("train.py") and "kdtune.config.read_tuned" in imports("plan.py")


@pytest.mark.parametrize("module", ["results", "status", "report", "claims", "reference", "labels", "rundir"])
def test_reading_a_run_folder_imports_neither_torch_nor_the_sweep_reader(module):
    """The reader of a run folder and what reads its table (status, report, claims, reference checks) stay light:
    ``kdtune status`` and ``kdtune report`` start without torch, and never read a sweep file to read results."""
    import subprocess
    import sys

    code = f"import sys, kdtune.{module}; print(sorted(m for m in ('torch', 'kdtune.spec', 'kdtune.plan') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"import kdtune.{module} loads {out}"
