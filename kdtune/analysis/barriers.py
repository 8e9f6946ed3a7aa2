"""Performance barriers (Abnar et al., appendix C, figures 8–9): the loss along the straight line between two
checkpoints of the same architecture, θ(λ) = λ·θ₁ + (1−λ)·θ₂, with BatchNorm statistics recomputed at every λ.

The barrier height of a pair is ``max_λ [loss(λ) − (λ·loss(1) + (1−λ)·loss(0))]``: how far the loss rises above
the chord between the two end points. Pairs are grouped by the teachers of the two models, as in figure 9.
"""

from __future__ import annotations

import contextlib
import itertools
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

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
from kdtune.errors import KdtuneError

NUM_LAMBDAS = 25
MAX_PAIRS = 6  # per (teacher of model 1, teacher of model 2) cell and architecture
BATCH_SIZE = 512
# one intra-op thread on a CPU device: the forward passes here are small, and on a shared 2-core machine two threads
# took 5× the CPU time (waiting on each other); ``barriers(..., threads=None)`` keeps torch's setting
CPU_THREADS = 1
NO_TEACHER = "data"
KINDS = ("independent", "same teacher", "different teachers", "student vs independent")


def lambda_grid(n: int = NUM_LAMBDAS) -> np.ndarray:
    """``n`` evenly spaced interpolation coefficients from 0 to 1 (both included)."""
    if n < 2:
        raise ValueError(f"the λ grid needs at least 2 points (0 and 1), got {n}")
    return np.linspace(0.0, 1.0, n)


def interpolate_state(
    theta1: Mapping[str, torch.Tensor], theta2: Mapping[str, torch.Tensor], lam: float
) -> dict[str, torch.Tensor]:
    """``λ·θ₁ + (1−λ)·θ₂`` for every floating-point entry; integer buffers (e.g. ``num_batches_tracked``) from the nearer end."""
    if theta1.keys() != theta2.keys():
        raise ValueError(f"the checkpoints differ in their entries: {sorted(set(theta1) ^ set(theta2))[:5]}")
    out = {}
    for key, a in theta1.items():
        b = theta2[key]
        if a.shape != b.shape:
            raise ValueError(f"{key}: shapes {tuple(a.shape)} and {tuple(b.shape)} differ")
        if a.is_floating_point():
            out[key] = a * lam + b * (1.0 - lam)
        else:
            out[key] = (a if lam >= 0.5 else b).clone()
    return out


def batch_norm_layers(model: nn.Module) -> list[nn.Module]:
    """The model's BatchNorm layers that keep running statistics."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def _batches(n: int, batch_size: int) -> list[slice]:
    """Consecutive slices of at most ``batch_size`` rows; never a last batch of one row (BatchNorm cannot train on it)."""
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return [slice(s, starts[i + 1] if i + 1 < len(starts) else n) for i, s in enumerate(starts)]


def recompute_batch_norm(model: nn.Module, task: Any, split: Any, batch_size: int = BATCH_SIZE) -> None:
    """Reset every BatchNorm's running statistics and recompute them over one pass of ``split`` (cumulative average over
    batches, only the BatchNorm layers in train mode, so dropout stays off); leaves the model in eval mode."""
    from kdtune.train.tasks import batch_inputs

    layers = batch_norm_layers(model)
    model.eval()
    if not layers:
        return
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()  # running mean 0, variance 1, num_batches_tracked 0
        m.momentum = None  # cumulative moving average: every batch weighs the same
        m.train()
    try:
        with torch.no_grad():
            for idx in _batches(len(split), batch_size):
                task.outputs(model, batch_inputs(split.x, idx))
    finally:
        for m, momentum in zip(layers, momenta, strict=True):
            m.momentum = momentum
        model.eval()


def evaluate(model: nn.Module, task: Any, split: Any, batch_size: int = BATCH_SIZE) -> tuple[float, float]:
    """``(loss, accuracy)`` of the model on a split: the task's mean NLL and accuracy, in eval mode without gradients."""
    logits, _ = task.predict(model, split, batch_size)
    scores = task.scores(logits, split)
    return float(scores["nll"]), float(scores["accuracy"])


