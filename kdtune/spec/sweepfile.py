"""Sweep files: YAML (:func:`load_yaml`: safe loading, YAML 1.2 numbers) → the pydantic models of every section
(:class:`SweepFile`, also the source of the JSON Schema, ``kdtune schema``) → the rules only kdtune knows (labels,
pairs, teachers, switch points, search spaces, models built on the data's shapes) → a typed :class:`SweepSpec`.

Everything a person wrote is checked here, before any work starts; a wrong value raises
:class:`~kdtune.errors.SpecError`, one line naming the file, the field, what was given and what is allowed.
"""

import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Annotated, Any, Literal, get_type_hints

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model
from pydantic.dataclasses import dataclass as section
from pydantic.fields import FieldInfo

from kdtune.errors import KdtuneError, SpecError, first_line
from kdtune.labels import DIRECTIONS, INT_SETTINGS, LOSS_SETTINGS, NO_TEACHER, STUDENT_STREAMS, TRAIN_SETTINGS
from kdtune.results.tables import ReportSpec
from kdtune.spec.overrides import apply_overrides, blame_overrides
from kdtune.train.config import (
    KINDS,
    AshaSpec,
    Distribution,
    GridSpec,
    Invariance,
    MlflowSpec,
    ModelSpec,
    OutputSpec,
    Params,
    SearchSpace,
    TrackerSpec,
    Train,
    TuneSpec,
    WandbSpec,
    freeze,
    resolve_train,
    switch_points,
)
from kdtune.train.data import DATASETS, EVAL_SOURCES, DataInfo, DataSpec, EvalSetSpec, make_dataset
from kdtune.train.data.augment import NON_IDENTITY, check_invariance
from kdtune.train.data.corruptions import CORRUPTIONS
from kdtune.train.distill import KD_LOSSES, LossSpec, distill_epochs
from kdtune.train.models import MODELS, check_model
from kdtune.validation import (
    CFG,
    Bool,
    Choice,
    Float,
    Int,
    Items,
    NonNeg,
    PosFloat,
    PosInt,
    Registered,
    Seed,
    Str,
    StrictModel,
    by_name,
    fail,
    first_problem,
    json_schema_of,
    kind_of,
    params_model,
    registry_union,
    tagged_union,
    validate,
)
from kdtune.yamlio import load_yaml

SELF_TEACHER = "self"
LABEL = r"^[A-Za-z][A-Za-z0-9_.+-]*$"
_GRID_NOTES = {"grad_clip": " (null: no clipping)"}  # a note on the values of a train setting the grid crosses

# ---------------------------------------------------------------- the models of a sweep file's sections


def _start(stop: bool) -> Any:
    """A switch point of distillation (:mod:`kdtune.train.distill`): a fraction of the epochs (float) or an epoch number."""
    frac = Annotated[Float, Field(gt=0, lt=1) if stop else Field(ge=0, lt=1)]
    whole = Annotated[Int, Field(ge=1)] if stop else Annotated[Int, Field(ge=0), AfterValidator(lambda v: v if v else 0.0)]
    what = "a fraction in " + ("(0, 1)" if stop else "[0, 1)") + " of the epochs or an epoch number (an integer >= 1)"
    return tagged_union(
        {"number": frac, "integer": whole, **({"null": None} if stop else {})}, what + (" or null" if stop else "")
    )


Start, Stop = _start(False), _start(True)


@dataclass(frozen=True)
class Distill(Train):
    """A ``distill`` section: the training settings of students, and when they distil."""

    start: Annotated[
        Start,
        Field(description="First distilled epoch: a fraction in [0, 1) of the epochs (epoch round(v·epochs)+1) or an epoch "
              "number >= 1; before it the student learns from the labels. 0: from the first epoch."),
    ] = 0.0  # fmt: skip
    stop: Annotated[
        Stop,
        Field(description="Epoch from which the student learns from the labels again: a fraction in (0, 1) of the epochs "
              "or an epoch number >= 1; null: distil to the end."),
    ] = None  # fmt: skip


TRAIN_KEYS = tuple(f.name for f in fields(Train))  # what a train/distill section sets for training
SWITCH_KEYS = ("start", "stop")  # what a distill section adds: its switch points


def _model_member(arch: str) -> type:
    params = params_model(arch, "model", MODELS.get(arch).__init__, ("info", "dropout"), StrictModel)
    return create_model(
        f"Model_{arch}",
        __base__=StrictModel,
        __doc__=f"A model of architecture {arch}.",
        arch=(Literal[arch], Field(description="The registered architecture.")),
        params=(
            params | None,
            Field(None, description=f"Settings of {arch} (keyword arguments; unset ones take their defaults)."),
        ),
        train=(Train | None, Field(None, description="This model's overrides of the sweep's train section.")),
        distill=(Distill | None, Field(None, description="This model's overrides of the sweep's distill section, as a student.")),
        hparams=(
            tagged_union({"string": Choice(("tuned", "defaults")), "object": dict[Str, Choice(("tuned", "defaults"))]}),
            Field(
                "defaults",
                description="tuned: train from data with the values `kdtune tune` found (tuned/<model>.yaml); "
                "{data: tuned, CNN: tuned}: also as a student of CNN; defaults: the sweep's values.",
            ),
        ),
    )


