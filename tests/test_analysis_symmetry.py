"""Figure-1 panel of the symmetry paper (kdtune.analysis.symmetry) on a results frame built by hand:
the table's cells are the means ± stds over seeds × folds of the rows, the figure and tables are written."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from kdtune.analysis.overlap import cell
from kdtune.analysis.symmetry import metric_eval_set, summary, symmetry, symmetry_table
from tests.test_analysis_errors import trial

METRICS = ["accuracy", "nll", "ece", "agreement", "kl", "im"]
# (student, teacher, augment) of the section-2.3 design; distilled ones at τ 1 and 4
GROUPS = [  # in the order a run lists them (teachers first); the table puts the students' baselines first
    ("ResNet", "data", None),
    ("MLP", "ResNet", None),
    ("MLP", "data", None),
    ("MLP_trans", "data", "translate"),
    ("MLP", "MLP", None),
    ("MLP_trans", "MLP_trans", "translate"),
    ("MLP", "ResNetP", None),
]


def results_frame(eval_sets=("test", "translated"), im_on=("test", "translated"), seed: int = 0) -> pd.DataFrame:
    """Rows for 2 seeds × 2 folds of each group (and τ), random metrics; ``im`` only on ``im_on``."""
    rng = np.random.default_rng(seed)
    rows = []
    for student, teacher, augment in GROUPS:
        taus = [None] if teacher == "data" else [1.0, 4.0]
        for tau in taus:
            for s in (0, 1):
                for fold in (0, 1):
                    tid = f"{student}-{teacher}-{tau}-{s}-{fold}"
                    for e in eval_sets:
                        vals = {m: float(rng.uniform(0, 1)) for m in METRICS}
                        if teacher == "data":
                            vals["agreement"] = vals["kl"] = np.nan
                        if e not in im_on:
                            vals["im"] = np.nan
                        rows.append({"trial_id": tid, "student": student, "teacher": teacher, "seed": s, "fold": fold,
                                     "eval_set": e, "status": "ok", "temperature": tau, "augment": augment,
                                     "arch": student.lower(), **vals})  # fmt: skip
    df = pd.DataFrame(rows)
    models = ["MLP", "MLP_trans", "ResNet", "ResNetP"]
    df["student"] = pd.Categorical(df["student"], categories=models)
    df["teacher"] = pd.Categorical(df["teacher"], categories=["data", *models])
    df["eval_set"] = pd.Categorical(df["eval_set"], categories=[*eval_sets, "val"])
    return df


def view_of(df: pd.DataFrame, eval_sets: list[str]) -> SimpleNamespace:
    """What the analysis reads of a RunView: its results, its trials (ids) and eval sets."""
    ids = df.drop_duplicates("trial_id")
    trials = [trial(r.trial_id, str(r.student), str(r.teacher), int(r.seed)) for r in ids.itertuples()]
    return SimpleNamespace(results=df, trials=trials, eval_sets=eval_sets, run_dir=Path("/nonexistent"))


def _hand(df: pd.DataFrame, student: str, teacher: str, tau: float | None, e: str, m: str) -> list[float]:
    sel = df[(df["student"] == student) & (df["teacher"] == teacher) & (df["eval_set"] == e)]
    if tau is not None:
        sel = sel[sel["temperature"] == tau]
    return sel[m].tolist()


def test_summary_is_mean_and_sample_std_of_the_non_nan_values():
    assert summary([1.0, 2.0, np.nan, 4.0]) == pytest.approx((7 / 3, np.std([1, 2, 4], ddof=1), 3))
    mean, std, n = summary([0.5])
    assert (mean, n) == (0.5, 1) and np.isnan(std)
    assert summary([np.nan])[2] == 0


def test_table_cells_are_means_and_stds_over_seeds_and_folds(tmp_path):
    df = results_frame()
    table, long, sources = symmetry_table(view_of(df, ["test", "translated"]), "test")
    assert sources == dict.fromkeys(METRICS, "test")
    assert list(table.index.get_level_values("group").unique()) == [
        "MLP (data)", "MLP_trans (data)", "ResNet (data)", "MLP ← MLP", "MLP_trans ← MLP_trans", "MLP ← ResNet", "MLP ← ResNetP",
    ]  # fmt: skip
    for m in METRICS:
        vals = _hand(df, "MLP", "ResNet", 4.0, "test", m)
        assert len(vals) == 4  # 2 seeds × 2 folds
        assert table.loc[("MLP ← ResNet", "4"), m] == cell(vals)
        row = long[(long["group"] == "MLP ← ResNet") & (long["temperature"] == 4.0) & (long["metric"] == m)].iloc[0]
        assert (row["mean"], row["std"], row["n"]) == pytest.approx((np.mean(vals), np.std(vals, ddof=1), 4))
    assert table.loc[("MLP_trans (data)", "–"), "im"] == cell(_hand(df, "MLP_trans", "data", None, "test", "im"))
    assert table.loc[("MLP (data)", "–"), "agreement"] == "–"  # no teacher
    kinds = long.drop_duplicates("group").set_index("group")["kind"]
    assert kinds["MLP_trans ← MLP_trans"] == "self-distillation, augmented: translate"
    assert kinds["MLP ← MLP"] == "self-distillation" and kinds["MLP ← ResNetP"] == "distillation"
    assert kinds["ResNet (data)"] == "from data"


def test_im_is_read_on_the_first_eval_set_that_has_it():
    df = results_frame(im_on=("translated",))
    assert metric_eval_set(df, "im", "test", ["test", "translated"]) == "translated"
    assert metric_eval_set(df, "accuracy", "test", ["test", "translated"]) == "test"
    assert metric_eval_set(df.drop(columns="ece"), "ece", "test", ["test"]) is None
    table, _, sources = symmetry_table(view_of(df, ["test", "translated"]), "test")
    assert sources["im"] == "translated" and sources["accuracy"] == "test"
    assert table.loc[("MLP ← MLP", "1"), "im"] == cell(_hand(df, "MLP", "MLP", 1.0, "translated", "im"))


def test_symmetry_writes_the_figure_and_the_table_on_the_chosen_eval_set(tmp_path):
    df = results_frame()
    out = symmetry(view_of(df, ["translated"]), tmp_path)
    assert [p.name for p in out.figures] == ["symmetry__translated.png"]
    assert (tmp_path / "symmetry__translated.pdf").is_file()
    for ext in ("md", "tex", "csv"):
        assert (tmp_path / f"symmetry__translated.{ext}").is_file()
    ((title, table),) = out.tables
    assert title == "translated: every metric per group and τ, mean ± std (n) over seeds × folds"
    assert table.loc[("MLP ← ResNetP", "1"), "accuracy"] == cell(_hand(df, "MLP", "ResNetP", 1.0, "translated", "accuracy"))
    long = pd.read_csv(tmp_path / "symmetry__translated__long.csv")
    assert set(long["eval_set"]) == {"translated"} and out.skipped == []


def test_a_run_without_distilled_students_or_without_im_says_so(tmp_path):
    df = results_frame()
    only_data = df[df["teacher"] == "data"]
    out = symmetry(view_of(only_data, ["test"]), tmp_path / "a")
    assert out.figures == [] and out.skipped == ["all: no distilled students among these trials"]
    out = symmetry(view_of(df.drop(columns="im"), ["test"]), tmp_path / "b")
    assert out.skipped == ["test: no im in the results (metrics not computed by this run)"]
    assert len(out.figures) == 1


def test_symmetry_on_a_tiny_run_tabulates_each_trials_metrics(tiny_raw, tmp_path):
    from kdtune.analysis import RunView
    from kdtune.plan import make_plan
    from kdtune.run.execute import InlineExecutor, execute
    from kdtune.run.ledger import write_sweep_record
    from kdtune.spec.sweepfile import parse_sweep

    tiny_raw["train"]["epochs"], tiny_raw["grid"]["seeds"] = 1, 1
    tiny_raw["grid"]["teachers"], tiny_raw["grid"]["temperature"] = ["data", "self", "CNN"], [1, 4]
    plan = make_plan(parse_sweep(tiny_raw, "tiny.yaml", output=tmp_path / "run"))
    write_sweep_record(plan)
    assert execute(plan, InlineExecutor(), log=lambda s: None) == {}
    view = RunView(tmp_path / "run")
    out = symmetry(view, tmp_path / "out")
    assert [p.name for p in out.figures] == ["symmetry__test.png"]
    ((title, table),) = out.tables
    assert title.endswith("mean ± std (n) over seeds")  # no folds in this run
    assert list(table.index) == [
        ("MLP (data)", "–"), ("CNN (data)", "–"), ("MLP ← MLP", "1"), ("MLP ← MLP", "4"), ("MLP ← CNN", "1"), ("MLP ← CNN", "4"),
    ]  # fmt: skip
    rows = view.results[(view.results["eval_set"] == "test") & (view.results["teacher"] == "CNN")]
    for r in rows.itertuples():
        assert table.loc[("MLP ← CNN", f"{r.temperature:g}"), "accuracy"] == cell([r.accuracy])
        assert table.loc[("MLP ← CNN", f"{r.temperature:g}"), "kl"] == cell([r.kl])


def test_groups_that_differ_by_another_kd_setting_are_told_apart():
    df = results_frame()
    distilled = df["teacher"] != "data"
    df["w_hard"] = np.where(distilled, 0.0, np.nan)
    df.loc[distilled & (df["fold"] == 1), "w_hard"] = 0.5
    table, _, _ = symmetry_table(view_of(df, ["test"]), "test")
    groups = list(dict.fromkeys(table.index.get_level_values("group")))
    assert "MLP ← ResNet w_hard=0" in groups and "MLP ← ResNet w_hard=0.5" in groups and "MLP (data)" in groups
    sel = df[(df["teacher"] == "ResNet") & (df["temperature"] == 4.0) & (df["w_hard"] == 0.5) & (df["eval_set"] == "test")]
    assert len(sel) == 2 and table.loc[("MLP ← ResNet w_hard=0.5", "4"), "accuracy"] == cell(sel["accuracy"].tolist())


def two_configs(column: str, values: tuple[object, object], data_too: bool = False) -> pd.DataFrame:
    """MLP ← CNN at τ 1 and 4 in two configurations (``column`` = each of ``values``), 2 seeds each, and MLP from
    data (in both configurations too when ``data_too``), on one eval set: accuracy = 0.1·(config+1) + 0.01·seed
    + τ/100 (so each cell's mean is known by hand and a pooled one would differ)."""
    rows = []
    for i, value in enumerate(values):
        for teacher, taus in (("CNN", (1.0, 4.0)), ("data", (None,))):
            if teacher == "data" and i and not data_too:
                continue
            for tau in taus:
                for s in (0, 1):
                    acc = 0.1 * (i + 1) + 0.01 * s + (tau or 0) / 100
                    setting = value if teacher != "data" or data_too else None
                    rows.append({"trial_id": f"{teacher}-{tau}-{i}-{s}", "student": "MLP", "teacher": teacher, "seed": s,
                                 "eval_set": "test", "status": "ok", "temperature": tau, "arch": "mlp",
                                 column: setting, "accuracy": acc})  # fmt: skip
    df = pd.DataFrame(rows)
    df["student"] = pd.Categorical(df["student"], categories=["MLP", "CNN"])
    df["teacher"] = pd.Categorical(df["teacher"], categories=["data", "MLP", "CNN"])
    return df


def test_two_teacher_configurations_are_two_groups_never_pooled():
    df = two_configs("teacher_config", ("lr=0.01", "lr=0.003"))
    table, long, _ = symmetry_table(view_of(df, ["test"]), "test")
    assert list(table.index) == [
        ("MLP (data)", "–"),
        ("MLP ← CNN teacher[lr=0.003]", "1"), ("MLP ← CNN teacher[lr=0.003]", "4"),
        ("MLP ← CNN teacher[lr=0.01]", "1"), ("MLP ← CNN teacher[lr=0.01]", "4"),
    ]  # fmt: skip
    # by hand: config i, τ: 0.1·(i+1) + τ/100 + {0, 0.01} over the seeds
    assert table.loc[("MLP ← CNN teacher[lr=0.01]", "4"), "accuracy"] == cell([0.14, 0.15])
    assert table.loc[("MLP ← CNN teacher[lr=0.003]", "4"), "accuracy"] == cell([0.24, 0.25])
    assert table.loc[("MLP ← CNN teacher[lr=0.003]", "1"), "accuracy"] == cell([0.21, 0.22])
    row = long[(long["group"] == "MLP ← CNN teacher[lr=0.01]") & (long["temperature"] == 1.0)].iloc[0]
    assert (row["mean"], row["n"]) == pytest.approx((0.115, 2))
    assert set(long.loc[long["group"].str.startswith("MLP ← CNN"), "n"]) == {2}  # never 4: no two configurations pooled


def test_two_student_lrs_are_two_groups_distilled_and_from_data():
    df = two_configs("lr", (0.01, 0.003), data_too=True)
    table, long, _ = symmetry_table(view_of(df, ["test"]), "test")
    assert list(table.index) == [
        ("MLP (data) lr=0.003", "–"), ("MLP (data) lr=0.01", "–"),
        ("MLP ← CNN lr=0.003", "1"), ("MLP ← CNN lr=0.003", "4"), ("MLP ← CNN lr=0.01", "1"), ("MLP ← CNN lr=0.01", "4"),
    ]  # fmt: skip
    assert table.loc[("MLP (data) lr=0.01", "–"), "accuracy"] == cell([0.1, 0.11])
    assert table.loc[("MLP (data) lr=0.003", "–"), "accuracy"] == cell([0.2, 0.21])
    assert table.loc[("MLP ← CNN lr=0.01", "1"), "accuracy"] == cell([0.11, 0.12])
    assert table.loc[("MLP ← CNN lr=0.003", "4"), "accuracy"] == cell([0.24, 0.25])
    assert set(long["n"]) == {2}


def test_a_setting_that_varies_for_one_teacher_only_names_that_teachers_groups():
    """As the view's groups: settings are told apart among the trials of one student and teacher."""
    df = two_configs("w_hard", (0.0, 0.5))
    self_rows = df[df["teacher"] == "CNN"].assign(teacher="MLP", w_hard=0.0)
    self_rows["trial_id"] = "self-" + self_rows["trial_id"]
    df = pd.concat([df.astype({"teacher": object}), self_rows.astype({"teacher": object})], ignore_index=True)
    df = df[~((df["teacher"] == "MLP") & (df["trial_id"].str.contains("-1-")))]  # self-distillation: w_hard 0 only
    table, _, _ = symmetry_table(view_of(df, ["test"]), "test")
    groups = list(dict.fromkeys(table.index.get_level_values("group")))
    assert groups == ["MLP (data)", "MLP ← MLP", "MLP ← CNN w_hard=0", "MLP ← CNN w_hard=0.5"]
