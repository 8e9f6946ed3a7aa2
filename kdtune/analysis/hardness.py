"""Hardness (student-teacher deviations paper, section 3.1, figure 1a): per example, the teacher's probability
of the true class against the student's, binned by the teacher's; distilled students against students of
the same architecture and seed trained from data. On the training split (probabilities computed from the
checkpoints) and on every eval set (stored probabilities)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kdtune.analysis import ANALYSES, Output, RunView, TrialView, save_figure, write_table
from kdtune.analysis.calibration import binned_means
from kdtune.analysis.errors import _order, from_data_twin, ordered_eval_sets, ordered_groups, run_trials, safe_stem
from kdtune.errors import KdtuneError

N_BINS = 10
TRAIN = "train"
BATCH_SIZE = 512


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

        from kdtune.tasks import task_for

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


def _curves(view: RunView, source: str, get, trials: dict[str, TrialView], skipped: list[str]) -> dict[str, dict[str, object]]:
    """Per distilled group: the binned curves (distilled, from data) pooled over its seeds, and which twins were used."""
    out: dict[str, dict[str, object]] = {}
    for name, group in ordered_groups(view).items():
        if group[0].teacher == "data":
            continue
        pairs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"distilled": [], "from data": []}
        twins: list[str] = []
        for student in group:
            teacher = trials.get(student.config.teacher_id or "")
            if teacher is None:
                skipped.append(f"{source}: {student.label}: its teacher is not a finished trial of this run")
                continue
            t_p = get(teacher)
            if isinstance(t_p, str):
                skipped.append(f"{source}: {t_p}")
                continue
            twin = from_data_twin(trials, student, avoid=[teacher.id])
            for kind, model in (("distilled", student), ("from data", twin)):
                if model is None:
                    skipped.append(f"{source}: {student.label}: no student {student.student} trained from data to compare")
                    continue
                s_p = get(model)
                if isinstance(s_p, str):
                    skipped.append(f"{source}: {s_p}")
                elif len(s_p) != len(t_p):
                    skipped.append(f"{source}: {model.label} and its teacher saw different numbers of examples")
                else:
                    pairs[kind].append((t_p, s_p))
                    if kind == "from data":
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


def _figure(curves: dict[str, dict[str, object]], students: list[str], teachers: list[str], title: str):
    import matplotlib.pyplot as plt

    rows = [s for s in students if any(n.startswith(f"{s} ←") for n in curves)]
    suffixes = list(dict.fromkeys(n.split(" ← ", 1)[1] for n in curves))  # "CNN", or "CNN τ=4" when settings vary
    cols = [x for k in teachers for x in suffixes if x == k or x.startswith(f"{k} ")]
    height = 4.1 * len(rows) + 1.5
    fig = plt.figure(figsize=(3.6 * len(cols), height))
    outer = fig.add_gridspec(len(rows), len(cols), hspace=0.45, wspace=0.3, top=1 - 1.5 / height, bottom=0.4 / height)
    style = {"distilled": ("#c44e52", "o", "-"), "from data": ("#4c72b0", "s", "--")}
    handles = None
    for i, s in enumerate(rows):
        for j, k in enumerate(cols):
            name = f"{s} ← {k}"
            if name not in curves:
                continue
            inner = outer[i, j].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.08)
            ax, ax_n = fig.add_subplot(inner[0]), fig.add_subplot(inner[1])
            ax.plot([0, 1], [0, 1], ls=":", color="0.4", lw=1, label="student = teacher")
            for kind, table in curves[name]["curves"].items():
                full = table[table["examples"] > 0]
                color, marker, ls = style[kind]
                label = "student distilled from the teacher" if kind == "distilled" else "student from data"
                ax.plot(full["teacher_p"], full["student_p"], marker=marker, ls=ls, color=color, ms=4, label=label)
            n = curves[name]["seeds"]
            ax.set(xlim=(0, 1), ylim=(0, 1.02), ylabel="student p(true class)")
            ax.set_title(f"{name} ({n} seed{'s' * (n != 1)} pooled)", fontsize=9)
            ax.tick_params(labelbottom=False)
            dist = curves[name]["curves"]["distilled"]
            full = dist[dist["examples"] > 0]
            ax_n.bar(full["lo"], full["examples"], width=1 / len(dist), align="edge", color="0.6", edgecolor="black", lw=0.6)
            ax_n.set_yscale("log")
            _log_ticks(ax_n)
            ax_n.set(xlim=(0, 1), ylim=(0.7, None), xlabel=f"teacher p(true class) ({k})", ylabel="examples")
            handles = ax.get_legend_handles_labels()
    fig.suptitle(title, y=1 - 0.12 / height)
    if handles:
        fig.legend(
            *handles, loc="upper center", ncol=len(handles[1]), frameon=False, bbox_to_anchor=(0.5, 1 - 0.62 / height), fontsize=9
        )
    return fig


def _log_ticks(ax) -> None:
    from matplotlib.ticker import LogLocator, NullFormatter

    ax.yaxis.set_major_locator(LogLocator(base=10, numticks=4))
    ax.yaxis.set_minor_formatter(NullFormatter())


@ANALYSES.register("hardness")
def hardness(view: RunView, out: Path) -> Output:
    """Binned student-vs-teacher probability of the true class, on the training split and every eval set."""
    result = Output("hardness", "Student vs teacher probability of the true class (deviations paper, figure 1a)")
    if not any(t.teacher != "data" for t in view.trials):
        result.skipped.append("all: no distilled students among these trials")
        return result
    trials = run_trials(view)
    students, teachers = _order(view, "student"), _order(view, "teacher")
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
        fig = _figure(curves, students, teachers, title)
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
