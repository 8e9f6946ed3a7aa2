"""Run a plan: one Ray Tune ``Tuner`` for all its stages (a local Ray instance by default, or ``--address``).

Each Ray Tune trial is a :class:`~kdtune.plan.TrialGroup` (trials differing only in seed). Finished trials are found
in the run folder by id and skipped, which is also how an interrupted sweep resumes. The ``inline`` executor runs
groups one after another in this process, for debugging. While trials run, :class:`~kdtune.run.progress.Progress`
shows them; kdtune's, Ray's and Ray Tune's log records (tracebacks included) go to ``RUN/logs/<time>-run.log``, not
the terminal. The first Ctrl-C stops the run at once: Ray is shut down, no later stage starts, finished trials stay,
and :class:`Interrupted` says how many. Before any trial, a run on a Ray cluster checks that every alive node sees
the run folder and the data folder as this machine does (:func:`check_shared_storage`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace, TracebackType
from typing import TYPE_CHECKING, Any

from kdtune.errors import KdtuneError
from kdtune.plan import Plan, TrialGroup
from kdtune.run.callbacks import Listener, error_line, last_line, tell, tune_callback
from kdtune.run.progress import Progress
from kdtune.rundir import METRICS, check_trial, finished_trials, is_finished, quarantine, read_json, trial_dir
from kdtune.spec.sweepfile import SweepSpec
from kdtune.train.config import TrialConfig

if TYPE_CHECKING:
    from kdtune.run.trackers import TrackerHub

Payload = dict[str, Any]
EpochCallback = Callable[[dict[str, Any]], None]

logger = logging.getLogger(__name__)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`execute`, raised after shutting down: how many of the plan's trials are finished."""

    def __init__(self, finished: int, total: int) -> None:
        super().__init__(f"{finished} of {total} trials finished")
        self.finished, self.total = finished, total


class RayDied(Interrupted):
    """The Ray instance died under the run (its raylet or GCS gone): raised, like :class:`Interrupted`, once
    what was left of Ray is shut down; ``reason`` says which process went."""

    def __init__(self, finished: int, total: int, reason: str) -> None:
        super().__init__(finished, total)
        self.reason = reason


class JoinError(KdtuneError):
    """Joining the Ray cluster at ``--address`` failed (nothing answers, authentication, Ray's own refusal)."""


def group_payload(plan: Plan, group: TrialGroup, run_dir: Path, data_root: Path | None) -> Payload:
    """Everything a worker needs to train ``group`` (JSON-able, absolute paths)."""
    return {
        "name": group.name,
        "stage": group.stage,
        "run_dir": str(run_dir.resolve()),
        "data_root": str(data_root.resolve()) if data_root else None,
        "device": plan.spec.execution.device,
        "cpus": plan.spec.resources.cpu,
        "eval_batch_size": plan.spec.execution.eval_batch_size,
        "tensorboard": plan.spec.execution.tensorboard,
        "trials": [
            {"id": t.id, "config": t.config.to_dict(), "export_train_logits": t.id in plan.needs_train_logits}
            for t in group.trials
        ],
    }


def run_group(payload: Payload, on_epoch: EpochCallback | None = None) -> list[dict[str, Any]]:
    """Worker side: train every unfinished trial of a group; returns each trial's metrics. ``on_epoch`` gets
    train_trial's row of each epoch plus ``trial_index`` (in the group, from 0) and ``epochs``. Two or more
    unfinished seeds train as one vectorised model (:mod:`kdtune.train.batched`) where the model allows it, else
    one after another; a seed that fails fails the group after the others have finished."""
    import torch

    from kdtune.train.trainer import TENSORBOARD, resolve_device, train_trial

    torch.set_num_threads(max(1, int(payload["cpus"])))
    device = resolve_device(payload["device"])
    run_dir = Path(payload["run_dir"])
    out: dict[int, dict[str, Any]] = {}
    pending: list[tuple[int, TrialConfig]] = []
    for i, t in enumerate(payload["trials"]):
        if is_finished(run_dir, t["id"]):
            out[i] = read_json(trial_dir(run_dir, t["id"]) / METRICS)
            continue
        config = TrialConfig.from_dict(t["config"])
        if config.id != t["id"]:
            raise RuntimeError(f"trial {t['id']}: config hashes to {config.id} on this worker (kdtune versions differ?)")
        pending.append((i, config))

    def each(i: int, config: TrialConfig) -> Callable[[dict[str, Any]], None] | None:
        """``on_epoch`` of trial ``i``: its rows tagged with ``trial_index`` and ``epochs``."""
        return None if on_epoch is None else lambda row: on_epoch({"trial_index": i, "epochs": config.train.epochs, **row})

    def board(i: int) -> Path | None:
        return run_dir / TENSORBOARD / payload["name"] / payload["trials"][i]["id"] if payload.get("tensorboard") else None

    if len(pending) >= 2:
        out |= _train_seeds(payload, pending, device, each, board)
    else:
        for i, config in pending:
            export = payload["trials"][i]["export_train_logits"]
            out[i] = train_trial(
                config, run_dir, payload["data_root"], device, export, each(i, config), payload["eval_batch_size"], board(i)
            )
    return [out[i] for i in range(len(payload["trials"]))]


