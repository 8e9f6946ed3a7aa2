"""Plan: a :class:`SweepSpec` → stages of trials with dependencies.

A trial is one model trained on one seed unit (the seeds of its initialisation and data streams, see
:class:`~kdtune.train.config.SeedUnit`) under one resolved config; its id is a hash of that config (teacher's id
included), so the same trial reached from two grid cells, two sweeps or a re-run is the same folder and is
never trained twice. Stage 1 trains from data (baselines and teachers); a student sits one stage after its
teacher. Trials that differ only in their seeds form a :class:`TrialGroup`, the unit handed to Ray Tune
(``execution.seeds_per_trial`` seeds each). :func:`stream_design` says which conditions share which streams.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from kdtune.errors import KdtuneError
from kdtune.labels import LOSS_SETTINGS, NO_TEACHER, STUDENT_STREAMS
from kdtune.spec.sweepfile import SweepSpec
from kdtune.train.config import (
    Params,
    SeedUnit,
    TrialConfig,
    apply_values,
    freeze,
    read_tuned,
    resolve_train,
    switch_points,
    with_selection,
)
from kdtune.train.data import DataSpec
from kdtune.train.data.base import DataInfo
from kdtune.train.distill import LossSpec
from kdtune.train.optim import schedule_warning


@dataclass(frozen=True)
class Trial:
    """A planned trial: its config plus the labels it is reported under. ``unit`` is the number of its seed
    unit in the sweep (:class:`~kdtune.train.config.SeedUnit`), a label like ``student``: None means ``config.seed``."""

    config: TrialConfig
    stage: int
    student: str  # model label
    teacher: str  # teacher model label, or "data"
    teacher_seed: int | None = None  # the teacher's unit number
    unit: int | None = None

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def seed(self) -> int:
        """The number of the trial's seed unit (the results' ``seed`` column)."""
        return self.config.seed if self.unit is None else self.unit

    @property
    def fold(self) -> int | None:
        """The held-out fold of a k-fold sweep (``data.folds``), None without folds."""
        return self.config.data.fold if self.config.data.folds > 1 else None


@dataclass(frozen=True)
class TrialGroup:
    """Trials identical but for the seed, executed together as one Ray Tune trial."""

    trials: tuple[Trial, ...]

    @property
    def name(self) -> str:
        t = self.trials[0]
        return f"{t.student}-from-{t.teacher}-{t.id[:8]}"

    @property
    def stage(self) -> int:
        return self.trials[0].stage


@dataclass
class Plan:
    """Stages of trial groups; ``stages[0]`` runs first. ``labels`` are every trial's report labels."""

    spec: SweepSpec
    stages: list[list[TrialGroup]]
    trials: dict[str, Trial]
    needs_train_logits: set[str] = field(default_factory=set)  # teacher ids whose logits students cache

    def groups(self) -> list[TrialGroup]:
        """All groups, stage by stage."""
        return [g for stage in self.stages for g in stage]

    def teacher_of(self, trial: Trial) -> Trial | None:
        """The planned teacher of ``trial`` (None for trials trained from data)."""
        return self.trials[trial.config.teacher_id] if trial.config.teacher_id else None


def _seed_list(values: Collection[int]) -> str:
    return ", ".join(map(str, values))


def stream_design(spec: SweepSpec) -> dict[str, Any]:
    """Which conditions of ``spec`` share which random streams, for the plan's output and the sweep record
    (``plan.json``: ``streams``): ``units`` (seed k → its initialisation and data seeds at the grid's level;
    the seeds a trial draws from are the results' ``init_seed`` and ``data_seed`` columns,
    :func:`kdtune.labels.stream_seeds`), ``student_streams`` and ``lines``, the same in words."""
    grid = spec.grid
    units = grid.units()
    students = any(t != NO_TEACHER for t, _ in grid.pairs)
    inits, datas = list(dict.fromkeys(u.init for u in units)), list(dict.fromkeys(u.data for u in units))
    if grid.streams_apart:
        shown = ", ".join(f"{u.seed} (init {u.init}, data {u.data})" for u in units[:8]) + (", …" if len(units) > 8 else "")
        lines = [f"streams: {len(units)} seed units = initialisation seeds {_seed_list(inits)} × data seeds "
                 f"{_seed_list(datas)} (data order, dropout, augmentation); seed {shown}"]  # fmt: skip
        if len(inits) == 1 and len(datas) > 1:
            lines.append("streams: every unit of a configuration starts from the same initial weights; units differ in "
                         "data order, dropout and augmentation only (pairs of them: same_init)")  # fmt: skip
        elif len(datas) == 1 and len(inits) > 1:
            lines.append("streams: every unit of a configuration sees the same data order, dropout and augmentation; "
                         "units differ in their initial weights only")  # fmt: skip
    else:
        lines = [f"streams: seed s sets initialisation and data order (dropout, augmentation) together; seeds "
                 f"{_seed_list(grid.seeds)}"]  # fmt: skip
    lines.append("streams: conditions of one seed unit share its streams: models trained from data across their "
                 "training settings; students across teachers and distillation settings")  # fmt: skip
    if students:
        if grid.student_streams == STUDENT_STREAMS[0]:
            lines.append("streams: students draw theirs apart from the models trained from data (student_streams: "
                         "apart): a student and a model from data of one unit share no stream")  # fmt: skip
        else:
            lines.append("streams: students share theirs with the models trained from data (student_streams: shared): "
                         "a student of one unit starts from the initial weights of its architecture trained from data "
                         "on that unit and sees its data order (a self-distilled student starts as a copy of its "
                         "teacher)")  # fmt: skip
        if grid.teacher_seed != "same":
            lines.append(f"streams: every student reads the teacher of seed {grid.teacher_seed}")
    return {
        "units": [dataclasses.asdict(u) for u in units],
        "student_streams": grid.student_streams,
        "lines": lines,
    }


