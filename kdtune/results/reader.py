"""Run folder → results table: one row per trial × eval set (tidy), written as parquet and CSV. Imports neither torch
nor the sweep reader (what a run writes there is :mod:`kdtune.run.ledger`'s).

Every ``kdtune run`` into a folder leaves a *sweep record* in ``<run>/sweeps/<record>/``: the sweep as run
(``sweep.yaml``, after ``--set``), its planned trials with labels and configs (``plan.json``) and what became of them
(``outcome.json``: its last invocation's failures, a log of its invocations). The table is built from the records and
trial folders, never from memory: every record's union, or one record. A trial that did not finish still gets one row
(status ``failed``, ``skipped``, ``damaged`` or ``pending``, with its reason), so reports can say what is missing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from kdtune import labels
from kdtune.errors import KdtuneError
from kdtune.labels import NO_TEACHER
from kdtune.rundir import CHECKSUMS, CONFIG, METRICS, check_trial, is_finished, is_run_dir, read_json, trial_dir
from kdtune.yamlio import load_yaml

METRIC_COLUMNS, EXTRA_METRICS = list(labels.METRICS[:5]), list(labels.METRICS[5:])  # every task's; tasks add the rest
ID_COLUMNS = ["trial_id", "stage", "student", "teacher", "seed", "fold", "teacher_seed", "teacher_id", "eval_set"]
RESULTS = "results.parquet"
SWEEPS = "sweeps"


@dataclass
class SweepRecord:
    """One sweep run into a run folder: its name, folder, planned trials and the last failures."""

    name: str
    path: Path | None
    sweep: str
    trials: dict[str, dict[str, Any]]  # id → {stage, student, teacher, seed, fold, teacher_seed, teacher_id, config}
    eval_sets: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)  # the sweep as run
    updated: float = 0.0
    kind: str = "sweep"  # or "tune": the seed trials of a search (reported only when asked for by name)
    plan_hash: str | None = None  # of a sweep's planned trials (see plan_hash): the same sweep reuses its record
    streams: dict[str, Any] = field(default_factory=dict)  # kdtune.plan.stream_design (empty: records of older kdtune)


def read_outcome(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / "outcome.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _record_from(path: Path) -> SweepRecord:
    """The sweep record in folder ``path`` (its plan.json, sweep.yaml and outcome.json)."""
    plan, outcome = read_json(path / "plan.json"), read_outcome(path)
    trials = plan.get("trials", {})
    return SweepRecord(
        name=plan.get("record", path.name),
        path=path,
        sweep=plan.get("sweep", path.name),
        trials=trials,
        eval_sets=list(plan.get("eval_sets", [])),
        models=list(plan.get("models", dict.fromkeys(t["student"] for t in trials.values()))),
        failures=dict(outcome.get("failures", {})),
        raw=_yaml_file(path / "sweep.yaml"),
        updated=(path / "plan.json").stat().st_mtime,
        kind=plan.get("kind", "sweep"),
        plan_hash=plan.get("plan_hash"),
        streams=dict(plan.get("streams", {})),
    )


def _yaml_file(path: Path) -> dict[str, Any]:
    try:
        raw = load_yaml(path.read_text()) if path.is_file() else {}
    except (OSError, yaml.YAMLError):
        raw = {}
    return raw if isinstance(raw, dict) else {}


def load_records(run_dir: str | Path) -> list[SweepRecord]:
    """Every sweep record of a run folder, oldest first (a folder of an older kdtune has one, at its root)."""
    run_dir = Path(run_dir)
    root = run_dir / SWEEPS
    folders = list(root.iterdir()) if root.is_dir() else [run_dir]  # (a folder of the layout before sweep records)
    return sorted((_record_from(d) for d in folders if (d / "plan.json").is_file()), key=lambda r: r.updated)


def record_labels(records: Sequence[SweepRecord]) -> dict[str, str]:
    """Record name → the sweep as its user named it (``quickstart``), for report and status. Where several sweeps
    of one name were run into a folder (the record of the second is ``quickstart-0f5f563a``: the name and a hash of
    its planned trials), each label adds the settings of the sweep as run (after ``--set``) in which it differs
    from the others, ``quickstart [grid.seeds=3, grid.temperature=[1, 4, 8, 16]]``, three at most, else the time
    of its first run. A search's record keeps its own name (``tune-MLP``)."""
    out = {r.name: r.name if r.kind == "tune" else r.sweep for r in records}
    groups: dict[str, list[SweepRecord]] = {}
    for r in records:
        if r.kind != "tune":
            groups.setdefault(r.sweep, []).append(r)
    for name, group in groups.items():
        if len(group) < 2:
            continue
        differ, texts = _differ([labels.leaves(r.raw) for r in group])
        for r, t in zip(group, texts, strict=True):
            shown = [f"{k}={t[k]}" for k in differ[:3]] + (["…"] if len(differ) > 3 else [])
            started = (read_outcome(r.path).get("runs") or [{}])[0].get("started") if r.path else None
            out[r.name] = f"{name} [{', '.join(shown) if differ else f'first run {started}'}]"
        if len({out[r.name] for r in group}) < len(group):  # alike in the three settings shown: the record's own name
            out |= {r.name: f"{name} [{r.name}]" for r in group}
    return out


