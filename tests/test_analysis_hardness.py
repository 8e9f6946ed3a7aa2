"""Student vs teacher probability of the true class (kdtune.analysis.hardness): binning by hand, pairing,
and the training split's probabilities from the checkpoints of a tiny run."""

from __future__ import annotations

import numpy as np
import pytest

from kdtune.analysis.hardness import TrainProbs, hardness, hardness_bins, true_class_probs
from tests.test_analysis_errors import FakeView, trial


def test_true_class_probs_pick_each_examples_label():
    probs = np.array([[0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert true_class_probs(probs, np.array([1, 0, 0])).tolist() == pytest.approx([0.8, 0.6, 0.3])


def test_bins_of_the_teachers_probability_hold_mean_teacher_and_student_p():
    teacher = np.array([0.05, 0.15, 0.12, 0.95, 1.0, 0.1])
    student = np.array([0.1, 0.3, 0.2, 0.9, 0.8, 0.4])
    table = hardness_bins(teacher, student, n_bins=10)  # [b/10, (b+1)/10), 1.0 in the last bin
    full = table[table["examples"] > 0]
    assert full.index.tolist() == [0, 1, 9]
    assert full["examples"].tolist() == [1, 3, 2]
    assert full["teacher_p"].tolist() == pytest.approx([0.05, (0.15 + 0.12 + 0.1) / 3, 0.975])
    assert full["student_p"].tolist() == pytest.approx([0.1, (0.3 + 0.2 + 0.4) / 3, 0.85])
    assert len(hardness_bins(teacher, student, n_bins=20)) == 20


def test_hardness_pairs_students_with_their_teachers_and_from_data_twins(tmp_path):
    y = np.array([0, 1, 0, 1])

    def arrays(p_true):  # two classes: p(true) as given
        p = np.where(y[:, None] == np.arange(2), np.array(p_true)[:, None], 1 - np.array(p_true)[:, None])
        return {"probs__test": p, "labels__test": y}

    stored = {
        "t0": arrays([0.05, 0.15, 0.95, 0.95]),
        "s0": arrays([0.1, 0.3, 0.9, 0.7]),
        "d0": arrays([0.5, 0.5, 0.99, 0.99]),
        "d1": arrays([0.2, 0.2, 0.2, 0.2]),
    }
    ts = [trial("t0", "CNN", "data", 0), trial("d0", "MLP", "data", 0), trial("d1", "MLP", "data", 1)]
    ts.append(trial("s0", "MLP", "CNN", 0, "t0"))
    out = hardness(FakeView(ts, stored, ["test"]), tmp_path)
    assert any(s.startswith("train: ") and "no data in a fake view" in s for s in out.skipped)  # no checkpoints here
    assert [p.name for p in out.figures] == ["hardness__test.png"]
    ((_, table),) = out.tables
    rows = table.loc["MLP ← CNN"]
    assert rows.index.tolist() == ["0.00–0.10", "0.10–0.20", "0.90–1.00"]
    assert rows["examples"].tolist() == [1, 1, 2]
    assert rows["distilled student p"].tolist() == ["0.100", "0.300", "0.800"]
    assert rows["from-data student p"].tolist() == ["0.500", "0.500", "0.990"]  # d0: same seed as s0
    assert "MLP ← CNN s0 ↔ MLP (data) s0" in out.notes[0]


def test_training_split_probabilities_come_from_the_checkpoints(tiny_raw, tmp_path):
    import torch

    from kdtune.analysis import RunView
    from kdtune.plan import make_plan
    from kdtune.run.execute import InlineExecutor, execute
    from kdtune.run.ledger import write_sweep_record
    from kdtune.rundir import trial_dir
    from kdtune.spec.sweepfile import parse_sweep

    tiny_raw["train"]["epochs"], tiny_raw["grid"]["seeds"], tiny_raw["data"]["eval_sets"] = 1, 1, ["test"]
    plan = make_plan(parse_sweep(tiny_raw, "tiny.yaml", output=tmp_path / "run"))
    write_sweep_record(plan)
    assert execute(plan, InlineExecutor(), log=lambda s: None) == {}
    view = RunView(tmp_path / "run")
    teacher = next(t for t in view.trials if t.student == "CNN")
    got = TrainProbs(view)(teacher)
    (cache,) = trial_dir(view.run_dir, teacher.id).glob("train_logits-*.npy")  # what the students were taught with
    y = view.data(teacher).train.y.numpy()
    expected = torch.softmax(torch.as_tensor(np.load(cache)).double(), -1).numpy()[np.arange(len(y)), y]
    assert got == pytest.approx(expected, abs=1e-5)
    out = hardness(view, tmp_path / "out")
    assert [p.name for p in out.figures] == ["hardness__train.png", "hardness__test.png"]
    assert out.skipped == []
    train = out.tables[0][1]
    assert train["examples"].sum() == len(y)  # one seed: every training example once


def test_groups_that_differ_by_temperature_get_a_panel_each(tmp_path):
    from dataclasses import replace

    y = np.array([0, 1, 0, 1])
    p = np.where(y[:, None] == np.arange(2), 0.8, 0.2)
    stored = {tid: {"probs__test": p, "labels__test": y} for tid in ("t0", "d0", "s1", "s4")}
    ts = [trial("t0", "CNN", "data", 0), trial("d0", "MLP", "data", 0)]
    ts += [replace(trial(tid, "MLP", "CNN", 0, "t0"), detail=f"τ={tau}") for tid, tau in (("s1", 1), ("s4", 4))]
    out = hardness(FakeView(ts, stored, ["test"]), tmp_path)
    assert [p.name for p in out.figures] == ["hardness__test.png"]
    ((_, table),) = out.tables
    assert list(dict.fromkeys(table.index.get_level_values("group"))) == ["MLP ← CNN τ=1", "MLP ← CNN τ=4"]


def test_panels_titles_and_labels_clear_of_the_other_panels_teacher_labelled_as_the_teacher(tmp_path, monkeypatch):
    """Four configurations of MLP ← CNN (τ × w_hard): a panel each, in the table's order; no panel's title or
    axis label overlaps another panel (renderer boxes, as saved); the x-label names the teacher's own group,
    the student's KD settings stay in the student's title."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from kdtune.analysis import hardness as hardness_module
    from tests.test_analysis_groups import CONFIGS, _capture, four_configs

    figures = _capture(monkeypatch, hardness_module)
    out = hardness(four_configs(), tmp_path)
    ((_, table),) = out.tables
    groups = list(dict.fromkeys(table.index.get_level_values("group")))
    assert groups == [f"MLP ← CNN τ={tau} w_hard={w}" for tau, w in CONFIGS]
    (fig,) = figures
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    axes = fig.get_axes()
    panels = [axes[i : i + 2] for i in range(0, len(axes), 2)]  # (curves, examples per bin), as drawn
    assert len(panels) == len(groups)

    def texts(panel):
        own = [t for ax in panel for t in (ax.title, ax.xaxis.label, ax.yaxis.label) if t.get_text()]
        sub = panel[0].get_figure(root=False)
        return own + ([sub._suptitle] if sub is not fig and sub._suptitle is not None else [])

    titles = []
    for i, panel in enumerate(panels):
        mine = texts(panel)
        title = next(t for t in mine if t.get_text().startswith("MLP ← CNN"))
        titles.append(title.get_text().replace("\n", " "))
        (xlabel,) = [ax.xaxis.label.get_text() for ax in panel if ax.xaxis.label.get_text()]
        assert xlabel.replace("\n", " ") == "teacher p(true class) teacher: CNN (data)"  # the teacher's own group
        assert "τ" not in xlabel and "w_hard" not in xlabel  # the student's settings are not the teacher's
        for text in mine:
            box = text.get_window_extent(renderer)
            assert box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y0 >= 0 and box.y1 <= fig.bbox.height, text.get_text()
            for j, other in enumerate(panels):
                if j == i:
                    continue
                for target in [*other, *texts(other)]:  # the other panel's axes and its texts
                    assert not box.overlaps(target.get_window_extent(renderer)), (text.get_text(), j)
    assert [t.split(" (")[0] for t in titles] == groups  # one panel per group of the table, in its order


def test_the_from_data_curve_is_of_the_students_own_configuration(tmp_path):
    """Students from data in two lrs: a student distilled at lr 0.003 is compared with the one from data at 0.003
    (not the lower id), and both configurations of the distilled student with their own."""
    from dataclasses import replace

    y = np.array([0, 1, 0, 1])

    def arrays(p_true):
        p = np.where(y[:, None] == np.arange(2), np.array(p_true)[:, None], 1 - np.array(p_true)[:, None])
        return {"probs__test": p, "labels__test": y}

    stored = {"t0": arrays([0.95] * 4), "a0": arrays([0.2] * 4), "b0": arrays([0.6] * 4)}
    stored |= {"sa": arrays([0.5] * 4), "sb": arrays([0.5] * 4)}
    ts = [trial("t0", "CNN", "data", 0)]
    ts += [replace(trial(tid, "MLP", "data", 0), detail=f"lr={lr}") for tid, lr in (("a0", 0.01), ("b0", 0.003))]
    ts += [replace(trial(tid, "MLP", "CNN", 0, "t0"), detail=f"lr={lr}") for tid, lr in (("sb", 0.003), ("sa", 0.01))]
    view = FakeView(ts, stored, ["test"])
    view.results["lr"] = view.results["trial_id"].map({"t0": 0.003, "a0": 0.01, "b0": 0.003, "sa": 0.01, "sb": 0.003})
    out = hardness(view, tmp_path)
    ((_, table),) = out.tables
    assert table.loc[("MLP ← CNN lr=0.003", "0.90–1.00"), "from-data student p"] == "0.600"  # b0, lr 0.003
    assert table.loc[("MLP ← CNN lr=0.01", "0.90–1.00"), "from-data student p"] == "0.200"  # a0, lr 0.01
    assert "MLP ← CNN lr=0.003 s0 ↔ MLP (data) lr=0.003 s0" in out.notes[0]
