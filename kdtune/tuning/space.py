"""The ``tune:`` section of a sweep file → :class:`TuneSpec`, checked like the rest of the file.

```yaml
tune:
  metric: accuracy              # a validation metric (never a test set); its direction is known
  seeds: 3                      # each search trial trains these seeds; the objective is their mean
  sampler_seed: 0               # Optuna's TPE sampler
  asha: {grace_period: 2, reduction_factor: 3}   # or false: every search trial runs all its epochs
  space:
    MLP:                        # MLP trained from data
      lr: {loguniform: [1.0e-4, 1.0e-2]}
      dropout: {uniform: [0.0, 0.5]}
      batch_size: {categorical: [32, 64, 128]}
      epochs: {int: [10, 40], step: 10}
      schedule.decay_rate: {uniform: [0.8, 0.99]}
    CNN -> MLP:                 # MLP as a student of CNN: also temperature, w_hard, w_soft
      temperature: {loguniform: [1, 16]}
      w_hard: {uniform: [0, 1]}
```
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kdtune.errors import SpecError

# validation metric → direction (what a search maximises or minimises)
DIRECTIONS = {
    "accuracy": "maximize",
    "a_accuracy": "maximize",
    "d_accuracy": "maximize",
    "nll": "minimize",
    "ece": "minimize",
    "perplexity": "minimize",
    "token_nll": "minimize",
}
KINDS = ("loguniform", "uniform", "int", "categorical")
TRAIN_SETTINGS = ("lr", "weight_decay", "dropout", "label_smoothing", "batch_size", "epochs", "grad_clip", "optimizer")
LOSS_SETTINGS = ("temperature", "w_hard", "w_soft")
INT_SETTINGS = ("batch_size", "epochs")


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
    """Early stopping of bad search trials by Ray Tune's ASHA scheduler (it only stops trials)."""

    grace_period: int = 2
    reduction_factor: float = 3.0


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


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def parse_distribution(raw: Any, where: str, source: str) -> Distribution:
    """``{loguniform: [lo, hi]}``, ``{uniform: [lo, hi]}``, ``{int: [lo, hi], step: k, log: false}`` or
    ``{categorical: [a, b, ...]}``."""
    form = "{loguniform: [low, high]}, {uniform: [low, high]}, {int: [low, high], step: 1} or {categorical: [a, b]}"
    if not isinstance(raw, Mapping):
        raise SpecError(source, where, f"must be a distribution, one of {form}; got {_given(raw)}")
    kinds = [k for k in raw if k in KINDS]
    extra = [k for k in raw if k not in (*KINDS, "step", "log")]
    if len(kinds) != 1 or extra:
        raise SpecError(source, where, f"must be a distribution, one of {form}; got keys {list(raw)}")
    kind = kinds[0]
    value = raw[kind]
    if kind == "categorical":
        if set(raw) != {"categorical"}:
            raise SpecError(source, where, "categorical takes only its list of choices")
        if not isinstance(value, list) or not value:
            raise SpecError(source, where + ".categorical", f"must be a non-empty list of choices, got {_given(value)}")
        for i, v in enumerate(value):
            if not (v is None or isinstance(v, (bool, int, str)) or _is_number(v)):
                what = "a choice must be a number, a string, true, false or null"
                raise SpecError(source, f"{where}.categorical[{i}]", f"{what}; got {_given(v)}")
        if len({repr(v) for v in value}) != len(value):
            raise SpecError(source, where + ".categorical", f"choices must be distinct, got {value}")
        return Distribution("categorical", choices=tuple(value))
    if not isinstance(value, list) or len(value) != 2 or not all(_is_number(v) for v in value):
        raise SpecError(source, where + f".{kind}", f"must be [low, high] (two numbers), got {value!r}")
    low, high = value
    if not low < high:
        raise SpecError(source, where + f".{kind}", f"low must be < high, got [{low}, {high}]")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise SpecError(source, where + ".log", f"must be true or false, got {_given(log)}")
    if (kind == "loguniform" or log) and low <= 0:
        raise SpecError(source, where + f".{kind}", f"a log scale needs low > 0, got {low}")
    step = raw.get("step")
    if kind == "int":
        if not all(isinstance(v, int) for v in value):
            raise SpecError(source, where + ".int", f"bounds must be integers, got {value}")
        if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 1):
            raise SpecError(source, where + ".step", f"must be an integer >= 1, got {_given(step)}")
        if log and step not in (None, 1):
            raise SpecError(source, where + ".step", "a log scale takes no step (Optuna)")
        if step and step > high - low:
            raise SpecError(source, where + ".step", f"must be <= high - low ({high - low}), got {step}")
        if step and (high - low) % step:
            raise SpecError(source, where + ".step", f"high - low ({high - low}) must be a multiple of step {step}")
        return Distribution("int", low, high, step or 1, log)
    if "log" in raw:
        raise SpecError(source, where + ".log", f"{kind} sets its own scale; log is for int")
    if step is not None and (kind == "loguniform" or not _is_number(step) or step <= 0):
        raise SpecError(source, where + ".step", f"only uniform takes a step, a number > 0; got {_given(step)}")
    if step is not None and step > high - low:
        raise SpecError(source, where + ".step", f"must be <= high - low ({high - low:g}), got {step!r}")
    return Distribution(kind, float(low), float(high), float(step) if step is not None else None)


