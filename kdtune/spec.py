"""Sweep files: YAML (:func:`load_yaml`: safe loading, YAML 1.2 numbers) → a validated, typed :class:`SweepSpec`.

Everything a person wrote is checked here, before any work starts; a wrong value raises
:class:`~kdtune.errors.SpecError`, one line naming the file, the field and what is allowed.
"""

from __future__ import annotations

import inspect
import itertools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from kdtune import stats
from kdtune.data import DATASETS, EVAL_SOURCES, DataInfo, DataSpec, EvalSetSpec, make_dataset
from kdtune.data.augment import AUGMENTATIONS, NON_IDENTITY
from kdtune.data.corruptions import CORRUPTIONS
from kdtune.distill import KD_LOSSES, LossSpec, distill_epochs, switches
from kdtune.errors import KdtuneError, SpecError
from kdtune.models import MODELS, check_model
from kdtune.optim import OPTIMIZERS, SCHEDULES, schedule_warning
from kdtune.tuning.space import DIRECTIONS, LOSS_SETTINGS, AshaSpec, TuneSpec, parse_spaces

Params = tuple[tuple[str, Any], ...]
NO_TEACHER = "data"
SELF_TEACHER = "self"
SELECT_CHOICES = ("last", "val_accuracy", "val_nll")
SELECT_FROM = ("first_epoch", "last_switch")  # TrainSpec.select_from: derived from the loss, never written in a sweep
DEVICE_CHOICES = ("auto", "cpu", "cuda")
# grid.student_streams: whether a student's random streams are drawn apart from those of the models trained from
# data (today's default: a self-distilled student does not start as an exact copy of its teacher) or shared with them
STUDENT_STREAMS = ("apart", "shared")
_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_.+-]*$")


# YAML 1.2 core-schema floats that YAML 1.1 (PyYAML) reads as strings: 3e-4, 1e5, -2E-3, -.5, 5. (a dot or
# an exponent is required, so integers stay integers).
_FLOAT_12 = re.compile(r"^[-+]?(?:(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+)$")


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader (no Python objects) that also reads YAML 1.2 floats such as ``3e-4``."""


class _Dumper(yaml.SafeDumper):
    """``yaml.safe_dump``'s dumper that quotes strings :class:`_Loader` would read as numbers (``'3e-4'``)."""


for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+.0123456789"))


def load_yaml(text: str) -> Any:
    """Parse YAML like ``yaml.safe_load``, but read every number YAML 1.2 reads (``3e-4`` is 0.0003,
    not a string); quoted scalars stay strings. Raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_Loader)  # a SafeLoader: no Python objects


def dump_yaml(data: Any) -> str:
    """``yaml.safe_dump`` (key order kept) whose output :func:`load_yaml` reads back unchanged."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False)


def freeze(value: Any) -> Any:
    """Lists → tuples and mappings → sorted (key, value) tuples, recursively (hashable, canonical)."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(params: Params) -> dict[str, Any]:
    """A parameter tuple back as keyword arguments."""
    return dict(params)


@dataclass(frozen=True)
class ScheduleSpec:
    """A learning-rate schedule from :data:`kdtune.optim.SCHEDULES` and its parameters."""

    name: str = "constant"
    params: Params = ()


@dataclass(frozen=True)
class AugmentSpec:
    """A random augmentation from :data:`kdtune.data.augment.AUGMENTATIONS` and its parameters."""

    name: str
    params: Params = ()


@dataclass(frozen=True)
class TrainSpec:
    """How one model is trained: optimizer, schedule, regularization, selection."""

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    dropout: float = 0.0
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    schedule: ScheduleSpec = ScheduleSpec()
    augment: AugmentSpec | None = None
    select: str = "val_accuracy"
    # the epochs ``select`` chooses among: every one ("first_epoch"), or, for a student whose loss switches between
    # the labels and its teacher, those from its last switch on ("last_switch", kdtune.distill.selection_epochs).
    # Set by the planner from the loss (:func:`with_selection`), not by sweep files; trials trained before kdtune
    # had it read "first_epoch", as they were selected, and keep their ids.
    select_from: str = "first_epoch"


def with_selection(train: TrainSpec, loss: LossSpec) -> TrainSpec:
    """``train`` with the selection rule of ``loss``: ``select_from`` "last_switch" where the loss switches inside
    ``train.epochs`` epochs, "first_epoch" otherwise."""
    select_from = SELECT_FROM[1] if switches(loss, train.epochs) else SELECT_FROM[0]
    return train if train.select_from == select_from else replace(train, select_from=select_from)


@dataclass(frozen=True)
class ModelSpec:
    """A model of the sweep: a label (used in tables), a registered architecture and its settings."""

    label: str
    arch: str
    params: Params = ()
    train: Params = ()  # overrides of the sweep's ``train`` for this model
    distill: Params = ()  # overrides of the sweep's ``distill`` for this model as a student
    tuned: tuple[str, ...] = ()  # teachers ("data": trained from data) whose tuned values this model uses
    switch: Params = ()  # ``start``/``stop`` of this model's ``distill`` (when a student distils; see kdtune.distill)


@dataclass(frozen=True)
class SeedUnit:
    """One unit of replication of a configuration: the seed of its initialisation stream (initial weights) and
    of its data stream (data order, dropout masks, augmentation draws), and its number ``seed`` (the results'
    ``seed`` column). With ``grid.seeds`` unit s is (s, s), numbered s; with ``grid.init_seeds`` × ``grid.data_seeds``
    the units are their crossing, numbered 0, 1, … in that order (initialisation seeds outer)."""

    seed: int
    init: int
    data: int


@dataclass(frozen=True)
class GridSpec:
    """The grid: (teacher, student) pairs × distillation settings × training overrides × seed units."""

    pairs: tuple[tuple[str, str], ...]  # (teacher label or "data", student label)
    temperature: tuple[float, ...] = (1.0,)
    w_hard: tuple[float, ...] = (0.0,)
    w_soft: tuple[float, ...] = (1.0,)
    loss: tuple[str, ...] = ("hinton",)
    seeds: tuple[int, ...] = (0,)
    teacher_seed: str | int = "same"  # "same": student unit k reads teacher unit k; an int: that unit for every student
    train: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # train field → values, crossed
    start: tuple[float | int, ...] | None = None  # switch points (None: not an axis; the distill sections decide)
    stop: tuple[float | int | None, ...] | None = None
    init_seeds: tuple[int, ...] | None = None  # the streams set apart (None: not an axis; ``seeds`` decides)
    data_seeds: tuple[int, ...] | None = None
    student_streams: str = STUDENT_STREAMS[0]

    @property
    def streams_apart(self) -> bool:
        """Whether the grid sets the initialisation and data streams apart (``init_seeds``/``data_seeds``)."""
        return self.init_seeds is not None or self.data_seeds is not None

    def units(self) -> tuple[SeedUnit, ...]:
        """The seed units every configuration is trained on (:class:`SeedUnit`); an axis left out is held at 0."""
        if not self.streams_apart:
            return tuple(SeedUnit(s, s, s) for s in self.seeds)
        pairs = itertools.product(self.init_seeds or (0,), self.data_seeds or (0,))
        return tuple(SeedUnit(k, i, d) for k, (i, d) in enumerate(pairs))

    def teacher_unit(self, unit: SeedUnit) -> SeedUnit:
        """The unit of the teacher a student of ``unit`` reads (``teacher_seed``)."""
        if self.teacher_seed == "same":
            return unit
        k = int(self.teacher_seed)
        return self.units()[k] if self.streams_apart else SeedUnit(k, k, k)


@dataclass(frozen=True)
class Resources:
    """What one Ray Tune trial asks for; fractions allowed."""

    cpu: float = 1.0
    gpu: float = 0.0


@dataclass(frozen=True)
class ExecutionSpec:
    """How trials are executed."""

    seeds_per_trial: int | str = 1  # or "auto" (kdtune.plan.auto_seeds_per_trial); seeds of a group train batched
    eval_batch_size: int = 512  # how many examples a forward pass takes at evaluation (no effect on results)
    max_concurrent_trials: int | None = None
    max_failures: int = 0
    device: str = "auto"
    tensorboard: bool = False  # per-trial TensorBoard curves in RUN/tensorboard/ (not part of trial ids)


@dataclass(frozen=True)
class OutputSpec:
    """What each trial leaves beyond its metrics. ``feature_epochs``: epochs (0 = initialisation, sorted,
    distinct) at which a trial keeps penultimate features of the fixed subset for training paths; epochs
    beyond a model's training are skipped (models of one sweep may train for different epochs)."""

    feature_examples: int = 1000
    feature_epochs: tuple[int, ...] = ()