Model = by_name(MODELS, "arch", _model_member, append=True)


def _eval_member(c: str) -> type:
    return params_model(
        c,
        "corruption",
        CORRUPTIONS.get(c),
        ("x", "generator"),
        StrictModel,
        name=(
            Str,
            Field(description="Name of the eval set in the results (not 'val': the validation split is always evaluated)."),
        ),
        source=(Choice(EVAL_SOURCES), Field("test", description="The split it is made from: test, val or train.")),
        corruption=(
            Literal[c],
            Field(
                "identity",
                description="A corruption applied to every example, with its parameters as keys beside it; default identity.",
            ),
        ),
    )


EvalSet = tagged_union(
    {"string": Str, "object": registry_union(CORRUPTIONS, "corruption", _eval_member, True, "identity")},
    "an eval set name of the data set or a mapping {name: …, source: …, corruption: …, parameters}",
)


def _data_member(n: str) -> type:
    params = params_model(n, "data set", DATASETS.get(n).__init__, (), StrictModel)
    return create_model(
        f"Data_{n}",
        __base__=DataBase,
        __doc__=f"The data set {n}.",
        name=(Literal[n], Field(description="The data set.")),
        params=(params | None, Field(None, description=f"Settings of {n} (unset ones take their defaults).")),
    )


class DataBase(StrictModel):
    val_size: tagged_union(
        {"number": Annotated[Float, Field(gt=0, lt=1)], "integer": PosInt}, "a fraction in (0, 1) or a count >= 1"
    ) = Field(
        DataSpec.val_size, description="The validation split: a fraction in (0, 1) of the training pool or a count of examples."
    )
    folds: Annotated[Int, Field(ge=2)] = Field(
        DataSpec.folds,
        description="k >= 2: k-fold cross-validation, every trial once per fold, fold i the validation split (not with "
        "val_size). 1: one split.",
    )
    split_seed: Seed = Field(DataSpec.split_seed, description="Seed of the train/validation split.")
    corruption_seed: Seed = Field(DataSpec.corruption_seed, description="Seed of random corruptions of the eval sets.")
    eval_sets: Items(EvalSet) | None = Field(
        None,
        description="The eval sets every trial is evaluated on (besides val): names the data set knows, train, or mappings; "
        "default: the data set's own.",
    )
    invariance: Invariance | None = Field(
        None,
        description="An augmentation (name or {name: …, parameters}) whose invariance metric IM every evaluation measures, "
        "drawn without the identity; null: none.",
    )
    root: Str | None = Field(
        None, description="Folder of the data files (the --data-root flag wins); default: the data set's own."
    )


Data = registry_union(DATASETS, "name", _data_member, append=True)
Pair = tagged_union(
    {
        "string": Str,
        "object": create_model(
            "Pair",
            __base__=StrictModel,
            __doc__="A (teacher, student) pair as a mapping.",
            teacher=(Str, Field(description="Teacher label, data or self.")),
            student=(Str, Field(description="Student label.")),
        ),
    },
    "'TEACHER -> STUDENT' or {teacher: …, student: …}",
)
Seeds = tagged_union(
    {"integer": PosInt, "array": Annotated[list[Seed], Field(min_length=1)]},
    "a count of seeds (an integer >= 1) or a list of distinct integers >= 0",
)


