"""Error overlap (Abnar et al., appendix E, figures 10–12): the sets of examples models misclassify,
Venn diagrams of two or three models' error sets, and pairwise Jaccard and shared-error tables.

Also the helpers the per-example analyses share (trials in the sweep's order, a trial's teacher and
its from-data twin, ``mean ± std (n)`` cells).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from kdtune.analysis import (
    ANALYSES,
    Output,
    RunView,
    TrialView,
    cell,
    same_init,
    save_figure,
    unit_means,
    units_note,
    write_table,
)

MAX_EVAL_SETS = 3  # more eval sets than this: the first only
MAX_PANELS = 12  # Venn panels per figure
PANEL_SIZE = (4.2, 4.1)  # inches per Venn panel
TITLE_CHARS = 40  # a Venn panel's title is wrapped to lines of at most this many characters (9 pt fits a panel)
LABEL_CHARS = 28  # a circle's label likewise (8 pt, beside a circle: about half a panel)


# ---- helpers shared by errors, calibration, invariance and hardness ---------------------------------


def _order(view: RunView, column: str) -> list[str]:
    values = view.results[column]
    return [str(c) for c in values.cat.categories] if hasattr(values, "cat") else [str(v) for v in values.unique()]


def ordered_trials(view: RunView, trials: Sequence[TrialView] | None = None) -> list[TrialView]:
    """Trials sorted as the sweep lists them: student, then teacher (``data`` first), then distillation settings
    (``τ=2`` before ``τ=10``), then seed."""
    students, teachers = _order(view, "student"), _order(view, "teacher")

    def key(t: TrialView) -> tuple[int, int, tuple[tuple[str, float, str], ...], int, str]:
        s = students.index(t.student) if t.student in students else len(students)
        k = teachers.index(t.teacher) if t.teacher in teachers else len(teachers)
        return s, k, _detail_key(t.detail), t.seed, t.id

    return sorted(view.trials if trials is None else trials, key=key)


def _detail_key(detail: str) -> tuple[tuple[str, float, str], ...]:
    """``τ=2 w_hard=0.5`` as ``(("τ", 2.0, ""), ("w_hard", 0.5, ""))``: numbers sort as numbers, other values as text."""
    out = []
    for part in detail.split():
        name, _, value = part.partition("=")
        try:
            out.append((name, float(value), ""))
        except ValueError:
            out.append((name, float("-inf"), value))
    return tuple(out)


def ordered_groups(view: RunView) -> dict[str, list[TrialView]]:
    """The view's groups in the sweep's order, each group's trials by seed."""
    out: dict[str, list[TrialView]] = {}
    for t in ordered_trials(view):
        out.setdefault(t.group, []).append(t)
    return out


def ordered_eval_sets(view: RunView) -> list[str]:
    """``view.eval_sets`` in the sweep's order."""
    order = _order(view, "eval_set")
    return sorted(view.eval_sets, key=lambda e: order.index(e) if e in order else len(order))


def run_trials(view: RunView) -> dict[str, TrialView]:
    """Every finished trial of the run folder by id: the view's, then those its filters left out (teachers…)."""
    out = {t.id: t for t in view.trials}
    ok = view.results[view.results["status"] == "ok"].drop_duplicates("trial_id")
    return out | {r["trial_id"]: view.trial(r) for r in ok.to_dict("records") if r["trial_id"] not in out}


def from_data_twin(trials: dict[str, TrialView], trial: TrialView, avoid: Sequence[str] = ()) -> TrialView | None:
    """The trial's student label and architecture trained from data on the same fold (k-fold sweeps): of the
    same seed, else the lowest other seed, never one of ``avoid`` (e.g. the teacher itself in self-distillation)."""
    same = (trial.student, trial.arch, trial.fold)
    twins = [t for t in trials.values() if t.teacher == "data" and (t.student, t.arch, t.fold) == same and t.id not in avoid]
    return min(twins, key=lambda t: (t.seed != trial.seed, t.seed, t.id), default=None)


def safe_stem(name: str) -> str:
    """A file-name-safe form of an eval set's name."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


# ---- error sets ----------------------------------------------------------------------------------------


def error_set(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Sorted indices of the examples whose arg-max class differs from the label."""
    return np.flatnonzero(np.asarray(probs).argmax(-1) != np.asarray(labels))


def overlap(errors_a: np.ndarray, errors_b: np.ndarray) -> tuple[float, float]:
    """``(Jaccard |A∩B|/|A∪B|, share of B's errors A also makes |A∩B|/|B|)``; NaN where the denominator is 0."""
    both = len(np.intersect1d(errors_a, errors_b))
    union = len(errors_a) + len(errors_b) - both
    return (both / union if union else float("nan")), (both / len(errors_b) if len(errors_b) else float("nan"))


