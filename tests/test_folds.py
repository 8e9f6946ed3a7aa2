"""k-fold as a sweep axis (``data.folds``): parsing, the plan (a trial per fold like per seed, a student reading
its teacher of the same fold, per-fold data fingerprints), the results' ``fold`` column, reports over seeds ×
folds, ``kdtune status``, and analyses that pair trials by seed also matching the fold."""

from __future__ import annotations

import copy
import dataclasses
import io
import shutil
from dataclasses import dataclass
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

import kdtune.train.data as kdata
from kdtune.analysis import TrialView
from kdtune.analysis.overlap import from_data_twin, group_pair_tables
from kdtune.cli import main
from kdtune.errors import KdtuneError, SpecError
from kdtune.plan import make_plan
from kdtune.results.reader import collect_run
from kdtune.results.tables import render
from kdtune.rundir import trial_dir
from kdtune.spec.sweepfile import parse_sweep
from kdtune.train.data import data_fingerprint


def _spec(raw, tmp_path, **execution):
    raw = copy.deepcopy(raw)
    raw["execution"] = execution
    return parse_sweep(raw, "s.yaml", output=tmp_path / "run")


@pytest.fixture
def folds_raw(tiny_raw):
    tiny_raw["data"]["folds"] = 3
    return tiny_raw


def test_folds_are_parsed_into_the_data_spec(folds_raw, tmp_path):
    spec = _spec(folds_raw, tmp_path)
    assert (spec.data.folds, spec.data.fold) == (3, 0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"folds": 1}, "data.folds: must be an integer >= 2, got int 1"),
        ({"folds": "5"}, "data.folds: must be an integer >= 2, got str '5'"),
        ({"folds": 5, "val_size": 0.2}, "data.folds: cannot be combined with data.val_size"),
    ],
)
def test_bad_folds_are_one_line(tiny_raw, tmp_path, data, message):
    tiny_raw["data"] |= data
    with pytest.raises(SpecError) as e:
        _spec(tiny_raw, tmp_path)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_every_trial_is_planned_once_per_fold_with_its_teacher_of_that_fold(folds_raw, tmp_path):
    spec = _spec(folds_raw, tmp_path)
    plain = make_plan(_spec({**folds_raw, "data": {k: v for k, v in folds_raw["data"].items() if k != "folds"}}, tmp_path))
    plan = make_plan(spec)
    assert len(plan.trials) == 3 * len(plain.trials)  # 6 per fold: CNN and MLP from data, MLP ← CNN, × 2 seeds
    by = {(t.student, t.teacher, t.seed, t.fold): t for t in plan.trials.values()}
    assert len(by) == len(plan.trials) and {t.fold for t in plan.trials.values()} == {0, 1, 2}
    prints = {f: data_fingerprint(dataclasses.replace(spec.data, fold=f), None) for f in range(3)}
    assert len(set(prints.values())) == 3  # each fold loads other data
    for t in plan.trials.values():
        assert t.config.data == dataclasses.replace(spec.data, fold=t.fold)
        assert t.config.data_fingerprint == prints[t.fold]
        teacher = plan.teacher_of(t)
        if teacher is not None:
            assert (teacher.student, teacher.fold, teacher.seed) == ("CNN", t.fold, t.seed)
    assert {t.fold for t in plain.trials.values()} == {None}


def test_groups_are_equal_but_for_the_seed_so_folds_are_never_mixed(folds_raw, tmp_path):
    plan = make_plan(_spec(folds_raw, tmp_path, seeds_per_trial=2))
    groups = plan.groups()
    assert len(groups) == 9  # (CNN, MLP from data, MLP ← CNN) × 3 folds, both seeds in one group
    for g in groups:
        assert len({t.fold for t in g.trials}) == 1 and [t.seed for t in g.trials] == [0, 1]


def test_the_fingerprint_is_computed_once_per_fold_and_can_be_given(folds_raw, tmp_path, monkeypatch):
    calls = []
    real = kdata.fingerprint_bundle
    monkeypatch.setattr(kdata, "fingerprint_bundle", lambda bundle: calls.append(1) or real(bundle))
    kdata._fingerprint.cache_clear()
    spec = _spec(folds_raw, tmp_path)
    first = make_plan(spec)
    make_plan(spec)
    assert len(calls) == 3
    given = make_plan(spec, {0: "a" * 16, 1: "b" * 16, 2: "c" * 16})
    assert {(t.fold, t.config.data_fingerprint[0]) for t in given.trials.values()} == {(0, "a"), (1, "b"), (2, "c")}
    assert set(given.trials).isdisjoint(first.trials)  # the fingerprint is part of the id
    with pytest.raises(KdtuneError, match="no data fingerprint given for fold 2"):
        make_plan(spec, {0: "a" * 16, 1: "b" * 16})