REPORT_METRICS = ("accuracy", "nll", "ece", "agreement", "kl", "im", "d_accuracy", "a_accuracy", "perplexity",
                  "token_nll")  # fmt: skip
SETTING_COLUMNS = ("temperature", "w_hard", "w_soft", "kd_loss", "start", "stop", "lr", "weight_decay", "dropout",
                   "label_smoothing", "grad_clip", "epochs", "batch_size", "optimizer", "schedule", "augment")  # fmt: skip
CONFIG_COLUMNS = ("teacher_config", "config")  # a teacher's / the model's own other settings, where they differ (results.py)
# what tables can group by
REPORT_KEYS = ("student", "teacher", "eval_set", "seed", "fold", "arch", *SETTING_COLUMNS, *CONFIG_COLUMNS)


@dataclass(frozen=True)
class ReportSpec:
    """Defaults of ``kdtune report`` (and of the table ``kdtune run`` prints) for this sweep."""

    metrics: tuple[str, ...] = ("accuracy", "ece")
    rows: tuple[str, ...] = ("student",)
    cols: tuple[str, ...] = ("eval_set", "teacher")
    eval_sets: tuple[str, ...] | None = None
    digits: int = 3
    # the statistics of the tables (kdtune.stats; the flags of `kdtune report` of the same names)
    interval: str = "std"  # what ± shows: std, se or ci95
    compare: str | None = None  # KEY=VALUE, e.g. teacher=data: every cell against that reference cell
    test: str = "auto"
    correction: str = "holm"
    alpha: float = stats.ALPHA
    bold: str | None = None  # best
    seed: int = stats.SEED  # of the bootstrap and permutation tests


def as_compare(value: Any) -> str:
    """``report.compare``: ``KEY=VALUE`` with KEY a report key (``teacher=data``)."""
    if not isinstance(value, str):
        raise _Bad(f"must be a string KEY=VALUE (e.g. teacher=data), got {_kind(value)} {value!r}")
    key, eq, rest = value.partition("=")
    if not eq or not key.strip() or not rest.strip():
        raise _Bad(f"must be KEY=VALUE, e.g. teacher=data; got {value!r}")
    if key.strip() not in REPORT_KEYS:
        raise _Bad(f"unknown compare key {key.strip()!r}; valid keys: {', '.join(REPORT_KEYS)}")
    return value


