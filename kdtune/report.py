"""Results table → mean ± std (n) tables over seeds (and k-fold folds), in markdown, LaTeX (booktabs) or CSV.

Default layout (Abnar et al., Tables 5-6): rows are students; columns are eval set × teacher,
"data" meaning trained without distillation. Settings that vary inside a cell (e.g. two
temperatures) are added to the rows automatically, so no cell ever mixes configurations.

Baselines ("data" rows) have no distillation settings: when one of :data:`KD_SETTINGS` is a row or
column key, a baseline's cell is shown under every value of it, with a note under the table.
Seeds and folds (``data.folds``) are what a cell averages over, unless named as rows or columns: a cell of
a 5-fold sweep with 3 seeds holds 15 trials.

Trials that did not finish count towards a cell's planned number: ``0.967 ± 0.004 (3/4)`` means 3 of
4 planned trials finished, ``failed (0/2)`` that none did; a note under the table lists them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from kdtune.errors import KdtuneError
from kdtune.spec import CONFIG_COLUMNS, NO_TEACHER, REPORT_KEYS, SETTING_COLUMNS

FORMATS = ("markdown", "latex", "csv")
KEYS: tuple[str, ...] = REPORT_KEYS  # what rows and cols may name (for the CLI's help and the README)
KD_SETTINGS = ("temperature", "w_hard", "w_soft", "kd_loss", "start", "stop")  # not applicable to baselines (teacher "data")
# never averaged over inside one cell (invariance: data.invariance, which defines im; select_from: kdtune derives it from
# the switch, and it splits a folder holding switched students selected among every epoch by an older kdtune from
# their re-runs; neither is a key one names)
SETTINGS = ["eval_set", "student", "teacher", *SETTING_COLUMNS, "invariance", "select_from", *CONFIG_COLUMNS]
MAX_LISTED = 20  # unfinished trials listed under a table; the rest are counted
_VALUES = ("mean", "std", "n", "n_expected", "missing", "metric", "cell")  # aggregate's non-key columns


def check_keys(rows: Sequence[str], cols: Sequence[str]) -> tuple[list[str], list[str]]:
    """Rows and cols as lists, checked before any work: each a known key of :data:`KEYS`, used once."""
    rows = [rows] if isinstance(rows, str) else list(rows)
    cols = [cols] if isinstance(cols, str) else list(cols)
    valid = f"valid keys: {', '.join(KEYS)}"
    if not rows or not cols:
        raise KdtuneError(f"the report needs at least one row key and one column key; {valid}")
    seen: set[str] = set()
    for key in [*rows, *cols]:
        if key not in KEYS:
            raise KdtuneError(f"unknown report key {key!r}; {valid}")
        if key in seen:
            where = "both rows and cols" if key in rows and key in cols else ("rows" if key in rows else "cols")
            raise KdtuneError(f"report key {key!r} is given more than once (in {where}); {valid}")
        seen.add(key)
    return rows, cols


def cell_keys(df: pd.DataFrame, keys: list[str]) -> list[str]:
    """Setting columns that take more than one value within some group of ``keys``: all of them, so a row
    whose lr, dropout and weight decay all differ says so (not only the first). ``config`` (the model's
    settings that are no column) is added only when the columns added before do not tell its values apart."""
    extra: list[str] = []
    while True:
        by = keys + extra
        grouped = df.groupby(by, observed=True, dropna=False)
        more = [c for c in SETTINGS if c in df and c not in by and (grouped[c].nunique(dropna=False) > 1).any()]
        if not more:
            return extra
        plain = [c for c in more if c not in CONFIG_COLUMNS]
        extra += plain or more[:1]


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


def _missing(statuses: pd.Series) -> str:
    """Why a cell lacks values: the status words of its rows without one, comma-joined ("" if none)."""
    return ",".join(sorted(set(statuses.dropna())))


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
        missing=("_why", _missing),
    )
    return out.reset_index()


def aggregate(
    df: pd.DataFrame,
    metric: str,
    rows: Sequence[str] = ("student",),
    cols: Sequence[str] = ("eval_set", "teacher"),
    eval_sets: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Mean, std (ddof=1), n and n_expected (planned trials, finished or not) of ``metric`` per cell, tidy.

    Each cell appears once, cells where nothing finished too (n = 0). Baselines (teacher "data") have
    their KD settings (:data:`KD_SETTINGS`) empty (NaN): one row per baseline cell, never repeated.
    The ``missing`` column gives the status words of the cell's trials without a value.
    """
    planned, keys = _scope(df, metric, rows, cols, eval_sets)
    return _aggregate(planned, keys, metric)