class _GridBase(StrictModel):
    """The grid: (teacher, student) pairs × distillation settings × training axes × seed units, crossed."""

    students: Items(Str) | None = Field(None, description="Student model labels (with teachers; or give pairs).")
    teachers: Items(Str) | None = Field(
        None,
        description="Teachers of every student: model labels, data (trained from data, no distillation) or self (its own "
        "architecture).",
    )
    pairs: Items(Pair, scalar=False) | None = Field(
        None, description="Instead of students × teachers: a list of 'TEACHER -> STUDENT' pairs."
    )
    temperature: Items(PosFloat) = Field(GridSpec.temperature, description="Softmax temperatures of distillation (> 0).")
    w_hard: Items(NonNeg) = Field(GridSpec.w_hard, description="Weights of the loss on the labels.")
    w_soft: Items(NonNeg) = Field(GridSpec.w_soft, description="Weights of the loss on the teacher's outputs.")
    loss: Items(Registered(KD_LOSSES)) = Field(
        GridSpec.loss, description=f"Distillation losses ({', '.join(KD_LOSSES.names())})."
    )
    seeds: Seeds = Field(
        1,
        description="Seeds: a count n (seeds 0…n-1) or a list of distinct seeds >= 0; each sets initialisation and data "
        "order together.",
    )
    init_seeds: Seeds | None = Field(
        None, description="Instead of seeds: seeds of the initial weights, crossed with data_seeds into seed units."
    )
    data_seeds: Seeds | None = Field(
        None, description="Instead of seeds: seeds of data order, dropout and augmentation, crossed with init_seeds."
    )
    student_streams: Choice(STUDENT_STREAMS) = Field(
        GridSpec.student_streams,
        description="apart: students draw their random streams apart from the models trained from data; shared: the same.",
    )
    teacher_seed: tagged_union({"string": Literal["same"], "integer": Seed}, "'same' or a seed unit >= 0") = Field(
        GridSpec.teacher_seed,
        description="same: student unit k reads teacher unit k; a number: every student reads that teacher unit.",
    )
    start: Items(Start) | None = Field(None, description="An axis of distillation start points (see distill.start).")
    stop: Items(Stop, scalar=False) | None = Field(None, description="An axis of distillation stop points (see distill.stop).")


def _bare(t: Any) -> Any:
    """A field's type without its description (an axis of a train setting: a list of values, described as the axis)."""
    keep = [m for m in getattr(t, "__metadata__", ()) if not (isinstance(m, FieldInfo) and m.description)]
    return Annotated[(t.__origin__, *keep)] if keep else getattr(t, "__origin__", t)


Grid = create_model(  # an axis of every training setting the grid can cross, typed as the train section types it
    "Grid",
    __base__=_GridBase,
    __doc__=_GridBase.__doc__,
    **{
        k: (
            Items(_bare(get_type_hints(Train, include_extras=True)[k])) | None,
            Field(None, description=f"An axis of train.{k} values{_GRID_NOTES.get(k, '')}."),
        )
        for k in TRAIN_SETTINGS
    },
)


@section(frozen=True, config=CFG)
class Resources:
    """What one Ray Tune trial asks for; fractions allowed."""

    cpu: NonNeg = Field(1.0, description="CPU cores per trial (fractions allowed).")
    gpu: NonNeg = Field(0.0, description="GPUs per trial (fractions share one).")


@section(frozen=True, config=CFG)
class ExecutionSpec:
    """How trials are executed (none of it is part of a trial's id)."""

    seeds_per_trial: tagged_union({"integer": PosInt, "string": Literal["auto"]}) = Field(
        1,
        description="Seeds one Ray trial trains together, batched (an integer >= 1), or auto: chosen from the model's size "
        "and the device.",
    )
    eval_batch_size: PosInt = Field(512, description="Examples per forward pass at evaluation (no effect on results).")
    max_concurrent_trials: PosInt | None = Field(None, description="At most this many trials at once; null: as resources allow.")
    max_failures: Seed = Field(0, description="Retries of a failed trial.")
    device: Choice(("auto", "cpu", "cuda")) = Field(
        "auto", description="auto (default: cuda where a gpu is asked for and present), cpu or cuda."
    )
    tensorboard: Bool = Field(False, description="Write per-trial TensorBoard curves to RUN/tensorboard/.")


@dataclass(frozen=True)
class Outputs(OutputSpec):
    """What each trial keeps beyond its metrics: the penultimate features of a fixed subset of examples; and the
    experiment trackers every trial is logged to (MLflow, Weights & Biases), which change no trial id."""

    mlflow: Annotated[MlflowSpec | None, Field(description="Log every trial to MLflow (pip install 'kdtune[mlflow]').")] = None
    wandb: Annotated[
        WandbSpec | None, Field(description="Log every trial to Weights & Biases (pip install 'kdtune[wandb]').")
    ] = None


Bounds = Annotated[
    list[Int | Float], Field(min_length=2, max_length=2, json_schema_extra={"x-allowed": "[low, high] (two numbers)"})
]
_SCALAR = Annotated[
    Int | Float | Str | Bool | None, Field(json_schema_extra={"x-allowed": "a number, a string, true, false or null"})
]


