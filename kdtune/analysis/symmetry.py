"""Symmetry invariances (symmetry-invariance paper, figure 1): one panel per metric against the temperature
τ, a solid line per distilled group (teacher → student, self-distillation, augmented self-distillation,
teacher′ → student) and a dashed line with a band per model trained from data (the student, the student
on augmented data, the teacher), from the results table, on one eval set; mean ± std over seeds × folds.

Also the helpers the switch analysis shares: the view's finished rows on an eval set and per-group
summaries of a metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from kdtune.analysis import ANALYSES, Output, RunView, config_labels, group_name, save_figure, summary, write_table
from kdtune.analysis.overlap import _detail_key, _order, cell, ordered_eval_sets, safe_stem
from kdtune.labels import NO_TEACHER

METRICS = ("accuracy", "nll", "ece", "agreement", "kl", "im")
TITLES = {
    "accuracy": "top-1 accuracy",
    "nll": "NLL",
    "ece": "ECE",
    "agreement": "student–teacher agreement",
    "kl": "KL(teacher ‖ student)",
    "im": "IM (invariance metric)",
}


def spread(rows: pd.DataFrame) -> str:
    """What one cell's std is over: every finished trial once, i.e. ``seeds × folds`` (``seeds`` without folds)."""
    return "seeds × folds" if "fold" in rows.columns and rows["fold"].notna().any() else "seeds"


def finished_rows(view: RunView, eval_set: str | None = None) -> pd.DataFrame:
    """The results rows of the view's trials (after ``--where``), one per trial and eval set (or on ``eval_set``)."""
    ids = {t.id for t in view.trials}
    df = view.results
    df = df[(df["status"].astype(str) == "ok") & df["trial_id"].isin(ids)].copy()
    df["eval_set"] = df["eval_set"].astype(str)
    df["student"], df["teacher"] = df["student"].astype(str), df["teacher"].astype(str)
    if eval_set is not None:
        df = df[df["eval_set"] == eval_set]
    return df.drop_duplicates(["trial_id", "eval_set"])


def metric_eval_set(df: pd.DataFrame, metric: str, chosen: str, eval_sets: Sequence[str]) -> str | None:
    """The eval set a metric is read on: ``chosen`` if any row has it there, else (for IM, which a run
    may compute on its transformed sets only) the first eval set that has it; None if none has it."""
    if metric not in df.columns:
        return None
    have = set(df.loc[pd.to_numeric(df[metric], errors="coerce").notna(), "eval_set"])
    if chosen in have:
        return chosen
    if metric == "im":
        return next((e for e in eval_sets if e in have), None)
    return None


def _kind(student: str, teacher: str, augment: str) -> str:
    aug = f", augmented: {augment}" if augment else ""
    if teacher == NO_TEACHER:
        return f"from data{aug}"
    return f"self-distillation{aug}" if teacher == student else f"distillation{aug}"


def _augment(rows: pd.DataFrame) -> str:
    if "augment" not in rows.columns:
        return ""
    names = sorted({str(a) for a in rows["augment"] if not pd.isna(a) and a is not None and str(a) != "None"})
    return ",".join(names)


def symmetry_table(view: RunView, eval_set: str) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Per group (``student ← teacher`` and the settings that tell its configuration apart, as the view's groups; τ
    its own column, ``–`` for models from data) and metric: the display table
    (``mean ± std (n)`` cells), the numeric long table (mean, std, n) and each metric's eval set."""
    rows = finished_rows(view)
    eval_sets = ordered_eval_sets(view)
    sources = {m: e for m in METRICS if (e := metric_eval_set(rows, m, eval_set, eval_sets)) is not None}
    rows = rows.assign(_setting=config_labels(rows, without=["temperature"]))  # one configuration per group, τ aside
    keys = list(dict.fromkeys(rows[["student", "teacher", "_setting"]].itertuples(index=False, name=None)))
    students = {s for s, k, _ in keys if k != NO_TEACHER}
    models = _order(view, "student")

    def rank(key: tuple[str, str, str]) -> tuple[int, int, int, tuple[tuple[str, float, str], ...]]:
        """Students from data, other models from data (teachers), self-distillation, the rest; then the sweep's
        order; then the settings (``w_hard=0`` before ``w_hard=0.5``)."""
        s, k, setting = key
        kind = (0 if s in students else 1) if k == NO_TEACHER else (2 if s == k else 3)
        return kind, models.index(s) if s in models else len(models), models.index(k) if k in models else -1, _detail_key(setting)

    keys.sort(key=rank)
    long, display = [], []
    for s, k, setting in keys:
        mine = rows[(rows["student"] == s) & (rows["teacher"] == k) & (rows["_setting"] == setting)]
        taus = [float("nan")] if k == NO_TEACHER else sorted(pd.to_numeric(mine["temperature"]).dropna().unique())
        name = group_name(s, k, setting)
        for tau in taus:
            sel = mine if k == NO_TEACHER else mine[pd.to_numeric(mine["temperature"]) == tau]
            base = {"group": name, "student": s, "teacher": k, "kind": _kind(s, k, _augment(sel))}
            shown = {"group": name, "τ": "–" if k == NO_TEACHER else f"{tau:g}"}
            for m, e in sources.items():
                vals = pd.to_numeric(sel.loc[sel["eval_set"] == e, m], errors="coerce").tolist()
                mean, std, n = summary(vals)
                long.append(base | {"temperature": tau, "metric": m, "eval_set": e, "mean": mean, "std": std, "n": n})
                shown[m] = cell(vals) if n else "–"
            display.append(shown)
    table = pd.DataFrame(display).set_index(["group", "τ"]) if display else pd.DataFrame()
    return table, pd.DataFrame(long), sources


