"""The local Ray instance dying under ``kdtune run`` (its raylet killed from outside, as an OOM killer would):
one line, the outcome recorded, finished trials kept, nothing of ours left running, and the same command
resumes with only the missing trials."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import trainings
from tests.test_interrupt import Run, _alive, _descendants, _names, _trial_files

pytestmark = pytest.mark.slow


def test_a_killed_raylet_stops_the_run_in_seconds_and_the_same_command_resumes(tiny_raw, tmp_path):
    tiny_raw["models"]["MLP"]["train"] = {"epochs": 2}
    tiny_raw["models"]["CNN"]["train"] = {"epochs": 80}  # mid-trial at the kill: 12 epochs ended before it on a quiet machine
    run = Run(tiny_raw, tmp_path)
    ray_pids: list[int] = []
    try:
        run.wait_for(run.cnn_training)
        ray_pids = [p for p in _descendants(run.proc.pid) if _alive(p)]
        (raylet,) = [p for p, n in zip(ray_pids, _names(ray_pids), strict=True) if n.endswith("/raylet")]
        kept = _trial_files(run.out)
        killed = time.monotonic()
        os.kill(raylet, signal.SIGKILL)
        run.proc.wait(timeout=60)
        seconds = time.monotonic() - killed
        for t in run._readers:
            t.join(timeout=10)
    finally:
        run.kill()
    out, err = "".join(run.stdout), "".join(run.stderr)
    print(f"raylet killed to exit: {seconds:.1f} s")
    assert run.proc.returncode == 1, out + err
    assert seconds < 15, out + err  # Ray itself takes 15 s or more to notice (its heartbeats), then fails the trials
    (line,) = err.strip().splitlines()
    assert line.startswith(f"kdtune: the Ray instance died (its raylet process {raylet} ended, killed by signal 9); ")
    assert line.endswith(f"2 of 6 trials finished and are kept; resume with: python -m kdtune {' '.join(run.argv)}")
    for text in ("Traceback", "Raylet is terminated", "state-dump", "FAILED", "stage 2"):
        assert text not in out + err, out + err
    assert _trial_files(run.out) == kept and len({k.split("/")[1] for k in kept}) == 2  # the finished MLPs, untouched
    (outcome,) = [json.loads(p.read_text()) for p in (run.out / "sweeps").glob("*/outcome.json")]
    assert outcome["runs"][-1]["exit"] == f"ray died: its raylet process {raylet} ended, killed by signal 9"
    assert outcome["runs"][-1]["ended"] and outcome["failures"] == {}
    end = time.monotonic() + 10  # no process of that run's Ray instance is left
    while any(map(_alive, ray_pids)) and time.monotonic() < end:
        time.sleep(0.1)
    assert not [n for p, n in zip(ray_pids, _names(ray_pids), strict=False) if _alive(p)]

    again = subprocess.run(
        [sys.executable, "-m", "kdtune", *run.argv, "--no-report"], capture_output=True, text=True, timeout=400
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "stage 1: 2 of 4 trials to run, in 2 groups on ray (2 already finished)" in again.stdout, again.stdout
    assert {k: v for k, v in _trial_files(run.out).items() if k in kept} == kept  # not trained again
    trained = trainings(run.out)
    assert len(trained) == len(set(trained)) == 6  # each trial trained once, over both runs
    (outcome,) = [json.loads(p.read_text()) for p in (run.out / "sweeps").glob("*/outcome.json")]
    assert [r["exit"] for r in outcome["runs"]][1:] == [0]