def _tuned(spec: SweepSpec, model: str, teacher: str, skip: Collection[tuple[str, str]]) -> dict[str, Any] | None:
    """The tuned values ``model`` uses (from data, or as ``teacher``'s student), if it is marked so."""
    if teacher not in spec.models[model].tuned or (model, teacher) in skip:
        return None
    return read_tuned(spec.output, model, teacher, spec.source, spec.name)


@functools.lru_cache(maxsize=64)
def _flops(arch: str, info: DataInfo, params: tuple[tuple[str, Any], ...], batch: int) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from kdtune.train.models import build_model, example_inputs

    model = build_model(arch, info, 0.0, dict(params)).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(example_inputs(info, batch))
    return float(counter.get_total_flops())


def forward_flops(arch: str, info: DataInfo, params: Mapping[str, Any], batch: int) -> float:
    """FLOPs of one forward pass of model ``arch`` on ``batch`` examples shaped by ``info`` (torch's FlopCounterMode)."""
    return _flops(arch, info, freeze(dict(params)), batch)


# seeds_per_trial: auto on a CPU. Measured with `python bench/seed_batching_probe.py --threads 1 --steps 15
# --repeats 3` (torch 2.13, 1 thread, batch 64, Adam, keyed dropout 0.1; the 2-core machine with nothing else
# running, load average below 1.5). Seconds per step of k seeds, one after another / batched, and the speedup:
#   case                    MFLOP/step  k=1               k=2               k=4               k=8
#   sets MLP 64-64-64           1.5     .0008/.0014 0.55  .0016/.0016 0.98  .0031/.0019 1.64  .0062/.0025 2.44
#   digits MLP 144-256-128      9.1     .0012/.0018 0.65  .0022/.0025 0.85  .0044/.0043 1.02  .0090/.0082 1.09
#   digits CNN 8-8-16          14.6     .0029/.0045 0.66  .0060/.0071 0.85  .0125/.0111 1.13  .0244/.0188 1.30
#   sets DeepSets-inv 64       17.7     .0014/.0021 0.66  .0028/.0028 0.99  .0057/.0044 1.29  .0117/.0080 1.45
#   sets DeepSets-equiv 64     18.8     .0020/.0028 0.71  .0040/.0040 1.00  .0081/.0068 1.19  .0165/.0128 1.29
#   points DGCNN 4x8 k8        45.5     .0163/.0196 0.84  .0339/.0408 0.83  .0693/.0766 0.90  .1338/.1492 0.90
#   digits CNN 16-16-32        55.8     .0041/.0062 0.66  .0088/.0122 0.72  .0170/.0213 0.80  .0357/.0410 0.87
#   MNIST MLP 784-512-256      68.5     .0042/.0062 0.68  .0083/.0103 0.81  .0168/.0263 0.64  .0322/.0461 0.70
#   digits CNN 32-32-64       217.7     .0094/.0117 0.80  .0191/.0226 0.84  .0377/.0452 0.84  .0735/.0929 0.79
#   MNIST CNN 32-32-64       1185.0     .0400/.0495 0.81  .0820/.1078 0.76  .1507/.1948 0.77  .3008/.7977 0.38
# (A second run a few minutes apart gave 1.05 and 1.09 for the DeepSets at k=8, and 1.16 for the digits MLP:
# small gains are within this machine's noise; the order of the cases is not.) Batching paid only for the
# smallest models (a forward step of at most ~20 MFLOP), images, sets and point clouds alike, and from 4 seeds
# on; one or two seeds were slower batched (vmap's fixed cost per op). So on a CPU a group batches its seeds
# (at most AUTO_CPU_MAX_SEEDS) when it has at least AUTO_CPU_MIN_SEEDS of them and a forward step (the trial's
# batch size) is at most AUTO_CPU_MAX_FLOPS; otherwise one seed per group.
AUTO_CPU_MAX_FLOPS = 20e6
AUTO_CPU_MIN_SEEDS = 4
AUTO_CPU_MAX_SEEDS = 8
AUTO_CPU_KINDS = ("image", "set", "points")  # the kinds of data the table measured


