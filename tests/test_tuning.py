"""Per-model tuning: search spaces and their errors, the objective against its definition, tuned values
in sweeps, and whole searches through Ray Tune (interrupted, killed, resumed; on PostgreSQL)."""

from __future__ import annotations

import io
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

from kdtune.cli import main
from kdtune.errors import KdtuneError, SpecError
from kdtune.rundir import read_json, trial_dir
from kdtune.spec.sweepfile import parse_sweep
from kdtune.train.config import apply_values
from kdtune.tuning.search import prepare, run_search_trial
from tests.conftest import trainings


def _with_tune(raw: dict[str, Any], **tune: Any) -> dict[str, Any]:
    raw["tune"] = {
        "metric": "accuracy",
        "seeds": 2,
        "space": {"MLP": {"lr": {"loguniform": [1.0e-3, 1.0e-1]}}, "CNN -> MLP": {"temperature": {"uniform": [1, 8]}}},
    } | tune
    return raw


# ---------------------------------------------------------------- search spaces


def test_search_spaces_parse_into_optuna_distributions(tiny_raw):
    raw = _with_tune(tiny_raw)
    raw["tune"]["space"]["MLP"] |= {
        "dropout": {"uniform": [0.0, 0.5], "step": 0.1},
        "epochs": {"int": [2, 8], "step": 2},
        "batch_size": {"categorical": [32, 64]},
        "weight_decay": {"loguniform": [1.0e-6, 1.0e-2]},
    }
    raw["train"]["schedule"] = {"name": "exponential", "decay_rate": 0.9}
    raw["tune"]["space"]["MLP"]["schedule.decay_rate"] = {"uniform": [0.8, 0.99]}
    spec = parse_sweep(raw, "t.yaml")
    space = dict(spec.tune.space_for("MLP").params)
    assert spec.tune.direction == "maximize" and spec.tune.seeds == 2
    d = {k: v.to_optuna() for k, v in space.items()}
    assert isinstance(d["lr"], optuna.distributions.FloatDistribution) and d["lr"].log and d["lr"].low == 1e-3
    assert d["dropout"].step == 0.1 and not d["dropout"].log
    assert isinstance(d["epochs"], optuna.distributions.IntDistribution) and d["epochs"].step == 2
    assert d["batch_size"].choices == (32, 64)
    assert spec.tune.space_for("MLP", "CNN").params[0][0] == "temperature"
    assert spec.tune.space_for("CNN") is None


@pytest.mark.parametrize(
    ("setting", "dist", "field", "message"),
    [
        ("lr", {"loguniform": [0.1, 0.01]}, "tune.space.MLP.lr.loguniform", "low must be < high, got [0.1, 0.01]"),
        ("lr", {"loguniform": [0, 0.1]}, "tune.space.MLP.lr.loguniform", "a log scale needs low > 0, got 0"),
        ("lr", {"normal": [0, 1]}, "tune.space.MLP.lr", "must be a distribution"),
        ("optimizer", {"categorical": []}, "tune.space.MLP.optimizer.categorical", "must be a non-empty list of choices"),
        (
            "optimizer",
            {"categorical": ["adam", "lion"]},
            "tune.space.MLP.optimizer.categorical[1]",
            "unknown optimizer 'lion'",
        ),
        ("dropout", {"uniform": [0.0, 1.5]}, "tune.space.MLP.dropout.uniform", "must be a number >= 0 and < 1, got 1.5"),
        ("epochs", {"uniform": [2, 8]}, "tune.space.MLP.epochs", "is a whole number"),
        ("epochs", {"int": [2.5, 8]}, "tune.space.MLP.epochs.int", "bounds must be integers"),
        ("temperature", {"uniform": [1, 8]}, "tune.space.MLP.temperature", "cannot be tuned here"),
        ("momentum", {"uniform": [0, 1]}, "tune.space.MLP.momentum", "cannot be tuned here"),
        ("schedule.gamma", {"uniform": [0, 1]}, "tune.space.MLP.schedule.gamma", "unknown parameter 'gamma'"),
    ],
)
def test_a_bad_search_space_is_one_line_naming_the_field(tiny_raw, setting, dist, field, message):
    raw = _with_tune(tiny_raw)
    raw["tune"]["space"]["MLP"] = {setting: dist}
    with pytest.raises(SpecError) as e:
        parse_sweep(raw, "t.yaml")
    assert e.value.field == field and message in e.value.message, str(e.value)
    assert "\n" not in str(e.value)


