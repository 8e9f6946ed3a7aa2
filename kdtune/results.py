"""Run folder → results table: one row per trial × eval set (tidy), written as parquet and CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from kdtune.errors import KdtuneError
from kdtune.plan import Plan
from kdtune.rundir import METRICS, is_finished, read_json, trial_dir, write_json
from kdtune.spec import NO_TEACHER
from kdtune.train import config_summary

METRIC_COLUMNS = ["accuracy", "nll", "ece", "agreement", "kl"]  # every task; tasks may add more (e.g. a_accuracy)
ID_COLUMNS = ["trial_id", "stage", "student", "teacher", "seed", "teacher_seed", "teacher_id", "eval_set"]
RESULTS = "results.parquet"


def collect(plan: Plan, failures: dict[str, str] | None = None) -> pd.DataFrame:
    """The results table of ``plan`` read from its run folder (unfinished trials get one status row)."""
    failures = failures or {}
    run_dir = plan.spec.output
    rows: list[dict[str, Any]] = []
    for trial in plan.trials.values():
        base = {
            "trial_id": trial.id,
            "stage": trial.stage,
            "student": trial.student,
            "teacher": trial.teacher,
            "seed": trial.seed,
            "teacher_seed": trial.teacher_seed,
            "teacher_id": trial.config.teacher_id,
            **config_summary(trial.config),
        }
        if not is_finished(run_dir, trial.id):
            err = failures.get(trial.id, "")
            status = "skipped" if err.startswith("skipped") else ("failed" if err else "pending")
            rows.append(base | {"eval_set": None, "status": status, "error": err})
            continue
        m = read_json(trial_dir(run_dir, trial.id) / METRICS)
        for eval_set, vals in m["eval"].items():
            rows.append(
                base
                | {"eval_set": eval_set, "status": "ok", "error": "", "best_epoch": m["best_epoch"], "seconds": m["seconds"]}
                | vals
            )
    df = pd.DataFrame(rows)
    for col in ID_COLUMNS + METRIC_COLUMNS + ["n", "status", "error", "best_epoch", "seconds"]:
        if col not in df:
            df[col] = None
    extra = [c for c in df.columns if c in ("d_accuracy", "a_accuracy", "perplexity", "token_nll")]
    for col in [*METRIC_COLUMNS, *extra, "temperature", "w_hard", "w_soft", "seconds"]:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    models = list(plan.spec.models)
    df["student"] = pd.Categorical(df["student"], categories=models, ordered=True)
    df["teacher"] = pd.Categorical(df["teacher"], categories=[NO_TEACHER, *models], ordered=True)
    eval_sets = [e.name for e in plan.spec.data.eval_sets] + ["val"]
    df["eval_set"] = pd.Categorical(df["eval_set"], categories=eval_sets, ordered=True)
    rest = [c for c in df.columns if c not in ID_COLUMNS + METRIC_COLUMNS]
    return df[ID_COLUMNS + METRIC_COLUMNS + rest]


def write_results(plan: Plan, df: pd.DataFrame) -> Path:
    """Write ``results.parquet`` and ``results.csv`` (plus the sweep as run) into the run folder."""
    out = plan.spec.output
    out.mkdir(parents=True, exist_ok=True)
    df.to_parquet(out / RESULTS, index=False)
    df.to_csv(out / "results.csv", index=False)
    return out / RESULTS


def write_sweep_record(plan: Plan) -> None:
    """Record the sweep as run (after overrides) and the plan's trials, before any training."""
    out = plan.spec.output
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.yaml").write_text(yaml.safe_dump(dict(plan.spec.raw), sort_keys=False))
    write_json(
        out / "plan.json",
        {
            "sweep": plan.spec.name,
            "stages": [[{"group": g.name, "trials": [t.id for t in g.trials]} for g in stage] for stage in plan.stages],
            "trials": {
                t.id: {
                    "stage": t.stage,
                    "student": t.student,
                    "teacher": t.teacher,
                    "seed": t.seed,
                    "teacher_id": t.config.teacher_id,
                }
                for t in plan.trials.values()
            },
        },
    )


def read_results(run_dir: str | Path) -> pd.DataFrame:
    """The results table of a run folder; a one-line error if there is none."""
    path = Path(run_dir)
    path = path / RESULTS if path.is_dir() else path
    if not path.is_file():
        raise KdtuneError(f"{run_dir}: no {RESULTS} here; give a run folder written by `kdtune run` (e.g. runs/quickstart)")
    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for damaged files
        raise KdtuneError(f"{path}: cannot read results table ({type(e).__name__}: {e})") from None