def auto_seeds_per_trial(spec: SweepSpec, config: TrialConfig, seeds: int) -> int:
    """``execution.seeds_per_trial: auto`` for the ``seeds`` seeds of ``config``: all of them on a GPU; on a CPU
    all (at most AUTO_CPU_MAX_SEEDS) where batching measurably pays (the table above: images, sets and point
    clouds), else 1. Token sequences: 1 on a CPU (their models train one seed at a time anyway)."""
    if spec.resources.gpu > 0 and spec.execution.device != "cpu":
        return seeds
    from kdtune.train.data import make_dataset

    info = make_dataset(spec.data).describe()
    if info.kind not in AUTO_CPU_KINDS or seeds < AUTO_CPU_MIN_SEEDS:
        return 1
    if forward_flops(config.arch, info, dict(config.params), config.train.batch_size) > AUTO_CPU_MAX_FLOPS:
        return 1
    return math.ceil(seeds / math.ceil(seeds / AUTO_CPU_MAX_SEEDS))  # groups of equal size: 10 seeds → 5 + 5


def fold_specs(data: DataSpec) -> list[DataSpec]:
    """The data of each fold of a k-fold sweep (``data.folds`` > 1: folds 0..k-1), else ``data`` alone."""
    return [data] if data.folds <= 1 else [dataclasses.replace(data, fold=f) for f in range(data.folds)]


def fold_fingerprints(spec: SweepSpec, fingerprint: str | Mapping[int, str] | None = None) -> dict[int, str]:
    """Fold → the fingerprint of the data that fold loads (one entry, fold 0, without folds): ``fingerprint``
    as given (one string for every fold, or one per fold), else computed (once per fold and process)."""
    from kdtune.train.data import data_fingerprint

    out = {}
    for data in fold_specs(spec.data):
        if isinstance(fingerprint, str):
            out[data.fold] = fingerprint
        elif fingerprint is not None:
            if data.fold not in fingerprint:
                raise KdtuneError(f"{spec.source}: no data fingerprint given for fold {data.fold}")
            out[data.fold] = fingerprint[data.fold]
        else:
            try:
                out[data.fold] = data_fingerprint(data, spec.data_root)
            except ValueError as e:
                where = f" (fold {data.fold} of {data.folds})" if data.folds > 1 else ""
                raise KdtuneError(f"{spec.source}: data{where}: {e}") from None
    return out


