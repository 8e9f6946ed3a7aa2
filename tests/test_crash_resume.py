"""The driver (``kdtune run``, its whole process group) SIGKILLed during stage 1, between the stages and
during stage 2, then run again each time: the results equal an uninterrupted run's, no finished trial
is trained again, and no process of a killed run's local Ray instance is left behind."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml

from kdtune.plan import make_plan
from kdtune.run.execute import InlineExecutor, execute
from kdtune.rundir import METRICS, trial_dir
from tests.conftest import trainings

pytestmark = pytest.mark.slow

SESSION = re.compile(r"session_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d+_\d+")


def _finished(out: Path, ids: list[str]) -> list[str]:
    return [t for t in ids if (trial_dir(out, t) / METRICS).is_file()]


def _cmdlines() -> dict[int, tuple[int, str]]:
    """pid → (parent pid, command line) of every process (from /proc)."""
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                out[int(d.name)] = (ppid, (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _sessions(pid: int) -> set[str]:
    """The Ray session names on the command lines of ``pid``'s descendants (its local Ray instance)."""
    procs = _cmdlines()
    family, found = {pid}, set()
    for _ in range(6):  # a few generations
        family |= {p for p, (ppid, _) in procs.items() if ppid in family}
    for p in family:
        found |= set(SESSION.findall(procs.get(p, (0, ""))[1]))
    return found


def _processes_of(sessions: set[str]) -> list[str]:
    """Command lines of running processes that name one of ``sessions``."""
    return [f"{p}: {line[:200]}" for p, (_, line) in _cmdlines().items() if any(s in line for s in sessions)]


def _snapshot(out: Path, ids: list[str]) -> dict[str, tuple[int, str]]:
    """(mtime, content) of each finished trial's checksums.json: changes if the trial is written again."""
    return {
        t: ((trial_dir(out, t) / "checksums.json").stat().st_mtime_ns, (trial_dir(out, t) / "checksums.json").read_text())
        for t in _finished(out, ids)
    }


def _kill_when(cmd: list[str], ready: Callable[[], bool], timeout: float = 200) -> tuple[set[str], bool]:
    """Start ``cmd`` in its own process group, SIGKILL the group once ``ready()``; (its Ray sessions, whether killed)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    sessions: set[str] = set()
    try:
        end = time.monotonic() + timeout
        while time.monotonic() < end and proc.poll() is None:
            sessions |= _sessions(proc.pid)
            if ready():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                return sessions, True
            time.sleep(0.05)
        return sessions, False
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def test_a_killed_driver_resumes_without_retraining_and_leaves_no_ray_behind(tiny_raw, tmp_path):
    from kdtune.spec.sweepfile import parse_sweep

    tiny_raw["distill"]["epochs"] = 80  # students train long enough to be killed in the middle of stage 2
    out = tmp_path / "run"
    tiny_spec = parse_sweep(tiny_raw, "tiny.yaml", output=out)
    sweep = tmp_path / "tiny.yaml"
    sweep.write_text(yaml.safe_dump(tiny_raw))
    cmd = [sys.executable, "-m", "kdtune", "run", str(sweep), "--out", str(out), "--no-report"]
    plan = make_plan(tiny_spec)
    stage1 = [t.id for g in plan.stages[0] for t in g.trials]
    stage2 = [t.id for g in plan.stages[1] for t in g.trials]
    ids = stage1 + stage2

    def stage2_started() -> bool:  # progress.json is written as each stage starts (removed before each run below)
        try:
            progress = json.loads((out / "progress.json").read_text())
        except (OSError, json.JSONDecodeError):
            return False
        return progress.get("stage") == 2

    points = {
        "during stage 1": lambda: 0 < len(_finished(out, stage1)) < len(stage1),
        "between stages": lambda: len(_finished(out, stage1)) == len(stage1),
        "during stage 2": lambda: stage2_started() and len(_finished(out, stage2)) < len(stage2),
    }
    killed_sessions: set[str] = set()
    kept: dict[str, tuple[int, str]] = {}
    for name, ready in points.items():
        (out / "progress.json").unlink(missing_ok=True)  # so that only this run's stage 2 counts
        sessions, killed = _kill_when(cmd, ready)
        assert killed, f"the run ended before the kill {name}"
        assert sessions, "no local Ray instance seen"
        killed_sessions |= sessions
        before = _snapshot(out, ids)
        assert all(before[t] == kept[t] for t in kept), f"a trial finished before the kill {name} was written again"
        kept = before
    assert 0 < len(kept) < len(ids)
    final = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert final.returncode == 0, final.stdout + final.stderr
    assert all(_snapshot(out, ids)[t] == kept[t] for t in kept)  # finished trials untouched, teachers included
    trained = trainings(out)
    assert sorted(trained) == sorted(ids)  # each trial trained (committed) exactly once
    assert _processes_of(killed_sessions) == []

    local_spec = dataclasses.replace(tiny_spec, output=tmp_path / "local")
    local_plan = make_plan(local_spec)
    assert execute(local_plan, InlineExecutor(), log=lambda s: None) == {}
    from kdtune.run.ledger import collect

    expected = collect(local_plan).sort_values(["trial_id", "eval_set"]).reset_index(drop=True)
    got = pd.read_parquet(out / "results.parquet").sort_values(["trial_id", "eval_set"]).reset_index(drop=True)
    assert list(got.trial_id) == list(expected.trial_id) and (got["status"] == "ok").all()
    for col in ("accuracy", "nll", "ece", "agreement", "kl"):
        assert got[col].fillna(-1).tolist() == pytest.approx(expected[col].fillna(-1).tolist(), abs=1e-6)
