"""``kdtune status RUN``: what a run folder holds against its sweep records, read-only.

Per recorded sweep and stage: finished, failed (with reasons), skipped, damaged, running and pending trials, and how
many finished trials each Ray node (or host) ran. "Running" comes from ``progress.json``, which the ``kdtune run``
holding the folder's lock keeps up to date; without a holder nothing is running. Safe while a run is going on: it writes
nothing and takes no lock.

Trials that share student, teacher, seed (and fold) are told apart in every listing by the settings in which they differ
(``temperature=2, w_hard=0.5``; a teacher's own as ``teacher.lr=0.0012``), found over all the records shown: see
:func:`distinguishing`.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kdtune import labels
from kdtune.labels import SETTING_COLUMNS
from kdtune.results.reader import load_records, read_outcome, record_labels, select_records, stored_config, trial_status
from kdtune.rundir import METRICS, lock_holder, trial_dir

STATES = ("finished", "failed", "skipped", "damaged", "running", "pending")
SHOWN = 10  # trials listed per state and sweep before "… and N more"
UNNAMED = ("seed", "teacher_id", "schema")  # config leaves never shown as settings (the label has the seed)


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


def _label(info: dict[str, Any], tid: str, settings: str = "") -> str:
    teacher = info.get("teacher")
    who = info.get("student") if teacher in (None, "data") else f"{info.get('student')} ← {teacher}"
    fold = f", fold {info['fold']}" if info.get("fold") is not None else ""
    return f"{who}, seed {info.get('seed')}{fold}{', ' + settings if settings else ''} ({tid[:8]})"


def _tiers(config: dict[str, Any] | None, teacher_seed: Any = None) -> list[dict[str, Any]]:
    """A trial's settings by name, most telling first: the report's settings (``SETTING_COLUMNS``, and the teacher's
    seed), then every other leaf of its config (:func:`kdtune.labels.leaves`, by :func:`kdtune.labels.short_key`)."""
    if not config:
        return [{}, {}]
    try:
        summary = labels.summary(config)
    except (KeyError, TypeError, ValueError, AttributeError):  # a config of another kdtune version: its leaves only
        summary = {}
    named = {k: summary.get(k) for k in SETTING_COLUMNS if k in summary}
    if teacher_seed is not None:
        named["teacher_seed"] = teacher_seed
    other = {labels.short_key(k): labels.leaf_value(v) for k, v in labels.leaves(config).items()}
    return [named, {k: v for k, v in other.items() if k not in UNNAMED and k not in named}]


def distinguishing(run_dir: Path, trials: Mapping[str, dict[str, Any]]) -> dict[str, str]:
    """Trial id → the settings that tell it apart from the trials with its student, teacher, seed and fold
    (``"temperature=2, w_hard=0.5"``; empty when it has none), over all of ``trials`` (id → record entry), by
    :func:`kdtune.labels.varying` per (student, teacher) pair: the report's settings (``SETTING_COLUMNS``), the
    teacher's seed and the teacher's own settings (``teacher.lr``, where trials of one seed were distilled from
    different teachers of one name, e.g. a tuned and an untuned one; looked up in the run folder's records or trial
    folders); then, among trials still alike, any other config leaf (``schedule.decay_rate``,
    ``teacher.schedule.decay_rate``), and last the teacher's id (``teacher=1a2b3c4d``). Numbers as every table writes
    them (:func:`kdtune.labels.number_labels`: ``lr=0.001183``)."""
    import pandas as pd

    known: dict[str, dict[str, Any]] = {}  # every record's trials: where teachers are looked up
    for record in load_records(run_dir):
        known |= record.trials
    configs = {tid: t.get("config") for tid, t in (known | dict(trials)).items()}  # else read from the trial folder

    def config(tid: str) -> dict[str, Any] | None:
        return stored_config(run_dir, tid, configs)

    teachers: dict[str | None, list[dict[str, Any]]] = {}
    pairs: dict[tuple[Any, ...], list[tuple[str, list[dict[str, Any]]]]] = defaultdict(list)
    for tid, info in trials.items():
        own = _tiers(config(tid), info.get("teacher_seed"))
        teacher_id = info.get("teacher_id") or (config(tid) or {}).get("teacher_id")
        if teacher_id not in teachers:
            teachers[teacher_id] = [
                {f"teacher.{k}": v for k, v in t.items()} for t in _tiers(config(teacher_id) if teacher_id else None)
            ]
        theirs = teachers[teacher_id]
        tiers = [own[0] | theirs[0], own[1] | theirs[1], {"teacher": teacher_id[:8] if teacher_id else None}]
        pairs[(info.get("student"), info.get("teacher"))].append((tid, tiers))
    out: dict[str, str] = {}
    for members in pairs.values():
        names = [list(dict.fromkeys(k for _, tiers in members for k in tiers[i])) for i in range(3)]
        rows = [{"seed": trials[t].get("seed"), "fold": trials[t].get("fold")} | {k: v for x in ts for k, v in x.items()}
                for t, ts in members]  # fmt: skip
        frame = pd.DataFrame(rows)
        shown = labels.varying(frame, ["seed", "fold"], [(names[0], True), (names[1], True), (names[2], True)])
        texts = {k: labels.number_labels(frame[k].astype(object)) for k in shown}
        for (tid, _), row in zip(members, frame.to_dict("records"), strict=True):
            out[tid] = ", ".join(f"{k}={texts[k].get(row[k], labels.show(row[k]))}" for k in shown)
    return out


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
    apart = distinguishing(run_dir, {tid: info for r in records for tid, info in r.trials.items()})
    labels = record_labels(load_records(run_dir))  # a sweep as its user named it, two of one name told apart
    for r in records:
        runs = read_outcome(r.path).get("runs", []) if r.path is not None else []
        last = runs[-1] if runs else {}
        how = (
            f"last run {last.get('started')} → {'still going' if holder else 'stopped'}"
            if last and last.get("ended") is None
            else f"last run ended {last.get('ended')} (exit {last.get('exit')})"
            if last
            else "no run recorded"
        )
        kind = "search" if r.kind == "tune" else "sweep"
        lines += ["", f"{kind} {labels[r.name]}: {len(r.trials)} trials; {how}"]
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
        nodes = Counter(w for w in where.values() if w)  # the finished trials per node (none: no trial recorded where)
        if nodes:
            lines.append("  ran on: " + ", ".join(f"{w}: {n}" for w, n in nodes.most_common()))
        if trials:
            listed = [tid for tid, (st, _) in states.items() if st == "finished"]
            if listed:
                lines.append("  finished:")
                lines += [f"    {_label(r.trials[tid], tid, apart[tid])}: {where.get(tid) or 'where unknown'}" for tid in listed]
        for state in ("failed", "skipped", "damaged", "running"):
            listed = [(tid, reason) for tid, (s, reason) in states.items() if s == state]
            if not listed:
                continue
            lines.append(f"  {state}:")
            lines += [
                f"    {_label(r.trials[tid], tid, apart[tid])}" + (f" [{where[tid]}]" if where.get(tid) else "") + f": {reason}"
                for tid, reason in listed[:SHOWN]
            ]
            if len(listed) > SHOWN:
                lines.append(f"    … and {len(listed) - SHOWN} more")
    return "\n".join(lines) + "\n"
