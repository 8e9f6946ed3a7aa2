"""Switching to distillation mid-training (student-teacher deviations paper, section 3.2): a metric of the
students against the switch point (``start``: labels first, the teacher from there on; ``stop``: the reverse
control), with the students trained from data and distilled throughout (start 0) as references, and the fraction
of the distillation gain a switch recovers, ``(m(switch) − m(data)) / (m(start 0) − m(data))``, per seed (and
fold), mean ± std.

A group is one configuration, as the view's groups, less the switch; its from-data reference is the same student
label's, of the group's configuration (where none fits: no recovered fraction, and a skipped line says why). A seed
(and fold) held by two trials of one cell has no one twin, so no recovered fraction is paired with either.

A switched student measures its switch only if its kept epoch (``best_epoch``) lies in the window from the last
switch on (:func:`kdtune.train.distill.selection_epochs`; kdtune selects there since ``train.select_from:
last_switch``). One kept outside (an older kdtune selected among every epoch) is left out, counted in the
``kept outside window`` column and named; one selected among every epoch but kept inside counts, once: beside a
twin selected in the window (same switch, seed and fold), only the twin counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kdtune.analysis import (
    ANALYSES,
    Output,
    RunView,
    _setting,
    cell_settings,
    config_labels,
    same_setting,
    save_figure,
    write_table,
)
from kdtune.analysis.overlap import cell, ordered_eval_sets, safe_stem
from kdtune.analysis.symmetry import finished_rows, spread, summary
from kdtune.labels import NO_TEACHER, missing
from kdtune.train.distill import LossSpec, selection_epochs

METRICS = ("accuracy", "nll")
LABELS = {"accuracy": "top-1 accuracy", "nll": "NLL"}
OUTSIDE = "kept outside window"  # the display column: trials of a switch point left out (kept epoch before the switch)
SERIES = {
    "start": "labels, then the teacher from the switch",
    "stop": "the teacher, then labels from the switch (control)",
}


def recovered_fraction(m: float, m_data: float, m_throughout: float) -> float:
    """``(m − m_data) / (m_throughout − m_data)``: 1 = the whole distillation gain, 0 = none (NaN if no gain)."""
    gain = m_throughout - m_data
    return float("nan") if gain == 0 or pd.isna(gain) else float((m - m_data) / gain)


def _numeric(df: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(df[column], errors="coerce") if column in df.columns else pd.Series(np.nan, index=df.index)


def _pair_key(df: pd.DataFrame) -> list[str]:
    """``seed/fold`` of each row (fold empty without folds: None or NaN)."""
    folds = df["fold"] if "fold" in df.columns else [None] * len(df)
    return [f"{int(s)}/{'' if pd.isna(f) else int(f)}" for s, f in zip(df["seed"], folds, strict=True)]


def _by_pair(df: pd.DataFrame, metrics: list[str]) -> dict[str, dict[str, float]]:
    """Per metric, each seed/fold's value; a seed/fold held by more than one trial is left out (no twin:
    which one would be a guess), never one overwriting the other (:func:`_duplicates` names them)."""
    keys = _pair_key(df)
    dup = set(_duplicates(df))
    return {m: {k: v for k, v in zip(keys, pd.to_numeric(df[m], errors="coerce"), strict=True) if k not in dup} for m in metrics}


def _duplicates(df: pd.DataFrame) -> dict[str, list[str]]:
    """``seed/fold`` → the trial ids, for each seed/fold held by more than one trial of one cell."""
    ids: dict[str, list[str]] = {}
    for k, tid in zip(_pair_key(df), df["trial_id"], strict=True):
        ids.setdefault(k, []).append(str(tid))
    return {k: v for k, v in ids.items() if len(v) > 1}


def _duplicate_lines(df: pd.DataFrame, where: str, fraction: str) -> list[str]:
    """A line per seed/fold of ``df`` (one cell: one configuration) held by two or more trials."""
    lines = []
    for k, ids in _duplicates(df).items():
        seed, fold = k.split("/")
        at = f"seed {seed}" + (f" fold {fold}" if fold else "")
        lines.append(f"{where}, {at}: {len(ids)} trials ({', '.join(ids)}) of one configuration; {fraction}")
    return lines


def from_data_reference(data: pd.DataFrame, group: pd.DataFrame, student: str, arch: str) -> tuple[pd.DataFrame, str]:
    """The rows of ``student`` (its own label, never another student of the architecture) trained from data of
    ``group``'s configuration: those whose settings that tell the student's from-data configurations apart
    (:func:`kdtune.analysis.cell_settings`) are the group's. Empty with the reason where there is none."""
    mine = data[(data["student"].astype(str) == student) & (data["arch"].astype(str) == arch)]
    if mine.empty:
        others = sorted(set(data.loc[data["arch"].astype(str) == arch, "student"].astype(str)))
        also = f" ({', '.join(others)}, of architecture {arch}, another model: not used)" if others else ""
        return mine, f"no {student} trained from data to compare{also}"
    trials = mine.drop_duplicates("trial_id")
    keys = cell_settings(trials)
    if not keys:
        return mine, ""
    first = group.iloc[0]
    same = [all(same_setting(r[k], first[k] if k in group.columns else None) for k in keys) for r in trials.to_dict("records")]
    ids = set(trials.loc[same, "trial_id"])
    if not ids:
        labels = sorted(set(config_labels(trials)))
        ours = " ".join(_setting(k, first[k]) for k in keys if k in group.columns and not missing(first[k]))
        return mine.iloc[:0], (f"no {student} trained from data of its configuration ({ours or 'unset'}) to compare; "
                               f"its from-data configurations: {'; '.join(labels)}")  # fmt: skip
    return mine[mine["trial_id"].isin(ids)], ""


