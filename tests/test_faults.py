"""Faults injected for real (``KDTUNE_FAULT``) under the Ray executor: a killed worker, an exception and a
nan loss fail only their trial, are retried up to ``execution.max_failures``, a transient one succeeds on
retry, students of a teacher that finally failed are skipped, the report shows the smaller n."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from kdtune.plan import make_plan
from kdtune.spec.sweepfile import parse_sweep
from tests.conftest import trainings

pytestmark = pytest.mark.slow


def _ids(raw, out):
    """(student, teacher, seed) → trial id of the tiny sweep."""
    plan = make_plan(parse_sweep(raw, "tiny.yaml", output=out))
    return {(t.student, t.teacher, t.seed): t.id for t in plan.trials.values()}


def test_injected_faults_fail_only_their_trials_are_retried_and_reported(tiny_raw, kdtune_run, tmp_path):
    tiny_raw["execution"] = {"max_failures": 1}
    out = tmp_path / "run"
    ids = _ids(tiny_raw, out)
    cnn0, cnn1 = ids["CNN", "data", 0], ids["CNN", "data", 1]
    mlp1 = ids["MLP", "data", 1]
    student0, student1 = ids["MLP", "CNN", 0], ids["MLP", "CNN", 1]
    faults = [
        f"kill:{cnn0[:8]}:1:once",  # transient: the worker is SIGKILLed in the first attempt only
        f"raise:{cnn1[:8]}:1",  # every attempt: this teacher fails for good, its student is skipped
        f"nan:{mlp1[:8]}:2",  # every attempt: diverges in epoch 2
    ]
    _, proc = kdtune_run(tiny_raw, env={**os.environ, "KDTUNE_FAULT": ",".join(faults)})
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    assert "Traceback" not in text

    # the killed attempt left no trial; the retry trained both CNN seeds once
    assert (out / "faults" / f"kill-{cnn0}-1").is_file()
    trained = trainings(out)
    assert sorted(trained) == sorted([cnn0, ids["MLP", "data", 0], student0])
    assert re.search(r"CNN-from-data-\w{8}: failed \(.+\); trying again", proc.stdout), proc.stdout
    assert len(re.findall(r"MLP-from-data-\w{8}: failed \(DivergedError: .+\); trying again", proc.stdout)) == 1

    outcome = json.loads(next((out / "sweeps").glob("*/outcome.json")).read_text())["failures"]
    assert set(outcome) == {cnn1, mlp1, student1}
    assert re.fullmatch(rf"InjectedFault: trial {cnn1}, epoch 1: fault injected by KDTUNE_FAULT", outcome[cnn1])
    assert outcome[mlp1] == f"DivergedError: trial {mlp1}, epoch 2: training loss became nan"
    assert outcome[student1] == f"skipped: teacher {cnn1} did not finish"

    report = subprocess.run([sys.executable, "-m", "kdtune", "report", str(out)], capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    assert "(1/2)" in report.stdout and "InjectedFault" in report.stdout and "skipped" in report.stdout, report.stdout