def interpolation_curve(
    model: nn.Module,
    theta1: Mapping[str, torch.Tensor],
    theta2: Mapping[str, torch.Tensor],
    task: Any,
    train: Any,
    eval_split: Any,
    lambdas: Sequence[float] | np.ndarray | None = None,
    batch_size: int = BATCH_SIZE,
) -> pd.DataFrame:
    """Loss and accuracy on ``eval_split`` of θ(λ) = λ·θ₁ + (1−λ)·θ₂ for each λ (columns ``lam``, ``loss``,
    ``accuracy``), BatchNorm statistics recomputed on ``train`` at every λ; ``model`` is the (overwritten) carrier."""
    lambdas = lambda_grid() if lambdas is None else np.asarray(lambdas, dtype=float)
    rows = []
    for lam in lambdas:
        model.load_state_dict(interpolate_state(theta1, theta2, float(lam)))
        recompute_batch_norm(model, task, train, batch_size)
        loss, acc = evaluate(model, task, eval_split, batch_size)
        rows.append({"lam": float(lam), "loss": loss, "accuracy": acc})
    return pd.DataFrame(rows)


def _at(lambdas: np.ndarray, values: np.ndarray, lam: float) -> float:
    hit = np.flatnonzero(np.isclose(lambdas, lam, rtol=0.0, atol=1e-9))
    if not len(hit):
        raise ValueError(f"the λ grid must contain {lam}")
    return float(values[hit[0]])


def barrier_height(lambdas: Sequence[float] | np.ndarray, losses: Sequence[float] | np.ndarray) -> float:
    """``max_λ [loss(λ) − (λ·loss(1) + (1−λ)·loss(0))]`` over the grid (which must contain 0 and 1)."""
    lam, loss = np.asarray(lambdas, dtype=float), np.asarray(losses, dtype=float)
    if lam.shape != loss.shape or lam.ndim != 1:
        raise ValueError(f"λ and losses must be 1-d of one length, got {lam.shape} and {loss.shape}")
    chord = lam * _at(lam, loss, 1.0) + (1.0 - lam) * _at(lam, loss, 0.0)
    return float(np.max(loss - chord))


def pair_kind(teacher1: str, teacher2: str) -> str:
    """Figure 9's kinds: ``independent`` (both from data), ``same teacher``, ``different teachers`` or ``student vs independent``
    (one from data)."""
    if teacher1 == NO_TEACHER and teacher2 == NO_TEACHER:
        return "independent"
    if NO_TEACHER in (teacher1, teacher2):
        return "student vs independent"
    return "same teacher" if teacher1 == teacher2 else "different teachers"


@dataclass
class Cell:
    """One cell of the grid: the teachers of model 1 (row) and model 2 (column), and the pairs chosen for it.
    The pairs of a cell either all share their initialisation (``same_init``) or none does: a barrier between
    two models that started from the same weights is not comparable with one between two that did not."""

    teacher1: str
    teacher2: str
    pairs: list[tuple[TrialView, TrialView]]
    available: int  # pairs there were before the limit
    same_init: bool
    kind: str  # :func:`pair_kind` of the cell's models' teachers


def architectures(trials: Sequence[TrialView]) -> dict[str, list[TrialView]]:
    """Trials whose checkpoints can be interpolated (same arch, params and data), by a name made of their students' names."""
    by_key: dict[tuple[Any, ...], list[TrialView]] = {}
    for t in trials:
        key = (t.arch, repr(sorted(dict(t.config.params).items())), t.config.data_fingerprint or repr(t.config.data))
        by_key.setdefault(key, []).append(t)
    out: dict[str, list[TrialView]] = {}
    for group in by_key.values():
        name = "/".join(dict.fromkeys(t.student for t in group))
        fold = group[0].fold  # one per group: folds load different data
        name += f" (fold {fold})" if fold is not None else ""
        while name in out:
            name += "'"
        out[name] = group
    return out


