"""Hardness (student-teacher deviations paper, section 3.1, figure 1a): per example, the teacher's probability
of the true class against the student's, binned by the teacher's; distilled students against students of
the same architecture and seed trained from data. On the training split (probabilities computed from the
checkpoints) and on every eval set (stored probabilities)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kdtune.analysis import ANALYSES, Output, RunView, TrialView, cell_settings, same_setting, save_figure, write_table
from kdtune.analysis.calibration import binned_means, examples_panel
from kdtune.analysis.overlap import _wrap, from_data_twin, ordered_eval_sets, ordered_groups, run_trials, safe_stem
from kdtune.errors import KdtuneError

N_BINS = 10
TRAIN = "train"
BATCH_SIZE = 512
PANEL_SIZE = (3.9, 4.6)  # inches per panel (the curves over the examples per bin)
MAX_COLS = 4  # panels per row
HEADER = 1.2  # inches above the panels for the figure's title and legend
TITLE_CHARS = 40  # a panel's title and x-label are wrapped to lines of at most this many characters (9 pt fits a panel)


def true_class_probs(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``p(y_i | x_i)``: each example's probability of its label."""
    p = np.asarray(probs)
    return p[np.arange(len(p)), np.asarray(labels)].astype(np.float64)


def hardness_bins(teacher_p: np.ndarray, student_p: np.ndarray, n_bins: int = N_BINS) -> pd.DataFrame:
    """Per bin ``[b/n, (b+1)/n)`` of the teacher's probability (the last closed): examples, mean teacher p, mean student p."""
    t, s = np.asarray(teacher_p, dtype=np.float64), np.asarray(student_p, dtype=np.float64)
    b = np.clip(np.floor(t * n_bins).astype(int), 0, n_bins - 1)
    return binned_means(b, n_bins, {"teacher_p": t, "student_p": s})


class TrainProbs:
    """Probabilities of the true class on a trial's training split, from its checkpoint; cached per trial."""

    def __init__(self, view: RunView) -> None:
        import torch

        self.view = view
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self._probs: dict[str, np.ndarray | str] = {}
        self._data: dict[object, object] = {}

    def __call__(self, trial: TrialView) -> np.ndarray | str:
        """The array, or why it cannot be had (a string)."""
        if trial.id not in self._probs:
            try:
                self._probs[trial.id] = self._compute(trial)
            except (KdtuneError, OSError, RuntimeError) as e:
                self._probs[trial.id] = f"{trial.label}: {e}"
        return self._probs[trial.id]

    def _compute(self, trial: TrialView) -> np.ndarray | str:
        import torch

        from kdtune.train.tasks import task_for

        key = (trial.config.data, trial.config.data_fingerprint)
        if key not in self._data:
            self._data[key] = self.view.data(trial)
        data = self._data[key]
        if data.info.task != "classification":
            return f"{trial.label}: task {data.info.task} has no class probabilities on training examples"
        model = self.view.model(trial, self.device)
        train = data.train.to(self.device)
        logits, _ = task_for(data.info).predict(model, train, BATCH_SIZE)
        probs = torch.softmax(logits.double(), -1).cpu().numpy()
        return true_class_probs(probs, train.y.cpu().numpy())


def _stored(view: RunView, trial: TrialView, e: str) -> np.ndarray | str:
    arrays = view.outputs(trial.id)
    if f"probs__{e}" not in arrays:
        return f"{trial.label}: no stored probabilities on {e}"
    return true_class_probs(arrays[f"probs__{e}"], arrays[f"labels__{e}"])


def _same_config(view: RunView, trials: dict[str, TrialView], student: TrialView) -> dict[str, TrialView]:
    """``trials`` less the students from data of ``student``'s label whose settings differ from its own in a setting
    that tells their configurations apart (``MLP (data) lr=0.01`` and ``lr=0.003``: the one of the student's lr),
    so its from-data curve is one configuration's; all of them where none is in the student's configuration."""
    rows = view.results.drop_duplicates("trial_id").set_index("trial_id", drop=False)
    mine = [i for i, t in trials.items() if t.teacher == "data" and t.student == student.student and i in rows.index]
    if len(mine) < 2 or student.id not in rows.index:
        return trials
    keys = cell_settings(rows.loc[mine].reset_index(drop=True))
    same = [i for i in mine if all(same_setting(rows.at[i, k], rows.at[student.id, k]) for k in keys)]
    if not same:
        return trials
    return {i: t for i, t in trials.items() if i not in mine or i in same}


def _curves(view: RunView, source: str, get, trials: dict[str, TrialView], skipped: list[str]) -> dict[str, dict[str, object]]:
    """Per distilled group of the view (one configuration each): the binned curves (distilled, from data) pooled
    over its seeds, which twins were used, and its teachers' own groups (``CNN (data)``, ``CNN (data) lr=0.01``)."""
    out: dict[str, dict[str, object]] = {}
    for name, group in ordered_groups(view).items():
        if group[0].teacher == "data":
            continue
        pairs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"distilled": [], "from data": []}
        twins: list[str] = []
        teachers: list[str] = []
        for student in group:
            # a probability array, or why there is none (a string)
            teacher = trials.get(student.config.teacher_id or "")
            t_p = f"{student.label}: its teacher is not a finished trial of this run" if teacher is None else get(teacher)
            if isinstance(t_p, str):
                skipped.append(f"{source}: {t_p}")
                continue
            twin = from_data_twin(_same_config(view, trials, student), student, avoid=[teacher.id])
            for kind, model in (("distilled", student), ("from data", twin)):
                none = f"{student.label}: no student {student.student} trained from data to compare"
                s_p = none if model is None else get(model)
                if isinstance(s_p, str):
                    skipped.append(f"{source}: {s_p}")
                elif len(s_p) != len(t_p):
                    skipped.append(f"{source}: {model.label} and its teacher saw different numbers of examples")
                else:
                    pairs[kind].append((t_p, s_p))
                    if kind == "distilled":
                        teachers.append(teacher.group)
                    else:
                        twins.append(f"{student.label} ↔ {model.label}")
        if pairs["distilled"]:
            out[name] = {
                "curves": {
                    kind: hardness_bins(np.concatenate([p[0] for p in ps]), np.concatenate([p[1] for p in ps]))
                    for kind, ps in pairs.items()
                    if ps
                },
                "seeds": len(pairs["distilled"]),
                "twins": twins,
                "teachers": list(dict.fromkeys(teachers)),
            }
    return out


