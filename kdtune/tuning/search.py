"""One search through Ray Tune: ``OptunaSearch`` (seeded TPE) proposes settings, each search trial
trains its k seeds in lockstep, epoch by epoch, and reports their mean validation metric after every
epoch (so ASHA can stop a bad configuration early) and once more at the end (the objective: the mean of
the seeds' selected models' validation metric). Each seed is an ordinary kdtune trial in the run folder,
found by id: a configuration already trained costs nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from kdtune.errors import KdtuneError
from kdtune.labels import LOSS_SETTINGS, NO_TEACHER, value_text
from kdtune.plan import Plan, make_plan
from kdtune.run.callbacks import Listener, tune_callback
from kdtune.run.execute import Interrupted
from kdtune.run.ledger import write_trials_record
from kdtune.run.trackers import search_callbacks, tag_best
from kdtune.rundir import METRICS, check_trial, is_finished, read_json, trial_dir
from kdtune.spec.sweepfile import SweepSpec
from kdtune.train.batched import SeedBatch, batchable
from kdtune.train.config import SearchSpace, TrialConfig, apply_values, tuned_name, tuned_path, write_tuned
from kdtune.train.trainer import Trainer, resolve_device
from kdtune.tuning import storage as studies

Payload = dict[str, Any]


@dataclass
class SearchSetup:
    """What a search needs, resolved from the sweep before any work."""

    spec: SweepSpec
    model: str
    teacher: str
    space: SearchSpace
    templates: list[TrialConfig]  # the untuned configuration, one per seed
    teachers: Plan | None  # stage 1 of the pair (the teachers' seeds), for a student search
    defaults: dict[str, Any]  # the untuned values of the searched settings that lie in the space

    @property
    def label(self) -> str:
        return self.model if self.teacher == NO_TEACHER else f"{self.model} as a student of {self.teacher}"


def _default_value(config: TrialConfig, setting: str) -> Any:
    if setting in LOSS_SETTINGS:
        return getattr(config.loss, setting)
    if setting.startswith("schedule."):
        return dict(config.train.schedule.params).get(setting.split(".", 1)[1])
    return getattr(config.train, setting)


def prepare(spec: SweepSpec, model: str, teacher: str = NO_TEACHER) -> SearchSetup:
    """Check that ``model`` (and ``teacher``) can be tuned with this sweep; plan the untuned configuration
    on ``tune.seeds`` seeds (the first value of every other grid axis) and, for students, their teachers."""
    if model not in spec.models:
        raise KdtuneError(f"--model {model}: not a model of {spec.source}; models: {', '.join(spec.models)}")
    if teacher != NO_TEACHER and teacher not in spec.models:
        raise KdtuneError(f"--teacher {teacher}: not a model of {spec.source}; models: {', '.join(spec.models)}")
    space = spec.tune.space_for(model, teacher)
    if space is None:
        key = model if teacher == NO_TEACHER else f"{teacher} -> {model}"
        raise KdtuneError(
            f"{spec.source}: no search space for {key} in tune.space; add e.g. "
            f"tune: {{space: {{{key!r}: {{lr: {{loguniform: [1.0e-4, 1.0e-2]}}}}}}}}"
        )
    grid = spec.grid
    axes = {k: getattr(grid, k) for k in ("temperature", "w_hard", "w_soft", "loss", "start", "stop")}
    sub = replace(
        spec,
        grid=replace(
            grid,
            pairs=((teacher, model),),
            seeds=tuple(range(spec.tune.seeds)),
            init_seeds=None,  # a search trains seeds 0..tune.seeds-1, whatever streams the sweep sets apart
            data_seeds=None,
            teacher_seed="same",
            train=tuple((k, v[:1]) for k, v in grid.train),
            **{k: None if v is None else v[:1] for k, v in axes.items()},  # the first value of every other axis
        ),
    )
    plan = make_plan(sub, skip_tuned={(model, teacher)})
    templates = sorted(
        (t.config for t in plan.trials.values() if t.student == model and t.teacher == teacher), key=lambda c: c.seed
    )
    teachers = None
    if teacher != NO_TEACHER:
        first = plan.stages[0]
        teachers = Plan(sub, [first], {t.id: t for g in first for t in g.trials}, set(plan.needs_train_logits))
    defaults = {k: _default_value(templates[0], k) for k, d in space.params if d.contains(_default_value(templates[0], k))}
    return SearchSetup(spec, model, teacher, space, templates, teachers, defaults)


def trial_configs(templates: list[TrialConfig], values: dict[str, Any]) -> list[TrialConfig]:
    """The k seed trials of one search trial: the templates with ``values`` put in."""
    out = []
    for t in templates:
        train, loss = apply_values(t.train, t.loss, values)
        out.append(replace(t, train=train, loss=loss))
    return out


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    if not np.isfinite(arr).any():
        return float("nan"), float("nan")
    return float(np.nanmean(arr)), float(np.nanstd(arr, ddof=1)) if np.isfinite(arr).sum() > 1 else 0.0


def run_search_trial(config: dict[str, Any], payload: Payload, report: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Worker side: train the seeds of one search trial in lockstep, reporting the seeds' mean validation
    metric after every epoch and, last, the objective with ``final`` set. Finished seeds are read."""
    import torch

    torch.set_num_threads(max(1, int(payload["cpus"])))
    device = resolve_device(payload["device"])
    run_dir, metric = Path(payload["run_dir"]), payload["metric"]
    configs = trial_configs([TrialConfig.from_dict(d) for d in payload["templates"]], dict(config))
    done: dict[int, dict[str, Any]] = {}
    trainers = {}
    for i, c in enumerate(configs):
        if is_finished(run_dir, c.id) and check_trial(run_dir, c.id) is None:
            done[i] = read_json(trial_dir(run_dir, c.id) / METRICS)
        else:
            trainers[i] = Trainer(c, run_dir, payload["data_root"], device, payload["eval_batch_size"])
    epochs = max(c.train.epochs for c in configs)
    # the unfinished seeds as one vmapped model where they can be (two or more of a model that can: said once in the log)
    unfinished = list(trainers.values())
    batch = SeedBatch(unfinished) if batchable(unfinished) else None
    if trainers:
        for epoch in range(1, epochs + 1):
            values = []
            batched = dict(zip(trainers, batch.train_epoch(), strict=True)) if batch is not None else {}
            for i in range(len(configs)):
                if i in trainers:
                    row = batched[i] if batch is not None else trainers[i].train_epoch()
                    if isinstance(row, BaseException):
                        raise row
                else:
                    history = done[i]["history"]
                    row = history[min(epoch, len(history)) - 1]
                values.append(row.get(f"val_{metric}", float("nan")))
            mean, std = _mean_std(values)
            report(
                {"objective": mean, "objective_std": std, "epoch": epoch, "epochs": epochs, "final": 0, "trained": len(trainers)}
            )
        for i, trainer in trainers.items():
            done[i] = trainer.finish()
    final = [float(done[i]["eval"]["val"].get(metric, float("nan"))) for i in range(len(configs))]
    mean, std = _mean_std(final)
    result = {
        "objective": mean,
        "objective_std": std,
        "epoch": epochs,
        "epochs": epochs,
        "final": 1,
        "seed_values": final,
        "trial_ids": [c.id for c in configs],
        "trained": len(trainers),
    }
    report(result)
    return result


