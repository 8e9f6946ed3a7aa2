"""The ledger of a run: what ``kdtune run`` (and ``kdtune tune``) write into a run folder's sweep records while they
run (:mod:`kdtune.results.reader` reads them back): the sweep as run and its planned trials before any training, the
outcome of each invocation after it, and the results table of the plan alone."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from kdtune.plan import Plan, stream_design
from kdtune.results.reader import SWEEPS, load_records, read_outcome, table_of
from kdtune.rundir import write_json
from kdtune.spec.sweepfile import SweepSpec
from kdtune.yamlio import dump_yaml


def plan_trials(plan: Plan) -> dict[str, dict[str, Any]]:
    """The planned trials as a sweep record holds them: id → {stage, student, teacher, seed, fold, teacher_seed,
    teacher_id, config}."""
    return {
        t.id: {
            "stage": t.stage,
            "student": t.student,
            "teacher": t.teacher,
            "seed": t.seed,
            "fold": t.fold,
            "teacher_seed": t.teacher_seed,
            "teacher_id": t.config.teacher_id,
            "config": t.config.to_dict(),
        }
        for t in plan.trials.values()
    }


def plan_hash(plan: Plan) -> str:
    """A short hash of the planned trials and their labels: the same sweep run again has the same one. A unit
    number other than the config's seed (``grid.init_seeds`` × ``grid.data_seeds``) is a label too."""
    labels = ((t.id, t.student, t.teacher, *([t.seed] if t.seed != t.config.seed else [])) for t in plan.trials.values())
    text = json.dumps(sorted(labels))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def write_sweep_record(plan: Plan, argv: Sequence[str] | None = None) -> Path:
    """Record the sweep as run (after overrides) and its planned trials, before any training. A re-run
    of the same sweep reuses its record; another sweep into the same folder gets its own."""
    spec = plan.spec
    h = plan_hash(plan)
    existing = {r.name: r for r in load_records(spec.output)}
    same = next((r.name for r in existing.values() if r.plan_hash == h), None)
    name = same or (spec.name if spec.name not in existing else f"{spec.name}-{h}")
    stages = [[{"group": g.name, "trials": [t.id for t in g.trials]} for g in stage] for stage in plan.stages]
    path = write_trials_record(
        spec, name, plan_trials(plan), kind="sweep", plan_hash=h, stages=stages, streams=stream_design(spec)
    )
    outcome = read_outcome(path)
    outcome.setdefault("runs", []).append(
        {"command": " ".join(["kdtune", *(argv or [])]), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "ended": None}
    )
    write_json(path / "outcome.json", outcome)
    return path


def write_trials_record(spec: SweepSpec, name: str, trials: dict[str, dict[str, Any]], kind: str = "tune", **extra: Any) -> Path:
    """Write the record ``name`` (its sweep.yaml and plan.json, replaced whole): ``trials`` maps id →
    {stage, student, teacher, seed, fold, teacher_seed, teacher_id, config}; ``extra`` goes into plan.json too.
    ``kdtune run`` writes kind ``sweep``; a search's seed trials are kind ``tune``."""
    path = spec.output / SWEEPS / name
    path.mkdir(parents=True, exist_ok=True)
    (path / "sweep.yaml").write_text(dump_yaml(dict(spec.raw)))
    plan = {
        "sweep": spec.name,
        "record": name,
        "kind": kind,
        "source": spec.source,
        "eval_sets": [e.name for e in spec.data.eval_sets],
        "models": list(spec.models),
        "trials": trials,
    }
    write_json(path / "plan.json", plan | extra)
    return path


def record_outcome(record: Path, failures: dict[str, str], exit_status: int | str) -> None:
    """Store the failures of this invocation (replacing the last ones) and how it ended."""
    outcome = read_outcome(record)
    outcome["failures"] = dict(failures)
    runs = outcome.setdefault("runs", [{}])
    runs[-1] |= {"ended": time.strftime("%Y-%m-%d %H:%M:%S"), "exit": exit_status, "failed": len(failures)}
    write_json(record / "outcome.json", outcome)


def collect(plan: Plan, failures: dict[str, str] | None = None) -> pd.DataFrame:
    """The results table of ``plan`` alone, read from its run folder (unfinished trials get one status row)."""
    spec = plan.spec
    return table_of(spec.output, plan_trials(plan), failures or {}, spec.name, spec.models, [e.name for e in spec.data.eval_sets])