def _table(curves: dict[str, dict[str, object]]) -> pd.DataFrame:
    rows = []
    for name, c in curves.items():
        dist = c["curves"]["distilled"]
        data = c["curves"].get("from data")
        for b, r in dist.iterrows():
            if r["examples"] == 0:
                continue
            row = {
                "group": name,
                "teacher p bin": f"{r['lo']:.2f}–{r['hi']:.2f}",
                "examples": int(r["examples"]),
                "mean teacher p": f"{r['teacher_p']:.3f}",
                "distilled student p": f"{r['student_p']:.3f}",
                "from-data student p": "–" if data is None or data.loc[b, "examples"] == 0 else f"{data.loc[b, 'student_p']:.3f}",
            }
            rows.append(row)
    return pd.DataFrame(rows).set_index(["group", "teacher p bin"])


def _figure(curves: dict[str, dict[str, object]], title: str):
    """One panel per group, in the table's order (rows of at most :data:`MAX_COLS`): the student's p against
    the teacher's, above the examples per bin. Each panel is a subfigure whose title (the student's group, its
    settings included) and x-label (the teacher's own group) are wrapped, under a constrained layout, so no text
    reaches a neighbouring panel."""
    import matplotlib.pyplot as plt

    names = list(curves)
    ncols = min(MAX_COLS, len(names))
    nrows = -(-len(names) // ncols)
    fig = plt.figure(figsize=(PANEL_SIZE[0] * ncols, PANEL_SIZE[1] * nrows + HEADER), layout="constrained")
    header, body = fig.subfigures(2, 1, height_ratios=[HEADER, PANEL_SIZE[1] * nrows])  # title and legend; the panels
    style = {"distilled": ("#c44e52", "o", "-"), "from data": ("#4c72b0", "s", "--")}
    handles = None
    for panel, name in zip(body.subfigures(nrows, ncols, squeeze=False).flat, names, strict=False):
        c = curves[name]
        n = c["seeds"]
        panel.suptitle(_wrap(f"{name}\n({n} seed{'s' * (n != 1)} pooled)", TITLE_CHARS), fontsize=9)
        ax, ax_n = panel.subplots(2, 1, sharex=True, height_ratios=[3, 1])
        ax.plot([0, 1], [0, 1], ls=":", color="0.4", lw=1, label="student = teacher")
        for kind, table in c["curves"].items():
            full = table[table["examples"] > 0]
            color, marker, ls = style[kind]
            label = "student distilled from the teacher" if kind == "distilled" else "student from data"
            ax.plot(full["teacher_p"], full["student_p"], marker=marker, ls=ls, color=color, ms=4, label=label)
        ax.set(xlim=(0, 1), ylim=(0, 1.02), ylabel="student p(true class)")
        ax.tick_params(labelbottom=False)
        examples_panel(ax_n, c["curves"]["distilled"])
        teacher = ", ".join(c["teachers"])
        ax_n.set_xlabel(_wrap(f"teacher p(true class)\nteacher: {teacher}", TITLE_CHARS), fontsize=9)
        handles = ax.get_legend_handles_labels()
    header.suptitle(title)
    if handles:
        header.legend(*handles, loc="lower center", ncol=len(handles[1]), frameon=False, fontsize=9)
    return fig


@ANALYSES.register("hardness")
def hardness(view: RunView, out: Path) -> Output:
    """Binned student-vs-teacher probability of the true class, on the training split and every eval set."""
    result = Output("hardness", "Student vs teacher probability of the true class (deviations paper, figure 1a)")
    if not any(t.teacher != "data" for t in view.trials):
        result.skipped.append("all: no distilled students among these trials")
        return result
    trials = run_trials(view)
    train = TrainProbs(view)
    sources = [(TRAIN, train), *((e, lambda t, e=e: _stored(view, t, e)) for e in ordered_eval_sets(view))]
    twins_note: list[str] = []
    for source, get in sources:
        skipped: list[str] = []
        curves = _curves(view, source, get, trials, skipped)
        result.skipped += list(dict.fromkeys(skipped))
        if not curves:
            continue
        where = "training split (from the checkpoints)" if source == TRAIN else f"{source} set (stored probabilities)"
        title = f"Probability of the true class on the {where}:\nmean student p per bin of the teacher's p"
        fig = _figure(curves, title)
        result.figures.append(save_figure(fig, out, f"hardness__{safe_stem(source)}"))
        table = _table(curves)
        table_title = f"{where}: mean student p(true class) per bin of the teacher's ({N_BINS} bins; seeds pooled)"
        write_table(table, out, f"hardness__{safe_stem(source)}", table_title)
        result.tables.append((table_title, table))
        if not twins_note:
            twins_note = [t for c in curves.values() for t in c["twins"]]
    if twins_note:
        result.notes.append("From-data students compared (distilled ↔ from data): " + "; ".join(twins_note) + ".")
    return result
