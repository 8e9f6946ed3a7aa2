"""The README is the front door and docs/ the manual: every flag of every command is documented in one of them,
and so are the report keys (a flag added without documentation fails here); the README's quickstart tables are
what kdtune prints."""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from kdtune.cli import build_parser
from kdtune.labels import REPORT_KEYS as KEYS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# the hand-written pages (docs/results/ holds reports that kdtune study --export wrote, not documentation of flags)
DOCS = {p.relative_to(ROOT).as_posix(): p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))}
DOCUMENTED = "\n".join([README, *DOCS.values()])


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_flag_of_every_command_is_in_the_readme_or_the_docs(command):
    sub = _subcommands()[command]
    assert f"kdtune {command}" in DOCUMENTED
    flags = [s for a in sub._actions for s in a.option_strings if s.startswith("--") and s != "--help"]
    missing = [f for f in flags if f not in DOCUMENTED]
    assert not missing, f"kdtune {command}: {missing} not in README.md nor docs/*.md"


def test_the_docs_pages_are_there():
    """The flag test above reads docs/*.md: it must not pass on an empty or missing folder."""
    assert {"docs/commands.md", "docs/sweep-files.md", "docs/tuning.md", "docs/analyses.md"} <= set(DOCS)


def test_the_report_keys_are_listed_and_latex_needs_booktabs():
    assert all(f"`{k}`" in DOCUMENTED for k in KEYS)
    assert "booktabs" in DOCUMENTED


def _tables(text: str) -> list[str]:
    """The markdown tables of ``text`` (title line and rows), in order, each as one block of lines."""
    blocks, current = [], []
    for line in text.splitlines():
        if line.startswith("**") and line.endswith("**") and "over" in line:
            current = [line]
            blocks.append(current)
        elif current and line.startswith("|"):
            current.append(line)
        elif current and line.strip() and not line.startswith("|"):
            current = []
    return ["\n".join(b) for b in blocks]


CELL = re.compile(r"(\d+\.\d+) ± (\d+\.\d+) \((\d+)\)")
# how the README tables were rounded: a printed mean is within half a unit of its last digit of the exact one
README_ROUNDING = 0.0005
# the README test's family: all cells of its tables together fail it on a machine whose kernels redraw every
# seed with probability at most ALPHA
ALPHA = 0.05


def _cells(table: str) -> tuple[str, dict[tuple[str, str, str], tuple[float, float, int]]]:
    """A quickstart table (title line and rows) as (metric, {(student, eval set, teacher): (mean, std, n)})."""
    lines = table.splitlines()
    metric = lines[0].strip("*").split(":")[0]
    header = [c.strip() for c in lines[1].strip("|").split("|")]
    cells = {}
    for line in lines[3:]:
        row = [c.strip() for c in line.strip("|").split("|")]
        for column, text in zip(header[1:], row[1:], strict=True):
            eval_set, teacher = column.split(" / ")
            mean, std, n = CELL.fullmatch(text).groups()
            cells[(row[0], eval_set, teacher)] = (float(mean), float(std), int(n))
    return metric, cells


def _against_the_readme(tables: list[str], csv: str) -> pd.DataFrame:
    """Every cell of the README ``tables`` beside this run's exact mean and std (``csv``: what ``kdtune report
    --format csv`` prints), with the tolerance its mean is held to (see the quickstart test) and ``inside``."""
    now = pd.read_csv(io.StringIO(csv)).set_index(["metric", "student", "eval_set", "teacher"])
    rows = []
    for table in tables:
        metric, readme = _cells(table)
        for (student, eval_set, teacher), (mean, std, n) in readme.items():
            cell = now.loc[(metric, student, eval_set, teacher)]
            assert int(cell["n"]) == n, f"{metric} {student} {eval_set}/{teacher}: n = {int(cell['n'])}, the README's {n}"
            rows.append({"metric": metric, "student": student, "eval_set": eval_set, "teacher": teacher, "n": n,
                         "readme": mean, "now": cell["mean"], "var": (std**2 + cell["std"] ** 2) / 2})  # fmt: skip
    cells = pd.DataFrame(rows)
    pooled = cells.groupby(["metric", "student", "eval_set"])
    cells["sigma"] = pooled["var"].transform("mean") ** 0.5  # the cells' seed SD, README and this run pooled
    cells["df"] = pooled["n"].transform(lambda n: 2 * (n - 1).sum())
    t = stats.t.ppf(1 - ALPHA / (2 * len(cells)), cells["df"])
    cells["tolerance"] = README_ROUNDING + t * cells["sigma"] * (2 / cells["n"]) ** 0.5
    cells["inside"] = (cells["readme"] - cells["now"]).abs() <= cells["tolerance"]
    return cells