def switch_points(df: pd.DataFrame) -> pd.DataFrame:
    """Distilled rows with their ``series`` (start: stop unset; stop: start 0 and stop set; window: both)
    and ``point`` (the switch); start unset reads 0 (distillation from the first epoch)."""
    out = df.copy()
    start, stop = _numeric(out, "start").fillna(0.0), _numeric(out, "stop")
    out["series"] = np.where(stop.isna(), "start", np.where(start == 0, "stop", "window"))
    out["point"] = np.where(stop.isna(), start, stop)
    out["throughout"] = (start == 0) & stop.isna()
    return out


def _switch_value(v: float) -> float | int | None:
    """A switch point as the results table stores it (a float, NaN for none) back in the form a LossSpec takes:
    a fraction in [0, 1) stays a float, a whole number >= 1 is an epoch number."""
    if pd.isna(v):
        return None
    return float(v) if 0 <= v < 1 else int(v)


def selection_check(rows: pd.DataFrame) -> pd.DataFrame:
    """Per distilled row: the window its kept epoch must lie in (``window_first``, ``window_last``: from the
    last switch on, :func:`kdtune.train.distill.selection_epochs`), the window selection chose among (``chosen``,
    text: every epoch where ``metrics.json`` has no ``select_window``) and ``kept`` (inside, outside, or unknown
    without ``best_epoch`` or ``epochs``)."""
    out = rows.copy()
    epochs, best = _numeric(out, "epochs"), _numeric(out, "best_epoch")
    starts, stops = _numeric(out, "start"), _numeric(out, "stop")
    first_rec, last_rec = _numeric(out, "select_first"), _numeric(out, "select_last")
    lo, hi, kept, chosen = [], [], [], []
    for e, b, a, z, f_rec, l_rec in zip(epochs, best, starts, stops, first_rec, last_rec, strict=True):
        if pd.isna(e):
            lo.append(np.nan), hi.append(np.nan), kept.append("unknown")
        else:
            start = _switch_value(a)
            window = selection_epochs(LossSpec("hinton", 1.0, 0.0, 1.0, start or 0.0, _switch_value(z)), int(e))
            lo.append(window.start), hi.append(window.stop - 1)
            kept.append("unknown" if pd.isna(b) else "inside" if window.start <= b < window.stop else "outside")
        recorded = not (pd.isna(f_rec) or pd.isna(l_rec))
        chosen.append(f"epochs {int(f_rec)}–{int(l_rec)}" if recorded else "every epoch (not recorded: an older kdtune)")
    out["window_first"], out["window_last"], out["kept"], out["chosen"] = lo, hi, kept, chosen
    out["in_window"] = (first_rec == out["window_first"]) & (last_rec == out["window_last"])  # selected by the window
    return out


