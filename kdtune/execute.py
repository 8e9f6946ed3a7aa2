"""Run a plan: one Ray Tune ``Tuner`` per stage (a local Ray instance by default, or ``--address``).

Each Ray Tune trial is a :class:`~kdtune.plan.TrialGroup` (trials differing only in seed). Finished
trials are found in the run folder by id and skipped, which is also how an interrupted sweep
resumes. The ``inline`` executor runs groups one after another in this process, for debugging.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdtune.errors import KdtuneError
from kdtune.plan import Plan, TrialConfig, TrialGroup
from kdtune.rundir import METRICS, check_trial, finished_trials, is_finished, quarantine, read_json, trial_dir

Payload = dict[str, Any]


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
        "trials": [
            {"id": t.id, "config": t.config.to_dict(), "export_train_logits": t.id in plan.needs_train_logits}
            for t in group.trials
        ],
    }


def run_group(payload: Payload, on_epoch: Callable[[dict[str, float]], None] | None = None) -> list[dict[str, Any]]:
    """Worker side: train every unfinished trial of a group; returns each trial's metrics."""
    import torch

    from kdtune.train import resolve_device, train_trial

    torch.set_num_threads(max(1, int(payload["cpus"])))
    device = resolve_device(payload["device"])
    run_dir = Path(payload["run_dir"])
    out = []
    for t in payload["trials"]:
        if is_finished(run_dir, t["id"]):
            out.append(read_json(trial_dir(run_dir, t["id"]) / METRICS))
            continue
        config = TrialConfig.from_dict(t["config"])
        if config.id != t["id"]:
            raise RuntimeError(f"trial {t['id']}: config hashes to {config.id} on this worker (kdtune versions differ?)")
        out.append(
            train_trial(
                config, run_dir, payload["data_root"], device, t["export_train_logits"], on_epoch, payload["eval_batch_size"]
            )
        )
    return out


def tune_trainable(config: dict[str, Any]) -> None:
    """The Ray Tune function trainable: trains one group, reports its validation means."""
    from ray import tune

    from kdtune.train import summarize

    tune.report(summarize(run_group(config["group"])))


