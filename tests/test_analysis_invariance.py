"""Invariance metric IM (kdtune.analysis.invariance): eq. 3 of the symmetry-invariance paper by hand."""

from __future__ import annotations

import numpy as np
import pytest

from kdtune.analysis.invariance import invariance, invariance_metric, transform_pairs
from kdtune.analysis.overlap import cell
from kdtune.train.data import EvalSetSpec
from tests.test_analysis_errors import FakeView, trial


def test_im_is_zero_for_an_exactly_invariant_model():
    p = np.random.default_rng(0).dirichlet(np.ones(5), size=20)
    assert invariance_metric(p, p.copy()) == 0.0


def test_im_is_the_mean_l1_distance_by_hand():
    p = np.array([[0.5, 0.5], [1.0, 0.0]])
    q = np.array([[0.7, 0.3], [0.0, 1.0]])
    assert invariance_metric(p, q) == pytest.approx((0.4 + 2.0) / 2)
    with pytest.raises(ValueError):
        invariance_metric(p, q[:1])


def test_a_corrupted_eval_set_pairs_with_the_identity_set_of_its_source():
    specs = (
        EvalSetSpec("clean", "test"),
        EvalSetSpec("translated", "test", "translate", (("shift", 1),)),
        EvalSetSpec("scaled", "test", "scale", (("factor", 0.7),)),
        EvalSetSpec("val_shifted", "val", "translate", (("shift", 1),)),  # no identity set of source val
    )
    assert transform_pairs(trial("a", "MLP", "data", 0, eval_sets=specs)) == {"translated": "clean", "scaled": "clean"}


def test_invariance_tabulates_im_per_group_and_skips_unpaired_examples(tmp_path):
    y = np.array([0, 1])
    base = np.array([[0.5, 0.5], [1.0, 0.0]])
    moved = {"a": np.array([[0.7, 0.3], [0.0, 1.0]]), "b": np.array([[0.5, 0.5], [1.0, 0.0]]), "c": base}
    arrays = {
        k: {"probs__test": base, "labels__test": y, "probs__translated": v, "labels__translated": y} for k, v in moved.items()
    }
    arrays["c"]["labels__translated"] = y[::-1].copy()
    ts = [trial("a", "MLP", "data", 0), trial("b", "MLP", "data", 1), trial("c", "MLP", "CNN", 0, "x")]
    out = invariance(FakeView(ts, arrays, ["test", "translated"]), tmp_path)
    ((_, table),) = out.tables
    assert table.columns.tolist() == ["translated vs test"]
    assert table.loc["MLP (data)", "translated vs test"] == cell([1.2, 0.0])
    assert "MLP ← CNN" not in table.index
    assert any("MLP ← CNN s0" in s and "labels differ" in s for s in out.skipped)
    assert (tmp_path / "invariance.md").is_file() and (tmp_path / "invariance_trials.csv").is_file()
