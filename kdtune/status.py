"""``kdtune status RUN``: what a run folder holds against its sweep records, read-only.

Per recorded sweep and stage: finished, failed (with reasons), skipped, damaged, running and pending
trials. "Running" comes from ``progress.json``, which the ``kdtune run`` holding the folder's lock
keeps up to date; without a holder nothing is running. Safe while a run is going on: it writes
nothing and takes no lock.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from kdtune.results import select_records, trial_status
from kdtune.rundir import lock_holder

STATES = ("finished", "failed", "skipped", "damaged", "running", "pending")
SHOWN = 10  # trials listed per state and sweep before "… and N more"


def _running(run_dir: Path, holder: dict[str, Any] | None) -> dict[str, str]:
    """Trial id → "epoch e/E" for the trials the lock holder is training now."""
    if holder is None:
        return {}
    try:
        progress = json.loads((run_dir / "progress.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    if holder.get("pid") is not None and progress.get("pid") not in (None, holder.get("pid")):
        return {}  # left by an earlier run
    out = {}
    for name, g in (progress.get("groups") or {}).items():
        if g.get("state") == "running":
            where = f"{name}, epoch {g.get('epoch') or 0}/{g.get('epochs') or '?'}"
            out |= {tid: where for tid in g.get("trials", [])}
    return out


def _label(info: dict[str, Any], tid: str) -> str:
    teacher = info.get("teacher")
    who = info.get("student") if teacher in (None, "data") else f"{info.get('student')} ← {teacher}"
    return f"{who}, seed {info.get('seed')} ({tid[:8]})"


def run_status(run_dir: Path, sweep: str | None = None) -> str:
    """The status report of a run folder as text (one block per recorded sweep)."""
    records = select_records(run_dir, sweep, include_tuning=True)
    holder = lock_holder(run_dir)
    if holder is not None:
        who = f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')}: {holder.get('command')}"
        lines = [f"{run_dir}: a kdtune run is writing into it ({who})"]
    else:
        lines = [f"{run_dir}: no kdtune run is writing into it"]
    running = _running(run_dir, holder)
    for r in records:
        runs = []
        if r.path is not None:
            try:
                runs = json.loads((r.path / "outcome.json").read_text()).get("runs", [])
            except (OSError, json.JSONDecodeError):
                runs = []
        last = runs[-1] if runs else {}
        how = (
            f"last run {last.get('started')} → {'still going' if holder else 'stopped'}"
            if last and last.get("ended") is None
            else f"last run ended {last.get('ended')} (exit {last.get('exit')})"
            if last
            else "no run recorded"
        )
        kind = "search" if r.kind == "tune" else "sweep"
        lines += ["", f"{kind} {r.name}: {len(r.trials)} trials; {how}"]
        states: dict[str, tuple[str, str]] = {}
        for tid in r.trials:
            status, reason = trial_status(run_dir, tid, r.failures.get(tid), full=True)
            status = {"ok": "finished"}.get(status, status)
            if status in ("pending", "failed", "skipped") and tid in running:
                status, reason = "running", running[tid]
            states[tid] = (status, reason)
        for stage in sorted({int(t.get("stage") or 0) for t in r.trials.values()}):
            ids = [tid for tid, t in r.trials.items() if int(t.get("stage") or 0) == stage]
            counts = Counter(states[tid][0] for tid in ids)
            parts = ", ".join(f"{counts[s]} {s}" for s in STATES if counts[s] or s in ("finished", "pending"))
            lines.append(f"  stage {stage}: {parts} (of {len(ids)})")
        for state in ("failed", "skipped", "damaged", "running"):
            listed = [(tid, reason) for tid, (s, reason) in states.items() if s == state]
            if not listed:
                continue
            lines.append(f"  {state}:")
            lines += [f"    {_label(r.trials[tid], tid)}: {reason}" for tid, reason in listed[:SHOWN]]
            if len(listed) > SHOWN:
                lines.append(f"    … and {len(listed) - SHOWN} more")
    return "\n".join(lines) + "\n"