def teacher_order(trials: Sequence[TrialView]) -> list[str]:
    """The grid's rows and columns (each trial's :attr:`~TrialView.source`: its teacher, with the settings that tell
    configurations apart): data first, then the students' own architecture (self-distillation), then other teachers."""
    sources = list(dict.fromkeys(t.source for t in trials))
    teacher = {t.source: t.teacher for t in trials}
    students = {t.student for t in trials}
    return sorted(sources, key=lambda x: (teacher[x] != NO_TEACHER, teacher[x] not in students, sources.index(x)))


def choose_pairs(
    candidates: Sequence[tuple[TrialView, TrialView]], max_pairs: int, salt: str = ""
) -> list[tuple[TrialView, TrialView]]:
    """At most ``max_pairs`` of the candidates, drawn by a fixed-seed shuffle (the same run gives the same pairs)."""
    ordered = sorted(candidates, key=lambda p: (p[0].seed, p[1].seed, p[0].id, p[1].id))
    if len(ordered) <= max_pairs:
        return ordered
    rng = np.random.default_rng(zlib.crc32(salt.encode()))
    keep = sorted(rng.choice(len(ordered), size=max_pairs, replace=False).tolist())
    return [ordered[i] for i in keep]


def _shared(a: TrialView, b: TrialView) -> bool:
    return a.config is not None and b.config is not None and same_init(a, b)


def grid_cells(trials: Sequence[TrialView], max_pairs: int = MAX_PAIRS) -> list[Cell]:
    """Figure 9's lower triangle for one architecture: every (row teacher, column teacher ≤ row) with its chosen
    pairs of models that started from different initial weights, and, where there are any, a second cell of the
    pairs that share theirs (at most ``max_pairs`` each)."""
    sources = teacher_order(trials)
    by_source = {k: [t for t in trials if t.source == k] for k in sources}
    cells = []
    for i, s1 in enumerate(sources):
        for s2 in sources[: i + 1]:
            if s1 == s2:
                candidates = list(itertools.combinations(sorted(by_source[s1], key=lambda t: (t.seed, t.id)), 2))
            else:
                candidates = [(a, b) for a in by_source[s1] for b in by_source[s2]]
            kind = pair_kind(by_source[s1][0].teacher, by_source[s2][0].teacher)
            apart = [p for p in candidates if not _shared(*p)]
            shared = [p for p in candidates if _shared(*p)]
            cells.append(Cell(s1, s2, choose_pairs(apart, max_pairs, f"{s1}|{s2}"), len(apart), False, kind))
            if shared:
                cells.append(Cell(s1, s2, choose_pairs(shared, max_pairs, f"{s1}|{s2}|same"), len(shared), True, kind))
    return cells


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def arch_curves(
    view: RunView,
    name: str,
    trials: Sequence[TrialView],
    eval_set: str,
    lambdas: np.ndarray,
    max_pairs: int = MAX_PAIRS,
    device: torch.device | None = None,
) -> tuple[list[Cell], pd.DataFrame]:
    """One architecture's grid cells and the curves of their pairs (one row per pair and λ)."""
    from kdtune.train.tasks import task_for
    from kdtune.train.trainer import load_trained_model

    device = device or _device()
    cells = grid_cells(trials, max_pairs)
    needed = list(dict.fromkeys(t for c in cells for p in c.pairs for t in p))
    if not needed:
        return cells, pd.DataFrame()
    data = view.data(needed[0]).to(device)
    task = task_for(data.info)
    if eval_set not in data.evals:
        raise KdtuneError(f"barriers: eval set {eval_set} is not in the data of {name}")
    states, model = {}, None
    for t in needed:
        model = load_trained_model(view.run_dir, t.id, data.info, device)
        states[t.id] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    assert model is not None
    rows = []
    for c in cells:
        for a, b in c.pairs:
            curve = interpolation_curve(model, states[a.id], states[b.id], task, data.train, data.evals[eval_set], lambdas)
            curve.insert(0, "model", name)
            info = {"teacher1": c.teacher1, "teacher2": c.teacher2, "kind": c.kind,
                    "trial1": a.id, "trial2": b.id, "seed1": a.seed, "seed2": b.seed,
                    "same_init": c.same_init}  # fmt: skip
            for i, (k, v) in enumerate(info.items()):
                curve.insert(1 + i, k, v)
            rows.append(curve)
    return cells, pd.concat(rows, ignore_index=True)


