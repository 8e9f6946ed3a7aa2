"""The resolved configuration, below both the planner and the trainer: a sweep's models, grid and seed units once
read (:class:`ModelSpec`, :class:`GridSpec`, :class:`SeedUnit`) and a model's settings resolved from its layers
(:func:`resolve_train`, :func:`switch_points`); what a trial is (:class:`TrialConfig`, whose hash is the trial id,
and its parts), the search spaces of ``tune:`` once read, tuned values applied to a trial's
settings (:func:`apply_values`, for a search trial and for ``hparams: tuned`` alike) and tuned files read back.

Sweep files are read and checked in :mod:`kdtune.spec.sweepfile`; nothing here reads a sweep file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import AfterValidator, BaseModel, Field

from kdtune.errors import KdtuneError
from kdtune.labels import DIRECTIONS, INT_SETTINGS, LOSS_SETTINGS, NO_TEACHER, SELECT_FROM, STUDENT_STREAMS, TRAIN_SETTINGS
from kdtune.train.data import DataSpec, EvalSetSpec
from kdtune.train.data.augment import AUGMENTATIONS, NON_IDENTITY
from kdtune.train.distill import LossSpec, switches
from kdtune.train.optim import OPTIMIZERS, SCHEDULES
from kdtune.validation import (
    CFG,
    Choice,
    Float,
    Fraction,
    Items,
    NonNeg,
    PosFloat,
    PosInt,
    Registered,
    Seed,
    Str,
    StrictModel,
    by_name,
    params_model,
)
from kdtune.yamlio import dump_yaml, load_yaml

Params = tuple[tuple[str, Any], ...]


def freeze(value: Any) -> Any:
    """Lists → tuples and mappings → sorted (key, value) tuples, recursively (hashable, canonical)."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


@dataclass(frozen=True)
class ScheduleSpec:
    """A learning-rate schedule from :data:`kdtune.train.optim.SCHEDULES` and its parameters."""

    name: str = "constant"
    params: Params = ()


@dataclass(frozen=True)
class AugmentSpec:
    """A random augmentation from :data:`kdtune.train.data.augment.AUGMENTATIONS` and its parameters."""

    name: str
    params: Params = ()


def _schedule_member(n: str) -> type:
    name = (Literal[n], Field(description="The schedule."))
    return params_model(n, "schedule", SCHEDULES.get(n), ("epoch", "total_epochs"), StrictModel, _SCHEDULE_BOUNDS, name=name)


_SCHEDULE_BOUNDS = {"alpha": {"ge": 0, "le": 1}, "t_mul": {"ge": 1}}  # every other schedule parameter is > 0


def _augment_member(skip: tuple[str, ...]) -> Callable[[str], type]:
    return lambda n: params_model(
        n, "augmentation", AUGMENTATIONS.get(n), skip, StrictModel, name=(Literal[n], Field(description="The augmentation."))
    )


def _spec_of(cls: type, v: BaseModel) -> Any:
    return cls(v.name, freeze({k: x for k, x in v if k != "name"}))


# an augmentation (also data.invariance's), a schedule, the optimizer and the selection rule, as a sweep file gives them
Invariance = by_name(AUGMENTATIONS, "name", _augment_member(("x", "generator", NON_IDENTITY)), append=False)
Schedule = Annotated[
    by_name(SCHEDULES, "name", _schedule_member, append=False),
    AfterValidator(lambda v: _spec_of(ScheduleSpec, v)),
    Field(json_schema_extra={"default": "constant"}),  # the schedule's name, as a file gives it
]
Augment = Annotated[Invariance, AfterValidator(lambda v: _spec_of(AugmentSpec, v))]
Optimizer = Registered(OPTIMIZERS)
Select = Choice(("last", "val_accuracy", "val_nll"))
SCHEDULE_NAMES = f"a schedule name or a mapping {{name: …, parameters}} (schedules: {', '.join(SCHEDULES.names())})"