def _train_seeds(
    payload: Payload,
    pending: list[tuple[int, TrialConfig]],
    device: Any,
    each: Callable[[int, TrialConfig], Callable[[dict[str, Any]], None] | None],
    board: Callable[[int], Path | None],
) -> dict[int, dict[str, Any]]:
    """Train a group's unfinished seeds together (batched where :func:`~kdtune.train.batched.batchable`, else one
    after another, said once in the log); raises the first seed's error after finishing the others."""
    from kdtune.train.batched import batchable, train_together
    from kdtune.train.trainer import Trainer, epoch_board, record_epoch

    run_dir = Path(payload["run_dir"])
    trainers = [Trainer(config, run_dir, payload["data_root"], device, payload["eval_batch_size"]) for _, config in pending]
    boards = [epoch_board(b) if (b := board(i)) is not None else None for i, _ in pending]
    callbacks = [each(i, config) for i, config in pending]
    try:
        if batchable(trainers):
            results = train_together(
                trainers,
                lambda j, row: record_epoch(row, boards[j], callbacks[j]),
                lambda j: trainers[j].finish(payload["trials"][pending[j][0]]["export_train_logits"]),
            )
        else:
            results = []
            for j, trainer in enumerate(trainers):
                while not trainer.done:
                    record_epoch(trainer.train_epoch(), boards[j], callbacks[j])
                results.append(trainer.finish(payload["trials"][pending[j][0]]["export_train_logits"]))
    finally:
        for b in boards:
            if b is not None:
                b.close()
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
    return {i: r for (i, _), r in zip(pending, results, strict=True)}  # type: ignore[misc]


def _epoch_result(row: dict[str, Any]) -> dict[str, Any]:
    """The intermediate result of an epoch (``run_group``'s row) that the driver's listeners read."""
    history = {k: v for k, v in row.items() if k not in ("trial_index", "epochs")}  # the trial's history row (trackers)
    return {
        **{k: row[k] for k in ("trial_index", "epoch", "epochs")},
        "epoch_val_accuracy": row["val_accuracy"],
        "epoch_train_loss": row["train_loss"],
        "history_row": history,
    }


def tune_trainable(config: dict[str, Any]) -> None:
    """The Ray Tune function trainable: trains one group, reporting after every epoch (:func:`_epoch_result`); its
    last report holds the group's validation means (``val_accuracy``, ``val_nll``, ``val_ece``) and ``trials``."""
    from ray import tune

    from kdtune.train.trainer import summarize

    tune.report(summarize(run_group(config["group"], lambda row: tune.report(_epoch_result(row)))))


class _Interrupts:
    """kdtune's SIGINT handler while an executor runs. ``defer`` (Ray): the first Ctrl-C takes effect at the
    next :meth:`check` (the Tune loop checks 10 times a second), not inside Ray's own code, where a
    KeyboardInterrupt can be swallowed; a second one at once, except while :meth:`held` (Ray starting its
    processes, which an interrupt would leave half-started). Without ``defer``: at once. Once
    :attr:`stopping`, Ctrl-C is ignored (Ray shuts down, the process exits)."""

    def __init__(self, defer: bool) -> None:
        self.defer, self.requested, self.stopping, self.holding = defer, False, False, False
        self.previous: Any = None

    def install(self) -> None:
        """Become the SIGINT handler (only the main thread may set one)."""
        self.requested = self.stopping = False
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Within: every Ctrl-C waits for the next :meth:`check`."""
        self.holding = True
        try:
            yield
        finally:
            self.holding = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stopping:
            return
        first, self.requested = not self.requested, True
        if not (self.holding or (self.defer and first)):
            raise KeyboardInterrupt

    def check(self) -> None:
        """A safe point: raise the KeyboardInterrupt of a deferred Ctrl-C."""
        if self.requested and not self.stopping:
            raise KeyboardInterrupt

    def release(self, exc_type: type[BaseException] | None) -> None:
        """The executor exits: after a Ctrl-C, ignore more of them until the process ends; else restore the handler."""
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.stopping = True
        elif self.previous is not None and signal.getsignal(signal.SIGINT) == self._handle:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None


@contextlib.contextmanager
def run_log(run_dir: Path) -> Iterator[Path]:
    """Send log records (kdtune's, and Ray's once :class:`RayExecutor` redirects them) to ``RUN/logs/<time>-run.log``."""
    path = Path(run_dir) / "logs" / f"{time.strftime('%Y%m%d-%H%M%S')}-run.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    kdtune_logger = logging.getLogger("kdtune")
    level = kdtune_logger.level
    kdtune_logger.setLevel(logging.INFO)
    logging.getLogger().addHandler(handler)
    try:
        yield path
    finally:
        logging.getLogger().removeHandler(handler)
        kdtune_logger.setLevel(level)
        handler.close()


class InlineExecutor:
    """Run groups sequentially in this process (no Ray): for debugging and small tests."""

    name = "inline"

    def __init__(self) -> None:
        self._interrupts = _Interrupts(defer=False)

    def __enter__(self) -> InlineExecutor:
        self._interrupts.install()
        return self

    def __exit__(self, exc_type: type[BaseException] | None = None, *exc: object) -> None:
        self._interrupts.release(exc_type)

    def check_storage(self, run_dir: Path, data_root: Path | None) -> None:
        """Nothing to check: one process, one machine."""

    def run_stages(self, stages: Stages) -> None:
        """Run every stage's groups one after another, telling the listeners what Ray Tune's callback would."""
        while True:
            errors: dict[str, str] = {}
            completed: set[str] = set()
            listeners = _listeners(stages, errors)
            for p in stages.start(self.name):
                trial = SimpleNamespace(config={"group": p}, last_result=None)  # what the listeners read of a Tune trial
                tell(listeners, "trial_start", trial)
                try:
                    results = run_group(p, lambda row: tell(listeners, "result", trial, _epoch_result(row)))  # noqa: B023
                except Exception as e:  # one failing group must not stop the others
                    logger.error("group %s failed", p["name"], exc_info=True)
                    tell(listeners, "failed", trial, error_line(e))
                else:
                    completed.add(p["name"])
                    accuracies = ", ".join(f"{r['eval']['val']['accuracy']:.3f}" for r in results)
                    trial.last_result = {"line": "val accuracy " + accuracies}
                    tell(listeners, "complete", trial)
            stages.end(errors, completed)
            if not stages.find():
                return


def _listeners(stages: Stages, errors: dict[str, str], searcher: Any = None) -> list[Listener]:
    """The listeners of a run's events: the progress display (and ``errors``, group → error) and the trackers, if any."""
    out: list[Listener] = [_StageEvents(stages.progress, errors, searcher)]
    if stages.trackers is not None:
        from kdtune.run.trackers import HubEvents

        out.append(HubEvents(stages.trackers))
    return out