def parse_report(raw: Any, source: str) -> ReportSpec:
    """The ``report`` section of a sweep file (also read back from a run folder's sweep.yaml)."""
    sec = _Section(source, "report", raw, [f.name for f in fields(ReportSpec)])
    return ReportSpec(
        metrics=sec.get("metrics", as_list(as_str(REPORT_METRICS)), ReportSpec.metrics),
        rows=sec.get("rows", as_list(as_str(REPORT_KEYS)), ReportSpec.rows),
        cols=sec.get("cols", as_list(as_str(REPORT_KEYS)), ReportSpec.cols),
        eval_sets=sec.get("eval_sets", as_list(as_str()), None),
        digits=sec.get("digits", as_int(ge=0), 3),
        interval=sec.get("interval", as_str(stats.INTERVALS), ReportSpec.interval),
        compare=sec.get("compare", as_compare, None),
        test=sec.get("test", as_str(stats.TESTS), ReportSpec.test),
        correction=sec.get("correction", as_str(stats.CORRECTIONS), ReportSpec.correction),
        alpha=sec.get("alpha", as_float(gt=0, lt=1), ReportSpec.alpha),
        bold=sec.get("bold", as_str(("best",)), None),
        seed=sec.get("seed", as_int(ge=0), ReportSpec.seed),
    )


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep file."""

    name: str
    source: str
    output: Path
    data: DataSpec
    data_root: Path | None
    models: dict[str, ModelSpec]
    train: Params
    distill: Params
    grid: GridSpec
    switch: Params = ()  # ``start``/``stop`` of the sweep's ``distill`` section
    resources: Resources = Resources()
    execution: ExecutionSpec = ExecutionSpec()
    outputs: OutputSpec = OutputSpec()
    report: ReportSpec = ReportSpec()
    tune: TuneSpec = TuneSpec()  # noqa: RUF009  (frozen, so sharing the default is safe)
    description: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


# ---------------------------------------------------------------- value checks


class _Bad(ValueError):
    """A value that fails a check; ``suffix`` extends the field name (e.g. ``[2]``)."""

    def __init__(self, message: str, suffix: str = "") -> None:
        super().__init__(message)
        self.suffix = suffix


Conv = Callable[[Any], Any]


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(f"must be {what}, got {_kind(value)} {value!r}")
    if not math.isfinite(value):
        raise _Bad(f"must be a finite number, got {value!r}")
    return float(value)


def as_float(gt: float | None = None, ge: float | None = None, lt: float | None = None) -> Conv:
    """A number within the given bounds, as float."""
    bounds = [f"> {gt}" if gt is not None else "", f">= {ge}" if ge is not None else "", f"< {lt}" if lt is not None else ""]
    what = "a number" + (" " + " and ".join(b for b in bounds if b) if any(bounds) else "")

    def conv(value: Any) -> float:
        v = _number(value, what)
        if (gt is not None and not v > gt) or (ge is not None and not v >= ge) or (lt is not None and not v < lt):
            raise _Bad(f"must be {what}, got {value!r}")
        return v

    return conv


def as_int(ge: int | None = None) -> Conv:
    """An integer (not a bool) >= ``ge``."""
    what = "an integer" + (f" >= {ge}" if ge is not None else "")

    def conv(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or (ge is not None and value < ge):
            raise _Bad(f"must be {what}, got {_kind(value)} {value!r}")
        return value

    return conv


def as_str(choices: Sequence[str] | None = None) -> Conv:
    """A string, optionally one of ``choices``."""

    def conv(value: Any) -> str:
        if not isinstance(value, str):
            raise _Bad(f"must be a string, got {_kind(value)} {value!r}")
        if choices is not None and value not in choices:
            raise _Bad(f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    return conv


def as_bool() -> Conv:
    """true or false (not 0 or 1)."""

    def conv(value: Any) -> bool:
        if not isinstance(value, bool):
            raise _Bad(f"must be true or false, got {_kind(value)} {value!r}")
        return value

    return conv


def as_list(item: Conv, allow_scalar: bool = True) -> Conv:
    """A non-empty list of items (a single item counts as a one-element list if ``allow_scalar``)."""

    def conv(value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list):
            if allow_scalar and value is not None and not isinstance(value, Mapping):
                value = [value]
            else:
                raise _Bad(f"must be a list, got {_kind(value)}")
        if not value:
            raise _Bad("must not be empty")
        out = []
        for i, v in enumerate(value):
            try:
                out.append(item(v))
            except _Bad as e:
                raise _Bad(str(e), f"[{i}]{e.suffix}") from None
        return tuple(out)

    return conv


def _seeds_per_trial(value: Any) -> int | str:
    """``execution.seeds_per_trial``: an integer >= 1 or ``auto``."""
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Bad(f"must be an integer >= 1 or auto, got {_kind(value)} {value!r}")
    return value


def optional(conv: Conv) -> Conv:
    """``None`` or a value passing ``conv``."""
    return lambda value: None if value is None else conv(value)


def _callable_params(fn: Callable[..., Any], skip: Sequence[str]) -> dict[str, inspect.Parameter]:
    return {n: p for n, p in inspect.signature(fn).parameters.items() if n not in skip and n != "self"}


def _like(value: Any, default: Any) -> bool:
    """Whether ``value`` has the type of a parameter whose default is ``default``."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (tuple, list)):
        return isinstance(value, list)
    return isinstance(value, (int, float, str, list))


def _named_params(registry_kind: str, fn: Callable[..., Any], skip: Sequence[str], raw: Mapping[str, Any]) -> Params:
    """Check ``raw`` against ``fn``'s keyword parameters; return all of them, defaults filled in."""
    allowed = _callable_params(fn, skip)
    for k, v in raw.items():
        if k not in allowed:
            raise _Bad(f"unknown parameter {k!r} for this {registry_kind}; allowed: {', '.join(allowed) or 'none'}", f".{k}")
        if not _like(v, allowed[k].default):
            raise _Bad(f"must be of the type of its default {allowed[k].default!r}, got {_kind(v)} {v!r}", f".{k}")
    defaults = {k: p.default for k, p in allowed.items() if p.default is not inspect.Parameter.empty}
    given = {k: float(v) if isinstance(defaults.get(k), float) else v for k, v in raw.items()}  # 1 and 1.0: one id
    return freeze(defaults | given)  # defaults made explicit: they are part of a trial's identity


def _registered(registry: Any) -> Conv:
    def conv(value: Any) -> str:
        as_str()(value)
        if value not in registry:
            raise _Bad(f"unknown {registry.kind} {value!r}; known: {', '.join(registry.names())}")
        return value

    return conv


def as_schedule(value: Any) -> ScheduleSpec:
    """``"exponential"`` or ``{name: exponential, decay_rate: 0.9}``."""
    raw = {"name": value} if isinstance(value, str) else value
    if not isinstance(raw, Mapping) or "name" not in raw:
        raise _Bad(f"must be a schedule name or a mapping with 'name' (one of {', '.join(SCHEDULES.names())})")
    name = _registered(SCHEDULES)(raw["name"])
    params = {k: v for k, v in raw.items() if k != "name"}
    frozen = _named_params("schedule", SCHEDULES.get(name), ("epoch", "total_epochs"), params)
    for k, v in params.items():
        try:
            {"alpha": as_float(ge=0, lt=1.0000001), "t_mul": as_float(ge=1)}.get(k, as_float(gt=0))(v)
        except _Bad as e:
            raise _Bad(str(e), f".{k}") from None
    return ScheduleSpec(name, frozen)


def as_augment(value: Any) -> AugmentSpec | None:
    """``null``, ``"translate"`` or ``{name: translate, max_shift: 2}``."""
    if value is None:
        return None
    raw = {"name": value} if isinstance(value, str) else value
    if not isinstance(raw, Mapping) or "name" not in raw:
        raise _Bad(f"must be null, an augmentation name or a mapping with 'name' (one of {', '.join(AUGMENTATIONS.names())})")
    name = _registered(AUGMENTATIONS)(raw["name"])
    params = {k: v for k, v in raw.items() if k != "name"}
    return AugmentSpec(name, _named_params("augmentation", AUGMENTATIONS.get(name), ("x", "generator", NON_IDENTITY), params))


