"""Training paths (Abnar et al. 2020, figure 1): every snapshot of penultimate features a trial kept during
training (``outputs.feature_epochs``; epoch 0 is the initialisation), all trials' snapshots embedded
together by one metric MDS of representational similarity, each trial's path drawn from first to last epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kdtune.analysis import ANALYSES, Output, RunView, TrialView, most_common, save_figure
from kdtune.analysis.similarity import distances, embed_2d, group_style, ordered_trials, similarity_matrix


@dataclass
class Path2D:
    """One trial's snapshots: the epochs, their features, and where they land in the embedding."""

    trial: TrialView
    epochs: list[int]
    features: list[np.ndarray]
    coords: np.ndarray | None = None


def load_paths(view: RunView) -> tuple[list[Path2D], str, list[str]]:
    """The trials (in group order) that kept snapshots on one common set of examples, that eval set, and one
    line per trial left out and why (trials that kept none are not listed)."""
    from kdtune.rundir import check_trial, trial_dir
    from kdtune.train.trainer import PATHS

    found, skipped = [], []
    for t in ordered_trials(view):
        if not (trial_dir(view.run_dir, t.id) / PATHS).is_file():
            continue
        problem = check_trial(view.run_dir, t.id, (PATHS,))
        if problem:
            skipped.append(f"{t.label} ({t.id}): {problem}")
            continue
        with np.load(trial_dir(view.run_dir, t.id) / PATHS, allow_pickle=False) as z:
            epochs = [int(e) for e in z["epochs"]]
            feats = [z[f"path_features__e{e}"] for e in epochs]
            key = (str(z["eval_set"]), z["feature_index"].tobytes())
        if len(epochs) < 1 or len(feats[0]) < 2:
            skipped.append(f"{t.label} ({t.id}): fewer than 2 examples in its snapshots")
            continue
        found.append((Path2D(t, epochs, feats), key))
    if not found:
        return [], "", skipped
    kept, others, (common, _) = most_common(found)
    skipped += [f"{p.trial.label} ({p.trial.id}): snapshots of other examples ({e}) than most ({common})" for p, (e, _) in others]
    return kept, common, skipped


def _draw(ax, paths: list[Path2D], style: dict, highlight: str | None = None) -> None:
    """Each path as a line with markers; start hollow, end filled and larger. With ``highlight``, other
    groups' paths are drawn in light grey behind it."""
    for p in paths:
        color, marker = style[p.trial.group]
        on = highlight is None or p.trial.group == highlight
        c, z = (color, 3) if on else ("0.85", 1)
        xy = p.coords
        ax.plot(xy[:, 0], xy[:, 1], "-", color=c, lw=1.2, marker=marker, ms=3.5, alpha=0.9 if on else 0.6, zorder=z)
        ax.scatter(*xy[0], s=70, facecolor="white", edgecolor=c, lw=1.5, marker="o", zorder=z + 1)
        ax.scatter(*xy[-1], s=110, color=c, edgecolor="black" if on else c, lw=0.6, marker="*", zorder=z + 1)


def _legend_handles(style: dict, counts: dict[str, int], found: list[Path2D]) -> list:
    from matplotlib.lines import Line2D

    firsts, lasts = {p.epochs[0] for p in found}, {p.epochs[-1] for p in found}
    start = f"start (epoch {firsts.pop()})" if len(firsts) == 1 else "start (first epoch kept)"
    end = f"end (epoch {lasts.pop()})" if len(lasts) == 1 else "end (last epoch kept)"

    handles = [Line2D([], [], color=c, marker=m, ms=5, lw=1.2, label=f"{g} ({counts[g]})") for g, (c, m) in style.items()]
    handles += [
        Line2D([], [], ls="", marker="o", ms=8, mfc="white", mec="0.2", label=start),
        Line2D([], [], ls="", marker="*", ms=11, color="0.2", label=end),
    ]
    return handles