class _StageEvents(Listener):
    """A sweep's stages as they run: the searcher (Ray Tune) synced before each step, the progress display fed from
    trial events and epoch reports, failed groups' errors kept (group name → error)."""

    def __init__(self, progress: Progress | None, errors: dict[str, str], searcher: Any) -> None:
        assert progress is not None  # execute opens the display before any stage runs
        self.progress, self.errors, self.searcher = progress, errors, searcher

    def step_begin(self, trials: list[Any]) -> None:
        self.searcher.sync(trials)

    def step_end(self) -> None:
        self.progress.tick()

    def trial_start(self, trial: Any) -> None:
        self.progress.group_started(trial.config["group"]["name"])

    def result(self, trial: Any, result: dict[str, Any]) -> None:
        if "trial_index" in result:
            self.progress.epoch_done(trial.config["group"]["name"], int(result["trial_index"]), int(result["epoch"]))

    def complete(self, trial: Any) -> None:
        r = trial.last_result or {}
        acc = r.get("val_accuracy")
        text = r.get("line") or (f"mean val accuracy {acc:.3f}" if acc is not None else "done")  # "line": the inline executor's
        self.progress.group_finished(trial.config["group"]["name"], text)

    def recover(self, trial: Any, error: str) -> None:
        self.progress.group_retried(trial.config["group"]["name"], error)

    def failed(self, trial: Any, error: str) -> None:
        self.errors[trial.config["group"]["name"]] = error
        self.progress.group_failed(trial.config["group"]["name"], error)


def _causes(error: BaseException | str | None, limit: int) -> Iterator[BaseException | str]:
    """``error`` and its causes (``__cause__``, else ``__context__``), at most ``limit`` of them."""
    for _ in range(limit):
        if error is None:
            return
        yield error
        error = error.__cause__ or error.__context__ if isinstance(error, BaseException) else None


AUTH_HINT = (
    "set RAY_AUTH_MODE=token and the head's token (RAY_AUTH_TOKEN=<token>, or the file ~/.ray/auth_token "
    "or $RAY_AUTH_TOKEN_PATH; `ray get-auth-token` on the head prints it)"
)


def _join_error(address: str, error: BaseException) -> JoinError:
    """The one-line :class:`JoinError` of a failure to join: why authentication failed, if ``error`` (or one of its
    causes) is an authentication failure, else the error's last line."""
    text = "\n".join(f"{type(cause).__name__}: {cause}" for cause in _causes(error, 10))
    if "AuthenticationError" not in text and "InvalidAuthToken" not in text:
        return JoinError(f"cannot join the Ray cluster at {address}: {last_line(error)}")
    mode = os.environ.get("RAY_AUTH_MODE", "")
    if mode.lower() != "token":
        why = f"RAY_AUTH_MODE is {mode!r}" if mode else "RAY_AUTH_MODE is not set"
    elif "no authentication token was found" in text:
        why = "no token found"
    else:
        why = "the cluster refused this token"
    return JoinError(f"cannot join the Ray cluster at {address}: authentication failed ({why}): {AUTH_HINT}")


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Ray's C++ code writes warnings straight to file descriptor 2: send them nowhere while within."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def check_join(address: str) -> None:
    """Before anything is written: a ``host:port`` that nothing answers at, or whose GCS refuses this process's
    authentication, is a one-line :class:`JoinError` in a second (``ray.init`` would retry for 20 s and say
    "Failed to connect"). Other addresses ("auto", "ray://…") and other failures are left to ``ray.init``."""
    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return  # "auto", "ray://…": Ray resolves these itself
    try:  # fail fast on a host:port nobody listens on (Ray itself retries for minutes)
        socket.create_connection((host, int(port)), timeout=5.0).close()
    except OSError as e:
        raise JoinError(f"cannot join the Ray cluster at {address}: nothing answers there ({e.strerror or e})") from None
    import ray
    from ray._raylet import GcsClient

    try:
        try:  # RAY_AUTH_MODE=token without any token: ray.init's own check (a GCS client would exit the process)
            from ray._private.authentication.authentication_token_setup import ensure_token_if_auth_enabled
        except ImportError:  # pragma: no cover - another Ray version
            pass
        else:
            ensure_token_if_auth_enabled(None, create_token_if_missing=False)
        with _quiet_stderr():
            GcsClient(address=address)
    except ray.exceptions.AuthenticationError as e:
        raise _join_error(address, e) from None
    except Exception:  # not this check's to judge: ray.init says what is wrong
        logger.info("GCS check of %s failed", address, exc_info=True)


STORAGE_TIMEOUT = 120.0  # seconds a node has to answer the shared-storage check


def _seen_as(path: str) -> Path:
    """``path`` as the storage check on this node looks for it (``KDTUNE_FAULT=view:FOLDER`` puts it under FOLDER)."""
    view = next((f[5:] for f in os.environ.get("KDTUNE_FAULT", "").split(",") if f.strip().startswith("view:")), None)
    return Path(view.strip() + path) if view else Path(path)