def make_plan(
    spec: SweepSpec, fingerprint: str | Mapping[int, str] | None = None, skip_tuned: Collection[tuple[str, str]] = ()
) -> Plan:
    """Expand the grid of ``spec`` into trials, deduplicated by id and ordered in stages; with ``data.folds``
    = k, every trial once per fold (its teacher of the same fold). Trial ids include the hash of the data
    actually loaded: ``fingerprint`` (one for all folds, or fold → hash), computed here if not given. Models
    marked ``hparams: tuned`` read their tuned values, except the (model, teacher) pairs in ``skip_tuned``
    (what ``kdtune tune`` is tuning)."""
    prints = fold_fingerprints(spec, fingerprint)
    grid = spec.grid
    trials: dict[str, Trial] = {}
    needs_logits: set[str] = set()

    def add(trial: Trial) -> Trial:
        known = trials.setdefault(trial.id, trial)
        if (known.student, known.teacher) != (trial.student, trial.teacher):
            raise KdtuneError(
                f"{spec.source}: models {known.student!r} and {trial.student!r} resolve to the same configuration "
                f"(trial {trial.id}); give them different arch, params or train settings, or drop one"
            )
        return known

    def streams(unit: SeedUnit, student: bool) -> dict[str, Any]:
        """The stream fields of a config of ``unit``: left at their defaults where they are today's (one seed)."""
        return {
            "seed": unit.init,
            "data_seed": unit.data if unit.data != unit.init else None,
            "student_streams": grid.student_streams if student else STUDENT_STREAMS[0],
        }

    def from_data(label: str, unit: SeedUnit, overrides: tuple[tuple[str, Any], ...], data: DataSpec) -> Trial:
        model = spec.models[label]
        train = resolve_train(spec, model, student=False, overrides=overrides)
        loss = LossSpec(kind="ce", w_hard=1.0, w_soft=0.0)
        values = _tuned(spec, label, NO_TEACHER, skip_tuned)
        if values:
            train, _ = apply_values(train, loss, {k: v for k, v in values.items() if k not in LOSS_SETTINGS})
        cfg = TrialConfig(model.arch, model.params, data, train, loss, teacher_id=None, outputs=spec.outputs,
                          data_fingerprint=prints[data.fold], **streams(unit, student=False))  # fmt: skip
        return add(Trial(cfg, 1, label, NO_TEACHER, unit=unit.seed))

    settings = itertools.product(grid.pairs, grid.train_axes(), fold_specs(spec.data), grid.units())
    for (teacher, student), overrides, data, unit in settings:
        if teacher == NO_TEACHER:
            from_data(student, unit, overrides, data)
            continue
        t_unit = grid.teacher_unit(unit)
        t = from_data(teacher, t_unit, (), data)  # of the same fold
        model = spec.models[student]
        train = resolve_train(spec, model, student=True, overrides=overrides)
        if train.augment is None:
            needs_logits.add(t.id)
        values = _tuned(spec, student, teacher, skip_tuned)
        losses = itertools.product(grid.temperature, grid.w_hard, grid.w_soft, grid.loss, switch_points(spec, model))
        for tau, w_hard, w_soft, kind, (start, stop) in losses:
            loss = LossSpec(kind=kind, temperature=tau, w_hard=w_hard, w_soft=w_soft, start=start, stop=stop)
            if values:  # tuned values replace the grid's for this pair (equal cells are one trial)
                train, loss = apply_values(train, loss, values)
            cfg = TrialConfig(model.arch, model.params, data, with_selection(train, loss), loss, teacher_id=t.id,
                              outputs=spec.outputs, data_fingerprint=prints[data.fold],
                              **streams(unit, student=True))  # fmt: skip
            add(Trial(cfg, t.stage + 1, student, teacher, t_unit.seed, unit.seed))

    by_config: dict[tuple[Any, ...], list[Trial]] = defaultdict(list)
    for trial in trials.values():
        by_config[(trial.stage, trial.student, trial.teacher, trial.config.seedless())].append(trial)
    n_stages = max(t.stage for t in trials.values())
    stages: list[list[TrialGroup]] = [[] for _ in range(n_stages)]
    for (stage, *_), members in by_config.items():
        members.sort(key=lambda t: t.seed)
        k = spec.execution.seeds_per_trial
        k = auto_seeds_per_trial(spec, members[0].config, len(members)) if k == "auto" else k
        for i in range(0, len(members), k):
            stages[stage - 1].append(TrialGroup(tuple(members[i : i + k])))
    return Plan(spec, stages, trials, needs_logits)


def sweep_warnings(spec: SweepSpec) -> list[str]:
    """One line per model and role (trained from data, or as a student) whose learning-rate schedule ends
    training mid-cycle, e.g. a restart just before the end; such a run is valid but rarely what was meant."""
    roles: dict[tuple[str, bool, Params], None] = {}  # the trainings make_plan plans, in its order
    for (teacher, student), overrides in itertools.product(spec.grid.pairs, spec.grid.train_axes()):
        if teacher != NO_TEACHER:
            roles[(teacher, False, ())] = None  # teachers are trained without the grid's train axes
        roles[(student, teacher != NO_TEACHER, overrides)] = None
    out: dict[str, None] = {}
    for label, student, overrides in roles:
        model = spec.models[label]
        train = resolve_train(spec, model, student, overrides)
        text = schedule_warning(train.schedule.name, dict(train.schedule.params), train.epochs)
        if text is None:
            continue
        layers = [("train", spec.train), (f"models.{label}.train", model.train)]
        layers += [("distill", spec.distill), (f"models.{label}.distill", model.distill)] if student else []
        where = [name for name, layer in layers if "schedule" in dict(layer)][-1] + ".schedule"
        role = "as a student" if student else "trained from data"
        grid = f" with grid epochs {train.epochs}" if "epochs" in dict(overrides) else ""
        out[f"{spec.source}: models.{label} {role}{grid} ({where}): {text}"] = None
    return list(out)
