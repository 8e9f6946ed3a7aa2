"""Failed, skipped, pending and damaged trials show in the cells (n/N) and in a note under each table."""

import io

import pandas as pd
import pytest

from kdtune.errors import KdtuneError
from kdtune.results.tables import render

INF = "FloatingPointError: training loss became inf in epoch 2"


def _row(student, teacher, seed, acc=None, status="ok", error="", eval_set="test", trial_id=None):
    """A results row; an unfinished trial has no eval set, no metrics and an error text."""
    finished = status == "ok"
    return {
        "trial_id": trial_id or f"{student}{teacher}{seed}".ljust(12, "0"),
        "student": student,
        "teacher": teacher,
        "seed": seed,
        "eval_set": eval_set if finished else None,
        "accuracy": acc,
        "agreement": acc if finished and teacher != "data" else None,
        "status": status,
        "error": error,
        "temperature": None if teacher == "data" else 4.0,
    }


@pytest.fixture
def partial():
    """MLP ← data: 3 of 4 seeds finished (seed 1 failed); MLP ← CNN: 2 of 2; CNN ← data: 0 of 2 (failed);
    CNN ← CNN: 0 of 2 (one skipped, one pending)."""
    rows = [_row("MLP", "data", s, a) for s, a in [(0, 0.96), (2, 0.97), (3, 0.97)]]
    rows.insert(1, _row("MLP", "data", 1, status="failed", error=INF, trial_id="3fa2c1d0aa55"))
    rows += [_row("MLP", "CNN", s, a) for s, a in [(0, 0.90), (1, 0.92)]]
    rows += [_row("CNN", "data", s, status="failed", error="RuntimeError: CUDA out of memory") for s in (0, 1)]
    rows += [
        _row("CNN", "CNN", 0, status="skipped", error="skipped: teacher 1234abcd did not finish", trial_id="5kip0000"),
        _row("CNN", "CNN", 1, status="pending", trial_id="9e9d0000"),
    ]
    return pd.DataFrame(rows)


def test_cells_show_finished_of_planned(partial):
    lines = render(partial, ["accuracy"], "markdown").splitlines()
    assert lines[2] == "| student | test / data | test / CNN |"
    assert lines[4:6] == [
        "| MLP | 0.967 ± 0.006 (3/4) | 0.910 ± 0.014 (2) |",
        "| CNN | failed (0/2) | – (0/2) |",
    ]


def test_note_lists_the_trials_that_did_not_finish(partial):
    lines = render(partial, ["accuracy"], "markdown").splitlines()
    assert lines[6:] == [
        "",
        "accuracy: fraction of examples classified correctly (0 to 1)",
        "",
        "5 trials did not finish; cells show (finished/planned):",
        f"- failed: MLP ← data, seed 1 (3fa2c1d0): {INF}",
        "- failed: CNN ← data, seed 0 (CNNdata0): RuntimeError: CUDA out of memory",
        "- failed: CNN ← data, seed 1 (CNNdata1): RuntimeError: CUDA out of memory",
        "- skipped: CNN ← CNN, seed 0 (5kip0000): teacher 1234abcd did not finish",
        "- pending: CNN ← CNN, seed 1 (9e9d0000)",
    ]


def test_latex_counts_them_in_the_caption_and_lists_them_in_comments_after_the_table(partial):
    text = render(partial, ["accuracy"], "latex")
    assert r"MLP & 0.967{${}\pm{}$0.006 (3/4)} & 0.910{${}\pm{}$0.014 (2)} \\" in text
    assert r"CNN & \multicolumn{1}{c}{failed (0/2)} & \multicolumn{1}{c}{– (0/2)} \\" in text
    assert "5 trials did not finish; cells show (finished/planned) (listed in comments after the table).}" in text
    tail = text.split("\\end{table}\n", 1)[1].splitlines()
    assert tail[0] == f"% failed: MLP ← data, seed 1 (3fa2c1d0): {INF}"
    assert len(tail) == 5


def test_an_unfinished_trial_counts_in_every_shown_eval_set():
    rows = [_row("MLP", "data", s, a, eval_set=e) for s, a in [(0, 0.9), (1, 0.8)] for e in ("test", "translated")]
    rows.append(_row("MLP", "data", 2, status="damaged", error="metrics.json: cannot read"))
    lines = render(pd.DataFrame(rows), ["accuracy"], "markdown").splitlines()
    assert lines[4] == "| MLP | 0.850 ± 0.071 (2/3) | 0.850 ± 0.071 (2/3) |"
    assert lines[-2:] == [
        "1 trial did not finish; cells show (finished/planned):",
        "- damaged: MLP ← data, seed 2 (MLPdata2): metrics.json: cannot read",
    ]


def test_csv_has_n_expected_and_keeps_empty_cells(partial):
    csv = pd.read_csv(io.StringIO(render(partial, ["accuracy"], "csv")))
    assert list(csv.columns) == ["student", "eval_set", "teacher", "mean", "std", "n", "n_expected", "metric"]
    got = {(r.student, r.teacher): (r.n, r.n_expected) for r in csv.itertuples()}
    assert got == {("MLP", "data"): (3, 4), ("MLP", "CNN"): (2, 2), ("CNN", "data"): (0, 2), ("CNN", "CNN"): (0, 2)}
    assert csv[csv.n == 0]["mean"].isna().all()


def test_many_unfinished_trials_list_twenty():
    rows = [_row("MLP", "data", s, status="failed", error="boom") for s in range(25)]
    lines = render(pd.DataFrame(rows), ["accuracy"], "markdown").splitlines()
    assert "25 trials did not finish; cells show (finished/planned):" in lines
    assert sum(line.startswith("- failed: ") for line in lines) == 20
    assert lines[-1] == "- … and 5 more"


def test_all_failed_still_renders_the_table():
    df = pd.DataFrame([_row("MLP", "data", s, status="failed", error="boom") for s in (0, 1)])
    df["eval_set"] = pd.Categorical(df["eval_set"], categories=["test", "val"])  # as collect writes it: from the plan
    lines = render(df, ["accuracy"], "markdown").splitlines()
    assert lines[2:5] == ["| student | test / data |", "|---|:-:|", "| MLP | failed (0/2) |"]
    assert lines[-1] == "- failed: MLP ← data, seed 1 (MLPdata1): boom"
    with pytest.raises(KdtuneError, match="no trials"):
        render(df.iloc[:0], ["accuracy"])
    with pytest.raises(KdtuneError, match="no column 'ece'"):
        render(df.drop(columns="accuracy").assign(accuracy=None), ["ece"])


def test_a_metric_baselines_do_not_report_leaves_them_out(partial):
    lines = render(partial, ["agreement"], "markdown").splitlines()
    assert lines[2] == "| student | test / CNN |"  # agreement needs a teacher: no "data" column, failed or not
    assert lines[4:6] == ["| MLP | 0.910 ± 0.014 (2) |", "| CNN | – (0/2) |"]
    assert sum(line.startswith("- ") for line in lines) == 2  # only the CNN ← CNN trials
