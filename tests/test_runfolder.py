"""The run folder as the source of truth: sweep records and their union, checksums and damaged trials,
data fingerprints, the lock, --out checks, umask, divergence, model selection, ``kdtune status``."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from kdtune.cli import main
from kdtune.errors import KdtuneError
from kdtune.plan import TrialConfig, make_plan
from kdtune.results.reader import collect_run, collect_runs, load_records
from kdtune.run.execute import InlineExecutor, execute
from kdtune.rundir import TrialWriter, check_trial, trial_dir
from kdtune.train.trainer import DivergedError, check_divergence, selection_key, train_trial


def _write(tmp_path: Path, raw: dict, name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def _run(sweep: Path, out: Path, *extra: str) -> int:
    return main(["run", str(sweep), "--out", str(out), "--executor", "inline", "--no-report", *extra])


# ---------------------------------------------------------------- item 2: every sweep stays reportable


def test_a_second_sweep_into_the_folder_keeps_the_first_ones_trials_reportable(tiny_raw, tmp_path, capsys):
    sweep, out = _write(tmp_path, tiny_raw), tmp_path / "run"
    assert _run(sweep, out) == 0
    full = collect_run(out)
    assert full["trial_id"].nunique() == 6  # 2 CNN + 2 MLP from data, 2 MLP students
    subset = ["--set", "grid.students=null", "--set", "grid.teachers=null", "--set", "grid.pairs=[data -> MLP]"]
    assert _run(sweep, out, *subset) == 0
    records = load_records(out)
    assert records[0].name == "tiny" and len(records) == 2
    union = collect_run(out)
    assert set(union["trial_id"]) == set(full["trial_id"])  # nothing lost; the subset's trials were already there
    stored = pd.read_parquet(out / "results.parquet")
    assert set(stored["trial_id"]) == set(full["trial_id"])
    assert collect_run(out, sweep=records[1].name)["trial_id"].nunique() == 2  # the subset alone
    capsys.readouterr()
    assert main(["report", str(out), "--sweep", records[1].name, "--format", "csv", "--metric", "accuracy"]) == 0
    tidy = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert set(tidy["teacher"]) == {"data"} and set(tidy["student"]) == {"MLP"}
    # the same sweep run again reuses its record
    assert _run(sweep, out) == 0
    assert len(load_records(out)) == 2


def test_report_merges_several_run_folders_and_counts_a_shared_trial_once(tiny_raw, tmp_path):
    sweep = _write(tmp_path, tiny_raw)
    a, b = tmp_path / "a", tmp_path / "b"
    assert _run(sweep, a, "--set", "grid.seeds=[0]") == 0
    assert _run(sweep, b, "--set", "grid.seeds=[0, 1]") == 0
    df, notes = collect_runs([a, b])
    assert df["trial_id"].nunique() == 6 and len(notes) == 1 and "counted once" in notes[0]
    ok = df[(df.status == "ok") & (df.eval_set == "test")]
    assert ok.groupby(["student", "teacher"], observed=True).size().to_dict() == {
        ("CNN", "data"): 2,
        ("MLP", "data"): 2,
        ("MLP", "CNN"): 2,
    }


def test_a_scratch_folder_left_by_a_killed_worker_is_removed_by_the_next_run(tiny_raw, tmp_path):
    sweep, out = _write(tmp_path, tiny_raw), tmp_path / "run"
    assert _run(sweep, out) == 0
    scratch = out / "trials" / ".0123456789abcdef.x1y2z3"
    scratch.mkdir()
    (scratch / "model.pt").write_bytes(b"half written")
    assert _run(sweep, out) == 0
    assert not scratch.exists() and len(list((out / "trials").iterdir())) == 6


def test_report_rebuilds_the_table_from_the_trial_folders_when_results_were_deleted(tiny_raw, tmp_path, capsys):
    sweep, out = _write(tmp_path, tiny_raw), tmp_path / "run"
    assert _run(sweep, out) == 0
    (out / "results.parquet").unlink()
    (out / "results.csv").unlink()
    capsys.readouterr()
    assert main(["report", str(out), "--metric", "accuracy"]) == 0
    assert "(2)" in capsys.readouterr().out


def test_report_on_a_sweep_file_or_a_missing_folder_is_one_line(tmp_path, tiny_raw, capsys):
    sweep = _write(tmp_path, tiny_raw)
    assert main(["report", str(sweep)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"kdtune: error: {sweep}: is a file, not a run folder; give a folder written by `kdtune run` (e.g. runs/quickstart)"
    ]
    assert main(["status", str(tmp_path / "nope")]) == 2
    assert "no such run folder" in capsys.readouterr().err


# ---------------------------------------------------------------- item 4: divergence


def test_a_diverging_trial_fails_with_its_reason_and_its_students_are_skipped(tiny_raw, tmp_path):
    tiny_raw["models"]["CNN"]["train"] = {"lr": 1.0e6}
    from kdtune.spec.sweepfile import parse_sweep

    plan = make_plan(parse_sweep(tiny_raw, "tiny.yaml", output=tmp_path / "run"))
    failures = execute(plan, InlineExecutor(), log=lambda s: None)
    cnn = [t for t in plan.trials.values() if t.student == "CNN"]
    students = [t for t in plan.trials.values() if t.teacher == "CNN"]
    assert all(failures[t.id].startswith("DivergedError: ") for t in cnn)
    assert all(failures[t.id].startswith("skipped: teacher") for t in students)
    assert not any(trial_dir(plan.spec.output, t.id).exists() for t in cnn)


def test_divergence_rules():
    model = torch.nn.Linear(2, 2)
    cfg = TrialConfig("mlp", (), None, None, None, 0)  # type: ignore[arg-type]
    check_divergence(cfg, 3, 2.0, 2.3, model)  # falling loss: fine
    check_divergence(cfg, 3, 22.9, 2.3, model)  # below 10× the start: fine
    with pytest.raises(DivergedError, match="over 10× its starting value"):
        check_divergence(cfg, 3, 24.0, 2.3, model)
    with pytest.raises(DivergedError, match="became nan"):
        check_divergence(cfg, 1, float("nan"), 2.3, model)
    with torch.no_grad():
        model.weight[0, 0] = float("inf")
    with pytest.raises(DivergedError, match="parameter weight is not finite"):
        check_divergence(cfg, 1, 1.0, 2.3, model)


# ---------------------------------------------------------------- item 5: model selection ties


def test_selection_breaks_accuracy_ties_by_validation_nll_and_keeps_the_earliest_full_tie():
    rows = [
        {"val_accuracy": 0.978, "val_nll": 0.241},  # epoch 1: the paper's "barely trained" case
        {"val_accuracy": 0.978, "val_nll": 0.080},  # epoch 2: same accuracy, much better NLL
        {"val_accuracy": 0.978, "val_nll": 0.080},  # epoch 3: a full tie with epoch 2
        {"val_accuracy": 0.970, "val_nll": 0.010},
    ]
    best = max(range(len(rows)), key=lambda i: (selection_key("val_accuracy", rows[i]), -i))
    assert best == 1
    best = max(range(len(rows)), key=lambda i: (selection_key("val_nll", rows[i]), -i))
    assert best == 3


def test_the_trainer_keeps_the_tied_epoch_with_the_lowest_validation_nll(tiny_spec, monkeypatch):
    from kdtune.train.tasks import Task

    scripted = iter([(0.9, 0.5), (0.9, 0.2), (0.9, 0.3), (0.8, 0.1)])

    def validate(self, model, split, batch_size):
        accuracy, nll = next(scripted)
        return {"accuracy": accuracy, "nll": nll}

    monkeypatch.setattr(Task, "validate", validate)
    plan = make_plan(tiny_spec)
    trial = next(t for t in plan.trials.values() if t.student == "MLP" and t.stage == 1)
    cfg = trial.config
    import dataclasses

    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=4))
    result = train_trial(cfg, tiny_spec.output, None, torch.device("cpu"))
    assert result["best_epoch"] == 2


# ---------------------------------------------------------------- item 8: checksums, damaged trials


def test_a_truncated_or_deleted_teacher_file_is_found_and_retrained_with_its_students(tiny_spec):
    plan = make_plan(tiny_spec)
    assert execute(plan, InlineExecutor(), log=lambda s: None) == {}
    run = tiny_spec.output
    student = next(t for t in plan.trials.values() if t.stage == 2)
    teacher = student.config.teacher_id
    assert check_trial(run, teacher) is None
    model = trial_dir(run, teacher) / "model.pt"
    model.write_bytes(model.read_bytes()[:100])
    assert "model.pt: damaged" in check_trial(run, teacher)
    before = json.loads((trial_dir(run, student.id) / "metrics.json").read_text())
    logs: list[str] = []
    assert execute(make_plan(tiny_spec), InlineExecutor(), log=logs.append) == {}
    assert logs[0].startswith(f"damaged: {model}: damaged (checksum differs")
    assert "with the 1 trial distilled from it" in logs[0]
    assert "stage 1: 1 of 4 trials to run, in 1 group on inline (3 already finished)" in logs
    assert "stage 2: 1 of 2 trials to run, in 1 group on inline (1 already finished)" in logs
    assert check_trial(run, teacher) is None and check_trial(run, student.id) is None
    after = json.loads((trial_dir(run, student.id) / "metrics.json").read_text())
    assert after["eval"] == before["eval"]  # the same trial, reproduced
    assert len(list((run / "damaged").iterdir())) == 2  # nothing is lost: both old folders are kept

    (trial_dir(run, teacher) / "outputs.npz").unlink()
    logs.clear()
    execute(make_plan(tiny_spec), InlineExecutor(), log=logs.append)
    assert logs[0].startswith(f"damaged: {trial_dir(run, teacher) / 'outputs.npz'}: missing")


def test_a_student_refuses_a_teacher_whose_checkpoint_fails_its_checksum(tiny_spec):
    from kdtune.train.data import load_data
    from kdtune.train.trainer import load_trained_model

    plan = make_plan(tiny_spec)
    execute(plan, InlineExecutor(), log=lambda s: None)
    teacher = next(t for t in plan.trials.values() if t.stage == 1)
    path = trial_dir(tiny_spec.output, teacher.id) / "model.pt"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    info = load_data(tiny_spec.data, None).info
    with pytest.raises(KdtuneError, match=r"model.pt: damaged"):
        load_trained_model(tiny_spec.output, teacher.id, info, torch.device("cpu"))


# ---------------------------------------------------------------- item 9: the data actually loaded


def test_trial_ids_follow_the_data_actually_loaded(tiny_spec, monkeypatch):
    from kdtune.train.data import fingerprint_bundle, load_data

    bundle = load_data(tiny_spec.data, None)
    fp = fingerprint_bundle(bundle)
    assert fp == fingerprint_bundle(load_data(tiny_spec.data, None))
    changed = bundle.train.x.clone()
    changed[0, 0, 0, 0] += 1.0  # same size, one pixel different
    other = type(bundle)(bundle.info, type(bundle.train)(changed, bundle.train.y), bundle.val, bundle.evals)
    fp2 = fingerprint_bundle(other)
    assert fp2 != fp
    assert set(make_plan(tiny_spec, fp).trials).isdisjoint(make_plan(tiny_spec, fp2).trials)


def test_a_worker_whose_data_differs_from_the_plans_refuses_to_train(tiny_spec):
    import dataclasses

    plan = make_plan(tiny_spec)
    trial = next(t for t in plan.trials.values() if t.stage == 1)
    stale = dataclasses.replace(trial.config, data_fingerprint="0" * 16)
    with pytest.raises(KdtuneError, match="differs from the data it was planned on"):
        train_trial(stale, tiny_spec.output, None, torch.device("cpu"))


def test_the_teacher_logit_cache_is_named_by_the_data_fingerprint_and_checked(tiny_spec):
    from kdtune.train.data import load_data
    from kdtune.train.tasks import task_for
    from kdtune.train.trainer import load_trained_model, teacher_train_logits

    plan = make_plan(tiny_spec)
    execute(plan, InlineExecutor(), log=lambda s: None)
    student = next(t for t in plan.trials.values() if t.stage == 2)
    tid, run = student.config.teacher_id, tiny_spec.output
    cache = trial_dir(run, tid) / f"train_logits-{student.config.data_fingerprint}.npy"
    assert cache.is_file()
    data = load_data(tiny_spec.data, None)
    task = task_for(data.info)
    model = load_trained_model(run, tid, data.info, torch.device("cpu"))
    good = teacher_train_logits(run, tid, data, task, student.config, model)
    import numpy as np

    np.save(cache, np.zeros_like(good.numpy()))  # same shape, wrong values: must not be read
    again = teacher_train_logits(run, tid, data, task, student.config, model)
    assert torch.allclose(again, good)


# ---------------------------------------------------------------- item 10: --out and umask


def test_out_refuses_a_file_and_a_folder_that_is_not_a_run_folder(tiny_raw, tmp_path, capsys):
    sweep = _write(tmp_path, tiny_raw)
    readme = tmp_path / "README.md"
    readme.write_text("mine")
    assert _run(sweep, readme) == 2
    assert capsys.readouterr().err.strip() == (
        f"kdtune: error: {readme}: is a file, not a run folder; give --out a new or empty folder, or an existing run folder"
    )
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "results.csv").write_text("my,numbers\n")
    (docs / "sweep.yaml").write_text("mine: 1\n")
    assert _run(sweep, docs) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"kdtune: error: {docs}: not a kdtune run folder (it holds results.csv, sweep.yaml)")
    assert (docs / "results.csv").read_text() == "my,numbers\n" and (docs / "sweep.yaml").read_text() == "mine: 1\n"
    assert sorted(p.name for p in docs.iterdir()) == ["results.csv", "sweep.yaml"]


def test_trial_folders_follow_the_users_umask(tmp_path):
    old = os.umask(0o027)
    try:
        import kdtune.rundir as rundir

        rundir._umask.cache_clear()
        writer = TrialWriter(tmp_path, "abc")
        torch.save({"w": torch.zeros(1)}, writer.path("model.pt"))
        final = writer.commit({"id": "abc"}, {"status": "ok"})
    finally:
        os.umask(old)
        rundir._umask.cache_clear()
    assert stat.S_IMODE(final.stat().st_mode) == 0o750


# ---------------------------------------------------------------- item 7: one run per folder (real processes)


@pytest.mark.slow
def test_a_second_run_into_a_locked_folder_is_refused_and_the_lock_dies_with_its_holder(tiny_raw, tmp_path):
    tiny_raw["train"]["epochs"] = 400  # long enough to be caught running
    sweep, out = _write(tmp_path, tiny_raw), tmp_path / "run"
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "kdtune", "run", str(sweep), "--out", str(out), "--executor", "inline", "--no-report"]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not (out / ".lock.json").is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (out / ".lock.json").is_file(), "the first run never took the lock"
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
        assert second.returncode == 2
        lines = [ln for ln in second.stderr.splitlines() if ln.startswith("kdtune: error")]
        assert len(lines) == 1 and f"in use by another kdtune run (pid {first.pid} on " in lines[0], second.stderr
        status = subprocess.run([*cmd[:3], "status", str(out)], capture_output=True, text=True, timeout=60, env=env)
        assert status.returncode == 0 and f"a kdtune run is writing into it (pid {first.pid}" in status.stdout
        # report works mid-run, read-only: what has not finished yet is counted in every cell, not left out
        report = subprocess.run(
            [*cmd[:3], "report", str(out), "--metric", "accuracy"], capture_output=True, text=True, timeout=60
        )
        assert report.returncode == 0, report.stderr
        assert "/2)" in report.stdout and "did not finish" in report.stdout
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)
    # the holder died: the OS released its lock, and the same command resumes
    tiny_raw["train"]["epochs"] = 2
    _write(tmp_path, tiny_raw)
    third = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert third.returncode == 0, third.stderr
    assert collect_run(out, sweep=load_records(out)[-1].name)["status"].eq("ok").all()
    killed = collect_run(out, sweep="tiny")  # the killed 400-epoch sweep: still listed, as pending
    assert set(killed["status"]) <= {"ok", "pending"} and "pending" in set(killed["status"])


# ---------------------------------------------------------------- item 15: status


def test_status_lists_finished_failed_and_skipped_trials_per_stage(tiny_raw, tmp_path, capsys):
    tiny_raw["models"]["CNN"]["train"] = {"lr": 1.0e6}
    sweep, out = _write(tmp_path, tiny_raw), tmp_path / "run"
    assert _run(sweep, out) == 1
    capsys.readouterr()
    assert main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"{out}: no kdtune run is writing into it" in text
    assert "stage 1: 2 finished, 2 failed, 0 pending (of 4)" in text
    assert "stage 2: 0 finished, 2 skipped, 0 pending (of 2)" in text
    assert "    CNN, seed 0 (" in text and "DivergedError" in text
    assert "    MLP ← CNN, seed 1 (" in text
    assert main(["status", str(out), "--trials"]) == 0
    listed = capsys.readouterr().out.split("  finished:\n")[1].splitlines()
    assert len([ln for ln in listed if ln.startswith("    MLP, seed")]) == 2 and all("(no Ray)" in ln for ln in listed[:2])
    model = next((out / "trials").glob("*/model.pt"))
    model.write_bytes(b"x")
    assert main(["status", str(out)]) == 0
    assert "1 damaged" in capsys.readouterr().out
