"""Every figure of `analyze` shows every group its table shows; Venn titles clear of the panels; the analyze log;
one ECE (the metric's bins) in the calibration analysis and the report."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from kdtune.analysis import Output, RunView, outcome_lines, run_analyses
from kdtune.analysis import calibration as calibration_module
from kdtune.analysis import overlap as errors_module
from kdtune.analysis.calibration import N_BINS, calibration
from kdtune.analysis.overlap import cell, errors
from kdtune.analysis.page import report_tables
from kdtune.train import metrics
from tests import test_analysis_page as page_tests
from tests.test_analysis_errors import FakeView, probs_with_errors, trial

finished_run, registered = page_tests.finished_run, page_tests.registered  # shared fixtures (the tiny sweep, trained)

CONFIGS = [(tau, w) for tau in (2, 10) for w in (0, 0.5)]  # τ × w_hard: four configurations of MLP ← CNN


def four_configs(n: int = 60) -> FakeView:
    """A CNN teacher and MLPs from data (2 seeds), and MLP ← CNN in 4 configurations × 2 seeds."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 3
    ts = [trial("t", "CNN", "data", 0), trial("d0", "MLP", "data", 0), trial("d1", "MLP", "data", 1)]
    for i, (tau, w) in enumerate(CONFIGS):
        for seed in (0, 1):
            ts.append(replace(trial(f"s{i}{seed}", "MLP", "CNN", seed, "t"), detail=f"τ={tau} w_hard={w}"))
    arrays = {}
    for t in ts:
        wrong = set(rng.choice(n, size=int(rng.integers(3, 20)), replace=False).tolist())
        probs = probs_with_errors(labels, wrong) * rng.uniform(0.6, 1.0, (n, 1))
        probs[:, 0] += 1 - probs.sum(1)  # rows sum to 1, confidences spread over the bins
        arrays[t.id] = {"probs__test": probs, "labels__test": labels}
    return FakeView(ts, arrays, ["test"])


def _capture(monkeypatch, module) -> list:
    """The figures ``module`` saves, drawn (so their text has a size) and kept open for inspection."""
    figures = []
    save = module.save_figure

    def keep(fig, out, stem):
        fig.canvas.draw()
        figures.append(fig)
        return save(fig, out, stem)

    monkeypatch.setattr(module, "save_figure", keep)
    return figures


def test_reliability_figure_has_a_panel_per_group_of_its_table(tmp_path, monkeypatch):
    figures = _capture(monkeypatch, calibration_module)
    view = four_configs()
    out = calibration(view, tmp_path)
    ((_, table),) = out.tables
    assert len(table) == 2 + len(CONFIGS)  # CNN (data), MLP (data) and the four MLP ← CNN
    (fig,) = figures
    panels = [ax.get_title().split("\n")[0] for ax in fig.axes if ax.get_title()]
    assert panels == list(table.index)  # one panel each, in the table's order
    assert panels[2:] == [f"MLP ← CNN τ={tau} w_hard={w}" for tau, w in CONFIGS]  # τ=2 before τ=10


def test_venn_figure_has_a_panel_per_distilled_group_and_titles_clear_of_the_other_panels(tmp_path, monkeypatch):
    figures = _capture(monkeypatch, errors_module)
    out = errors(four_configs(), tmp_path)
    assert out.skipped == []
    (fig,) = figures
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # as saved: the layout done
    renderer = canvas.get_renderer()
    axes = [ax for ax in fig.get_axes() if ax.patches]  # the Venn panels (circles)
    titles = [ax.title for ax in axes if ax.get_title()] + [f._suptitle for f in fig.subfigs if f._suptitle is not None]
    texts = [t.get_text().replace("\n", " ") for t in titles]
    for tau, w in CONFIGS:
        assert sum(t.startswith(f"MLP ← CNN τ={tau} w_hard={w}:") for t in texts) == 1, texts
    assert len(axes) == len(titles) == 1 + len(CONFIGS)  # two MLP from data with one CNN, and one per configuration
    for title in titles:
        box = title.get_window_extent(renderer)
        assert box.x0 >= 0 and box.x1 <= fig.bbox.width  # inside the figure
        for other in titles:
            if other is not title:
                assert not box.overlaps(other.get_window_extent(renderer)), (title.get_text(), other.get_text())
        for ax in axes:  # every panel's circles and their labels (its own included) stay clear of the title
            for artist in [*ax.texts, *ax.patches]:
                if artist.get_visible() and artist.get_window_extent(renderer).width > 0:
                    where = artist.get_window_extent(renderer)
                    assert not box.overlaps(where), (title.get_text(), getattr(artist, "get_text", str)())


