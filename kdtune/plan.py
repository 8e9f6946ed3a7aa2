"""Plan: a :class:`SweepSpec` → stages of trials with dependencies.

A trial is one model trained with one seed under one resolved config; its id is a hash of that
config (teacher's id included), so the same trial reached from two grid cells, two sweeps or a
re-run is the same folder and is never trained twice. Stage 1 trains from data (baselines and
teachers); a student sits one stage after its teacher. Trials that differ only in their seed form a
:class:`TrialGroup`, the unit handed to Ray Tune (``execution.seeds_per_trial`` seeds each).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from kdtune.data import DataSpec, EvalSetSpec
from kdtune.data.base import DataInfo
from kdtune.distill import LossSpec
from kdtune.errors import KdtuneError
from kdtune.spec import NO_TEACHER, AugmentSpec, OutputSpec, ScheduleSpec, SweepSpec, TrainSpec, resolve_train
from kdtune.tuning.space import LOSS_SETTINGS

# The version of the code paths that change a trial's result for the same config: part of every trial
# id, so results of older code are never mistaken for results of this one. Bump it with any such change.
# 2: data fingerprint in the id; ties in model selection broken by validation NLL; divergence checks.
# 3: keyed dropout masks (a hash of seed, step, call and position instead of the global random state), so a
#    seed trains the same alone or vmapped among its group's seeds; the CNN's convolutions before BatchNorm lost
#    their (ineffective) bias.
RESULTS_VERSION = 3
SCHEMA = f"kdtune.trial/{RESULTS_VERSION}"


@dataclass(frozen=True)
class TrialConfig:
    """Everything that determines a trial's result. Its hash is the trial id."""

    arch: str
    params: tuple[tuple[str, Any], ...]
    data: DataSpec
    train: TrainSpec
    loss: LossSpec
    seed: int
    teacher_id: str | None = None
    outputs: OutputSpec = field(default_factory=OutputSpec)
    data_fingerprint: str = ""  # hash of the tensors actually loaded (kdtune.data.data_fingerprint)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able, canonical form (tuples of pairs become mappings). An empty ``outputs.feature_epochs``
        is left out, so configs that keep no training-path features have the ids they had before it existed."""
        d = _jsonable(dataclasses.asdict(self)) | {"schema": SCHEMA}
        if not d["outputs"]["feature_epochs"]:
            del d["outputs"]["feature_epochs"]
        return d

    @property
    def id(self) -> str:
        """Stable id: the first 16 hex digits of the SHA-256 of the canonical JSON."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialConfig:
        """Inverse of :meth:`to_dict`."""
        data = dict(d["data"])
        data["params"] = _pairs(data["params"])
        data["eval_sets"] = tuple(
            EvalSetSpec(e["name"], e["source"], e["corruption"], _pairs(e["params"])) for e in data["eval_sets"]
        )
        train = dict(d["train"])
        train["schedule"] = ScheduleSpec(train["schedule"]["name"], _pairs(train["schedule"]["params"]))
        if train["augment"] is not None:
            train["augment"] = AugmentSpec(train["augment"]["name"], _pairs(train["augment"]["params"]))
        return cls(
            arch=d["arch"],
            params=_pairs(d["params"]),
            data=DataSpec(**data),
            train=TrainSpec(**train),
            loss=LossSpec(**d["loss"]),
            seed=d["seed"],
            teacher_id=d["teacher_id"],
            outputs=OutputSpec(**{k: tuple(v) if k == "feature_epochs" else v for k, v in d["outputs"].items()}),
            data_fingerprint=d.get("data_fingerprint", ""),
        )


def _is_pairs(v: Any) -> bool:
    return isinstance(v, (tuple, list)) and all(isinstance(i, (tuple, list)) and len(i) == 2 and isinstance(i[0], str) for i in v)


def _jsonable(v: Any, key: str = "") -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x, k) for k, x in v.items()}
    if key == "params" and _is_pairs(v):
        return {k: _jsonable(x) for k, x in v}
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    return v


def _freeze(v: Any) -> Any:
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    return v


def _pairs(d: dict[str, Any] | list[Any]) -> tuple[tuple[str, Any], ...]:
    return _freeze(d) if isinstance(d, dict) else tuple((k, _freeze(v)) for k, v in d)


@dataclass(frozen=True)
class Trial:
    """A planned trial: its config plus the labels it is reported under."""

    config: TrialConfig
    stage: int
    student: str  # model label
    teacher: str  # teacher model label, or "data"
    teacher_seed: int | None = None

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def seed(self) -> int:
        return self.config.seed


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


def _train_overrides(spec: SweepSpec) -> list[tuple[tuple[str, Any], ...]]:
    axes = spec.grid.train
    return [tuple(zip((k for k, _ in axes), combo, strict=True)) for combo in itertools.product(*(v for _, v in axes))]


def _tuned(spec: SweepSpec, model: str, teacher: str, skip: Collection[tuple[str, str]]) -> dict[str, Any] | None:
    """The tuned values ``model`` uses (from data, or as ``teacher``'s student), if it is marked so."""
    if teacher not in spec.models[model].tuned or (model, teacher) in skip:
        return None
    from kdtune.tuning.tuned import read_tuned

    return read_tuned(spec.output, model, teacher, spec.source, spec.name)


@functools.lru_cache(maxsize=64)
def _flops(arch: str, info: DataInfo, params: tuple[tuple[str, Any], ...], batch: int) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from kdtune.models import build_model, example_inputs

    model = build_model(arch, info, 0.0, dict(params)).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(example_inputs(info, batch))
    return float(counter.get_total_flops())


