"""Results table → mean ± std (n) tables over seeds (and k-fold folds), in markdown, LaTeX (booktabs) or CSV.

Default layout (Abnar et al., Tables 5-6): rows are students; columns are eval set × teacher, "data" meaning trained
without distillation. Settings that vary inside a cell (e.g. two temperatures) are added to the rows automatically, so
no cell ever mixes configurations.

Baselines ("data" rows) have no distillation settings: when one of :data:`KD_SETTINGS` is a row or column key, a
baseline's cell is shown under every value of it, with a note under the table. Seeds and folds (``data.folds``) are what
a cell averages over, unless named as rows or columns: a cell of a 5-fold sweep with 3 seeds holds 15 trials.

Trials that did not finish count towards a cell's planned number: ``0.967 ± 0.004 (3/4)`` means 3 of 4 planned trials
finished, ``failed (0/2)`` that none did; a note under the table lists them.

The statistics come from :mod:`kdtune.results.stats` (:class:`ReportSpec` says which): what ``±`` shows (std, s.e. or a
t-based 95 % interval, ddof 1), comparisons of every cell with a reference cell (``teacher=data``; ▲/▼ where the
difference is significant after correcting over the table's comparisons) and the best cells in bold.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import AfterValidator, ConfigDict, Field

from kdtune.errors import KdtuneError
from kdtune.labels import (
    BETTER,
    BOLD,
    CORRECTIONS,
    FORMATS,
    INTERVALS,
    KD_SETTINGS,
    METRICS,
    NO_TEACHER,
    REPORT_KEYS,
    SETTINGS,
    TESTS,
    Units,
    cell_units,
    matches,
    number_labels,
    show,
    varying,
)
from kdtune.results import stats
from kdtune.validation import CFG, Choice, Float, Int, Items, Str, validate

MAX_LISTED = 20  # unfinished trials listed under a table; the rest are counted
COMPARE_COLUMNS = ("diff", "diff_lo", "diff_hi", "p", "p_adjusted", "test", "n_pairs", "n_ref")  # a comparison's, in the CSV
# aggregate's and the statistics' non-key columns
_VALUES = ("mean", "std", "n", "n_expected", "missing", "metric", "cell")
_VALUES += ("spread", "marker", "bold", "underline", "_cell", "_ref", *COMPARE_COLUMNS)
DECIDES = 5.0  # --bold significant tests a column only where a difference of 5 std is found with 80 % power
UP, DOWN = "▲", "▼"


def _compare_key(v: str) -> str:
    """A sweep file's ``report.compare`` (a ``ValueError`` for pydantic, said as the file's one line)."""
    try:
        parse_compare(v)
    except KdtuneError as e:
        raise ValueError(str(e).replace("--compare takes", "must be")) from None
    return v


_Keys = Items(Choice(REPORT_KEYS))


@dataclass(frozen=True)
class ReportSpec:
    """The report's tables and their statistics: the defaults of ``kdtune report`` (and of the table ``kdtune run``
    prints) for this sweep."""

    # Also a study's ``report`` and ``kdtune report``'s flags over a sweep's. ``interval``: what ``±`` shows;
    # ``compare``: every cell tested against the cell of ``KEY=VALUE`` sharing its other keys; ``test`` (``auto``: the
    # paired t-test where two cells' units share their random streams, else Welch's) and ``correction`` over a table's
    # comparisons at level ``alpha``; ``bold``: ``best`` the best mean of each column (the second underlined),
    # ``significant`` the best cell and every cell not significantly worse (where the test can decide at the table's
    # n, :data:`DECIDES`); ``seed``: of the bootstrap and permutation tests.
    __pydantic_config__ = CFG | ConfigDict(frozen=True)

    metrics: Annotated[Items(Choice(METRICS)), Field(description="Metric columns of the tables.")] = ("accuracy", "ece")
    rows: Annotated[_Keys, Field(description="Keys the table's rows group by.")] = ("student",)
    cols: Annotated[_Keys, Field(description="Keys of the columns.")] = ("eval_set", "teacher")
    eval_sets: Annotated[Items(Str) | None, Field(description="Only these eval sets; null: all but val.")] = None
    digits: Annotated[Int, Field(ge=0, description="Decimals shown.")] = 3
    interval: Annotated[Choice(INTERVALS), Field(description="What ± shows: std, se or ci95.")] = "std"
    compare: Annotated[
        Annotated[Str, AfterValidator(_compare_key)] | None,
        Field(description="KEY=VALUE (e.g. teacher=data): every cell tested against that reference cell; null: none."),
    ] = None
    test: Annotated[Choice(TESTS), Field(description=f"The test of compare: {', '.join(TESTS)}.")] = "auto"
    correction: Annotated[Choice(CORRECTIONS), Field(description="Multiple-comparison correction.")] = "holm"
    alpha: Annotated[Float, Field(gt=0, lt=1, description="Significance level, in (0, 1).")] = stats.ALPHA
    bold: Annotated[
        Choice(BOLD) | None,
        Field(description="best: bold the best mean of every column, underline the second; significant: bold the best cell "
              "and every cell not significantly worse, where the test can decide at the table's n; null: none."),
    ] = None  # fmt: skip
    seed: Annotated[Int, Field(ge=0, description="Seed of the bootstrap and permutation tests.")] = stats.SEED

    def check(self) -> ReportSpec:
        """Itself, each statistics' choice checked (one line naming the allowed values otherwise): for flags and
        callers that build it directly, which no file's validation saw."""
        stats.check_choice("interval", self.interval, INTERVALS)
        if self.compare is not None:
            parse_compare(self.compare)
        stats.check_choice("test", self.test, TESTS)
        stats.check_choice("correction", self.correction, CORRECTIONS)
        stats.check_alpha(self.alpha)
        if self.bold is not None:
            stats.check_choice("--bold", self.bold, BOLD)
        return self

    @property
    def tests(self) -> bool:
        """Whether the tables test anything (a comparison, or the cells not significantly worse than the best)."""
        return self.compare is not None or self.bold == "significant"


def parse_report(raw: Any, source: str) -> ReportSpec:
    """The ``report`` section of a sweep file (also read back from a run folder's sweep.yaml)."""
    return validate(ReportSpec, {} if raw is None else raw, source, "report")


