"""The Optuna study of one search: its storage, its name, recovery after a crash, its best values.

The study lives in an RDB storage: SQLite in the run folder by default, or any SQLAlchemy URL
(PostgreSQL to share one study between machines). It is named ``<sweep>:<model>:<teacher>:<metric>``.
Optuna leaves the trials of a killed process RUNNING forever; :func:`recover` marks them failed (user
attribute ``interrupted``) and queues their configurations again. Trials so marked do not count as
finished; every other finished trial (complete, pruned by ASHA, failed by an error) does.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from kdtune.errors import KdtuneError

INTERRUPTED = "interrupted"  # user attribute of trials a crash or Ctrl-C left unfinished


def default_storage(run_dir: Path) -> str:
    """SQLite in the run folder: ``sqlite:///<run>/tuning/optuna.db``."""
    path = Path(run_dir).resolve() / "tuning" / "optuna.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def masked(url: str) -> str:
    """A storage URL without its password (what files and messages show)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An ``RDBStorage`` for ``url``; one line if the URL is wrong or the server does not answer."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
    except Exception as e:  # SQLAlchemy raises many kinds (bad URL, driver missing, refused connection)
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        raise KdtuneError(
            f"--storage {masked(url)}: cannot open the Optuna storage ({lines[0] if lines else type(e).__name__})"
        ) from None


def study_name(sweep: str, model: str, teacher: str, metric: str) -> str:
    """One study per (sweep, model, teacher, metric)."""
    return f"{sweep}:{model}:{teacher}:{metric}"


def metric_of(name: str) -> str:
    """The metric a study tunes, from its name (see :func:`study_name`)."""
    return name.rsplit(":", 1)[-1]


def load_study(storage: optuna.storages.BaseStorage, name: str, direction: str) -> optuna.Study:
    """Create the study or load it; a study of the same name with the other direction is refused."""
    study = optuna.create_study(storage=storage, study_name=name, direction=direction, load_if_exists=True)
    if study.direction.name.lower() != direction:
        raise KdtuneError(f"study {name!r} exists with direction {study.direction.name.lower()}, not {direction}")
    return study


_STATES = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
}


def counts(study: optuna.Study) -> dict[str, int]:
    """Finished (complete + pruned + failed, not counting interrupted ones), and each state."""
    out = {"complete": 0, "pruned": 0, "failed": 0, "interrupted": 0, "running": 0, "waiting": 0}
    for t in study.get_trials(deepcopy=False):
        state = _STATES.get(t.state)
        if state is not None:
            out["interrupted" if state == "failed" and t.user_attrs.get(INTERRUPTED) else state] += 1
    out["finished"] = out["complete"] + out["pruned"] + out["failed"]
    return out


def recover(study: optuna.Study, only: set[int] | None = None) -> tuple[list[int], list[int]]:
    """Mark RUNNING trials (of a killed or interrupted run; or only the numbers in ``only``) failed and
    interrupted, and queue their configurations (as WAITING trials) to be tried again. Returns the
    numbers marked and, of those, the numbers whose configurations were queued (a trial killed before
    it had any setting has nothing to queue; one waiting already is not queued twice)."""
    storage = study._storage
    done, queued = [], []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if only is not None and t.number not in only:
            continue
        try:
            storage.set_trial_user_attr(t._trial_id, INTERRUPTED, True)
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except Exception:  # finished meanwhile by another process sharing the study
            continue
        params = t.params or t.system_attrs.get("fixed_params") or {}
        if params:
            if not _queued(study, params):
                # not ``skip_if_exists``: Optuna would find this very trial (now FAIL) and queue nothing
                study.enqueue_trial(params)
            queued.append(t.number)
        done.append(t.number)
    return done, queued


def _queued(study: optuna.Study, params: dict[str, Any]) -> bool:
    """Whether a WAITING trial already holds exactly ``params`` (queued by another recovery)."""
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    return any(t.system_attrs.get("fixed_params", t.params) == params for t in waiting)


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best complete trial with a finite value (None before any)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    finite = [t for t in complete if t.value is not None and math.isfinite(t.value)]
    sign = 1 if study.direction.name == "MAXIMIZE" else -1
    return max(finite, key=lambda t: sign * t.value, default=None)  # type: ignore[operator]


def seed_summary(trial: FrozenTrial) -> dict[str, Any]:
    """Mean, std and per-seed values a search trial recorded."""
    values = list(trial.user_attrs.get("seed_values", []))
    return {
        "mean": trial.value,
        "std": trial.user_attrs.get("std"),
        "n_seeds": len(values),
        "seed_values": values,
        "trial_ids": list(trial.user_attrs.get("trial_ids", [])),
    }
