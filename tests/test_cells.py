"""Every cell one configuration: a teacher's own settings are part of what a student cell is.

Two sweeps into one run folder train the MLP students of two CNN teachers that differ only in the teacher's
learning rate (as after ``kdtune tune`` and ``hparams: tuned``). Reports, CSV and analyses must keep them apart.
"""

from __future__ import annotations

import copy

import pandas as pd
import pytest

from kdtune.analysis import RunView
from kdtune.labels import value_text
from kdtune.plan import make_plan
from kdtune.results.reader import collect_run
from kdtune.results.tables import pivot, render
from kdtune.run.execute import InlineExecutor, execute
from kdtune.run.ledger import write_sweep_record
from kdtune.spec.sweepfile import parse_sweep
from tests.cells import aggregate
from tests.conftest import TINY


def _sweep(lr: float | None, out, name: str):
    raw = copy.deepcopy(TINY)
    raw["name"] = name
    raw["grid"]["teachers"] = ["data", "CNN"]
    if lr is not None:
        raw["models"]["CNN"]["train"] = {"lr": lr}
    spec = parse_sweep(raw, f"{name}.yaml", output=out)
    plan = make_plan(spec)
    write_sweep_record(plan)
    assert execute(plan, InlineExecutor(), log=lambda s: None) == {}
    return plan


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cells") / "run"
    _sweep(None, out, "plain")  # CNN teachers at the sweep's lr 0.01
    _sweep(0.02, out, "tuned")  # CNN teachers at lr 0.02: new teachers, new students; MLP baselines shared
    return out


def test_students_of_teachers_with_different_settings_are_never_one_cell(run):
    df = collect_run(run)
    assert df["trial_id"].nunique() == 2 * 2 + 2 + 2 * 2  # MLP (data) ×2 shared, CNN ×2 ×2, MLP ← CNN ×2 ×2
    students = df[(df["teacher"].astype(str) == "CNN") & (df["eval_set"].astype(str) == "test")]
    assert sorted(students["teacher_config"].unique()) == ["lr=0.01", "lr=0.02"]
    assert df.loc[df["teacher"].astype(str) == "data", "teacher_config"].isna().all()  # no teacher, nothing to tell apart

    agg = aggregate(df, "accuracy", rows=["student"], cols=["eval_set", "teacher"], eval_sets=["test"])
    assert "teacher_config" in agg.columns  # added automatically, like any setting that varies inside a cell
    mlp_cnn = agg[(agg["student"].astype(str) == "MLP") & (agg["teacher"].astype(str) == "CNN")]
    assert list(mlp_cnn["n"]) == [2, 2] and sorted(mlp_cnn["teacher_config"]) == ["lr=0.01", "lr=0.02"]
    # one seed per cell when seeds are rows: never two trials (the symptom)
    by_seed = aggregate(df, "accuracy", rows=["student", "teacher", "seed"], cols=["eval_set"])
    assert by_seed["n"].max() == 1


def test_the_markdown_and_csv_say_which_teacher(run):
    df = collect_run(run)
    text = render(df, ["accuracy"], rows=["student"], cols=["eval_set", "teacher"], eval_sets=["test"])
    assert "teacher_config" in text and "lr=0.01" in text and "lr=0.02" in text
    assert "teacher_config: the settings in which the teacher differs" in text
    csv = pd.read_csv(__import__("io").StringIO(render(df, ["accuracy"], fmt="csv", eval_sets=["test"])))
    assert sorted(csv["teacher_config"].dropna().unique()) == ["lr=0.01", "lr=0.02"]


def test_one_teacher_configuration_adds_no_key(run):
    df = collect_run(run, sweep="plain")
    assert df["teacher_config"].isna().all()
    agg = aggregate(df, "accuracy", rows=["student"], cols=["eval_set", "teacher"])
    assert "teacher_config" not in agg.columns


def test_analysis_groups_are_one_configuration_each(run):
    view = RunView(run)
    groups = view.groups()
    students = [g for g in groups if g.startswith("MLP ← CNN")]
    assert sorted(students) == ["MLP ← CNN teacher[lr=0.01]", "MLP ← CNN teacher[lr=0.02]"]
    assert all(len(groups[g]) == 2 for g in students)  # 2 seeds each, never 4
    assert "MLP (data)" in groups  # one configuration: no detail
    cnn = [g for g in groups if g.startswith("CNN")]
    assert sorted(cnn) == ["CNN (data) lr=0.01", "CNN (data) lr=0.02"]


def test_settings_added_to_rows_are_all_that_differ_and_are_short():
    df = pd.DataFrame(
        {
            "student": ["MLP"] * 4,
            "teacher": ["data"] * 4,
            "eval_set": ["test"] * 4,
            "seed": [0, 1, 0, 1],
            "lr": [0.003, 0.003, 0.018464373720728802, 0.018464373720728802],
            "dropout": [0.0, 0.0, 0.0195, 0.0195],
            "weight_decay": [0.0, 0.0, 2.189e-06, 2.189e-06],
            "accuracy": [0.9, 0.91, 0.95, 0.96],
            "status": ["ok"] * 4,
        }
    )
    agg = aggregate(df, "accuracy", rows=["student"], cols=["eval_set"])
    assert {"lr", "dropout", "weight_decay"} <= set(agg.columns)  # all three, not only the first found
    table = pivot(agg, ["eval_set"])
    assert ("MLP", "0.01846", "2.189e-06", "0.0195") in list(table.index)  # SETTINGS order: lr, weight_decay, dropout
    assert value_text(0.018464373720728802) == "0.01846" and value_text(5.0) == "5"