def select_records(run_dir: str | Path, sweep: str | None = None, include_tuning: bool = False) -> list[SweepRecord]:
    """The records ``report``/``status`` read: every sweep's (and with ``include_tuning`` every search's),
    or the one named ``sweep`` (a record name, or a sweep name when that names one record); one-line
    errors for a folder that is not a run folder."""
    path = Path(run_dir)
    if not path.exists():
        raise KdtuneError(f"{run_dir}: no such run folder")
    if not path.is_dir():
        raise KdtuneError(f"{run_dir}: is a file, not a run folder; give a folder written by `kdtune run` (e.g. runs/quickstart)")
    records = load_records(path)
    if not records:
        what = "a kdtune run folder, but no sweep has been recorded in it" if is_run_dir(path) else "not a kdtune run folder"
        raise KdtuneError(f"{run_dir}: {what}; give a folder written by `kdtune run` (e.g. runs/quickstart)")
    if sweep is None:
        sweeps = [r for r in records if include_tuning or r.kind != "tune"]
        return sweeps or records
    labels = record_labels(records)
    chosen = [r for r in records if sweep in (r.name, labels[r.name])] or [r for r in records if r.sweep == sweep]
    if not chosen:
        raise KdtuneError(f"{run_dir}: no sweep {sweep!r} recorded here; recorded: {', '.join(labels.values())}")
    if len(chosen) > 1:
        which = ", ".join(f"{labels[r.name]} (--sweep {r.name})" for r in chosen)
        raise KdtuneError(f"{run_dir}: several sweeps named {sweep!r} were run into this folder: {which}")
    return chosen


def trial_status(run_dir: Path, tid: str, failure: str | None, full: bool = False) -> tuple[str, str]:
    """(status, reason) of a planned trial: ok, damaged (its metrics and config, or with ``full`` every
    file, fail their checksums), failed or skipped (``failure`` given), or pending."""
    if is_finished(run_dir, tid):
        if (trial_dir(run_dir, tid) / CHECKSUMS).is_file():
            problem = check_trial(run_dir, tid, None if full else (CONFIG, METRICS))
            if problem:
                return "damaged", problem
        return "ok", ""
    if failure:
        return ("skipped" if failure.startswith("skipped") else "failed"), failure
    return "pending", ""


def stored_config(run_dir: Path, tid: str | None, configs: dict[str, dict[str, Any] | None]) -> dict[str, Any] | None:
    """A trial's config: from the records (``configs``), else from its trial folder (older records), else None."""
    if not tid:
        return None
    if configs.get(tid) is None:
        path = trial_dir(run_dir, tid) / CONFIG
        try:
            configs[tid] = read_json(path).get("config") if path.is_file() else None
        except Exception:  # a damaged config.json: the trial itself reports it as damaged
            configs[tid] = None
    return configs[tid]


