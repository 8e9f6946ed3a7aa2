"""The same tiny sweep through Ray Tune (a local instance): same results as in process, resumable."""

import json
import os
import re
import shutil

import pytest

from kdtune.plan import make_plan
from kdtune.run.execute import InlineExecutor, RayExecutor, execute
from kdtune.run.ledger import collect

pytestmark = pytest.mark.slow


def test_ray_tune_runs_both_stages_and_matches_the_inline_run(tiny_spec, tmp_path):
    import dataclasses

    plan = make_plan(tiny_spec)
    ray_exec = RayExecutor(None, cpu=1, gpu=0, max_concurrent=None, max_failures=0, storage=tmp_path / "ray")
    logs = []
    assert execute(plan, ray_exec, log=logs.append) == {}
    assert any(line.startswith("stage 2: 2 of 2 trials to run, in 2 groups on ray") for line in logs)
    assert sum(bool(re.fullmatch(r"  \[\d/4\] (MLP|CNN)-from-data-\w{8}: mean val accuracy 0\.\d{3}", s)) for s in logs) == 4
    ray_df = collect(plan).sort_values(["trial_id", "eval_set"]).reset_index(drop=True)

    # every epoch is an intermediate Ray Tune result; the last result is the group's summary
    rows = [json.loads(line) for line in next((tmp_path / "ray" / "trials").glob("CNN-*/result.json")).open()]
    assert [(r["trial_index"], r["epoch"], r["epochs"]) for r in rows[:-1]] == [(0, 1, 2), (0, 2, 2)]
    assert {"val_accuracy", "val_nll", "val_ece", "trials"} <= set(rows[-1]) and "epoch" not in rows[-1]
    # one Tuner runs both stages: stage 2 trains in stage 1's workers (imports and data loaded), no new one
    pids = {json.loads(line)["id"]: json.loads(line)["pid"] for line in (tiny_spec.output / "logs" / "trainings.jsonl").open()}
    stage_pids = [{pids[t.id] for g in stage for t in g.trials} for stage in plan.stages]
    assert stage_pids[1] <= stage_pids[0]
    progress = json.loads((tiny_spec.output / "progress.json").read_text())
    assert progress["state"] == "finished" and progress["stage"] == 2
    assert all(g["state"] == "done" and g["epoch"] == g["epochs"] == 2 for g in progress["groups"].values())

    inline_spec = dataclasses.replace(tiny_spec, output=tmp_path / "inline")
    inline_plan = make_plan(inline_spec)
    execute(inline_plan, InlineExecutor(), log=lambda s: None)
    inline_df = collect(inline_plan).sort_values(["trial_id", "eval_set"]).reset_index(drop=True)
    assert list(ray_df.trial_id) == list(inline_df.trial_id)
    for col in ("accuracy", "nll", "ece", "agreement", "kl"):
        assert ray_df[col].fillna(-1).tolist() == pytest.approx(inline_df[col].fillna(-1).tolist(), abs=1e-6)

    # a second run finds everything finished and does not even start Ray
    logs.clear()
    assert execute(make_plan(tiny_spec), ray_exec, log=logs.append) == {}
    assert all("nothing to run" in line for line in logs)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_joining_an_existing_ray_cluster_with_address(tiny_raw, tiny_spec, tmp_path):
    """``kdtune run --address`` joins a running head instead of starting Ray: token authentication on (as Ray 2.60
    starts a head), the token in the environment of the head and of the driver, as a user would run them. (The
    driver is a process of its own: a driver in this process keeps the token of the first Ray it met.)"""
    import subprocess
    import sys
    import tempfile
    import uuid
    from pathlib import Path

    import yaml

    from tests.test_cluster import _start_node, _stop_node

    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": uuid.uuid4().hex}
    env.pop("KDTUNE_FAULT", None)
    temp = Path(tempfile.mkdtemp(prefix="kdj", dir="/tmp"))  # short: Ray's socket paths live under it
    (temp / "h").mkdir()
    port = _free_port()
    head = _start_node(["--head", f"--port={port}", "--include-dashboard=false"], temp / "h", env)
    try:
        sweep = tmp_path / "tiny.yaml"
        sweep.write_text(yaml.safe_dump(tiny_raw))
        cmd = [sys.executable, "-m", "kdtune", "run", str(sweep), "--out", str(tiny_spec.output), "--address",
               f"127.0.0.1:{port}", "--no-report"]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        plan = make_plan(tiny_spec)
        assert len(collect(plan).drop_duplicates("trial_id")) == len(plan.trials)
    finally:
        _stop_node(head)
        shutil.rmtree(temp, ignore_errors=True)