def pair_summary(curves: pd.DataFrame) -> pd.DataFrame:
    """One row per pair: barrier height, accuracy at λ = 0.5 (interpolated if off the grid) and the ends' mean accuracy."""
    keys = ["model", "teacher1", "teacher2", "kind", "trial1", "trial2", "seed1", "seed2", "same_init"]
    rows = []
    for key, g in curves.groupby(keys, sort=False):
        g = g.sort_values("lam")
        lam, loss, acc = g["lam"].to_numpy(), g["loss"].to_numpy(), g["accuracy"].to_numpy()
        rows.append(dict(zip(keys, key, strict=True)) | {
            "barrier": barrier_height(lam, loss),
            "accuracy_mid": float(np.interp(0.5, lam, acc)),
            "accuracy_ends": (_at(lam, acc, 0.0) + _at(lam, acc, 1.0)) / 2,
            "loss_0": _at(lam, loss, 0.0),
            "loss_1": _at(lam, loss, 1.0),
        })  # fmt: skip
    return pd.DataFrame(rows)


MEASURES = {"barrier height": "barrier", "accuracy at λ = 0.5": "accuracy_mid", "accuracy at λ = 0, 1": "accuracy_ends"}
# (a column of the barrier table: the pairs' column of pairs.csv it averages)


def _cell_pairs(pairs: pd.DataFrame, model: str, c: Cell) -> pd.DataFrame:
    """The rows of ``pairs`` (pairs.csv) of one cell: its architecture, teachers and whether they share their init."""
    if not len(pairs):
        return pairs
    sel = pairs[(pairs["model"] == model) & (pairs["teacher1"] == c.teacher1) & (pairs["teacher2"] == c.teacher2)]
    return sel[sel["same_init"].astype(bool) == c.same_init]


def models_of_pairs(sel: pd.DataFrame, within: bool) -> pd.DataFrame:
    """The models of one cell (its units) from its pairs: per model, its mean of each measure (:data:`MEASURES`) over
    its pairs and how many pairs that was. Between two teachers the units are model 1's (the row's) models; within
    one teacher (``within``) a pair counts for both of its models."""
    sides = [("trial1", "seed1")] + ([("trial2", "seed2")] if within else [])
    rows: dict[str, dict[str, object]] = {}
    for trial, seed in sides:
        for t, s in zip(sel[trial], sel[seed], strict=True):
            rows.setdefault(t, {"trial": t, "seed": s})
    for col in MEASURES.values():
        means = unit_means((t, float(v)) for trial, _ in sides for t, v in zip(sel[trial], sel[col], strict=True))
        for t, (value, n) in means.items():
            rows[t] |= {col: value, "pairs": n}
    return pd.DataFrame(list(rows.values()), columns=["trial", "seed", *MEASURES.values(), "pairs"])


def _cell_units(cells_by_model: Mapping[str, Sequence[Cell]], pairs: pd.DataFrame) -> Iterator[tuple[str, Cell, pd.DataFrame]]:
    """Each architecture's cells with their units (:func:`models_of_pairs`)."""
    for model, cells in cells_by_model.items():
        for c in cells:
            yield model, c, models_of_pairs(_cell_pairs(pairs, model, c), c.teacher1 == c.teacher2)