Trio = tuple[str, list[TrialView], list[str]]  # panel title, 2–3 trials, their roles ("teacher" or "")


def venn_trios(view: RunView, trials: dict[str, TrialView]) -> tuple[list[Trio], list[str]]:
    """Sets of 2–3 trials to draw (as figures 10–12): two from-data seeds of an architecture with one of the next;
    per distilled group, its lowest seed's teacher, student and from-data twin. Also what could not be formed."""
    groups = ordered_groups(view)
    data = {g[0].student: g for g in groups.values() if g[0].teacher == "data"}
    out: list[Trio] = []
    skipped: list[str] = []
    labels = list(data)
    for i, s in enumerate(labels):
        other = data[labels[(i + 1) % len(labels)]][0] if len(labels) > 1 else None
        if len(data[s]) >= 2:
            members = [*data[s][:2], *([other] if other else [])]
            out.append((f"two {s} from data" + (f", one {other.student}" if other else ""), members, [""] * len(members)))
    for name, group in groups.items():
        if group[0].teacher == "data":
            continue
        student = group[0]
        teacher = trials.get(student.config.teacher_id or "")
        if teacher is None:
            skipped.append(f"{student.label}: its teacher {student.config.teacher_id} is not a finished trial of this run")
            continue
        twin = from_data_twin(trials, student, avoid=[teacher.id])
        members = [teacher, student] + ([twin] if twin else [])
        out.append(
            (f"{name}: teacher, student" + (", student from data" if twin else ""), members, ["teacher", "", ""][: len(members)])
        )
    return out, skipped


def _wrap(text: str, width: int) -> str:
    """``text`` broken at spaces into lines of at most ``width`` characters (existing line breaks kept)."""
    import textwrap

    return "\n".join(w for line in text.split("\n") for w in (textwrap.wrap(line, width, break_on_hyphens=False) or [""]))


def _venn_label(t: TrialView, role: str, n: int) -> str:
    return _wrap(f"{t.label}{f' ({role})' if role else ''}", LABEL_CHARS) + f"\n{n} error{'s' * (n != 1)}"