def _class_dict(
    config: dict[str, Any], configs: dict[str, dict[str, Any] | None], run_dir: Path, depth: int = 0
) -> dict[str, Any]:
    """A config without what a cell averages over (its seeds, fold, and the data fingerprint, which follows the
    fold; ``student_streams`` stays: a student sharing its teacher's streams is another design), its teacher
    replaced by the teacher's own class: equal for every seed and fold of one configuration."""
    d = json.loads(json.dumps(config))
    for k in ("seed", "data_seed", "data_fingerprint", "schema"):
        d.pop(k, None)
    if isinstance(d.get("data"), dict):
        d["data"].pop("fold", None)
    teacher = d.pop("teacher_id", None)
    if teacher and depth < 8:
        tc = stored_config(run_dir, teacher, configs)
        d["teacher"] = _class_dict(tc, configs, run_dir, depth + 1) if tc else {"id": teacher}
    return d


# dotted config keys already shown as their own setting columns (kdtune.labels.summary): the ``config`` column leaves them out
_SUMMARY_KEYS = {
    "arch",
    *(f"loss.{k}" for k in ("temperature", "w_hard", "w_soft", "kind", "start", "stop", "distills")),
    *(f"train.{k}" for k in ("schedule.name", "augment.name", "select_from", *labels.TRAIN_SETTINGS)),
}


def _rows(
    run_dir: Path, tid: str, info: dict[str, Any], failure: str | None, sweeps: str, configs: dict[str, dict[str, Any] | None]
) -> list[dict[str, Any]]:
    status, err = trial_status(run_dir, tid, failure)
    config_dict = info.get("config")
    metrics: dict[str, Any] = {}
    if status == "ok":
        metrics = read_json(trial_dir(run_dir, tid) / METRICS)
        if config_dict is None:  # records of older kdtune versions: the trial folder has it
            config_dict = read_json(trial_dir(run_dir, tid) / CONFIG).get("config")
    summary = labels.summary(config_dict) if config_dict else {}
    data = (config_dict or {}).get("data", {})
    fold = data.get("fold") if data.get("folds", 1) > 1 else None  # also for records written before folds existed
    base = {
        "trial_id": tid,
        **{k: fold if k == "fold" else info.get(k) for k in ID_COLUMNS[1:-1]},  # (but eval_set)
        "sweep": sweeps,
        **summary,
        "_class": labels.leaves(_class_dict(config_dict, configs, run_dir)) if config_dict else None,
    }
    if status != "ok":
        return [base | {"eval_set": None, "status": status, "error": err}]
    extra = {"status": "ok", "error": "", "best_epoch": metrics.get("best_epoch"), "seconds": metrics.get("seconds")}
    extra |= {"host": metrics.get("host"), "node_id": metrics.get("node_id")}  # where it ran (None: older kdtune, or no Ray)
    first, last = metrics.get("select_window") or (None, None)  # the epochs selection chose among (None: older kdtune)
    extra |= {"select_first": first, "select_last": last}
    defined = eval_definitions(data)
    evals = metrics.get("eval", {}).items()
    return [base | {"eval_set": name, "eval_def": defined.get(name)} | extra | vals for name, vals in evals]


def eval_definitions(data: dict[str, Any]) -> dict[str, str]:
    """Each eval set of a trial's data config in words: its split and corruption with its parameters
    (``the test split, translate shift=1``); ``val`` is the validation split."""
    out = {"val": "the validation split"}
    for e in data.get("eval_sets", []):
        params = " ".join(f"{k}={labels.value_text(v)}" for k, v in (e.get("params") or {}).items())
        how = "" if e.get("corruption") in (None, "identity") else f", {e['corruption']}" + (f" {params}" if params else "")
        out[e["name"]] = f"the {e.get('source', e['name'])} split{how}"
    return out