def test_setting_columns_are_named_in_headers():
    df = pd.DataFrame(
        {
            "student": ["MLP"] * 4,
            "teacher": ["CNN"] * 4,
            "eval_set": ["test"] * 4,
            "seed": [0, 1, 0, 1],
            "w_hard": [0.0, 0.0, 0.5, 0.5],
            "accuracy": [0.9, 0.91, 0.95, 0.96],
            "status": ["ok"] * 4,
        }
    )
    text = render(df, ["accuracy"], rows=["student"], cols=["w_hard"])
    assert "| w_hard=0 | w_hard=0.5 |" in text
    latex = render(df, ["accuracy"], fmt="latex", rows=["student"], cols=["w_hard"])
    assert r"w\_hard=0.5" in latex


def test_close_values_keep_enough_digits_to_stay_apart():
    df = pd.DataFrame(
        {
            "student": ["MLP"] * 2,
            "teacher": ["data"] * 2,
            "eval_set": ["test"] * 2,
            "seed": [0, 0],
            "lr": [0.00123451, 0.00123454],
            "accuracy": [0.9, 0.91],
            "status": ["ok"] * 2,
        }
    )
    table = pivot(aggregate(df, "accuracy", rows=["student"], cols=["eval_set"]), ["eval_set"])
    assert [i[1] for i in table.index] == ["0.00123451", "0.00123454"]


@pytest.mark.slow
def test_the_readmes_tuning_workflow_gives_one_configuration_per_cell(tmp_path):
    """The README's workflow (cut to a few epochs, one seed, the runs inline): run, tune the MLP, run with the tuned MLP,
    report and analyze the folder. Before teacher_config, a one-seed cell held the students of both MLP teachers."""
    import subprocess
    import sys

    out = tmp_path / "quickstart"
    small = ["--out", str(out), "--set", "train.epochs=3", "--set", "grid.seeds=1", "--set", "tune.seeds=1"]

    def kdtune(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "kdtune", *args], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    inline = ["--executor", "inline", "--no-report"]  # the cells are the point here; tests/test_ray.py runs Ray's path
    kdtune("run", "sweeps/quickstart.yaml", *small, *inline)
    kdtune("tune", "sweeps/quickstart.yaml", "--model", "MLP", "--trials", "3", *small)
    kdtune("run", "sweeps/quickstart.yaml", *small, "--set", "models.MLP.hparams=tuned", *inline)
    csv = pd.read_csv(
        __import__("io").StringIO(
            kdtune("report", str(out), "--rows", "student,teacher,seed", "--cols", "eval_set", "--format", "csv")
        )
    )
    assert csv["n_expected"].max() == 1 and csv["n"].max() == 1  # one seed: one trial per cell, never two
    students_of_mlp = csv[(csv["teacher"] == "MLP") & (csv["eval_set"] == "test") & (csv["metric"] == "accuracy")]
    assert len(students_of_mlp) == 2 * 2  # CNN and MLP students, each of the untuned and the tuned MLP teacher
    assert students_of_mlp["teacher_config"].nunique() == 2
    kdtune("analyze", str(out), "--only", "calibration")
    groups = pd.read_csv(out / "analysis" / "calibration" / "ece.csv")["group"].tolist()
    assert len([g for g in groups if g.startswith("MLP ← MLP teacher[")]) == 2


def test_a_tuned_model_shows_its_tuned_schedule_parameter_beside_its_lr(tmp_path):
    """Issue 28: the tuned MLP's row showed its lr, dropout and weight decay but not its tuned
    schedule.decay_rate: the config key was added only where the columns before it left cells mixed. Two sweeps
    into one folder train the MLP from data at lr 0.01, decay 0.95 and (as after kdtune tune) at lr 0.02, decay 0.9."""
    out = tmp_path / "run"
    for name, lr, decay in (("plain", 0.01, 0.95), ("tuned", 0.02, 0.9)):
        raw = copy.deepcopy(TINY) | {"name": name}
        raw["grid"] |= {"students": ["MLP"], "teachers": ["data"]}
        raw["models"]["MLP"]["train"] = {"lr": lr, "schedule": {"name": "exponential", "decay_rate": decay}}
        plan = make_plan(parse_sweep(raw, f"{name}.yaml", output=out))
        write_sweep_record(plan)
        assert execute(plan, InlineExecutor(), log=lambda s: None) == {}
    text = render(collect_run(out), ["accuracy"], eval_sets=["test"])
    assert "| student | lr | config | test / data |" in text
    assert "| MLP | 0.01 | schedule.decay_rate=0.95 |" in text and "| MLP | 0.02 | schedule.decay_rate=0.9 |" in text