def _draw_venn(panel, sets: list[set[int]], labels: list[str], title: str) -> None:
    """An area-proportional Venn diagram of 2–3 sets in ``panel`` (a subfigure), outlined in the sets' colours;
    models without errors are listed under it (a circle of zero area cannot be drawn). The title is the panel's,
    not the axes': the circles' labels reach above the axes, and a constrained layout keeps both apart."""
    import warnings

    from matplotlib_venn import venn2, venn2_circles, venn3, venn3_circles

    colors = ("#1f77b4", "#ff7f0e", "#2ca02c")
    panel.suptitle(_wrap(title, TITLE_CHARS), fontsize=9)
    ax = panel.subplots()
    shown = [i for i, s in enumerate(sets) if s]
    empty = [" ".join(labels[i].split("\n")[:-1]) for i, s in enumerate(sets) if not s]
    if empty:
        ax.text(0.5, -0.02, "no errors: " + ", ".join(empty), ha="center", va="top", fontsize=8, transform=ax.transAxes)
    if len(shown) < 2:
        if shown:
            ax.text(
                0.5, 0.5, labels[shown[0]], ha="center", va="center", fontsize=8, color=colors[shown[0]], transform=ax.transAxes
            )
        ax.set_axis_off()
        return
    subsets, names, cols = [sets[i] for i in shown], [labels[i] for i in shown], [colors[i] for i in shown]
    venn, circles = (venn3, venn3_circles) if len(shown) == 3 else (venn2, venn2_circles)
    with warnings.catch_warnings():  # matplotlib-venn warns when exact areas cannot be laid out
        warnings.simplefilter("ignore", UserWarning)
        diagram = venn(subsets, set_labels=names, ax=ax, set_colors=cols, alpha=0.4)
        for circle, color in zip(circles(subsets, ax=ax, linewidth=1.6), cols, strict=True):
            circle.set_edgecolor(color)
    for text, color in zip(diagram.set_labels, cols, strict=True):
        if text is not None:
            text.set_fontsize(8)
            text.set_color(color)
            text.set_bbox({"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1})
    for text in diagram.subset_labels:
        if text is not None:
            text.set_fontsize(8)
            text.set_visible(text.get_text() != "0")


def _pair_rows(eval_set: str, members: list[TrialView], errors: dict[str, np.ndarray]) -> list[dict[str, object]]:
    rows = []
    for a in members:
        for b in members:
            if a.id == b.id:
                continue
            jac, share = overlap(errors[a.id], errors[b.id])
            both = len(np.intersect1d(errors[a.id], errors[b.id]))
            rows.append(
                {
                    "eval_set": eval_set,
                    "a": a.id,
                    "b": b.id,
                    "label_a": a.label,
                    "label_b": b.label,
                    "group_a": a.group,
                    "group_b": b.group,
                    "seed_a": a.seed,
                    "seed_b": b.seed,
                    "fold_a": a.fold,
                    "fold_b": b.fold,
                    "same_init": same_init(a, b),
                    # between two groups a pair of the same seed and fold counts (a student and its teacher's run),
                    # within one group a pair of distinct ones (as the tables average; the claims' tests read these)
                    "within": (a.seed, a.fold) != (b.seed, b.fold),
                    "between": (a.seed, a.fold) == (b.seed, b.fold),
                    "errors_a": len(errors[a.id]),
                    "errors_b": len(errors[b.id]),
                    "both": both,
                    "jaccard": jac,
                    "share_of_b_in_a": share,
                }
            )
    return rows


def _run_of(pairs: pd.DataFrame, side: str) -> pd.Series:
    """The (seed, fold) of one side of each pair; fold -1 without folds."""
    fold = pairs[f"fold_{side}"].fillna(-1) if f"fold_{side}" in pairs else pd.Series(-1, index=pairs.index)
    return pd.Series(list(zip(pairs[f"seed_{side}"], fold, strict=True)), index=pairs.index, dtype=object)


def _cells(pairs: pd.DataFrame, groups: Sequence[str]) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """Each (row group, column group) with its pairs, where it has any: of the same seed and fold between two groups,
    of distinct ones within one group."""
    same = _run_of(pairs, "a") == _run_of(pairs, "b")
    for ga in groups:
        for gb in groups:
            sel = pairs[(pairs["group_a"] == ga) & (pairs["group_b"] == gb) & (~same if ga == gb else same)]
            if len(sel):
                yield ga, gb, sel


def pair_units(pairs: pd.DataFrame, groups: Sequence[str]) -> pd.DataFrame:
    """The units of :func:`group_pair_tables`: one row per (row group, column group, model of the row group) with the
    model's mean Jaccard and mean share of the column trial's errors it also makes, over its pairs of the cell
    (:func:`_cells`), and how many pairs that was."""
    if "a" not in pairs:  # pairs without trial ids: a model is its group's run (seed, fold)
        pairs = pairs.assign(a=_run_of(pairs, "a").map(str))
    columns = ["group", "column", "trial", "label", "seed", "fold", "jaccard", "share_of_b_in_a", "pairs"]
    rows = []
    for ga, gb, sel in _cells(pairs, groups):
        means = {k: unit_means(zip(sel["a"], sel[k].astype(float), strict=True)) for k in ("jaccard", "share_of_b_in_a")}
        for tid, r in sel.drop_duplicates("a").set_index("a").iterrows():
            values = [means[k].get(tid, (float("nan"), 0))[0] for k in means]
            n = int((sel["a"] == tid).sum())
            rows.append([ga, gb, tid, r.get("label_a", tid), r["seed_a"], r.get("fold_a"), *values, n])
    return pd.DataFrame(rows, columns=columns)


def group_pair_tables(
    pairs: pd.DataFrame, groups: Sequence[str], digits: int = 3, interval: str = "std"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (row group, column group): ``mean ± std (n models)`` of the Jaccard and of the share of the column trial's
    errors the row trial also makes, over the row group's models, each model's pairs averaged first
    (:func:`pair_units`: pairs of the same seed and fold between groups, distinct seeds or folds within a group);
    std with ddof 1 (:mod:`kdtune.results.stats`)."""
    jac = pd.DataFrame(index=pd.Index(list(groups), name="group"), columns=list(groups), dtype=object)
    share = jac.copy()
    units = pair_units(pairs, groups)
    for ga in groups:
        for gb in groups:
            sel = units[(units["group"] == ga) & (units["column"] == gb)]
            jac.loc[ga, gb] = cell(sel["jaccard"].to_numpy(float), digits, interval)
            share.loc[ga, gb] = cell(sel["share_of_b_in_a"].to_numpy(float), digits, interval)
    return jac, share


def shared_init_cells(pairs: pd.DataFrame, groups: Sequence[str]) -> list[str]:
    """``row × column`` of the table cells (pairs of the same seed and fold, as :func:`group_pair_tables` averages)
    whose pairs share their initialisation: with one seed per initialisation, a cell's pairs all do or none does."""
    out = []
    for ga, gb, sel in _cells(pairs, groups):
        if bool(sel["same_init"].all()):
            out.append(f"{ga} × {gb}")
        elif bool(sel["same_init"].any()):
            out.append(f"{ga} × {gb} ({int(sel['same_init'].sum())} of {len(sel)} pairs)")
    return out


@ANALYSES.register("errors")
def errors(view: RunView, out: Path) -> Output:
    """Error sets per trial and eval set: Venn diagrams of representative trios and pairwise overlap tables."""
    import matplotlib.pyplot as plt

    result = Output("errors", "Error overlap (Abnar et al., appendix E)")
    eval_sets = ordered_eval_sets(view)
    if len(eval_sets) > MAX_EVAL_SETS:
        result.notes.append(f"Eval set {eval_sets[0]} only (the first of {len(eval_sets)}); choose others with --eval-set.")
        eval_sets = eval_sets[:1]
    if len(view.trials) < 2:
        result.skipped.append(f"all: {len(view.trials)} trial(s); error overlap needs two")
        return result
    trials = run_trials(view)
    trios, missing = venn_trios(view, trials)
    result.skipped += missing
    all_rows: list[dict[str, object]] = []
    units: list[pd.DataFrame] = []
    for e in eval_sets:
        members = ordered_trials(view)
        ref_labels: np.ndarray | None = None
        errors_of: dict[str, np.ndarray] = {}
        for t in {t.id: t for t in members + [m for _, ms, _ in trios for m in ms]}.values():
            arrays = view.outputs(t.id)
            if f"probs__{e}" not in arrays:
                result.skipped.append(f"{e}: {t.label} has no stored probabilities on it")
                continue
            if ref_labels is None:
                ref_labels = arrays[f"labels__{e}"]
            elif not np.array_equal(ref_labels, arrays[f"labels__{e}"]):
                result.skipped.append(f"{e}: {t.label} was evaluated on other examples (labels differ); left out")
                continue
            errors_of[t.id] = error_set(arrays[f"probs__{e}"], arrays[f"labels__{e}"])
        n = 0 if ref_labels is None else len(ref_labels)
        members = [t for t in members if t.id in errors_of]
        rows = _pair_rows(e, members, errors_of)
        all_rows += rows
        if rows:
            groups = list(dict.fromkeys(t.group for t in members))
            frame = pd.DataFrame(rows)
            jac, share = group_pair_tables(frame, groups)
            units.append(pair_units(frame, groups).assign(eval_set=e))
            shared = shared_init_cells(frame, groups)
            if shared:
                result.notes.append(
                    f"{e}: the pairs of these cells started from the same initial weights (students of one seed, "
                    f"whatever their teacher), so their overlap owes to the shared start too: {'; '.join(shared)}. "
                    "In every other cell no pair did (same_init in pairs.csv)."
                )
            for stem, table, what in (
                (f"jaccard__{safe_stem(e)}", jac, "Jaccard of the error sets |A∩B|/|A∪B|"),
                (f"shared__{safe_stem(e)}", share, "share of the column's errors the row also makes |A∩B|/|B|"),
            ):
                title = (
                    f"{e} ({n} examples): {what}; mean ± std (ddof 1) (n models) over the row group's models, each "
                    "model's pairs averaged first (pairs of the same seed; distinct seeds on the diagonal)"
                )
                write_table(table, out, stem, title)
                result.tables.append((title, table))
        panels = [trio for trio in trios if all(m.id in errors_of for m in trio[1])]
        if len(panels) > MAX_PANELS:
            result.notes.append(f"{e}: the first {MAX_PANELS} of {len(panels)} Venn diagrams drawn")
            panels = panels[:MAX_PANELS]
        if not panels:
            result.skipped.append(f"{e}: Venn diagrams: no two or three trials to compare")
            continue
        ncols = min(4, len(panels))
        nrows = -(-len(panels) // ncols)
        fig = plt.figure(figsize=(PANEL_SIZE[0] * ncols, PANEL_SIZE[1] * nrows + 0.5), layout="constrained")
        for panel, (title, ms, roles) in zip(fig.subfigures(nrows, ncols, squeeze=False).flat, panels, strict=False):
            labels = [_venn_label(m, r, len(errors_of[m.id])) for m, r in zip(ms, roles, strict=True)]
            _draw_venn(panel, [set(errors_of[m.id].tolist()) for m in ms], labels, title)
        fig.suptitle(f"Misclassified examples of {e} ({n} examples): overlap of error sets (areas ∝ counts)", fontsize=11)
        result.figures.append(save_figure(fig, out, f"venn__{safe_stem(e)}"))
    if all_rows:
        pd.DataFrame(all_rows).to_csv(out / "error_pairs.csv", index=False)
        result.notes.append("error_pairs.csv: every ordered pair of trials per eval set (error counts, both, Jaccard, share).")
    if units:
        frame = pd.concat(units, ignore_index=True)
        frame[["eval_set", *frame.columns[:-1]]].to_csv(out / "error_units.csv", index=False)
        result.notes.append(
            units_note(
                "a model of the row group: the mean over its pairs with the column group's models of the same seed and "
                "fold, on the diagonal with the group's other seeds",
                "error_units.csv",
                "error_pairs.csv",
            )
        )
    return result