TRAIN_FIELDS: dict[str, Conv] = {
    "epochs": as_int(ge=1),
    "batch_size": as_int(ge=1),
    "optimizer": _registered(OPTIMIZERS),
    "lr": as_float(gt=0),
    "weight_decay": as_float(ge=0),
    "dropout": as_float(ge=0, lt=1),
    "label_smoothing": as_float(ge=0, lt=1),
    "grad_clip": optional(as_float(gt=0)),
    "schedule": as_schedule,
    "augment": as_augment,
    "select": as_str(SELECT_CHOICES),
}


def as_switch(stop: bool = False) -> Conv:
    """A switch point of distillation (:mod:`kdtune.distill`): a fraction in [0, 1) of the epochs (as float;
    0 is the first epoch) or an epoch number >= 1 (as int); ``stop`` also takes null (the end) and not 0."""
    what = "a fraction in " + ("(0, 1)" if stop else "[0, 1)") + " of the epochs or an epoch number (an integer >= 1)"

    def conv(value: Any) -> float | int | None:
        if stop and value is None:
            return None
        v = _number(value, what + (" or null" if stop else ""))
        if isinstance(value, int) and value >= 1:
            return value
        if 0 <= v < 1 and not (stop and v == 0):
            return v
        raise _Bad(f"must be {what}{' or null' if stop else ''}, got {value!r}")

    return conv


SWITCH_FIELDS: dict[str, Conv] = {"start": as_switch(), "stop": as_switch(stop=True)}
GRID_TRAIN_AXES = ("epochs", "batch_size", "optimizer", "lr", "weight_decay", "dropout", "label_smoothing", "grad_clip")


# ---------------------------------------------------------------- sections


class _Section:
    """Reads one mapping of the sweep file field by field; unknown keys are errors."""

    def __init__(self, source: str, path: str, raw: Any, allowed: Sequence[str] | None = None) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise SpecError(source, path, f"must be a mapping, got {_kind(raw)}")
        self.source, self.path, self.raw = source, path, raw
        if allowed is not None:
            unknown = [k for k in raw if k not in allowed]
            if unknown:
                raise SpecError(source, self.name(str(unknown[0])), f"unknown key; allowed here: {', '.join(allowed)}")

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path and key else (key or self.path)

    def check(self, key: str, conv: Conv, value: Any) -> Any:
        try:
            return conv(value)
        except _Bad as e:
            raise SpecError(self.source, self.name(key) + e.suffix, str(e)) from None

    def get(self, key: str, conv: Conv, default: Any) -> Any:
        if key not in self.raw:
            return default
        return self.check(key, conv, self.raw[key])


def _train_overrides(source: str, path: str, raw: Any) -> Params:
    sec = _Section(source, path, raw, list(TRAIN_FIELDS))
    return tuple((k, sec.check(k, TRAIN_FIELDS[k], v)) for k, v in sec.raw.items())


def _distill_section(source: str, path: str, raw: Any) -> tuple[Params, Params]:
    """A ``distill`` section: its training overrides, and its switch points (``start``, ``stop``)."""
    sec = _Section(source, path, raw, [*TRAIN_FIELDS, *SWITCH_FIELDS])
    train = tuple((k, sec.check(k, TRAIN_FIELDS[k], v)) for k, v in sec.raw.items() if k in TRAIN_FIELDS)
    switch = tuple((k, sec.check(k, SWITCH_FIELDS[k], v)) for k, v in sec.raw.items() if k in SWITCH_FIELDS)
    return train, switch


def _data(source: str, raw: Any) -> tuple[DataSpec, Path | None]:
    sec = _Section(
        source,
        "data",
        raw,
        ["name", "params", "val_size", "folds", "split_seed", "corruption_seed", "eval_sets", "invariance", "root"],
    )
    if "name" not in sec.raw:
        raise SpecError(source, "data.name", f"is required; one of {', '.join(DATASETS.names())}")
    name = sec.get("name", _registered(DATASETS), None)
    cls = DATASETS.get(name)
    params_raw = _Section(source, "data.params", sec.raw.get("params")).raw
    params = sec.check("params", lambda v: _named_params("data set", cls.__init__, (), v), params_raw)
    try:
        cls(**dict(params))
    except (TypeError, ValueError) as e:
        raise SpecError(source, "data.params", str(e)) from None

    def val_size(v: Any) -> float | int:
        if isinstance(v, float) and 0 < v < 1:
            return v
        if isinstance(v, int) and not isinstance(v, bool) and v >= 1:
            return v
        raise _Bad(f"must be a fraction in (0, 1) or a count >= 1, got {v!r}")

    eval_sets = []
    for i, item in enumerate(sec.get("eval_sets", as_list(lambda v: v), tuple(cls.default_eval_sets))):
        where = f"data.eval_sets[{i}]"
        if isinstance(item, str):
            known = {"train": EvalSetSpec("train", "train")} | dict(cls.default_eval_sets)  # train: the training split
            if item not in known:
                raise SpecError(
                    source,
                    where,
                    f"unknown eval set {item!r} for {name}; known: {', '.join(known)} "
                    "(or a mapping with name, source, corruption)",
                )
            eval_sets.append(known[item])
            continue
        es = _Section(source, where, item)
        if not isinstance(es.raw.get("name"), str) or es.raw["name"] == "val":
            raise SpecError(source, where + ".name", "is required: a string other than 'val' (val is always evaluated)")
        corruption = es.get("corruption", _registered(CORRUPTIONS), "identity")
        src = es.get("source", as_str(EVAL_SOURCES), "test")
        cparams = {k: v for k, v in es.raw.items() if k not in ("name", "corruption", "source")}
        cp = es.check("", lambda v, c=corruption: _named_params("corruption", CORRUPTIONS.get(c), ("x", "generator"), v), cparams)
        eval_sets.append(EvalSetSpec(es.raw["name"], src, corruption, cp))
    names = [e.name for e in eval_sets]
    if len(set(names)) != len(names):
        raise SpecError(source, "data.eval_sets", f"names must be unique, got {names}")
    root = sec.get("root", optional(as_str()), None)
    folds = sec.get("folds", as_int(ge=2), 1)
    if folds > 1 and "val_size" in sec.raw:
        raise SpecError(
            source, "data.folds", "cannot be combined with data.val_size (with k folds each fold is the validation split once)"
        )
    spec = DataSpec(
        name=name,
        params=params,
        val_size=sec.get("val_size", val_size, 0.1),
        split_seed=sec.get("split_seed", as_int(ge=0), 0),
        corruption_seed=sec.get("corruption_seed", as_int(ge=0), 0),
        eval_sets=tuple(eval_sets),
        folds=folds,
        invariance=sec.get("invariance", as_invariance, None),
    )
    return spec, Path(root) if root else None