def _listing(folder: Path) -> list[tuple[str, int]] | None:
    """(name, size) of a folder's entries, sorted; None if it is not a readable folder."""
    try:
        return sorted((e.name, e.stat().st_size if e.is_file() else -1) for e in os.scandir(folder))
    except OSError:
        return None


def _storage_view(marker: str, data_root: str | None) -> dict[str, Any]:
    """Ray task body (on one node): the marker's content as seen here, and the data folder's listing."""
    try:
        token: str | None = _seen_as(marker).read_text()
    except OSError:
        token = None
    return {"token": token, "data": _listing(_seen_as(data_root)) if data_root else None, "host": socket.gethostname()}


def check_shared_storage(run_dir: Path, data_root: Path | None, timeout: float = STORAGE_TIMEOUT) -> int:
    """Check that every alive Ray node sees ``run_dir`` and ``data_root`` as this machine does; a one-line
    :class:`KdtuneError` naming the first node that does not. Returns how many were checked."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if not nodes:
        return 0
    run_dir, data = Path(run_dir).resolve(), Path(data_root).resolve() if data_root else None
    token = uuid.uuid4().hex
    marker = run_dir / f".kdtune-storage-{token[:12]}"
    marker.write_text(token)
    expected = _listing(data) if data else None
    view = ray.remote(num_cpus=0, max_retries=0)(_storage_view)
    tail = "; the run folder and data folder must be on storage every node mounts at the same path"
    try:
        refs = {
            n["NodeID"]: view.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
                str(marker), str(data) if data else None
            )
            for n in nodes
        }
        for n in nodes:
            node = f"node {n['NodeID']} (host {n.get('NodeManagerHostname', '?')})"
            try:
                got = ray.get(refs[n["NodeID"]], timeout=timeout)
            except ray.exceptions.GetTimeoutError:
                raise KdtuneError(f"cannot use {node}: it did not answer the shared-storage check in {timeout:g} s") from None
            except ray.exceptions.RayError as e:
                raise KdtuneError(f"cannot use {node}: the shared-storage check failed there ({error_line(e)})") from None
            if got["token"] != token:
                what, why = f"run folder {run_dir}", "marker missing" if got["token"] is None else "marker holds another token"
            elif data is not None and got["data"] != expected:
                what, why = f"data folder {data}", "missing" if got["data"] is None else "its files differ"
            else:
                continue
            raise KdtuneError(f"cannot use {node}: it does not see the {what} as this machine does ({why}){tail}")
    finally:
        marker.unlink(missing_ok=True)
    return len(nodes)


WATCH_INTERVAL = 0.25  # seconds between two checks that the Ray instance still lives


def _log_ray_message(data: dict[str, Any], *args: Any, **kwargs: Any) -> None:
    """Ray's messages to the driver (e.g. a dead raylet's last log lines) go to the run log, not the terminal."""
    for line in data.get("lines", []):
        logger.warning("(%s) %s", data.get("pid", "ray"), line)


@contextlib.contextmanager
def _ray_logs_to_run_log() -> Iterator[None]:
    """Within: Ray's loggers write to no terminal, their records going up to the root logger (the run log), and
    Ray's messages to the driver go there too (:func:`_log_ray_message`)."""
    import ray._private.worker

    saved: list[tuple[logging.Logger, list[logging.Handler], bool]] = []
    names = ["ray", *(n for n in logging.root.manager.loggerDict if n.startswith("ray."))]
    for lg in map(logging.getLogger, names):
        if lg.handlers or not lg.propagate:
            saved.append((lg, list(lg.handlers), lg.propagate))
            # a stream handler writes to the terminal, a file handler (a subclass) to its file
            lg.handlers = [
                h for h in lg.handlers if isinstance(h, logging.FileHandler) or not isinstance(h, logging.StreamHandler)
            ]
            lg.propagate = True
    printer = ray._private.worker.print_to_stdstream
    ray._private.worker.print_to_stdstream = _log_ray_message
    try:
        yield
    finally:
        for lg, handlers, propagate in saved:
            lg.handlers, lg.propagate = handlers, propagate
        ray._private.worker.print_to_stdstream = printer


# Ray prestarts one idle worker per CPU for the first driver, with the job's (empty) runtime environment;
# Tune starts its trial actors with a runtime environment of their own (env_vars PL_DISABLE_FORK), so
# they never land in those workers, which only compete for the CPUs while the first trials start
_LOCAL_SYSTEM_CONFIG = {"prestart_worker_first_driver": False}
_RAY_ENV = {  # set unless set already
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # no per-trial CSV/JSON/TensorBoard files
    "RAY_AIR_NEW_OUTPUT": "0",  # with verbose=0: no progress tables
    "TUNE_MAX_PENDING_TRIALS_PG": "16",
    # Ray replaces builtins.print when a worker dies (its tqdm support), and a later Tuner in this process
    # (kdtune tune's search after its teachers) then fails to pickle the progress display's print
    "RAY_TQDM_PATCH_PRINT": "0",
}


