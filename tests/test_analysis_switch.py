"""Switching to distillation mid-training (kdtune.analysis.switch) on a results frame built by hand: the
metric per switch point, the references, and the recovered fraction against its formula, per seed and fold."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from kdtune.analysis.overlap import cell
from kdtune.analysis.switch import recovered_fraction, switch, switch_points, switch_table
from tests.test_analysis_errors import trial

SEEDS, FOLDS = (0, 1, 2), (0, 1)
DATA_ACC = {s: 0.80 + 0.01 * s for s in SEEDS}  # MLP from data, per seed (fold adds 0.002 · fold)
THROUGHOUT_ACC = {s: 0.90 + 0.01 * s for s in SEEDS}  # distilled from the first epoch


def _acc(start: float | None, stop: float | None, s: int, fold: int) -> float:
    """Accuracy by hand: a late switch keeps less of the gain, differently per seed."""
    base = 0.002 * fold
    if start is None:
        return DATA_ACC[s] + base
    gain = THROUGHOUT_ACC[s] - DATA_ACC[s]
    keep = 1 - start * (1 + 0.1 * s) if stop is None else stop
    return DATA_ACC[s] + base + keep * gain + 0.001 * s * (start > 0)


# the epochs a student of 4 epochs may keep (kdtune.train.distill.selection_epochs): from its last switch on
WINDOWS = {(None, None): (1, 4), (0.0, None): (1, 4), (0.25, None): (2, 4), (0.5, None): (3, 4), (0.75, None): (4, 4),
           (0.0, 0.5): (3, 4), (0.25, 0.5): (3, 4)}  # fmt: skip


def results_frame(eval_sets=("test",), windows: bool = False, folds=FOLDS) -> pd.DataFrame:
    """MLP from data, MLP ← CNN at start 0, 0.25, 0.5, 0.75 and stop 0.5 (and a window if asked), 3 seeds × 2 folds;
    4 epochs, each trial keeping its last, selected in its window."""
    settings = [(None, None), (0.0, None), (0.25, None), (0.5, None), (0.75, None), (0.0, 0.5)]
    if windows:
        settings.append((0.25, 0.5))
    rows = []
    for start, stop in settings:
        teacher = "data" if start is None else "CNN"
        for s in SEEDS:
            for fold in folds:
                acc = _acc(start, stop, s, fold or 0)
                for e in eval_sets:
                    rows.append({"trial_id": f"{teacher}-{start}-{stop}-{s}-{fold}", "student": "MLP", "teacher": teacher,
                                 "seed": s, "fold": fold, "eval_set": e, "status": "ok", "arch": "mlp",
                                 "temperature": None if start is None else 4.0, "start": start, "stop": stop,
                                 "epochs": 4, "best_epoch": 4, "select_first": WINDOWS[start, stop][0], "select_last": 4,
                                 "accuracy": acc, "nll": 1.0 - acc})  # fmt: skip
    df = pd.DataFrame(rows)
    df["eval_set"] = pd.Categorical(df["eval_set"], categories=[*eval_sets, "val"])
    df["student"] = pd.Categorical(df["student"], categories=["CNN", "MLP"])
    df["teacher"] = pd.Categorical(df["teacher"], categories=["data", "CNN", "MLP"])
    return df


def view_of(df: pd.DataFrame, eval_sets: list[str]) -> SimpleNamespace:
    ids = df.drop_duplicates("trial_id")
    trials = [trial(r.trial_id, str(r.student), str(r.teacher), int(r.seed)) for r in ids.itertuples()]
    return SimpleNamespace(results=df, trials=trials, eval_sets=eval_sets, run_dir=Path("/nonexistent"))


def test_recovered_fraction_is_the_share_of_the_gain():
    assert recovered_fraction(0.85, 0.80, 0.90) == pytest.approx(0.5)
    assert recovered_fraction(0.90, 0.80, 0.90) == pytest.approx(1.0)
    assert recovered_fraction(0.75, 0.80, 0.90) == pytest.approx(-0.5)  # worse than from data
    assert recovered_fraction(0.3, 0.4, 0.2) == pytest.approx(0.5)  # NLL: a gain is a decrease
    assert math.isnan(recovered_fraction(0.85, 0.80, 0.80))  # no gain to recover


def test_switch_points_name_the_series():
    df = switch_points(results_frame(windows=True).query("teacher != 'data'"))
    firsts = df.drop_duplicates(["start", "stop"])
    assert firsts["series"].tolist() == ["start", "start", "start", "start", "stop", "window"]
    assert firsts["point"].tolist() == [0.0, 0.25, 0.5, 0.75, 0.5, 0.5]
    assert firsts["throughout"].tolist() == [True, False, False, False, False, False]


def test_table_holds_the_metric_and_the_recovered_fraction_per_seed_and_fold():
    df = results_frame(windows=True)
    table, long, skipped = switch_table(df[df["eval_set"] == "test"], ["accuracy", "nll"])
    assert skipped == ["6 row(s) with both start > 0 and stop set (a window, not a switch)"]
    group = "MLP ← CNN"
    for start in (0.25, 0.5, 0.75):
        accs = [_acc(start, None, s, f) for s in SEEDS for f in FOLDS]
        fracs = [
            (_acc(start, None, s, f) - _acc(None, None, s, f)) / (_acc(0.0, None, s, f) - _acc(None, None, s, f))
            for s in SEEDS
            for f in FOLDS
        ]
        row = table.loc[(group, "start", f"{start:g}")]
        assert row["accuracy"] == cell(accs)
        assert row["accuracy recovered"] == cell(fracs)
        assert row["nll recovered"] == cell(fracs)  # nll = 1 − accuracy: the same share of the gain
        num = long[(long["series"] == "start") & (long["point"] == start) & (long["metric"] == "accuracy")].iloc[0]
        assert (num["recovered_mean"], num["recovered_std"], num["recovered_n"]) == pytest.approx(
            (np.mean(fracs), np.std(fracs, ddof=1), 6)
        )
    assert table.loc[(group, "start", "0"), "accuracy recovered"] == cell([1.0] * 6)
    # by construction start 0.5 keeps 1 − 0.5·(1 + 0.1 s) of seed s's gain of 0.1, plus 0.001 s (folds cancel)
    at_half = long[(long["point"] == 0.5) & (long["series"] == "start") & (long["metric"] == "accuracy")].iloc[0]
    assert at_half["recovered_mean"] == pytest.approx(np.mean([1 - 0.5 * (1 + 0.1 * s) + 0.001 * s / 0.1 for s in SEEDS]))
    stop = table.loc[(group, "stop", "0.5")]
    assert stop["accuracy recovered"] == cell([0.5] * 6)
    assert table.loc[(group, "from data", "–"), "accuracy"] == cell([_acc(None, None, s, f) for s in SEEDS for f in FOLDS])
    assert table.loc[(group, "distilled throughout", "–"), "accuracy"] == cell(
        [_acc(0.0, None, s, f) for s in SEEDS for f in FOLDS]
    )


def test_switch_writes_the_figure_and_table_and_skips_runs_without_a_switch(tmp_path):
    df = results_frame(eval_sets=("test", "translated"))
    out = switch(view_of(df, ["test", "translated"]), tmp_path)
    assert [p.name for p in out.figures] == ["switch__test.png"] and out.skipped == []
    for ext in ("pdf", "md", "tex", "csv"):
        assert (tmp_path / f"switch__test.{ext}").is_file()
    assert (tmp_path / "switch__test__long.csv").is_file()
    plain = df[df["start"].isna() | (df["start"] == 0.0) & df["stop"].isna()]
    out = switch(view_of(plain, ["test"]), tmp_path / "plain")
    assert out.figures == [] and out.skipped == ["all: no start or stop axis among these trials (one switch point or none)"]


def test_runs_without_folds_pair_by_seed():
    df = results_frame(folds=(None,))  # the results' fold column without data.folds
    assert df["fold"].isna().all()
    table, _, skipped = switch_table(df, ["accuracy"])
    assert skipped == []
    fracs = [(_acc(0.5, None, s, 0) - DATA_ACC[s]) / (THROUGHOUT_ACC[s] - DATA_ACC[s]) for s in SEEDS]
    assert table.loc[("MLP ← CNN", "start", "0.5"), "accuracy recovered"] == cell(fracs)
    assert table.loc[("MLP ← CNN", "start", "0"), "accuracy recovered"] == cell([1.0] * 3)


def test_a_missing_twin_is_named():
    df = results_frame()
    df = df[~((df["teacher"] == "data") & (df["seed"] == 2))]  # seed 2's student from data is gone
    table, _, skipped = switch_table(df[df["eval_set"] == "test"], ["accuracy"])
    assert "MLP ← CNN start=0.25: 2 trial(s) without a from-data and a throughout twin of the same seed and fold" in skipped
    assert table.loc[("MLP ← CNN", "start", "0.25"), "accuracy recovered"].endswith("(4)")


def test_switch_on_a_tiny_run_recovers_the_formula_from_the_results(tiny_raw, tmp_path):
    from kdtune.analysis import RunView
    from kdtune.plan import make_plan
    from kdtune.run.execute import InlineExecutor, execute
    from kdtune.run.ledger import write_sweep_record
    from kdtune.spec.sweepfile import parse_sweep

    tiny_raw["train"]["epochs"], tiny_raw["grid"]["seeds"], tiny_raw["data"]["eval_sets"] = 2, 1, ["test"]
    tiny_raw["grid"]["start"] = [0, 0.5]
    plan = make_plan(parse_sweep(tiny_raw, "tiny.yaml", output=tmp_path / "run"))
    write_sweep_record(plan)
    assert execute(plan, InlineExecutor(), log=lambda s: None) == {}
    view = RunView(tmp_path / "run")
    out = switch(view, tmp_path / "out")
    assert [p.name for p in out.figures] == ["switch__test.png"] and out.skipped == []
    ((_, table),) = out.tables
    test = view.results[view.results["eval_set"] == "test"]
    data = test.loc[(test["teacher"] == "data") & (test["student"] == "MLP"), "accuracy"].item()
    throughout = test.loc[(test["teacher"] == "CNN") & (test["start"] == 0), "accuracy"].item()
    late = test.loc[(test["teacher"] == "CNN") & (test["start"] == 0.5), "accuracy"].item()
    row = table.loc[("MLP ← CNN", "start", "0.5")]
    assert row["accuracy"] == cell([late])
    assert row["accuracy recovered"] == (cell([(late - data) / (throughout - data)]) if throughout != data else "–")
    assert table.loc[("MLP ← CNN", "from data", "–"), "accuracy"] == cell([data])


def test_a_kept_epoch_outside_the_window_is_flagged_and_left_out_and_an_older_twin_counted_once():
    df = results_frame(folds=(None,))
    old = df[(df["start"] == 0.5) & df["stop"].isna()].copy()  # the same students, selected by an older kdtune
    old["trial_id"] = old["trial_id"] + "-old"
    old[["select_first", "select_last"]] = np.nan  # no select_window in its metrics.json: every epoch
    old.loc[old["seed"] == 0, "best_epoch"] = 2  # a labels-only epoch: before the switch at epoch 3
    old.loc[old["seed"] == 1, "accuracy"] = 0.0  # kept epoch 4, inside: the same model as its twin (not counted)
    late = (df["start"] == 0.75) & (df["seed"] == 2)
    df.loc[late, ["best_epoch", "select_first", "select_last", "accuracy"]] = [3, 1, 4, 0.0]  # selected among every epoch
    df.loc[(df["start"] == 0.75) & (df["seed"] == 1), ["select_first", "select_last"]] = np.nan  # older, but inside
    table, long, skipped = switch_table(pd.concat([df, old], ignore_index=True), ["accuracy"])
    group = "MLP ← CNN"
    half = table.loc[(group, "start", "0.5")]
    assert half["accuracy"] == cell([_acc(0.5, None, s, 0) for s in SEEDS])  # the new trials alone
    assert half["kept outside window"] == "1 of 6"
    three_q = table.loc[(group, "start", "0.75")]
    assert three_q["accuracy"] == cell([_acc(0.75, None, s, 0) for s in (0, 1)])  # seed 2 left out, seed 1 counted
    assert three_q["kept outside window"] == "1 of 3"
    assert table.loc[(group, "start", "0.25"), "kept outside window"] == "0"
    assert table.loc[(group, "from data", "–"), "kept outside window"] == "–"
    assert long.loc[(long["point"] == 0.75) & (long["series"] == "start"), "outside"].tolist() == [1]
    assert (
        "MLP ← CNN start=0.5, seed 0: trial CNN-0.5-None-0-None-old kept epoch 2, outside its window (epochs 3–4; "
        "selected among every epoch (not recorded: an older kdtune)); left out (re-run the sweep: kdtune trains it "
        "again, selecting in the window)" in skipped
    )
    assert (
        "MLP ← CNN start=0.75, seed 2: trial CNN-0.75-None-2-None kept epoch 3, outside its window (epochs 4–4; "
        "selected among epochs 1–4); left out (re-run the sweep: kdtune trains it again, selecting in the window)" in skipped
    )
    twins = [line for line in skipped if "twin" in line]
    assert twins == [
        "MLP ← CNN start=0.5: 2 trial(s) selected among every epoch by an older kdtune (CNN-0.5-None-1-None-old, "
        "CNN-0.5-None-2-None-old) beside a twin selected in the window (same seed and fold, same kept model); "
        "counted once, as the twin"
    ]


def test_switch_notes_count_the_kept_epochs_checked(tmp_path):
    df = results_frame()
    df.loc[(df["start"] == 0.75) & (df["seed"] == 0), "best_epoch"] = 1
    out = switch(view_of(df, ["test"]), tmp_path)
    assert out.notes[0].startswith("Kept epochs: 22 switched trial(s) kept an epoch inside their window, 2 outside")
    assert sum("outside its window" in line for line in out.skipped) == 2  # seed 0, both folds
    ((_, table),) = out.tables
    assert table.loc[("MLP ← CNN", "start", "0.75"), "kept outside window"] == "2 of 6"


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    """The frame with string labels, so other students and teachers can be added."""
    return df.assign(student=df["student"].astype(str), teacher=df["teacher"].astype(str), eval_set="test")


def test_two_teacher_configurations_of_one_student_are_two_groups_never_pooled():
    df = _plain(results_frame(folds=(None,)))
    distilled = df["teacher"] == "CNN"
    df["teacher_config"] = np.where(distilled, "lr=0.01", None)
    other = df[distilled].copy()  # the same student distilled from the CNN trained with another lr
    other["trial_id"] += "-lr0.003"
    other["teacher_config"] = "lr=0.003"
    throughout = (other["start"] == 0.0) & other["stop"].isna()
    other.loc[throughout, "accuracy"] += 0.01  # a gain of 0.11 per seed
    other.loc[~throughout, "accuracy"] -= 0.02
    table, long, skipped = switch_table(pd.concat([df, other], ignore_index=True), ["accuracy"])
    assert skipped == []
    groups = list(dict.fromkeys(table.index.get_level_values("group")))
    assert groups == ["MLP ← CNN teacher[lr=0.01]", "MLP ← CNN teacher[lr=0.003]"]
    a, b = (long[(long["group"] == g) & (long["series"] == "start") & (long["point"] == 0.5)].iloc[0] for g in groups)
    # start 0.5 keeps 1 − 0.5·(1 + 0.1 s) of seed s's gain of 0.1, plus 0.001 s: 0.05, 0.046, 0.042 above the data
    assert (a["mean"], a["n"]) == (pytest.approx(0.80 + 0.01 + 0.046), 3)
    assert a["recovered_mean"] == pytest.approx(0.46)  # (0.05 + 0.046 + 0.042) / 3 / 0.1
    assert (b["mean"], b["n"]) == (pytest.approx(0.81 + 0.046 - 0.02), 3)
    assert b["recovered_mean"] == pytest.approx(0.026 / 0.11)  # (0.03 + 0.026 + 0.022) / 3 / 0.11
    data = cell([DATA_ACC[s] for s in SEEDS])
    assert table.loc[(groups[0], "from data", "–"), "accuracy"] == data == table.loc[(groups[1], "from data", "–"), "accuracy"]
    assert table.loc[(groups[1], "distilled throughout", "–"), "accuracy"] == cell([THROUGHOUT_ACC[s] + 0.01 for s in SEEDS])


def test_two_student_labels_of_one_architecture_are_separate_each_with_its_own_students_from_data():
    df = _plain(results_frame(folds=(None,)))
    wide = df.copy()  # another student label of the same architecture (mlp), its from-data students 0.02 lower
    wide["student"], wide["trial_id"] = "MLP2", "MLP2-" + wide["trial_id"]
    wide.loc[wide["teacher"] == "data", "accuracy"] -= 0.02
    table, long, skipped = switch_table(pd.concat([df, wide], ignore_index=True), ["accuracy"])
    assert skipped == []
    assert list(dict.fromkeys(table.index.get_level_values("group"))) == ["MLP ← CNN", "MLP2 ← CNN"]
    assert table.loc[("MLP2 ← CNN", "from data", "–"), "accuracy"] == cell([DATA_ACC[s] - 0.02 for s in SEEDS])
    assert table.loc[("MLP2 ← CNN", "start", "0.5"), "accuracy"] == cell([_acc(0.5, None, s, 0) for s in SEEDS])
    at = long[(long["series"] == "start") & (long["point"] == 0.5)].set_index("group")["recovered_mean"]
    assert at["MLP ← CNN"] == pytest.approx(0.46)  # (0.05 + 0.046 + 0.042) / 3 / 0.1
    assert at["MLP2 ← CNN"] == pytest.approx(0.55)  # (0.07 + 0.066 + 0.062) / 3 / 0.12
    # without MLP2's own students from data: no reference (never MLP's), and it says so
    table, _, skipped = switch_table(pd.concat([df, wide[wide["teacher"] != "data"]], ignore_index=True), ["accuracy"])
    assert skipped == ["MLP2 ← CNN: no MLP2 trained from data to compare (MLP, of architecture mlp, another model: not used)"]
    assert table.loc[("MLP2 ← CNN", "from data", "–"), "accuracy"] == "–"
    assert table.loc[("MLP2 ← CNN", "start", "0.5"), "accuracy recovered"] == "–"


def test_the_students_from_data_are_of_the_groups_configuration():
    df = _plain(results_frame(folds=(None,)))
    df["lr"] = 0.01
    slow = df[df["teacher"] == "data"].copy()  # the student from data with another lr: not this group's reference
    slow["trial_id"] += "-lr0.003"
    slow["lr"], slow["accuracy"] = 0.003, 0.5
    table, long, skipped = switch_table(pd.concat([df, slow], ignore_index=True), ["accuracy"])
    assert skipped == []
    assert table.loc[("MLP ← CNN", "from data", "–"), "accuracy"] == cell([DATA_ACC[s] for s in SEEDS])
    at = long[(long["series"] == "start") & (long["point"] == 0.5)].iloc[0]
    assert at["recovered_mean"] == pytest.approx(0.46)
    # of none of the student's from-data configurations (lr 0.003 and 0.03, not 0.01): skipped with the reason
    fast = slow.assign(trial_id=slow["trial_id"] + "-lr0.03", lr=0.03)
    table, _, skipped = switch_table(pd.concat([df[df["teacher"] != "data"], slow, fast], ignore_index=True), ["accuracy"])
    assert skipped == [
        "MLP ← CNN: no MLP trained from data of its configuration (lr=0.01) to compare; its from-data configurations: "
        "lr=0.003; lr=0.03"
    ]
    assert table.loc[("MLP ← CNN", "start", "0.5"), "accuracy recovered"] == "–"


def test_a_seed_held_twice_in_a_cell_is_named_never_overwritten():
    df = _plain(results_frame(folds=(None,)))
    again = df[(df["teacher"] == "data") & (df["seed"] == 0)].assign(trial_id="data-again-0", accuracy=0.5)
    late = df[(df["start"] == 0.5) & (df["seed"] == 1)].assign(trial_id="late-again-1", accuracy=0.7)
    table, long, skipped = switch_table(pd.concat([df, again, late], ignore_index=True), ["accuracy"])
    assert skipped == [
        "MLP ← CNN from data, seed 0: 2 trials (data-None-None-0-None, data-again-0) of one configuration; no twin for "
        "the recovered fraction of that seed and fold",
        "MLP ← CNN start=0: 1 trial(s) without a from-data and a throughout twin of the same seed and fold",
        "MLP ← CNN start=0.25: 1 trial(s) without a from-data and a throughout twin of the same seed and fold",
        "MLP ← CNN start=0.5, seed 1: 2 trials (CNN-0.5-None-1-None, late-again-1) of one configuration; each counted",
        "MLP ← CNN start=0.5: 1 trial(s) without a from-data and a throughout twin of the same seed and fold",
        "MLP ← CNN start=0.75: 1 trial(s) without a from-data and a throughout twin of the same seed and fold",
        "MLP ← CNN stop=0.5: 1 trial(s) without a from-data and a throughout twin of the same seed and fold",
    ]
    assert table.loc[("MLP ← CNN", "from data", "–"), "accuracy"] == cell([0.80, 0.81, 0.82, 0.5])
    # seed 0 has no one twin from data: left out of the fraction, not replaced by either of its two (0.80 or 0.5)
    half = long[(long["series"] == "start") & (long["point"] == 0.5)].iloc[0]
    assert (half["n"], half["recovered_n"]) == (4, 3)  # seeds 1 (twice, each counted) and 2
    gain = THROUGHOUT_ACC[1] - DATA_ACC[1]
    fracs = [(_acc(0.5, None, 1, 0) - DATA_ACC[1]) / gain, (0.7 - DATA_ACC[1]) / gain, 0.42]
    assert half["recovered_mean"] == pytest.approx(np.mean(fracs))
