"""MLflow and Weights & Biases through kdtune's tracker callbacks, against a real MLflow tracking server (started by
the tests, installed by the dev extra) and W&B's offline run files: one finished tracker run per trial, equal to
the run folder; nothing logged twice on a second run or after a SIGKILL; a retried trial's failed attempt marked
FAILED; search trials of ``kdtune tune`` with the best one tagged; the report's tables and the analysis as
artifacts of one summary run. And the one-line refusals before any work: a tracker not installed, a tracking
server that does not answer, W&B online without a key, a malformed ``outputs:`` entry."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from kdtune.plan import make_plan
from kdtune.rundir import METRICS, trial_dir
from kdtune.spec.sweepfile import parse_sweep
from tests.conftest import TINY
from tests.postgres import free_port
from tests.trackers import mlflow_server, offline_run

REPO = Path(__file__).resolve().parents[1]
SETTINGS = ("student", "teacher", "arch", "temperature", "w_hard", "w_soft", "kd_loss", "lr", "epochs", "batch_size",
            "optimizer", "weight_decay", "dropout", "label_smoothing", "schedule", "seed", "init_seed", "data_seed")  # fmt: skip
METRIC_COLUMNS = ("accuracy", "nll", "ece", "agreement", "kl")


def kdtune(*args: str, env: dict[str, str] | None = None, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kdtune", *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO
    )


def sweep_file(tmp_path: Path, raw: dict[str, Any], name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


# ---------------------------------------------------------------- refusals before any work


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, dict[str, str]]:
    """The tiny sweep trained once (inline): its sweep file, run folder and each trial's checksums.json text."""
    from kdtune.run.execute import InlineExecutor, execute
    from kdtune.rundir import init_run_dir

    tmp = tmp_path_factory.mktemp("trained")
    init_run_dir(tmp / "run")
    path = sweep_file(tmp, TINY)
    spec = parse_sweep(TINY, str(path), output=tmp / "run")
    plan = make_plan(spec)
    from kdtune.run.ledger import write_sweep_record

    write_sweep_record(plan)
    assert execute(plan, InlineExecutor(), log=lambda s: None) == {}
    return path, tmp / "run", {t: (trial_dir(tmp / "run", t) / "checksums.json").read_text() for t in plan.trials}


def _refused(argv: list[str], capsys: Any, run: Path, sums: dict[str, str], *words: str) -> None:
    """``kdtune ARGV`` exits 2 with one line naming what is wrong, before any work: no trial written, no run log."""
    from kdtune.cli import main

    status = main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert status == 2, out + err
    assert len(lines) == 1 and lines[0].startswith("kdtune: error: "), err
    assert all(w in lines[0] for w in words), lines[0]
    assert out == ""
    assert {t: (trial_dir(run, t) / "checksums.json").read_text() for t in sums} == sums
    assert len(list((run / "logs").glob("*-run.log"))) == 1  # the first run's only


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--mlflow", "http://127.0.0.1:5000"], ["--mlflow", "mlflow package", "pip install 'kdtune[mlflow]'"]),
        (["--wandb", "kd"], ["--wandb", "wandb package", "pip install 'kdtune[wandb]'"]),
        (["--set", "outputs.mlflow={tracking_uri: http://127.0.0.1:5000}"], ["outputs.mlflow", "kdtune[mlflow]"]),
    ],
)
def test_a_tracker_not_installed_is_one_line_naming_the_extra(trained, flags, words, monkeypatch, capsys):
    """The interpreter cannot import the tracker (``sys.modules[name] = None``, Python's way to block an import)."""
    path, run, sums = trained
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "wandb", None)
    _refused(["run", str(path), "--out", str(run), *flags], capsys, run, sums, *words)


def test_a_tracking_server_that_does_not_answer_is_one_line(trained, capsys):
    path, run, sums = trained
    uri = f"http://127.0.0.1:{free_port()}"
    _refused(["run", str(path), "--out", str(run), "--mlflow", uri], capsys, run, sums, uri, "does not answer")
    _refused(["report", str(run), "--mlflow", uri], capsys, run, sums, uri, "does not answer")