def _differ(classes: list[dict[str, str]]) -> tuple[list[str], list[dict[str, str]]]:
    """The leaves (:func:`kdtune.labels.leaves`) in which ``classes`` differ (a leaf one lacks counts as a value), and
    each one's text of them (numbers by :func:`kdtune.labels.number_labels` over the values shown together)."""
    differ = labels.varying(pd.DataFrame(classes), (), [(sorted({k for c in classes for k in c}), True)])
    values = {k: [labels.leaf_value(c[k]) if k in c else None for c in classes] for k in differ}
    shown = {k: labels.number_labels(v) for k, v in values.items()}
    return differ, [{k: shown[k][values[k][i]] for k in differ} for i in range(len(classes))]


def _labels(classes: list[dict[str, str]]) -> list[str]:
    """For configurations of one model label: each one's settings that differ from the others', ``lr=0.003, dropout=0.1``."""
    differ, texts = _differ(classes)
    out = [", ".join(f"{labels.short_key(k)}={t[k]}" for k in differ) for t in texts]
    if len(set(out)) < len(out):  # differences the short form hides (e.g. nested teachers): fall back to a hash
        out = [
            f"{lbl + ', ' if lbl else ''}cfg {hashlib.sha256(json.dumps(c, sort_keys=True).encode()).hexdigest()[:6]}"
            for lbl, c in zip(out, classes, strict=True)
        ]
    return out


def cell_labels(classes: pd.Series, labels: pd.Series, keep: Any) -> pd.Series:
    """One label per row: among the rows of one model label (``labels``), the settings in which its
    configuration (``classes``: flattened config dicts, ``keep`` choosing their keys) differs from the
    others'; None where the label has one configuration only."""
    out = pd.Series(None, index=classes.index, dtype=object)
    for idx in labels.groupby(labels.astype(object), dropna=True).groups.values():
        pure: dict[str, dict[str, str]] = {}
        row_key: dict[Any, str] = {}
        for i in idx:
            c = classes.loc[i]
            if not isinstance(c, dict):
                continue
            # (what is saved and which eval sets are scored change no result)
            kept = {k: v for k, v in c.items() if keep(k) and not k.startswith(("outputs.", "data.eval_sets"))}
            key = json.dumps(kept, sort_keys=True)
            pure.setdefault(key, kept)
            row_key[i] = key
        if len(pure) < 2:
            continue
        names = dict(zip(pure, _labels(list(pure.values())), strict=True))
        for i, key in row_key.items():
            out.loc[i] = names[key]
    return out


def _config_columns(df: pd.DataFrame) -> pd.DataFrame:
    """``teacher_config`` (the teacher's settings that differ between the teachers of one label) and
    ``config`` (the model's own settings that differ and are no setting column, e.g. a tuned model
    size): empty where one configuration is all there is, so no cell pools two configurations."""
    classes = df.pop("_class") if "_class" in df else pd.Series(None, index=df.index, dtype=object)
    distilled = df["teacher"].astype(object) != NO_TEACHER
    teacher_part = classes.map(
        lambda c: {k[8:]: v for k, v in c.items() if k.startswith("teacher.")} if isinstance(c, dict) else None
    )
    df["teacher_config"] = cell_labels(teacher_part.where(distilled), df["teacher"].where(distilled), lambda k: True)
    own = classes.map(lambda c: {k: v for k, v in c.items() if not k.startswith("teacher.")} if isinstance(c, dict) else None)
    df["config"] = cell_labels(own, df["student"], lambda k: k not in _SUMMARY_KEYS and not k.startswith("loss."))
    return df