def parse_compare(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` (``teacher=data``) as ``(key, value)``; the key one of :data:`REPORT_KEYS`."""
    key, eq, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not eq or not key or not value:
        raise KdtuneError(f"--compare takes KEY=VALUE, e.g. teacher=data; got {text!r}")
    if key not in REPORT_KEYS:
        raise KdtuneError(f"unknown compare key {key!r}; valid keys: {', '.join(REPORT_KEYS)}")
    return key, value


def check_keys(rows: Sequence[str], cols: Sequence[str]) -> tuple[list[str], list[str]]:
    """Rows and cols as lists, checked before any work: each a known key of :data:`REPORT_KEYS`, used once."""
    rows = [rows] if isinstance(rows, str) else list(rows)
    cols = [cols] if isinstance(cols, str) else list(cols)
    valid = f"valid keys: {', '.join(REPORT_KEYS)}"
    if not rows or not cols:
        raise KdtuneError(f"the report needs at least one row key and one column key; {valid}")
    seen: set[str] = set()
    for key in [*rows, *cols]:
        if key not in REPORT_KEYS:
            raise KdtuneError(f"unknown report key {key!r}; {valid}")
        if key in seen:
            where = "both rows and cols" if key in rows and key in cols else ("rows" if key in rows else "cols")
            raise KdtuneError(f"report key {key!r} is given more than once (in {where}); {valid}")
        seen.add(key)
    return rows, cols


def cell_keys(df: pd.DataFrame, keys: list[str]) -> list[str]:
    """Setting columns that take more than one value within some group of ``keys`` (:func:`kdtune.labels.varying`):
    all of them, so a row whose lr, dropout and weight decay all differ says so (not only the first). ``config`` and
    ``teacher_config`` (the settings that are no column, e.g. a tuned ``schedule.decay_rate``) whenever they vary
    there, even where the columns added before tell their values apart: what they hold is in no other column.
    ``select_from`` (derived from the switch) only where the rest leave it varying. In the order of :data:`SETTINGS`."""
    found = varying(df, keys, [([c for c in SETTINGS if c != "select_from"], True), (["select_from"], True)])
    return [c for c in SETTINGS if c in found]


def _ordered(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Key columns as ordered categoricals: their own order if categorical, else order of appearance
    ("data", i.e. no teacher, first), so tables follow the sweep rather than the alphabet."""
    df = df.copy()
    for k in keys:
        if isinstance(df[k].dtype, pd.CategoricalDtype) or df[k].dtype.kind in "biuf":
            continue
        cats = list(dict.fromkeys(df[k].dropna()))
        if k == "teacher" and NO_TEACHER in cats:
            cats.remove(NO_TEACHER)
            cats.insert(0, NO_TEACHER)
        df[k] = pd.Categorical(df[k], categories=cats, ordered=True)
    return df


def _is_baseline(df: pd.DataFrame) -> pd.Series:
    """Rows trained without distillation (teacher "data")."""
    if "teacher" not in df:
        return pd.Series(False, index=df.index)
    return (df["teacher"].astype(object) == NO_TEACHER).fillna(False).astype(bool)


def _planned(df: pd.DataFrame, metric: str, eval_sets: Sequence[str] | None) -> pd.DataFrame:
    """One row per planned trial × shown eval set: finished rows of those eval sets, and each unfinished
    trial (which has no eval set) repeated under every shown eval set; KD settings of baselines blanked."""
    df = df.reset_index(drop=True)
    status = df["status"].astype(object).fillna("pending") if "status" in df else pd.Series("ok", index=df.index)
    df = df.assign(status=status, _row=np.arange(len(df)))
    ok = (status == "ok").to_numpy()
    if "eval_set" in df:
        ev = df["eval_set"]
        known = list(dict.fromkeys(ev[ok].dropna().astype(str)))
        if isinstance(ev.dtype, pd.CategoricalDtype):
            known += [str(c) for c in ev.cat.categories if str(c) not in known]
        if eval_sets:
            unknown = [e for e in eval_sets if e not in known]
            if unknown and known:
                raise KdtuneError(f"unknown eval set(s) {', '.join(unknown)}; in these results: {', '.join(known)}")
            shown = list(dict.fromkeys(eval_sets))
        else:
            shown = [e for e in known if e != "val"]
        reps = np.where(ok, 1, max(len(shown), 1))
        df = df.iloc[np.repeat(np.arange(len(df)), reps)].reset_index(drop=True)
        values = df["eval_set"].astype(object).to_numpy(copy=True)
        again = (df["status"] != "ok").to_numpy()
        if shown:
            values[again] = np.tile(np.array(shown, dtype=object), int(again.sum()) // len(shown))
        if isinstance(ev.dtype, pd.CategoricalDtype) and set(shown) <= set(map(str, ev.cat.categories)):
            df["eval_set"] = pd.Categorical(values, categories=ev.cat.categories, ordered=ev.cat.ordered)
        else:
            df["eval_set"] = values
        df = df[df["eval_set"].astype(object).isin(shown)] if shown else df
    base = _is_baseline(df)
    for k in KD_SETTINGS:
        if k in df:
            df[k] = df[k].where(~base)  # not applicable, whatever collect filled in
    # a metric no finished trial of an eval set × (baseline or distilled) reports does not apply there (e.g. agreement
    # without a teacher): those rows are left out rather than shown as missing
    finished = df["status"] == "ok"
    group = [df["eval_set"].astype(object).fillna("") if "eval_set" in df else pd.Series("", index=df.index), base]
    has_value = (finished & df[metric].notna()).groupby(group).transform("any")
    has_finished = finished.groupby(group).transform("any")
    return df[has_value | ~has_finished]


def _keys(planned: pd.DataFrame, rows: list[str], cols: list[str]) -> list[str]:
    """Rows, then settings that vary inside a cell, then cols; "teacher" too when baselines are shared."""
    extra = cell_keys(planned, [*rows, *cols])
    keys = [*rows, *extra, *cols]
    base = _is_baseline(planned)
    if any(k in KD_SETTINGS for k in keys) and "teacher" not in keys and base.any() and (~base).any():
        extra.append("teacher")  # a shared baseline must not land in a distilled model's cell
    return [*rows, *extra, *cols]


def _scope(
    df: pd.DataFrame, metric: str, rows: Sequence[str], cols: Sequence[str], eval_sets: Sequence[str] | None
) -> tuple[pd.DataFrame, list[str]]:
    """The planned rows of one table and its key columns (rows, added settings, cols)."""
    rows, cols = check_keys(rows, cols)
    if df.empty:
        raise KdtuneError("no trials in these results")
    for c in [*rows, *cols, metric]:
        if c not in df.columns:
            raise KdtuneError(f"no column {c!r} in the results; available: {', '.join(map(str, df.columns))}")
    planned = _planned(df, metric, eval_sets)
    if planned.empty:
        raise KdtuneError(f"no trials with a value for {metric!r} in the eval sets shown")
    keys = _keys(planned, rows, cols)
    return _ordered(planned, keys), keys


def _aggregate(planned: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    value = planned[metric].where(planned["status"] == "ok")
    why = planned["status"].where(value.isna()).replace("ok", "no value")
    frame = planned[keys].assign(_value=value, _why=why)
    g = frame.groupby(keys, observed=True, dropna=False)
    out = g.agg(
        mean=("_value", "mean"),
        std=("_value", "std"),
        n=("_value", "count"),
        n_expected=("_value", "size"),
        missing=("_why", lambda why: ",".join(sorted(set(why.dropna())))),  # the status words of rows without a value
    )
    return out.reset_index()


def _cell(
    mean: float, std: float, n: int, digits: int, pm: str, n_expected: int | None = None, missing: str = "",
    once: int | None = None,
) -> str:  # fmt: skip
    """``mean ± std (n)``; ``(n/N)`` when only n of N planned trials finished; ``failed (0/N)`` when none did; no
    ``(n)`` where n (all that was planned) is ``once``, the n the table's title names."""
    count = str(n) if n_expected is None or n == n_expected else f"{n}/{n_expected}"
    shown = "" if count == str(once) else f" ({count})"
    if n == 0:
        word = missing if missing and "," not in missing else "–"
        return f"{word} ({count})"
    if n < 2 or pd.isna(std):
        return f"{mean:.{digits}f}{shown}"
    return f"{mean:.{digits}f} {pm} {std:.{digits}f}{shown}"


def shared_settings(agg: pd.DataFrame, cols: Sequence[str]) -> list[str]:
    """KD settings among ``agg``'s keys under whose every value the baselines' cells are repeated: the column keys,
    and the row keys too where the baselines are a column (``teacher`` among ``cols``), so each row meets its
    baseline; where the baselines are rows of their own, a row once, its KD settings empty."""
    kd = [k for k in KD_SETTINGS if k in agg.columns and (k in cols or "teacher" in cols)]
    base = _is_baseline(agg)
    return kd if kd and base.any() and agg.loc[~base, kd].notna().any(axis=None) else []


def _share_baselines(agg: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
    """Baseline cells repeated under every combination of the :func:`shared_settings` the distilled cells have."""
    kd = shared_settings(agg, cols)
    if not kd:
        return agg
    base = _is_baseline(agg) & agg[kd].isna().all(axis=1)  # not yet shared (a table already shared stays as it is)
    if not base.any():
        return agg
    combos = agg.loc[~base, kd].dropna(how="all").drop_duplicates()
    shared = agg[base].drop(columns=kd).merge(combos, how="cross")
    return pd.concat([agg[~base], shared[agg.columns]], ignore_index=True)


def _tuples(agg: pd.DataFrame, keys: list[str]) -> list[tuple[object, ...]]:
    """Each row's values of ``keys`` (NaN as None, so equal tuples compare equal)."""
    return [tuple(None if pd.isna(v) else v for v in t) for t in agg[keys].itertuples(index=False, name=None)]


def _axis(values: list[tuple[object, ...]], names: list[str]) -> pd.Index:
    if len(names) == 1:
        return pd.Index([v[0] for v in values], name=names[0], dtype=object)
    return pd.MultiIndex.from_tuples(values, names=names)


NAMED = ("eval_set", "student", "teacher", "arch")  # keys whose values name themselves in a column header


def _format_axis(values: list[tuple[object, ...]], names: list[str], name_values: bool) -> list[tuple[object, ...]]:
    """Each level's values as labels; with ``name_values``, a setting's values as ``key=value`` (``w_hard=0.5``)."""
    out = [list(t) for t in values]
    for lvl, name in enumerate(names):
        labels = number_labels([t[lvl] for t in values])
        for t in out:
            text = labels.get(t[lvl], show(t[lvl]))
            t[lvl] = f"{name}={text}" if name_values and name not in NAMED and t[lvl] is not None else text
    return [tuple(t) for t in out]


def pivot(
    agg: pd.DataFrame, cols: Sequence[str], digits: int = 3, pm: str = "±", scale: float = 1.0, once: int | None = None
) -> pd.DataFrame:
    """Cells ``mean ± std (n)`` with rows × columns as in the paper's tables; baselines shared as above. Values times
    ``scale`` (100: percentages); ``once``: the n the title names, left out of the cells that have it."""
    cols = list(cols)
    agg = _share_baselines(agg, cols)
    index = [c for c in agg.columns if c not in (*cols, *_VALUES)]
    expected = agg["n_expected"] if "n_expected" in agg else pd.Series(None, index=agg.index, dtype=object)
    missing = agg["missing"] if "missing" in agg else pd.Series("", index=agg.index)
    spread = agg["spread"] if "spread" in agg else agg["std"]  # ± what the table's title says (std by default)
    cells = [
        _cell(m * scale, s * scale, int(n), digits, pm, None if pd.isna(e) else int(e), w, once)
        for m, s, n, e, w in zip(agg["mean"], spread, agg["n"], expected, missing, strict=True)
    ]
    if "bold" in agg:
        cells = [f"**{c}**" if b is True else c for c, b in zip(cells, agg["bold"], strict=True)]
        cells = [f"<u>{c}</u>" if u is True else c for c, u in zip(cells, agg["underline"], strict=True)]
    if "marker" in agg:
        cells = [f"{c} {m}" if isinstance(m, str) and m else c for c, m in zip(cells, agg["marker"], strict=True)]
    row_order = list(dict.fromkeys(_tuples(agg.sort_values(index, na_position="last", kind="stable"), index)))
    col_order = list(dict.fromkeys(_tuples(agg.sort_values(cols, na_position="last", kind="stable"), cols)))
    first: dict[tuple[tuple[object, ...], tuple[object, ...]], str] = {}
    for r, c, cell in zip(_tuples(agg, index), _tuples(agg, cols), cells, strict=True):
        first.setdefault((r, c), cell)
    filled = [[first.get((r, c), "–") for c in col_order] for r in row_order]
    rows_shown = _format_axis(row_order, index, name_values=False)
    cols_shown = _format_axis(col_order, cols, name_values=True)
    return pd.DataFrame(filled, index=_axis(rows_shown, index), columns=_axis(cols_shown, cols))


def _reason(status: str, error: object) -> str:
    """An error text on one line, without a repeated status word ("skipped: ..."), at most 200 characters."""
    text = " ".join(str(error).split()) if isinstance(error, str) else ""
    text = re.sub(rf"^{re.escape(status)}:\s*", "", text)
    return text if len(text) <= 200 else text[:199] + "…"


def over(planned: pd.DataFrame) -> str:
    """What a table's cells average over: ``seeds``, or ``seeds × folds`` for trials of a k-fold sweep."""
    folds = "fold" in planned and planned["fold"].notna().any()
    return "seeds × folds" if folds else "seeds"


def unfinished(planned: pd.DataFrame) -> list[str]:
    """One line per trial of the table that did not finish: status, student ← teacher, seed (and fold), id, reason."""
    rows = planned[planned["status"] != "ok"].drop_duplicates("_row")
    lines = []
    for _, r in rows.iterrows():
        who = f"{r['student']} ← {r['teacher']}" if "student" in r and "teacher" in r else "trial"
        seed = f", seed {show(r['seed'])}" if "seed" in r and not pd.isna(r["seed"]) else ""
        seed += f", fold {show(r['fold'])}" if "fold" in r and not pd.isna(r["fold"]) else ""
        tid = f" ({str(r['trial_id'])[:8]})" if "trial_id" in r and not pd.isna(r["trial_id"]) else ""
        reason = _reason(r["status"], r.get("error"))
        lines.append(f"- {r['status']}: {who}{seed}{tid}" + (f": {reason}" if reason else ""))
    return lines


UNITS = {  # what one value of a metric is (docs/analyses.md#metrics)
    "accuracy": "fraction of examples classified correctly",
    "ece": "expected calibration error of the top-1 confidence (15 equal-width bins), a fraction",
    "agreement": "fraction of examples on which student and teacher predict the same class",
    "d_accuracy": "accuracy macro-averaged over subject-verb distances, a fraction",
    "a_accuracy": "accuracy macro-averaged over attractor counts, a fraction",
    "nll": "mean negative log-likelihood of the labels, in nats",
    "kl": "mean KL(teacher ‖ student) at temperature 1, in nats",
    "im": "mean L1 distance between the probabilities on an example and on its transformed copy (0 to 2)",
    "perplexity": "perplexity of the next token",
    "token_nll": "mean next-token negative log-likelihood, in nats",
}
FRACTIONS = ("accuracy", "ece", "agreement", "d_accuracy", "a_accuracy")  # what --percent multiplies by 100


def what(metric: str, percent: bool = False) -> str:
    """The note naming what one value of ``metric`` is: a fraction (or, with ``percent``, a percentage) and its unit."""
    text = UNITS[metric]
    if metric in FRACTIONS and percent:
        return f"{metric}: {text.replace(', a fraction', '').replace('fraction', 'percentage')}, in % (0 to 100)"
    return f"{metric}: {text}" + (" (0 to 1)" if metric in FRACTIONS else "")


def eval_sets_note(planned: pd.DataFrame) -> str:
    """The eval sets of a table, each with its definition (split, corruption) and size, as the trials recorded them."""
    if "eval_set" not in planned or "eval_def" not in planned:
        return ""
    parts = []
    done = planned[planned["status"] == "ok"]
    for name in dict.fromkeys(done["eval_set"].sort_values().dropna().astype(str)):
        rows = done[done["eval_set"].astype(str) == name]
        defs = ", ".join(dict.fromkeys(rows["eval_def"].dropna().astype(str))) or "?"
        sizes = sorted({int(v) for v in rows["n"].dropna()}) if "n" in rows else []
        size = "" if not sizes else f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}–{sizes[-1]}"
        parts.append(f"{name} = {defs}" + (f", {size} examples" if size else ""))
    return "eval sets: " + "; ".join(parts) if parts else ""


def notes(
    planned: pd.DataFrame, agg: pd.DataFrame, cols: Sequence[str] = (), metric: str | None = None, percent: bool = False
) -> list[str]:
    """The lines under a table: what a value of ``metric`` is, the eval sets' definitions and sizes, which baselines
    are shared, which settings a row or column holds, and which trials did not finish (20 at most)."""
    out = [what(metric, percent)] if metric in UNITS else []
    sets = eval_sets_note(planned)
    out += [sets] if sets else []
    shared = shared_settings(agg, cols)
    if shared:
        out.append(f"{NO_TEACHER}: trained without distillation; the same models appear under every {' and '.join(shared)}")
    alone = [k for k in KD_SETTINGS if k in agg.columns and k not in shared and _is_baseline(agg).any()]
    if alone and (~_is_baseline(agg)).any():
        out.append(f"{NO_TEACHER}: trained without distillation, so {' and '.join(alone)} do not apply (–); one row each")
    if "teacher_config" in agg.columns:
        out.append(
            "teacher_config: the settings in which the teacher differs from other teachers of the same name "
            "(e.g. a tuned and an untuned MLP); – for models trained from data"
        )
    if "config" in agg.columns:
        out.append("config: the model's own settings (beyond the columns shown) in which it differs from others of its name")
    lines = unfinished(planned)
    if lines:
        s = "" if len(lines) == 1 else "s"
        out.append(f"{len(lines)} trial{s} did not finish; cells show (finished/planned):")
        out += lines[:MAX_LISTED]
        if len(lines) > MAX_LISTED:
            out.append(f"- … and {len(lines) - MAX_LISTED} more")
    return out


def to_markdown(table: pd.DataFrame, title: str, notes: Sequence[str] = ()) -> str:
    """A GitHub-flavoured markdown table; multi-level columns joined with ' / '; notes as lines below it."""
    names = [str(n) for n in table.index.names]
    heads = [" / ".join(show(p) for p in (c if isinstance(c, tuple) else (c,))) for c in table.columns]
    lines = [f"**{title}**", "", "| " + " | ".join(names + heads) + " |", "|" + "---|" * len(names) + ":-:|" * len(heads)]
    for idx, row in table.iterrows():
        idx = idx if isinstance(idx, tuple) else (idx,)
        lines.append("| " + " | ".join([show(i) for i in idx] + [str(v) for v in row]) + " |")
    for note in notes:  # a blank line before each note that starts a paragraph (list items follow their header)
        lines += [note] if note.startswith("- ") else ["", note]
    return "\n".join(lines)


_TEX = {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": "$<$", ">": "$>$", "--": "-{}-"}
_TEX |= {c: rf"\{c}" for c in "_%&#{}$"} | {UP: r"$^{\blacktriangle}$", DOWN: r"$^{\blacktriangledown}$"}  # amssymb
_MATH = ["pm", "times", "approx", "leq", "geq", "leftarrow", "rightarrow", "", "|", "alpha", "sigma", "tau", "mu"]
_TEX |= {c: f"$\\{m}$" if m else "$-$" for c, m in zip("±×≈≤≥←→−‖αστµ", _MATH, strict=True)}
_TEX_RE = re.compile("|".join(map(re.escape, sorted(_TEX, key=len, reverse=True))))
_CELL = re.compile(r"^(\*\*|<u>)?([+-]?\d+)(\.\d+)?(e[+-]?\d+)?(?=[\s*<]|$)(?: ± ([^\s*<]+))?(.*?)(?:\*\*|</u>)?( [▲▼])?$")
# (a cell as pivot writes it: bold or underlined, a number, ± its spread, the rest, a marker)
TEXTWIDTH = 345.0  # pt: \textwidth of the standard article class at 10 pt, what a table must fit by default
SIZES = ((r"\normalsize", 1.0), (r"\small", 0.9), (r"\footnotesize", 0.8))


def _tex(s: object) -> str:
    """A cell or header in LaTeX: special characters escaped, symbols in math mode, ``**x**`` bold, ``<u>x</u>`` underlined."""
    text = _TEX_RE.sub(lambda m: _TEX[m.group(0)], show(s))  # one pass: a replacement is never re-escaped
    return re.sub(r"<u>(.+?)</u>", r"\\underline{\1}", re.sub(r"\*\*(.+?)\*\*", r"\\textbf{\1}", text))


def _pt(text: object) -> float:
    """About the width of ``text`` (a cell as markdown writes it) in 10 pt Computer Modern: digits 5 pt."""
    plain = re.sub(r"\*\*|</?u>", "", show(text))
    narrow = {c: 2.8 for c in ".,:;|'ij"} | {c: 3.7 for c in "()[]ftrI -s"} | {c: 8.5 for c in "mwMW±=%"}
    return sum(narrow.get(c, 7.3 if c.isupper() else 5.0) for c in plain) * (1.15 if "**" in show(text) else 1)


def _number(text: str, small_pm: bool) -> tuple[str, str, list[int]] | None:
    """A cell starting with a number as a siunitx ``S`` cell: ``(cell, the text after the number, its digits: whole,
    decimals, exponent, sign)``; the ± part in ``\\scriptsize`` with ``small_pm``; None for a cell of text."""
    m = _CELL.match(text)
    if m is None:
        return None
    wrap, whole, frac, exp, pm, rest, marker = m.groups()
    number = whole + (frac or "") + (exp or "")
    after = (rf"{{\scriptsize${{}}\pm{{}}${pm}}}" if small_pm else f"${{}}\\pm{{}}${pm}") if pm else ""
    after += _tex(rest) + _tex((marker or "").strip())
    under = rf"\llap{{\underline{{\phantom{{${number}$}}}}}}" if wrap == "<u>" else ""  # no width: under the number
    digits = [len(whole.lstrip("+-")), len(frac or ".") - 1, len((exp or "e").lstrip("e+-")), int(whole[0] in "+-")]
    return (r"\bfseries " if wrap == "**" else "") + number + (f"{{{under}{after}}}" if under + after else ""), after, digits


def _latex_columns(table: pd.DataFrame, small_pm: bool) -> tuple[pd.DataFrame, list[str], list[float], list[float]]:
    """Each cell in LaTeX, each column's format (a siunitx ``S`` column with room for its widest number and its
    longest text after one, where most of its cells are numbers, else ``l``), width and longest word's width, the
    index's columns first."""
    plain = table.astype(object).map(show)
    cells, formats = plain.copy(), ["l"] * table.index.nlevels
    columns = [[show(table.index.names[i]), *map(show, table.index.get_level_values(i))] for i in range(table.index.nlevels)]
    widths = [max(map(_pt, c)) for c in columns]
    for j, (head, column) in enumerate(plain.items()):
        parsed = [_number(t, small_pm) for t in column]
        found = [p for p in parsed if p]
        numeric = len(found) >= max(1, sum(t not in ("", "–") for t in column) / 2)
        cells.iloc[:, j] = [p[0] if numeric and p else rf"\multicolumn{{1}}{{c}}{{{_tex(t)}}}" if numeric else _tex(t)
                            for t, p in zip(column, parsed, strict=True)]  # fmt: skip
        d = [max(p[2][i] for p in found) for i in range(4)] if numeric else []
        post = max((p[1] for p in found), key=lambda t: _pt(re.sub(r"\\[a-z]+|[{}$]", "", t)), default="")
        bold = r"\bfseries " * any(p[0].startswith(r"\bfseries") for p in found)
        form = "-" * d[3] + f"{d[0]}.{d[1]}" + f"e-{d[2]}" * bool(d[2]) if numeric else ""
        room = f", table-space-text-post={{{bold}{post}}}" * bool(post)
        formats.append(f"S[table-format={form}{room}]" if numeric else "l")
        columns.append([*column, show(head[-1] if isinstance(head, tuple) else head)])
        widths.append(max(map(_pt, columns[-1])) * (1.1 if bold else 1))  # bold digits are wider
    least = [max(_pt(w) * 1.15 for t in c for w in re.split(r"(?<=-)|\s", t)) for c in columns]  # where a p column breaks
    return cells, formats, widths, least


def to_latex(
    table: pd.DataFrame, title: str, notes: Sequence[str] = (), caption: Sequence[str] = (), label: str | None = None,
    small_pm: bool = False, width: float = TEXTWIDTH,
) -> str:  # fmt: skip
    """A ``table`` environment by pandas' :meth:`Styler.to_latex`: ``title`` and ``caption`` as its ``\\caption``, a
    ``\\label``, booktabs rules (a ``\\cmidrule`` under each spanning header), numbers in siunitx ``S`` columns
    aligned on the decimal point, at the first font size that fits ``width`` pt (see :func:`_fit`); ``notes`` as
    ``%`` comments after it, the packages it needs in a comment before it."""
    cells, formats, widths, least = _latex_columns(table, small_pm)
    size, resize = _fit(widths, least, formats, width)
    cells.columns.names = [None] * cells.columns.nlevels  # the keys' values name the columns; the rows' names the index
    text = cells.style.format_index(_tex, axis=0).format_index(_tex, axis=1).format_index_names(_tex, axis=0).to_latex(
        column_format=_styler_safe("".join(formats)), hrules=True, siunitx=True, environment="table",
        position_float="centering", caption=" ".join(_tex(c.rstrip(".") + ".") for c in [title, *caption]),
        label=label or _label_of(title), multicol_align="c",
        multirow_align="naive", clines="skip-last;data" if table.index.nlevels > 1 else None,
    )  # fmt: skip
    setup = [size] * (size != r"\normalsize") + [r"\sisetup{detect-weight, mode=match, retain-explicit-plus}"] * ("S[" in text)
    text = text.replace("\\centering\n", "\\centering\n" + "".join(x + "\n" for x in setup), 1)
    if resize:
        text = re.sub(r"(\\begin\{tabular\}.*?\\end\{tabular\})", r"\\resizebox{\\textwidth}{!}{\1}", text, flags=re.S)
    needs = ["booktabs", "siunitx", "array"] + ["amssymb"] * ("blacktriangle" in text) + ["graphicx"] * resize
    lines = _rules(text.splitlines(), table.index.nlevels)
    return "\n".join([f"% needs \\usepackage{{{', '.join(needs)}}}", *lines, *(f"% {' '.join(n.split())}" for n in notes)])


def _styler_safe(column_format: str) -> str:
    """A column format that pandas' Styler passes through whole: it stores it as a CSS-like property string, cut at
    ``;`` and read up to ``:`` (its ``§`` stands for a colon). A ``;`` in a column's room for the text after its
    numbers (``1 (TOST; beyond 1)``) becomes a ``,`` of the same width."""
    return column_format.replace(";", ",").replace(":", "§")


def _label_of(title: str) -> str:
    """``tab:`` and the title's words: of a reference check's title (``FILE:TABLE — …: claims``), its table and part."""
    parts = [title.split(" — ")[0], title.rsplit(": ", 1)[-1]] if " — " in title else [title]
    return "tab:" + "-".join(re.sub(r"[^a-z0-9]+", "-", p.lower()).strip("-")[:40] for p in parts)


def _fit(widths: list[float], least: list[float], formats: list[str], width: float) -> tuple[str, bool]:
    """The first of :data:`SIZES` at which columns this wide (pt at 10 pt, plus 12 pt of ``\\tabcolsep`` each) fit
    ``width``; else ``\\footnotesize`` with the widest text columns wrapped into ``p`` columns as far as needed, none
    narrower than its longest word (``least``; ``formats`` changed in place); and whether ``\\resizebox`` must
    shrink what is left (the last resort)."""
    for size, scale in SIZES:
        if sum(w * scale + 12 for w in widths) <= 0.98 * width:
            return size, False
    size, scale = SIZES[-1]
    text = [j for j, f in enumerate(formats) if f == "l" and least[j] < widths[j]]
    room = 0.98 * width - sum(w * scale + 12 for j, w in enumerate(widths) if j not in text) - 12 * len(text)
    shown = lambda cap: {j: min(widths[j], max(cap, least[j])) * scale for j in text}
    cap = max(widths, default=0.0)
    while cap > 0 and sum(shown(cap).values()) > room:
        cap -= 2
    for j, w in shown(cap).items():
        formats[j] = rf">{{\raggedright\arraybackslash}}p{{{w:.0f}pt}}" if w < widths[j] * scale else "l"
    return size, sum(shown(cap).values()) > room


def _rules(lines: list[str], n_index: int) -> list[str]:
    """Styler's table made booktabs: the index names on the last header row, a ``\\cmidrule`` under each header of
    the upper header rows, groups of the outermost row key apart by ``\\addlinespace`` instead of ``\\cline``."""
    top, mid = lines.index(r"\toprule"), lines.index(r"\midrule")
    head = [x.removesuffix(r" \\").split(" & ") for x in lines[top + 1 : mid]]
    if len(head) > 1 and set(head[-1][n_index:]) == {"{}"}:  # the index names' own row
        names = head.pop()
        head[-1][:n_index] = names[:n_index]
    out = []
    for k, row in enumerate(head):
        out.append(" & ".join(row) + r" \\")
        spans = [int(m[1]) if (m := re.match(r"\\multicolumn\{(\d+)\}", c)) else 1 for c in row[n_index:]]
        ends = list(itertools.accumulate(spans, initial=n_index))
        out += [" ".join(rf"\cmidrule(lr){{{a + 1}-{b}}}" for a, b in itertools.pairwise(ends))] * (k < len(head) - 1)
    groups = sum(x.startswith(r"\cline{1-") for x in lines)  # none where every group is one row: no space at all
    spaced = groups * 2 <= sum(x.endswith(r" \\") for x in lines[mid:])
    body = [r"\addlinespace" if x.startswith(r"\cline") else x for x in lines[mid:] if not x.startswith(r"\cline") or
            (spaced and x.startswith(r"\cline{1-"))]  # fmt: skip
    body = [x for x, y in itertools.pairwise([*body, ""]) if (x, y) != (r"\addlinespace", r"\bottomrule")]
    return lines[: top + 1] + out + body


# ---------------------------------------------------------------- statistics of one table (kdtune.results.stats)


def _units(planned: pd.DataFrame, keys: list[str], metric: str, agg: pd.DataFrame) -> dict[int, Units]:
    """Each cell's units (by ``agg``'s ``_cell``), read from its planned rows (:func:`kdtune.labels.cell_units`): the
    pairing is what the results say (fold, stream seeds, initialisation), never assumed; unfinished units NaN."""
    rows: dict[tuple[object, ...], list[int]] = {}
    for i, cell in enumerate(_tuples(planned, keys)):
        rows.setdefault(cell, []).append(i)
    return {
        int(i): cell_units(planned.iloc[rows.get(cell, [])], metric)
        for i, cell in zip(agg["_cell"], _tuples(agg, keys), strict=True)
    }


def _test_pair(a: Units, b: Units, opts: ReportSpec, where: str) -> stats.Comparison:
    """Cell ``a`` against cell ``b`` with the test ``opts`` asks for, paired where their units are (the same
    initialisation or the same folds: :func:`kdtune.results.stats.pairing`); fold units with the Nadeau–Bengio correction."""
    matched, why = stats.pair_up(a.keys, b.keys)
    paired = matched is not None
    if opts.test == "paired" and not paired:
        raise KdtuneError(
            f"--test paired: {where} are not paired ({why}): pairing needs the same initialisation (architecture and "
            "seed) or the same folds; use --test auto (Welch's t-test there), welch, bootstrap or permutation"
        )
    if matched is not None:  # partners side by side (a fold pairs units whose seeds or initialisations differ)
        xa, ya = a.values[[i for i, _ in matched]], b.values[[j for _, j in matched]]
    else:
        xa, ya = a.values, b.values
    test = "t" if opts.test in ("auto", "paired", "welch") else opts.test
    folds = a.folds if a.folds is not None and a.folds == b.folds else None
    return stats.compare(
        xa, ya, paired=paired and opts.test != "welch", test=test, level=1 - opts.alpha, seed=opts.seed, folds=folds
    )


def _value_of(frame: pd.DataFrame, key: str, wanted: str) -> object:
    """The value of ``key`` in the table that ``wanted`` names (``data``, ``4`` for 4.0: :func:`kdtune.labels.matches`);
    one line listing them if none."""
    values = pd.Series(list(dict.fromkeys(v for v in frame[key].astype(object) if not pd.isna(v))), name=key, dtype=object)
    found = values[matches(values, wanted)]
    if found.empty:
        shown = ", ".join(number_labels(values).values())
        raise KdtuneError(f"no cell with {key} = {wanted!r} in this table; its values of {key}: {shown}")
    return found.iloc[0]


def _reference(mine: tuple[object, ...], refs: list[tuple[int, tuple[object, ...]]]) -> int | None:
    """The reference row of a cell whose other keys are ``mine``: among ``refs`` (row, other keys), the one equal
    on every other key, a key that one side lacks (None: e.g. a baseline's temperature or teacher_config)
    matching anything; of several, the one equal on most keys; None if none, or if still more than one."""
    best: list[int] = []
    most = -1
    for r, theirs in refs:
        if not all(a is None or b is None or a == b for a, b in zip(mine, theirs, strict=True)):
            continue
        equal = sum(a == b for a, b in zip(mine, theirs, strict=True))
        if equal > most:
            best, most = [r], equal
        elif equal == most:
            best.append(r)
    return best[0] if len(best) == 1 else None


def _where(frame: pd.DataFrame, row: int, keys: list[str]) -> str:
    return ", ".join(f"{k}={show(frame.loc[row, k])}" for k in keys if not pd.isna(frame.loc[row, k]))


def _compare(
    frame: pd.DataFrame, units: dict[int, Units], keys: list[str], opts: ReportSpec
) -> tuple[pd.DataFrame, dict[str, object]]:
    """Every cell of ``frame`` against its reference cell (``opts.compare``): :data:`COMPARE_COLUMNS` and a
    ``marker`` (▲/▼ where significant after the correction over the table's comparisons); and facts for the note."""
    assert opts.compare is not None
    key, text = parse_compare(opts.compare)
    value = _value_of(frame, key, text)
    others = [k for k in keys if k != key]
    is_ref = [not pd.isna(v) and v == value for v in frame[key].astype(object)]  # (value is never missing)
    other_values = dict(zip(frame.index, _tuples(frame, others), strict=True))
    refs = [(i, other_values[i]) for i, r in zip(frame.index, is_ref, strict=True) if r]
    frame = frame.assign(**{c: "" if c == "test" else np.nan for c in COMPARE_COLUMNS}, marker="", _ref=-1)
    done: dict[tuple[int, int], stats.Comparison] = {}
    no_ref = few = 0
    for row, ref_flag in zip(frame.index, is_ref, strict=True):
        if ref_flag or pd.isna(frame.loc[row, key]):
            continue
        ref = _reference(other_values[row], refs)
        if ref is None:
            no_ref += 1
            continue
        pair = (int(frame.loc[row, "_cell"]), int(frame.loc[ref, "_cell"]))
        if pair[0] == pair[1]:
            continue  # a shared baseline under another KD setting: the same models
        if pair not in done:
            where = f"the cells {_where(frame, row, keys)} and {_where(frame, ref, keys)}"
            done[pair] = _test_pair(units[pair[0]], units[pair[1]], opts, where)
        c = done[pair]
        frame.loc[row, ["n_ref", "_ref"]] = [c.n_b, pair[1]]
        if c.n_a < 2 or c.n_b < 2:
            few += 1  # never tested, never marked
            continue
        frame.loc[row, ["diff", "diff_lo", "diff_hi", "p", "n_pairs"]] = [c.diff, c.lo, c.hi, c.p, c.n_pairs]
        frame.loc[row, "test"] = c.test
    tested = {pair: c for pair, c in done.items() if c.n_a >= 2 and c.n_b >= 2}
    adjusted = dict(zip(tested, stats.adjust([c.p for c in tested.values()], opts.correction), strict=True))
    for row in frame.index[frame["test"] != ""]:
        p_adj = adjusted[(int(frame.loc[row, "_cell"]), int(frame.loc[row, "_ref"]))]
        frame.loc[row, "p_adjusted"] = p_adj
        diff = float(frame.loc[row, "diff"])
        if np.isfinite(p_adj) and p_adj < opts.alpha and diff != 0:
            frame.loc[row, "marker"] = UP if diff > 0 else DOWN
    facts = {"key": key, "value": show(value), "no_ref": no_ref, "few": few, "tested": list(tested.values())}
    return frame, facts | {"significant": int((frame["marker"] != "").sum())}


def _columns(frame: pd.DataFrame, cols: list[str]) -> list[dict[int, list[int]]]:
    """Per column of the table (equal values of ``cols``): its cells with a value, each ``_cell`` with its rows (a
    baseline shared under several settings of the rows is one cell in several rows)."""
    columns: dict[tuple[object, ...], dict[int, list[int]]] = {}
    for row, col in zip(frame.index, _tuples(frame, cols), strict=True):
        if frame.loc[row, "n"] >= 1 and np.isfinite(frame.loc[row, "mean"]):
            columns.setdefault(col, {}).setdefault(int(frame.loc[row, "_cell"]), []).append(row)
    return list(columns.values())


def _best(
    frame: pd.DataFrame, units: dict[int, Units], cols: list[str], keys: list[str], metric: str, opts: ReportSpec
) -> tuple[pd.DataFrame, dict[str, object]]:
    """``bold`` per column of the table (:data:`BETTER` says which way is better). ``best``: the best mean in bold,
    the second best ``underline``. ``significant``: the best cell and every cell not significantly different from it
    (two-sided, corrected over all these comparisons of the table; never a cell with n < 2), in the columns where
    the test can decide at their n (it finds :data:`DECIDES` std with 80 % power at α over the comparisons);
    elsewhere the best mean alone."""
    higher = BETTER[metric] == "maximize"
    frame = frame.assign(bold=False, underline=False)
    facts: dict[str, object] = {"higher": higher, "tested": [], "few_best": 0, "few": 0, "undecided": []}
    pairs: list[list[tuple[list[int], int, Units, Units]]] = []  # per column: (rows of a cell, row of the best, units)
    for cells in _columns(frame, cols):
        if len(cells) < 2:
            continue  # one cell (or none) in the column: best of nothing, not bold
        mean = {c: float(frame.loc[rows[0], "mean"]) for c, rows in cells.items()}
        ranked = sorted(set(mean.values()), reverse=higher)
        for c, rows in cells.items():
            frame.loc[rows, "bold"] = mean[c] == ranked[0]
            frame.loc[rows, "underline"] = opts.bold == "best" and len(ranked) > 1 and mean[c] == ranked[1]
        best = next(c for c in cells if mean[c] == ranked[0])
        if opts.bold == "best":
            continue
        if frame.loc[cells[best][0], "n"] < 2:
            facts["few_best"] += 1  # type: ignore[operator]
            frame.loc[cells[best], "bold"] = False
            continue
        facts["few"] += sum(frame.loc[rows[0], "n"] < 2 for rows in cells.values())  # type: ignore[operator]
        others = [(rows, cells[best][0], units[c], units[best]) for c, rows in cells.items() if c != best]
        pairs.append([o for o in others if frame.loc[o[0][0], "n"] >= 2])
    level = opts.alpha / max(sum(map(len, pairs)), 1)  # the first step of Holm (and Bonferroni's every step)
    tested: list[tuple[list[int], stats.Comparison]] = []
    for column in pairs:
        sizes = [(len(a.values), len(b.values), stats.is_paired(a.keys, b.keys) and opts.test != "welch") for *_, a, b in column]
        test = "permutation" if opts.test == "permutation" else "t"
        floors = [stats.detectable(na, nb, paired=p, alpha=level, test=test) for na, nb, p in sizes]
        if floors and max(floors) > DECIDES:
            facts["undecided"].append((min(sizes)[:2], max(floors)))  # type: ignore[attr-defined]
            continue
        for rows, best, a, b in column:
            where = f"the cells {_where(frame, rows[0], keys)} and {_where(frame, best, keys)}"
            tested.append((rows, _test_pair(a, b, opts, where)))
    adjusted = stats.adjust([c.p for _, c in tested], opts.correction)
    for (rows, _), p in zip(tested, adjusted, strict=True):
        frame.loc[rows, "bold"] = not (np.isfinite(p) and p < opts.alpha)  # NaN: no difference at all (a tie)
    facts |= {"tested": [c for _, c in tested], "level": level}
    return frame, facts


def _tests_used(tested: Sequence[stats.Comparison], opts: ReportSpec) -> str:
    """Which tests a family used, with the number of comparisons of each: the line a table's note names."""
    if not tested:
        return "no test (nothing to compare)"
    paired = sum(c.paired for c in tested)
    rule = "paired where the two cells' units share their initialisation (architecture and seed) or their folds"
    if opts.test in ("bootstrap", "permutation"):
        how = f"{stats.TEST_NAMES[opts.test]}, {stats.RESAMPLES} resamples, seed {opts.seed}"
        return f"{how}; {rule}: {paired} of {len(tested)} comparisons"
    forced = " (forced by --test welch)" if opts.test == "welch" else ""
    counts = Counter(c.test for c in tested)
    parts = [f"{stats.TEST_NAMES[name]}{forced if name.startswith('welch') else ''}: {k}" for name, k in counts.items()]
    return "; ".join(parts + [rule] * bool(paired))


def _sides(tested: Sequence[stats.Comparison]) -> str:
    """``n = 2 vs 2`` (cell vs reference), or each distinct pair of sizes with its number of comparisons."""
    counts = Counter((c.n_a, c.n_b) for c in tested)
    if len(counts) == 1:
        return "n = {} vs {}".format(*next(iter(counts)))
    return "n = " + ", ".join(f"{a} vs {b} ({k})" for (a, b), k in sorted(counts.items()))


def _family(tested: Sequence[stats.Comparison], opts: ReportSpec, what: str) -> str:
    if opts.correction == "none":
        return f"α = {opts.alpha:g}, uncorrected over the table's {len(tested)} {what}"
    return f"α = {opts.alpha:g}, {stats.CORRECTION_NAMES[opts.correction]}-corrected over the table's {len(tested)} {what}"


def _stat_notes(
    opts: ReportSpec, metric: str, cols: list[str], compared: dict[str, object] | None, best: dict[str, object] | None
) -> list[str]:
    """The notes that name what a table's statistics are: interval, test, α, correction, n of each side."""
    out = []
    if opts.interval != "std" or opts.tests:
        out.append(f"±: {stats.INTERVAL_NAMES[opts.interval]} of the cell's units (seeds × folds, each a trained model)")
    if compared is not None:
        tested: list[stats.Comparison] = compared["tested"]  # type: ignore[assignment]
        ref = f"{compared['key']} = {compared['value']}"
        out.append(
            f"{UP}/{DOWN}: significantly higher/lower than the cell of {ref} with the same other keys (a setting one side "
            f"lacks, e.g. a baseline's teacher_config, matches any); {_tests_used(tested, opts)}; two-sided, "
            f"{_family(tested, opts, 'comparisons')}; "
            + (f"{_sides(tested)} (cell vs reference); " if tested else "")
            + f"the CSV (--format csv) has each difference, its {100 * (1 - opts.alpha):g} % interval and p"
        )
        if compared["few"]:
            out.append(f"{compared['few']} cell(s) not tested, never marked: n < 2 on one side (a test needs 2 units a side)")
        if compared["no_ref"]:
            out.append(f"{compared['no_ref']} cell(s) not compared: no single cell of {ref} with the same other keys")
    if best is not None:
        way = f"{'higher' if best['higher'] else 'lower'} is better for {metric}"
        column = f"each column ({' × '.join(cols)})"
        if opts.bold == "best":
            out.append(f"bold: the best mean of {column}, {way}; underlined: the second best; by the means alone, no "
                       "test (--bold significant also bolds the cells not significantly worse)")  # fmt: skip
        else:
            out += _significant_notes(best, opts, column, way)
    return out


def _significant_notes(best: dict[str, object], opts: ReportSpec, column: str, way: str) -> list[str]:
    """What ``--bold significant`` marked: the test and its family, and the columns where it could not decide."""
    tested: list[stats.Comparison] = best["tested"]  # type: ignore[assignment]
    undecided: list[tuple[tuple[int, int], float]] = best["undecided"]  # type: ignore[assignment]
    out = []
    if tested:
        out.append(
            f"bold: the best cell of {column} ({way}) and every cell not significantly different from it; "
            f"{_tests_used(tested, opts)}; two-sided, {_family(tested, opts, 'comparisons with a best cell')}; "
            f"{_sides(tested)} (cell vs best)"
        )
    if undecided:
        (na, nb), floor = min(undecided, key=lambda u: u[0])
        level = float(best["level"])  # type: ignore[arg-type]
        finds = "finds nothing there" if np.isinf(floor) else f"finds only differences above {floor:.3g} std of the units"
        out.append(
            f"bold: the best mean alone in {len(undecided)} column(s): at n = {na} vs {nb} the test cannot decide ("
            f"at α = {level:.2g}, the first step of the correction over the table, it {finds} with "
            f"{100 * stats.POWER:g} % power; kdtune asks for {DECIDES:g} std), so 'not significantly worse' would hold "
            "for nearly every cell"
        )
    if not tested and not undecided and not best["few_best"] and not best["few"]:
        out.append("bold: nothing, no column has two cells with values to compare")
    if best["few_best"]:
        out.append(f"{best['few_best']} column(s) without bold: their best cell has n < 2 (nothing to test with)")
    if best["few"]:
        out.append(f"{best['few']} cell(s) never bold: n < 2 (a test needs 2 units a side)")
    return out


def _statistics(
    planned: pd.DataFrame, keys: list[str], cols: list[str], agg: pd.DataFrame, metric: str, opts: ReportSpec
) -> tuple[pd.DataFrame, list[str]]:
    """The table's cells with what ``opts`` asks for (``spread``, comparisons, ``bold``), baselines shared under
    every KD setting (so a baseline meets the cells of each column), and the notes naming the statistics."""
    if opts.interval == "std" and not opts.tests and opts.bold is None:
        return agg, []
    agg = agg.assign(_cell=np.arange(len(agg)))
    units = _units(planned, keys, metric, agg)
    agg["spread"] = [stats.half_width(units[i].values, opts.interval) for i in agg["_cell"]]
    frame = _share_baselines(agg, cols).reset_index(drop=True)
    compared = best = None
    if opts.compare is not None:
        frame, compared = _compare(frame, units, keys, opts)
    if opts.bold is not None:
        frame, best = _best(frame, units, cols, keys, metric, opts)
    return frame, _stat_notes(opts, metric, cols, compared, best)


def _tidy(frame: pd.DataFrame, agg: pd.DataFrame, keys: list[str], opts: ReportSpec) -> pd.DataFrame:
    """The CSV rows of one table: a cell once, with a baseline's KD settings empty, unless a shared baseline
    was compared differently under different KD settings (then once per setting); the statistics' columns."""
    if "_cell" not in frame:
        return agg.drop(columns="missing")
    extra = [c for c in ("marker", "bold", "underline", *COMPARE_COLUMNS) if c in frame]
    keep = []
    for _, group in frame.groupby("_cell", sort=True):
        if len(group) > 1 and len(group[extra].astype(str).drop_duplicates()) == 1:
            original = agg.iloc[[int(group["_cell"].iloc[0])]]  # (``_cell`` numbers agg's rows)
            keep.append(original[keys].reset_index(drop=True).join(group.drop(columns=keys).iloc[[0]].reset_index(drop=True)))
        else:
            keep.append(group)
    out = pd.concat(keep, ignore_index=True)
    if opts.interval == "se":
        out["se"] = out["spread"]
    elif opts.interval == "ci95":
        out["ci95_lo"], out["ci95_hi"] = out["mean"] - out["spread"], out["mean"] + out["spread"]
    values = ["mean", "std", "n", "n_expected", *(c for c in ("se", "ci95_lo", "ci95_hi") if c in out)]
    stat_cols = [c for c in COMPARE_COLUMNS if c in out] + [c for c in ("bold", "underline") if c in out]
    for c in ("n_pairs", "n_ref"):
        if c in out:
            out[c] = out[c].astype("Int64")
    return out[[*keys, *values, *stat_cols]]


def _check_compare(opts: ReportSpec, rows: list[str], cols: list[str], metrics: Sequence[str]) -> None:
    """Before any work: the compare key is a column key, and the metrics of --bold best have a direction."""
    if opts.compare is not None:
        key, _ = parse_compare(opts.compare)
        if key in rows:
            raise KdtuneError(
                f"compare key {key!r} is a row key; it must be one of the column keys ({', '.join(cols)}), so that every "
                "cell sits in the row of its reference: move it to --cols"
            )
        if key not in cols:
            raise KdtuneError(f"compare key {key!r} is not a column key; it must be one of the column keys ({', '.join(cols)})")
    if opts.bold is not None:
        unknown = [m for m in metrics if m not in BETTER]
        if unknown:
            raise KdtuneError(f"--bold best: no direction (higher or lower is better) known for {', '.join(unknown)}; known: "
                              f"{', '.join(BETTER)}")  # fmt: skip


def _metric_tables(
    df: pd.DataFrame,
    metrics: Sequence[str],
    rows: Sequence[str],
    cols: Sequence[str],
    eval_sets: Sequence[str] | None,
    stat: ReportSpec | None,
) -> Iterator[tuple[str, pd.DataFrame, list[str], pd.DataFrame, pd.DataFrame, list[str], ReportSpec]]:
    """Per metric, after the checks: ``(metric, planned, keys, agg, frame, stat_lines, opts)`` of one table."""
    opts = (stat or ReportSpec()).check()
    rows, cols = check_keys(rows, cols)
    _check_compare(opts, rows, cols, metrics)
    for metric in metrics:
        planned, keys = _scope(df, metric, rows, cols, eval_sets)
        agg = _aggregate(planned, keys, metric)
        frame, stat_lines = _statistics(planned, keys, cols, agg, metric, opts)
        yield metric, planned, keys, agg, frame, stat_lines, opts


@dataclass(frozen=True)
class Look:
    """How a report's cells are written (flags of ``kdtune report``). ``percent``: fractions (:data:`FRACTIONS`)
    × 100 with two fewer decimals (0.974 → 97.4); ``n_once``: the n of the cells once in the title (LaTeX: the
    caption), in a cell only where it differs; ``small_pm`` (LaTeX): the ± part in ``\\scriptsize``; ``textwidth``
    (LaTeX): the width in pt a table must fit, column keys moved to the rows until it does (345: the standard
    article class at 10 pt)."""

    percent: bool = False
    n_once: bool = False
    small_pm: bool = False
    textwidth: float = TEXTWIDTH

    def check(self, fmt: str) -> Look:
        """Itself, or one line naming the flag that does not apply to ``fmt`` or the width that is not one."""
        if fmt != "latex" and self.small_pm:
            raise KdtuneError("--small-pm sets the ± part in \\scriptsize: it needs --format latex")
        if not 50 <= self.textwidth <= 2000:
            raise KdtuneError(f"--textwidth is a width in pt between 50 and 2000 (345: article at 10 pt), got {self.textwidth:g}")
        return self


def _table(
    metric: str, planned: pd.DataFrame, agg: pd.DataFrame, frame: pd.DataFrame, cols: list[str], digits: int,
    opts: ReportSpec, look: Look, rows_first: Sequence[str] = (),
) -> tuple[str, pd.DataFrame, list[str]]:  # fmt: skip
    """One table as ``(title, table, notes)``; ``rows_first``: column keys shown as the outermost rows instead."""
    scaled = look.percent and metric in FRACTIONS
    shown = "std" if opts.interval == "std" else stats.INTERVAL_NAMES[opts.interval]
    full = frame[frame["n"] == frame["n_expected"]]["n"] if "n_expected" in frame else frame["n"]
    once = int(full.mode().iloc[0]) if look.n_once and not full.empty else None
    count = " (n)" if once is None else ""
    other = (frame["n"] != once).any() or len(full) < len(frame)
    where = "" if once is None else f", n = {once} a cell" + (" unless it says (n)" if other else "")
    title = f"{metric}{' (%)' if scaled else ''}: mean ± {shown}{count} over {over(planned)}{where}"
    shown_cols = [c for c in cols if c not in rows_first]
    frame = frame[[*rows_first, *(c for c in frame.columns if c not in rows_first)]]
    table = pivot(frame, shown_cols, max(digits - 2, 0) if scaled else digits, scale=100 if scaled else 1, once=once)
    return title, table, notes(planned, agg, cols, metric, scaled)


def tables(
    df: pd.DataFrame,
    metrics: Sequence[str] = ("accuracy", "ece"),
    rows: Sequence[str] = ("student",),
    cols: Sequence[str] = ("eval_set", "teacher"),
    eval_sets: Sequence[str] | None = None,
    digits: int = 3,
    stat: ReportSpec | None = None,
    look: Look | None = None,
) -> list[tuple[str, pd.DataFrame, list[str]]]:
    """The report's tables, one per metric, as ``(title, table, notes)``: what :func:`render` writes as markdown or
    LaTeX and the analysis page draws as HTML, so both show the same cells."""
    cols = [cols] if isinstance(cols, str) else list(cols)
    out = []
    for metric, planned, _keys, agg, frame, stat_lines, opts in _metric_tables(df, metrics, rows, cols, eval_sets, stat):
        title, table, lines = _table(metric, planned, agg, frame, cols, digits, opts, look or Look())
        out.append((title, table, stat_lines + lines))
    return out


def _latex(
    df: pd.DataFrame, metrics: Sequence[str], rows: Sequence[str], cols: Sequence[str], eval_sets: Sequence[str] | None,
    digits: int, stat: ReportSpec | None, look: Look, label: str,
) -> Iterator[str]:  # fmt: skip
    """Each metric's table in LaTeX, its statistics and notes in the caption (the unfinished trials in comments
    after it), in the first layout that fits ``look.textwidth``: the one asked for, else the outermost column keys
    moved to the rows one by one."""
    cols = [cols] if isinstance(cols, str) else list(cols)
    for metric, planned, _keys, agg, frame, stat_lines, opts in _metric_tables(df, metrics, rows, cols, eval_sets, stat):
        for k in range(len(cols)):
            title, table, lines = _table(metric, planned, agg, frame, cols, digits, opts, look, cols[:k])
            widths = _latex_columns(table, look.small_pm)[2]
            if any(sum(w * scale + 12 for w in widths) <= 0.98 * look.textwidth for _, scale in SIZES[:2]):
                break
        moved = [f"{' and '.join(cols[:k])} moved from the columns to the rows to fit {look.textwidth:g} pt"] if k else []
        caption = [x.rstrip(":") + " (listed in comments after the table)" if x.endswith(":") else x for x in stat_lines + lines]
        listed = [x[2:] for x in caption if x.startswith("- ")]
        rest = [x for x in caption if not x.startswith("- ")]
        yield to_latex(table, title, moved + listed, rest, f"tab:{label}-{metric}", look.small_pm, look.textwidth)


def render(
    df: pd.DataFrame,
    metrics: Sequence[str] = ("accuracy", "ece"),
    fmt: str = "markdown",
    rows: Sequence[str] = ("student",),
    cols: Sequence[str] = ("eval_set", "teacher"),
    eval_sets: Sequence[str] | None = None,
    digits: int = 3,
    stat: ReportSpec | None = None,
    look: Look | None = None,
    label: str = "kdtune",
) -> str:
    """The report: one table per metric in ``fmt``, with notes below it (markdown lines; in LaTeX the caption of a
    ``table`` labelled ``tab:LABEL-METRIC``, see :func:`to_latex`); ``look`` (:class:`Look`) says how cells read.

    CSV is tidy: mean, std, n, n_expected per cell and metric (fractions, whatever ``look``
    says); cells with n = 0 kept; baselines once per cell with their KD settings empty (not repeated under each
    temperature). ``stat`` (:class:`ReportSpec`) adds the interval shown (``se``; ``ci95_lo``, ``ci95_hi``), the
    comparisons (:data:`COMPARE_COLUMNS`) and ``bold``; without it the tables are mean ± std (ddof 1).
    """
    if fmt not in FORMATS:
        raise KdtuneError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    look = (look or Look()).check(fmt)
    if fmt == "csv":
        tidy = [
            _tidy(frame, agg, keys, opts).assign(metric=metric)
            for metric, _planned, keys, agg, frame, _lines, opts in _metric_tables(df, metrics, rows, cols, eval_sets, stat)
        ]
        return pd.concat(tidy, ignore_index=True).to_csv(index=False)
    if fmt == "latex":
        return "\n\n".join(_latex(df, metrics, rows, cols, eval_sets, digits, stat, look, label)) + "\n"
    parts = tables(df, metrics, rows, cols, eval_sets, digits, stat, look)
    return "\n\n".join(to_markdown(table, title, lines) for title, table, lines in parts) + "\n"
