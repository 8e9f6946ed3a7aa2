"""Representational similarity (appendix B), linear CKA and debiased CKA against their definitions; the
blockwise m×m matrices against pairwise computations; the analysis on a finished tiny run."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest

from kdtune.analysis import RunView
from kdtune.analysis.similarity import (
    MEASURES,
    distances,
    embed_2d,
    group_table,
    group_units,
    similarity,
    similarity_matrix,
)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def relational_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Appendix B as written, all in memory: the mean over examples of the cosine between the two models'
    rows of example-by-example dot products of L2-normalised features (the oracle the blocks must match)."""
    ga, gb = _unit_rows(_unit_rows(a) @ _unit_rows(a).T), _unit_rows(_unit_rows(b) @ _unit_rows(b).T)
    return float(np.mean(np.sum(ga * gb, axis=1)))


def linear_cka(x: np.ndarray, y: np.ndarray, debiased: bool = False) -> float:
    """Linear CKA of two feature matrices (n × d₁, n × d₂) in feature space (Kornblith et al. 2019);
    ``debiased`` uses the unbiased HSIC estimator (Song et al. 2012; Nguyen et al. 2020), near 0 for
    independent features."""
    x = np.asarray(x, np.float64) - np.mean(x, 0)
    y = np.asarray(y, np.float64) - np.mean(y, 0)
    xy, xx, yy = (np.linalg.norm(p.T @ q) ** 2 for p, q in ((x, y), (x, x), (y, y)))
    if debiased:
        n = x.shape[0]
        rx, ry = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)

        def unbiased(dot: float, r1: np.ndarray, r2: np.ndarray) -> float:
            return dot - n / (n - 2.0) * float(r1 @ r2) + r1.sum() * r2.sum() / ((n - 1) * (n - 2))

        xy, xx, yy = unbiased(xy, rx, ry), unbiased(xx, rx, rx), unbiased(yy, ry, ry)
    return float(xy / np.sqrt(xx * yy))


def _features(rng: np.random.Generator, n: int = 60, d: int = 8) -> np.ndarray:
    return np.maximum(rng.normal(size=(n, d)), 0) + 0.1 * rng.normal(size=(n, d))  # ReLU-like, some negatives


def test_similarity_matches_a_hand_computation():
    a = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    b = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    # normalised a: e1, e2, (e1+e2)/√2 → rows (1, 0, 1/√2), (0, 1, 1/√2), (1/√2, 1/√2, 1)
    # normalised b: e1, e1, e2 → rows (1, 1, 0), (1, 1, 0), (0, 0, 1); row cosines 1/√3, 1/√3, 1/√2
    assert relational_similarity(a, b) == pytest.approx((2 / math.sqrt(3) + 1 / math.sqrt(2)) / 3)


def test_similarity_with_itself_is_one_and_survives_rotation_and_scaling():
    rng = np.random.default_rng(0)
    x = _features(rng)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))  # an orthogonal matrix
    assert relational_similarity(x, x) == pytest.approx(1.0)
    assert relational_similarity(x, 3.7 * x @ q) == pytest.approx(1.0)
    assert relational_similarity(x, _features(rng)) < 0.99  # and it does tell models apart


def test_linear_cka_equals_the_hsic_formula_and_is_one_with_itself():
    rng = np.random.default_rng(1)
    x, y = _features(rng, 50, 6), _features(rng, 50, 9)
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n

    def hsic(kx, ky):  # Gretton et al. 2005: tr(K H L H) / (n - 1)²
        return np.trace(kx @ h @ ky @ h) / (n - 1) ** 2

    kx, ky = x @ x.T, y @ y.T
    assert linear_cka(x, y) == pytest.approx(hsic(kx, ky) / math.sqrt(hsic(kx, kx) * hsic(ky, ky)))
    assert linear_cka(x, x) == pytest.approx(1.0)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert linear_cka(x, 2.5 * x @ q + 4.0) == pytest.approx(1.0)  # rotation, scale and shift


def test_debiased_cka_is_the_unbiased_hsic_estimator_and_near_zero_for_independent_features():
    rng = np.random.default_rng(2)
    x, y = _features(rng, 40, 5), _features(rng, 40, 7)
    n = len(x)

    def hsic_u(kx, ky):  # Song et al. 2012, eq. 5: diagonals zeroed
        kx, ky = kx - np.diag(np.diag(kx)), ky - np.diag(np.diag(ky))
        one = np.ones(n)
        cross = one @ kx @ one * (one @ ky @ one) / ((n - 1) * (n - 2))
        return (np.trace(kx @ ky) + cross - 2 / (n - 2) * one @ kx @ ky @ one) / (n * (n - 3))

    kx, ky = x @ x.T, y @ y.T
    assert linear_cka(x, y, debiased=True) == pytest.approx(hsic_u(kx, ky) / math.sqrt(hsic_u(kx, kx) * hsic_u(ky, ky)))
    assert linear_cka(x, x, debiased=True) == pytest.approx(1.0)

    a, b = rng.normal(size=(500, 50)), rng.normal(size=(500, 50))
    assert abs(linear_cka(a, b, debiased=True)) < 0.05
    assert linear_cka(a, b) > 0.05  # the biased estimate is not: what debiasing is for