@dataclass
class StageOutcome:
    """What happened to a stage's groups: names that failed, with a one-line reason."""

    ran: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def _last_line(error: BaseException | str) -> str:
    lines = [ln.strip() for ln in str(error).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(error).__name__


class InlineExecutor:
    """Run groups sequentially in this process (no Ray): for debugging and small tests."""

    name = "inline"

    def __enter__(self) -> InlineExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def run_stage(self, stage: int, payloads: list[Payload], log: Callable[[str], None]) -> StageOutcome:
        outcome = StageOutcome(ran=len(payloads))
        start = time.perf_counter()
        for i, p in enumerate(payloads, 1):
            try:
                results = run_group(p)
                log(
                    f"  [{i}/{len(payloads)}] {p['name']}: val accuracy "
                    + ", ".join(f"{r['eval']['val']['accuracy']:.3f}" for r in results)
                )
            except Exception as e:  # one failing group must not stop the others
                outcome.errors[p["name"]] = f"{type(e).__name__}: {_last_line(e)}"
                log(f"  [{i}/{len(payloads)}] {p['name']}: FAILED {outcome.errors[p['name']]}")
        outcome.seconds = time.perf_counter() - start
        return outcome


def _progress_callback(total: int) -> Any:
    """A Ray Tune callback printing one line per finished group (picklable: no captured functions)."""
    from ray import tune

    class Progress(tune.Callback):
        def __init__(self) -> None:
            self.done = 0

        def _line(self, trial: Any, text: str) -> None:
            self.done += 1
            print(f"  [{self.done}/{total}] {trial.config['group']['name']}: {text}", flush=True)

        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            acc = (trial.last_result or {}).get("val_accuracy")
            self._line(trial, f"mean val accuracy {acc:.3f}" if acc is not None else "done")

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self._line(trial, "FAILED")

    return Progress()


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a ``host:port`` nobody listens on (Ray itself retries for minutes)."""
    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return  # "auto", "ray://…": Ray resolves these itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise KdtuneError(f"cannot join the Ray cluster at {address}: nothing answers there ({e.strerror or e})") from None


class RayExecutor:
    """Run each stage as one Ray Tune ``Tuner`` over its groups (grid search over payloads)."""

    name = "ray"

    def __init__(
        self, address: str | None, cpu: float, gpu: float, max_concurrent: int | None, max_failures: int, storage: Path
    ) -> None:
        self.address, self.cpu, self.gpu = address, cpu, gpu
        self.max_concurrent, self.max_failures, self.storage = max_concurrent, max_failures, storage
        self._started = False

    def __enter__(self) -> RayExecutor:
        os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no per-trial CSV/JSON/TensorBoard files
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no progress tables
        os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", "16")
        import ray

        if not ray.is_initialized():
            # workers' own output stays in Ray's log files; failures are reported per trial below
            kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
            if self.address:  # workers run the driver's own kdtune, whatever is installed on the nodes
                _check_reachable(self.address)
                runtime_env = {"py_modules": [str(Path(__file__).resolve().parent)]}
                try:
                    ray.init(address=self.address, runtime_env=runtime_env, **kwargs)
                except (ConnectionError, RuntimeError, ValueError, SystemExit) as e:
                    raise KdtuneError(f"cannot join the Ray cluster at {self.address}: {_last_line(e)}") from None
            else:  # a fresh local instance (never a stale one from /tmp/ray), no dashboard, small object store
                ray.init(address="local", include_dashboard=False, object_store_memory=256 * 1024**2, **kwargs)
            self._started = True
        have = ray.cluster_resources()
        for key, need in (("CPU", self.cpu), ("GPU", self.gpu)):
            if need > have.get(key, 0):
                self.__exit__()
                where = f"the Ray cluster at {self.address}" if self.address else "this machine's local Ray instance"
                hint = " (on a CPU-only machine: --set resources.gpu=0)" if key == "GPU" else ""
                raise KdtuneError(f"resources.{key.lower()}={need:g} per trial but {where} has {have.get(key, 0):g} {key}s{hint}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def run_stage(self, stage: int, payloads: list[Payload], log: Callable[[str], None]) -> StageOutcome:
        from ray import tune
        from ray.tune.logger import JsonLoggerCallback

        resources = {"cpu": self.cpu, "gpu": self.gpu}
        tuner = tune.Tuner(
            tune.with_resources(tune_trainable, resources),
            param_space={"group": tune.grid_search(payloads)},
            tune_config=tune.TuneConfig(
                reuse_actors=True,
                max_concurrent_trials=self.max_concurrent,
                trial_name_creator=lambda t: t.config["group"]["name"],
                trial_dirname_creator=lambda t: t.config["group"]["name"],
            ),
            run_config=tune.RunConfig(
                name=f"stage{stage}",
                storage_path=str(self.storage.resolve()),
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=self.max_failures, fail_fast=False),
                callbacks=[_progress_callback(len(payloads)), JsonLoggerCallback()],
            ),
        )
        start = time.perf_counter()
        grid = tuner.fit()
        outcome = StageOutcome(ran=len(payloads), seconds=time.perf_counter() - start)
        for result in grid:
            if result.error is not None:
                outcome.errors[result.config["group"]["name"]] = _last_line(result.error)
        return outcome


def unfinished_groups(plan: Plan, stage: list[TrialGroup], run_dir: Path) -> tuple[list[TrialGroup], list[TrialGroup]]:
    """(groups with work to do, groups blocked because a teacher did not finish) of one stage."""
    todo, blocked = [], []
    for g in stage:
        pending = tuple(t for t in g.trials if not is_finished(run_dir, t.id))
        if not pending:
            continue
        if any(t.config.teacher_id and not is_finished(run_dir, t.config.teacher_id) for t in pending):
            blocked.append(TrialGroup(pending))
        else:
            todo.append(TrialGroup(pending))
    return todo, blocked


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


def execute(plan: Plan, executor: InlineExecutor | RayExecutor, log: Callable[[str], None] = print) -> dict[str, str]:
    """Run every unfinished trial of ``plan``, stage by stage; returns {trial id: error} for failures.
    Finished trials are reused only if their files pass their checksums."""
    spec = plan.spec
    run_dir = spec.output
    failures: dict[str, str] = {}
    quarantine_damaged(plan, run_dir, log)
    with contextlib.ExitStack() as stack:  # Ray, if started, is shut down whatever happens
        started = False
        for k, stage in enumerate(plan.stages, 1):
            todo, blocked = unfinished_groups(plan, stage, run_dir)
            for g in blocked:
                for t in g.trials:
                    failures[t.id] = f"skipped: teacher {t.config.teacher_id} did not finish"
            n_all = sum(len(g.trials) for g in stage)
            n_done = n_all - sum(len(g.trials) for g in todo + blocked)
            if not todo:
                n_blocked = sum(len(g.trials) for g in blocked)
                done = f"{n_done} of {plural(n_all, 'trial')}" if n_blocked else plural(n_all, "trial")
                log(f"stage {k}: nothing to run ({done} already finished" + (f", {n_blocked} skipped)" if n_blocked else ")"))
                continue
            if not started:
                stack.enter_context(executor)
                started = True
            n_trials = sum(len(g.trials) for g in todo)
            log(
                f"stage {k}: {n_trials} of {plural(n_all, 'trial')} to run, in {plural(len(todo), 'group')} on {executor.name}"
                + (f" ({n_done} already finished)" if n_done else "")
            )
            payloads = [group_payload(plan, g, run_dir, spec.data_root) for g in todo]
            outcome = executor.run_stage(k, payloads, log)
            log(f"stage {k}: finished in {outcome.seconds:.1f} s")
            for g in todo:
                for t in g.trials:
                    if not is_finished(run_dir, t.id):
                        failures[t.id] = outcome.errors.get(g.name, "did not finish")
    sys.stdout.flush()
    return failures
