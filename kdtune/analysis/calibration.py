"""Calibration (Abnar et al., figure 5): reliability diagrams per group and eval set, with the ECE of
:func:`kdtune.train.metrics.ece` at its bins (:data:`kdtune.train.metrics.ECE_BINS`), which are the diagrams' bins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kdtune.analysis import ANALYSES, Output, RunView, TrialView, save_figure, write_table
from kdtune.analysis.overlap import cell, ordered_eval_sets, ordered_groups, safe_stem
from kdtune.train import metrics

N_BINS = metrics.ECE_BINS  # the diagrams' bins are the ECE's, so this ECE is the results tables' `ece`
MAX_COLS = 4  # panels per row; a student with more groups continues on the next row


def confidence_bins(probs: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Bin of each example's top-1 confidence: ``b`` for ``(b/n, (b+1)/n]`` (as :func:`kdtune.train.metrics.ece` bins)."""
    conf = np.asarray(probs, dtype=np.float64).max(-1)
    return np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)


def reliability(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> pd.DataFrame:
    """Per confidence bin: its edges, the number of examples, their mean confidence and their accuracy (NaN if empty)."""
    p = np.asarray(probs, dtype=np.float64)
    conf, correct = p.max(-1), (p.argmax(-1) == np.asarray(labels)).astype(float)
    return binned_means(confidence_bins(p, n_bins), n_bins, {"confidence": conf, "accuracy": correct})


def binned_means(bins: np.ndarray, n_bins: int, values: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per bin ``[b/n, (b+1)/n)``: its edges, the number of examples and the mean of each of ``values`` (NaN if empty)."""
    count = np.bincount(bins, minlength=n_bins)
    edges = np.arange(n_bins + 1) / n_bins
    columns: dict[str, np.ndarray] = {"lo": edges[:-1], "hi": edges[1:], "examples": count}
    with np.errstate(invalid="ignore", divide="ignore"):
        for name, v in values.items():
            columns[name] = np.bincount(bins, weights=v, minlength=n_bins) / count
    return pd.DataFrame(columns, index=pd.RangeIndex(n_bins, name="bin"))


def panel_rows(groups: dict[str, list[TrialView]], names: list[str]) -> list[list[str]]:
    """The diagrams' layout: a row per student holding its groups of ``names`` in their order (teachers and
    distillation settings apart), wrapped after :data:`MAX_COLS` panels; every name appears once."""
    by_student: dict[str, list[str]] = {}
    for name in names:
        by_student.setdefault(groups[name][0].student, []).append(name)
    return [row[i : i + MAX_COLS] for row in by_student.values() for i in range(0, len(row), MAX_COLS)]


def examples_panel(ax, table: pd.DataFrame) -> None:
    """The examples per bin of a :func:`binned_means` table as bars on a log scale (the panel under a diagram)."""
    from matplotlib.ticker import LogLocator, NullFormatter

    full = table[table["examples"] > 0]
    ax.bar(full["lo"], full["examples"], width=1 / len(table), align="edge", color="0.6", edgecolor="black", lw=0.6)
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, numticks=4))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set(xlim=(0, 1), ylim=(0.7, None), ylabel="examples")


def _panel(ax_acc, ax_n, table: pd.DataFrame, title: str) -> None:
    width = 1 / len(table)
    full = table[table["examples"] > 0]
    ax_acc.plot([0, 1], [0, 1], ls="--", color="0.4", lw=1, label="perfect calibration")
    ax_acc.bar(
        full["lo"], full["accuracy"], width=width, align="edge", color="#4c72b0", edgecolor="black", lw=0.6, label="accuracy"
    )
    ax_acc.hlines(full["confidence"], full["lo"], full["hi"], color="#c44e52", lw=2.2, label="mean confidence")
    ax_acc.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy")
    ax_acc.set_title(title, fontsize=9)
    ax_acc.tick_params(labelbottom=False)
    examples_panel(ax_n, table)
    ax_n.set_xlabel("confidence")


@ANALYSES.register("calibration")
def calibration(view: RunView, out: Path) -> Output:
    """Reliability diagrams (:data:`N_BINS` equal-width confidence bins, each group's seeds pooled) per eval set, one
    panel per group; ECE per group, the results' ``ece``."""
    import matplotlib.pyplot as plt

    result = Output("calibration", "Calibration: reliability diagrams (Abnar et al., figure 5)")
    groups = ordered_groups(view)
    if not groups:
        result.skipped.append("all: no finished trials")
        return result
    ece_table = pd.DataFrame(index=pd.Index(list(groups), name="group"), dtype=object)
    bins_rows = []
    for e in ordered_eval_sets(view):
        pooled: dict[str, tuple[pd.DataFrame, list[float], int]] = {}
        for name, trials in groups.items():
            have: list[TrialView] = [t for t in trials if f"probs__{e}" in view.outputs(t.id)]
            if len(have) < len(trials):
                result.skipped.append(f"{e}: {len(trials) - len(have)} trial(s) of {name} have no stored probabilities on it")
            if not have:
                continue
            probs = [view.outputs(t.id)[f"probs__{e}"] for t in have]
            labels = [view.outputs(t.id)[f"labels__{e}"] for t in have]
            eces = [metrics.ece(p, y, n_bins=N_BINS) for p, y in zip(probs, labels, strict=True)]
            table = reliability(np.concatenate(probs), np.concatenate(labels))
            pooled[name] = (table, eces, len(have))
            ece_table.loc[name, e] = cell(eces)
            bins_rows += [{"eval_set": e, "group": name, "bin": int(b), **r} for b, r in table.iterrows()]
        if not pooled:
            continue
        rows = panel_rows(groups, list(pooled))
        nrows, ncols = len(rows), max(len(r) for r in rows)
        height = 4.0 * nrows + 1.35
        fig = plt.figure(figsize=(3.4 * ncols, height))
        outer = fig.add_gridspec(nrows, ncols, hspace=0.45, wspace=0.35, top=1 - 1.35 / height, bottom=0.4 / height)
        for i, row in enumerate(rows):
            for j, name in enumerate(row):
                table, eces, n = pooled[name]
                inner = outer[i, j].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.08)
                ax_acc = fig.add_subplot(inner[0])
                ax_n = fig.add_subplot(inner[1], sharex=ax_acc)
                _panel(ax_acc, ax_n, table, f"{name}\n{n} seed{'s' * (n != 1)} pooled; ECE {cell(eces)}")
        fig.suptitle(
            f"Reliability on {e}: accuracy per confidence bin; ECE per seed, mean ± std (n), {N_BINS} bins", y=1 - 0.12 / height
        )
        handles, names = ax_acc.get_legend_handles_labels()
        fig.legend(handles, names, loc="upper center", ncol=3, frameon=False, bbox_to_anchor=(0.5, 1 - 0.4 / height))
        result.figures.append(save_figure(fig, out, f"reliability__{safe_stem(e)}"))
    if len(ece_table.columns):
        ece_table = ece_table.fillna("–")
        title = f"ECE ({N_BINS} equal-width confidence bins, as the results' ece), mean ± std (n) over seeds"
        write_table(ece_table, out, "ece", title)
        result.tables.append((title, ece_table))
        pd.DataFrame(bins_rows).to_csv(out / "reliability_bins.csv", index=False)
        result.notes.append(
            f"ECE is kdtune.train.metrics.ece with its {N_BINS} equal-width bins (b/{N_BINS}, (b+1)/{N_BINS}], the bins of "
            "the diagrams and of the trial metric `ece` that `kdtune report` shows, so the numbers are the same. "
            "reliability_bins.csv: each diagram's bins (examples, mean confidence, accuracy)."
        )
    return result