class _Dist(StrictModel):
    def to_distribution(self) -> Distribution:
        kind = next(k for k in KINDS if k in type(self).model_fields)
        if kind == "categorical":
            return Distribution(kind, choices=tuple(self.categorical))
        (low, high), step = getattr(self, kind), getattr(self, "step", None)
        if kind == "int":
            return Distribution(kind, low, high, step or 1, self.log)
        return Distribution(kind, float(low), float(high), float(step) if step is not None else None)

    def model_post_init(self, _: Any) -> None:  # the rules of Optuna's distributions
        kind = next(k for k in KINDS if k in type(self).model_fields)
        if kind == "categorical":
            if len({repr(v) for v in self.categorical}) != len(self.categorical):
                fail(f"choices must be distinct, got {self.categorical}", "categorical")
            return
        (low, high), step, log = getattr(self, kind), getattr(self, "step", None), getattr(self, "log", False)
        if not low < high:
            fail(f"low must be < high, got [{low}, {high}]", kind)
        if (kind == "loguniform" or log) and low <= 0:
            fail(f"a log scale needs low > 0, got {low}", kind)
        if kind == "int" and not all(isinstance(v, int) for v in (low, high)):
            fail(f"bounds must be integers, got {[low, high]}", "int")
        if log and step not in (None, 1):
            fail("a log scale takes no step (Optuna)", "step")
        if step is not None and step > high - low:
            fail(f"must be <= high - low ({high - low:g}), got {step!r}", "step")
        if kind == "int" and step and (high - low) % step:
            fail(f"high - low ({high - low}) must be a multiple of step {step}", "step")


def _dist(kind: str, doc: str, **fields: Any) -> Any:
    return create_model(f"{kind.title()}Distribution", __base__=_Dist, __doc__=doc, **{kind: fields.pop(kind)}, **fields)


def _dist_kind(v: Any) -> str:
    kinds = [k for k in KINDS if k in v] if isinstance(v, dict) else []
    return kinds[0] if len(kinds) == 1 else "none"


Dist = tagged_union(
    {
        "loguniform": _dist(
            "loguniform", "Floats, uniform on a log scale.", loguniform=(Bounds, Field(description="[low, high], low > 0."))
        ),
        "uniform": _dist(
            "uniform",
            "Floats, uniform.",
            uniform=(Bounds, Field(description="[low, high].")),
            step=(PosFloat | None, Field(None, description="Discretisation step; null: continuous.")),
        ),
        "int": _dist(
            "int",
            "Integers.",
            int=(Bounds, Field(description="[low, high], integers.")),
            step=(PosInt | None, Field(None, description="Step; default 1.")),
            log=(Bool, Field(False, description="Uniform on a log scale (no step).")),
        ),
        "categorical": _dist(
            "categorical",
            "One of a list of choices.",
            categorical=(
                Annotated[list[_SCALAR], Field(min_length=1, json_schema_extra={"x-allowed": "a non-empty list of choices"})],
                Field(description="The choices, distinct."),
            ),
        ),
    },
    "a distribution, one of {loguniform: [low, high]}, {uniform: [low, high]}, {int: [low, high], step: 1} or {categorical: "
    "[a, b]}",
    pick=_dist_kind,
)


_SCHEDULE_PARAM = "The distribution of a parameter of the learning-rate schedule, e.g. schedule.first_epochs."


class _SpaceBase(StrictModel):
    """Settings of one model (or teacher → student pair) → their distributions; schedule.<parameter> too."""

    model_config = CFG | ConfigDict(
        frozen=True,
        extra="allow",
        json_schema_extra=lambda s: s.update(  # extra keys: schedule.* only
            patternProperties={r"^schedule\.": s.pop("additionalProperties") | {"description": _SCHEDULE_PARAM}},
            additionalProperties=False,
        ),
    )
    __pydantic_extra__: dict[str, Dist] = Field(init=False)


_NOTES = {"batch_size": " (int or categorical)", "epochs": " (int or categorical)", "optimizer": " (categorical)"}
Space = create_model(  # a distribution for every setting kdtune tune can search
    "Space",
    __base__=_SpaceBase,
    __doc__=_SpaceBase.__doc__,
    **{k: (Dist | None, Field(None, description=f"The distribution of train.{k}{_NOTES.get(k, '')}.")) for k in TRAIN_SETTINGS},
    **{
        k: (Dist | None, Field(None, description=f"The distribution of {'the ' * (k == 'temperature')}{k} (students only)."))
        for k in LOSS_SETTINGS
    },
)


class Tune(StrictModel):
    """``kdtune tune``: Optuna's TPE over search trials of ``seeds`` seeds each, early stopping by ASHA."""

    metric: Annotated[
        Choice(tuple(DIRECTIONS)), Field(json_schema_extra={"x-allowed": f"a validation metric, one of {', '.join(DIRECTIONS)}"})
    ] = Field(TuneSpec.metric, description="Validation metric the search optimizes (its direction is known).")
    seeds: PosInt = Field(TuneSpec.seeds, description="Seeds every search trial trains; the objective is their mean.")
    sampler_seed: Seed = Field(TuneSpec.sampler_seed, description="Seed of Optuna's TPE sampler.")
    asha: tagged_union({"boolean": Bool, "object": AshaSpec, "null": None}) = Field(
        True,
        description="true: ASHA with its defaults; a mapping {grace_period, reduction_factor}; false: every "
        "search trial runs all its epochs.",
    )
    space: dict[Str, Space] | None = Field(
        None, description="Search spaces: a model label (trained from data) or 'TEACHER -> STUDENT' → settings → distributions."
    )


