"""Results table → mean ± std (n) tables over seeds, in markdown, LaTeX (booktabs) or CSV.

Default layout (Abnar et al., Tables 5-6): rows are students; columns are eval set × teacher,
"data" meaning trained without distillation. Settings that vary inside a cell (e.g. two
temperatures) are added to the rows automatically, so no cell ever mixes configurations.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from kdtune.errors import KdtuneError
from kdtune.spec import NO_TEACHER, SETTING_COLUMNS

FORMATS = ("markdown", "latex", "csv")
SETTINGS = ["eval_set", "student", "teacher", *SETTING_COLUMNS]  # never averaged over inside one cell


def _varying(df: pd.DataFrame, keys: list[str]) -> list[str]:
    """Setting columns that take more than one value within some group of ``keys`` (plus seed)."""
    extra: list[str] = []
    while True:
        by = keys + extra
        grouped = df.groupby(by, observed=True, dropna=False)
        more = [c for c in SETTINGS if c in df and c not in by and (grouped[c].nunique(dropna=False) > 1).any()]
        if not more:
            return extra
        extra.append(more[0])


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


def aggregate(
    df: pd.DataFrame,
    metric: str,
    rows: Sequence[str] = ("student",),
    cols: Sequence[str] = ("eval_set", "teacher"),
    eval_sets: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Mean, std (ddof=1) and n of ``metric`` over seeds per (rows × cols) cell, tidy."""
    for c in [*rows, *cols, metric]:
        if c not in df.columns:
            raise KdtuneError(f"no column {c!r} in the results; available: {', '.join(map(str, df.columns))}")
    ok = df[(df["status"] == "ok") & df[metric].notna()]
    if eval_sets:
        unknown = sorted(set(eval_sets) - set(ok["eval_set"].astype(str)))
        if unknown:
            known = ", ".join(sorted(set(ok["eval_set"].astype(str))))
            raise KdtuneError(f"unknown eval set(s) {', '.join(unknown)}; in these results: {known}")
        ok = ok[ok["eval_set"].astype(str).isin(eval_sets)]
    elif "eval_set" in ok:
        ok = ok[ok["eval_set"].astype(str) != "val"]
    if ok.empty:
        raise KdtuneError(f"no finished trials with a value for {metric!r} in these results")
    ok = _ordered(ok, [*rows, *cols])
    keys = [*rows, *_varying(ok, [*rows, *cols]), *cols]
    g = ok.groupby(keys, observed=True, dropna=False)[metric]
    return g.agg(mean="mean", std="std", n="count").reset_index()


def _cell(mean: float, std: float, n: int, digits: int, pm: str) -> str:
    if n < 2 or pd.isna(std):
        return f"{mean:.{digits}f} ({n})"
    return f"{mean:.{digits}f} {pm} {std:.{digits}f} ({n})"


def pivot(agg: pd.DataFrame, cols: Sequence[str], digits: int = 3, pm: str = "±") -> pd.DataFrame:
    """Cells ``mean ± std (n)`` with rows × columns as in the paper's tables."""
    agg = agg.copy()
    agg["cell"] = [_cell(m, s, int(n), digits, pm) for m, s, n in zip(agg["mean"], agg["std"], agg["n"], strict=True)]
    index = [c for c in agg.columns if c not in (*cols, "mean", "std", "n", "cell")]
    table = agg.pivot_table(index=index, columns=list(cols), values="cell", aggfunc="first", observed=True)
    return table.fillna("–")


def _label(v: object) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return "–" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)


def to_markdown(table: pd.DataFrame, title: str) -> str:
    """A GitHub-flavoured markdown table; multi-level columns joined with ' / '."""
    names = [str(n) for n in table.index.names]
    heads = [" / ".join(_label(p) for p in (c if isinstance(c, tuple) else (c,))) for c in table.columns]
    lines = [f"**{title}**", "", "| " + " | ".join(names + heads) + " |", "|" + "---|" * len(names) + ":-:|" * len(heads)]
    for idx, row in table.iterrows():
        idx = idx if isinstance(idx, tuple) else (idx,)
        lines.append("| " + " | ".join([_label(i) for i in idx] + [str(v) for v in row]) + " |")
    return "\n".join(lines)


def _tex(s: object) -> str:
    text = _label(s)
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"), ("±", r"$\pm$")):
        text = text.replace(a, b)
    return text


def to_latex(table: pd.DataFrame, title: str) -> str:
    """A booktabs tabular: one header row per column level, spanning cells with \\cmidrule."""
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
    """The report: one table per metric in ``fmt``; CSV is tidy (mean, std, n per cell and metric)."""
    if fmt not in FORMATS:
        raise KdtuneError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    parts = []
    tidy = []
    for metric in metrics:
        agg = aggregate(df, metric, rows, cols, eval_sets)
        if fmt == "csv":
            tidy.append(agg.assign(metric=metric))
            continue
        title = f"{metric}: mean ± std (n) over seeds"
        table = pivot(agg, cols, digits)
        parts.append(to_markdown(table, title) if fmt == "markdown" else to_latex(table, title))
    if fmt == "csv":
        return pd.concat(tidy, ignore_index=True).to_csv(index=False)
    return "\n\n".join(parts) + "\n"
