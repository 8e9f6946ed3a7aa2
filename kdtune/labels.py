"""The results' vocabulary, written once: the names of metrics and settings, which settings tell trials apart, how a
value is written and matched, and what the units of a cell are. ``kdtune status``, ``report``, ``plan``, the
analyses, claims, tuning and the trackers all read it, so a setting prints the same everywhere.

It imports no torch and no pandas at module level (the reader of a run folder and ``kdtune status`` stay light);
functions that take a DataFrame import pandas themselves.
"""

from __future__ import annotations

import json
import math
import numbers
import zlib
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

NO_TEACHER = "data"  # the teacher of a model trained from data (no distillation)
# the metrics a report shows; a results table always has the first five, tasks add the others
METRICS = ("accuracy", "nll", "ece", "agreement", "kl", "im", "d_accuracy", "a_accuracy", "perplexity", "token_nll")
# validation metric → what a search does with it; BETTER adds the metrics no search optimises (--bold best)
DIRECTIONS = dict.fromkeys(("accuracy", "a_accuracy", "d_accuracy"), "maximize")
DIRECTIONS |= dict.fromkeys(("nll", "ece", "perplexity", "token_nll"), "minimize")
BETTER = {**DIRECTIONS, "agreement": "maximize", "kl": "minimize", "im": "minimize"}

# The training settings a grid crosses, a search tunes and a table shows, in the tables' order (the train section's
# fields but for its schedule, augmentation and selection); the whole numbers among them; the loss settings a search
# tunes, and every distillation setting (none applies to a model trained from data).
TRAIN_SETTINGS = ("lr", "weight_decay", "dropout", "label_smoothing", "grad_clip", "epochs", "batch_size", "optimizer")
INT_SETTINGS = ("epochs", "batch_size")
LOSS_SETTINGS = ("temperature", "w_hard", "w_soft")
KD_SETTINGS = (*LOSS_SETTINGS, "kd_loss", "start", "stop")
SETTING_COLUMNS = (*KD_SETTINGS, *TRAIN_SETTINGS, "schedule", "augment")  # a setting's own column in the results
CONFIG_COLUMNS = ("teacher_config", "config")  # a teacher's / the model's other settings, where they differ
REPORT_KEYS = ("student", "teacher", "eval_set", "seed", "fold", "arch", *SETTING_COLUMNS, *CONFIG_COLUMNS)  # tables group by
# never averaged over inside one cell: the keys, the definition of im (data.invariance) and the selection rule (derived
# from the switch; it splits a folder holding switched students selected among every epoch by an older kdtune)
SETTINGS = ("eval_set", "student", "teacher", *SETTING_COLUMNS, "invariance", "select_from", *CONFIG_COLUMNS)
SHORT = {"temperature": "τ", "kd_loss": "loss"}  # a setting's name in figures' legends
SELECT_FROM = ("first_epoch", "last_switch")  # the epochs model selection chooses among (derived from the loss)
# grid.student_streams: a student's random streams drawn apart from those of the models trained from data, or shared
STUDENT_STREAMS = ("apart", "shared")
# A unit (trained model) of a cell as far as pairing goes (kdtune.results.stats.pair_up): its fold (None without folds), the
# seeds of its random streams, and what its initialisation was drawn for (architecture and its parameters).
UNIT_KEYS = ("fold", "init_seed", "data_seed", "init")
# the choices of ``kdtune report``: output formats, what ± shows, the test of a comparison (auto: paired where the
# design is, else Welch's), the multiple-comparison correction, what bold marks
FORMATS = ("markdown", "latex", "csv")
INTERVALS = ("std", "se", "ci95")  # standard deviation, standard error, t-based 95 % interval
TESTS = ("auto", "paired", "welch", "bootstrap", "permutation")
CORRECTIONS = ("holm", "bonferroni", "none")
BOLD = ("best", "significant")  # the best mean (and the second, underlined); or the best and every cell not worse
BOOLEAN_WORDS = {"yes": True, "true": True, "no": False, "false": False}


# ---------------------------------------------------------------- values as text


def missing(v: object) -> bool:
    """None, NaN, or pandas' NA/NaT."""
    return v is None or (isinstance(v, float) and math.isnan(v)) or type(v).__name__ in ("NAType", "NaTType")


def show(v: object) -> str:
    """A value on its own as tables write it: ``–`` when missing, a whole float as an integer, anything else ``str``."""
    if missing(v):
        return "–"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return str(v)


def number_labels(values: Iterable[object], floor: int = 4) -> dict[object, str]:
    """Each of ``values`` as text: floats with the fewest significant digits, at least ``floor``, that keep the distinct
    ones apart (``0.001183`` and ``0.001184``, not two ``0.0012``), else their ``repr``; everything else by :func:`show`.
    The one number formatter of kdtune: a learning rate reads the same in status, reports, plans and figures."""
    seen = [v for v in values if isinstance(v, Hashable)]
    floats = {float(v) for v in seen if isinstance(v, float) and not missing(v)}

    def label(v: float, digits: int) -> str:
        return show(v) if v.is_integer() and abs(v) < 1e15 else f"{v:.{digits}g}"

    digits = next((d for d in range(floor, 18) if len({label(v, d) for v in floats}) == len(floats)), None)
    return {v: (label(float(v), digits) if digits else repr(float(v))) if isinstance(v, float) and not missing(v) else show(v)
            for v in seen}  # fmt: skip