class RayExecutor:
    """Run the stages in one Ray Tune ``Tuner`` on a local Ray instance or the cluster at ``address``."""

    name = "ray"

    def __init__(
        self, address: str | None, cpu: float, gpu: float, max_concurrent: int | None, max_failures: int, storage: Path
    ) -> None:
        self.address, self.cpu, self.gpu = address, cpu, gpu
        self.max_concurrent, self.max_failures, self.storage = max_concurrent, max_failures, storage
        self._started = False
        self._interrupts = _Interrupts(defer=True)
        self.died: str | None = None  # why the Ray instance died under the run (the watchdog's finding)
        self._watch_stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._ray_logs = contextlib.ExitStack()  # Ray's logs sent to the run log (:func:`_ray_logs_to_run_log`) until close()
        # keep a local Ray instance up after a clean exit until close(), so that `kdtune run` prints its
        # results before the second or so that ray.shutdown takes
        self.linger = False

    def __enter__(self) -> RayExecutor:
        for key, value in _RAY_ENV.items():
            os.environ.setdefault(key, value)
        # Ray Tune's own SIGINT handler would end a stage gracefully (slowly, advising Tuner.restore) and let
        # the next one start; kdtune's stops the whole run at once instead
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        self._interrupts.install()
        import ray
        import ray.tune  # sets up Ray's loggers before they are redirected

        self._ray_logs.enter_context(_ray_logs_to_run_log())
        try:
            if not ray.is_initialized():
                # workers' own output stays in Ray's log files; failures are reported per trial below
                kwargs: dict[str, Any] = {"configure_logging": False, "log_to_driver": False}
                self._started = True
                if self.address:  # workers run the driver's own kdtune, whatever is installed on the nodes
                    check_join(self.address)
                    runtime_env: dict[str, Any] = {"py_modules": [str(Path(__file__).resolve().parents[1])]}
                    if os.environ.get("KDTUNE_FAULT"):  # the test-only fault switch reaches every node's workers
                        runtime_env["env_vars"] = {"KDTUNE_FAULT": os.environ["KDTUNE_FAULT"]}
                    try:
                        with self._interrupts.held():
                            ray.init(address=self.address, runtime_env=runtime_env, **kwargs)
                    except (ConnectionError, RuntimeError, ValueError, SystemExit, ray.exceptions.RayError) as e:
                        raise _join_error(self.address, e) from None
                else:  # a fresh local instance (never a stale one from /tmp/ray), no dashboard, small object store
                    kwargs["_system_config"] = _LOCAL_SYSTEM_CONFIG.copy()  # ray.init adds to the dict it is given
                    with self._interrupts.held():
                        ray.init(address="local", include_dashboard=False, object_store_memory=256 * 1024**2, **kwargs)
            self._start_watchdog()
            self._interrupts.check()
            have = ray.cluster_resources()
            for key, need in (("CPU", self.cpu), ("GPU", self.gpu)):
                if need > have.get(key, 0):
                    where = f"the Ray cluster at {self.address}" if self.address else "this machine's local Ray instance"
                    hint = " (on a CPU-only machine: --set resources.gpu=0)" if key == "GPU" else ""
                    raise KdtuneError(
                        f"resources.{key.lower()}={need:g} per trial but {where} has {have.get(key, 0):g} {key}s{hint}"
                    )
        except BaseException as e:  # not entered: shut down what started
            self.__exit__(type(e))
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None = None, *exc: object) -> None:
        self._stop_watchdog()  # before Ctrl-C is handled as usual again: the watchdog may send one
        interrupted = exc_type is not None and issubclass(exc_type, KeyboardInterrupt)
        if interrupted:
            self._interrupts.release(exc_type)  # first: a second Ctrl-C must not stop the shutdown
        if not (self.linger and exc_type is None and self._started):
            self.close()
        if not interrupted:
            self._interrupts.release(exc_type)

    def close(self) -> None:
        """Shut down the Ray instance this executor started (if still up) and give Ray's loggers back."""
        self._stop_watchdog()
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
        self._ray_logs.close()

    def _liveness(self) -> Callable[[], str | None]:
        """A check that returns why the Ray instance is dead, or None while it lives: for the local instance,
        whether its raylet and GCS processes (this process's children) still run; on a cluster, whether the
        GCS still accepts connections (a refusal, twice in a row: nothing listens there any more)."""
        import ray

        node = getattr(ray._private.worker, "_global_node", None)
        if node is None:
            return lambda: None
        if not self.address:
            procs = [(name, info.process) for name in ("raylet", "gcs_server") for info in node.all_processes.get(name, [])]

            def local() -> str | None:
                for name, proc in procs:
                    if proc.poll() is not None:  # reaps it: a killed child stays a zombie until then
                        code = proc.returncode
                        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
                        return f"its {name} process {proc.pid} ended, {how}"
                return None

            return local
        host, _, port = str(node.gcs_address).rpartition(":")
        refused = [0]

        def cluster() -> str | None:
            try:
                socket.create_connection((host, int(port)), timeout=2).close()
                refused[0] = 0
            except ConnectionRefusedError:
                refused[0] += 1
            except OSError:  # a slow network is not a death
                pass
            return f"its GCS at {host}:{port} refuses connections" if refused[0] >= 2 else None

        return cluster

    def _start_watchdog(self) -> None:
        """Watch the Ray instance from a thread: when it dies, stop the run as a Ctrl-C would (at the Tune loop's
        next check, or with a SIGINT if that loop is stuck in Ray for 3 s) and remember why in :attr:`died`."""
        alive = self._liveness()
        self.died = None
        self._watch_stop = stop = threading.Event()

        def watch() -> None:
            while not stop.wait(WATCH_INTERVAL):
                try:
                    reason = alive()
                except Exception:  # the watchdog must never stop a run by itself
                    logger.warning("Ray watchdog check failed", exc_info=True)
                    continue
                if reason is None:
                    continue
                self.died = reason
                logger.error("the Ray instance died: %s", reason)
                self._interrupts.requested = True
                if not stop.wait(3.0):
                    os.kill(os.getpid(), signal.SIGINT)  # a second "Ctrl-C": raised at once
                return

        self._watchdog = threading.Thread(target=watch, name="kdtune-ray-watchdog", daemon=True)
        self._watchdog.start()

    def _stop_watchdog(self) -> None:
        self._watch_stop.set()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(timeout=5)
        self._watchdog = None

    def check_storage(self, run_dir: Path, data_root: Path | None) -> None:
        """Refuse a cluster node that does not see the run and data folders as this machine does (with
        ``--address`` only: the local instance is this machine)."""
        if not self.address:
            return
        with self._interrupts.held():
            n = check_shared_storage(run_dir, data_root)
        self._interrupts.check()
        if n:
            logger.info("shared storage: %d node(s) see %s as this machine does", n, run_dir)

    @classmethod
    def for_sweep(cls, spec: SweepSpec, address: str | None) -> RayExecutor:
        """The executor of a sweep's trials: its resources, concurrency and retries; Ray's files in ``RUN/ray``."""
        ex = spec.execution
        return cls(
            address, spec.resources.cpu, spec.resources.gpu, ex.max_concurrent_trials, ex.max_failures, spec.output / "ray"
        )

    def check_interrupt(self) -> None:
        """A safe point for a deferred Ctrl-C (Tune callbacks call it after every step of Tune's loop)."""
        self._interrupts.check()

    def run_stages(self, stages: Stages) -> None:
        """Run every stage in ONE Ray Tune ``Tuner``: a searcher hands out a stage's groups and the next
        stage's once the last has ended, so workers (with their imports and data) are reused across stages
        instead of started again."""
        from ray import tune
        from ray.tune.logger import JsonLoggerCallback

        errors: dict[str, str] = {}
        searcher = _stage_searcher(stages, self.name, errors)
        callbacks = [tune_callback(_listeners(stages, errors, searcher), self._interrupts.check), JsonLoggerCallback()]
        tuner = tune.Tuner(
            tune.with_resources(tune_trainable, {"cpu": self.cpu, "gpu": self.gpu}),
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                num_samples=stages.groups_left(),
                reuse_actors=True,
                max_concurrent_trials=self.max_concurrent,
                trial_name_creator=lambda t: t.config["group"]["name"],
                trial_dirname_creator=lambda t: t.config["group"]["name"],
            ),
            run_config=tune.RunConfig(
                name="trials",
                storage_path=str(self.storage.resolve()),
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=self.max_failures, fail_fast=False),
                callbacks=callbacks,
            ),
        )
        self._interrupts.check()
        with _idle_workers_kept(searcher.idle_to_keep):
            tuner.fit()
        self._interrupts.check()  # a Ctrl-C after the loop's last check
        # Tune stops asking once it has made num_samples trials: on a fresh run the last stage ends here
        if searcher.running:
            stages.end(errors, searcher.completed, searcher.last_end)  # its time without Tune's shutdown
        stages.abandon("not run: Ray Tune stopped before its stage")  # nothing, unless Tune ended early