@dataclass(frozen=True)
class Train:
    """Training settings of a model: the sweep's ``train`` (every model trained from data), a model's own ``train``,
    and (for students) the ``distill`` sections. Each layer overrides the one before it, key by key."""

    __pydantic_config__ = CFG  # read straight from a sweep file (kdtune.spec.sweepfile); its defaults are every trial's

    epochs: Annotated[PosInt, Field(description="Epochs of training (passes over the training split).")] = 10
    batch_size: Annotated[PosInt, Field(description="Examples per optimizer step.")] = 128
    optimizer: Annotated[Optimizer, Field(description="The optimizer (adam, adamw or sgd).")] = "adam"
    lr: Annotated[PosFloat, Field(description="Learning rate at the start of the schedule.")] = 1e-3
    weight_decay: Annotated[NonNeg, Field(description="Weight decay (L2 penalty, decoupled for adamw).")] = 0.0
    dropout: Annotated[Fraction, Field(description="Dropout probability of the model's dropout layers, in [0, 1).")] = 0.0
    label_smoothing: Annotated[Fraction, Field(description="Label smoothing of the cross-entropy on the labels, in [0, 1).")] = (
        0.0
    )
    grad_clip: Annotated[
        PosFloat | None, Field(description="Clip the gradients' global norm to this value; null: no clipping.")
    ] = None
    schedule: Annotated[Schedule, Field(description=f"Learning-rate schedule over the epochs: {SCHEDULE_NAMES}.")] = (
        ScheduleSpec()
    )
    augment: Annotated[
        Augment | None,
        Field(description="Random augmentation of every training batch: a name or {name: …, parameters}; null: none."),
    ] = None
    select: Annotated[
        Select,
        Field(description="Which epoch's model a trial keeps: the last, or the best by validation accuracy (ties: lower "
              "NLL) or NLL."),
    ] = "val_accuracy"  # fmt: skip


@dataclass(frozen=True)
class TrainSpec(Train):
    """How one model is trained: its :class:`Train` settings resolved from their layers, and the selection rule."""

    # the epochs ``select`` chooses among: every one ("first_epoch"), or, for a student whose loss switches between
    # the labels and its teacher, those from its last switch on ("last_switch", kdtune.train.distill.selection_epochs).
    # Set by the planner from the loss (:func:`with_selection`), not by sweep files; trials trained before kdtune
    # had it read "first_epoch", as they were selected, and keep their ids.
    select_from: str = SELECT_FROM[0]


def with_selection(train: TrainSpec, loss: LossSpec) -> TrainSpec:
    """``train`` with the selection rule of ``loss``: ``select_from`` "last_switch" where the loss switches inside
    ``train.epochs`` epochs, "first_epoch" otherwise."""
    select_from = SELECT_FROM[1] if switches(loss, train.epochs) else SELECT_FROM[0]
    return train if train.select_from == select_from else replace(train, select_from=select_from)


@dataclass(frozen=True)
class OutputSpec:
    """What each trial leaves beyond its metrics (part of its id): the penultimate features of a fixed subset of
    examples, at the epochs of ``feature_epochs`` (sorted, distinct; epochs beyond a model's training skipped)."""

    __pydantic_config__ = CFG

    feature_examples: Annotated[
        Seed, Field(description="Examples of the fixed subset whose penultimate features a trial keeps.")
    ] = 1000
    feature_epochs: Annotated[
        Items(Seed),
        Field(description="Epochs (0: initialisation; distinct) at which features are kept, for training paths; later than "
              "a model trains: skipped."),
    ] = ()  # fmt: skip


TRACKING_SCHEMES = ("http", "https", "file", "sqlite", "postgresql", "mysql", "mssql", "databricks")


def check_tracking_uri(v: str) -> str:
    """An MLflow tracking URI: a server (http[s]://host[:port]), a database store, a folder (file: or a path) or databricks."""
    scheme = v.split("://", 1)[0].split(":", 1)[0].split("+", 1)[0].lower() if ":" in v else ""
    if not v.strip() or (scheme and len(scheme) > 1 and scheme not in TRACKING_SCHEMES):
        raise ValueError(
            f"must be an MLflow tracking URI ({', '.join(s + ':' for s in TRACKING_SCHEMES)} or a folder), got {v!r}"
        )
    if scheme in ("http", "https") and not v.split("://", 1)[-1].split("/", 1)[0]:
        raise ValueError(f"must name a host, e.g. http://127.0.0.1:5000, got {v!r}")
    return v