def test_a_folder_store_mlflow_will_not_open_is_one_line_naming_the_way_out(trained, tmp_path, monkeypatch, capsys):
    """MLflow 3 refuses a folder store unless MLFLOW_ALLOW_FILE_STORE=true: one line before any work, not a traceback;
    with the variable set, the same folder passes the check."""
    from kdtune.run.trackers import check_mlflow
    from kdtune.train.config import MlflowSpec

    path, run, sums = trained
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    folder = str(tmp_path / "mlruns-folder")
    words = ("--mlflow", folder, "MLFLOW_ALLOW_FILE_STORE=true", "sqlite:///")
    _refused(["run", str(path), "--out", str(run), "--mlflow", folder], capsys, run, sums, *words)
    _refused(["report", str(run), "--mlflow", folder], capsys, run, sums, *words)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    check_mlflow(MlflowSpec(tracking_uri=folder), flag=True)


def test_a_database_store_mlflow_cannot_make_is_one_line(trained, tmp_path, capsys):
    """A local store MLflow fails to open with an error of its own (here: its database's folder is a file) is one
    line before any work, not a traceback."""
    path, run, sums = trained
    (tmp_path / "a-file").write_text("")
    uri = f"sqlite:///{tmp_path}/a-file/mlflow.db"
    _refused(["run", str(path), "--out", str(run), "--mlflow", uri], capsys, run, sums, uri, "MLflow cannot open this store")


def test_wandb_online_without_a_key_is_one_line(trained, tmp_path, monkeypatch, capsys):
    path, run, sums = trained
    for k in [k for k in os.environ if k.startswith("WANDB_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    _refused(["run", str(path), "--out", str(run), "--wandb", "kd"], capsys, run, sums, "WANDB_API_KEY", "offline")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("{tracking_uri: ftp://host/x}", ["outputs.mlflow.tracking_uri", "MLflow tracking URI", "ftp://host/x"]),
        ("{experiment: kd}", ["outputs.mlflow.tracking_uri", "is required"]),
        ("{tracking_uri: http://127.0.0.1:5000, token: abc}", ["outputs.mlflow", "token"]),
        ("http://127.0.0.1:5000", ["outputs.mlflow", "mapping"]),
    ],
)
def test_a_malformed_mlflow_entry_is_one_line(trained, value, words, capsys):
    path, run, sums = trained
    _refused(["run", str(path), "--out", str(run), "--set", f"outputs.mlflow={value}"], capsys, run, sums, *words)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("{project: kd, mode: sometimes}", ["outputs.wandb.mode", "online, offline", "sometimes"]),
        ("{group: g}", ["outputs.wandb.project", "is required"]),
        ("{project: kd, api_key: abc}", ["outputs.wandb", "api_key"]),
    ],
)
def test_a_malformed_wandb_entry_is_one_line(trained, value, words, capsys):
    path, run, sums = trained
    _refused(["run", str(path), "--out", str(run), "--set", f"outputs.wandb={value}"], capsys, run, sums, *words)


def test_the_flags_override_the_sweep_and_keep_its_other_settings():
    from kdtune.run.trackers import with_flags

    raw = TINY | {"outputs": {"mlflow": {"tracking_uri": "sqlite:///a.db", "experiment": "exp"},
                              "wandb": {"project": "p", "group": "g", "mode": "offline"}}}  # fmt: skip
    spec = with_flags(parse_sweep(raw, "tiny.yaml"), "http://127.0.0.1:5000", "q")
    assert (spec.trackers.mlflow.tracking_uri, spec.trackers.mlflow.experiment) == ("http://127.0.0.1:5000", "exp")
    assert (spec.trackers.wandb.project, spec.trackers.wandb.group, spec.trackers.wandb.mode) == ("q", "g", "offline")
    plain = with_flags(parse_sweep(TINY, "tiny.yaml"), "http://127.0.0.1:5000", "q")
    assert plain.trackers.mlflow.experiment == "tiny" and plain.trackers.wandb.group == "tiny"
    assert plain.trackers.wandb.mode is None  # $WANDB_MODE, else online
    assert make_plan(plain).trials.keys() == make_plan(parse_sweep(TINY, "tiny.yaml")).trials.keys()  # ids unchanged


# ---------------------------------------------------------------- what a tracked run holds