def as_invariance(value: Any) -> Params:
    """``data.invariance``: ``translate`` or ``{name: translate, max_shift: 3}``, an augmentation of
    :data:`kdtune.data.augment.AUGMENTATIONS` whose invariance metric IM every evaluation measures; its
    parameters (defaults filled in) frozen together with ``name`` and ``non_identity: true``: the transformed
    copies are drawn without the identity (every copy really transformed; a config without that key, of a
    kdtune before it, drew the identity too, and keeps its own trial id and its own definition)."""
    raw = {"name": value} if isinstance(value, str) else value
    if not isinstance(raw, Mapping) or "name" not in raw:
        raise _Bad(f"must be an augmentation name or a mapping with 'name' (one of {', '.join(AUGMENTATIONS.names())})")
    name = _registered(AUGMENTATIONS)(raw["name"])
    fn = AUGMENTATIONS.get(name)
    if NON_IDENTITY not in inspect.signature(fn).parameters:
        raise _Bad(
            f"augmentation {name!r} cannot draw transformations other than the identity ({NON_IDENTITY}), so it cannot define IM"
        )
    params = {k: v for k, v in raw.items() if k != "name"}
    frozen = _named_params("augmentation", fn, ("x", "generator", NON_IDENTITY), params)
    return freeze(dict(frozen) | {"name": name, NON_IDENTITY: True})


def _check_invariance(source: str, data: DataSpec, info: DataInfo) -> None:
    """Apply ``data.invariance`` to two blank inputs of the data set's shape: parameters that fail only on
    data (e.g. a negative shift) or a transformation for other inputs fail here, in one line."""
    if data.invariance is None:
        return
    import torch

    params = dict(data.invariance)
    name = params.pop("name")
    if info.kind == "tokens":
        raise SpecError(source, "data.invariance", f"needs inputs that {name} can transform; {data.name} has token sequences")
    x = torch.zeros(2, *info.input_shape)
    try:
        out = AUGMENTATIONS.get(name)(x, generator=torch.Generator().manual_seed(0), **params)
    except Exception as e:  # any error of the augmentation on blank inputs means a bad parameter or input kind
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
        shown = {k: v for k, v in params.items() if k != NON_IDENTITY}  # the sweep's settings, not the fixed keyword
        what = f"{name} with {shown or 'the defaults'}"
        raise SpecError(source, "data.invariance", f"{what} fails on {data.name}'s inputs: {msg}") from None
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        raise SpecError(source, "data.invariance", f"{name} does not keep the shape of {data.name}'s inputs {info.input_shape}")


def _models(source: str, raw: Any, info: DataInfo) -> dict[str, ModelSpec]:
    sec = _Section(source, "models", raw)
    if not sec.raw:
        raise SpecError(source, "models", "must define at least one model, e.g. {CNN: {arch: cnn}}")
    out = {}
    for label, body in sec.raw.items():
        where = f"models.{label}"
        if not isinstance(label, str) or not _LABEL.match(label) or label in (NO_TEACHER, SELF_TEACHER):
            raise SpecError(
                source,
                where,
                "model labels must start with a letter, use letters, digits, _ . + - "
                f"and not be {NO_TEACHER!r} or {SELF_TEACHER!r}",
            )
        m = _Section(
            source, where, {"arch": body} if isinstance(body, str) else body, ["arch", "params", "train", "distill", "hparams"]
        )
        if "arch" not in m.raw:
            raise SpecError(source, where + ".arch", f"is required; one of {', '.join(MODELS.names())}")
        arch = m.get("arch", _registered(MODELS), None)
        params = _Section(source, where + ".params", m.raw.get("params")).raw
        frozen = m.check(
            "params", lambda v, a=arch: _named_params("model", MODELS.get(a).__init__, ("info", "dropout"), v), params
        )
        try:  # build it and run it on a small batch: parameters that only fail on data fail here
            check_model(arch, info, thaw(frozen))
        except Exception as e:  # any error from a model's constructor or forward means a bad parameter
            msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise SpecError(source, where + ".params", f"{msg} (with {dict(thaw(frozen)) or 'the defaults'})") from None
        distill, switch = _distill_section(source, where + ".distill", m.raw.get("distill"))
        out[label] = ModelSpec(
            label,
            arch,
            frozen,
            _train_overrides(source, where + ".train", m.raw.get("train")),
            distill,
            _hparams(source, where + ".hparams", m.raw.get("hparams"), list(sec.raw)),
            switch,
        )
    return out


def _hparams(source: str, where: str, raw: Any, labels: Sequence[str]) -> tuple[str, ...]:
    """``hparams: tuned`` (trained from data) or ``{data: tuned, CNN: tuned}`` (also as CNN's student)."""
    if raw is None or raw == "defaults":
        return ()
    if raw == "tuned":
        return (NO_TEACHER,)
    if isinstance(raw, Mapping):
        out = []
        for teacher, value in raw.items():
            if teacher not in (NO_TEACHER, *labels):
                raise SpecError(source, f"{where}.{teacher}", f"must be data or a model label ({', '.join(labels)})")
            if value not in ("tuned", "defaults"):
                raise SpecError(source, f"{where}.{teacher}", f"must be tuned or defaults, got {value!r}")
            if value == "tuned":
                out.append(teacher)
        return tuple(out)
    raise SpecError(source, where, f"must be tuned, defaults or a mapping {{data: tuned, TEACHER: tuned}}, got {raw!r}")


