"""Reliability diagrams (kdtune.analysis.calibration): binning and ECE by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kdtune.analysis.calibration import calibration, confidence_bins, reliability
from kdtune.analysis.overlap import cell
from kdtune.train import metrics
from tests.test_analysis_errors import FakeView, trial


def ece_of_bins(table: pd.DataFrame) -> float:
    """ECE from a :func:`reliability` table: ``sum_b n_b/N · |acc_b - conf_b|``."""
    full = table[table["examples"] > 0]
    return float((full["examples"] * (full["accuracy"] - full["confidence"]).abs()).sum() / full["examples"].sum())


# confidences .95 (right), .55 (wrong), .55 (right), .75 (right)
PROBS = np.array([[0.95, 0.05], [0.55, 0.45], [0.45, 0.55], [0.25, 0.75]])
LABELS = np.array([0, 1, 1, 1])


def test_reliability_bins_hold_counts_mean_confidence_and_accuracy():
    table = reliability(PROBS, LABELS, n_bins=10)
    full = table[table["examples"] > 0]
    assert full.index.tolist() == [5, 7, 9]  # (0.5, 0.6], (0.7, 0.8], (0.9, 1.0]
    assert full["examples"].tolist() == [2, 1, 1]
    assert full["confidence"].tolist() == pytest.approx([0.55, 0.75, 0.95])
    assert full["accuracy"].tolist() == [0.5, 1.0, 1.0]
    assert table.loc[0, ["lo", "hi"]].tolist() == [0.0, 0.1] and np.isnan(table.loc[0, "accuracy"])


def test_ece_of_the_bins_is_the_hand_value_and_metrics_ece():
    hand = (2 * abs(0.5 - 0.55) + abs(1 - 0.75) + abs(1 - 0.95)) / 4  # sum_b n_b |acc_b - conf_b| / N
    assert hand == pytest.approx(0.1)
    assert ece_of_bins(reliability(PROBS, LABELS, 10)) == pytest.approx(hand)
    assert metrics.ece(PROBS, LABELS, n_bins=10) == pytest.approx(hand)


def test_bins_are_closed_on_the_right_as_metrics_ece_bins():
    probs = np.array([[0.5, 0.5], [1.0, 0.0], [0.6, 0.4], [0.61, 0.39]])
    assert confidence_bins(probs, 10).tolist() == [4, 9, 5, 6]
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4) * 0.3, size=500)
    y = rng.integers(0, 4, size=500)
    for n in (10, 15):
        assert ece_of_bins(reliability(p, y, n)) == pytest.approx(metrics.ece(p, y, n_bins=n))


def test_calibration_draws_one_figure_per_eval_set_and_tabulates_ece_per_seed(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {}
    for tid in ("a", "b", "c"):
        y = rng.integers(0, 3, size=40)
        arrays[tid] = {
            f"{k}__{e}": v for e in ("test", "translated") for k, v in (("probs", rng.dirichlet(np.ones(3), 40)), ("labels", y))
        }
    ts = [trial("a", "MLP", "data", 0), trial("b", "MLP", "data", 1), trial("c", "MLP", "CNN", 0, "x")]
    out = calibration(FakeView(ts, arrays, ["test", "translated"]), tmp_path)
    assert [p.name for p in out.figures] == ["reliability__test.png", "reliability__translated.png"]
    ((_, table),) = out.tables
    eces = [metrics.ece(arrays[t]["probs__test"], arrays[t]["labels__test"]) for t in "ab"]  # the results' ece
    assert table.loc["MLP (data)", "test"] == cell(eces)
    assert table.loc["MLP ← CNN", "translated"].endswith("(1)")
    assert (tmp_path / "ece.tex").is_file() and (tmp_path / "reliability_bins.csv").is_file()