def test_the_analyze_log_says_what_was_made_and_what_was_left_out():
    made = Output("x", "X", figures=[Path("a.png")], tables=[])
    assert outcome_lines("symmetry", made) == ["symmetry: 1 figure(s), 0 table(s)"]
    made.skipped = ["test: no im in the results"]
    assert outcome_lines("symmetry", made) == ["symmetry: 1 figure(s), 0 table(s); left out:", "  - test: no im in the results"]
    nothing = Output("x", "X", skipped=["all: no distilled students", "b: why"])
    assert outcome_lines("switch", nothing) == [
        "switch: nothing produced; skipped:",
        "  - all: no distilled students",
        "  - b: why",
    ]


def test_run_analyses_logs_no_skip_line_before_or_apart_from_its_figures(tmp_path, registered):
    registered("zz_groups_made", lambda view, out: Output("m", "M", figures=[Path("f.png")], skipped=["e: part"]))
    lines: list[str] = []
    run_analyses(None, tmp_path, ["zz_groups_made"], log=lines.append)  # type: ignore[arg-type]
    assert lines == ["zz_groups_made: 1 figure(s), 0 table(s); left out:", "  - e: part"]


def test_ece_is_the_hand_value_at_15_bins():
    # confidences .95 (right), .55 (wrong), .55 (right), .75 (right); 15 bins of width 1/15:
    # .55 → (8/15, 9/15], .75 → (11/15, 12/15], .95 → (14/15, 1]
    probs = np.array([[0.95, 0.05], [0.55, 0.45], [0.45, 0.55], [0.25, 0.75]])
    labels = np.array([0, 1, 1, 1])
    hand = (2 * abs(0.5 - 0.55) + abs(1 - 0.75) + abs(1 - 0.95)) / 4
    assert metrics.ECE_BINS == N_BINS == 15
    assert metrics.ece(probs, labels) == pytest.approx(hand)
    # a case where 10 and 15 bins differ: .62 and .68 share (0.6, 0.7] but not (9/15, 10/15], (10/15, 11/15]
    probs = np.array([[0.62, 0.38], [0.68, 0.32]])
    labels = np.array([0, 1])
    assert metrics.ece(probs, labels) == pytest.approx((abs(1 - 0.62) + abs(0 - 0.68)) / 2)
    assert metrics.ece(probs, labels, n_bins=10) == pytest.approx(abs(0.5 - 0.65))


def test_calibration_ece_table_equals_the_report(finished_run, tmp_path):
    view = RunView(finished_run)
    out = calibration(view, tmp_path)
    ((title, table),) = out.tables
    (report,) = [t for name, t, _ in report_tables(view.results, ["ece"], ["student", "teacher"], ["eval_set"], None, 3)]
    checked = 0
    for group, trials in view.groups().items():
        t = trials[0]
        for e in view.eval_sets:
            assert table.loc[group, e] == report.loc[(t.student, t.teacher), e], (group, e)
            stored = view.results[(view.results["trial_id"].isin([x.id for x in trials])) & (view.results["eval_set"] == e)]
            assert table.loc[group, e] == cell(stored["ece"].tolist())
            checked += 1
    assert checked >= 4
    assert f"{metrics.ECE_BINS} equal-width" in title