def _grid(source: str, raw: Any, models: Mapping[str, ModelSpec]) -> GridSpec:
    keys = ["students", "teachers", "pairs", "temperature", "w_hard", "w_soft", "loss", "seeds", "init_seeds", "data_seeds",
            "student_streams", "teacher_seed", "start", "stop", *GRID_TRAIN_AXES]  # fmt: skip
    sec = _Section(source, "grid", raw, keys)
    model_label = as_str(list(models))

    def teacher(v: Any) -> str:
        return as_str([NO_TEACHER, SELF_TEACHER, *models])(v)

    if "pairs" in sec.raw:
        if "students" in sec.raw or "teachers" in sec.raw:
            raise SpecError(source, "grid.pairs", "use either pairs or students × teachers, not both")

        def pair(v: Any) -> tuple[str, str]:
            if isinstance(v, str) and "->" in v:
                v = dict(zip(("teacher", "student"), (s.strip() for s in v.split("->", 1)), strict=True))
            if not isinstance(v, Mapping) or set(v) != {"teacher", "student"}:
                raise _Bad("each pair must be 'TEACHER -> STUDENT' or {teacher: ..., student: ...}")
            return teacher(v["teacher"]), model_label(v["student"])

        pairs = sec.get("pairs", as_list(pair, allow_scalar=False), ())
    else:
        if "students" not in sec.raw:
            raise SpecError(source, "grid.students", f"is required (or grid.pairs); models: {', '.join(models)}")
        students = sec.get("students", as_list(model_label), ())
        teachers = sec.get("teachers", as_list(teacher), (NO_TEACHER,))
        pairs = tuple((t, s) for s in students for t in teachers)
    pairs = tuple(dict.fromkeys((s if t == SELF_TEACHER else t, s) for t, s in pairs))

    def seeds(v: Any) -> tuple[int, ...]:
        if isinstance(v, int) and not isinstance(v, bool):
            if v < 1:
                raise _Bad(f"a count of seeds must be >= 1, got {v}")
            return tuple(range(v))
        if not isinstance(v, list):
            raise _Bad(f"must be a count of seeds (an integer >= 1) or a list of distinct integers >= 0, got {_kind(v)} {v!r}")
        out = as_list(as_int(ge=0), allow_scalar=False)(v)
        if len(set(out)) != len(out):
            raise _Bad(f"seeds must be distinct, got {list(out)}")
        return out

    if "seeds" in sec.raw and ("init_seeds" in sec.raw or "data_seeds" in sec.raw):
        both = "init_seeds" if "init_seeds" in sec.raw else "data_seeds"
        raise SpecError(
            source,
            f"grid.{both}",
            "use either seeds (each seed sets initialisation and data order together) or init_seeds × data_seeds, not both",
        )
    n_units = len(sec.get("init_seeds", seeds, (0,))) * len(sec.get("data_seeds", seeds, (0,)))

    def teacher_seed(v: Any) -> str | int:
        if "init_seeds" in sec.raw or "data_seeds" in sec.raw:
            if v == "same" or (isinstance(v, int) and not isinstance(v, bool) and 0 <= v < n_units):
                return v
            raise _Bad(
                f"must be 'same' (student unit k reads teacher unit k) or the number of one of the {n_units} seed units "
                f"of init_seeds × data_seeds (0-{n_units - 1}), got {v!r}"
            )
        if v == "same" or (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
            return v
        raise _Bad(f"must be 'same' (student seed s reads teacher seed s) or a seed >= 0, got {v!r}")

    grid = GridSpec(
        pairs=pairs,
        temperature=sec.get("temperature", as_list(as_float(gt=0)), GridSpec.temperature),
        w_hard=sec.get("w_hard", as_list(as_float(ge=0)), GridSpec.w_hard),
        w_soft=sec.get("w_soft", as_list(as_float(ge=0)), GridSpec.w_soft),
        loss=sec.get("loss", as_list(_registered(KD_LOSSES)), GridSpec.loss),
        seeds=sec.get("seeds", seeds, GridSpec.seeds),
        teacher_seed=sec.get("teacher_seed", teacher_seed, "same"),
        train=tuple((k, sec.get(k, as_list(TRAIN_FIELDS[k]), ())) for k in GRID_TRAIN_AXES if k in sec.raw),
        start=sec.get("start", as_list(SWITCH_FIELDS["start"]), None),
        stop=sec.get("stop", as_list(SWITCH_FIELDS["stop"], allow_scalar=False), None),
        init_seeds=sec.get("init_seeds", seeds, None),
        data_seeds=sec.get("data_seeds", seeds, None),
        student_streams=sec.get("student_streams", as_str(STUDENT_STREAMS), STUDENT_STREAMS[0]),
    )
    if "student_streams" in sec.raw and all(t == NO_TEACHER for t, _ in pairs):
        raise SpecError(source, "grid.student_streams", "sets students' streams, but every pair here trains from data")
    for axis in ("start", "stop"):
        if axis in sec.raw and all(t == NO_TEACHER for t, _ in pairs):
            raise SpecError(
                source, f"grid.{axis}", "switches distillation on or off, but every pair here trains from data (no teacher)"
            )
    if any(t != NO_TEACHER for t, _ in pairs) and 0.0 in grid.w_hard and 0.0 in grid.w_soft:
        raise SpecError(
            source, "grid", "w_hard = 0 and w_soft = 0 together leave a student without a loss; drop one of the zeros"
        )
    return grid


def parse_sweep(
    raw: Any, source: str = "<sweep>", data_root: str | Path | None = None, output: str | Path | None = None
) -> SweepSpec:
    """Validate a sweep mapping (as loaded from YAML) into a :class:`SweepSpec`."""
    top = ["name", "description", "output", "data", "models", "train", "distill", "grid", "resources", "execution", "outputs",
           "report", "tune"]  # fmt: skip
    sec = _Section(source, "", raw, top)
    for key in ("data", "models", "grid"):
        if key not in sec.raw:
            raise SpecError(source, key, "is required (a sweep file needs data, models and grid)")
    stem = Path(source).stem if source != "<sweep>" else "sweep"
    name = sec.get("name", as_str(), stem)
    if not _LABEL.match(name):
        raise SpecError(source, "name", f"must be a folder-safe name (letters, digits, _ . + -), got {name!r}")
    data, root = _data(source, sec.raw["data"])
    models = _models(source, sec.raw["models"], make_dataset(data).describe())
    _check_invariance(source, data, make_dataset(data).describe())
    train = _train_overrides(source, "train", sec.raw.get("train"))
    distill, switch = _distill_section(source, "distill", sec.raw.get("distill"))
    grid = _grid(source, sec.raw["grid"], models)
    res = _Section(source, "resources", sec.raw.get("resources"), ["cpu", "gpu"])
    resources = Resources(res.get("cpu", as_float(ge=0), 1.0), res.get("gpu", as_float(ge=0), 0.0))
    if resources.cpu == 0 and resources.gpu == 0:
        raise SpecError(source, "resources", "a trial must ask for some cpu or gpu")
    ex = _Section(source, "execution", sec.raw.get("execution"), [f.name for f in fields(ExecutionSpec)])
    execution = ExecutionSpec(
        seeds_per_trial=ex.get("seeds_per_trial", _seeds_per_trial, 1),
        eval_batch_size=ex.get("eval_batch_size", as_int(ge=1), 512),
        max_concurrent_trials=ex.get("max_concurrent_trials", optional(as_int(ge=1)), None),
        max_failures=ex.get("max_failures", as_int(ge=0), 0),
        device=ex.get("device", as_str(DEVICE_CHOICES), "auto"),
        tensorboard=ex.get("tensorboard", as_bool(), False),
    )
    if execution.device == "cuda" and resources.gpu == 0:
        raise SpecError(source, "execution.device", "is cuda but resources.gpu is 0; ask for a gpu (fractions allowed)")
    outs = _Section(source, "outputs", sec.raw.get("outputs"), ["feature_examples", "feature_epochs"])
    epochs = outs.get("feature_epochs", as_list(as_int(ge=0)), ())
    if len(set(epochs)) != len(epochs):
        raise SpecError(source, "outputs.feature_epochs", f"must be distinct epochs, got {list(epochs)}")
    outputs = OutputSpec(outs.get("feature_examples", as_int(ge=0), 1000), tuple(sorted(epochs)))
    if outputs.feature_epochs and outputs.feature_examples == 0:
        raise SpecError(source, "outputs.feature_epochs", "needs outputs.feature_examples > 0")
    out_dir = Path(output) if output else Path(sec.get("output", as_str(), f"runs/{name}"))
    root = Path(data_root) if data_root else root
    spec = SweepSpec(
        name=name,
        source=source,
        output=out_dir,
        data=data,
        data_root=root,
        models=models,
        train=train,
        distill=distill,
        grid=grid,
        switch=switch,
        resources=resources,
        execution=execution,
        outputs=outputs,
        report=parse_report(sec.raw.get("report"), source),
        tune=_tune(source, sec.raw.get("tune"), models, train, distill),
        description=sec.get("description", as_str(), ""),
        raw=raw,
    )
    _check_switches(spec)
    return spec


def switch_points(spec: SweepSpec, model: ModelSpec) -> list[tuple[float | int, float | int | None]]:
    """The (start, stop) pairs of ``model`` as a student: the grid's axes, crossed, where given; else the
    value of its ``distill`` section, else the sweep's, else (0, None): distillation in every epoch."""
    layers = dict(spec.switch) | dict(model.switch)
    starts = spec.grid.start if spec.grid.start is not None else (layers.get("start", 0.0),)
    stops = spec.grid.stop if spec.grid.stop is not None else (layers.get("stop"),)
    return list(itertools.product(starts, stops))


def _check_switches(spec: SweepSpec) -> None:
    """Every switched student distils in at least one epoch: a start after the last epoch, or a stop at or
    before the start, is refused (one line naming where the values came from)."""
    for teacher, student in spec.grid.pairs:
        if teacher == NO_TEACHER:
            continue
        model = spec.models[student]
        for combo in itertools.product(*(v for _, v in spec.grid.train)):
            overrides = tuple(zip((k for k, _ in spec.grid.train), combo, strict=True))
            epochs = resolve_train(spec, model, student=True, overrides=overrides).epochs
            for start, stop in switch_points(spec, model):
                if distill_epochs(LossSpec("hinton", 1.0, 0.0, 1.0, start, stop), epochs):
                    continue
                grid = [f"grid.{k}" for k in ("start", "stop") if getattr(spec.grid, k) is not None]
                where = " and ".join(grid) or (f"models.{student}.distill" if model.switch else "distill")
                raise SpecError(
                    spec.source,
                    where,
                    f"start {start} and stop {stop} leave {student} (a student of {teacher}, {epochs} epochs) no distilled "
                    "epoch; fractions in [0, 1) count from epoch round(v·epochs)+1, integers are epoch numbers",
                )


def _tune(source: str, raw: Any, models: Mapping[str, ModelSpec], train: Params, distill: Params) -> TuneSpec:
    def schedule_of(model: str, teacher: str) -> ScheduleSpec:
        m = models[model]
        layers = [train, m.train] + ([distill, m.distill] if teacher != NO_TEACHER else [])
        return replace(TrainSpec(), **{k: v for layer in layers for k, v in layer}).schedule

    def check_setting(setting: str, model: str, teacher: str) -> str | None:
        """What is wrong with tuning ``setting`` at all (whatever its values): a schedule's unknown parameter."""
        if not setting.startswith("schedule."):
            return None
        name = schedule_of(model, teacher).name
        allowed = _callable_params(SCHEDULES.get(name), ("epoch", "total_epochs"))
        key = setting.split(".", 1)[1]
        if key not in allowed:
            return f"unknown parameter {key!r} for the schedule {name}; allowed: {', '.join(allowed) or 'none'}"
        return None

    def check_value(setting: str, value: Any, model: str, teacher: str) -> str | None:
        try:
            if setting in LOSS_SETTINGS:
                (as_float(gt=0) if setting == "temperature" else as_float(ge=0))(value)
            elif setting.startswith("schedule."):
                as_schedule({"name": schedule_of(model, teacher).name, setting.split(".", 1)[1]: value})
            else:
                TRAIN_FIELDS[setting](value)
        except _Bad as e:
            return str(e)
        return None

    if raw is None:
        return TuneSpec()
    sec = _Section(source, "tune", raw, ["metric", "seeds", "sampler_seed", "asha", "space"])

    def metric(v: Any) -> str:
        if not isinstance(v, str) or v not in DIRECTIONS:
            raise _Bad(f"must be a validation metric, one of {', '.join(DIRECTIONS)}; got {_kind(v)} {v!r}")
        return v

    def asha(v: Any) -> AshaSpec | None:
        if v is False or v is None:
            return None
        if v is True:
            return AshaSpec()
        if not isinstance(v, Mapping):
            raise _Bad(f"must be true, false or a mapping {{grace_period: 2, reduction_factor: 3}}; got {_kind(v)} {v!r}")
        a = _Section(source, "tune.asha", v, ["grace_period", "reduction_factor"])
        return AshaSpec(
            a.get("grace_period", as_int(ge=1), AshaSpec.grace_period),
            a.get("reduction_factor", as_float(gt=1), AshaSpec.reduction_factor),
        )

    return TuneSpec(
        metric=sec.get("metric", metric, TuneSpec.metric),
        seeds=sec.get("seeds", as_int(ge=1), TuneSpec.seeds),
        sampler_seed=sec.get("sampler_seed", as_int(ge=0), TuneSpec.sampler_seed),
        asha=sec.get("asha", asha, AshaSpec()),
        spaces=parse_spaces(sec.raw.get("space"), source, models, check_value, check_setting),
    )


def resolve_train(spec: SweepSpec, model: ModelSpec, student: bool = False, overrides: Params = ()) -> TrainSpec:
    """The training settings of one trial: defaults < sweep ``train`` < model ``train`` < (students
    only: sweep ``distill`` < model ``distill``) < grid values."""
    layers = [spec.train, model.train] + ([spec.distill, model.distill] if student else []) + [overrides]
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(dict(layer))
    return replace(TrainSpec(), **merged)


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``--set a.b.c=VALUE`` overrides (VALUE parsed as YAML) to a sweep mapping; ``VALUE`` null
    removes the field, so its default applies (e.g. ``grid.students=null`` before setting ``grid.pairs``)."""
    out: dict[str, Any] = dict(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise SpecError("--set", item, "expected KEY=VALUE with a dotted key, e.g. train.epochs=3")
        try:
            value = load_yaml(text)
        except yaml.YAMLError:
            raise SpecError("--set", key, f"value {text!r} is not valid YAML") from None
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = {}
            elif not isinstance(child, Mapping):
                raise SpecError("--set", key, f"{part!r} is not a mapping in the sweep file")
            node[part] = child = dict(child)
            node = child
        if value is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    return out


def _folder_message(path: Path) -> str:
    """What to say when a folder is given as the sweep file: the YAML files in it, or an example."""
    found = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if not found:
        return f"{path}: is a folder; give a sweep file (e.g. sweeps/quickstart.yaml)"
    shown = ", ".join(str(path / p.name) for p in found[:8]) + (f" and {len(found) - 8} more" if len(found) > 8 else "")
    example = next((p for p in found if p.name == "quickstart.yaml"), found[0])
    return f"{path}: is a folder; give a sweep file (e.g. {path / example.name}); sweep files in it: {shown}"


def _under(field: str, key: str) -> bool:
    """Whether error field ``field`` is the dotted ``key`` or inside the value set there."""
    return field == key or field.startswith((key + ".", key + "["))


def _blame_overrides(error: SpecError, overrides: Sequence[str], check: Callable[[], Any]) -> SpecError:
    """Who an error after ``--set`` is on: the ``--set`` flag that wrote that field (or a path to it that does
    not exist), the combination (the file alone does not fail so), or else the file. ``check`` validates the file alone."""
    keys = [o.partition("=")[0] for o in overrides]

    def on_set(field: str) -> SpecError:  # an unknown key is named: the user typed it, it may be a typo
        msg = error.message
        if msg.startswith("unknown key;"):
            msg = f"unknown key {error.field.rsplit('.', 1)[-1]!r}{msg[len('unknown key') :]}"
        return SpecError("--set", field, msg)

    if any(_under(error.field, k) for k in keys):
        return on_set(error.field)
    try:
        check()
    except KdtuneError as alone:  # e.g. a data error of the file alone: not this error
        if isinstance(alone, SpecError) and (alone.field, alone.message) == (error.field, error.message):
            return error  # the file fails so without --set too
    parents = [k for k in keys if error.field and k.startswith(error.field + ".")]
    if parents:  # e.g. trian.epochs: 'trian' is not a section; models.MLP.params.hidden=[-3]: the model fails
        return on_set(parents[0] if error.message.startswith("unknown key;") else error.field)
    return SpecError(f"{error.source} with --set", error.field, error.message)


def load_sweep(
    path: str | Path, overrides: Sequence[str] = (), data_root: str | Path | None = None, output: str | Path | None = None
) -> SweepSpec:
    """Read and validate a sweep file; raise a one-line error if anything in it is wrong."""
    path = Path(path)
    if path.is_dir():
        raise KdtuneError(_folder_message(path))
    if not path.is_file():
        raise KdtuneError(f"{path}: no such sweep file")
    try:
        raw = load_yaml(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(str(path), "", f"not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise KdtuneError(f"{path}: cannot read ({e})") from None
    if not isinstance(raw, Mapping):
        raise SpecError(str(path), "", f"must be a YAML mapping at the top level, got {_kind(raw)}")
    changed = apply_overrides(raw, overrides)
    try:
        return parse_sweep(changed, str(path), data_root=data_root, output=output)
    except SpecError as e:
        if not overrides:
            raise
        check = lambda: parse_sweep(raw, str(path), data_root=data_root, output=output)
        raise _blame_overrides(e, overrides, check) from None


def sweep_warnings(spec: SweepSpec) -> list[str]:
    """One line per model and role (trained from data, or as a student) whose learning-rate schedule ends
    training mid-cycle, e.g. a restart just before the end; such a run is valid but rarely what was meant."""
    roles: dict[tuple[str, bool, Params], None] = {}  # the trainings make_plan will plan, in its order
    axes = spec.grid.train
    for teacher, student in spec.grid.pairs:
        for combo in itertools.product(*(v for _, v in axes)):
            overrides = tuple(zip((k for k, _ in axes), combo, strict=True))
            if teacher == NO_TEACHER:
                roles[(student, False, overrides)] = None
            else:
                roles[(teacher, False, ())] = None  # teachers are trained without the grid's train axes
                roles[(student, True, overrides)] = None
    out: dict[str, None] = {}
    for label, student, overrides in roles:
        model = spec.models[label]
        train = resolve_train(spec, model, student, overrides)
        text = schedule_warning(train.schedule.name, thaw(train.schedule.params), train.epochs)
        if text is None:
            continue
        layers = [("train", spec.train), (f"models.{label}.train", model.train)]
        layers += [("distill", spec.distill), (f"models.{label}.distill", model.distill)] if student else []
        where = [name for name, layer in layers if "schedule" in dict(layer)][-1] + ".schedule"
        role = "as a student" if student else "trained from data"
        grid = f" with grid epochs {train.epochs}" if "epochs" in dict(overrides) else ""
        out[f"{spec.source}: models.{label} {role}{grid} ({where}): {text}"] = None
    return list(out)