def _cell(mean: float, std: float, n: int, digits: int, pm: str, n_expected: int | None = None, missing: str = "") -> str:
    """``mean ± std (n)``; ``(n/N)`` when only n of N planned trials finished; ``failed (0/N)`` when none did."""
    count = str(n) if n_expected is None or n == n_expected else f"{n}/{n_expected}"
    if n == 0:
        word = missing if missing and "," not in missing else "–"
        return f"{word} ({count})"
    if n < 2 or pd.isna(std):
        return f"{mean:.{digits}f} ({count})"
    return f"{mean:.{digits}f} {pm} {std:.{digits}f} ({count})"


def shared_settings(agg: pd.DataFrame) -> list[str]:
    """KD settings among ``agg``'s keys under whose every value the baselines' cells are repeated."""
    kd = [k for k in KD_SETTINGS if k in agg.columns]
    base = _is_baseline(agg)
    return kd if kd and base.any() and agg.loc[~base, kd].notna().any(axis=None) else []


def _share_baselines(agg: pd.DataFrame) -> pd.DataFrame:
    """Baseline cells repeated under every combination of KD settings the distilled cells have."""
    kd = shared_settings(agg)
    if not kd:
        return agg
    base = _is_baseline(agg)
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


def format_value(v: float, digits: int = 4) -> str:
    """A float for a label: ``0.003``, ``0.001183``, ``5`` (``digits`` significant digits; a raw ``repr`` is noise here)."""
    if float(v).is_integer():
        return str(int(v))
    return f"{v:.{digits}g}"


NAMED = ("eval_set", "student", "teacher", "arch")  # keys whose values name themselves in a column header


def _level_labels(values: Sequence[object]) -> dict[object, str]:
    """Labels of one key's values: floats to the fewest significant digits (at least 4) that keep them apart."""
    floats = sorted({v for v in values if isinstance(v, float) and not pd.isna(v)})
    out: dict[object, str] = {v: _label(v) for v in values if not (isinstance(v, float) and not pd.isna(v))}
    for digits in range(4, 18):
        text = {v: format_value(v, digits) for v in floats}
        if len(set(text.values())) == len(floats):
            return out | text
    return out | {v: repr(v) for v in floats}


def _format_axis(values: list[tuple[object, ...]], names: list[str], name_values: bool) -> list[tuple[object, ...]]:
    """Each level's values as labels; with ``name_values``, a setting's values as ``key=value`` (``w_hard=0.5``)."""
    out = [list(t) for t in values]
    for lvl, name in enumerate(names):
        labels = _level_labels([t[lvl] for t in values])
        for t in out:
            text = labels.get(t[lvl], _label(t[lvl]))
            t[lvl] = f"{name}={text}" if name_values and name not in NAMED and t[lvl] is not None else text
    return [tuple(t) for t in out]


def pivot(agg: pd.DataFrame, cols: Sequence[str], digits: int = 3, pm: str = "±") -> pd.DataFrame:
    """Cells ``mean ± std (n)`` with rows × columns as in the paper's tables; baselines shared as above."""
    agg = _share_baselines(agg)
    cols = list(cols)
    index = [c for c in agg.columns if c not in (*cols, *_VALUES)]
    expected = agg["n_expected"] if "n_expected" in agg else pd.Series(None, index=agg.index, dtype=object)
    missing = agg["missing"] if "missing" in agg else pd.Series("", index=agg.index)
    cells = [
        _cell(m, s, int(n), digits, pm, None if pd.isna(e) else int(e), w)
        for m, s, n, e, w in zip(agg["mean"], agg["std"], agg["n"], expected, missing, strict=True)
    ]
    row_order = list(dict.fromkeys(_tuples(agg.sort_values(index, na_position="last", kind="stable"), index)))
    col_order = list(dict.fromkeys(_tuples(agg.sort_values(cols, na_position="last", kind="stable"), cols)))
    r_pos = {t: i for i, t in enumerate(row_order)}
    c_pos = {t: j for j, t in enumerate(col_order)}
    grid: list[list[str | None]] = [[None] * len(col_order) for _ in row_order]
    for r, c, cell in zip(_tuples(agg, index), _tuples(agg, cols), cells, strict=True):
        if grid[r_pos[r]][c_pos[c]] is None:
            grid[r_pos[r]][c_pos[c]] = cell
    filled = [[v if v is not None else "–" for v in line] for line in grid]
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
        seed = f", seed {_label(r['seed'])}" if "seed" in r and not pd.isna(r["seed"]) else ""
        seed += f", fold {_label(r['fold'])}" if "fold" in r and not pd.isna(r["fold"]) else ""
        tid = f" ({str(r['trial_id'])[:8]})" if "trial_id" in r and not pd.isna(r["trial_id"]) else ""
        reason = _reason(r["status"], r.get("error"))
        lines.append(f"- {r['status']}: {who}{seed}{tid}" + (f": {reason}" if reason else ""))
    return lines