def test_bad_tune_settings_are_refused(tiny_raw):
    for key, value, message in [
        ("metric", "test_accuracy", "must be a validation metric"),
        ("seeds", 0, "must be an integer >= 1"),
        ("asha", {"grace_period": 0}, "must be an integer >= 1"),
        ("space", {"GNN": {"lr": {"uniform": [0.1, 0.2]}}}, "must be a model label"),
    ]:
        raw = _with_tune(tiny_raw, **{key: value})
        with pytest.raises(SpecError, match=message):
            parse_sweep(raw, "t.yaml")


# Every field of the tune: section, and the kinds of WRONG value that are valid there: each other wrong value
# there must be one line naming that field (or a field inside it). _tune_with's section holds every field.
WRONG: dict[str, Any] = {"mapping": {"a": 1}, "list": ["x", "y"], "string": "abc", "bool": True, "float": 1.5, "negative": -1}
TUNE_FIELDS: list[tuple[str, set[str]]] = [
    ("tune", set()),
    ("tune.metric", set()),
    ("tune.seeds", set()),
    ("tune.sampler_seed", set()),
    ("tune.asha", {"bool"}),
    ("tune.asha.grace_period", set()),
    ("tune.asha.reduction_factor", {"float"}),
    ("tune.space", set()),
    ("tune.space.MLP", set()),
    ("tune.space.MLP.lr", set()),
    ("tune.space.MLP.lr.loguniform", set()),
    ("tune.space.MLP.dropout", set()),
    ("tune.space.MLP.dropout.uniform", set()),
    ("tune.space.MLP.dropout.step", set()),
    ("tune.space.MLP.epochs", set()),
    ("tune.space.MLP.epochs.int", set()),
    ("tune.space.MLP.epochs.step", set()),
    ("tune.space.MLP.epochs.log", {"bool"}),
    ("tune.space.MLP.batch_size", set()),
    ("tune.space.MLP.batch_size.categorical", set()),
    ("tune.space.MLP.batch_size.categorical[0]", set()),
    ("tune.space.CNN -> MLP", set()),
    ("tune.space.CNN -> MLP.temperature", set()),
    ("tune.space.CNN -> MLP.w_hard.uniform", set()),
]