@dataclass(frozen=True)
class MlflowSpec:
    """Log every trial to MLflow: one run per trial, every trial of the sweep in one experiment (the stage a tag)."""

    __pydantic_config__ = CFG

    tracking_uri: Annotated[
        Str,
        AfterValidator(check_tracking_uri),
        Field(
            description="Where MLflow keeps the runs: a tracking server (http://127.0.0.1:5000), a database store "
            "(sqlite:///mlflow.db) or a folder (MLflow 3 opens one only with MLFLOW_ALLOW_FILE_STORE=true); the --mlflow "
            "flag wins. Credentials come from the environment "
            "(MLFLOW_TRACKING_TOKEN, MLFLOW_TRACKING_USERNAME/PASSWORD), never from the sweep file."
        ),
    ]
    experiment: Annotated[Str | None, Field(description="The MLflow experiment; null: the sweep's name.")] = None


@dataclass(frozen=True)
class WandbSpec:
    """Log every trial to Weights & Biases: one run per trial, every trial of the sweep in one group (the stage a tag)."""

    __pydantic_config__ = CFG

    project: Annotated[Str, Field(description="The W&B project; the --wandb flag wins.")]
    entity: Annotated[Str | None, Field(description="The W&B entity (user or team); null: the API key's default entity.")] = None
    group: Annotated[Str | None, Field(description="The W&B group of the sweep's runs; null: the sweep's name.")] = None
    mode: Annotated[
        Choice(("online", "offline")) | None,
        Field(description="online: sync to W&B as trials run (needs WANDB_API_KEY on the driver); offline: write run "
              "files under RUN/wandb/ for `wandb sync`; null: $WANDB_MODE, else online."),
    ] = None  # fmt: skip


@dataclass(frozen=True)
class TrackerSpec:
    """The experiment trackers a sweep logs to (none by default). Not part of any trial's id: where results are
    also shown changes no result."""

    mlflow: MlflowSpec | None = None
    wandb: WandbSpec | None = None

    def __bool__(self) -> bool:
        return self.mlflow is not None or self.wandb is not None


# The version of the code paths that change a trial's result for the same config: part of every trial
# id, so results of older code are never mistaken for results of this one. Bump it with any such change.
# 2: data fingerprint in the id; ties in model selection broken by validation NLL; divergence checks.
# 3: keyed dropout masks (a hash of seed, step, call and position instead of the global random state), so a
#    seed trains the same alone or vmapped among its group's seeds; the CNN's convolutions before BatchNorm lost
#    their (ineffective) bias.
# Not a version: ``data.invariance`` drawing only non-identity transformations for IM changed the ids of the
# configs that set it alone (their invariance holds ``non_identity: true``; set where kdtune.spec.sweepfile reads
# data.invariance).
# Model selection of a switched student (start > 0 or a stop inside its epochs) keeps an epoch from its last
# switch on: not a version bump (every other trial keeps its id), but ``train.select_from: last_switch`` in
# those trials' configs, which gives them new ids (see TrainSpec.select_from).
RESULTS_VERSION = 3
SCHEMA = f"kdtune.trial/{RESULTS_VERSION}"


# ---------------------------------------------------------------- a sweep's models and grid, resolved