def notes(planned: pd.DataFrame, agg: pd.DataFrame) -> list[str]:
    """The lines under a table: which baselines are shared, and which trials did not finish (20 at most)."""
    out = []
    shared = shared_settings(agg)
    if shared:
        out.append(f"{NO_TEACHER}: trained without distillation; the same models appear under every {' and '.join(shared)}")
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


def _label(v: object) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return "–" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)


def to_markdown(table: pd.DataFrame, title: str, notes: Sequence[str] = ()) -> str:
    """A GitHub-flavoured markdown table; multi-level columns joined with ' / '; notes as lines below it."""
    names = [str(n) for n in table.index.names]
    heads = [" / ".join(_label(p) for p in (c if isinstance(c, tuple) else (c,))) for c in table.columns]
    lines = [f"**{title}**", "", "| " + " | ".join(names + heads) + " |", "|" + "---|" * len(names) + ":-:|" * len(heads)]
    for idx, row in table.iterrows():
        idx = idx if isinstance(idx, tuple) else (idx,)
        lines.append("| " + " | ".join([_label(i) for i in idx] + [str(v) for v in row]) + " |")
    for note in notes:  # a blank line before each note that starts a paragraph (list items follow their header)
        lines += [note] if note.startswith("- ") else ["", note]
    return "\n".join(lines)


def _tex(s: object) -> str:
    text = _label(s)
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"), ("±", r"$\pm$")):
        text = text.replace(a, b)
    return text


def to_latex(table: pd.DataFrame, title: str, notes: Sequence[str] = ()) -> str:
    """A booktabs tabular: one header row per column level, spanning cells with \\cmidrule; notes as
    ``%`` comments after it, so the table pastes into a paper unchanged and the notes can go to its caption."""
    n_idx = len(table.index.names)
    cols = [c if isinstance(c, tuple) else (c,) for c in table.columns]
    levels = len(cols[0]) if cols else 1
    out = [f"% {title}", r"\begin{tabular}{" + "l" * n_idx + "c" * len(cols) + "}", r"\toprule"]
    for lvl in range(levels):
        cells, rules, j = [""] * n_idx if lvl < levels - 1 else [_tex(n) for n in table.index.names], [], 0
        while j < len(cols):
            k = j
            while lvl < levels - 1 and k + 1 < len(cols) and cols[k + 1][: lvl + 1] == cols[j][: lvl + 1]:
                k += 1
            span = k - j + 1
            cells.append(_tex(cols[j][lvl]) if span == 1 else rf"\multicolumn{{{span}}}{{c}}{{{_tex(cols[j][lvl])}}}")
            if lvl < levels - 1:
                rules.append(rf"\cmidrule(lr){{{n_idx + j + 1}-{n_idx + k + 1}}}")
            j = k + 1
        out.append(" & ".join(cells) + r" \\")
        if rules:
            out.append(" ".join(rules))
    out.append(r"\midrule")
    for idx, row in table.iterrows():
        idx = idx if isinstance(idx, tuple) else (idx,)
        out.append(" & ".join([_tex(i) for i in idx] + [_tex(v) for v in row]) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    out += [f"% {' '.join(note.split())}" for note in notes]
    return "\n".join(out)


def render(
    df: pd.DataFrame,
    metrics: Sequence[str] = ("accuracy", "ece"),
    fmt: str = "markdown",
    rows: Sequence[str] = ("student",),
    cols: Sequence[str] = ("eval_set", "teacher"),
    eval_sets: Sequence[str] | None = None,
    digits: int = 3,
) -> str:
    """The report: one table per metric in ``fmt``, with notes below it (markdown lines, LaTeX comments).

    CSV is tidy, as :func:`aggregate`: mean, std, n, n_expected per cell and metric; cells with n = 0 kept;
    baselines once per cell with their KD settings empty (not repeated under each temperature).
    """
    if fmt not in FORMATS:
        raise KdtuneError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    rows, cols = check_keys(rows, cols)
    parts = []
    tidy = []
    for metric in metrics:
        planned, keys = _scope(df, metric, rows, cols, eval_sets)
        agg = _aggregate(planned, keys, metric)
        if fmt == "csv":
            tidy.append(agg.drop(columns="missing").assign(metric=metric))
            continue
        title = f"{metric}: mean ± std (n) over {over(planned)}"
        table = pivot(agg, cols, digits)
        lines = notes(planned, agg)
        parts.append(to_markdown(table, title, lines) if fmt == "markdown" else to_latex(table, title, lines))
    if fmt == "csv":
        return pd.concat(tidy, ignore_index=True).to_csv(index=False)
    return "\n\n".join(parts) + "\n"