def forward_flops(arch: str, info: DataInfo, params: Mapping[str, Any], batch: int) -> float:
    """FLOPs of one forward pass of model ``arch`` on ``batch`` examples shaped by ``info`` (torch's FlopCounterMode)."""
    return _flops(arch, info, _freeze(dict(params)), batch)


# seeds_per_trial: auto on a CPU. Measured with bench/seed_batching_probe.py (torch 2.13, 1 thread, batch 64,
# Adam, dropout 0.1; a shared 2-core machine under load, median of 5) — seconds per step of k seeds, one after
# another / batched (speedup):
#   AUTO_TABLE
# Batching pays where a step of one seed is cheap enough to be bound by per-op overhead: forward work up to
# AUTO_CPU_MAX_FLOPS per step (the batch's forward FLOPs, from forward_flops) batches all of a group's seeds
# (up to AUTO_CPU_MAX_SEEDS); above it, one seed per group.
AUTO_CPU_MAX_FLOPS = 60e6
AUTO_CPU_MAX_SEEDS = 8


def auto_seeds_per_trial(spec: SweepSpec, config: TrialConfig, seeds: int) -> int:
    """``execution.seeds_per_trial: auto`` for the ``seeds`` seeds of ``config``: all of them on a GPU; on a CPU
    all (at most AUTO_CPU_MAX_SEEDS) where a training step is small enough for batching to pay, else 1. Token
    data (batches of different widths per seed) trains one seed at a time anyway: 1."""
    if spec.resources.gpu > 0 and spec.execution.device != "cpu":
        return seeds
    from kdtune.data import make_dataset

    info = make_dataset(spec.data).describe()
    if info.kind != "image":
        return 1
    flops = forward_flops(config.arch, info, dict(config.params), config.train.batch_size)
    return min(seeds, AUTO_CPU_MAX_SEEDS) if flops <= AUTO_CPU_MAX_FLOPS else 1


def make_plan(spec: SweepSpec, fingerprint: str | None = None, skip_tuned: Collection[tuple[str, str]] = ()) -> Plan:
    """Expand the grid of ``spec`` into trials, deduplicated by id and ordered in stages. Trial ids
    include ``fingerprint``, the hash of the data actually loaded (computed here if not given). Models
    marked ``hparams: tuned`` read their tuned values, except the (model, teacher) pairs in ``skip_tuned``
    (what ``kdtune tune`` is tuning)."""
    from kdtune.tuning.values import apply_values

    if fingerprint is None:
        from kdtune.data import data_fingerprint

        try:
            fingerprint = data_fingerprint(spec.data, spec.data_root)
        except ValueError as e:
            raise KdtuneError(f"{spec.source}: data: {e}") from None
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

    def from_data(label: str, seed: int, overrides: tuple[tuple[str, Any], ...]) -> Trial:
        model = spec.models[label]
        train = resolve_train(spec, model, student=False, overrides=overrides)
        loss = LossSpec(kind="ce", w_hard=1.0, w_soft=0.0)
        values = _tuned(spec, label, NO_TEACHER, skip_tuned)
        if values:
            train, _ = apply_values(train, loss, {k: v for k, v in values.items() if k not in LOSS_SETTINGS})
        cfg = TrialConfig(model.arch, model.params, spec.data, train, loss, seed, None, spec.outputs, fingerprint)
        return add(Trial(cfg, 1, label, NO_TEACHER))

    for (teacher, student), overrides in itertools.product(grid.pairs, _train_overrides(spec)):
        for seed in grid.seeds:
            if teacher == NO_TEACHER:
                from_data(student, seed, overrides)
                continue
            t_seed = seed if grid.teacher_seed == "same" else int(grid.teacher_seed)
            t = from_data(teacher, t_seed, ())
            model = spec.models[student]
            train = resolve_train(spec, model, student=True, overrides=overrides)
            if train.augment is None:
                needs_logits.add(t.id)
            values = _tuned(spec, student, teacher, skip_tuned)
            for tau, w_hard, w_soft, kind in itertools.product(grid.temperature, grid.w_hard, grid.w_soft, grid.loss):
                loss = LossSpec(kind=kind, temperature=tau, w_hard=w_hard, w_soft=w_soft)
                if values:  # tuned values replace the grid's for this pair (equal cells are one trial)
                    train, loss = apply_values(train, loss, values)
                cfg = TrialConfig(model.arch, model.params, spec.data, train, loss, seed, t.id, spec.outputs, fingerprint)
                add(Trial(cfg, t.stage + 1, student, teacher, t_seed))

    by_config: dict[tuple[Any, ...], list[Trial]] = defaultdict(list)
    for trial in trials.values():
        seedless = dataclasses.replace(trial.config, seed=0, teacher_id=None)
        by_config[(trial.stage, trial.student, trial.teacher, seedless)].append(trial)
    n_stages = max(t.stage for t in trials.values())
    stages: list[list[TrialGroup]] = [[] for _ in range(n_stages)]
    for (stage, *_), members in by_config.items():
        members.sort(key=lambda t: t.seed)
        k = spec.execution.seeds_per_trial
        k = auto_seeds_per_trial(spec, members[0].config, len(members)) if k == "auto" else k
        for i in range(0, len(members), k):
            stages[stage - 1].append(TrialGroup(tuple(members[i : i + k])))
    return Plan(spec, stages, trials, needs_logits)
