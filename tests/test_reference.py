"""Published tables as data (kdtune.repro.reference): loading with one-line errors, kdtune's cells beside the paper's,
the claims' verdicts, and the three formats (the LaTeX compiled with pdflatex)."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import yaml

from kdtune.cli import main
from kdtune.errors import KdtuneError
from kdtune.repro.claims import CONTRADICTED, HOLDS, UNTESTABLE, Evidence
from kdtune.repro.reference import ReferenceCheck, RefTable, check_tables, load_reference, render_checks, resolve_target
from kdtune.results.tables import SETTINGS
from tests.latex import compile_latex, needs_pdflatex
from tests.test_claims import CELLS, results


def check_table(
    table: RefTable,
    evidence: Evidence,
    *,
    interval: str = "ci95",
    test: str = "auto",
    alpha: float = 0.05,
    correction: str = "holm",
    seed: int = 0,
) -> ReferenceCheck:
    """One reference table alone (its claims one family): :func:`check_tables` of one table."""
    opts = {"interval": interval, "test": test, "alpha": alpha, "correction": correction, "seed": seed}
    return check_tables([table], evidence, **opts)[0]  # type: ignore[arg-type]


REF = {
    "id": "madeup",
    "citation": "A. Author. Made up. 2026.",
    "models": {"Perceptron": "MLP", "Convnet": "CNN"},
    "tables": {
        "table6": {
            "title": "Table 6: translated accuracy",
            "where": "Table 6",
            "n": 4,
            "spread": "std",
            "fixed": {"eval_set": "translated", "student": "MLP"},
            "values": [
                {"teacher": "data", "metric": "accuracy", "mean": 0.31, "spread": 0.01},  # inside kdtune's interval
                {"teacher": "CNN", "temperature": 5, "metric": "accuracy", "mean": 0.60, "spread": 0.02},  # outside
                {"teacher": "data", "metric": "mce", "kdtune_metric": None, "mean": 0.2, "spread": 0.01, "note": "max ECE"},
                {"teacher": "LSTM", "metric": "accuracy", "mean": 0.5, "spread": None},
            ],
            "claims": [
                {
                    "id": "kd-helps",
                    "quote": "distillation helps",
                    "where": "section 3.2",
                    "check": "accuracy[student=MLP, teacher=CNN, eval_set=translated] > "
                    "accuracy[student=MLP, teacher=data, eval_set=translated]",
                },
                {
                    "id": "self-helps",
                    "check": "accuracy[student=MLP, teacher=MLP, eval_set=translated] > "
                    "accuracy[student=MLP, teacher=data, eval_set=translated]",
                },
                {"id": "lstm", "check": "accuracy[student=LSTM, teacher=data, eval_set=translated] > 0.5"},
                {
                    "id": "comparable",
                    "check": "accuracy[student=CNN, teacher=data, eval_set=translated] ≈ "
                    "accuracy[student=MLP, teacher=data, eval_set=translated] within 0.05",
                    "margin": "5 points: the paper's 'comparable'",
                },
            ],
        },
        "figure7": {"title": "Figure 7: similarity", "claims": []},
    },
}


@pytest.fixture
def ref_file(tmp_path):
    path = tmp_path / "madeup.yaml"
    path.write_text(yaml.safe_dump(REF, allow_unicode=True))
    return path


def test_published_cells_beside_kdtunes_with_the_paper_inside_or_not(ref_file):
    table = resolve_target(f"{ref_file}:table6")
    check = check_table(table, Evidence(results(), None, SETTINGS), interval="ci95")
    v = check.values
    data, kd, mce, lstm = (v.iloc[i] for i in range(4))
    x = np.array(CELLS[("MLP", "data")])
    half = float(np.std(x, ddof=1) / 2 * 3.182446305284263)  # t(0.975, 3) × s.e.
    assert data["mean"] == pytest.approx(x.mean()) and data["ci95"] == pytest.approx(half, rel=1e-6)
    assert data["diff"] == pytest.approx(x.mean() - 0.31) and data["paper_inside"] is True and data["n"] == 4
    assert kd["paper_inside"] is False and kd["diff"] == pytest.approx(np.mean(CELLS[("MLP", "CNN")]) - 0.60)
    assert mce["why"] == "not computed by kdtune: max ECE" and np.isnan(mce["mean"])
    assert "no teacher=LSTM" in lstm["why"] and lstm["paper_inside"] is None
    verdicts = {x.claim.id: x.verdict for x in check.verdicts}
    assert verdicts == {"kd-helps": HOLDS, "self-helps": CONTRADICTED, "lstm": UNTESTABLE, "comparable": "holds"}


def test_the_three_formats(ref_file):
    table = resolve_target(f"{ref_file}:table6")
    check = check_table(table, Evidence(results(), None, SETTINGS))
    md = render_checks([check], "markdown")
    assert "**madeup:table6 — Table 6: translated accuracy: the paper beside kdtune**" in md
    # paper vs kdtune: Welch's t-test on the two summaries, the paper's own n and SD against kdtune's
    x = np.array(CELLS[("MLP", "data")])
    p = scipy.stats.ttest_ind_from_stats(x.mean(), x.std(ddof=1), 4, 0.31, 0.01, 4, equal_var=False).pvalue
    assert f"| data |  | accuracy | 0.310 ± 0.010 | 0.305 ± 0.021 (4) | -0.005 | consistent, p {p:.2g} |" in md  # keys that vary
    assert "| CNN | 5 | accuracy | 0.600 ± 0.020 | 0.505 ± 0.021 (4) | -0.095 | differs, p" in md
    assert "Every cell: student = MLP, eval_set = translated." in md  # and those that do not, once
    assert "| kd-helps |" in md and "**holds**" in md and "**contradicted**" in md
    assert "Holm over 4 tests (3 performed, 1 untestable counted as p = 1: madeup:table6/lstm)" in md
    assert "- lstm is untestable: accuracy[student=LSTM, teacher=data, eval_set=translated]: no student=LSTM" in md
    csv = pd.read_csv(io.StringIO(render_checks([check], "csv")))
    assert set(csv["part"]) == {"value", "claim"} and {"paper_mean", "mean", "diff", "verdict", "p_adjusted"} <= set(csv)
    tex = render_checks([check], "latex")
    assert r"$>$" in tex and r"$\approx$" in tex and "<" not in tex.replace("$<$", "")


@needs_pdflatex
def test_the_latex_compiles(ref_file, tmp_path):
    check = check_table(resolve_target(f"{ref_file}:table6"), Evidence(results(), None, SETTINGS))
    body = "\n".join([r"\tiny", render_checks([check], "latex")])
    compile_latex(body, tmp_path, "ref", extra=(r"\usepackage[landscape,margin=1cm]{geometry}",))


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"nosuch": 1}, "madeup.yaml: nosuch: unknown key; allowed here: id, citation,"),
        ({"citation": None}, "citation: "),
        ({"tables": {"t": {"where": "x"}}}, "tables.t.title: is required"),
        ({"tables": {"t": {"title": "x", "spread": "sd"}}}, "tables.t.spread: 'sd'; one of std, se, ci95, none"),
        (
            {"tables": {"t": {"title": "x", "values": [{"metric": "accuracy", "mean": 1, "studnt": "MLP"}]}}},
            "values[0].studnt: unknown key; allowed here: report keys (student,",
        ),
        ({"tables": {"t": {"title": "x", "values": [{"metric": "accuracy"}]}}}, "values[0].mean: is required"),
        ({"tables": {"t": {"title": "x", "values": [{"metric": "accuracy", "mean": "high"}]}}}, "must be numbers"),
        ({"tables": {"t": {"title": "x", "claims": [{"id": "a", "check": "accuracy[x=1] > 0"}]}}}, "claim a: unknown key 'x'"),
        (
            {"tables": {"t": {"title": "x", "claims": [{"id": "a", "check": "accuracy[student=A] > 0"}] * 2}}},
            "claim id 'a' used twice",
        ),
    ],
)
def test_a_malformed_reference_file_is_one_line(tmp_path, change, says):
    path = tmp_path / "madeup.yaml"
    path.write_text(yaml.safe_dump({**REF, **change}, allow_unicode=True))
    with pytest.raises(KdtuneError) as e:
        load_reference(str(path))
    assert says in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_report_reference_checks_its_target_before_reading_the_run(ref_file, tmp_path, capsys):
    for target, says in [
        ("madeup", "must be FILE:TABLE"),
        ("nosuch:table1", "unknown reference 'nosuch'"),
        (f"{ref_file}:table9", "no table 'table9'"),
    ]:
        assert main(["report", str(tmp_path / "no_such_run"), "--reference", target]) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1, err


def _run_folder(tmp_path, data="digits", shift=1):
    """A run folder holding just the stored configs of the made-up results' trials (what data_differences reads)."""
    run = tmp_path / "run"
    for tid, student in results()[["trial_id", "student"]].drop_duplicates().itertuples(index=False):
        folder = run / "trials" / tid
        folder.mkdir(parents=True)
        evals = [{"name": "test", "source": "test", "corruption": "identity", "params": {}},
                 {"name": "translated", "source": "test", "corruption": "translate", "params": {"shift": shift}}]  # fmt: skip
        config = {"arch": student.lower(), "data": {"name": data, "eval_sets": evals}}
        (folder / "config.json").write_text(json.dumps({"config": config, "id": tid}))
    return run