@pytest.mark.parametrize("budget", [1, 8 * 5 * 30 * 7, 1 << 30])  # one row per block, 7 rows, everything at once
def test_blockwise_matrices_equal_the_pairwise_definitions(budget):
    rng = np.random.default_rng(3)
    feats = [_features(rng, 30, d) for d in (4, 6, 6, 10, 3)]
    feats[2] = feats[1] @ np.linalg.qr(rng.normal(size=(6, 6)))[0]  # a rotated copy
    pairwise = {
        "similarity": relational_similarity,
        "cka": linear_cka,
        "cka_debiased": lambda a, b: linear_cka(a, b, debiased=True),
    }
    for measure, fn in pairwise.items():
        expected = np.array([[fn(a, b) for b in feats] for a in feats])
        np.testing.assert_allclose(similarity_matrix(feats, measure, budget=budget), expected, atol=1e-10)
    assert set(pairwise) == set(MEASURES)


def test_distances_are_one_minus_similarity_over_its_maximum():
    s = np.array([[1.0, 0.8, 0.4], [0.8, 1.0, 0.5], [0.4, 0.5, 1.0]])
    np.testing.assert_allclose(distances(s), np.array([[0, 0.2, 0.6], [0.2, 0, 0.5], [0.6, 0.5, 0]]) / 0.6)
    coords = embed_2d(distances(s))  # three points in the plane: MDS reproduces their distances
    d = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    np.testing.assert_allclose(d, distances(s), atol=1e-3)


def test_group_table_averages_pairs_between_groups_without_self_pairs():
    s = np.array([[1.0, 0.9, 0.3, 0.1], [0.9, 1.0, 0.5, 0.3], [0.3, 0.5, 1.0, 0.7], [0.1, 0.3, 0.7, 1.0]])
    table = group_table(s, ["A", "A", "B", "C"], digits=2)
    assert table.loc["A", "A"] == "0.90 ± 0.00 (2)"  # one pair: each of the two models' mean is 0.9
    assert table.loc["A", "B"] == "0.40 ± 0.14 (2)"  # the row's models: 0.3 and 0.5, std ddof 1
    assert table.loc["B", "A"] == "0.40 (1)"  # one model of B: its mean over its two pairs
    assert table.loc["A", "C"] == "0.20 ± 0.14 (2)"
    assert pd.isna(table.loc["B", "B"])  # one trial: no pair (tables print –)


def test_group_table_leaves_out_pairs_that_share_their_initialisation():
    s = np.array([[1.0, 0.9, 0.3, 0.1], [0.9, 1.0, 0.5, 0.3], [0.3, 0.5, 1.0, 0.7], [0.1, 0.3, 0.7, 1.0]])
    shared = np.zeros((4, 4), dtype=bool)
    shared[0, 2] = shared[2, 0] = True  # trial 0 (A) and trial 2 (B) started from the same weights
    table = group_table(s, ["A", "A", "B", "C"], digits=2, shared=shared)
    assert table.loc["A", "B"] == table.loc["B", "A"] == "0.50 (1)"  # 0.3 left out, 0.5 kept: one model a side
    assert table.loc["A", "C"] == "0.20 ± 0.14 (2)"  # untouched


# four made-up models of group A (0-3) and two of B (4, 5); each model's pairs averaged by hand
FOUR = np.array(
    [
        [1.0, 0.9, 0.8, 0.7, 0.3, 0.5],
        [0.9, 1.0, 0.6, 0.5, 0.2, 0.2],
        [0.8, 0.6, 1.0, 0.4, 0.1, 0.3],
        [0.7, 0.5, 0.4, 1.0, 0.6, 0.4],
        [0.3, 0.2, 0.1, 0.6, 1.0, 0.8],
        [0.5, 0.2, 0.3, 0.4, 0.8, 1.0],
    ]
)
FOUR_GROUPS = ["A"] * 4 + ["B"] * 2