def test_a_wrong_address_is_one_clear_error(tiny_spec, tmp_path):
    from kdtune.errors import KdtuneError

    ray_exec = RayExecutor(f"127.0.0.1:{_free_port()}", 1, 0, None, 0, tmp_path / "ray")
    with pytest.raises(KdtuneError, match=r"cannot join the Ray cluster at 127\.0\.0\.1"):
        execute(make_plan(tiny_spec), ray_exec, log=lambda s: None)


def test_ray_address_from_the_environment_is_joined_like_address(tiny_raw, kdtune_run):
    import os

    env = {**os.environ, "RAY_ADDRESS": f"127.0.0.1:{_free_port()}"}
    _, proc = kdtune_run(tiny_raw, env=env)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"cannot join the Ray cluster at {env['RAY_ADDRESS']}" in proc.stderr


def test_a_failing_trial_is_one_line_and_its_traceback_goes_to_the_run_log(tiny_raw, kdtune_run, tmp_path):
    tiny_raw["models"]["MLP"]["train"] = {"lr": 1.0e30, "optimizer": "sgd"}  # its loss becomes nan in epoch 1
    _, proc = kdtune_run(tiny_raw)
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == 1, out + err
    failed = [s for s in out.splitlines() if "FAILED" in s]
    assert len(failed) == 4  # 2 MLP teachers, then 2 MLP students of the CNN teachers
    error = r"DivergedError: trial \w{16}, epoch 1: training loss became nan"
    for line in failed:
        assert re.fullmatch(r"  \[\d/\d\] MLP-from-(data|CNN)-\w{8}: FAILED " + error, line)
    for text in ("Traceback", "Token authentication", "Failed to fetch metrics", "Trial task failed", "WARNING", "ERROR"):
        assert text not in out + err
    (log,) = (tmp_path / "run" / "logs").glob("*-run.log")
    assert out.count(str(log)) == 1
    text = log.read_text()
    assert text.count("Trial task failed") == 4 and "Traceback" in text and "DivergedError" in text
    assert "Started a local Ray instance" in text  # Ray's own records


def test_a_failure_in_the_last_stage_of_a_fresh_run_points_to_the_run_log(tiny_raw, kdtune_run, tmp_path):
    # one stage: Tune makes exactly as many trials as the searcher may hand out and stops asking, so the
    # stage is ended after Tune's loop; its failure must still count
    tiny_raw["grid"] |= {"students": ["MLP"], "teachers": ["data"]}
    tiny_raw["models"]["MLP"]["train"] = {"lr": 1.0e30, "optimizer": "sgd"}
    _, proc = kdtune_run(tiny_raw)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (log,) = (tmp_path / "run" / "logs").glob("*-run.log")
    assert f"log with the full tracebacks: {log}" in proc.stdout
    assert proc.stdout.count("stage 1: finished in") == 1


def test_a_lingering_executor_keeps_ray_up_until_close_but_not_after_an_error(tmp_path):
    import ray

    ex = RayExecutor(None, cpu=1, gpu=0, max_concurrent=None, max_failures=0, storage=tmp_path / "ray")
    ex.linger = True  # as kdtune run: the report is printed before Ray shuts down
    with ex:
        pass
    assert ray.is_initialized()
    ex.close()
    assert not ray.is_initialized()
    with pytest.raises(ValueError, match="boom"), ex:
        raise ValueError("boom")
    assert not ray.is_initialized()  # an error shuts Ray down at once, lingering or not