def barrier_units(cells_by_model: Mapping[str, Sequence[Cell]], pairs: pd.DataFrame) -> pd.DataFrame:
    """Every cell's units (:func:`models_of_pairs`) with the cell's keys: the per-model values behind :func:`barrier_table`."""
    frames = []
    for model, c, units in _cell_units(cells_by_model, pairs):
        keys = {"model": model, "teacher1": c.teacher1, "teacher2": c.teacher2, "same_init": c.same_init}
        frames.append(units.assign(**keys)[[*keys, *units.columns]])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def barrier_table(cells_by_model: Mapping[str, Sequence[Cell]], pairs: pd.DataFrame, interval: str = "std") -> pd.DataFrame:
    """Barrier heights and accuracies mean ± std (n models) per (model, teacher of model 1, teacher of model 2, whether
    the pairs share their initialisation): over the cell's models, each model's pairs averaged first
    (:func:`models_of_pairs`; std with ddof 1, :mod:`kdtune.results.stats`). Pairs that share their initialisation and pairs that
    do not are never averaged together."""
    index, rows = [], []
    for model, c, units in _cell_units(cells_by_model, pairs):
        index.append((model, c.teacher1, c.teacher2, "yes" if c.same_init else "no"))
        rows.append({"kind": c.kind, "pairs": f"{len(c.pairs)} of {c.available}"}
                    | {name: cell(units[col].to_numpy(float), 3, interval) for name, col in MEASURES.items()})  # fmt: skip
    names = ["model", "teacher of model 1", "teacher of model 2", "same init"]
    return pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=names))