def value_text(v: object) -> str:
    """One value as :func:`number_labels` writes it (a float to 4 significant digits)."""
    return number_labels([v]).get(v, show(v)) if isinstance(v, Hashable) else show(v)


def describe(values: Mapping[str, object], keys: Sequence[str], labels: Mapping[str, Mapping[object, str]] | None = None,
             short: bool = False, sep: str = ", ") -> str:  # fmt: skip
    """``lr=0.001183, dropout=0`` (``τ=4`` with ``short``): the ``keys`` of ``values``, each written by its own
    :func:`number_labels` (``labels``: key → labels made over every value shown beside it) or alone."""
    out = []
    for k in keys:
        v = values.get(k)
        shown = (labels or {}).get(k, {}).get(v) if isinstance(v, Hashable) else None
        out.append(f"{SHORT.get(k, k) if short else k}={shown if shown is not None else value_text(v)}")
    return sep.join(out)


def matches(column: pd.Series, wanted: str) -> pd.Series:
    """The rows whose value reads as ``wanted``: its text or label (``4`` for 4.0, ``0.001183``), a number equal to it,
    a boolean named by yes/no/true/false, or (column ``sweep``, which lists the sweeps that ran a trial: ``a,b``) one
    of its names. A missing value matches nothing. The one value matcher of claims, ``--compare`` and ``--where``."""
    if column.name == "sweep":
        return column.map(lambda v: isinstance(v, str) and wanted in v.split(",")).astype(bool)
    want_bool = BOOLEAN_WORDS.get(wanted.strip().lower())
    try:
        number: float | None = float(wanted)
    except ValueError:
        number = None
    labels = number_labels(dict.fromkeys(v for v in column.astype(object) if isinstance(v, Hashable) and not missing(v)))

    def same(v: object) -> bool:
        if missing(v):
            return False
        if isinstance(v, (bool, np.bool_)) or v in ("True", "False"):
            return want_bool is not None and (v in (True, "True")) == want_bool
        if isinstance(v, numbers.Number):
            return (number is not None and float(v) == number) or labels.get(v) == wanted  # type: ignore[arg-type]
        return str(v) == wanted

    return column.astype(object).map(same).astype(bool)


# ---------------------------------------------------------------- which settings tell trials apart


def varying(rows: pd.DataFrame, by: Sequence[str], tiers: Sequence[tuple[Sequence[str], bool]]) -> list[str]:
    """The columns that tell ``rows`` apart within each group of ``by``: repeatedly, group by ``by`` and the columns
    chosen so far, and in the first tier (``(columns, every)``, most telling first) with a column that takes more than
    one value (missing is a value) inside some group, choose them all (``every``) or its first; stop when none varies.
    In the tiers' order. The one rule of kdtune for which settings a table, a status line, a plan line or a figure's
    group adds, so that no cell, line or group pools two configurations."""
    chosen: list[str] = []
    while True:
        keys = [*by, *chosen]
        grouped = rows.groupby(keys, observed=True, dropna=False, sort=False) if keys else None
        more: list[str] = []
        for columns, every in tiers:
            free = [c for c in columns if c in rows and c not in keys]
            vary = [c for c in free if (grouped[c].nunique(dropna=False) > 1).any()] if grouped is not None else [
                c for c in free if rows[c].nunique(dropna=False) > 1]  # fmt: skip
            if vary:
                more = vary if every else vary[:1]
                break
        if not more:
            order = [c for columns, _ in tiers for c in columns]
            return sorted(chosen, key=order.index)
        chosen += more


def leaves(value: Any, prefix: str = "") -> dict[str, str]:
    """A stored config (or sweep) by its leaves: dotted key → the leaf as JSON text (a list is one leaf)."""
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for k, v in value.items():
            out |= leaves(v, f"{prefix}{k}.")
        return out
    return {prefix[:-1]: json.dumps(value, sort_keys=True)}


def short_key(key: str) -> str:
    """A leaf's name as a person says it: ``train.lr`` → ``lr``, ``params.hidden`` → ``hidden``,
    ``train.schedule.params.decay_rate`` → ``schedule.decay_rate``, ``data.params.size`` → ``data.size``."""
    parts = [p for p in key.split(".") if p != "params"]
    return ".".join(parts[1:] if len(parts) > 1 and parts[0] in ("train", "loss") else parts)


def leaf_value(leaf: str) -> object:
    """A leaf's JSON text as a value to write: a number or a string itself, anything else (a list, null) its JSON text."""
    v = json.loads(leaf)
    return v if isinstance(v, (int, float, str)) and not isinstance(v, bool) else leaf


# ---------------------------------------------------------------- a stored trial config, read as settings