@contextlib.contextmanager
def _idle_workers_kept(keep: Callable[[], int]) -> Iterator[None]:
    """While a stage waits for its last groups, keep up to ``keep()`` idle Tune workers for the next stage.

    Ray Tune's actor cache keeps at most ONE idle actor while no trial is pending, so the next stage would start
    new actors (seconds each: a process, torch), and with short trials the one kept actor would take them all.
    ``keep()``: the groups the next stage may run (0 in the last stage: Tune's own rule). Patches the cache class
    Tune's controller instantiates, for this ``fit`` only; with other Ray internals than 2.60's, nothing."""
    try:
        from ray.tune.execution import tune_controller
        from ray.tune.utils.object_cache import _ObjectCache
    except ImportError:  # pragma: no cover - another Ray version
        tune_controller = None
    if tune_controller is None or getattr(tune_controller, "_ObjectCache", None) is not _ObjectCache:
        yield
        return

    class KeepIdle(_ObjectCache):
        def cache_object(self, key: Any, obj: Any) -> bool:
            if super().cache_object(key, obj):
                return True
            if self._num_cached_objects >= keep():
                return False
            self._cached_objects[key].append(obj)
            self._num_cached_objects += 1
            return True

        def flush_cached_objects(self, force_all: bool = False) -> Iterator[Any]:
            wanted = 0 if force_all else keep()
            if wanted == 0:
                yield from super().flush_cached_objects(force_all=force_all)
                return
            wanted = max(wanted, self.total_max_objects)
            for objs in self._cached_objects.values():  # the oldest first, down to what the next stage can use
                while self._num_cached_objects > wanted and objs:
                    self._num_cached_objects -= 1
                    yield objs.pop(0)

    tune_controller._ObjectCache = KeepIdle  # type: ignore[attr-defined]
    try:
        yield
    finally:
        tune_controller._ObjectCache = _ObjectCache  # type: ignore[attr-defined]