def test_group_table_is_over_models_each_models_pairs_averaged_first():
    table = group_table(FOUR, FOUR_GROUPS)
    # A × A: model 0's pairs (0.9, 0.8, 0.7) → 0.8; model 1 (0.9, 0.6, 0.5) → 2/3; model 2 (0.8, 0.6, 0.4) → 0.6;
    # model 3 (0.7, 0.5, 0.4) → 1.6/3. Mean 0.65; std (ddof 1) 0.1139. Over the 6 pairs it was 0.650 ± 0.171 (6).
    per_model = [0.8, 2 / 3, 0.6, 1.6 / 3]
    assert np.std(per_model, ddof=1) == pytest.approx(0.113855, abs=1e-6)
    assert table.loc["A", "A"] == "0.650 ± 0.114 (4)"
    # A × B, units A's models: (0.3, 0.5) → 0.4, (0.2, 0.2) → 0.2, (0.1, 0.3) → 0.2, (0.6, 0.4) → 0.5: 0.325 ± 0.150
    assert table.loc["A", "B"] == "0.325 ± 0.150 (4)"
    # B × A, units B's models: 1.2 / 4 = 0.3 and 1.4 / 4 = 0.35
    assert table.loc["B", "A"] == "0.325 ± 0.035 (2)"
    assert table.loc["B", "B"] == "0.800 ± 0.000 (2)"
    assert group_table(FOUR, FOUR_GROUPS, interval="se").loc["A", "A"] == f"0.650 ± {0.113855 / 2:.3f} (4)"


def test_group_units_are_the_per_model_means_a_test_over_model_labels_needs():
    shared = np.zeros((6, 6), dtype=bool)
    shared[0, 4] = shared[4, 0] = True  # model 0 of A and model 4 of B share their initial weights
    units = group_units(FOUR, FOUR_GROUPS, shared, models=[f"m{i}" for i in range(6)])
    ab = units[(units["group"] == "A") & (units["column"] == "B")]
    assert ab["model"].tolist() == ["m0", "m1", "m2", "m3"]
    assert ab["value"].tolist() == pytest.approx([0.5, 0.2, 0.2, 0.5]) and ab["pairs"].tolist() == [1, 2, 2, 2]
    aa = units[(units["group"] == "A") & (units["column"] == "A")]
    assert aa["value"].tolist() == pytest.approx([0.8, 2 / 3, 0.6, 1.6 / 3]) and aa["pairs"].tolist() == [3, 3, 3, 3]
    assert group_table(FOUR, FOUR_GROUPS, shared=shared).loc["A", "B"] == "0.350 ± 0.173 (4)"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from kdtune.plan import make_plan
    from kdtune.run.execute import InlineExecutor, execute
    from kdtune.run.ledger import write_sweep_record
    from kdtune.spec.sweepfile import parse_sweep
    from tests.conftest import TINY

    raw = copy.deepcopy(TINY)
    raw["grid"]["seeds"] = 1  # CNN and MLP from data, MLP ← CNN
    spec = parse_sweep(raw, "tiny.yaml", output=tmp_path_factory.mktemp("sim") / "run")
    plan = make_plan(spec)
    write_sweep_record(plan)  # what kdtune run records first; RunView reads the trials it planned
    assert execute(plan, InlineExecutor(), log=lambda s: None) == {}
    return spec.output


def test_the_analysis_writes_heatmap_mds_and_group_tables(tiny_run, tmp_path):
    view = RunView(tiny_run)
    out = similarity(view, tmp_path)
    assert [p.name for p in out.figures] == ["similarity.png", "mds.png"] and all(p.is_file() for p in out.figures)
    assert len(out.tables) == 3 and not out.skipped
    groups = ["CNN (data)", "MLP (data)", "MLP ← CNN"]
    for _, table in out.tables:
        assert list(table.index) == groups and list(table.columns) == groups
    assert "eval set test" in out.notes[0]
    matrix = np.loadtxt(tmp_path / "similarity_matrix.csv", delimiter=",", skiprows=1, usecols=(1, 2, 3))
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    for stem in ("groups_similarity", "groups_cka", "groups_cka_debiased"):
        assert (tmp_path / f"{stem}.md").is_file() and (tmp_path / f"{stem}.tex").is_file()
        units = pd.read_csv(tmp_path / f"{stem}_units.csv")
        assert list(units.columns) == ["group", "column", "model", "value", "pairs"]
    assert all("n models" in title for title, _ in out.tables)
    unit_note = next(n for n in out.notes if n.startswith("Units: models"))
    assert "ddof 1" in unit_note and "n = the number of models" in unit_note and "groups_similarity_units.csv" in unit_note


def test_the_analysis_skips_with_one_line_when_fewer_than_two_trials(tiny_run, tmp_path):
    view = RunView(tiny_run, where={"student": ["CNN"]})
    out = similarity(view, tmp_path)
    assert out.figures == [] and out.tables == []
    assert out.skipped == ["similarity needs 2 trials with penultimate features of test; found 1"]