@dataclass(frozen=True)
class ModelSpec:
    """A model of the sweep: a label (used in tables), a registered architecture and its settings."""

    label: str
    arch: str
    params: Params = ()
    train: Params = ()  # overrides of the sweep's ``train`` for this model
    distill: Params = ()  # overrides of the sweep's ``distill`` for this model as a student
    tuned: tuple[str, ...] = ()  # teachers ("data": trained from data) whose tuned values this model uses
    switch: Params = ()  # ``start``/``stop`` of this model's ``distill`` (when a student distils; see kdtune.train.distill)


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

    def train_axes(self) -> list[Params]:
        """The grid's train axes crossed: each combination as (setting, value) overrides."""
        keys = [k for k, _ in self.train]
        return [tuple(zip(keys, combo, strict=True)) for combo in itertools.product(*(v for _, v in self.train))]

    def teacher_unit(self, unit: SeedUnit) -> SeedUnit:
        """The unit of the teacher a student of ``unit`` reads (``teacher_seed``)."""
        if self.teacher_seed == "same":
            return unit
        k = int(self.teacher_seed)
        return self.units()[k] if self.streams_apart else SeedUnit(k, k, k)


class Layers(Protocol):
    """What resolving a model's settings reads of a sweep (:class:`kdtune.spec.sweepfile.SweepSpec` has it): the sweep's
    ``train`` and ``distill`` sections, its ``distill`` switch points and the grid."""

    @property
    def train(self) -> Params: ...
    @property
    def distill(self) -> Params: ...
    @property
    def switch(self) -> Params: ...
    @property
    def grid(self) -> GridSpec: ...


def resolve_train(spec: Layers, model: ModelSpec, student: bool = False, overrides: Params = ()) -> TrainSpec:
    """The training settings of one trial: defaults < sweep ``train`` < model ``train`` < (students
    only: sweep ``distill`` < model ``distill``) < grid values."""
    layers = [spec.train, model.train] + ([spec.distill, model.distill] if student else []) + [overrides]
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(dict(layer))
    return replace(TrainSpec(), **merged)


def switch_points(spec: Layers, model: ModelSpec) -> list[tuple[float | int, float | int | None]]:
    """The (start, stop) pairs of ``model`` as a student: the grid's axes, crossed, where given; else the
    value of its ``distill`` section, else the sweep's, else (0, None): distillation in every epoch."""
    layers = dict(spec.switch) | dict(model.switch)
    starts = spec.grid.start if spec.grid.start is not None else (layers.get("start", 0.0),)
    stops = spec.grid.stop if spec.grid.stop is not None else (layers.get("stop"),)
    return list(itertools.product(starts, stops))


