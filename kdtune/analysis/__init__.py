"""Cross-run analyses: a finished run folder → figures, tables and one HTML page, never retraining.

Each analysis is one file in this package plus one registration::

    @ANALYSES.register("calibration")
    def calibration(view: RunView, out: Path) -> Output: ...

It reads only the run folder through :class:`RunView` (stored probabilities and features, checkpoints,
and the data those were computed on) and returns an :class:`Output`: the figures it wrote under
``out`` (PNG and PDF), its tables, notes, and one line per thing it skipped and why.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from kdtune.errors import KdtuneError
from kdtune.labels import SHORT, matches, missing, number_labels, value_text
from kdtune.registry import Registry

# the analyses in their order: registered name (--only, RUN/analysis/<name>/, a claim's source) → module of this package
MODULES = {"similarity": "similarity", "paths": "paths", "barriers": "barriers", "errors": "overlap",
           "calibration": "calibration", "invariance": "invariance", "hardness": "hardness", "symmetry": "symmetry",
           "switch": "switch"}  # fmt: skip


@dataclass(frozen=True)
class TrialView:
    """A finished trial as analyses see it: its labels and its config."""

    id: str
    student: str
    teacher: str
    seed: int
    config: Any  # kdtune.plan.TrialConfig
    detail: str = ""  # distillation settings that vary in the view, e.g. "τ=4"

    @property
    def arch(self) -> str:
        return self.config.arch

    @property
    def group(self) -> str:
        """``MLP (data)``, ``MLP ← CNN`` (or ``MLP ← CNN τ=4``, ``MLP (data) lr=0.003`` when settings vary
        between trials of one student and teacher): the trial's configuration, one per group."""
        return group_name(self.student, self.teacher, self.detail)

    @property
    def fold(self) -> int | None:
        """The held-out fold of a k-fold sweep (``data.folds``), None without folds."""
        data = self.config.data
        return data.fold if getattr(data, "folds", 1) > 1 else None

    @property
    def init_seed(self) -> int:
        """The seed the trial's initialisation was drawn from: two trials with the same one start from the same weights."""
        from kdtune.train.trainer import trial_seed

        return trial_seed(self.config)

    @property
    def source(self) -> str:
        """What the model learned from, with the settings that tell its configuration apart: ``data``, ``CNN τ=4``."""
        return self.teacher + (f" {self.detail}" if self.detail else "")

    @property
    def label(self) -> str:
        return f"{self.group} s{self.seed}" + (f" f{self.fold}" if self.fold is not None else "")


def group_name(student: str, teacher: str, detail: str = "") -> str:
    """``MLP (data)``, ``MLP ← CNN``, with the settings that tell the configuration apart after it (``MLP ← CNN τ=4``)."""
    kind = f"{student} (data)" if teacher == "data" else f"{student} ← {teacher}"
    return kind + (f" {detail}" if detail else "")


@dataclass
class Output:
    """What one analysis produced."""

    name: str
    title: str
    figures: list[Path] = field(default_factory=list)  # PNGs (a PDF beside each)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)  # (title, table with a named index)
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


Analysis = Callable[["RunView", Path], Output]
ANALYSES: Registry[Analysis] = Registry("analysis")


class RunView:
    """Read-only access to a run folder's finished trials (after ``where`` filters) for analyses."""

    def __init__(
        self,
        run_dir: Path,
        where: dict[str, list[str]] | None = None,
        eval_sets: Sequence[str] | None = None,
        data_root: str | Path | None = None,
        sweep: str | None = None,
    ) -> None:
        from kdtune.results.reader import collect_run

        self.run_dir = Path(run_dir)
        self.results = collect_run(self.run_dir, sweep)
        ok = self.results[self.results["status"] == "ok"]
        rows = filter_rows(ok.drop_duplicates("trial_id"), where or {})
        records = zip(rows.to_dict("records"), config_labels(rows), strict=True)
        self.trials: list[TrialView] = [self.trial(r, detail) for r, detail in records]
        present = set(ok["eval_set"].astype(str))
        known = [str(e) for e in self.results["eval_set"].cat.categories if str(e) in present and e != "val"]
        if eval_sets:
            unknown = [e for e in eval_sets if e not in known and e != "val"]
            if unknown:
                raise KdtuneError(f"--eval-set {unknown[0]}: not in these results; known: {', '.join(known)}")
        self.eval_sets = list(eval_sets) if eval_sets else known
        self.data_root = data_root

    def trial(self, row: Mapping[str, Any], detail: str = "") -> TrialView:
        """The trial of a results row (``trial_id``, ``student``, ``teacher``, ``seed``), its config read from the run."""
        from kdtune.rundir import CONFIG, read_json, trial_dir
        from kdtune.train.config import TrialConfig

        cfg = TrialConfig.from_dict(read_json(trial_dir(self.run_dir, row["trial_id"]) / CONFIG)["config"])
        return TrialView(row["trial_id"], str(row["student"]), str(row["teacher"]), int(row["seed"]), cfg, detail)

    @functools.lru_cache(maxsize=64)  # noqa: B019  (one view per command; trials' arrays are read once)
    def outputs(self, trial_id: str) -> dict[str, np.ndarray]:
        """The trial's saved arrays (``probs__<eval set>``, ``labels__…``, ``features__…``, ``feature_index__…``)."""
        from kdtune.rundir import load_outputs

        return load_outputs(self.run_dir, trial_id)

    def data(self, trial: TrialView) -> Any:
        """The data bundle the trial was trained and evaluated on (CPU), checked against its fingerprint."""
        from kdtune.train.data import data_fingerprint, load_data

        cfg = trial.config
        bundle = load_data(cfg.data, self.data_root)
        if cfg.data_fingerprint and data_fingerprint(cfg.data, self.data_root) != cfg.data_fingerprint:
            raise KdtuneError(f"trial {trial.id}: the data found now differs from the data it was trained on (--data-dir?)")
        return bundle

    def model(self, trial: TrialView, device: str = "cpu") -> Any:
        """The trial's model with its checkpoint (checked), in eval mode."""
        import torch

        from kdtune.train.trainer import load_trained_model

        return load_trained_model(self.run_dir, trial.id, self.data(trial).info, torch.device(device))

    def groups(self) -> dict[str, list[TrialView]]:
        """Trials by group (``MLP (data)``, ``MLP ← CNN``…), in the order they appear."""
        out: dict[str, list[TrialView]] = {}
        for t in self.trials:
            out.setdefault(t.group, []).append(t)
        return out