def _stage_searcher(stages: Stages, executor_name: str, errors: dict[str, str]) -> Any:
    """A :class:`ray.tune.search.Searcher` over ``stages`` (its class is made here: Ray is imported late)."""
    from ray.tune.search import Searcher

    class StageSearcher(Searcher):
        """Hands Ray Tune the groups of one stage at a time; when a stage's groups have all ended, it ends the
        stage (:meth:`Stages.end`) and starts the next one's, or says the search is finished. Which groups
        still run is a set of Tune trial ids: removed when Tune says a trial completed (once or twice) and,
        through :meth:`sync`, when Tune's own trial states say it ended (a failed actor reset ends a trial
        without telling the searcher)."""

        def __init__(self, stages: Stages, executor_name: str, errors: dict[str, str]) -> None:
            super().__init__()
            self.stages, self.executor_name, self.errors = stages, executor_name, errors
            self.queue: list[Payload] = list(stages.start(executor_name))
            self.live: dict[str, str] = {}  # Tune trial id -> group name, of the groups handed out and not ended
            self.completed: set[str] = set()  # groups that ended without error (in this stage)
            self.running = True  # a stage is started and not ended
            self.last_end: float | None = None  # when the last group handed out ended (time.perf_counter)

        def __getstate__(self) -> dict[str, Any]:  # Tune pickles its search algorithm; kdtune resumes from the run folder
            return {}

        def idle_to_keep(self) -> int:
            """Idle workers worth keeping: while the stage's last groups run, as many as the next stage may use."""
            return self.stages.next_stage_groups() if self.running and not self.queue else 0

        def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
            if self.queue:
                payload = self.queue.pop(0)
                self.live[trial_id] = payload["name"]
                return {"group": payload}
            if self.live:  # wait for the stage's last groups
                return None
            if self.running:
                self.stages.end(self.errors, self.completed)
                self.running, self.completed = False, set()
            if not self.stages.find():
                return Searcher.FINISHED
            self.queue, self.running = list(self.stages.start(self.executor_name)), True
            return self.suggest(trial_id)

        def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
            name = self.live.pop(trial_id, None)
            if name is not None and not error:
                self.completed.add(name)
            if name is not None and not self.live:
                self.last_end = time.perf_counter()

        def sync(self, trials: list[Any]) -> None:
            """Forget groups whose Tune trials have ended, told or not (called at every step of Tune's loop)."""
            for trial in trials:
                if trial.trial_id in self.live and trial.is_finished():
                    self.on_trial_complete(trial.trial_id, error=trial.status != "TERMINATED")

        def save(self, checkpoint_path: str) -> None:
            """Nothing to save: a run resumes from its run folder, not from Tune's experiment state."""

        def restore(self, checkpoint_path: str) -> None:
            """Nothing to restore (see :meth:`save`)."""

    return StageSearcher(stages, executor_name, errors)


def unfinished_groups(
    plan: Plan, stage: list[TrialGroup], run_dir: Path, done: set[str] | frozenset[str] = frozenset()
) -> tuple[list[TrialGroup], list[TrialGroup]]:
    """(groups with work to do, groups blocked because a teacher did not finish) of one stage; ``done``: ids
    known to have finished (their groups ended without error in this run) whatever the file system says yet."""

    def finished(tid: str) -> bool:
        return tid in done or is_finished(run_dir, tid)

    todo, blocked = [], []
    for g in stage:
        pending = tuple(t for t in g.trials if not finished(t.id))
        if not pending:
            continue
        if any(t.config.teacher_id and not finished(t.config.teacher_id) for t in pending):
            blocked.append(TrialGroup(pending))
        else:
            todo.append(TrialGroup(pending))
    return todo, blocked


def _n_trials(groups: list[TrialGroup]) -> int:
    return sum(len(g.trials) for g in groups)