def test_a_fold_run_reports_over_seeds_and_folds(folds_raw, tmp_path, capsys):
    raw = copy.deepcopy(folds_raw)
    raw["data"]["folds"] = 2
    raw["train"]["epochs"] = 1
    raw["grid"] |= {"seeds": [0]}
    sweep = tmp_path / "folds.yaml"
    sweep.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    assert main(["run", str(sweep), "--out", str(out), "--executor", "inline", "--no-report"]) == 0
    df = collect_run(out)
    ok = df[(df["status"] == "ok") & (df["eval_set"] == "test")]
    assert sorted(ok["fold"].tolist()) == [0, 0, 0, 1, 1, 1]
    stored = pd.read_parquet(out / "results.parquet")
    assert "fold" in stored.columns and set(stored["fold"]) == {0, 1}

    text = render(df, ["accuracy"], rows=["student"], cols=["eval_set", "teacher"])
    assert "accuracy: mean ± std (n) over seeds × folds" in text
    mlp = ok[(ok["student"] == "MLP") & (ok["teacher"] == "data")]["accuracy"]
    assert f"{mlp.mean():.3f} ± {mlp.std():.3f} (2)" in text  # 1 seed × 2 folds in one cell
    per_fold = render(df, ["accuracy"], rows=["student", "fold"], cols=["eval_set", "teacher"])
    for fold, value in zip(ok["fold"], ok["accuracy"], strict=True):
        assert f"| {fold} |" in per_fold and f"{value:.3f} (1)" in per_fold

    capsys.readouterr()
    assert main(["report", str(out), "--format", "csv", "--metric", "accuracy"]) == 0
    tidy = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert set(tidy["n"]) == {2} and set(tidy["n_expected"]) == {2}

    # an unfinished trial of fold 1 counts as planned in its cell and is listed with its fold
    lost = ok[(ok["student"] == "MLP") & (ok["teacher"] == "CNN") & (ok["fold"] == 1)]["trial_id"].item()
    shutil.rmtree(trial_dir(out, lost))
    text = render(collect_run(out), ["accuracy"], rows=["student"], cols=["eval_set", "teacher"])
    assert "(1/2)" in text and f"- pending: MLP ← CNN, seed 0, fold 1 ({lost[:8]})" in text


def test_status_names_the_fold_of_unfinished_trials(folds_raw, tmp_path, capsys):
    from kdtune.run.ledger import record_outcome, write_sweep_record

    raw = copy.deepcopy(folds_raw)
    raw["data"]["folds"] = 2
    spec = _spec(raw, tmp_path)
    plan = make_plan(spec)
    record = write_sweep_record(plan)
    failed = [t for t in plan.trials.values() if (t.student, t.teacher) == ("MLP", "CNN") and t.seed == 1]
    record_outcome(record, {t.id: "RuntimeError: boom" for t in failed}, 1)
    capsys.readouterr()
    main(["status", str(spec.output)])
    text = capsys.readouterr().out
    for t in failed:
        assert f"MLP ← CNN, seed 1, fold {t.fold} ({t.id[:8]}): RuntimeError: boom" in text


# ---------------------------------------------------------------- analyses pair by seed and fold


@dataclass(frozen=True)
class FoldData:
    """The part of a DataSpec the analyses read, with its fold."""

    folds: int
    fold: int
    eval_sets: tuple = ()


def _view(tid: str, student: str, teacher: str, seed: int, fold: int) -> TrialView:
    config = SimpleNamespace(arch=student.lower(), teacher_id=None, data=FoldData(2, fold), data_fingerprint="")
    return TrialView(tid, student, teacher, seed, config)


def test_a_students_from_data_twin_is_of_its_fold(tmp_path):
    trials = {
        t.id: t for t in [_view("d0", "MLP", "data", 0, 0), _view("d1", "MLP", "data", 0, 1), _view("e1", "MLP", "data", 1, 1)]
    }
    student = _view("s", "MLP", "CNN", 0, 1)
    assert student.fold == 1 and student.label == "MLP ← CNN s0 f1"
    assert from_data_twin(trials, student).id == "d1"  # same seed and fold, not d0 (fold 0)
    assert from_data_twin(trials, _view("s2", "MLP", "CNN", 1, 0)).id == "d0"  # no seed 1 in fold 0: another seed, same fold


def test_pair_tables_pair_trials_of_the_same_seed_and_fold(tmp_path):
    rows = []
    runs = [(0, 0), (0, 1)]  # (seed, fold) of each trial of both groups
    for ga, gb in [("A", "A"), ("A", "B"), ("B", "A"), ("B", "B")]:
        for sa, fa in runs:
            for sb, fb in runs:
                if ga == gb and (sa, fa) == (sb, fb):
                    continue  # a trial with itself
                value = 1.0 if (sa, fa) == (sb, fb) else 0.0  # 1 for pairs of the same seed and fold
                rows.append({"group_a": ga, "group_b": gb, "seed_a": sa, "seed_b": sb, "fold_a": fa, "fold_b": fb,
                             "jaccard": value, "share_of_b_in_a": value})  # fmt: skip
    jac, share = group_pair_tables(pd.DataFrame(rows), ["A", "B"])
    assert jac.loc["A", "B"] == "1.000 ± 0.000 (2)"  # across groups: same seed and fold only
    assert jac.loc["A", "A"] == "0.000 ± 0.000 (2)"  # within a group: distinct runs; units the 2 models, one pair each
    assert share.loc["A", "A"] == "0.000 ± 0.000 (2)"


def test_barriers_interpolate_only_within_a_fold_and_name_it():
    from kdtune.analysis.barriers import architectures

    def view(tid: str, seed: int, fold: int) -> TrialView:
        config = SimpleNamespace(arch="mlp", params=(), teacher_id=None, data=FoldData(2, fold), data_fingerprint=f"fp{fold}")
        return TrialView(tid, "MLP", "data", seed, config)

    groups = architectures([view("a", 0, 0), view("b", 1, 0), view("c", 0, 1)])
    assert {name: [t.id for t in g] for name, g in groups.items()} == {"MLP (fold 0)": ["a", "b"], "MLP (fold 1)": ["c"]}