def expected_params(cfg: dict[str, Any], row: pd.Series) -> dict[str, str]:
    """The parameters of a trial's run, derived from its config.json and its results row: kdtune's setting names."""
    tr, loss, data = cfg["train"], cfg["loss"], cfg["data"]
    out: dict[str, Any] = {"student": row.student, "teacher": row.teacher, "seed": int(row.seed), "arch": cfg["arch"]}
    out |= {"init_seed": int(row.init_seed), "data_seed": int(row.data_seed)}
    if not pd.isna(row.teacher_seed):
        out["teacher_seed"] = int(row.teacher_seed)
    out |= {f"params.{k}": v for k, v in cfg["params"].items()}
    for k in ("epochs", "batch_size", "optimizer", "lr", "weight_decay", "dropout", "label_smoothing", "grad_clip", "select"):
        out[k] = tr[k]
    out["select_from"] = tr.get("select_from", "first_epoch")
    out["schedule"] = tr["schedule"]["name"]
    out |= {f"schedule.{k}": v for k, v in tr["schedule"]["params"].items()}
    if loss["kind"] != "ce":
        out |= {"kd_loss": loss["kind"], "temperature": loss["temperature"], "w_hard": loss["w_hard"], "w_soft": loss["w_soft"]}
        out |= {"start": loss.get("start", 0.0), "stop": loss.get("stop"), "student_streams": cfg.get("student_streams", "apart")}
    out |= {"data.name": data["name"], **{f"data.{k}": v for k, v in data["params"].items()}}
    out |= {f"data.{k}": data[k] for k in ("val_size", "split_seed", "corruption_seed")}
    for e in data["eval_sets"]:
        words = [f"source={e['source']}", f"corruption={e['corruption']}", *(f"{k}={v}" for k, v in e["params"].items())]
        out[f"data.eval_sets.{e['name']}"] = " ".join(words)
    out["data.fingerprint"] = cfg["data_fingerprint"]
    out["outputs.feature_examples"] = cfg["outputs"]["feature_examples"]
    if cfg["outputs"].get("feature_epochs"):
        out["outputs.feature_epochs"] = cfg["outputs"]["feature_epochs"]
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in out.items() if v is not None}