def plot_grid(name: str, cells: Sequence[Cell], curves: pd.DataFrame, eval_set: str) -> Any:
    """Figure 9's layout for one architecture: rows the teacher of model 1, columns that of model 2, loss over λ per pair."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    teachers = list(dict.fromkeys(c.teacher1 for c in cells))
    n = len(teachers)
    fig, axes = plt.subplots(n, n, figsize=(2.9 * n + 0.6, 2.3 * n + 0.9), sharex=True, sharey="row", squeeze=False)
    colors = plt.get_cmap("tab10").colors
    titles: dict[tuple[int, int], list[str]] = {}
    drawn: dict[tuple[int, int], int] = {}
    for c in cells:
        i, j = teachers.index(c.teacher1), teachers.index(c.teacher2)
        ax = axes[i][j]
        sel = curves[(curves["teacher1"] == c.teacher1) & (curves["teacher2"] == c.teacher2)] if len(curves) else curves
        sel = sel[sel["same_init"].astype(bool) == c.same_init] if len(sel) else sel
        heights = []
        for _, g in sel.groupby(["trial1", "trial2"], sort=False):
            g = g.sort_values("lam")
            k = drawn[(i, j)] = drawn.get((i, j), 0) + 1
            ax.plot(g["lam"], g["loss"], color=colors[(k - 1) % len(colors)], lw=1.3, ls=(0, (4, 2)) if c.same_init else "-")
            heights.append(barrier_height(g["lam"].to_numpy(), g["loss"].to_numpy()))
        what = "same init" if c.same_init else "barrier"
        if heights:
            titles.setdefault((i, j), [c.kind]).append(f"{what} {np.mean(heights):.3g} ({len(heights)} pairs)")
        elif not c.same_init:
            titles.setdefault((i, j), [c.kind]).append("no pairs")
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8, labelleft=True)
    for (i, j), lines in titles.items():
        axes[i][j].set_title("\n".join(lines), fontsize=8.5)
    for i in range(n):
        for j in range(i + 1, n):
            axes[i][j].set_visible(False)
        axes[i][0].set_ylabel(f"model 1 ← {teachers[i]}\n{eval_set} loss", fontsize=9)
        axes[n - 1][i].set_xlabel(f"λ\nmodel 2 ← {teachers[i]}", fontsize=9)
        axes[i][i].tick_params(labelbottom=True)
    title = f"{name}: {eval_set} loss (NLL) of λ·θ₁ + (1−λ)·θ₂  (θ₁ = model 1 at λ = 1, θ₂ = model 2 at λ = 0)"
    if len(curves) and bool(curves["same_init"].any()):
        title += "\ndashed: the two models share their initialisation (students of the same seed); averaged apart"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _eval_set(view: RunView) -> str:
    return "test" if "test" in view.eval_sets else view.eval_sets[0]


def _stem(name: str) -> str:
    return "barriers_" + "".join(ch if ch.isalnum() else "_" for ch in name)


@contextlib.contextmanager
def cpu_threads(n: int | None, device: torch.device) -> Iterator[None]:
    """Run with ``n`` intra-op CPU threads (on a CPU device; ``None``: unchanged), restoring the previous number after."""
    before = torch.get_num_threads()
    if n is not None and device.type == "cpu":
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@ANALYSES.register("barriers")
def barriers(
    view: RunView,
    out: Path,
    num_lambdas: int = NUM_LAMBDAS,
    max_pairs: int = MAX_PAIRS,
    threads: int | None = CPU_THREADS,
    device: str | None = None,
) -> Output:
    """Loss barriers along linear interpolations between pairs of checkpoints of each architecture (figure 9)."""
    result = Output("barriers", "Performance barriers between checkpoints (linear interpolation)")
    archs = architectures(view.trials)
    usable = {k: v for k, v in archs.items() if len(v) >= 2}
    if not usable or not view.eval_sets:
        why = "no eval set" if not view.eval_sets else "no architecture has two finished checkpoints to interpolate between"
        result.skipped.append(why)
        return result
    for name, trials in archs.items():
        if len(trials) < 2:
            result.skipped.append(f"{name}: one checkpoint, no pair to interpolate")
    eval_set, lambdas, start = _eval_set(view), lambda_grid(num_lambdas), time.perf_counter()
    cells_by_model: dict[str, list[Cell]] = {}
    all_curves = []
    dev = torch.device(device) if device else _device()
    for name, trials in usable.items():
        with cpu_threads(threads, dev):
            cells, curves = arch_curves(view, name, trials, eval_set, lambdas, max_pairs, dev)
        cells_by_model[name] = cells
        all_curves.append(curves)
        result.figures.append(save_figure(plot_grid(name, cells, curves, eval_set), out, _stem(name)))
    curves = pd.concat(all_curves, ignore_index=True)
    pairs = pair_summary(curves)
    curves.to_csv(out / "curves.csv", index=False)
    pairs.to_csv(out / "pairs.csv", index=False)
    table = barrier_table(cells_by_model, pairs)
    barrier_units(cells_by_model, pairs).to_csv(out / "units.csv", index=False)
    title = (
        f"Barrier height on {eval_set}: mean ± std (ddof 1) (n models) over model 1's models, each model's pairs averaged first"
    )
    write_table(table, out, "barriers", title)
    result.tables.append((title, table))
    limited = sum(len(c.pairs) < c.available for cells in cells_by_model.values() for c in cells)
    result.notes += [
        f"Eval set: {eval_set} (loss = mean NLL); θ(λ) = λ·θ₁ + (1−λ)·θ₂ on {len(lambdas)} evenly spaced λ from 0 to 1; "
        "model 1 (θ₁, λ = 1) has the row's teacher, model 2 (θ₂, λ = 0) the column's.",
        "Barrier height = max over λ of loss(λ) − (λ·loss(1) + (1−λ)·loss(0)): the rise above the straight line "
        "between the end points (0 when the loss is convex along the path).",
        "BatchNorm statistics are recomputed at every λ (the ends included) on the training split: running statistics "
        f"reset, then one pass in batches of {BATCH_SIZE} with only the BatchNorm layers in train mode (dropout off), "
        "as a cumulative average over batches; so the ends can differ slightly from the trials' stored metrics.",
        f"At most {max_pairs} pairs per cell (chosen by a fixed-seed shuffle when there are more"
        + (f"; {limited} cell(s) were limited" if limited else "; none was")
        + "). kdtune's seed also sets the initialisation: unlike the paper's pairs (one initialisation, different "
        "seeds), pairs of different seeds start from different initialisations, while students of the same seed share "
        "theirs whatever their teacher. Pairs that share their initialisation are averaged apart from those that do "
        "not (column same init; same_init in pairs.csv; dashed in the figures), never together.",
        units_note(
            "a model 1, with the row's teacher: the mean over its pairs in the cell; where both teachers are the same, "
            "each model of a pair",
            "units.csv (trial, seed, its mean barrier and accuracies, its pairs)",
            "pairs.csv",
        ),
        f"Kinds: independent (both trained from data), same teacher (students of one teacher model, "
        "possibly different teacher checkpoints), different teachers, student vs independent. "
        f"Curves in curves.csv, one row per pair in pairs.csv; {time.perf_counter() - start:.1f} s on {dev}.",
    ]
    return result