def search_trainable(config: dict[str, Any], payload: Payload) -> None:
    """The Ray Tune function trainable of a search trial."""
    from ray import tune

    run_search_trial(config, payload, tune.report)


def _searcher_class() -> type:
    from optuna.trial import TrialState
    from ray.tune.search.optuna import OptunaSearch

    class KdtuneOptunaSearch(OptunaSearch):
        """OptunaSearch that tells Optuna what really happened: COMPLETE only with a finite final objective
        (a trial ASHA stopped is PRUNED, an error or a non-finite final objective FAIL), and keeps every seed's
        value on the trial."""

        def number_of(self, trial_id: str) -> int | None:
            t = self._ot_trials.get(trial_id)
            return None if t is None else t.number

        def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
            ot_trial = self._ot_trials.get(trial_id)
            if ot_trial is None or trial_id in self._completed_trials:
                return
            value, state = None, TrialState.FAIL
            if result:  # seed-epochs this trial trained (seeds read from the run folder cost none)
                ot_trial.set_user_attr("seed_epochs", int(result.get("trained", 0)) * int(result.get("epoch", 0)))
            final = bool(result) and not error and bool(result.get("final"))
            if final and math.isfinite(result.get("objective", math.nan)):
                for key in ("seed_values", "trial_ids"):
                    ot_trial.set_user_attr(key, list(result.get(key, [])))
                ot_trial.set_user_attr("std", result.get("objective_std"))
                value, state = float(result["objective"]), TrialState.COMPLETE
            elif final:  # trained to the end, its objective NaN or infinite (a diverged seed): FAIL, as Optuna does
                ot_trial.set_user_attr("reason", "the objective is not a finite number")
            elif result and not error:
                ot_trial.set_user_attr("stopped_at_epoch", result.get("epoch"))
                state = TrialState.PRUNED
                # Tune hands the result ASHA stopped on to the scheduler, not to on_trial_result: report it
                # here, so Optuna's pruned value (its last intermediate value) is the epoch ASHA decided on
                step, last = result.get("training_iteration"), result.get("objective", math.nan)
                if step is not None and math.isfinite(last):
                    ot_trial.report(float(last), int(step))
            self._ot_study.tell(ot_trial, value, state=state)
            self._completed_trials.add(trial_id)

    return KdtuneOptunaSearch


