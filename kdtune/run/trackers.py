"""Experiment trackers: every kdtune trial of a sweep becomes one MLflow run (``outputs.mlflow``, ``--mlflow``) and
one Weights & Biases run (``outputs.wandb``, ``--wandb``); ``kdtune tune`` logs each search trial; ``kdtune report``
logs the tables and figures to one summary run of the sweep. The run folder stays the source of truth: a tracker is
told what the run folder holds, and never decides what a table holds.

A Ray Tune trial is a *group* of seeds (:mod:`kdtune.run.execute`), so Ray's own ``MLflowLoggerCallback`` and
``WandbLoggerCallback`` would log a group, and log it again on every re-run. :class:`TrackerHub` keeps one run per
kdtune trial instead, on the driver (no worker needs credentials): a trial's run starts with its first epoch
(parameters: its resolved configuration; tags: trial id, sweep, stage, teacher id, versions, git commit) and gets
every epoch's history row (step = epoch); when its group ends, a finished trial gets its final metrics
(``accuracy/translated``) and its ``config.json`` and ``metrics.json`` as artifacts and ends FINISHED, another ends
FAILED with the error. Before and after every run, :meth:`TrackerHub.sync` brings the tracker in line with the run
folder (a finished trial gets its one finished run; a run a killed driver left RUNNING ends KILLED), so a re-run or
a resume adds no run. MLflow is asked which runs it holds (tags ``kdtune.trial_id``, ``kdtune.run_folder``); W&B
offline runs cannot be asked, so the finished ones are listed in ``RUN/trackers/wandb.json``. Search trials are
one Ray trial each: ``kdtune tune`` uses Ray's callbacks themselves (:func:`search_callbacks`).

Neither package is required: each is imported only when a sweep asks for it, and :func:`check_trackers` says in one
line, before any work, that one is not installed, that a tracking server does not answer, or that W&B online mode
has no API key.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import logging
import os
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdtune import __version__
from kdtune.errors import KdtuneError, first_line
from kdtune.labels import STUDENT_STREAMS, TRAIN_SETTINGS, invariance_label, stream_seeds
from kdtune.run.callbacks import Listener
from kdtune.rundir import CONFIG, METRICS, is_finished, read_json, trial_dir, write_json
from kdtune.train.config import RESULTS_VERSION, MlflowSpec, TrackerSpec, WandbSpec, check_tracking_uri

if TYPE_CHECKING:
    from kdtune.plan import Plan, Trial
    from kdtune.spec.sweepfile import SweepSpec

logger = logging.getLogger(__name__)

EXTRAS = {"mlflow": ("mlflow", "MLflow"), "wandb": ("wandb", "Weights & Biases")}  # tracker → (module, name)
CHECK_TIMEOUT = 5.0  # seconds a tracking server has to answer the check before any work
TAG = "kdtune."  # the prefix of kdtune's tags
TRIAL, SEARCH, SUMMARY = "trial", "search", "summary"  # kdtune.kind of a run: a kdtune trial, a search trial, a report
LEDGER = Path("trackers") / "wandb.json"  # RUN/trackers/wandb.json: the W&B runs that finished, by trial id


# ---------------------------------------------------------------- settings and checks


def with_flags(spec: SweepSpec, mlflow: str | None = None, wandb: str | None = None) -> SweepSpec:
    """``spec`` with ``--mlflow URI`` / ``--wandb PROJECT`` put over its ``outputs``: the flag gives the tracking URI
    (the sweep's experiment kept) or the project (its group, entity and mode kept)."""
    t = spec.trackers
    m, w = t.mlflow, t.wandb
    if mlflow is not None:
        try:
            check_tracking_uri(mlflow)
        except ValueError as e:
            raise KdtuneError(f"--mlflow {mlflow}: {e}") from None
        m = MlflowSpec(mlflow, m.experiment if m else spec.name)
    if wandb is not None:
        if not wandb.strip() or "/" in wandb:
            raise KdtuneError(f"--wandb {wandb!r}: must be a W&B project name (the entity goes in outputs.wandb.entity)")
        w = replace(w, project=wandb) if w else WandbSpec(wandb, group=spec.name)
    return replace(spec, trackers=TrackerSpec(m, w))


def _where(tracker: str, flag: bool) -> str:
    return f"--{tracker}" if flag else f"outputs.{tracker}"


def require(tracker: str, flag: bool = False) -> None:
    """One line naming the extra to install if ``tracker`` (mlflow or wandb) is not importable."""
    module, name = EXTRAS[tracker]
    try:
        importlib.import_module(module)
    except ImportError:
        raise KdtuneError(
            f"{_where(tracker, flag)}: logging to {name} needs the {module} package, which is not installed; "
            f"pip install 'kdtune[{tracker}]'"
        ) from None


def check_trackers(trackers: TrackerSpec, flags: Iterable[str] = ()) -> None:
    """Before any work: every tracker asked for is installed and can be reached (one line, :class:`KdtuneError`,
    otherwise). ``flags``: the trackers given on the command line (named so in the message)."""
    for name, check in (("mlflow", check_mlflow), ("wandb", check_wandb)):
        if (spec := getattr(trackers, name)) is not None:
            require(name, name in flags)
            check(spec, name in flags)


def _port(parts: urllib.parse.SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def _answers(parts: urllib.parse.SplitResult, host: str) -> None:
    """Connect to the server of URL ``parts`` (at ``host``), raising OSError if nothing answers in CHECK_TIMEOUT."""
    socket.create_connection((host, _port(parts)), timeout=CHECK_TIMEOUT).close()


def check_mlflow(m: MlflowSpec, flag: bool = False) -> None:
    """A tracking server that does not answer or refuses this process, and a local store (a folder, a database URI)
    MLflow will not open, are one line each."""
    where = f"{_where('mlflow', flag)} {m.tracking_uri}"
    parts = urllib.parse.urlsplit(m.tracking_uri)
    server = parts.scheme in ("http", "https")
    if server:
        try:
            _answers(parts, parts.hostname or "")
        except OSError as e:
            raise KdtuneError(
                f"{where}: the MLflow tracking server does not answer ({e.strerror or e}); start it "
                f"(mlflow server --host 127.0.0.1 --port {_port(parts)}) or fix the URI"
            ) from None
    from unittest import mock

    from mlflow.exceptions import MlflowException

    # MLflow's HTTP client without its retries (seven, with back-off: minutes on a server that is down)
    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(int(CHECK_TIMEOUT))}
    what = "not an MLflow tracking server that answers" if server else "MLflow cannot open this store"
    with mock.patch.dict(os.environ, quick):
        try:
            _mlflow_client(m.tracking_uri).search_experiments(max_results=1)
        except MlflowException as e:
            text = first_line(e)
            if "MLFLOW_ALLOW_FILE_STORE" in text:
                raise KdtuneError(
                    f"{where}: MLflow 3 opens a folder store only with MLFLOW_ALLOW_FILE_STORE=true in the environment; "
                    "set it, or use a database store (sqlite:///mlflow.db) or a server (http://127.0.0.1:5000)"
                ) from None
            auth = (
                " (credentials: MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD)"
                if "401" in text or "403" in text
                else ""
            )
            raise KdtuneError(f"{where}: {what} ({text[:200]}){auth}") from None
        except Exception as e:  # requests' connection errors; a store's folder or database that cannot be made
            detail = type(e).__name__ if server else f"{type(e).__name__}: {str(e).strip()[:200]}"
            raise KdtuneError(f"{where}: {what} ({detail})") from None


def wandb_mode(w: WandbSpec) -> str:
    """The W&B mode: the sweep's, else ``$WANDB_MODE``, else online."""
    return w.mode or os.environ.get("WANDB_MODE") or "online"


def check_wandb(w: WandbSpec, flag: bool = False) -> None:
    """Online mode needs an API key on the driver and W&B's server answering; offline mode needs nothing."""
    if wandb_mode(w) in ("offline", "disabled"):
        return
    where = _where("wandb", flag)
    base = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    parts = urllib.parse.urlsplit(base)
    host = parts.hostname or "api.wandb.ai"
    key = os.environ.get("WANDB_API_KEY")
    if not key:
        import netrc

        with contextlib.suppress(OSError, netrc.NetrcParseError):
            key = (netrc.netrc().authenticators(host) or (None, None, None))[2]
    if not key:
        raise KdtuneError(
            f"{where}: W&B online mode needs an API key on the driver: set WANDB_API_KEY (or run `wandb login`), "
            "or log offline (outputs.wandb.mode: offline, or WANDB_MODE=offline)"
        )
    try:
        _answers(parts, host)
    except OSError as e:
        raise KdtuneError(
            f"{where}: W&B's server {base} does not answer ({e.strerror or e}); log offline (WANDB_MODE=offline) "
            "and `wandb sync` later"
        ) from None


# ---------------------------------------------------------------- what a tracked run holds


def run_name(t: Trial) -> str:
    """A trial's run name: ``MLP-from-CNN-s1-1a2b3c4d``."""
    return f"{t.student}-from-{t.teacher}-s{t.seed}-{t.id[:8]}"


def param_text(value: Any) -> str:
    """A parameter's value as a tracker stores it (text): strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def _bag(prefix: str, params: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    return {f"{prefix}.{k}": v for k, v in params}


def trial_params(t: Trial) -> dict[str, Any]:
    """The trial's resolved configuration, flat, under kdtune's own setting names (``lr``, ``temperature``,
    ``schedule.decay_rate``, ``params.hidden``, ``data.val_size``) with its labels and seed units (``seed``,
    ``init_seed``, ``data_seed``); settings that do not apply (a student's, for a model trained from data; no
    clipping) are left out."""
    c = t.config
    tr, loss, data = c.train, c.loss, c.data
    shared = c.student_streams == STUDENT_STREAMS[1]
    out: dict[str, Any] = {"student": t.student, "teacher": t.teacher, "seed": t.seed}
    out |= stream_seeds(c.seed, c.data_seed, c.loss.distills, shared)
    if t.fold is not None:
        out |= {"fold": t.fold, "data.folds": data.folds}
    if t.teacher_seed is not None:
        out["teacher_seed"] = t.teacher_seed
    out["arch"] = c.arch
    out |= _bag("params", c.params)
    for k in (*TRAIN_SETTINGS, "select", "select_from"):
        out[k] = getattr(tr, k)
    out["schedule"] = tr.schedule.name
    out |= _bag("schedule", tr.schedule.params)
    if tr.augment is not None:
        out["augment"] = tr.augment.name
        out |= _bag("augment", tr.augment.params)
    if loss.distills:
        out |= {"kd_loss": loss.kind, "temperature": loss.temperature, "w_hard": loss.w_hard, "w_soft": loss.w_soft}
        out |= {"start": loss.start, "stop": loss.stop, "student_streams": c.student_streams}
    out["data.name"] = data.name
    out |= _bag("data", data.params)
    out |= {"data.val_size": data.val_size, "data.split_seed": data.split_seed, "data.corruption_seed": data.corruption_seed}
    for e in data.eval_sets:
        described = " ".join([f"source={e.source}", f"corruption={e.corruption}", *(f"{k}={v}" for k, v in e.params)])
        out[f"data.eval_sets.{e.name}"] = described
    if data.invariance is not None:
        out["data.invariance"] = invariance_label(data.invariance)
    out["data.fingerprint"] = c.data_fingerprint
    out["outputs.feature_examples"] = c.outputs.feature_examples
    if c.outputs.feature_epochs:
        out["outputs.feature_epochs"] = list(c.outputs.feature_epochs)
    return {k: v for k, v in out.items() if v is not None}


@functools.lru_cache(maxsize=16)
def git_commit(folder: str) -> str | None:
    """The commit checked out in the git repository holding ``folder`` (with ``+dirty`` if it has changes), or None."""
    try:
        head = subprocess.run(["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", folder, "status", "--porcelain", "--", "."], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def base_tags(spec: SweepSpec, run_dir: Path) -> dict[str, str]:
    """The tags of every run of a sweep: its name, the run folder, kdtune's version and results version, and the
    git commit of the sweep file's folder where it is in a repository."""
    tags = {
        f"{TAG}sweep": spec.name,
        f"{TAG}run_folder": str(Path(run_dir).resolve()),
        f"{TAG}version": __version__,
        f"{TAG}results_version": str(RESULTS_VERSION),
    }
    source = Path(spec.source)
    if source.is_file():
        commit = git_commit(str(source.resolve().parent))
        if commit:
            tags[f"{TAG}git_commit"] = commit
    return tags


def trial_tags(t: Trial, base: Mapping[str, str]) -> dict[str, str]:
    """A trial run's tags: the sweep's (:func:`base_tags`) with its id, stage, labels and teacher's trial id."""
    tags = dict(base) | {
        f"{TAG}kind": TRIAL,
        f"{TAG}trial_id": t.id,
        f"{TAG}stage": str(t.stage),
        f"{TAG}student": t.student,
        f"{TAG}teacher": t.teacher,
    }
    if t.config.teacher_id:
        tags[f"{TAG}teacher_id"] = t.config.teacher_id
    return tags


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def epoch_metrics(row: Mapping[str, Any]) -> dict[str, float]:
    """An epoch's history row as metrics (``train_loss``, ``lr``, ``val_accuracy``, …; the epoch is the step)."""
    return {k: f for k, v in row.items() if k != "epoch" and (f := _number(v)) is not None}


def final_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """A trial's final metrics from its ``metrics.json``: every metric of every eval set as ``metric/eval_set``
    (``accuracy/translated``, ``accuracy/val``), and ``best_epoch``, ``seconds``, ``num_parameters``."""
    out = {
        f"{k}/{name}": f
        for name, vals in metrics.get("eval", {}).items()
        for k, v in vals.items()
        if (f := _number(v)) is not None
    }
    for k in ("best_epoch", "seconds", "num_parameters"):
        if (f := _number(metrics.get(k))) is not None:
            out[k] = f
    return out


# ---------------------------------------------------------------- backends


@dataclass
class Logged:
    """What a tracker holds of one trial: its finished run (if any) and its runs still open (RUNNING)."""

    finished: str | None = None
    running: tuple[str, ...] = ()


class MlflowBackend:
    """One MLflow experiment through ``MlflowClient`` (no active-run state: several trials' runs are open at once)."""

    name = "mlflow"

    def __init__(self, m: MlflowSpec, run_dir: Path) -> None:
        self.spec, self.run_dir = m, Path(run_dir).resolve()
        self.client, self.experiment_id = _experiment(m)
        self._steps: dict[str, set[int]] = {}

    def logged(self, kind: str = TRIAL) -> dict[str, Logged]:
        """Trial id → its runs of this run folder in the experiment."""
        out: dict[str, Logged] = {}
        for run in search(self.client, self.experiment_id, kind, self.run_dir):
            tid = run.data.tags.get(f"{TAG}trial_id")
            if not tid:
                continue
            got = out.setdefault(tid, Logged())
            if run.info.status == "FINISHED" and got.finished is None:
                got.finished = run.info.run_id
            elif run.info.status == "RUNNING":
                got.running += (run.info.run_id,)
        return out

    def start(self, t: Trial, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        from mlflow.entities import Param

        run = self.client.create_run(self.experiment_id, run_name=run_name(t), tags=dict(tags))
        run_id = run.info.run_id
        items = [Param(k, param_text(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 parameters a call
            self.client.log_batch(run_id, params=items[i : i + 100])
        self._steps[run_id] = set()
        return run_id

    def log_epoch(self, run_id: str, row: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric

        step = int(row["epoch"])
        if step in self._steps.setdefault(run_id, set()):
            return
        now = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(k, v, now, step) for k, v in epoch_metrics(row).items()])
        self._steps[run_id].add(step)

    def finish(self, run_id: str, metrics: Mapping[str, Any], files: Iterable[Path], resumed: bool = False) -> None:
        from mlflow.entities import Metric

        if resumed:  # a run a killed driver left open: which epochs it has
            self._steps[run_id] = {m.step for m in self.client.get_metric_history(run_id, "train_loss")}
        for row in metrics.get("history", []):
            self.log_epoch(run_id, row)
        now = int(time.time() * 1000)
        finals = [Metric(k, v, now, 0) for k, v in final_metrics(metrics).items()]
        for i in range(0, len(finals), 1000):
            self.client.log_batch(run_id, metrics=finals[i : i + 1000])
        for f in files:
            self.client.log_artifact(run_id, str(f))
        self.client.set_terminated(run_id, "FINISHED")
        self._steps.pop(run_id, None)

    def end(self, run_id: str, status: str, reason: str) -> None:
        if reason:
            self.client.set_tag(run_id, f"{TAG}error", reason[:5000])
        self.client.set_terminated(run_id, status)
        self._steps.pop(run_id, None)


def _experiment(m: MlflowSpec) -> tuple[Any, str]:
    """An MLflow client of ``m``'s tracking URI and the id of its experiment, made if it does not exist (restored
    if deleted)."""
    from mlflow.exceptions import MlflowException

    client, name = _mlflow_client(m.tracking_uri), m.experiment
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            # opened on the UI's training-runs view
            return client, client.create_experiment(name, tags={"mlflow.experimentKind": "custom_model_development"})
        except MlflowException:  # made meanwhile by another process
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    return client, exp.experiment_id


def search(client: Any, experiment: str, kind: str, run_dir: Path, extra: str = "") -> list[Any]:
    """Every run of ``kind`` logged from ``run_dir`` in an experiment (all pages)."""
    flt = f"tags.`{TAG}kind` = '{kind}'" + (f" and {extra}" if extra else "")
    runs, token = [], None
    while True:
        page = client.search_runs([experiment], filter_string=flt, max_results=1000, page_token=token)
        runs += [r for r in page if r.data.tags.get(f"{TAG}run_folder") == str(run_dir)]
        token = page.token
        if not token:
            return runs


class WandbBackend:
    """One W&B project and group; a run per trial (``reinit="create_new"``: several open at once), run files under
    ``RUN/wandb/`` (or ``$WANDB_DIR``); the finished ones listed in ``RUN/trackers/wandb.json``."""

    name = "wandb"

    def __init__(self, w: WandbSpec, run_dir: Path) -> None:
        import wandb

        self.wandb, self.spec, self.run_dir = wandb, w, Path(run_dir)
        self.mode = wandb_mode(w)
        self.dir = Path(os.environ.get("WANDB_DIR") or self.run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key = f"{w.entity or ''}/{w.project}/{w.group}"
        self.runs: dict[str, Any] = {}  # run id → open wandb Run
        self.trial_of: dict[str, str] = {}  # run id → trial id
        self.step: dict[str, int] = {}  # run id → the last epoch logged

    def _ledger(self) -> dict[str, Any]:
        path = self.run_dir / LEDGER
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    def logged(self, kind: str = TRIAL) -> dict[str, Logged]:
        return {tid: Logged(finished=run_id) for tid, run_id in self._ledger().get(self.key, {}).items()}

    def start(self, t: Trial, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        config = dict(params) | dict(tags)
        run = self.wandb.init(
            project=self.spec.project,
            entity=self.spec.entity,
            group=self.spec.group,
            job_type=f"stage-{t.stage}",
            name=run_name(t),
            config=config,
            tags=[f"stage-{t.stage}", f"student-{t.student}", f"teacher-{t.teacher}"],
            mode=self.mode,
            dir=str(self.dir),
            reinit="create_new",
            settings=self.wandb.Settings(silent=True, console="off", x_disable_stats=True, x_disable_meta=True),
        )
        self.runs[run.id] = run
        self.trial_of[run.id] = t.id
        run.define_metric("epoch")
        return run.id

    def log_epoch(self, run_id: str, row: Mapping[str, Any]) -> None:
        step = int(row["epoch"])
        if step <= self.step.get(run_id, 0):
            return
        self.runs[run_id].log(epoch_metrics(row) | {"epoch": step}, step=step)
        self.step[run_id] = step

    def finish(self, run_id: str, metrics: Mapping[str, Any], files: Iterable[Path], resumed: bool = False) -> None:
        for row in metrics.get("history", []):
            self.log_epoch(run_id, row)
        run = self.runs.pop(run_id)
        self.step.pop(run_id, None)
        run.summary.update(final_metrics(metrics))
        tid = self.trial_of.pop(run_id)
        artifact = self.wandb.Artifact(f"trial-{tid}", type="kdtune-trial")
        for f in files:
            artifact.add_file(str(f))
        run.log_artifact(artifact)
        run.finish(exit_code=0)
        ledger = self._ledger()
        ledger.setdefault(self.key, {})[tid] = run_id
        write_json(self.run_dir / LEDGER, ledger)

    def end(self, run_id: str, status: str, reason: str) -> None:
        run = self.runs.pop(run_id, None)
        self.trial_of.pop(run_id, None)
        self.step.pop(run_id, None)
        if run is None:
            return
        run.summary.update({f"{TAG}status": status, f"{TAG}error": reason})
        run.finish(exit_code=1)

    def close(self) -> None:
        """Nothing stays open: a run still open is ended as killed (the caller ended the others)."""
        for run_id in list(self.runs):
            self.end(run_id, "KILLED", "the run ended before this trial finished")


Backend = MlflowBackend | WandbBackend


# ---------------------------------------------------------------- one run per kdtune trial


class TrackerHub:
    """The driver's trackers for one ``kdtune run`` (see the module's docstring): fed epoch rows and group ends by the
    executor, kept in line with the run folder by :meth:`sync`. A tracker that fails while trials train is said once
    in the run log and then left alone: a tracker never stops a sweep."""

    def __init__(self, backends: list[Backend], trials: Mapping[str, Trial], run_dir: Path, tags: Mapping[str, str]) -> None:
        self.backends, self.trials, self.run_dir, self.tags = list(backends), dict(trials), Path(run_dir), dict(tags)
        self.open: dict[tuple[str, str], str] = {}  # (backend, trial id) → open run id
        self.finished: dict[str, set[str]] = {b.name: set() for b in backends}  # trial ids with a finished run
        self.lock = threading.Lock()
        self.broken: set[str] = set()

    def _guard(self, backend: Backend, what: str, fn: Callable[[], Any], tid: str | None = None) -> Any:
        """``fn()``, unless ``backend`` broke (or trial ``tid`` has its finished run there); a failure breaks it."""
        if backend.name in self.broken or tid in self.finished[backend.name]:
            return None
        try:
            return fn()
        except Exception:  # a tracker's failure must not stop the sweep; the run log has it
            logger.warning("%s: %s failed; no more logging to it in this run", backend.name, what, exc_info=True)
            self.broken.add(backend.name)
            return None

    def _start(self, b: Backend, t: Trial) -> str:
        return b.start(t, trial_params(t), trial_tags(t, self.tags))

    def sync(self, ending: bool = False) -> None:
        """Bring every tracker in line with the run folder (:meth:`sync_one`); ``ending``: the run stops now."""
        with self.lock:
            for b in self.backends:
                self._guard(b, "sync", functools.partial(self.sync_one, b, ending))

    def sync_one(self, b: Backend, ending: bool) -> None:
        """Finished trials get their one finished run (an open one completed, else a new one); runs open for trials
        that are not finished are ended KILLED (a driver killed mid-trial; or, ``ending``, this run stopping)."""
        logged = b.logged()
        for tid, t in self.trials.items():
            got = logged.get(tid, Logged())
            open_here = self.open.get((b.name, tid))
            stale = [r for r in got.running if r != open_here]
            if is_finished(self.run_dir, tid):
                if got.finished or tid in self.finished[b.name]:
                    runs = stale + ([open_here] if open_here else [])
                    for r in runs:
                        b.end(r, "KILLED", "a finished run of this trial exists")
                    self.open.pop((b.name, tid), None)
                    self.finished[b.name].add(tid)
                    continue
                run_id, resumed = (open_here, False) if open_here else (stale.pop(0), True) if stale else (None, False)
                if run_id is None:
                    run_id = self._start(b, t)
                self._finish(b, tid, run_id, resumed)
                for r in stale:
                    b.end(r, "KILLED", "another run of this trial finished")
            else:
                for r in stale:
                    b.end(r, "KILLED", "the kdtune run logging it stopped before the trial finished")
                if ending and open_here:
                    b.end(open_here, "KILLED", "the kdtune run stopped before the trial finished")
                    self.open.pop((b.name, tid), None)

    def _finish(self, b: Backend, tid: str, run_id: str, resumed: bool = False) -> None:
        folder = trial_dir(self.run_dir, tid)
        b.finish(run_id, read_json(folder / METRICS), [folder / CONFIG, folder / METRICS], resumed)
        self.open.pop((b.name, tid), None)
        self.finished[b.name].add(tid)

    def epoch(self, tid: str, row: Mapping[str, Any]) -> None:
        """Trial ``tid`` trained an epoch (its history row): start its run on its first epoch, log the row."""
        t = self.trials.get(tid)
        if t is None:
            return
        with self.lock:
            for b in self.backends:
                self._guard(b, f"logging an epoch of trial {tid}", functools.partial(self._log_epoch, b, t, row), tid)

    def _log_epoch(self, b: Backend, t: Trial, row: Mapping[str, Any]) -> None:
        key = (b.name, t.id)
        if key not in self.open:
            self.open[key] = self._start(b, t)
        b.log_epoch(self.open[key], row)

    def ended(self, tids: Iterable[str], error: str | None) -> None:
        """A group of trials ended (``error``: why it failed, None if it did not): each finished trial's run is
        completed; each other trial's open run ends FAILED with the error."""
        with self.lock:
            for tid in tids:
                for b in self.backends:
                    self._guard(b, f"ending trial {tid}", functools.partial(self._end, b, tid, error), tid)

    def _end(self, b: Backend, tid: str, error: str | None) -> None:
        key = (b.name, tid)
        if is_finished(self.run_dir, tid):
            self._finish(b, tid, self.open.get(key) or self._start(b, self.trials[tid]))
        elif key in self.open and error is not None:
            b.end(self.open.pop(key), "FAILED", error)

    def close(self) -> None:
        """The run is over: a last :meth:`sync` (runs still open end KILLED), and the backends closed."""
        self.sync(ending=True)
        for b in self.backends:
            close = getattr(b, "close", None)
            if close is not None:
                self._guard(b, "closing", close)

    def __enter__(self) -> TrackerHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_trackers(plan: Plan) -> TrackerHub | None:
    """The trackers of ``plan``'s sweep, synced with its run folder; None when it asks for none."""
    spec = plan.spec
    t = spec.trackers
    if not t:
        return None
    kinds: list[tuple[str, type[Backend]]] = [("mlflow", MlflowBackend), ("wandb", WandbBackend)]
    backends = [kind(getattr(t, name), spec.output) for name, kind in kinds if getattr(t, name) is not None]
    hub = TrackerHub(backends, plan.trials, spec.output, base_tags(spec, spec.output))
    hub.sync()
    return hub


class HubEvents(Listener):
    """A stage's Ray trials fed to a :class:`TrackerHub` (on the driver): each Ray trial is a group of kdtune trials,
    whose epoch reports carry ``trial_index`` (the trial within the group) and the history row."""

    def __init__(self, hub: TrackerHub) -> None:
        self.hub = hub

    @staticmethod
    def _ids(trial: Any) -> list[str]:
        return [t["id"] for t in trial.config["group"]["trials"]]

    def result(self, trial: Any, result: dict[str, Any]) -> None:
        if "history_row" in result:
            self.hub.epoch(self._ids(trial)[int(result["trial_index"])], result["history_row"])

    def complete(self, trial: Any) -> None:
        self.hub.ended(self._ids(trial), None)

    def recover(self, trial: Any, error: str) -> None:
        self.hub.ended(self._ids(trial), error + " (retried)")

    def failed(self, trial: Any, error: str) -> None:
        self.hub.ended(self._ids(trial), error)


# ---------------------------------------------------------------- kdtune tune: one run per search trial


def search_callbacks(
    spec: SweepSpec, run_dir: Path, study: str, label: dict[str, str], number_of: Callable[[str], int | None]
) -> list[Any]:
    """Ray's own ``MLflowLoggerCallback`` / ``WandbLoggerCallback`` for ``kdtune tune``: a search trial is one Ray
    trial, its config the sampled values (the parameters), its reports the objective per epoch and at the end
    (the metrics). Subclassed to tag each run with the study, the Optuna trial number and the sweep's tags. Runs a
    killed search left RUNNING are marked KILLED first."""
    t = spec.trackers
    tags = base_tags(spec, run_dir) | {f"{TAG}kind": SEARCH, f"{TAG}study": study} | {f"{TAG}{k}": v for k, v in label.items()}
    out: list[Any] = []
    if t.mlflow is not None:
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        client, runs = _study_runs(t.mlflow, run_dir, study)
        for run in runs:
            if run.info.status == "RUNNING":
                client.set_tag(run.info.run_id, f"{TAG}error", "the kdtune tune logging it was killed")
                client.set_terminated(run.info.run_id, "KILLED")

        class SearchMlflow(MLflowLoggerCallback):
            def log_trial_start(self, trial: Any) -> None:
                if trial not in self._trial_runs:
                    number = number_of(trial.trial_id)
                    self.tags = tags | {f"{TAG}search_trial": str(number)}
                super().log_trial_start(trial)
                self.mlflow_util.log_params(run_id=self._trial_runs[trial], params_to_log=label)

            def log_trial_end(self, trial: Any, failed: bool = False) -> None:
                r = trial.last_result or {}
                state = "failed" if failed else "complete" if r.get("final") else "pruned"
                self.mlflow_util._get_client().set_tag(self._trial_runs[trial], f"{TAG}state", state)
                super().log_trial_end(trial, failed)

        out.append(SearchMlflow(t.mlflow.tracking_uri, experiment_name=t.mlflow.experiment, tags=dict(tags)))
    if t.wandb is not None:
        from ray.air.integrations.wandb import WandbLoggerCallback

        w = t.wandb
        mode = wandb_mode(w)
        os.environ["WANDB_MODE"] = mode  # Ray's callback reads the mode from the environment (no API key offline)
        wandb_dir = os.environ.get("WANDB_DIR") or str(Path(run_dir).resolve())

        class SearchWandb(WandbLoggerCallback):
            def log_trial_start(self, trial: Any) -> None:
                number = number_of(trial.trial_id)
                self.kwargs = self.kwargs | {"name": f"search-{label['model']}-{number}", "config": {**tags, **label}}
                super().log_trial_start(trial)

        kwargs: dict[str, Any] = {"job_type": "search", "tags": ["search"], "dir": wandb_dir, "mode": mode}
        if w.entity:
            kwargs["entity"] = w.entity
        out.append(SearchWandb(project=w.project, group=w.group, **kwargs))
    return out


def tag_best(spec: SweepSpec, run_dir: Path, study: str, best: int | None) -> None:
    """Tag the MLflow run of the study's best search trial ``kdtune.best = true`` (every other one false)."""
    m = spec.trackers.mlflow
    if m is None or best is None:
        return
    client, runs = _study_runs(m, run_dir, study)
    for run in runs:
        is_best = run.data.tags.get(f"{TAG}search_trial") == str(best) and run.info.status == "FINISHED"
        client.set_tag(run.info.run_id, f"{TAG}best", "true" if is_best else "false")


def _study_runs(m: MlflowSpec, run_dir: Path, study: str) -> tuple[Any, list[Any]]:
    """An MLflow client of ``m`` and the search runs of ``study`` logged from ``run_dir``."""
    client, eid = _experiment(m)
    return client, search(client, eid, SEARCH, Path(run_dir).resolve(), f"tags.`{TAG}study` = '{study}'")


def _mlflow_client(uri: str) -> Any:
    """An ``MlflowClient`` of ``uri`` that prints no "View run at" links: kdtune's standard output is its tables."""
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


# ---------------------------------------------------------------- kdtune report: one summary run of the sweep


def log_report(
    m: MlflowSpec, run_dir: Path, sweep: str, tables: Mapping[str, str], tags: Mapping[str, str]
) -> tuple[str, list[str]]:
    """Log the report's tables (file name → text: Markdown, CSV, LaTeX) and, where ``kdtune analyze`` wrote them,
    the analysis figures and page (``RUN/analysis/``) as artifacts of the sweep's one summary run (made on first use,
    its artifacts replaced after). Returns the run id and the artifact paths logged."""
    client, eid = _experiment(m)
    run_dir = Path(run_dir).resolve()
    found = search(client, eid, SUMMARY, run_dir, f"tags.`{TAG}sweep` = '{sweep}'")
    all_tags = dict(tags) | {f"{TAG}kind": SUMMARY, f"{TAG}sweep": sweep, f"{TAG}run_folder": str(run_dir)}
    if found:
        run_id = found[0].info.run_id
        for k, v in all_tags.items():
            client.set_tag(run_id, k, v)
    else:
        run_id = client.create_run(eid, run_name=f"{sweep}-summary", tags=all_tags).info.run_id
    logged = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in tables.items():
            (Path(tmp) / name).write_text(text)
        client.log_artifacts(run_id, tmp, "report")
        logged += [f"report/{name}" for name in tables]
    analysis = run_dir / "analysis"
    if analysis.is_dir() and any(analysis.iterdir()):
        client.log_artifacts(run_id, str(analysis), "analysis")
        logged += [f"analysis/{p.relative_to(analysis).as_posix()}" for p in sorted(analysis.rglob("*")) if p.is_file()]
    client.set_terminated(run_id, "FINISHED")
    return run_id, logged
