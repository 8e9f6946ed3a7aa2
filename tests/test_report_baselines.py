"""Report tables keep the "data" baselines when a distillation setting is a row or column key."""

import io

import numpy as np
import pandas as pd
import pytest

from kdtune.results.tables import render
from tests.cells import aggregate

NOTE_TAU = "data: trained without distillation; the same models appear under every temperature"
NOTE_ACC = "accuracy: fraction of examples classified correctly (0 to 1)"


def _sweep(baseline_temperature: float | None, vary: str = "temperature", teachers=("data", "CNN", "MLP")) -> pd.DataFrame:
    """Students CNN, MLP × ``teachers`` × ``vary`` in {a, b}, one seed, eval set test; accuracy by hand."""
    values = {"temperature": (2.0, 5.0), "w_hard": (0.0, 0.5)}[vary]
    base_acc = {"CNN": 0.90, "MLP": 0.80}
    rows = []
    for student in ("CNN", "MLP"):
        for teacher in teachers:
            if teacher == "data":  # old collect filled the loss default in; new collect leaves NaN
                kd = {"temperature": baseline_temperature, "w_hard": None, "w_soft": None, "kd_loss": None}
                rows.append({"student": student, "teacher": teacher, "acc": base_acc[student], **kd})
                continue
            for k, v in enumerate(values):
                kd = {"temperature": 4.0, "w_hard": 0.0, "w_soft": 1.0, "kd_loss": "hinton", vary: v}
                acc = base_acc[student] + (0.01 if teacher == "CNN" else -0.05) + 0.01 * k
                rows.append({"student": student, "teacher": teacher, "acc": acc, **kd})
    df = pd.DataFrame(rows).rename(columns={"acc": "accuracy"})
    return df.assign(eval_set="test", seed=0, status="ok", lr=0.01)


@pytest.mark.parametrize("baseline_temperature", [None, 1.0])
def test_baselines_are_shared_by_every_temperature_in_markdown(baseline_temperature):
    lines = render(_sweep(baseline_temperature), ["accuracy"], "markdown").splitlines()
    assert lines[2] == "| student | temperature | test / data | test / CNN | test / MLP |"
    assert lines[4:8] == [
        "| CNN | 2 | 0.900 (1) | 0.910 (1) | 0.850 (1) |",
        "| CNN | 5 | 0.900 (1) | 0.920 (1) | 0.860 (1) |",
        "| MLP | 2 | 0.800 (1) | 0.810 (1) | 0.750 (1) |",
        "| MLP | 5 | 0.800 (1) | 0.820 (1) | 0.760 (1) |",
    ]
    assert lines[8:] == ["", NOTE_ACC, "", NOTE_TAU]


def test_baselines_are_shared_in_latex_with_a_note_in_the_caption():
    text = render(_sweep(None), ["accuracy"], "latex")
    assert r" & 5 & 0.900{ (1)} & 0.920{ (1)} & 0.860{ (1)} \\" in text  # CNN's second row (the first names it)
    assert f"\\caption{{accuracy: mean $\\pm$ std (n) over seeds. {NOTE_ACC}. {NOTE_TAU}.}}" in text


def test_temperature_as_the_only_column():
    lines = render(_sweep(1.0), ["accuracy"], "markdown", cols=["temperature"]).splitlines()
    assert lines[2] == "| student | teacher | temperature=2 | temperature=5 |"  # setting columns named
    assert "| CNN | data | 0.900 (1) | 0.900 (1) |" in lines
    assert "| MLP | MLP | 0.750 (1) | 0.760 (1) |" in lines
    assert lines[-1] == NOTE_TAU


def test_one_real_teacher_still_gets_a_teacher_key():
    df = _sweep(None, teachers=("data", "CNN"))  # no two teachers in one temperature cell: teacher is added anyway
    lines = render(df, ["accuracy"], "markdown", cols=["temperature"]).splitlines()
    assert lines[2] == "| student | teacher | temperature=2 | temperature=5 |"  # setting columns named
    assert lines[4:6] == ["| CNN | data | 0.900 (1) | 0.900 (1) |", "| CNN | CNN | 0.910 (1) | 0.920 (1) |"]


def test_w_hard_sweep_with_w_hard_and_teacher_as_columns():
    lines = render(_sweep(None, "w_hard"), ["accuracy"], "markdown", cols=["w_hard", "teacher"]).splitlines()
    assert lines[2] == (
        "| student | w_hard=0 / data | w_hard=0 / CNN | w_hard=0 / MLP "
        "| w_hard=0.5 / data | w_hard=0.5 / CNN | w_hard=0.5 / MLP |"
    )
    assert "| MLP | 0.800 (1) | 0.810 (1) | 0.750 (1) | 0.800 (1) | 0.820 (1) | 0.760 (1) |" in lines
    assert lines[-1] == "data: trained without distillation; the same models appear under every w_hard"


def test_baselines_counted_once_with_empty_kd_settings_in_aggregate_and_csv():
    df = _sweep(1.0)
    df = pd.concat([df, df[df.teacher == "data"].assign(seed=1, accuracy=lambda d: d.accuracy + 0.02)])
    agg = aggregate(df, "accuracy")
    base = agg[agg.teacher == "data"]
    assert len(base) == 2 and list(base.n) == [2, 2] and base.temperature.isna().all()
    csv = pd.read_csv(io.StringIO(render(df, ["accuracy"], "csv")))
    assert list(csv.columns) == ["student", "temperature", "eval_set", "teacher", "mean", "std", "n", "n_expected", "metric"]
    row = csv[(csv.student == "CNN") & (csv.teacher == "data")]
    assert len(row) == 1 and np.isnan(row.temperature.iloc[0])
    assert row["mean"].iloc[0] == pytest.approx(0.91) and row.n.iloc[0] == 2 and row.n_expected.iloc[0] == 2
    assert len(csv) == 2 + 2 * 2 * 2  # 2 baselines + 2 students × 2 teachers × 2 temperatures


def test_switch_tables_show_each_baseline_once():
    """As sweeps/switch_digits.yaml reports: rows student, teacher, start, stop. The MLP from data has no switch
    point: one row (start and stop –), not one copy under each of the four starts (issue 28: 14 of 28 rows copies)."""
    rows = []
    for seed in range(2):
        rows.append({"teacher": "data", "start": None, "accuracy": 0.90 + 0.01 * seed})
        for teacher in ("CNN", "MLP"):
            for k, start in enumerate((0.0, 0.25, 0.5, 0.75)):
                rows.append({"teacher": teacher, "start": start, "accuracy": 0.92 + 0.01 * k + 0.01 * seed})
    df = pd.DataFrame(rows).assign(student="MLP", eval_set="test", seed=lambda d: d.index % 2, status="ok", stop=None)
    df["temperature"] = np.where(df.teacher == "data", np.nan, 4.0)
    lines = render(df, ["accuracy"], rows=["student", "teacher", "start", "stop"], cols=["eval_set"]).splitlines()
    body = [line for line in lines if line.startswith("| MLP")]
    assert len(body) == 1 + 2 * 4 and body[0] == "| MLP | data | – | – | 0.905 ± 0.007 (2) |"
    assert sum(" data " in line for line in lines) == 1
    assert "| MLP | CNN | 0.25 | – | 0.935 ± 0.007 (2) |" in body
    assert "data: trained without distillation, so start and stop do not apply (–); one row each" in lines
    tex = render(df, ["accuracy"], "latex", rows=["student", "teacher", "start", "stop"], cols=["eval_set"])
    assert tex.count(r"& data & – & – &") == 1