class SweepFile(StrictModel):
    """A kdtune sweep file: data, models and a grid of (teacher, student) pairs and distillation settings."""

    name: (
        Annotated[Str, Field(pattern=LABEL, json_schema_extra={"x-allowed": "a folder-safe name (letters, digits, _ . + -)"})]
        | None
    ) = Field(None, description="Name of the sweep (folder-safe); default: the file's name without .yaml.")
    description: Str = Field("", description="One line about the sweep, shown by kdtune plan.")
    output: Str | None = Field(None, description="The run folder; default runs/<name> (the --out flag wins).")
    data: Data = Field(description="The data set, its splits and its eval sets.")
    models: Annotated[dict[Str, Model], Field(min_length=1)] = Field(
        description="Label → model: {arch: …, params: …} or an arch name."
    )
    train: Train | None = Field(None, description="Training settings of every model trained from data (teachers, data rows).")
    distill: Distill | None = Field(None, description="Overrides of train for students, and when they distil.")
    grid: Grid = Field(description="What is crossed: pairs, distillation settings, training axes, seeds.")
    resources: Resources | None = Field(None, description="What one trial asks for.")
    execution: ExecutionSpec | None = Field(None, description="How trials run.")
    outputs: Outputs | None = Field(None, description="What each trial keeps beyond its metrics.")
    report: ReportSpec | None = Field(None, description="Defaults of kdtune report.")
    tune: Tune | None = Field(None, description="Search spaces and settings of kdtune tune.")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of sweep files (``kdtune schema``; shipped as kdtune/sweep.schema.json)."""

    def any_of(n: Any) -> Any:  # a union's members may overlap (0 is a number and an integer): anyOf, not oneOf
        if isinstance(n, dict):
            return {("anyOf" if k == "oneOf" else k): any_of(v) for k, v in n.items()}
        return [any_of(v) for v in n] if isinstance(n, list) else n

    return {"$schema": "https://json-schema.org/draft/2020-12/schema"} | any_of(json_schema_of(SweepFile))


def schema_text() -> str:
    """:func:`json_schema` as the text of kdtune/sweep.schema.json."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------- the sweep, resolved


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
    resources: Resources = Resources()  # noqa: RUF009
    execution: ExecutionSpec = ExecutionSpec()  # noqa: RUF009
    outputs: OutputSpec = OutputSpec()  # noqa: RUF009
    report: ReportSpec = ReportSpec()  # noqa: RUF009
    tune: TuneSpec = TuneSpec()  # noqa: RUF009  (frozen, so sharing the default is safe)
    trackers: TrackerSpec = TrackerSpec()  # noqa: RUF009  (outputs.mlflow / outputs.wandb)
    description: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


def _layers(m: BaseModel | None, raw: Any, keys: Sequence[str]) -> Params:
    """The keys of a train/distill section that the file sets, in its order, with their validated values (``keys``:
    :data:`TRAIN_KEYS` or :data:`SWITCH_KEYS`)."""
    return tuple((k, getattr(m, k)) for k in (raw or {}) if k in keys) if m is not None else ()


def _params(m: BaseModel | None, model: type) -> Params:
    return freeze({k: getattr(m, k) for k in model.model_fields}) if m is not None else freeze(model().__dict__)