def _table(rows: list[dict[str, Any]], models: Iterable[str], eval_sets: Iterable[str]) -> pd.DataFrame:
    df = _config_columns(pd.DataFrame(rows))
    for col in [*ID_COLUMNS, *METRIC_COLUMNS, "n", "status", "error", "best_epoch", "select_first", "select_last", "seconds",
                "host", "node_id", "sweep"]:  # fmt: skip
        if col not in df:
            df[col] = None
    extra = [c for c in df.columns if c in EXTRA_METRICS]
    for col in [*METRIC_COLUMNS, *extra, "temperature", "w_hard", "w_soft", "start", "stop", "seconds"]:
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    models = list(dict.fromkeys([*models, *df["student"].dropna()]))
    df["student"] = pd.Categorical(df["student"], categories=models, ordered=True)
    teachers = list(dict.fromkeys([NO_TEACHER, *models, *df["teacher"].dropna()]))
    df["teacher"] = pd.Categorical(df["teacher"], categories=teachers, ordered=True)
    eval_sets = list(dict.fromkeys([*eval_sets, *df["eval_set"].dropna(), "val"]))
    df["eval_set"] = pd.Categorical(df["eval_set"], categories=eval_sets, ordered=True)
    rest = [c for c in df.columns if c not in ID_COLUMNS + METRIC_COLUMNS]
    return df[ID_COLUMNS + METRIC_COLUMNS + rest]


def table_of(
    run_dir: Path, trials: dict[str, dict[str, Any]], failures: dict[str, str], sweep: str, models: Iterable[str],
    eval_sets: Iterable[str],
) -> pd.DataFrame:  # fmt: skip
    """The results table of ``trials`` (id → record entry, each with its config) of the sweep ``sweep`` alone, read
    from the run folder (unfinished trials get one status row, with their reason from ``failures``)."""
    configs: dict[str, dict[str, Any] | None] = {tid: t["config"] for tid, t in trials.items()}
    rows = [row for tid, info in trials.items() for row in _rows(run_dir, tid, info, failures.get(tid), sweep, configs)]
    return _table(rows, models, eval_sets)


def _run_rows(run_dir: Path, sweep: str | None) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """The rows of a run folder's results table (before :func:`_table`), its models and its eval sets."""
    records = select_records(run_dir, sweep)
    owners: dict[str, list[str]] = {}
    info: dict[str, dict[str, Any]] = {}
    failure: dict[str, str] = {}
    for r in records:
        for tid, t in r.trials.items():
            owners.setdefault(tid, []).append(r.name)
            info.setdefault(tid, t)
            if tid in r.failures:
                failure[tid] = r.failures[tid]
    configs: dict[str, dict[str, Any] | None] = {
        tid: t.get("config") for r in load_records(run_dir) for tid, t in r.trials.items() if t.get("config")
    }  # every record's, so a teacher planned by another sweep of the folder is known too
    rows = [row for tid, t in info.items() for row in _rows(run_dir, tid, t, failure.get(tid), ",".join(owners[tid]), configs)]
    models = [m for r in records for m in r.models]
    return rows, models, [e for r in records for e in r.eval_sets]


def collect_run(run_dir: str | Path, sweep: str | None = None) -> pd.DataFrame:
    """The results table of a run folder: the union of its sweep records (a trial once, however many
    records plan it), or the record ``sweep``. Unfinished trials take the reason from the latest record
    that failed them."""
    return _table(*_run_rows(Path(run_dir), sweep))


def collect_runs(run_dirs: Sequence[str | Path], sweep: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The union of several run folders' tables, a trial id once (the first folder's), and notes on
    what was merged or dropped."""
    all_rows: list[dict[str, Any]] = []
    models: list[str] = []
    eval_sets: list[str] = []
    notes: list[str] = []
    seen: set[str] = set()
    for d in run_dirs:
        rows, m, e = _run_rows(Path(d), sweep)
        dup = {r["trial_id"] for r in rows if r["trial_id"] in seen}
        if dup:
            notes.append(f"{d}: {len(dup)} trial(s) also in an earlier run folder (same id, same config) counted once")
        all_rows += [r | {"run": str(d)} for r in rows if r["trial_id"] not in seen]
        seen |= {r["trial_id"] for r in rows}
        models += m
        eval_sets += e
    return _table(all_rows, models, eval_sets), notes


def write_results(run_dir: str | Path, df: pd.DataFrame) -> Path:
    """Write ``results.parquet`` and ``results.csv`` (an export; the run folder stays the source) atomically."""
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, write in ((RESULTS, df.to_parquet), ("results.csv", df.to_csv)):
        write(out / f".{name}.tmp", index=False)
        (out / f".{name}.tmp").replace(out / name)
    return out / RESULTS