def test_other_data_than_the_papers_is_said_first_and_marks_the_comparison(ref_file, tmp_path):
    raw = yaml.safe_load(ref_file.read_text())
    raw["tables"]["table6"]["data"] = {
        "name": "mnist",
        "eval_sets": {"translated": {"source": "test", "corruption": "translate", "shift": 3}},
        "archs": {"MLP": "mlp", "CNN": "cnn"},
    }
    ref_file.write_text(yaml.safe_dump(raw, allow_unicode=True))
    table = resolve_target(f"{ref_file}:table6")
    check = check_table(table, Evidence(results(), _run_folder(tmp_path), SETTINGS))
    assert check.other == [
        "the run's data set is digits, not the paper's (mnist)",
        "eval set translated is translate shift=1 of test here, translate shift=3 of test in the paper",
    ]
    md = render_checks([check], "markdown")
    first = md.splitlines()[0]
    assert first.startswith("**Other data (madeup:table6): the run's data set is digits, not the paper's (mnist)")
    assert "| other data; consistent, p" in md and "**holds here**" in md and "**opposite here**" in md
    same = check_table(table, Evidence(results(), _run_folder(tmp_path / "same", "mnist", 3), SETTINGS))
    assert same.other == [] and not same.here and "Other data" not in render_checks([same], "markdown")