def _legend_label(rows: pd.DataFrame) -> str:
    group, kind = str(rows["group"].iloc[0]), str(rows["kind"].iloc[0])
    if rows["teacher"].iloc[0] == NO_TEACHER:
        return group if kind == "from data" else f"{group[: -len(' (data)')]} ({kind})"
    return f"{group} ({kind})"


def _figure(long: pd.DataFrame, sources: dict[str, str], title: str):
    import matplotlib.pyplot as plt

    metrics = [m for m in METRICS if m in sources and long.loc[long["metric"] == m, "n"].sum() > 0]
    ncols = min(3, len(metrics))
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.9 * nrows + 1.4), squeeze=False, layout="constrained")
    groups = list(dict.fromkeys(long["group"]))
    colors = {g: plt.get_cmap("tab10")(i % 10) for i, g in enumerate(groups)}
    distilled = long[long["teacher"] != NO_TEACHER]
    taus = sorted(distilled["temperature"].dropna().unique()) if len(distilled) else [1.0]
    handles: dict[str, object] = {}
    for ax, m in zip(axes.flat, metrics, strict=False):
        sub = long[(long["metric"] == m) & (long["n"] > 0)]
        for g in groups:
            rows = sub[sub["group"] == g].sort_values("temperature")
            if rows.empty:
                continue
            label = _legend_label(rows)
            if rows["teacher"].iloc[0] == NO_TEACHER:
                mean, std = float(rows["mean"].iloc[0]), float(np.nan_to_num(rows["std"].iloc[0]))
                handles.setdefault(label, ax.axhline(mean, ls="--", color=colors[g], lw=1.3))
                ax.axhspan(mean - std, mean + std, color=colors[g], alpha=0.12, lw=0)
            else:
                line = ax.errorbar(
                    rows["temperature"], rows["mean"], yerr=np.nan_to_num(rows["std"]), marker="o", ms=4,
                    capsize=3, color=colors[g], lw=1.5,
                )  # fmt: skip
                handles.setdefault(label, line)
        ax.set_xscale("log", base=2)
        ax.set_xticks(taus, [f"{t:g}" for t in taus])
        ax.minorticks_off()
        ax.set_xlabel("temperature τ")
        where = sources[m]
        ax.set_title(TITLES[m] + (f" (on {where})" if where != sources.get("accuracy", where) else ""), fontsize=9)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=2, frameon=False, fontsize=8)
    return fig


@ANALYSES.register("symmetry")
def symmetry(view: RunView, out: Path) -> Output:
    """Figure-1 panel of the symmetry paper: each metric against τ for the distilled groups, the models from
    data as dashed lines, on the first eval set of the view (``--eval-set`` picks another); and its table."""
    result = Output("symmetry", "Teaching symmetry invariances: metrics against τ (symmetry paper, figure 1)")
    eval_sets = ordered_eval_sets(view)
    rows = finished_rows(view)
    if not eval_sets or rows.empty:
        result.skipped.append("all: no finished trials")
        return result
    if not (rows["teacher"] != NO_TEACHER).any():
        result.skipped.append("all: no distilled students among these trials")
        return result
    chosen = eval_sets[0]
    table, long, sources = symmetry_table(view, chosen)
    if not sources:
        result.skipped.append(f"{chosen}: none of {', '.join(METRICS)} in the results")
        return result
    missing = [m for m in METRICS if m not in sources]
    if missing:
        result.skipped.append(f"{chosen}: no {', '.join(missing)} in the results (metrics not computed by this run)")
    stem = f"symmetry__{safe_stem(chosen)}"
    over = spread(rows)
    title = f"Metrics against τ on {chosen}: solid = distilled, dashed = from data; mean ± std over {over}"
    result.figures.append(save_figure(_figure(long, sources, title), out, stem))
    table_title = f"{chosen}: every metric per group and τ, mean ± std (n) over {over}"
    if any(e != chosen for e in sources.values()):
        table_title += "; " + ", ".join(f"{m} on {e}" for m, e in sources.items() if e != chosen)
    write_table(table, out, stem, table_title)
    long.to_csv(out / f"{stem}__long.csv", index=False)
    result.tables.append((table_title, table))
    others = eval_sets[1:]
    result.notes.append(
        f"Eval set {chosen} (the first of the view); "
        + (f"`--eval-set {others[0]}` draws the panel on another. " if others else "")
        + f"{stem}__long.csv holds the numbers (mean, std, n) behind the figure."
    )
    return result