def mlflow_runs(uri: str, experiment: str, kind: str = "trial") -> list[Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return [r for r in client.search_runs([exp.experiment_id], max_results=5000) if r.data.tags.get("kdtune.kind") == kind]


def check_runs_equal_the_run_folder(uri: str, experiment: str, run: Path) -> dict[str, list[Any]]:
    """One FINISHED run per trial of ``results.parquet`` with its parameters, final metrics (to the float), tags and
    artifacts; no run RUNNING; the other runs of a trial FAILED or KILLED attempts. Returns trial id → its runs."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    df = pd.read_parquet(run / "results.parquet")
    assert (df["status"] == "ok").all()
    runs = mlflow_runs(uri, experiment)
    by_trial: dict[str, list[Any]] = {}
    for r in runs:
        by_trial.setdefault(r.data.tags["kdtune.trial_id"], []).append(r)
    assert set(by_trial) == set(df["trial_id"])
    assert not [r.info.run_name for r in runs if r.info.status not in ("FINISHED", "FAILED", "KILLED")]
    for tid, rows in df.groupby("trial_id"):
        finished = [r for r in by_trial[tid] if r.info.status == "FINISHED"]
        assert len(finished) == 1, f"trial {tid}: {[r.info.status for r in by_trial[tid]]}"
        r, row = finished[0], rows.iloc[0]
        cfg = json.loads((trial_dir(run, tid) / "config.json").read_text())["config"]
        assert r.data.params == expected_params(cfg, row)
        for k in SETTINGS:  # the results table's own columns say the same
            if not pd.isna(row[k]):
                value = row[k]
                assert r.data.params[k] == (
                    value if isinstance(value, str) else json.dumps(value.item() if hasattr(value, "item") else value)
                )
        tags = r.data.tags
        assert (tags["kdtune.trial_id"], tags["kdtune.stage"], tags["kdtune.sweep"]) == (tid, str(row.stage), experiment)
        assert tags.get("kdtune.teacher_id") == (row.teacher_id if isinstance(row.teacher_id, str) else None)
        assert tags["kdtune.results_version"] == "3" and tags["kdtune.version"]
        for _, er in rows.iterrows():
            for m in METRIC_COLUMNS:
                if not pd.isna(er[m]):
                    assert r.data.metrics[f"{m}/{er.eval_set}"] == er[m]  # to the float
        history = json.loads((trial_dir(run, tid) / METRICS).read_text())["history"]
        logged = client.get_metric_history(r.info.run_id, "val_accuracy")
        assert sorted((m.step, m.value) for m in logged) == [(h["epoch"], h["val_accuracy"]) for h in history]
        assert sorted(a.path for a in client.list_artifacts(r.info.run_id)) == ["config.json", "metrics.json"]
    return by_trial


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> str:
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


SMALL = ["--set", "train.epochs=3", "--set", "models.CNN.params.channels=[4, 4, 8]", "--set", "models.MLP.params.hidden=[32]",
         "--set", "outputs.feature_epochs=[0, 3]", "--set", "distill.schedule=constant",
         "--set", "execution.max_failures=1"]  # fmt: skip


@pytest.mark.slow
def test_the_quickstart_logged_to_a_real_mlflow_server_equals_its_run_folder(server, tmp_path):
    """The quickstart at a small size, one student trial failing once in its second epoch and retried; a second run
    adds no run; the report and the analysis go to one summary run."""
    out = tmp_path / "q"
    from kdtune.spec.sweepfile import load_sweep

    spec = load_sweep(REPO / "sweeps/quickstart.yaml", SMALL[1::2], output=out)
    victim = next(t.id for t in make_plan(spec).trials.values() if t.student == "MLP" and t.teacher == "CNN" and t.seed == 1)
    env = os.environ | {"KDTUNE_FAULT": f"raise:{victim}:2:once"}
    first = kdtune("run", "sweeps/quickstart.yaml", "--out", str(out), "--mlflow", server, "--no-report", *SMALL, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    by_trial = check_runs_equal_the_run_folder(server, "quickstart", out)
    assert len(by_trial) == 12
    assert sorted(r.info.status for r in by_trial[victim]) == ["FAILED", "FINISHED"]  # the failed attempt, then the retry
    failed = next(r for r in by_trial[victim] if r.info.status == "FAILED")
    assert "InjectedFault" in failed.data.tags["kdtune.error"]
    assert all(len(v) == 1 for k, v in by_trial.items() if k != victim)
    ids = {r.info.run_id for v in by_trial.values() for r in v}

    again = kdtune("run", "sweeps/quickstart.yaml", "--out", str(out), "--mlflow", server, "--no-report", *SMALL)
    assert again.returncode == 0, again.stderr
    assert {r.info.run_id for r in mlflow_runs(server, "quickstart")} == ids

    analyze = kdtune("analyze", str(out), "--only", "calibration")
    assert analyze.returncode == 0, analyze.stderr
    for _ in range(2):  # one summary run, its artifacts replaced
        report = kdtune("report", str(out), "--mlflow", server, "--metric", "accuracy")
        assert report.returncode == 0, report.stderr
    from mlflow.tracking import MlflowClient

    (summary,) = mlflow_runs(server, "quickstart", "summary")
    client = MlflowClient(server)
    paths = {a.path for a in client.list_artifacts(summary.info.run_id, "report")}
    assert paths == {"report/report.md", "report/report.csv", "report/report.tex"}
    assert "analysis/index.html" in {a.path for a in client.list_artifacts(summary.info.run_id, "analysis")}
    md = Path(client.download_artifacts(summary.info.run_id, "report/report.md", str(tmp_path)))
    assert md.read_text() == report.stdout


@pytest.mark.slow
def test_a_sigkill_mid_sweep_and_a_resume_leave_no_duplicate_and_no_run_running(server, tmp_path):
    raw = json.loads(json.dumps(TINY))
    raw["distill"]["epochs"] = 60  # students train long enough to be killed mid-training
    path, out = sweep_file(tmp_path, raw), tmp_path / "run"
    cmd = [sys.executable, "-m", "kdtune", "run", str(path), "--out", str(out), "--mlflow", server, "--no-report"]
    stage2 = [t.id for g in make_plan(parse_sweep(raw, str(path), output=out)).stages[1] for t in g.trials]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=REPO)
    try:
        end = time.monotonic() + 300
        while time.monotonic() < end and proc.poll() is None:
            open_runs = [
                r for r in mlflow_runs(server, "tiny") if r.info.status == "RUNNING" and r.data.tags["kdtune.trial_id"] in stage2
            ]
            if open_runs and not all((trial_dir(out, t) / METRICS).is_file() for t in stage2):
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before the kill"
    assert any(r.info.status == "RUNNING" for r in mlflow_runs(server, "tiny"))  # what the killed driver left open

    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=400, cwd=REPO)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    by_trial = check_runs_equal_the_run_folder(server, "tiny", out)
    killed = [r for v in by_trial.values() for r in v if r.info.status != "FINISHED"]
    assert all(r.info.status == "KILLED" and r.data.tags["kdtune.trial_id"] in stage2 for r in killed)


@pytest.mark.slow
def test_kdtune_tune_logs_each_search_trial_and_tags_the_best(server, tmp_path):
    import optuna

    raw = json.loads(json.dumps(TINY)) | {
        "tune": {
            "seeds": 2,
            "asha": False,
            "space": {"MLP": {"lr": {"loguniform": [1.0e-3, 3.0e-2]}, "dropout": {"uniform": [0, 0.3]}}},
        }
    }
    path, out = sweep_file(tmp_path, raw), tmp_path / "run"
    proc = kdtune("tune", str(path), "--out", str(out), "--model", "MLP", "--trials", "3", "--mlflow", server)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = mlflow_runs(server, "tiny", "search")
    storage = f"sqlite:///{(out / 'tuning' / 'optuna.db').resolve()}"
    study = optuna.load_study(study_name=runs[0].data.tags["kdtune.study"], storage=storage)
    trials = {t.number: t for t in study.trials}
    assert sorted(int(r.data.tags["kdtune.search_trial"]) for r in runs) == sorted(trials) and len(runs) == 3
    for r in runs:
        t = trials[int(r.data.tags["kdtune.search_trial"])]
        assert r.info.status == "FINISHED" and r.data.tags["kdtune.state"] == "complete"
        assert {k: float(r.data.params[k]) for k in t.params} == t.params  # the sampled values
        assert math.isclose(r.data.metrics["objective"], t.value, rel_tol=0, abs_tol=0)
        assert (r.data.params["model"], r.data.params["teacher"]) == ("MLP", "data")
    best = [r for r in runs if r.data.tags["kdtune.best"] == "true"]
    assert [int(r.data.tags["kdtune.search_trial"]) for r in best] == [study.best_trial.number]


@pytest.mark.slow
def test_wandb_offline_run_files_hold_each_trials_parameters_and_final_metrics(tmp_path):
    path, out = sweep_file(tmp_path, TINY), tmp_path / "run"
    env = os.environ | {"WANDB_MODE": "offline"}
    cmd = ["run", str(path), "--out", str(out), "--wandb", "kdtune-test", "--executor", "inline", "--no-report"]
    proc = kdtune(*cmd, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folders = sorted((out / "wandb").glob("offline-run-*"))
    df = pd.read_parquet(out / "results.parquet")
    runs = {r["config"]["kdtune.trial_id"]: r for r in map(offline_run, folders)}
    assert len(folders) == len(runs) == df["trial_id"].nunique() == 6
    for tid, rows in df.groupby("trial_id"):
        r, row = runs[tid], rows.iloc[0]
        cfg = json.loads((trial_dir(out, tid) / "config.json").read_text())["config"]
        params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in r["config"].items() if not k.startswith("kdtune.")}
        assert params == expected_params(cfg, row)
        assert (r["project"], r["group"], r["exit_code"]) == ("kdtune-test", "tiny", 0)
        assert r["config"]["kdtune.stage"] == str(row.stage)
        for _, er in rows.iterrows():
            for m in METRIC_COLUMNS:
                if not pd.isna(er[m]):
                    assert r["summary"][f"{m}/{er.eval_set}"] == er[m]
        history = json.loads((trial_dir(out, tid) / METRICS).read_text())["history"]
        assert [h["val_accuracy"] for h in r["history"] if "val_accuracy" in h] == [h["val_accuracy"] for h in history]
    again = kdtune(*cmd, env=env)
    assert again.returncode == 0 and sorted((out / "wandb").glob("offline-run-*")) == folders