# ---------------------------------------------------------------- one trial


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
    data_fingerprint: str = ""  # hash of the tensors actually loaded (kdtune.train.data.data_fingerprint)
    # ``seed`` seeds the initialisation stream, and the data stream (data order, dropout, augmentation) unless
    # ``data_seed`` is set (grid.init_seeds × grid.data_seeds); a student's streams are drawn apart from the
    # models' trained from data unless ``student_streams`` is shared (see kdtune.labels.stream_seeds)
    data_seed: int | None = None
    student_streams: str = STUDENT_STREAMS[0]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able, canonical form (tuples of pairs become mappings). Settings at the values they had
        before they existed are left out (an empty ``outputs.feature_epochs``; ``data.folds`` 1 and its
        ``fold``; no ``data.invariance``; ``loss.start`` 0 and ``loss.stop`` None; ``train.select_from``
        first_epoch; no ``data_seed``; ``student_streams`` apart), so such configs keep their ids."""
        d = _jsonable(dataclasses.asdict(self)) | {"schema": SCHEMA}
        if d["data_seed"] is None:
            del d["data_seed"]
        if d["student_streams"] == STUDENT_STREAMS[0]:
            del d["student_streams"]
        if not d["outputs"]["feature_epochs"]:
            del d["outputs"]["feature_epochs"]
        data, loss = d["data"] or {}, d["loss"] or {}
        if data.get("folds", 1) <= 1:
            data.pop("folds", None)
            data.pop("fold", None)
        if data.get("invariance", 0) is None:
            del data["invariance"]
        if loss.get("start") == 0 and loss.get("stop") is None:
            del loss["start"], loss["stop"]
        train = d["train"] or {}
        if train.get("select_from") == SELECT_FROM[0]:
            del train["select_from"]
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
        if data.get("invariance") is not None:
            data["invariance"] = _pairs(data["invariance"])
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
            data_seed=d.get("data_seed"),
            student_streams=d.get("student_streams", STUDENT_STREAMS[0]),
        )

    def seedless(self) -> TrialConfig:
        """This config without what tells the seed units of one configuration apart (its seeds and teacher)."""
        return dataclasses.replace(self, seed=0, data_seed=None, teacher_id=None)


def _is_pairs(v: Any) -> bool:
    return isinstance(v, (tuple, list)) and all(isinstance(i, (tuple, list)) and len(i) == 2 and isinstance(i[0], str) for i in v)


def _jsonable(v: Any, key: str = "") -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x, k) for k, x in v.items()}
    if key in ("params", "invariance") and _is_pairs(v):
        return {k: _jsonable(x) for k, x in v}
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    return v


def _pairs(d: dict[str, Any] | list[Any]) -> tuple[tuple[str, Any], ...]:
    return freeze(d) if isinstance(d, dict) else tuple((k, freeze(v)) for k, v in d)


KINDS = ("loguniform", "uniform", "int", "categorical")


@dataclass(frozen=True)
class Distribution:
    """One dimension of a search space: ``loguniform``/``uniform`` (floats), ``int`` (with ``step``,
    optionally ``log``) or ``categorical`` (``choices``)."""

    kind: str
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def to_optuna(self) -> Any:
        """The equivalent ``optuna.distributions`` object."""
        from optuna import distributions as d

        if self.kind == "categorical":
            return d.CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return d.IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return d.FloatDistribution(self.low, self.high, log=self.kind == "loguniform", step=self.step)

    def contains(self, value: Any) -> bool:
        """Whether ``value`` lies in this dimension (used to start a search from the sweep's own settings)."""
        if self.kind == "categorical":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int":
            step = int(self.step or 1)
            return float(value).is_integer() and self.low <= value <= self.high and (int(value) - int(self.low)) % step == 0
        return self.low <= value <= self.high

    def describe(self) -> str:
        """Short text, e.g. ``loguniform [0.0001, 0.01]``."""
        if self.kind == "categorical":
            return f"one of {list(self.choices)}"
        step = f" step {self.step:g}" if self.step else ""
        return f"{self.kind}{' log' if self.log else ''} [{self.low:g}, {self.high:g}]{step}"


@dataclass(frozen=True)
class SearchSpace:
    """What to tune for one model trained from data (``teacher == "data"``) or one teacher → student pair."""

    model: str
    teacher: str
    params: tuple[tuple[str, Distribution], ...]

    @property
    def key(self) -> str:
        """How the sweep file names it: ``MLP`` or ``CNN -> MLP``."""
        return self.model if self.teacher == "data" else f"{self.teacher} -> {self.model}"


@dataclass(frozen=True)
class AshaSpec:
    """Early stopping of search trials by Ray Tune's ASHA scheduler (asynchronous successive halving; it only stops
    trials)."""

    __pydantic_config__ = CFG

    grace_period: Annotated[PosInt, Field(description="Epochs every search trial runs before it can be stopped.")] = 2
    reduction_factor: Annotated[Float, Field(gt=1, description="ASHA keeps 1/reduction_factor of the trials at each rung.")] = 3.0


@dataclass(frozen=True)
class TuneSpec:
    """The ``tune:`` section: metric, seeds per search trial, sampler seed, ASHA, search spaces."""

    metric: str = "accuracy"
    seeds: int = 3
    sampler_seed: int = 0
    asha: AshaSpec | None = AshaSpec()
    spaces: tuple[SearchSpace, ...] = ()

    @property
    def direction(self) -> str:
        """``maximize`` or ``minimize``."""
        return DIRECTIONS[self.metric]

    def space_for(self, model: str, teacher: str = "data") -> SearchSpace | None:
        """The search space of ``model`` (from data, or as a student of ``teacher``), if the file has one."""
        return next((s for s in self.spaces if s.model == model and s.teacher == teacher), None)


_CASTS: dict[str, Callable[[Any], Any]] = {"optimizer": str, **dict.fromkeys(INT_SETTINGS, int)}  # else float


def apply_values(train: TrainSpec, loss: LossSpec, values: Mapping[str, Any]) -> tuple[TrainSpec, LossSpec]:
    """``train`` and ``loss`` with ``values`` (setting → value, e.g. ``lr``, ``schedule.decay_rate``,
    ``temperature``) put in; numbers take the type of the setting (whole numbers for epochs). The selection rule
    follows the (possibly tuned) epochs: :func:`with_selection`."""
    fields: dict[str, Any] = {}
    loss_fields: dict[str, Any] = {}
    schedule = dict(train.schedule.params)
    for key, value in values.items():
        if key in TRAIN_SETTINGS:
            fields[key] = _CASTS.get(key, float)(value)
        elif key in LOSS_SETTINGS:
            loss_fields[key] = float(value)
        elif key.startswith("schedule."):
            param = key.split(".", 1)[1]
            default = inspect.signature(SCHEDULES.get(train.schedule.name)).parameters.get(param)
            schedule[param] = float(value) if default is not None and isinstance(default.default, float) else value
        else:
            raise ValueError(f"{key!r} is not a setting kdtune can tune")
    if schedule != dict(train.schedule.params):
        fields["schedule"] = ScheduleSpec(train.schedule.name, freeze(schedule))
    loss = dataclasses.replace(loss, **loss_fields)
    return with_selection(dataclasses.replace(train, **fields), loss), loss


def tuned_name(model: str, teacher: str = NO_TEACHER) -> str:
    """``MLP`` or ``MLP--from-CNN``: the file stem, the record name's tail and the study's label."""
    return model if teacher == NO_TEACHER else f"{model}--from-{teacher}"


def tuned_path(run_dir: Path, model: str, teacher: str = NO_TEACHER) -> Path:
    """Where the tuned values of ``model`` (from data, or as a student of ``teacher``) live."""
    return Path(run_dir) / "tuned" / f"{tuned_name(model, teacher)}.yaml"


def tune_command(source: str, model: str, teacher: str, output: Path, name: str) -> str:
    """The ``kdtune tune`` command that makes a missing tuned file."""
    cmd = f"kdtune tune {source} --model {model}"
    if teacher != NO_TEACHER:
        cmd += f" --teacher {teacher}"
    if Path(output) != Path("runs") / name:
        cmd += f" --out {output}"
    return cmd


def write_tuned(path: Path, content: dict[str, Any]) -> None:
    """Write a tuned file (YAML with a header line saying what made it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# written by kdtune tune: the best values of {content['model']}"
    header += " trained from data" if content["teacher"] == NO_TEACHER else f" as a student of {content['teacher']}"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(header + "\n" + dump_yaml(content))
    tmp.replace(path)


def read_tuned(run_dir: Path, model: str, teacher: str, source: str, name: str) -> dict[str, Any]:
    """The values of a tuned file; one line naming the ``kdtune tune`` command if it does not exist."""
    path = tuned_path(run_dir, model, teacher)
    role = "trained from data" if teacher == NO_TEACHER else f"as a student of {teacher}"
    if not path.is_file():
        raise KdtuneError(
            f"{source}: models.{model} uses tuned values {role} (hparams: tuned) but {path} does not exist; "
            f"make it with: {tune_command(source, model, teacher, run_dir, name)}"
        )
    try:
        content = load_yaml(path.read_text())
    except Exception as e:  # YAML errors and unreadable files alike
        raise KdtuneError(f"{path}: cannot read tuned values ({type(e).__name__})") from None
    values = content.get("values") if isinstance(content, dict) else None
    allowed = (*TRAIN_SETTINGS, *(LOSS_SETTINGS if teacher != NO_TEACHER else ()))
    if not isinstance(values, dict) or not values:
        raise KdtuneError(f"{path}: no 'values' mapping; re-run {tune_command(source, model, teacher, run_dir, name)}")
    bad = [k for k in values if k not in allowed and not str(k).startswith("schedule.")]
    if bad:
        raise KdtuneError(f"{path}: values: {bad[0]!r} is not a tunable setting here; allowed: {', '.join(allowed)}, schedule.*")
    return values