@pytest.mark.slow
def test_report_reference_on_the_digits_says_first_that_the_data_are_not_the_papers(tiny_raw, kdtune_run, capsys):
    """Issue 28 item 3: ``kdtune report RUN --reference abnar2021:table6`` on a digits run (the quickstart's data)
    says in its first line that the data set is not the paper's MNIST, marks the comparison, and no spread claim at
    n = 2 gets a verdict other than untestable."""
    raw = tiny_raw | {"data": {"name": "digits", "eval_sets": ["test", "translated", "scaled"]}}
    raw["grid"] = raw["grid"] | {"students": ["CNN", "MLP"], "teachers": ["data", "CNN", "MLP"], "temperature": [5]}
    raw["train"] = raw["train"] | {"epochs": 1}
    sweep, done = kdtune_run(raw)
    assert done.returncode == 0, done.stderr
    run = str(sweep.parent / "run")
    assert main(["report", run, "--reference", "abnar2021:table5", "--reference", "abnar2021:table6"]) == 0
    md = capsys.readouterr().out
    first = md.splitlines()[0]
    assert "Other data (abnar2021:table5): the run's data set is digits, not the paper's (mnist)" in first
    assert "eval set translated is translate shift=1 of test here, translate shift=3 of test in the paper" in first
    assert "other data; " in md and "paper inside" not in md
    assert main(["report", run, "--reference", "abnar2021:table5", "--reference", "abnar2021:table6", "--format", "csv"]) == 0
    claims = pd.read_csv(io.StringIO(capsys.readouterr().out)).query("part == 'claim'")
    spreads = claims[claims["test"] == "spread"]
    assert len(spreads) >= 1 and set(spreads["link_verdict"]) == {UNTESTABLE}
    assert spreads["why"].str.contains("no relabelling can reach").all()