def plural(n: int, word: str) -> str:
    """``1 trial``, ``2 trials``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def quarantine_damaged(plan: Plan, run_dir: Path, log: Callable[[str], None]) -> list[str]:
    """Check the checksums of every finished trial the plan would reuse; move a damaged one, and every
    finished trial that learnt from it, to ``<run>/damaged/`` so they are trained again. Returns their ids."""
    damaged: list[str] = []
    for tid in plan.trials:
        if not is_finished(run_dir, tid):
            continue
        problem = check_trial(run_dir, tid)
        if problem is None:
            continue
        students: list[str] = []
        frontier = [tid]
        configs = finished_trials(run_dir)
        while frontier:
            parent = frontier.pop()
            kids = [k for k, c in configs.items() if (c.get("config") or {}).get("teacher_id") == parent and k not in students]
            students += kids
            frontier += kids
        tail = f", with the {plural(len(students), 'trial')} distilled from it" if students else ""
        log(f"damaged: {problem}; trial {tid} will be trained again{tail} (old files in {run_dir / 'damaged'})")
        for t in [tid, *students]:
            quarantine(run_dir, t)
            damaged.append(t)
    return damaged


class Stages:
    """The plan's stages as the executor runs them: each stage's unfinished groups are worked out only when
    the stage before it has ended (a student needs its teacher's files), and each start and end is logged
    and shown in the progress display. Failures (and students skipped for a failed teacher) go to ``failures``."""

    def __init__(self, plan: Plan, log: Callable[[str], None], failures: dict[str, str]) -> None:
        self.plan, self.log, self.failures = plan, log, failures
        self.run_dir = plan.spec.output
        self.progress: Progress | None = None
        self.trackers: TrackerHub | None = None  # the sweep's experiment trackers (kdtune.run.trackers), if any
        self.stage = 0  # the stage found or running (1-based); 0 before the first
        self.errored = False  # a group of some stage failed
        # trials of groups that ended without error in this run: finished, even where a shared file system
        # (NFS) does not show the driver their files yet, moments after a worker on another node wrote them
        self.done: set[str] = set()
        self._todo: list[TrialGroup] = []
        self._n_done = 0
        self._start = 0.0

    def find(self) -> bool:
        """Move on to the next stage with groups to run (logging the stages with none); False when there is none."""
        while self.stage < len(self.plan.stages):
            self.stage += 1
            stage = self.plan.stages[self.stage - 1]
            todo, blocked = unfinished_groups(self.plan, stage, self.run_dir, self.done)
            self.failures |= {t.id: f"skipped: teacher {t.config.teacher_id} did not finish" for g in blocked for t in g.trials}
            n_all, n_blocked = _n_trials(stage), _n_trials(blocked)
            self._n_done = n_all - _n_trials(todo) - n_blocked
            if todo:
                self._todo = todo
                return True
            done = f"{self._n_done} of {plural(n_all, 'trial')}" if n_blocked else plural(n_all, "trial")
            skipped = f", {n_blocked} skipped)" if n_blocked else ")"
            self.log(f"stage {self.stage}: nothing to run ({done} already finished{skipped}")
        return False

    def next_stage_groups(self) -> int:
        """How many groups the stage after the current one has (an upper bound on what it will run), 0 if none."""
        return len(self.plan.stages[self.stage]) if self.stage < len(self.plan.stages) else 0

    def abandon(self, reason: str) -> None:
        """Record every trial of the stages not yet run as failed with ``reason`` (the executor stopped early)."""
        while self.find():
            self.failures |= {t.id: reason for g in self._todo for t in g.trials}
            self._todo = []

    def groups_left(self) -> int:
        """An upper bound on the groups still to run: every group of the found stage and of those after it."""
        return sum(len(stage) for stage in self.plan.stages[max(0, self.stage - 1) :])

    def start(self, executor_name: str) -> list[Payload]:
        """Start the stage :meth:`find` found: log it, show it, and return its groups' payloads."""
        spec, todo = self.plan.spec, self._todo
        n_all = _n_trials(self.plan.stages[self.stage - 1])
        where = f"in {plural(len(todo), 'group')} on {executor_name}"
        done = f" ({self._n_done} already finished)" if self._n_done else ""
        self.log(f"stage {self.stage}: {_n_trials(todo)} of {plural(n_all, 'trial')} to run, {where}{done}")
        payloads = [group_payload(self.plan, g, self.run_dir, spec.data_root) for g in todo]
        if self.progress is not None:
            epochs = {p["name"]: [(t["id"], t["config"]["train"]["epochs"]) for t in p["trials"]] for p in payloads}
            self.progress.start_stage(self.stage, epochs)
        self._start = time.perf_counter()
        return payloads

    def end(self, errors: dict[str, str], completed: set[str] | frozenset[str] = frozenset(), at: float | None = None) -> None:
        """The started stage is over; ``errors`` maps failed groups' names to one-line reasons, ``completed``
        names the groups that ended without error (the executor's word: every trial of such a group committed);
        ``at``: when its last group ended (``time.perf_counter``), if before now."""
        seconds = (at or time.perf_counter()) - self._start
        if self.progress is not None:
            self.progress.end_stage()
        self.log(f"stage {self.stage}: finished in {seconds:.1f} s")
        for g in self._todo:
            failed = g.name in errors
            self.errored = self.errored or failed
            if g.name in completed and not failed:
                self.done.update(t.id for t in g.trials)
            for t in g.trials:
                if t.id not in self.done and not is_finished(self.run_dir, t.id):
                    self.failures[t.id] = errors.get(g.name, "did not finish")
        self._todo = []


def execute(
    plan: Plan, executor: InlineExecutor | RayExecutor, log: Callable[[str], None] = print, live: bool | None = None
) -> dict[str, str]:
    """Run every unfinished trial of ``plan``, stage by stage; returns {trial id: error} for failures. ``live``
    (default: printing to a terminal) draws a progress bar; Ctrl-C raises :class:`Interrupted`. Finished
    trials are reused only if their files pass their checksums."""
    spec = plan.spec
    run_dir = spec.output
    failures: dict[str, str] = {}
    if live is None:
        live = log is print and sys.stdout.isatty() and sys.stderr.isatty()
    log_path = None
    quarantine_damaged(plan, run_dir, log)
    stages = Stages(plan, log, failures)
    with contextlib.ExitStack() as stack:  # Ray, if started, is shut down whatever happens
        stack.push(functools.partial(_count_kept, plan, executor))  # runs last
        if plan.spec.trackers:  # synced with the run folder now, and again once Ray is shut down (whatever happens)
            from kdtune.run.trackers import open_trackers

            stages.trackers = stack.enter_context(open_trackers(plan))
        if stages.find():
            log_path = stack.enter_context(run_log(run_dir))
            stack.enter_context(executor)
            executor.check_storage(run_dir, spec.data_root)
            stages.progress = stack.enter_context(Progress(run_dir, log, live, len(plan.stages)))  # closed before Ray
            executor.run_stages(stages)
    if stages.errored:
        log(f"log with the full tracebacks: {log_path}")
    sys.stdout.flush()
    return failures


OOM_REASON = "out of memory: Ray's memory monitor killed a trial's worker"


def _is_ray_oom(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or its cause) is Ray's ``OutOfMemoryError`` (a worker killed for the node's memory)."""
    return any(type(e).__name__ == "OutOfMemoryError" and type(e).__module__.startswith("ray") for e in _causes(exc, 5))


def _count_kept(
    plan: Plan,
    executor: InlineExecutor | RayExecutor,
    exc_type: type[BaseException] | None,
    exc: BaseException | None,
    tb: TracebackType | None,
) -> bool:
    """Exit callback of :func:`execute`: a Ctrl-C becomes :class:`Interrupted`, the Ray instance's death
    :class:`RayDied`, counting the finished trials."""
    oom = _is_ray_oom(exc)  # Ray's memory monitor killed a worker: the driver's Tune loop raised
    if not oom and not (exc_type is not None and issubclass(exc_type, KeyboardInterrupt) and not isinstance(exc, Interrupted)):
        return False
    finished = sum(is_finished(plan.spec.output, tid) for tid in plan.trials)
    died = OOM_REASON if oom else getattr(executor, "died", None)
    raise (RayDied(finished, len(plan.trials), died) if died else Interrupted(finished, len(plan.trials))) from None