def most_common(found: Sequence[tuple[Any, Hashable]]) -> tuple[list[Any], list[tuple[Any, Hashable]], Hashable]:
    """``(item, key)`` pairs split by the key most of them share: the items with it, the pairs without, and that key."""
    keys = [k for _, k in found]
    common = max(set(keys), key=keys.count)
    return [x for x, k in found if k == common], [(x, k) for x, k in found if k != common], common


def same_init(a: TrialView, b: TrialView) -> bool:
    """Whether two trials started from the same initial weights (same architecture and initialisation seed)."""
    if a.arch != b.arch or dict(getattr(a.config, "params", ())) != dict(getattr(b.config, "params", ())):
        return False
    # a view without training settings: nothing to compare
    return all(hasattr(t.config, "loss") for t in (a, b)) and a.init_seed == b.init_seed


# ---- statistics over models: one interval helper for every analysis table (kdtune.results.stats, ddof 1)


def summary(values: Sequence[float] | np.ndarray, interval: str = "std") -> tuple[float, float, int]:
    """``(mean, ± half-width, n)`` of the finite values (units: trained models), the half-width from
    :func:`kdtune.results.stats.half_width` (``std`` by default, ddof 1); NaN mean for none, NaN half-width for fewer than 2."""
    from kdtune.results import stats

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return (float(v.mean()) if len(v) else float("nan")), stats.half_width(v, interval), len(v)


def cell(values: Sequence[float] | np.ndarray, digits: int = 3, interval: str = "std") -> str:
    """``mean ± std (n)`` as the report's tables write it (NaNs left out; the interval of :func:`summary`)."""
    from kdtune.results.tables import _cell

    mean, spread, n = summary(values, interval)
    return "– (0)" if n == 0 else _cell(mean, spread, n, digits, "±")


K = TypeVar("K", bound=Hashable)


def unit_means(pairs: Iterable[tuple[K, float]]) -> dict[K, tuple[float, int]]:
    """Each model's mean over the finite values of its pairs, and how many there were, in the order the models
    first appear (a model without a finite value is left out): a pair measure (similarity, a barrier, an error
    overlap) turned into one value per model, the unit its table's statistics are over. ``pairs`` holds
    ``(model, value)``, a pair listed once for each model that counts it as its own (both models within a group;
    the row's model between two groups)."""
    found: dict[K, list[float]] = {}
    for model, value in pairs:
        if value is not None and np.isfinite(value):
            found.setdefault(model, []).append(float(value))
    return {m: (float(np.mean(v)), len(v)) for m, v in found.items()}


def units_note(which: str, csv: str, pairs: str) -> str:
    """The note under a table of a pair measure naming its unit (models), which side's models, ddof and n, and the
    pair table a claim's test reads."""
    return (
        "Units: models, not pairs of models (pairs of 4 models are 6 or 16 values, not independent): each cell averages "
        f"each model's pairs first ({which}), then shows mean ± std over those per-model means with ddof 1, n = the "
        "number of models. Within a group a pair counts for both its models, so the models' means still share pairs "
        "(at n = 3 their std is half the pairs'): the table describes, it does not test. A claim about these cells is "
        f"tested on the pairs themselves ({pairs}), by permuting the models' labels (kdtune.results.stats.pair_test); the "
        f"per-model values are in {csv}."
    )


def _setting(key: str, value: Any, text: str | None = None) -> str:
    """``τ=4``, ``lr=0.003``; a teacher's own settings as ``teacher[lr=0.003]``, a model's other ones as ``[hidden=64]``
    (``text``: the value as written beside the others, :func:`kdtune.labels.number_labels`)."""
    if key == "teacher_config":
        return f"teacher[{value}]"
    if key == "config":
        return f"[{value}]"
    return f"{SHORT.get(key, key)}={value_text(value) if text is None else text}"