def _flagged(part: pd.DataFrame, name: str, series: str, point: float) -> tuple[pd.DataFrame, list[str]]:
    """The trials of one cell that measure its switch, and a line for each left out: a kept epoch outside its
    window, or a twin (same seed and fold) of a trial selected in the window."""
    lines = []
    for r in part[part["kept"] == "outside"].itertuples(index=False):
        fold = "" if pd.isna(getattr(r, "fold", None)) else f" fold {int(r.fold)}"
        lines.append(f"{name} {series}={point:g}, seed {int(r.seed)}{fold}: trial {r.trial_id} kept epoch {int(r.best_epoch)}, "
                     f"outside its window (epochs {int(r.window_first)}–{int(r.window_last)}; selected among {r.chosen}); "
                     "left out (re-run the sweep: kdtune trains it again, selecting in the window)")  # fmt: skip
    keep = part[part["kept"] != "outside"]
    keep = keep.assign(pair=_pair_key(keep))
    twins = ~keep["in_window"] & keep["pair"].isin(set(keep.loc[keep["in_window"], "pair"]))
    if twins.any():
        ids = ", ".join(keep.loc[twins, "trial_id"])
        lines.append(f"{name} {series}={point:g}: {int(twins.sum())} trial(s) selected among every epoch by an older kdtune "
                     f"({ids}) beside a twin selected in the window (same seed and fold, same kept model); counted once, "
                     "as the twin")  # fmt: skip
    return keep[~twins].drop(columns="pair"), lines


def _summary_row(
    shown: dict[str, str], group: str, series: str, point: float, metric: str, vals: list, fracs: list, outside: int
) -> dict[str, object]:
    """The long table's row of one metric of one series and switch point (mean, std, n of the values and of the
    recovered fractions); its two cells written into ``shown``, the display table's row."""
    mean, std, n = summary(vals)
    f_mean, f_std, f_n = summary(fracs)
    shown[metric] = cell(vals) if n else "–"
    shown[f"{metric} recovered"] = cell(fracs) if f_n else "–"
    return {"group": group, "series": series, "point": point, "metric": metric, "mean": mean, "std": std, "n": n,
            "recovered_mean": f_mean, "recovered_std": f_std, "recovered_n": f_n, "outside": outside}  # fmt: skip


SWITCH_SETTINGS = ("start", "stop", "select_from")  # the x axis (select_from is derived from it), not a group