class _SearchLines(Listener):
    """One line per finished, stopped or failed search trial, with the best so far."""

    def __init__(self, searcher: Any, total: int, metric: str, direction: str, best: float | None, log: Callable[[str], None]):
        self.searcher, self.total, self.metric, self.direction, self.log = searcher, total, metric, direction, log
        self.done, self.best, self.best_number = 0, best, None

    def _line(self, trial: Any, text: str) -> None:
        self.done += 1
        number = self.searcher.number_of(trial.trial_id)
        values = ", ".join(f"{k}={value_text(v)}" for k, v in sorted(trial.config.items()))
        best = ""
        if self.best is not None:
            best = f"; best {self.best:.4f}" + (f" (#{self.best_number})" if self.best_number is not None else "")
        self.log(f"  [{self.done}/{self.total}] #{number} {values}: {text}{best}")

    def complete(self, trial: Any) -> None:
        r, metric = trial.last_result or {}, self.metric
        if r.get("final") and math.isfinite(r.get("objective", math.nan)):
            value = r["objective"]
            if self.best is None or (value > self.best if self.direction == "maximize" else value < self.best):
                self.best, self.best_number = value, self.searcher.number_of(trial.trial_id)
            n = len(r.get("seed_values", []))
            self._line(trial, f"{metric} {value:.4f} ± {r.get('objective_std', 0.0):.4f} ({n} seeds)")
        elif r.get("final"):
            self._line(trial, f"FAILED: the objective is not a finite number ({metric} {r.get('objective', math.nan)})")
        else:
            self._line(trial, f"stopped by ASHA after epoch {r.get('epoch')} ({metric} {r.get('objective', math.nan):.4f})")

    def failed(self, trial: Any, error: str) -> None:
        self._line(trial, f"FAILED {error}".rstrip())


def _max_concurrent(cpu: float, gpu: float) -> int:
    import ray

    have = ray.cluster_resources()
    fits = [have.get("CPU", 0) / cpu] if cpu else []
    fits += [have.get("GPU", 0) / gpu] if gpu else []
    return max(1, int(min(fits))) if fits else 1