def _tune_with(tiny_raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """The tiny sweep with a tune section holding every field, and ``value`` at ``path``."""
    raw = _with_tune(tiny_raw, seeds=2, sampler_seed=0, asha={"grace_period": 1, "reduction_factor": 2})
    raw["tune"]["space"] = {
        "MLP": {
            "lr": {"loguniform": [1.0e-3, 1.0e-1]},
            "dropout": {"uniform": [0.0, 0.5], "step": 0.1},
            "epochs": {"int": [2, 8], "step": 2, "log": False},
            "batch_size": {"categorical": [32, 64]},
        },
        "CNN -> MLP": {"temperature": {"uniform": [1, 8]}, "w_hard": {"uniform": [0, 1]}},
    }
    keys = path.split(".")  # model labels hold no dots
    parent: Any = raw
    for k in keys[:-1]:
        parent = parent[k]
    last = keys[-1]
    if last.endswith("]"):  # a list item: name[index]
        name, index = last[:-1].split("[")
        parent[name][int(index)] = value
    else:
        parent[last] = value
    return raw


def test_a_tune_section_with_every_field_is_valid(tiny_raw):
    spec = parse_sweep(_tune_with(tiny_raw, "tune.metric", "nll"), "t.yaml")
    assert spec.tune.metric == "nll" and spec.tune.asha is not None and spec.tune.asha.reduction_factor == 2.0
    assert len(spec.tune.space_for("MLP").params) == 4 and len(spec.tune.space_for("MLP", "CNN").params) == 2


@pytest.mark.parametrize(
    ("path", "kind"),
    [(path, kind) for path, valid in TUNE_FIELDS for kind in WRONG if kind not in valid],
)
def test_a_wrong_value_in_any_field_of_tune_is_one_line_naming_the_field(tiny_raw, path, kind):
    raw = _tune_with(tiny_raw, path, WRONG[kind])
    with pytest.raises(SpecError) as e:
        parse_sweep(raw, "t.yaml")
    for p in e.value.problems:  # one line each: ["x", "y"] as [low, high] is two wrong numbers
        assert p.field == path or p.field.startswith((path + ".", path + "[")), str(e.value)
    assert str(e.value).splitlines() == [f"t.yaml: {p.field}: {p.message}" for p in e.value.problems]
    assert len(e.value.problems) == 1 or kind == "list"


def test_a_mapping_as_tune_metric_is_one_line_from_the_cli(tiny_raw, tmp_path):
    sweep = _sweep(tmp_path, _with_tune(tiny_raw, metric={"a": 1}))
    cmd = [sys.executable, "-m", "kdtune", "tune", str(sweep), "--model", "MLP", "--out", str(tmp_path / "run")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        f"kdtune: error: {sweep}: tune.metric: must be a validation metric, one of "
        "accuracy, a_accuracy, d_accuracy, nll, ece, perplexity, token_nll; got dict {'a': 1}"
    ]


def test_seeds_that_are_neither_a_count_nor_a_list_are_one_line_from_the_cli(tiny_raw, tmp_path, capsys):
    sweep = _sweep(tmp_path, tiny_raw)
    assert main(["plan", str(sweep), "--out", str(tmp_path / "run"), "--set", "grid.seeds=abc"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "kdtune: error: --set: grid.seeds: must be a count of seeds (an integer >= 1) or a list of distinct "
        "integers >= 0, got str 'abc'"
    ]


def test_the_tuning_history_names_the_metric_on_its_y_axis():
    from kdtune.tuning.report import plot_history

    study = optuna.create_study(study_name="tiny:MLP:data:nll", direction="minimize")
    study.optimize(lambda t: t.suggest_float("lr", 0.001, 0.1), n_trials=3)
    ax = plot_history(study)
    try:
        assert ax.get_ylabel() == "validation nll (mean of seeds)"
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "Objective Value" not in legend and "validation nll (mean of seeds)" in legend
    finally:
        import matplotlib.pyplot as plt

        plt.close(ax.figure)


# ---------------------------------------------------------------- values and the objective


def test_values_go_where_they_belong(tiny_spec):
    setup = prepare(parse_sweep(_with_tune(dict(tiny_spec.raw)), "t.yaml", output=tiny_spec.output), "MLP", "CNN")
    t = setup.templates[0]
    train, loss = apply_values(t.train, t.loss, {"lr": 0.02, "epochs": 3.0, "temperature": 2, "schedule.first_epochs": 3})
    assert train.lr == 0.02 and train.epochs == 3 and isinstance(train.epochs, int)
    assert loss.temperature == 2.0 and dict(train.schedule.params)["first_epochs"] == 3.0


def _payload(spec: Any, setup: Any) -> dict[str, Any]:
    """What the driver hands a search trial's worker."""
    return {
        "run_dir": str(spec.output.resolve()),
        "data_root": None,
        "device": "cpu",
        "cpus": 1,
        "eval_batch_size": 512,
        "metric": "accuracy",
        "templates": [t.to_dict() for t in setup.templates],
    }


def test_the_objective_is_the_mean_of_the_seeds_validation_metric(tiny_raw, tmp_path):
    spec = parse_sweep(_with_tune(tiny_raw), "t.yaml", output=tmp_path / "run")
    setup = prepare(spec, "MLP")
    reports: list[dict[str, Any]] = []
    payload = _payload(spec, setup)
    result = run_search_trial({"lr": 0.02}, payload, reports.append)
    metrics = [read_json(trial_dir(spec.output, tid) / "metrics.json") for tid in result["trial_ids"]]
    assert len(metrics) == 2 and {m["seed"] for m in metrics} == {0, 1}
    final = [m["eval"]["val"]["accuracy"] for m in metrics]
    assert result["objective"] == pytest.approx(np.mean(final)) and result["seed_values"] == final
    assert result["objective_std"] == pytest.approx(np.std(final, ddof=1))
    assert [r["final"] for r in reports] == [0, 0, 1]  # one report per epoch, then the objective
    for epoch, r in enumerate(reports[:2]):
        assert r["objective"] == pytest.approx(np.mean([m["history"][epoch]["val_accuracy"] for m in metrics]))
    configs = [read_json(trial_dir(spec.output, tid) / "config.json")["config"] for tid in result["trial_ids"]]
    assert all(c["train"]["lr"] == 0.02 for c in configs)
    # the same configuration again trains nothing: both seeds are read from the run folder
    again = run_search_trial({"lr": 0.02}, payload, lambda r: None)
    assert again["trained"] == 0 and again["objective"] == result["objective"]


def test_a_student_search_tunes_temperature_and_loss_weights(tiny_raw, tmp_path):
    from kdtune.run.execute import InlineExecutor, execute

    raw = _with_tune(tiny_raw)
    raw["tune"]["space"]["CNN -> MLP"] = {"temperature": {"uniform": [1, 8]}, "w_hard": {"uniform": [0, 1]}}
    spec = parse_sweep(raw, "t.yaml", output=tmp_path / "run")
    setup = prepare(spec, "MLP", "CNN")
    assert setup.teachers is not None and {t.student for t in setup.teachers.trials.values()} == {"CNN"}
    assert execute(setup.teachers, InlineExecutor(), log=lambda s: None) == {}
    payload = _payload(spec, setup)
    result = run_search_trial({"temperature": 3.0, "w_hard": 0.25}, payload, lambda r: None)
    for tid in result["trial_ids"]:
        cfg = read_json(trial_dir(spec.output, tid) / "config.json")["config"]
        assert cfg["loss"]["temperature"] == 3.0 and cfg["loss"]["w_hard"] == 0.25 and cfg["teacher_id"]


def test_a_missing_tuned_file_is_one_line_with_the_command_that_makes_it(tiny_raw, tmp_path, capsys):
    raw = _with_tune(tiny_raw)
    raw["models"]["MLP"]["hparams"] = {"data": "tuned", "CNN": "tuned"}
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    assert main(["plan", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"kdtune: error: {path}: models.MLP uses tuned values trained from data (hparams: tuned) but {out}/tuned/MLP.yaml "
        f"does not exist; make it with: kdtune tune {path} --model MLP --out {out}"
    ]
    (out / "tuned").mkdir(parents=True)
    (out / "tuned" / "MLP.yaml").write_text("values: {lr: 0.02}\n")
    assert main(["plan", str(path), "--out", str(out)]) == 2
    assert "--model MLP --teacher CNN" in capsys.readouterr().err
    (out / "tuned" / "MLP.yaml").write_text("values: {momentum: 0.9}\n")
    assert main(["plan", str(path), "--out", str(out)]) == 2
    assert "'momentum' is not a tunable setting here" in capsys.readouterr().err


# ---------------------------------------------------------------- whole searches through Ray Tune


def _sweep(tmp_path: Path, raw: dict[str, Any]) -> Path:
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _finished(out: Path, name: str = "tiny:MLP:data:accuracy") -> int:
    from kdtune.tuning.storage import counts

    db = out / "tuning" / "optuna.db"
    if not db.is_file():
        return 0
    try:
        study = optuna.load_study(study_name=name, storage=f"sqlite:///{db}")
        return counts(study)["finished"]
    except Exception:  # not created yet, or its tables are being created right now
        return 0


def _finished_read_only(out: Path) -> int:
    """Finished search trials, read without Optuna while the search runs (an RDBStorage would create the
    schema itself, racing the search that is creating it)."""
    import sqlite3

    db = out / "tuning" / "optuna.db"
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("SELECT count(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED', 'FAIL')").fetchone()[0]
    except sqlite3.Error:  # not there yet, tables not created yet, or locked for a moment
        return 0


def _running_read_only(out: Path) -> int:
    """Search trials running right now that have their settings (what an interruption would cut short)."""
    import sqlite3

    db = out / "tuning" / "optuna.db"
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            query = (
                "SELECT count(*) FROM trials WHERE state = 'RUNNING' "
                "AND EXISTS (SELECT 1 FROM trial_params p WHERE p.trial_id = trials.trial_id)"
            )
            return con.execute(query).fetchone()[0]
    except sqlite3.Error:
        return 0


def _study(out: Path, name: str = "tiny:MLP:data:accuracy") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'tuning' / 'optuna.db'}")


@pytest.mark.slow
def test_a_search_writes_tuned_values_that_a_sweep_then_uses(tiny_raw, tmp_path, capsys):
    sweep, out = _sweep(tmp_path, _with_tune(tiny_raw, asha=False)), tmp_path / "run"
    assert main(["tune", str(sweep), "--model", "MLP", "--trials", "4", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("  [") for line in lines) == 4  # one line per search trial
    tuned = yaml.safe_load((out / "tuned" / "MLP.yaml").read_text())
    assert tuned["trials"]["finished"] == 4 and tuned["metric"]["n_seeds"] == 2
    assert tuned["metric"]["mean"] == pytest.approx(np.mean(tuned["metric"]["seed_values"]))
    lr = tuned["values"]["lr"]
    trained = len(trainings(out))
    assert trained == 8 and len(set(trainings(out))) == 8  # 4 search trials × 2 seeds, each once

    raw = yaml.safe_load(sweep.read_text())
    raw["models"]["MLP"]["hparams"] = "tuned"
    raw["grid"]["seeds"] = 2
    assert main(["run", str(_sweep(tmp_path, raw)), "--out", str(out), "--executor", "inline", "--no-report"]) == 0
    from kdtune.results.reader import collect_run

    df = collect_run(out)
    mlp = df[(df.student == "MLP") & (df.teacher == "data")].drop_duplicates("trial_id")
    for tid in mlp.trial_id:
        assert read_json(trial_dir(out, tid) / "config.json")["config"]["train"]["lr"] == lr
    assert set(mlp.trial_id) == set(tuned["trial_ids"])  # the best search trial's seeds: not trained again
    assert len(trainings(out)) == trained + 4  # only the 2 CNN teachers and the 2 MLP students
    capsys.readouterr()
    assert main(["report", str(out), "--tuning", "--format", "csv"]) == 0
    assert "tiny:MLP:data:accuracy" in capsys.readouterr().out
    assert (out / "tuning" / "figures" / "tiny--MLP--data--accuracy-history.pdf").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_a_search_interrupted_and_started_again_ends_with_exactly_the_trials_asked_for(tiny_raw, tmp_path, sig):
    raw = _with_tune(tiny_raw, asha=False)
    raw["train"]["epochs"] = 6
    sweep, out = _sweep(tmp_path, raw), tmp_path / "run"
    cmd = [sys.executable, "-m", "kdtune", "tune", str(sweep), "--model", "MLP", "--trials", "8", "--out", str(out)]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while (
            (_finished_read_only(out) < 2 or not _running_read_only(out)) and time.monotonic() < deadline and first.poll() is None
        ):
            time.sleep(0.2)
        assert first.poll() is None, "the search ended before it could be interrupted"
        assert 2 <= _finished(out) < 8
        os.killpg(first.pid, sig)  # the whole process group, as a terminal's Ctrl-C does
        first.wait(60)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(30)
    if sig == signal.SIGINT:
        assert first.returncode == 130
    # the study's contents: the trials the interruption cut short, and (after Ctrl-C) their settings queued again
    study = _study(out)
    if sig == signal.SIGINT:
        cut = [t for t in study.trials if t.user_attrs.get("interrupted")]
        assert cut and all(t.state == TrialState.FAIL for t in cut)
        waiting = [t.system_attrs["fixed_params"] for t in study.trials if t.state == TrialState.WAITING]
        assert sorted(waiting, key=str) == sorted((t.params for t in cut), key=str)
    else:
        cut = [t for t in study.trials if t.state == TrialState.RUNNING and t.params]
        assert cut
    cut_numbers = {t.number for t in cut}
    before = trainings(out)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert _finished(out) == 8
    if sig == signal.SIGKILL:
        assert (
            f"{len(cut)} trial(s) left running by an interrupted run marked failed; {len(cut)} of their configurations "
            "queued again" in again.stdout
        )
    study = _study(out)
    for t in study.trials:
        if t.number in cut_numbers:
            assert t.state == TrialState.FAIL and t.user_attrs["interrupted"]
    for c in cut:  # each configuration cut short ran again, to the end, in a later search trial
        reruns = [t for t in study.trials if t.number > c.number and t.params == c.params and t.number not in cut_numbers]
        assert [t.state for t in reruns] == [TrialState.COMPLETE], (c.number, c.params)
    assert not [t for t in study.trials if t.state in (TrialState.WAITING, TrialState.RUNNING)]
    trained = trainings(out)
    assert len(trained) == len(set(trained)), "a configuration was trained twice"
    assert trained[: len(before)] == before
    tuned = yaml.safe_load((out / "tuned" / "MLP.yaml").read_text())
    assert tuned["trials"]["finished"] == 8


@pytest.mark.slow
def test_a_trial_asha_stops_is_told_to_optuna_with_the_value_asha_stopped_it_on(tiny_raw, tmp_path, capsys):
    import ray

    raw = _with_tune(tiny_raw, asha={"grace_period": 1, "reduction_factor": 2})
    raw["tune"]["space"]["MLP"] = {"lr": {"loguniform": [1.0e-6, 1.0]}}
    raw["train"]["epochs"] = 4  # ASHA's rungs: epochs 1, 2 and 4
    sweep, out = _sweep(tmp_path, raw), tmp_path / "run"
    name, url = "tiny:MLP:data:accuracy", f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    # one at a time, in this order: 1e-3 and 0.05 pass every rung; 3e-4 falls below the median of epoch 1
    # (its first rung); 2e-3 passes epoch 1 and falls below the median of epoch 2
    for lr in (1e-3, 0.05, 3e-4, 2e-3):
        study.enqueue_trial({"lr": lr})
    ray.init(
        address="local",
        num_cpus=1,  # a fresh instance, never a cluster left running by something else
        include_dashboard=False,
        configure_logging=False,
        log_to_driver=False,
    )
    try:
        assert main(["tune", str(sweep), "--model", "MLP", "--trials", "4", "--out", str(out), "--storage", url]) == 0
    finally:
        ray.shutdown()
    lines = capsys.readouterr().out.splitlines()
    study = optuna.load_study(study_name=name, storage=url)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert sorted(t.user_attrs["stopped_at_epoch"] for t in pruned) == [1, 2], [(t.params, t.state) for t in study.trials]
    # what each stopped trial reported, epoch by epoch: the same search trial again, outside Tune (deterministic)
    spec = parse_sweep(raw, "t.yaml", output=tmp_path / "again")
    payload = _payload(spec, prepare(spec, "MLP"))
    for t in pruned:
        epoch = t.user_attrs["stopped_at_epoch"]
        reports: list[dict[str, Any]] = []
        run_search_trial(dict(t.params), payload, reports.append)
        last = reports[epoch - 1]["objective"]  # the epoch ASHA decided on
        assert t.value is not None and t.value == pytest.approx(last, rel=1e-9), (t.number, epoch, t.value, last)
        if epoch > 1:
            assert t.value != pytest.approx(reports[epoch - 2]["objective"])  # not the epoch before
        assert max(t.intermediate_values) == epoch  # Tune's training_iteration: one report per epoch
        assert any(f"#{t.number} " in ln and f"after epoch {epoch} (accuracy {t.value:.4f})" in ln for ln in lines)


@pytest.mark.slow
def test_a_search_on_a_real_postgresql_server(tiny_raw, tmp_path, postgres_url, capsys):
    sweep, out = _sweep(tmp_path, _with_tune(tiny_raw)), tmp_path / "run"
    args = ["tune", str(sweep), "--model", "MLP", "--trials", "3", "--out", str(out), "--storage", postgres_url]
    assert main(args) == 0
    study = optuna.load_study(study_name="tiny:MLP:data:accuracy", storage=postgres_url)
    assert len([t for t in study.trials if t.state.is_finished()]) == 3
    assert not (out / "tuning" / "optuna.db").exists()  # nothing went to the default SQLite
    tuned = yaml.safe_load((out / "tuned" / "MLP.yaml").read_text())
    assert tuned["study"]["storage"] == postgres_url and tuned["values"] == study.best_params
    # the same command continues the same study on the server: already complete, nothing to train
    n = len(trainings(out))
    assert main(args) == 0
    assert len(trainings(out)) == n


def test_a_wrong_storage_url_is_one_line(tiny_raw, tmp_path, capsys):
    sweep = _sweep(tmp_path, _with_tune(tiny_raw))
    args = ["tune", str(sweep), "--model", "MLP", "--out", str(tmp_path / "run"), "--storage", "nosuchdb://x"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kdtune: error: --storage nosuchdb://x: cannot open the Optuna storage")


def test_tune_refuses_a_model_without_a_search_space(tiny_raw, tmp_path):
    spec = parse_sweep(_with_tune(tiny_raw), "t.yaml", output=tmp_path / "run")
    with pytest.raises(KdtuneError, match=re.escape("no search space for CNN in tune.space")):
        prepare(spec, "CNN")
    with pytest.raises(KdtuneError, match=re.escape("--model GNN: not a model of t.yaml")):
        prepare(spec, "GNN")


def _study_with(tmp_path: Path, complete: int, pruned: int = 0) -> Path:
    """A run folder whose study holds ``complete`` complete search trials (lr, dropout; accuracy rising with lr)."""
    out = tmp_path / "run"
    (out / "tuning").mkdir(parents=True)
    study = optuna.create_study(
        storage=f"sqlite:///{out / 'tuning' / 'optuna.db'}", study_name="tiny:MLP:data:accuracy", direction="maximize"
    )
    rng = np.random.default_rng(0)
    for i in range(complete + pruned):
        trial = study.ask({"lr": optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True),
                           "dropout": optuna.distributions.FloatDistribution(0, 0.5)})  # fmt: skip
        trial.set_user_attr("seed_values", [0.9, 0.91])
        trial.set_user_attr("std", 0.007)
        if i < complete:
            study.tell(trial, 0.9 + trial.params["lr"] + 0.001 * rng.normal())
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return out


@pytest.mark.parametrize("complete, caveat", [(4, True), (20, False)])
def test_importances_say_how_many_complete_trials_they_stand_on(tmp_path, capsys, complete, caveat):
    """Issue 28: fANOVA from 4 trials, 2 complete, is noise; the table says from how many and warns below 20."""
    out = _study_with(tmp_path, complete, pruned=3)
    assert main(["report", str(out), "--tuning"]) == 0
    text = capsys.readouterr().out
    title = f"**tiny:MLP:data:accuracy: importance of each setting (fANOVA over {complete} complete search trials)**"
    assert title in text.splitlines()
    assert (f"{complete} complete trials are too few for fANOVA (kdtune asks for 20)" in text) is caveat
    assert main(["report", str(out), "--tuning", "--format", "csv"]) == 0
    csv = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert set(csv["complete"].dropna()) == {complete}
    assert main(["report", str(out), "--tuning", "--format", "latex"]) == 0
    assert ("too few for fANOVA" in capsys.readouterr().out.split(r"\caption{", 2)[2].split("}\n")[0]) is caveat


def test_the_searcher_tells_optuna_complete_pruned_or_failed_as_the_trial_ended():
    """A finite final objective is COMPLETE with its seeds' values; a result ASHA stopped on is PRUNED at its epoch;
    an error, and a final objective that is NaN or infinite (a diverged seed), are FAIL, the latter with its reason
    (before, a non-finite final objective was recorded as PRUNED, as if ASHA had stopped the trial)."""
    from optuna.distributions import FloatDistribution
    from optuna.samplers import RandomSampler

    from kdtune.tuning.search import _searcher_class

    searcher = _searcher_class()(
        space={"lr": FloatDistribution(1e-4, 1e-1, log=True)}, metric="objective", mode="max", sampler=RandomSampler(seed=0)
    )
    final = {"final": 1, "epoch": 4, "seed_values": [0.5, 0.7], "trial_ids": ["a", "b"], "objective_std": 0.1}
    endings = {
        "complete": ({**final, "objective": 0.6}, False),
        "stopped": ({"final": 0, "epoch": 2, "training_iteration": 2, "objective": 0.3}, False),
        "nan": ({**final, "objective": math.nan}, False),
        "inf": ({**final, "objective": -math.inf}, False),
        "error": (None, True),
    }
    for tid in endings:
        assert searcher.suggest(tid) is not None
    for tid, (result, error) in endings.items():
        searcher.on_trial_complete(tid, result=result, error=error)
    trials = {tid: searcher._ot_study.trials[searcher.number_of(tid)] for tid in endings}
    assert {tid: t.state for tid, t in trials.items()} == {
        "complete": TrialState.COMPLETE, "stopped": TrialState.PRUNED, "nan": TrialState.FAIL, "inf": TrialState.FAIL,
        "error": TrialState.FAIL,
    }  # fmt: skip
    assert trials["complete"].value == 0.6 and trials["complete"].user_attrs["seed_values"] == [0.5, 0.7]
    assert trials["stopped"].user_attrs["stopped_at_epoch"] == 2 and trials["stopped"].intermediate_values == {2: 0.3}
    for tid in ("nan", "inf"):
        assert trials[tid].user_attrs["reason"] == "the objective is not a finite number"
    assert "reason" not in trials["error"].user_attrs