def same_setting(a: object, b: object) -> bool:
    """Two values of a setting column are one setting: both missing, or both there and written alike."""
    return (missing(a) and missing(b)) or (not missing(a) and not missing(b) and str(a) == str(b))


def cell_settings(rows: pd.DataFrame) -> list[str]:
    """The settings that vary between trials of one student and teacher (one row per trial): what
    tells an analysis's groups apart, as the report's tables add them to a table's rows,
    so a group never pools two configurations (a tuned and an untuned teacher's students, say)."""
    from kdtune.results.tables import cell_keys

    return cell_keys(rows.drop(columns=["eval_set"], errors="ignore"), ["student", "teacher"])


def config_labels(rows: pd.DataFrame, without: Sequence[str] = ()) -> pd.Series:
    """Per row (one or more per trial, with the results' setting columns): the settings that tell its
    configuration apart from the other trials of its student and teacher, as the view's groups write them
    (``w_hard=0.5 teacher[lr=0.01]``, :func:`cell_settings`), less the settings ``without`` (an axis such as
    ``temperature``, drawn as its own column); "" where there is one."""
    trials = rows.drop_duplicates("trial_id")
    labels: dict[str, str] = {}
    for _, group in trials.groupby([trials["student"].astype(str), trials["teacher"].astype(str)], sort=False):
        keys = [k for k in cell_settings(group) if k not in without]
        texts = {k: number_labels(group[k].astype(object)) for k in keys}
        for r in group.to_dict("records"):
            labels[r["trial_id"]] = " ".join(_setting(k, r[k], texts[k].get(r[k])) for k in keys if not missing(r[k]))
    return rows["trial_id"].map(labels).fillna("").astype(str)


def filter_rows(df: pd.DataFrame, where: Mapping[str, Sequence[str]] | None) -> pd.DataFrame:
    """Rows of a results table whose ``key`` reads as one of the given values (:func:`kdtune.labels.matches`:
    ``seed=0``, ``temperature=4``, ``lr=0.001183``, ``sweep=NAME``), every key at once."""
    for key, values in (where or {}).items():
        if key not in df.columns:
            raise KdtuneError(f"--where {key}: not a column of the results; e.g. student, teacher, seed, arch, temperature")
        keep = pd.Series(False, index=df.index)
        for v in values:
            keep |= matches(df[key], v)
        df = df[keep]
    return df


def load_all() -> None:
    """Import every analysis module of :data:`MODULES` that exists (each registers itself); a missing one is not registered."""
    for module in MODULES.values():
        if importlib.util.find_spec(f"kdtune.analysis.{module}") is not None:
            importlib.import_module(f"kdtune.analysis.{module}")


def run_analyses(
    view: RunView, out_dir: Path, only: Sequence[str] | None = None, log: Callable[[str], None] = print
) -> list[Output]:
    """Run the registered analyses (or ``only`` those) on ``view``; each writes under ``out_dir/<name>/``."""
    load_all()
    names = list(only) if only else [n for n in MODULES if n in ANALYSES]
    unknown = [n for n in names if n not in ANALYSES]
    if unknown:
        raise KdtuneError(f"--only {unknown[0]}: unknown analysis; known: {', '.join(ANALYSES.names())}")
    outputs = []
    for name in names:
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        result = ANALYSES.get(name)(view, folder)
        for line in outcome_lines(name, result):
            log(line)
        outputs.append(result)
    return outputs


def outcome_lines(name: str, result: Output) -> list[str]:
    """What ``analyze`` prints for one analysis: what it produced, then what it left out (one indented line each).

    ``calibration: 2 figure(s), 1 table(s)``; with parts left out ``symmetry: 1 figure(s), 1 table(s); left out:``
    and the reasons below; with nothing produced ``errors: nothing produced; skipped:`` and the reasons."""
    made = f"{len(result.figures)} figure(s), {len(result.tables)} table(s)"
    if not result.skipped:
        return [f"{name}: {made}"]
    head = f"{name}: {made}; left out:" if result.figures or result.tables else f"{name}: nothing produced; skipped:"
    return [head, *(f"  - {line}" for line in result.skipped)]


def save_figure(fig: Any, out: Path, stem: str) -> Path:
    """Save a matplotlib figure as ``<stem>.png`` (150 dpi) and ``<stem>.pdf`` in ``out``; close it; return the PNG."""
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    png = out / f"{stem}.png"
    fig.savefig(png, dpi=150, bbox_inches="tight")
    fig.savefig(out / f"{stem}.pdf", bbox_inches="tight")
    plt.close(fig)
    return png


def write_table(table: pd.DataFrame, out: Path, stem: str, title: str) -> None:
    """Write a table (named index) as ``<stem>.md``, ``<stem>.tex`` (booktabs) and ``<stem>.csv`` in ``out``."""
    from kdtune.results.tables import to_latex, to_markdown

    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text(to_markdown(table, title) + "\n")
    (out / f"{stem}.tex").write_text(to_latex(table, title) + "\n")
    table.to_csv(out / f"{stem}.csv")