def run_search(
    setup: SearchSetup,
    n_trials: int,
    storage_url: str | None,
    executor: Any,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run (or continue) the study of ``setup`` until it has ``n_trials`` finished trials; write the
    tuned file; return a summary. ``executor`` is a started :class:`kdtune.run.execute.RayExecutor` context."""
    from optuna.samplers import TPESampler
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import ConcurrencyLimiter

    spec, tspec = setup.spec, setup.spec.tune
    run_dir = spec.output
    url = storage_url or studies.default_storage(run_dir)
    storage = studies.open_storage(url)
    name = studies.study_name(spec.name, setup.model, setup.teacher, tspec.metric)
    study = studies.load_study(storage, name, tspec.direction)
    recovered, queued = studies.recover(study)
    if recovered:
        log(
            f"study {name}: {len(recovered)} trial(s) left running by an interrupted run marked failed; "
            f"{len(queued)} of their configurations queued again"
        )
    before = studies.counts(study)
    if not study.get_trials(deepcopy=False) and setup.defaults:
        study.enqueue_trial(setup.defaults)  # start from the sweep's own settings
    remaining = n_trials - before["finished"]
    prior = studies.best_trial(study)
    log(
        f"study {name} in {studies.masked(url)}: {before['finished']} of {n_trials} search trials finished"
        + (f", best {tspec.metric} {prior.value:.4f} (#{prior.number})" if prior else "")
    )
    if remaining > 0:
        payload: Payload = {
            "run_dir": str(run_dir.resolve()),
            "data_root": str(spec.data_root.resolve()) if spec.data_root else None,
            "device": spec.execution.device,
            "cpus": spec.resources.cpu,
            "eval_batch_size": spec.execution.eval_batch_size,
            "metric": tspec.metric,
            "templates": [t.to_dict() for t in setup.templates],
        }
        mode = "max" if tspec.direction == "maximize" else "min"
        searcher = _searcher_class()(
            space={k: d.to_optuna() for k, d in setup.space.params},
            metric="objective",
            mode=mode,
            # seeded by the study's length, so a continued study does not replay the first proposals
            sampler=TPESampler(seed=tspec.sampler_seed + len(study.get_trials(deepcopy=False))),
            study_name=name,
            storage=storage,
        )
        max_t = max(t.train.epochs for t in setup.templates)
        epochs_dims = dict(setup.space.params).get("epochs")
        if epochs_dims is not None:
            max_t = int(max(epochs_dims.high, *(c for c in epochs_dims.choices if isinstance(c, int)), 1))
        if tspec.asha:
            scheduler: Any = ASHAScheduler(
                time_attr="training_iteration",
                metric="objective",
                mode=mode,
                max_t=max_t + 1,  # every epoch, then the final objective
                grace_period=tspec.asha.grace_period,
                reduction_factor=tspec.asha.reduction_factor,
            )
        else:
            scheduler = FIFOScheduler()
        limit = _max_concurrent(spec.resources.cpu, spec.resources.gpu)
        best = prior.value if prior else None
        lines = _SearchLines(searcher, remaining, tspec.metric, tspec.direction, best, log)
        progress = tune_callback([lines], executor.check_interrupt)
        label = {"model": setup.model, "teacher": setup.teacher, "seeds": str(len(setup.templates)), "metric": tspec.metric}
        trackers = search_callbacks(spec, run_dir, name, label, searcher.number_of) if spec.trackers else []
        tuner = tune.Tuner(
            tune.with_resources(
                tune.with_parameters(search_trainable, payload=payload), {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
            ),
            tune_config=tune.TuneConfig(
                search_alg=ConcurrencyLimiter(searcher, max_concurrent=limit),
                scheduler=scheduler,
                num_samples=remaining,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=f"tune-{tuned_name(setup.model, setup.teacher)}",
                storage_path=str((run_dir / "ray").resolve()),
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
                callbacks=[progress, *trackers],
            ),
        )
        asha = f"ASHA (grace {tspec.asha.grace_period}, ×{tspec.asha.reduction_factor:g})" if tspec.asha else "no early stopping"
        log(f"search: {remaining} more search trials of {len(setup.templates)} seeds, {limit} at a time, {asha}")
        start = time.perf_counter()
        try:
            executor.check_interrupt()
            tuner.fit()
            executor.check_interrupt()
        except KeyboardInterrupt:
            started_numbers = {t.number for t in searcher._ot_trials.values()}
            studies.recover(study, only=started_numbers)  # what Ctrl-C left running is retried next time
            raise Interrupted(studies.counts(study)["finished"], n_trials) from None
        log(f"search: finished in {time.perf_counter() - start:.1f} s")
    summary = finish(setup, study, url, n_trials, log)
    if spec.trackers.mlflow is not None and summary["best"] is not None:
        tag_best(spec, run_dir, name, summary["best"]["trials"]["best"])
    return summary


def finish(setup: SearchSetup, study: Any, url: str, n_trials: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Write ``tuned/<model>.yaml`` from the study's best trial and a record of its trials; return them."""
    spec, tspec = setup.spec, setup.spec.tune
    c = studies.counts(study)
    best = studies.best_trial(study)
    summary: dict[str, Any] = {"study": study.study_name, "counts": c, "best": None}
    if best is None:
        log(f"study {study.study_name}: no search trial completed; nothing written to tuned/")
        return summary
    seeds = studies.seed_summary(best)
    metric = {"name": tspec.metric, "split": "val", "direction": tspec.direction} | {
        k: seeds[k] for k in ("mean", "std", "n_seeds", "seed_values")
    }
    content = {
        "model": setup.model,
        "teacher": setup.teacher,
        "sweep": spec.name,
        "values": dict(best.params),
        "metric": metric,
        "trials": {k: c[k] for k in ("finished", "complete", "pruned", "failed", "interrupted")} | {"best": best.number},
        "study": {"name": study.study_name, "storage": studies.masked(url)},
        "trial_ids": seeds["trial_ids"],
        "seed_epochs_trained": seed_epochs(study),
    }
    path = tuned_path(spec.output, setup.model, setup.teacher)
    write_tuned(path, content)
    _record(setup, study)
    log(
        f"best: #{best.number} {tspec.metric} {seeds['mean']:.4f} ± {seeds['std'] or 0:.4f} ({seeds['n_seeds']} seeds), "
        + ", ".join(f"{k}={value_text(v)}" for k, v in sorted(best.params.items()))
    )
    counted = f"{c['finished']} finished: {c['complete']} complete, {c['pruned']} stopped early, {c['failed']} failed"
    log(f"tuned values: {path} ({counted}; {seed_epochs(study)} seed-epochs trained in all)")
    summary |= {"best": content, "path": str(path)}
    return summary


def seed_epochs(study: Any) -> int:
    """Epochs trained by all search trials of a study, summed over seeds (what early stopping saves)."""
    return sum(int(t.user_attrs.get("seed_epochs", 0)) for t in study.get_trials(deepcopy=False))


def _record(setup: SearchSetup, study: Any) -> None:
    """A sweep record (kind ``tune``) of the seed trials of every complete search trial and their
    teachers, so they can be reported (``kdtune report RUN --sweep tune-MLP``) like any others."""
    from optuna.trial import TrialState

    spec = setup.spec
    trials: dict[str, dict[str, Any]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        for tid in t.user_attrs.get("trial_ids", []):
            if not is_finished(spec.output, tid):
                continue
            cfg = read_json(trial_dir(spec.output, tid) / "config.json")["config"]
            trials[tid] = {
                "stage": 1 if setup.teacher == NO_TEACHER else 2,
                "student": setup.model,
                "teacher": setup.teacher,
                "seed": cfg["seed"],
                "teacher_seed": cfg["seed"] if setup.teacher != NO_TEACHER else None,
                "teacher_id": cfg.get("teacher_id"),
                "config": cfg,
            }
    if setup.teachers is not None:
        for t in setup.teachers.trials.values():
            trials[t.id] = {"stage": 1, "student": t.student, "teacher": NO_TEACHER, "seed": t.seed, "teacher_seed": None,
                            "teacher_id": None, "config": t.config.to_dict()}  # fmt: skip
    write_trials_record(spec, f"tune-{tuned_name(setup.model, setup.teacher)}", trials, kind="tune")
