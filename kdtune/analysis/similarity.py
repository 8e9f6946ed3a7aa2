"""Representational similarity of trained models (Abnar et al. 2020, appendix B), linear CKA and its
debiased form, between every pair of trials; a heatmap, a 2-D metric MDS and tables by group.

Every measure here is a normalised inner product of per-model n×n matrices built from the penultimate
features of the same n examples. The m×m matrix of inner products is accumulated over blocks of rows
of those matrices (all models at once, a few rows each), so memory stays within ``budget`` bytes plus
the features themselves, never m×n×n.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from kdtune.analysis import (
    ANALYSES,
    Output,
    RunView,
    TrialView,
    cell,
    most_common,
    same_init,
    save_figure,
    unit_means,
    units_note,
    write_table,
)

MEASURES = {
    "similarity": "representational similarity (appendix B)",
    "cka": "linear CKA",
    "cka_debiased": "debiased linear CKA",
}
BUDGET = 64 << 20  # bytes of n×n-matrix rows held at once (all models, one block of rows)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (rows of zeros stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


class _Rows:
    """One model's n×n matrix for one measure, produced a block of rows at a time."""

    def __init__(self, x: np.ndarray, measure: str) -> None:
        x = np.asarray(x, np.float64)
        self.measure, n = measure, x.shape[0]
        self.x = _unit_rows(x) if measure == "similarity" else x - x.mean(0)
        if measure == "cka_debiased":  # U-centring (Székely & Rizzo 2014) of the Gram matrix, diagonal zeroed
            col = -np.einsum("ij,ij->i", self.x, self.x)  # column sums with the diagonal left out (x is centred)
            self.means = col / (n - 2)
            self.means -= self.means.sum() / (2 * (n - 1))

    def rows(self, lo: int, hi: int) -> np.ndarray:
        block = self.x[lo:hi] @ self.x.T
        if self.measure == "similarity":
            return _unit_rows(block)
        if self.measure == "cka_debiased":
            block -= self.means[lo:hi, None] + self.means[None, :]
            block[np.arange(hi - lo), np.arange(lo, hi)] = 0.0
        return block


