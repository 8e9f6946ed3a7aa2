"""``kdtune status RUN``: what a run folder holds against its sweep records, read-only.

Per recorded sweep and stage: finished, failed (with reasons), skipped, damaged, running and pending
trials, and how many finished trials each Ray node (or host) ran. "Running" comes from ``progress.json``,
which the ``kdtune run`` holding the folder's lock keeps up to date; without a holder nothing is running.
Safe while a run is going on: it writes nothing and takes no lock.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from kdtune.results import select_records, trial_status
from kdtune.rundir import METRICS, lock_holder, trial_dir

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
    fold = f", fold {info['fold']}" if info.get("fold") is not None else ""
    return f"{who}, seed {info.get('seed')}{fold} ({tid[:8]})"


def _where(run_dir: Path, tid: str) -> str | None:
    """``node 1a2b3c4d on HOST`` (or ``HOST`` outside Ray) for a finished trial, from its metrics.json."""
    try:
        m = json.loads((trial_dir(run_dir, tid) / METRICS).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    node, host = m.get("node_id"), m.get("host")
    if node is None and host is None:
        return None  # written by an older kdtune
    return f"node {node[:8]} on {host}" if node else f"{host} (no Ray)"


def _nodes_line(where: dict[str, str | None]) -> str | None:
    """One line counting the finished trials per node (None if no trial recorded where it ran)."""
    counts = Counter(w for w in where.values() if w)
    if not counts:
        return None
    return "  ran on: " + ", ".join(f"{w}: {n}" for w, n in counts.most_common())


def run_status(run_dir: Path, sweep: str | None = None, trials: bool = False) -> str:
    """The status report of a run folder as text (one block per recorded sweep); with ``trials``, also
    every finished trial with the node that ran it."""
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
        where = {tid: _where(run_dir, tid) for tid, (s, _) in states.items() if s in ("finished", "damaged")}
        for stage in sorted({int(t.get("stage") or 0) for t in r.trials.values()}):
            ids = [tid for tid, t in r.trials.items() if int(t.get("stage") or 0) == stage]
            counts = Counter(states[tid][0] for tid in ids)
            parts = ", ".join(f"{counts[s]} {s}" for s in STATES if counts[s] or s in ("finished", "pending"))
            lines.append(f"  stage {stage}: {parts} (of {len(ids)})")
        nodes = _nodes_line(where)
        if nodes:
            lines.append(nodes)
        if trials:
            listed = [tid for tid, (st, _) in states.items() if st == "finished"]
            if listed:
                lines.append("  finished:")
                lines += [f"    {_label(r.trials[tid], tid)}: {where.get(tid) or 'where unknown'}" for tid in listed]
        for state in ("failed", "skipped", "damaged", "running"):
            listed = [(tid, reason) for tid, (s, reason) in states.items() if s == state]
            if not listed:
                continue
            lines.append(f"  {state}:")
            lines += [
                f"    {_label(r.trials[tid], tid)}" + (f" [{where[tid]}]" if where.get(tid) else "") + f": {reason}"
                for tid, reason in listed[:SHOWN]
            ]
            if len(listed) > SHOWN:
                lines.append(f"    … and {len(listed) - SHOWN} more")
    return "\n".join(lines) + "\n"
