"""Invariance (symmetry-invariance paper, section 2.4, eq. 3): IM = mean over examples of the L1 distance
between a model's probabilities on x and on its transformed x′, from the stored probabilities of an eval set
and its untransformed counterpart (the same examples in the same order)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from kdtune.analysis import ANALYSES, Output, RunView, TrialView, write_table
from kdtune.analysis.overlap import cell, ordered_eval_sets, ordered_groups
from kdtune.train.metrics import invariance_metric

__all__ = ["invariance", "invariance_metric", "transform_pairs", "trial_invariance"]


def transform_pairs(trial: TrialView) -> dict[str, str]:
    """Transformed eval set → the untransformed one it was made from: a corrupted set of source ``s`` pairs
    with the first identity eval set of source ``s`` in the trial's config."""
    specs = trial.config.data.eval_sets
    out = {}
    for e in specs:
        if e.corruption == "identity":
            continue
        base = next((b for b in specs if b.corruption == "identity" and b.source == e.source), None)
        if base is not None:
            out[e.name] = base.name
    return out


def trial_invariance(view: RunView, trial: TrialView, eval_sets: Sequence[str]) -> tuple[dict[str, float], list[str]]:
    """IM of one trial per transformed eval set among ``eval_sets``, and why any pair was left out."""
    arrays = view.outputs(trial.id)
    values, skipped = {}, []
    for e, base in transform_pairs(trial).items():
        if e not in eval_sets:
            continue
        if f"probs__{e}" not in arrays or f"probs__{base}" not in arrays:
            skipped.append(f"{e}: {trial.label} lacks stored probabilities on {e} or {base}")
        elif not np.array_equal(arrays[f"labels__{e}"], arrays[f"labels__{base}"]):
            skipped.append(f"{e}: {trial.label}: labels differ from {base}'s, so the examples are not paired")
        else:
            values[e] = invariance_metric(arrays[f"probs__{base}"], arrays[f"probs__{e}"])
    return values, skipped


@ANALYSES.register("invariance")
def invariance(view: RunView, out: Path) -> Output:
    """IM per group (mean ± std over seeds), one column per transformed eval set."""
    result = Output("invariance", "Invariance metric IM (eq. 3 of the symmetry-invariance paper)")
    eval_sets = ordered_eval_sets(view)
    rows, bases = [], {}
    for name, trials in ordered_groups(view).items():
        for t in trials:
            values, skipped = trial_invariance(view, t, eval_sets)
            result.skipped += skipped
            bases |= {e: b for e, b in transform_pairs(t).items() if e in values}
            rows += [
                {"trial_id": t.id, "group": name, "seed": t.seed, "fold": t.fold, "eval_set": e, "im": v}
                for e, v in values.items()
            ]
    if not rows:
        result.skipped.append("all: no eval set here is a transformed copy of another (a corruption of source test or val)")
        return result
    long = pd.DataFrame(rows)
    columns = [e for e in eval_sets if e in bases]
    table = pd.DataFrame(index=pd.Index(list(dict.fromkeys(long["group"])), name="group"), columns=columns, dtype=object)
    for (group, e), sel in long.groupby(["group", "eval_set"], sort=False):
        table.loc[group, e] = cell(sel["im"].tolist())
    table = table.fillna("–")
    table.columns = [f"{e} vs {bases[e]}" for e in columns]
    over = "seeds × folds" if long["fold"].notna().any() else "seeds"
    title = f"IM = mean over examples of ‖P(x) − P(x′)‖₁ (0: invariant, at most 2), mean ± std (n) over {over}"
    write_table(table, out, "invariance", title)
    long.to_csv(out / "invariance_trials.csv", index=False)
    result.tables.append((title, table))
    result.notes.append("invariance_trials.csv: IM of every trial and transformed eval set.")
    return result