def switch_table(rows: pd.DataFrame, metrics: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Per group (one configuration: student, teacher and the settings that tell its trials apart, as the view's
    groups, less the switch), series and switch point: each metric and its recovered fraction, and how many
    trials kept an epoch outside their window (left out); the display table, the numeric long table and what was
    left out. The from-data reference is the student's own, of the group's configuration."""
    rows = rows.copy()
    rows["student"], rows["teacher"], rows["arch"] = (rows[c].astype(str) for c in ("student", "teacher", "arch"))
    skipped: list[str] = []
    distilled = selection_check(switch_points(rows[rows["teacher"] != NO_TEACHER]))
    data = rows[rows["teacher"] == NO_TEACHER]
    windows = distilled["series"] == "window"
    if windows.any():
        skipped.append(f"{int(windows.sum())} row(s) with both start > 0 and stop set (a window, not a switch)")
    distilled = distilled[~windows]
    unknown = distilled[(distilled["kept"] == "unknown") & ~distilled["throughout"]]
    if len(unknown):
        skipped.append(f"{len(unknown)} switched trial(s) without best_epoch or epochs in the results: kept epoch not "
                       "checked against the switch")  # fmt: skip
    # one configuration per group: the settings that tell the trials of a student and teacher apart, the switch aside
    labels = config_labels(distilled.drop(columns=[c for c in SWITCH_SETTINGS if c in distilled]), without=SWITCH_SETTINGS)
    distilled = distilled.assign(_config=labels.to_numpy())
    long, display = [], []
    for (student, teacher, setting), group in distilled.groupby(["student", "teacher", "_config"], sort=False, dropna=False):
        throughout = group[group["throughout"]]
        name = f"{student} ← {teacher}" + (f" {setting}" if setting else "")
        ref, why = from_data_reference(data, group, student, str(group["arch"].iloc[0]))
        if why:
            skipped.append(f"{name}: {why}")
        if throughout.empty:
            skipped.append(f"{name}: no student distilled throughout (start 0, no stop) to compare")
        ref_by, top_by = _by_pair(ref, metrics), _by_pair(throughout, metrics)
        for label, sel in (("from data", ref), ("distilled throughout", throughout)):
            skipped += _duplicate_lines(sel, f"{name} {label}", "no twin for the recovered fraction of that seed and fold")
            shown = {"group": name, "series": label, "switch": "–"}
            for m in metrics:
                long.append(_summary_row(shown, name, label, np.nan, m, pd.to_numeric(sel[m], errors="coerce").tolist(), [], 0))
            shown[OUTSIDE] = "–"
            display.append(shown)
        for series in SERIES:
            part = group[group["series"] == series]
            for point in sorted(part["point"].unique()):
                at = part[part["point"] == point]
                sel, lines = _flagged(at, name, series, point)
                skipped += lines
                if series != "start" or point != 0:  # start 0 is the throughout reference, named above
                    skipped += _duplicate_lines(sel, f"{name} {series}={point:g}", "each counted")
                outside = int((at["kept"] == "outside").sum())
                shown = {"group": name, "series": series, "switch": f"{point:g}"}
                pairs = _pair_key(sel)
                for m in metrics:
                    vals = pd.to_numeric(sel[m], errors="coerce").tolist()
                    fracs = [
                        recovered_fraction(v, ref_by[m][k], top_by[m][k])
                        for k, v in zip(pairs, vals, strict=True)
                        if k in ref_by[m] and k in top_by[m]
                    ]
                    unpaired = len(vals) - len(fracs)
                    if unpaired and not ref.empty and not throughout.empty:
                        skipped.append(f"{name} {series}={point:g}: {unpaired} trial(s) without a from-data and "
                                       "a throughout twin of the same seed and fold")  # fmt: skip
                    long.append(_summary_row(shown, name, series, float(point), m, vals, fracs, outside))
                shown[OUTSIDE] = f"{outside} of {len(at)}" if outside else "0"  # of the trials of this switch point
                display.append(shown)
    table = pd.DataFrame(display).set_index(["group", "series", "switch"]) if display else pd.DataFrame()
    return table, pd.DataFrame(long), list(dict.fromkeys(skipped))


def _figure(long: pd.DataFrame, metrics: list[str], title: str, xlabel: str):
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(long["group"]))
    ncols = len(metrics) + 1
    fig, axes = plt.subplots(
        len(groups), ncols, figsize=(3.6 * ncols, 3.2 * len(groups) + 1.0), squeeze=False, layout="constrained"
    )
    style = {"start": ("#c44e52", "o", "-"), "stop": ("#8172b2", "s", "--")}
    refs = {"from data": ("#4c72b0", "--"), "distilled throughout": ("#dd8452", ":")}
    for i, g in enumerate(groups):
        mine = long[long["group"] == g]
        for j, m in enumerate(metrics):
            ax = axes[i][j]
            sub = mine[mine["metric"] == m]
            for label, (color, ls) in refs.items():
                r = sub[(sub["series"] == label) & (sub["n"] > 0)]
                if len(r):
                    mean, std = float(r["mean"].iloc[0]), float(np.nan_to_num(r["std"].iloc[0]))
                    ax.axhline(mean, color=color, ls=ls, lw=1.3, label=f"student {label}")
                    ax.axhspan(mean - std, mean + std, color=color, alpha=0.15, lw=0)
            for series, (color, marker, ls) in style.items():
                r = sub[(sub["series"] == series) & (sub["n"] > 0)].sort_values("point")
                if len(r):
                    ax.errorbar(r["point"], r["mean"], yerr=np.nan_to_num(r["std"]), color=color, marker=marker, ls=ls,
                                ms=4, capsize=3, label=SERIES[series])  # fmt: skip
            ax.set(xlabel=xlabel, ylabel=LABELS.get(m, m))
            ax.set_title(f"{g}: {LABELS.get(m, m)}", fontsize=9)
        ax = axes[i][-1]
        ax.axhline(0, color="#4c72b0", ls="--", lw=1)
        ax.axhline(1, color="#dd8452", ls=":", lw=1)
        for series, (color, marker, ls) in style.items():
            for m, fill in zip(metrics, ("full", "none"), strict=False):
                r = mine[(mine["series"] == series) & (mine["metric"] == m) & (mine["recovered_n"] > 0)].sort_values("point")
                if len(r):
                    ax.errorbar(r["point"], r["recovered_mean"], yerr=np.nan_to_num(r["recovered_std"]), color=color,
                                marker=marker, ls=ls, ms=5, capsize=3, fillstyle=fill,
                                label=f"{m}, {series}")  # fmt: skip
        ax.set(xlabel=xlabel, ylabel="fraction of the gain recovered")
        ax.set_title(f"{g}: (m − m_data) / (m_throughout − m_data)", fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.suptitle(title, fontsize=10)
    fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False, fontsize=8)
    return fig


@ANALYSES.register("switch")
def switch(view: RunView, out: Path) -> Output:
    """Test accuracy and NLL against the switch point (``start`` / ``stop``), with the from-data and
    distilled-throughout students as references and the fraction of the distillation gain recovered."""
    result = Output("switch", "Switching to distillation mid-training (deviations paper, section 3.2)")
    eval_sets = ordered_eval_sets(view)
    rows = finished_rows(view, eval_sets[0]) if eval_sets else pd.DataFrame()
    if rows.empty:
        result.skipped.append("all: no finished trials")
        return result
    points = switch_points(rows[rows["teacher"] != NO_TEACHER])
    if not ({"start", "stop"} & set(rows.columns)) or points[["series", "point"]].drop_duplicates().shape[0] < 2:
        result.skipped.append("all: no start or stop axis among these trials (one switch point or none)")
        return result
    metrics = [m for m in METRICS if m in rows.columns and pd.to_numeric(rows[m], errors="coerce").notna().any()]
    table, long, skipped = switch_table(rows, metrics)
    result.skipped += skipped
    if long.empty or not (long["recovered_n"] > 0).any():
        result.skipped.append(f"{eval_sets[0]}: no switch point with a from-data and a throughout twin to compare")
    e = eval_sets[0]
    pts = long["point"].dropna()
    xlabel = "switch point (fraction of the epochs)" if len(pts) and (pts < 1).all() else "switch point (epoch or fraction)"
    title = f"Switching to distillation on {e}: mean ± std over {spread(rows)}"
    result.figures.append(save_figure(_figure(long, metrics, title, xlabel), out, f"switch__{safe_stem(e)}"))
    table_title = (
        f"{e}: {', '.join(metrics)} per switch point and the fraction of the distillation gain recovered, "
        f"(m − m_data) / (m_throughout − m_data) per seed and fold; mean ± std (n) over {spread(rows)}"
    )
    write_table(table, out, f"switch__{safe_stem(e)}", table_title)
    long.to_csv(out / f"switch__{safe_stem(e)}__long.csv", index=False)
    result.tables.append((table_title, table))
    checked = selection_check(points[(points["series"] != "window") & ~points["throughout"]])
    counts = checked["kept"].value_counts()
    result.notes.append(
        f"Kept epochs: {counts.get('inside', 0)} switched trial(s) kept an epoch inside their window, "
        f"{counts.get('outside', 0)} outside (left out, named above), {counts.get('unknown', 0)} unknown. The window is "
        "the epochs from the last switch on: for start, the distilled epochs; for stop, the epochs back on the labels "
        "(an earlier epoch would be a student that never read its teacher, or one distilled throughout and stopped "
        "early)."
    )
    result.notes.append(
        "Groups: one configuration each (student, teacher and the settings that tell them apart, the switch aside). "
        "From data: the student's own label trained from data, of the group's configuration where its from-data "
        "trials differ (e.g. in lr); paired with each switched trial by seed and fold."
    )
    result.notes.append(
        "start = s: labels before the switch, the teacher from it on; stop = s: the reverse. A fraction in [0, 1) "
        "is a share of the epochs, a number ≥ 1 an epoch. Recovered 1: the whole gain of distilling throughout; "
        "a seed (fold) whose student distilled throughout equals its student from data has no gain to recover and "
        "is left out of that column's n; with a small gain the fraction is noisy."
    )
    return result