def parse_sweep(
    raw: Any, source: str = "<sweep>", data_root: str | Path | None = None, output: str | Path | None = None
) -> SweepSpec:
    """Validate a sweep mapping (as loaded from YAML) into a :class:`SweepSpec`: the models, then kdtune's own rules."""
    f = validate(SweepFile, raw, source)
    err = functools.partial(SpecError, source)
    problems: list[SpecError] = []  # kdtune's own rules, section by section: every mistake at once

    def checked(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except SpecError as e:
            problems.append(e)
            return None

    name = f.name or (Path(source).stem if source != "<sweep>" else "sweep")
    if not re.match(LABEL, name):
        problems.append(err("name", f"must be a folder-safe name (letters, digits, _ . + -), got {name!r}"))
    found = checked(_data, err, f.data, raw["data"])
    data, root, info = found or (None, None, None)
    models = {}
    if found:  # a model is built on the data's shapes
        labels = list(f.models)
        models = {label: checked(_model, err, label, m, raw["models"][label], info, labels) for label, m in f.models.items()}
        checked(_check_invariance, source, data, info)
    grid = checked(_grid, err, f.grid, raw["grid"], list(f.models))
    resources, execution = f.resources or Resources(), f.execution or ExecutionSpec()
    if resources.cpu == 0 and resources.gpu == 0:
        problems.append(err("resources", "a trial must ask for some cpu or gpu"))
    if execution.device == "cuda" and resources.gpu == 0:
        problems.append(err("execution.device", "is cuda but resources.gpu is 0; ask for a gpu (fractions allowed)"))
    outs = f.outputs or Outputs()
    if len(set(outs.feature_epochs)) != len(outs.feature_epochs):
        problems.append(err("outputs.feature_epochs", f"must be distinct epochs, got {list(outs.feature_epochs)}"))
    if outs.feature_epochs and outs.feature_examples == 0:
        problems.append(err("outputs.feature_epochs", "needs outputs.feature_examples > 0"))
    if problems:
        raise SpecError.of(problems)
    spec = SweepSpec(
        name=name,
        source=source,
        output=Path(output) if output else Path(f.output or f"runs/{name}"),
        data=data,
        data_root=Path(data_root) if data_root else root,
        models=models,
        train=_layers(f.train, raw.get("train"), TRAIN_KEYS),
        distill=_layers(f.distill, raw.get("distill"), TRAIN_KEYS),
        grid=grid,
        switch=_layers(f.distill, raw.get("distill"), SWITCH_KEYS),
        resources=resources,
        execution=execution,
        outputs=OutputSpec(outs.feature_examples, tuple(sorted(outs.feature_epochs))),
        report=f.report or ReportSpec(),
        trackers=_trackers(outs, name),
        description=f.description,
        raw=raw,
    )
    spec = replace(spec, tune=_tune(err, f.tune, spec))
    _check_switches(spec)
    return spec


def _trackers(outs: Outputs, name: str) -> TrackerSpec:
    """The trackers of ``outputs``: the experiment (MLflow) and group (W&B) default to the sweep's name."""
    m, w = outs.mlflow, outs.wandb
    return TrackerSpec(
        replace(m, experiment=m.experiment or name) if m is not None else None,
        replace(w, group=w.group or name) if w is not None else None,
    )


def _data(err: Callable[..., SpecError], d: Any, raw: Mapping[str, Any]) -> tuple[DataSpec, Path | None, DataInfo]:
    cls = DATASETS.get(d.name)
    params = _params(d.params, type(d).model_fields["params"].annotation.__args__[0])
    try:
        cls(**dict(params))
    except (TypeError, ValueError) as e:
        raise err("data.params", str(e)) from None
    known = {"train": EvalSetSpec("train", "train")} | dict(cls.default_eval_sets)  # train: the training split
    eval_sets = []
    for i, item in enumerate(d.eval_sets if d.eval_sets is not None else tuple(cls.default_eval_sets)):
        if isinstance(item, str):
            if item not in known:
                raise err(
                    f"data.eval_sets[{i}]",
                    f"unknown eval set {item!r} for {d.name}; known: {', '.join(known)} "
                    "(or a mapping with name, source, corruption)",
                )
            eval_sets.append(known[item])
            continue
        if item.name == "val":
            raise err(f"data.eval_sets[{i}].name", "is required: a string other than 'val' (val is always evaluated)")
        cp = freeze({k: getattr(item, k) for k in type(item).model_fields if k not in ("name", "source", "corruption")})
        eval_sets.append(EvalSetSpec(item.name, item.source, item.corruption, cp))
    names = [e.name for e in eval_sets]
    if len(set(names)) != len(names):
        raise err("data.eval_sets", f"names must be unique, got {names}")
    if d.folds > 1 and "val_size" in raw:
        raise err("data.folds", "cannot be combined with data.val_size (with k folds each fold is the validation split once)")
    invariance = freeze(dict(d.invariance) | {NON_IDENTITY: True}) if d.invariance is not None else None
    spec = DataSpec(d.name, params, d.val_size, d.split_seed, d.corruption_seed, tuple(eval_sets), d.folds, invariance=invariance)
    return spec, Path(d.root) if d.root else None, make_dataset(spec).describe()


def _check_invariance(source: str, data: DataSpec, info: DataInfo) -> None:
    """``data.invariance`` applied to blank inputs of the data set (:func:`~kdtune.train.data.augment.check_invariance`)."""
    if data.invariance is None:
        return
    try:
        check_invariance(data.invariance, info, data.name)
    except ValueError as e:
        raise SpecError(source, "data.invariance", first_line(e)) from None


def _model(err: Callable[..., SpecError], label: str, m: Any, raw: Any, info: DataInfo, labels: list[str]) -> ModelSpec:
    where = f"models.{label}"
    if not re.match(LABEL, label) or label in (NO_TEACHER, SELF_TEACHER):
        raise err(
            where,
            f"model labels must start with a letter, use letters, digits, _ . + - and not be {NO_TEACHER!r} or {SELF_TEACHER!r}",
        )
    params = _params(m.params, type(m).model_fields["params"].annotation.__args__[0])
    try:  # build it and run it on a small batch: parameters that only fail on data fail here
        check_model(m.arch, info, dict(params))
    except Exception as e:  # any error from a model's constructor or forward means a bad parameter
        raise err(where + ".params", f"{first_line(e)} (with {dict(params) or 'the defaults'})") from None
    hp = {NO_TEACHER: m.hparams} if isinstance(m.hparams, str) else m.hparams
    for teacher in hp:
        if teacher not in (NO_TEACHER, *labels):
            raise err(f"{where}.hparams.{teacher}", f"must be data or a model label ({', '.join(labels)})")
    raw = raw if isinstance(raw, Mapping) else {}
    return ModelSpec(
        label,
        m.arch,
        params,
        _layers(m.train, raw.get("train"), TRAIN_KEYS),
        _layers(m.distill, raw.get("distill"), TRAIN_KEYS),
        tuple(t for t, v in hp.items() if v == "tuned"),
        _layers(m.distill, raw.get("distill"), SWITCH_KEYS),
    )


def _grid(err: Callable[..., SpecError], g: Grid, raw: Mapping[str, Any], models: Sequence[str]) -> GridSpec:
    def check(path: str, values: Sequence[str], allowed: Sequence[str]) -> None:
        for i, v in enumerate(values):
            if v not in allowed:
                raise err(f"grid.{path}[{i}]", f"must be one of {', '.join(allowed)}; got {v!r}")

    teachers = [NO_TEACHER, SELF_TEACHER, *models]
    if g.pairs is not None:
        if g.students is not None or g.teachers is not None:
            raise err("grid.pairs", "use either pairs or students × teachers, not both")
        pairs = []
        for i, p in enumerate(g.pairs):
            if isinstance(p, str) and "->" not in p:
                raise err(f"grid.pairs[{i}]", "each pair must be 'TEACHER -> STUDENT' or {teacher: ..., student: ...}")
            t, s = (x.strip() for x in p.split("->", 1)) if isinstance(p, str) else (p.teacher, p.student)
            check(f"pairs[{i}]", [t], teachers)
            check(f"pairs[{i}]", [s], list(models))
            pairs.append((t, s))
    else:
        if g.students is None:
            raise err("grid.students", f"is required (or grid.pairs); models: {', '.join(models)}")
        check("students", g.students, list(models))
        check("teachers", g.teachers or (), teachers)
        pairs = [(t, s) for s in g.students for t in g.teachers or (NO_TEACHER,)]
    pairs = tuple(dict.fromkeys((s if t == SELF_TEACHER else t, s) for t, s in pairs))

    def seeds(name: str, v: int | list[int] | None) -> tuple[int, ...] | None:
        if isinstance(v, list) and len(set(v)) != len(v):
            raise err(f"grid.{name}", f"seeds must be distinct, got {v}")
        return None if v is None else tuple(range(v)) if isinstance(v, int) else tuple(v)

    if "seeds" in raw and (g.init_seeds is not None or g.data_seeds is not None):
        both = "init_seeds" if g.init_seeds is not None else "data_seeds"
        raise err(
            f"grid.{both}",
            "use either seeds (each seed sets initialisation and data order together) or init_seeds × data_seeds, not both",
        )
    inits, datas = seeds("init_seeds", g.init_seeds), seeds("data_seeds", g.data_seeds)
    n_units = len(inits or (0,)) * len(datas or (0,))
    if (inits or datas) and isinstance(g.teacher_seed, int) and g.teacher_seed >= n_units:
        raise err(
            "grid.teacher_seed",
            f"must be 'same' (student unit k reads teacher unit k) or the number of one of the {n_units} "
            f"seed units of init_seeds × data_seeds (0-{n_units - 1}), got {g.teacher_seed!r}",
        )
    students = any(t != NO_TEACHER for t, _ in pairs)
    if "student_streams" in raw and not students:
        raise err("grid.student_streams", "sets students' streams, but every pair here trains from data")
    for axis in SWITCH_KEYS:
        if axis in raw and not students:
            raise err(f"grid.{axis}", "switches distillation on or off, but every pair here trains from data (no teacher)")
    if students and 0.0 in g.w_hard and 0.0 in g.w_soft:
        raise err("grid", "w_hard = 0 and w_soft = 0 together leave a student without a loss; drop one of the zeros")
    same = ("temperature", "w_hard", "w_soft", "loss", "teacher_seed", "start", "stop", "student_streams")  # as validated
    return GridSpec(
        pairs,
        seeds=seeds("seeds", g.seeds),
        train=tuple((k, getattr(g, k)) for k in TRAIN_SETTINGS if getattr(g, k) is not None),
        init_seeds=inits,
        data_seeds=datas,
        **{k: getattr(g, k) for k in same},
    )


def _tune(err: Callable[..., SpecError], t: Tune | None, spec: SweepSpec) -> TuneSpec:
    if t is None:
        return TuneSpec()
    spaces = []
    for key, body in (t.space or {}).items():
        where = f"tune.space.{key}"
        teacher, _, model = key.rpartition("->")
        teacher, model = (teacher.strip() or NO_TEACHER), model.strip()
        if model not in spec.models or (teacher != NO_TEACHER and teacher not in spec.models):
            raise err(where, f"must be a model label or 'TEACHER -> STUDENT' with models {', '.join(spec.models)}")
        settings = {k: v for k, v in body if v is not None}  # its fields and its schedule.* keys
        if not settings:
            raise err(where, "must map settings to distributions, e.g. {lr: {loguniform: [1.0e-4, 1.0e-2]}}")
        params = []
        schedule = resolve_train(spec, spec.models[model], student=teacher != NO_TEACHER).schedule.name
        for setting in [k for k in (spec.raw["tune"]["space"][key] or {}) if k in settings]:
            allowed = [*TRAIN_SETTINGS, "schedule.<parameter>", *(LOSS_SETTINGS if teacher != NO_TEACHER else ())]
            if setting not in allowed and not setting.startswith("schedule."):
                raise err(f"{where}.{setting}", f"cannot be tuned here; allowed: {', '.join(allowed)}")
            dist, param = settings[setting].to_distribution(), setting.partition("schedule.")[2]  # param: of the schedule
            reader = Grid if setting in LOSS_SETTINGS else Train
            problem = lambda v: first_problem(reader, {"schedule": {"name": schedule, param: v}} if param else {setting: v})  # noqa: B023
            if param and "unknown parameter" in (problem(1.0) or ""):
                raise err(f"{where}.{setting}", problem(1.0).replace("this schedule", f"the schedule {schedule}"))
            if setting in INT_SETTINGS and dist.kind in ("uniform", "loguniform"):
                raise err(f"{where}.{setting}", "is a whole number: use {int: [low, high]} or categorical")
            probes = list(enumerate(dist.choices)) if dist.kind == "categorical" else [(None, dist.low), (None, dist.high)]
            for i, v in probes:  # the field holding a wrong value: the choice, or the [low, high] pair
                if problem(v):
                    raise err(f"{where}.{setting}.{dist.kind}" + (f"[{i}]" if i is not None else ""), problem(v))
            params.append((setting, dist))
        spaces.append(SearchSpace(model, teacher, tuple(params)))
    asha = t.asha if isinstance(t.asha, AshaSpec) else AshaSpec() if t.asha else None
    return TuneSpec(t.metric, t.seeds, t.sampler_seed, asha, tuple(spaces))


def _check_switches(spec: SweepSpec) -> None:
    """Every switched student distils in at least one epoch: a start after the last epoch, or a stop at or
    before the start, is refused (one line naming where the values came from)."""
    for teacher, student in spec.grid.pairs:
        if teacher == NO_TEACHER:
            continue
        model = spec.models[student]
        for overrides in spec.grid.train_axes():
            epochs = resolve_train(spec, model, student=True, overrides=overrides).epochs
            for start, stop in switch_points(spec, model):
                if distill_epochs(LossSpec("hinton", 1.0, 0.0, 1.0, start, stop), epochs):
                    continue
                grid = [f"grid.{k}" for k in SWITCH_KEYS if getattr(spec.grid, k) is not None]
                where = " and ".join(grid) or (f"models.{student}.distill" if model.switch else "distill")
                raise SpecError(
                    spec.source,
                    where,
                    f"start {start} and stop {stop} leave {student} (a student of {teacher}, {epochs} epochs) no distilled "
                    "epoch; fractions in [0, 1) count from epoch round(v·epochs)+1, integers are epoch numbers",
                )


def _folder_message(path: Path) -> str:
    """What to say when a folder is given as the sweep file: the YAML files in it, or an example."""
    found = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if not found:
        return f"{path}: is a folder; give a sweep file (e.g. sweeps/quickstart.yaml)"
    shown = ", ".join(str(path / p.name) for p in found[:8]) + (f" and {len(found) - 8} more" if len(found) > 8 else "")
    example = next((p for p in found if p.name == "quickstart.yaml"), found[0])
    return f"{path}: is a folder; give a sweep file (e.g. {path / example.name}); sweep files in it: {shown}"


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
        raise SpecError(str(path), "", f"must be a YAML mapping at the top level, got {kind_of(raw)}")
    try:
        return parse_sweep(apply_overrides(raw, overrides), str(path), data_root=data_root, output=output)
    except SpecError as e:
        if not overrides:
            raise
        check = lambda: parse_sweep(raw, str(path), data_root=data_root, output=output)
        raise blame_overrides(e, overrides, check) from None