def stream_seeds(seed: int, data_seed: int | None, distills: bool, shared: bool) -> dict[str, int]:
    """The seeds of a trial's random streams, ``init_seed`` (initial weights) and ``data_seed`` (data order, dropout
    masks, augmentation), from the grid's ``seed`` and ``data_seed`` (None: the seed). A model trained from data (or a
    student sharing its streams, ``student_streams: shared``) draws from them as they are; a student (streams apart)
    from a number drawn from them, so student seed s of teacher seed s of one model does not start as its copy."""

    def stream(s: int) -> int:
        return s if not distills or shared else zlib.crc32(f"student:{s}".encode())

    return {"init_seed": stream(seed), "data_seed": stream(seed if data_seed is None else data_seed)}


def invariance_label(invariance: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> str | None:
    """``data.invariance`` as one string (``translate max_shift=1``), which defines a trial's ``im``: a config of a
    kdtune that drew identity transformations too (no ``non_identity``) is marked, so a table never averages
    the two definitions in one cell."""
    if invariance is None:
        return None
    params = dict(invariance)
    name, non_identity = params.pop("name"), params.pop("non_identity", False)
    out = " ".join([name, *(f"{k}={v}" for k, v in sorted(params.items()))])
    return out if non_identity else f"{out} (identity drawn too)"


def summary(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings columns of a stored trial config (the JSON of ``TrialConfig.to_dict``: settings at the values
    they had before they existed left out), its stream seeds and the definition of its ``im``: what the results table
    groups by. Read from the JSON alone, so a run folder is read without the trainer."""
    loss, train, data = config.get("loss") or {}, config.get("train") or {}, config.get("data") or {}
    distills = loss.get("kind", "ce") != "ce"
    kd = {"temperature": loss.get("temperature"), "w_hard": loss.get("w_hard"), "w_soft": loss.get("w_soft"),
          "kd_loss": loss.get("kind"), "start": loss.get("start", 0.0), "stop": loss.get("stop")}  # fmt: skip
    shared = config.get("student_streams", STUDENT_STREAMS[0]) == STUDENT_STREAMS[1]
    return {
        **stream_seeds(config["seed"], config.get("data_seed"), distills, shared),
        "arch": config.get("arch"),
        **{k: v if distills else None for k, v in kd.items()},
        "select_from": train.get("select_from", SELECT_FROM[0]),
        **{k: train.get(k) for k in TRAIN_SETTINGS},
        "schedule": (train.get("schedule") or {}).get("name"),
        "augment": (train.get("augment") or {}).get("name"),
        "invariance": invariance_label(data.get("invariance")),
    }


# ---------------------------------------------------------------- the units of a cell


def unit_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """A results row's :data:`UNIT_KEYS`: ``init`` from the trial's configuration class (``_class``: its ``arch`` and
    ``params.*``), else its student label (a label is one model configuration); a missing value (NaN) as None."""

    def value(v: Any) -> Any:
        return None if missing(v) else v

    cls = row.get("_class")
    if isinstance(cls, Mapping) and "arch" in cls:
        init = ";".join(f"{k}={v}" for k, v in sorted(cls.items()) if k == "arch" or k.startswith("params."))
    else:
        init = value(row.get("student"))
    return (value(row.get("fold")), value(row.get("init_seed")), value(row.get("data_seed")), init)


@dataclass
class Units:
    """The independent units (trained models) of one cell: their pairing keys (:data:`UNIT_KEYS`, or one key per
    unit of an analysis' table), their values (NaN: planned, not finished), how many trials were planned, their ids
    and the k of a k-fold design (None without folds)."""

    keys: list[tuple[object, ...]]
    values: np.ndarray
    planned: int = 0
    ids: list[str] | None = None
    folds: int | None = None

    @property
    def n(self) -> int:
        """The units with a value."""
        return int(np.isfinite(self.values).sum())

    def finished(self) -> Units:
        """The units with a value alone (the design's ``planned`` and ``folds`` kept)."""
        keep = np.flatnonzero(np.isfinite(self.values))
        ids = [self.ids[i] for i in keep] if self.ids else self.ids
        return Units([self.keys[i] for i in keep], self.values[keep], self.planned, ids, self.folds)


def cell_units(rows: pd.DataFrame, metric: str) -> Units:
    """The units of the cell made of the planned results rows ``rows``: each row's :func:`unit_key`, its ``metric``
    where it finished (NaN otherwise), its trial id; the k of a k-fold design read from every planned unit's fold.
    The one definition of a cell's units, for the report's tables and for claims."""
    records = rows.to_dict("records")
    keys = [unit_key(r) for r in records]
    value = rows[metric].where(rows["status"] == "ok") if "status" in rows else rows[metric]
    folds = {k[0] for k in keys}
    k = len(folds) if len(folds) > 1 and None not in folds else None
    ids = [str(r.get("trial_id", i)) for i, r in enumerate(records)]
    planned = rows["trial_id"].nunique() if "trial_id" in rows else len(rows)
    return Units(keys, value.to_numpy(dtype=float), planned, ids, k)