def _given(v: Any) -> str:
    """A value as error messages show it: its YAML kind and its text."""
    return "null" if v is None else f"{type(v).__name__} {v!r}"


def parse_spaces(
    raw: Any, source: str, models: Mapping[str, Any], check_value: Any, check_setting: Any = None
) -> tuple[SearchSpace, ...]:
    """Validate ``tune.space``. ``check_value(setting, value, model, teacher) -> str | None`` says what is
    wrong with one value of a setting (bounds and choices are checked with it), ``check_setting(setting,
    model, teacher) -> str | None`` what is wrong with tuning the setting at all. The other fields of
    ``tune:`` are read by :func:`kdtune.spec.parse_sweep` like the rest of the file."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise SpecError(
            source, "tune.space", f"must be a mapping: a model label or 'TEACHER -> STUDENT' → its settings; got {_given(raw)}"
        )
    spaces = []
    for key, body in raw.items():
        where = f"tune.space.{key}"
        teacher, _, model = str(key).rpartition("->")
        teacher, model = (teacher.strip() or "data"), model.strip()
        if model not in models or (teacher != "data" and teacher not in models):
            raise SpecError(source, where, f"must be a model label or 'TEACHER -> STUDENT' with models {', '.join(models)}")
        if not isinstance(body, Mapping) or not body:
            example = "{lr: {loguniform: [1.0e-4, 1.0e-2]}}"
            raise SpecError(source, where, f"must map settings to distributions, e.g. {example}; got {_given(body)}")
        params = []
        for setting, dist_raw in body.items():
            allowed = [*TRAIN_SETTINGS, "schedule.<parameter>", *(LOSS_SETTINGS if teacher != "data" else ())]
            if not isinstance(setting, str) or (setting not in allowed and not setting.startswith("schedule.")):
                raise SpecError(source, f"{where}.{setting}", f"cannot be tuned here; allowed: {', '.join(allowed)}")
            problem = check_setting(setting, model, teacher) if check_setting else None
            if problem:
                raise SpecError(source, f"{where}.{setting}", problem)
            dist = parse_distribution(dist_raw, f"{where}.{setting}", source)
            if setting in INT_SETTINGS and dist.kind in ("uniform", "loguniform"):
                raise SpecError(source, f"{where}.{setting}", "is a whole number: use {int: [low, high]} or categorical")
            # the field holding a wrong value: the choice, or the [low, high] pair
            probes = list(enumerate(dist.choices)) if dist.kind == "categorical" else [(None, dist.low), (None, dist.high)]
            for i, v in probes:
                problem = check_value(setting, v, model, teacher)
                if problem:
                    raise SpecError(source, f"{where}.{setting}.{dist.kind}" + (f"[{i}]" if i is not None else ""), problem)
            params.append((setting, dist))
        spaces.append(SearchSpace(model, teacher, tuple(params)))
    return tuple(spaces)