def test_a_readme_mean_is_held_within_a_bonferroni_t_interval_of_the_pooled_seed_spread():
    """Hand-computed: one row of two cells (4 cells in the family), n = 2 seeds, README stds 0.003 and 0.004,
    this run's 0.005 and 0.002: σ² = mean(0.003² + 0.005², 0.004² + 0.002²)/2 = 1.35e-5 with 4 df; the t
    distribution at 4 df has F(t) = 1/2 + t(t² + 6)/(2(t² + 4)^(3/2)), which is 1 - 0.05/8 at t = 4.3147;
    tolerance = 0.0005 + 4.3147·σ·√(2/2) = 0.016353."""
    readme = [
        "**accuracy: mean ± std (n) over seeds**\n| student | test / data | test / CNN |\n|---|:-:|:-:|\n"
        "| MLP | 0.900 ± 0.003 (2) | 0.800 ± 0.004 (2) |",
        "**ece: mean ± std (n) over seeds**\n| student | test / data | test / CNN |\n|---|:-:|:-:|\n"
        "| MLP | 0.100 ± 0.000 (2) | 0.200 ± 0.000 (2) |",
    ]
    header = "student,eval_set,teacher,mean,std,n,n_expected,metric\n"
    ece = "MLP,test,data,0.1,0,2,2,ece\nMLP,test,CNN,0.2,0,2,2,ece\n"
    for moved, inside in ((0.0163, True), (0.0164, False)):
        csv = header + f"MLP,test,data,{0.9 + moved},0.005,2,2,accuracy\nMLP,test,CNN,0.8,0.002,2,2,accuracy\n" + ece
        cells = _against_the_readme(readme, csv).set_index(["metric", "teacher"])
        assert cells.loc[("accuracy", "data"), "tolerance"] == pytest.approx(0.016353, abs=1e-6)
        assert cells.loc[("accuracy", "data"), "inside"] == inside and cells["inside"].sum() == 3 + inside
    with pytest.raises(AssertionError, match="n = 3, the README's 2"):
        _against_the_readme(readme, csv.replace("0.1,0,2,2,ece", "0.1,0,3,3,ece"))


@pytest.mark.slow
@pytest.mark.simd
def test_the_quickstart_tables_in_the_readme_are_what_kdtune_run_prints_within_the_spread_of_its_seeds(tmp_path):
    """The README's quickstart tables, and their copy in the case studies' results, against `kdtune run
    sweeps/quickstart.yaml` now: the same tables (titles, rows, columns, n), every mean within a tolerance
    derived from the cell's seeds.

    Why a tolerance: another CPU runs other SIMD kernels (the README names those that printed it), and a CNN
    trained on them follows another path. Measured under AVX2 and baseline kernels (``python
    bench/simd_spread.py``, docs/case-studies.md), a CNN's cells then move about as far as if its seeds were
    drawn again (up to 2.2 standard errors of the difference), while MLPs trained from data move by 1e-7. So a
    README mean and this run's are compared as two means of n seeds each: their difference must lie within a
    two-sided t interval of its standard error σ·√(2/n), Bonferroni-corrected over the tables' cells (ALPHA
    0.05, 36 cells: t = 5.6 at 6 df), σ pooled over the cells of one student, eval set and metric (the teacher
    columns) in the README and in this run, plus README_ROUNDING. A change of kdtune's results larger than that
    fails here on every machine; exactness is for tests that compare two runs on one machine (test_ray,
    test_cluster, test_batched)."""
    copies = {}
    for name, text in {"README.md": README, "docs/case-studies.md": DOCS["docs/case-studies.md"]}.items():
        section = text.split("### Quickstart (embedded digits)", 1)[1].split("\n### ", 1)[0]
        copies[name] = _tables(section)
        assert len(copies[name]) == 2, name  # accuracy and ece
    expected = copies["README.md"]
    assert copies["docs/case-studies.md"] == expected
    out = tmp_path / "q"
    kdtune = [sys.executable, "-m", "kdtune"]
    done = subprocess.run(
        [*kdtune, "run", "sweeps/quickstart.yaml", "--out", str(out)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    shape = [CELL.sub(r"m ± s (\3)", t) for t in _tables(done.stdout)]
    assert shape == [CELL.sub(r"m ± s (\3)", t) for t in expected]
    metrics = ["--metric", "accuracy", "--metric", "ece"]
    report = subprocess.run(
        [*kdtune, "report", str(out), "--format", "csv", *metrics], capture_output=True, text=True, timeout=120, check=True
    )
    cells = _against_the_readme(expected, report.stdout)
    assert len(cells) == 36
    outside = cells[~cells["inside"]]
    assert outside.empty, f"README means outside the spread of their seeds:\n{outside.to_string()}"