@ANALYSES.register("paths")
def paths(view: RunView, out: Path) -> Output:
    """Figure 1: the training paths of every trial that kept feature snapshots, embedded together by MDS
    of representational similarity (appendix B)."""
    import matplotlib.pyplot as plt

    result = Output("paths", "Training paths in representation space")
    found, eval_set, result.skipped = load_paths(view)
    if not found:
        result.skipped.append("no trial kept feature snapshots during training (outputs.feature_epochs in the sweep)")
        return result
    feats = [f for p in found for f in p.features]
    if len(feats) < 2:
        result.skipped.append("training paths need 2 snapshots; found 1")
        return result
    coords = embed_2d(distances(similarity_matrix(feats)))
    i = 0
    for p in found:
        p.coords, i = coords[i : i + len(p.epochs)], i + len(p.epochs)
    groups = list(dict.fromkeys(p.trial.group for p in found))
    style = group_style(groups)
    counts = {g: sum(p.trial.group == g for p in found) for g in groups}
    n = len(feats[0])
    handles = _legend_handles(style, counts, found)

    fig, ax = plt.subplots(figsize=(8, 6))
    _draw(ax, found, style)
    ax.set_xlabel("MDS dimension 1")
    ax.set_ylabel("MDS dimension 2")
    ax.set_title(f"Training paths, representational similarity on {n} {eval_set} examples")
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, title="model (trials)", loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    result.figures.append(save_figure(fig, out, "paths"))

    cols = min(3, len(groups))
    rows = -(-len(groups) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 4.2 * rows), squeeze=False)
    span = np.ptp(coords, axis=0).max()
    for ax, g in zip(axes.flat, groups, strict=False):
        _draw(ax, found, style, highlight=g)
        mine = np.concatenate([p.coords for p in found if p.trial.group == g])
        centre, half = (mine.max(0) + mine.min(0)) / 2, max(np.ptp(mine, axis=0).max() * 0.6, 0.03 * span)
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_aspect("equal", adjustable="box")
        first_path = next(p for p in found if p.trial.group == g)
        order = [0, len(first_path.epochs) - 1, *range(1, len(first_path.epochs) - 1)]  # ends first, then the rest
        labelled: list[np.ndarray] = []
        for k in dict.fromkeys(order):
            xy = first_path.coords[k]
            if all(np.abs(xy - other).max() > 0.07 * half for other in labelled):  # no label on top of another
                labelled.append(xy)
                ax.annotate(str(first_path.epochs[k]), xy, xytext=(4, 4), textcoords="offset points", fontsize=7,
                            color="0.2", zorder=6)  # fmt: skip
        ax.set_title(f"{g} ({counts[g]})", fontsize=10)
        ax.set_xlabel("MDS dimension 1", fontsize=8)
        ax.set_ylabel("MDS dimension 2", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(groups) :]:
        ax.set_visible(False)
    fig.legend(handles=handles[-2:], loc="lower center", ncol=2, frameon=False, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(f"Training paths by model on {n} {eval_set} examples: each panel zoomed to its model's paths "
                 "(others in grey; numbers: epochs of one seed)", fontsize=10)  # fmt: skip
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    result.figures.append(save_figure(fig, out, "paths_by_group"))

    rows_ = [(p.trial.label, p.trial.id, e, *xy) for p in found for e, xy in zip(p.epochs, p.coords, strict=True)]
    pd.DataFrame(rows_, columns=["trial", "trial_id", "epoch", "x", "y"]).to_csv(out / "paths.csv", index=False)
    epochs = sorted({e for p in found for e in p.epochs})
    result.notes += [
        f"{len(found)} trials' penultimate features on the same {n} examples of eval set {eval_set} (the first eval set), "
        f"kept at epochs {', '.join(map(str, epochs))} (0: initialisation); the {len(feats)} snapshots are compared "
        "pairwise by representational similarity (appendix B) and embedded together by one metric MDS of "
        "1 − similarity divided by its maximum (random_state 0, best of 4 starts).",
        "A snapshot at epoch e is the model after e epochs, not the selected epoch whose features the other analyses "
        "read; epochs a model did not train for are not kept. Coordinates: paths.csv.",
    ]
    return result