def similarity_matrix(features: Sequence[np.ndarray], measure: str = "similarity", budget: int = BUDGET) -> np.ndarray:
    """The m×m matrix of ``measure`` (a key of :data:`MEASURES`) between models given their features on
    the same n examples, accumulated over blocks of rows: memory about ``budget`` bytes beyond the features."""
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r}; known: {', '.join(MEASURES)}")
    m, n = len(features), features[0].shape[0] if features else 0
    if m == 0 or n < (4 if measure == "cka_debiased" else 1):
        return np.full((m, m), np.nan)
    models = [_Rows(f, measure) for f in features]
    step = max(1, budget // (8 * m * n))
    inner = np.zeros((m, m))
    buffer = np.empty((m, min(step, n) * n))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        block = buffer[:, : (hi - lo) * n]
        for i, r in enumerate(models):
            block[i] = r.rows(lo, hi).reshape(-1)
        inner += block @ block.T
    if measure == "similarity":
        return inner / n
    norms = np.sqrt(np.clip(np.diag(inner), 0.0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        return inner / np.outer(norms, norms)


def distances(similarity: np.ndarray) -> np.ndarray:
    """Dissimilarities for MDS as in the authors' code: 1 − similarity, symmetrised, divided by its maximum."""
    d = 1.0 - (similarity + similarity.T) / 2
    d = np.clip(d, 0.0, None)
    np.fill_diagonal(d, 0.0)
    top = d.max() if d.size else 0.0
    return d / top if top > 0 else d


def embed_2d(dist: np.ndarray) -> np.ndarray:
    """A 2-D metric MDS of a dissimilarity matrix (scikit-learn, seeded, best of 4 starts)."""
    from sklearn.manifold import MDS

    if len(dist) < 3:  # MDS of one or two points: a point, or a segment of the right length
        return np.array([[0.0, 0.0], [dist[0, 1], 0.0]])[: len(dist)] if len(dist) else np.zeros((0, 2))
    kw: dict[str, object] = {"n_components": 2, "n_init": 4, "random_state": 0, "normalized_stress": "auto"}
    if "metric_mds" in inspect.signature(MDS).parameters:  # scikit-learn >= 1.8 renamed the arguments
        kw |= {"metric_mds": True, "metric": "precomputed", "init": "random"}
    else:
        kw |= {"metric": True, "dissimilarity": "precomputed"}
    return MDS(**kw).fit_transform(dist)


def group_units(
    matrix: np.ndarray, groups: Sequence[str], shared: np.ndarray | None = None, models: Sequence[str] | None = None
) -> pd.DataFrame:
    """One row per (row group, column group, model of the row group): the model's mean of ``matrix`` over its pairs
    with the column group's models (itself left out), and how many pairs that was: the units of :func:`group_table`.
    Pairs marked in ``shared`` (a boolean matrix: the two models started from the same initial weights) are left out.
    ``models`` names the models (their index otherwise)."""
    names = list(dict.fromkeys(groups))
    g = np.asarray(groups)
    labels = list(models) if models is not None else [str(i) for i in range(len(groups))]
    keep = ~np.eye(len(g), dtype=bool)
    if shared is not None:
        keep &= ~np.asarray(shared, dtype=bool)
    rows = []
    for a in names:
        for b in names:
            cols = np.flatnonzero(g == b)
            pairs = ((int(i), float(matrix[i, j])) for i in np.flatnonzero(g == a) for j in cols if keep[i, j])
            for i, (value, n) in unit_means(pairs).items():  # keyed by index: two models never merge
                rows.append({"group": a, "column": b, "model": labels[i], "value": value, "pairs": n})
    return pd.DataFrame(rows, columns=["group", "column", "model", "value", "pairs"])


def pair_table(mats: dict[str, np.ndarray], trials: Sequence[TrialView], shared: np.ndarray) -> pd.DataFrame:
    """Every ordered pair of distinct trials with each measure of ``mats``: the units of the claims' tests over model
    labels (:func:`kdtune.results.stats.pair_test`). ``within``/``between``: whether the pair counts in a cell of one group
    or of two groups (pairs that share their initialisation count in neither, as in the group tables)."""
    rows = []
    for i, a in enumerate(trials):
        for j, b in enumerate(trials):
            if i == j:
                continue
            keep = not bool(shared[i, j])
            rows.append({"model1": a.label, "model2": b.label, "trial1": a.id, "trial2": b.id, "group1": a.group,
                         "group2": b.group, "seed1": a.seed, "seed2": b.seed, "same_init": bool(shared[i, j]),
                         "within": keep, "between": keep} | {k: float(m[i, j]) for k, m in mats.items()})  # fmt: skip
    return pd.DataFrame(rows)


def group_table(
    matrix: np.ndarray,
    groups: Sequence[str],
    digits: int = 3,
    shared: np.ndarray | None = None,
    interval: str = "std",
) -> pd.DataFrame:
    """Mean ± std (n models) of ``matrix`` between two groups, over the row group's models: each model's pairs with
    the column group's models averaged first (:func:`group_units`; self-pairs and pairs marked in ``shared`` left
    out), then mean and std (ddof 1) over those per-model means; missing where there is no pair."""
    names = list(dict.fromkeys(groups))
    units = group_units(matrix, groups, shared)
    table = pd.DataFrame(index=pd.Index(names, name="group"), columns=names, dtype=object)
    for (a, b), sel in units.groupby(["group", "column"], sort=False):
        table.loc[a, b] = cell(sel["value"].to_numpy(), digits, interval)
    return table


def first_eval_set(view: RunView) -> str:
    """The first of the view's eval sets in the sweep's order (``test`` unless the sweep lists another first),
    the set whose features training paths keep too."""
    order = [e.name for e in view.trials[0].config.data.eval_sets] if view.trials else []
    return min(view.eval_sets, key=lambda e: order.index(e) if e in order else len(order))


def ordered_trials(view: RunView) -> list[TrialView]:
    """The view's trials by student, then trained from data before distilled, then teacher, then seed."""
    return sorted(view.trials, key=lambda t: (t.student, t.teacher != "data", t.teacher, t.seed, t.id))


def feature_sets(view: RunView, eval_set: str) -> tuple[list[TrialView], list[np.ndarray], list[str]]:
    """Trials (in group order) with features of ``eval_set`` on one common set of examples, their features,
    and one line per trial left out and why."""
    skipped, found = [], []
    for t in ordered_trials(view):
        arrays = view.outputs(t.id)
        feats, index = arrays.get(f"features__{eval_set}"), arrays.get(f"feature_index__{eval_set}")
        if feats is None or index is None or len(feats) < 2:
            skipped.append(f"{t.label} ({t.id}): no penultimate features saved for {eval_set}")
            continue
        found.append(((t, feats), index.tobytes()))
    if not found:
        return [], [], skipped
    kept, others, _ = most_common(found)
    skipped += [f"{t.label} ({t.id}): its features are of other {eval_set} examples than most trials'" for (t, _), _ in others]
    return [t for t, _ in kept], [f for _, f in kept], skipped


def _heatmap(matrix: np.ndarray, trials: Sequence[TrialView], title: str, colorbar: str, out: Path, stem: str) -> Path:
    import matplotlib.pyplot as plt

    m = len(trials)
    per_trial = m <= 60
    size = float(np.clip(0.28 * m + 3.5, 6.0, 16.0))
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(matrix, cmap="viridis", vmin=np.nanmin(matrix), vmax=1.0, interpolation="nearest")
    groups = [t.group for t in trials]
    starts = [i for i in range(m) if i == 0 or groups[i] != groups[i - 1]]
    for s in starts[1:]:
        ax.axhline(s - 0.5, color="white", lw=1.5)
        ax.axvline(s - 0.5, color="white", lw=1.5)
    if per_trial:
        ticks, labels = list(range(m)), [t.label for t in trials]
    else:
        ends = [*starts[1:], m]
        ticks, labels = [(s + e - 1) / 2 for s, e in zip(starts, ends, strict=True)], [groups[s] for s in starts]
    fs = 8 if m <= 30 else 6
    ax.set_xticks(ticks, labels, rotation=90, fontsize=fs)
    ax.set_yticks(ticks, labels, fontsize=fs)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, label=colorbar)
    return save_figure(fig, out, stem)


def group_style(groups: Sequence[str]) -> dict[str, tuple[object, str]]:
    """A colour and a marker per group, in order (markers repeat later than colours)."""
    import matplotlib.pyplot as plt

    colors = plt.get_cmap("tab10").colors if len(groups) <= 10 else plt.get_cmap("tab20").colors
    markers = "osD^vP*Xhp<>"
    return {g: (colors[i % len(colors)], markers[i % len(markers)]) for i, g in enumerate(groups)}


def _mds_figure(coords: np.ndarray, trials: Sequence[TrialView], title: str, out: Path, stem: str) -> Path:
    import matplotlib.pyplot as plt

    style = group_style(list(dict.fromkeys(t.group for t in trials)))
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    for group, (color, marker) in style.items():
        idx = [i for i, t in enumerate(trials) if t.group == group]
        ax.scatter(coords[idx, 0], coords[idx, 1], color=color, marker=marker, s=60, label=f"{group} ({len(idx)})",
                   edgecolor="black", lw=0.5, alpha=0.85)  # fmt: skip
    ax.set_xlabel("MDS dimension 1")
    ax.set_ylabel("MDS dimension 2")
    ax.set_title(title)
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(alpha=0.3)
    ax.legend(title="model (trials)", loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return save_figure(fig, out, stem)


@ANALYSES.register("similarity")
def similarity(view: RunView, out: Path) -> Output:
    """Appendix B's representational similarity, linear CKA and debiased CKA between every pair of trials,
    from their penultimate features on the first eval set; heatmap, MDS and tables by group."""
    result = Output("similarity", "Representational similarity of penultimate features")
    if not view.eval_sets:
        result.skipped.append("no eval set with saved outputs")
        return result
    eval_set = first_eval_set(view)
    trials, feats, result.skipped = feature_sets(view, eval_set)
    if len(trials) < 2:
        result.skipped.append(f"similarity needs 2 trials with penultimate features of {eval_set}; found {len(trials)}")
        return result
    n = feats[0].shape[0]
    mats = {k: similarity_matrix(feats, k) for k in MEASURES}
    labels = pd.Index([t.label for t in trials], name="trial")
    out.mkdir(parents=True, exist_ok=True)
    for k, mat in mats.items():
        pd.DataFrame(mat, index=labels, columns=labels).to_csv(out / f"{k}_matrix.csv")
    groups = [t.group for t in trials]
    title = f"on {n} {eval_set} examples"
    heading = f"Representational similarity, {title}"
    result.figures.append(_heatmap(mats["similarity"], trials, heading, MEASURES["similarity"], out, "similarity"))
    coords = embed_2d(distances(mats["similarity"]))
    result.figures.append(_mds_figure(coords, trials, f"MDS of representational similarity, {title}", out, "mds"))
    shared = np.array([[i != j and same_init(a, b) for j, b in enumerate(trials)] for i, a in enumerate(trials)])
    n_shared = int(np.triu(shared, 1).sum())
    models = [t.label for t in trials]
    for k, name in MEASURES.items():
        table = group_table(mats[k], groups, shared=shared)
        caption = (
            f"Mean {name} between groups ({eval_set}; mean ± std (ddof 1) (n models) over the row group's models, "
            "each model's pairs with the column group averaged first)"
        )
        write_table(table, out, f"groups_{k}", caption)
        group_units(mats[k], groups, shared, models).to_csv(out / f"groups_{k}_units.csv", index=False)
        result.tables.append((caption, table))
    pair_table(mats, trials, shared).to_csv(out / "pairs.csv", index=False)
    result.notes += [
        f"Penultimate features of the same {n} examples of eval set {eval_set} (the first eval set) for each of "
        f"{len(trials)} trials; each example's feature vector is L2-normalised, the n×n matrix of their dot products "
        "formed, and two models' similarity is the mean over examples of the cosine between their rows (Abnar et al. "
        "2020, appendix B, on all n examples at once where the authors averaged batches of 64).",
        "MDS: scikit-learn metric MDS (2-D, random_state 0, best of 4 starts) of 1 − similarity divided by its maximum, "
        "as in the authors' code; distances between points, not the axes, carry meaning.",
        f"Pairs of models that started from the same initial weights are left out of the group tables ({n_shared} "
        "pair(s) here; e.g. students of one seed with different teachers): their similarity owes to the shared start. "
        "The matrices and figures keep them.",
        units_note(
            "a model of the row group: the mean of its pairs with the column group's models, itself left out",
            ", ".join(f"groups_{k}_units.csv" for k in MEASURES),
            "pairs.csv",
        ),
        "Linear CKA (Kornblith et al. 2019) and its debiased form (unbiased HSIC, near 0 for unrelated features). "
        f"Full matrices: {', '.join(f'{k}_matrix.csv' for k in MEASURES)}.",
    ]
    return result
