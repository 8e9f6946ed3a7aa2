"""kdtune.results.stats against hand computations and against scipy.stats itself."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats

from kdtune.errors import KdtuneError
from kdtune.results import stats

X = [1.0, 2.0, 3.0, 4.0]  # mean 2.5, sum of squares 5, s² = 5/3


def test_intervals_by_hand_with_ddof_1():
    s = math.sqrt(5 / 3)
    assert stats.half_width(X, "std") == pytest.approx(s)
    assert stats.half_width(X, "se") == pytest.approx(s / 2)
    assert stats.half_width(X, "ci95") == pytest.approx(3.182446305 * s / 2)  # t(0.975, 3) from a printed table
    assert math.isnan(stats.half_width([1.0], "ci95")) and math.isnan(stats.half_width([1.0, float("nan")], "std"))
    with pytest.raises(KdtuneError, match="unknown interval 'ci99'; one of std, se, ci95"):
        stats.half_width(X, "ci99")


def test_welch_by_hand_and_as_scipy():
    a, b = [1.0, 2.0, 3.0, 4.0], [3.0, 5.0, 7.0]  # means 2.5 and 5, variances 5/3 and 4
    c = stats.compare(a, b, paired=False)
    va, vb = (5 / 3) / 4, 4 / 3
    t = (2.5 - 5) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 2)  # Welch–Satterthwaite
    assert c.test == "welch" and not c.paired and c.n_pairs == 0 and (c.n_a, c.n_b) == (4, 3)
    assert c.diff == pytest.approx(-2.5)
    assert c.p == pytest.approx(2 * scipy.stats.t.sf(abs(t), df))
    half = scipy.stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert (c.lo, c.hi) == pytest.approx((-2.5 - half, -2.5 + half))
    assert c.p == pytest.approx(scipy.stats.ttest_ind(a, b, equal_var=False).pvalue)


def test_paired_is_scipy_ttest_rel_and_drops_incomplete_pairs():
    a = [0.90, 0.70, 0.80, 0.60, np.nan]
    b = [0.89, 0.68, 0.795, 0.585, 0.5]
    c = stats.compare(a, b, paired=True)
    ref = scipy.stats.ttest_rel(a[:4], b[:4])
    assert c.test == "paired" and c.n_pairs == 4 and c.p == pytest.approx(ref.pvalue)
    d = np.subtract(a[:4], b[:4])
    t = d.mean() / (d.std(ddof=1) / 2)
    assert c.diff == pytest.approx(d.mean()) and c.p == pytest.approx(2 * scipy.stats.t.sf(t, 3))
    assert c.p < 0.05  # nearly the same shift in every pair, while the units differ a lot between seeds ...
    assert stats.compare(a, b, paired=False).p > 0.5  # ... which Welch's test cannot see


def test_fewer_than_two_units_a_side_is_not_tested():
    c = stats.compare([0.9], [0.1, 0.2], paired=False)
    assert math.isnan(c.p) and math.isnan(c.diff) and (c.n_a, c.n_b) == (1, 2)


def test_holm_and_bonferroni_on_a_hand_made_p_vector():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → running max 0.02, 0.03, 0.06, 0.06
    assert stats.adjust(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.adjust(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 0.02])
    assert stats.adjust(p, "none") == pytest.approx(p)
    assert stats.adjust([0.5, 0.9], "holm") == pytest.approx([1.0, 1.0])  # capped at 1
    out = stats.adjust([np.nan, 0.01, 0.02], "holm")  # NaN (not tested) stays NaN and is no member of the family
    assert math.isnan(out[0]) and out[1:] == pytest.approx([0.02, 0.02])


def test_bootstrap_is_bca_and_reproducible_with_its_seed():
    rng = np.random.default_rng(1)
    a, b = rng.normal(1.0, 0.3, 8), rng.normal(0.5, 0.3, 8)
    one = stats.compare(a, b, paired=False, test="bootstrap", seed=7)
    assert one == stats.compare(a, b, paired=False, test="bootstrap", seed=7)
    assert one != stats.compare(a, b, paired=False, test="bootstrap", seed=8)
    ref = scipy.stats.bootstrap(
        (a, b), lambda x, y, axis: x.mean(axis) - y.mean(axis), method="BCa", rng=np.random.default_rng(7)
    )
    assert (one.lo, one.hi) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    assert one.test == "bootstrap" and one.p < 0.05 and one.lo > 0


def test_permutation_paired_is_exact_sign_flips():
    # 3 pairs, every difference positive: 2³ sign flips, only all-plus and all-minus as extreme → p = 2/8
    c = stats.compare([2.0, 3.0, 4.0], [1.0, 1.0, 1.0], paired=True, test="permutation")
    assert c.test == "permutation" and c.paired and c.p == pytest.approx(0.25)
    assert c == stats.compare([2.0, 3.0, 4.0], [1.0, 1.0, 1.0], paired=True, test="permutation")


def test_pairing_is_read_from_the_unit_keys():
    a = [(None, 11, 21, "mlp"), (None, 12, 22, "mlp")]
    assert stats.is_paired(a, list(reversed(a)))
    assert not stats.is_paired(a, [(None, 11, 21, "mlp"), (None, 13, 23, "mlp")])  # another stream
    assert not stats.is_paired(a, a[:1])  # a unit without its partner
    assert not stats.is_paired([(None, None, None, "mlp")] * 2, [(None, None, None, "mlp")] * 2)  # no stream seeds
    assert not stats.is_paired([(None, 1, 1, "m"), (None, 1, 1, "m")], [(None, 1, 1, "m"), (None, 1, 1, "m")])  # twice


def test_a_cnn_and_an_mlp_of_one_seed_are_not_paired_unless_they_share_a_fold():
    cnn = [(None, s, s, "arch=cnn") for s in range(3)]
    mlp = [(None, s, s, "arch=mlp") for s in range(3)]
    paired, why = stats.pairing(cnn, mlp)
    assert not paired and "different architectures" in why
    same = stats.pairing(mlp, [(None, s, s, "arch=mlp") for s in (2, 1, 0)])
    assert same == (True, "the same initialisation (architecture and seed)")
    folds_cnn = [(f, 0, 0, "arch=cnn") for f in range(5)]
    folds_mlp = [(f, 7, 7, "arch=mlp") for f in (4, 3, 2, 1, 0)]  # other seeds, other architecture: one fold each
    matched, why = stats.pair_up(folds_cnn, folds_mlp)
    assert why == "the same folds" and matched == [(0, 4), (1, 3), (2, 2), (3, 1), (4, 0)]
    assert stats.pairing(folds_cnn, folds_mlp[:4])[0] is False  # a fold without its partner


def test_zero_variance_is_an_exact_permutation_p_never_zero():
    # three students each exactly 1/449 better than their partners: a t-test would say t = inf, p = 0
    a, b = [0.5 + 1 / 449] * 3, [0.5] * 3
    c = stats.compare(a, b, paired=True)
    assert c.test == "exact" and c.p == pytest.approx(2 / 2**3) and math.isnan(c.lo) and math.isnan(c.hi)
    assert "zero variance" in c.why
    u = stats.compare([0.7] * 3, [0.6] * 3, paired=False)  # 3 vs 3 constant cells: 20 relabellings, 2 as extreme
    assert u.test == "exact" and u.p == pytest.approx(2 / math.comb(6, 3))
    assert stats.compare([0.6] * 3, [0.6] * 3, paired=False).p == 1.0
    k = stats.contrast([[0.3] * 4, [0.3] * 4, [0.2] * 4], [1, -0.5, -0.5])
    assert math.isnan(k.p) and "zero variance" in k.why
    e = stats.equivalence_exact([0.0] * 4, [0.0] * 4, 0.05, paired=False)  # equal and constant: inside, exactly
    assert e.p_equivalent == pytest.approx(1 / math.comb(8, 4)) and e.p_beyond == 1.0 and math.isnan(e.lo)


def test_folds_take_the_nadeau_bengio_correction():
    a = np.array([0.90, 0.91, 0.89, 0.92, 0.90])
    b = np.array([0.88, 0.90, 0.88, 0.89, 0.89])
    c = stats.compare(a, b, paired=True, folds=5)
    d = a - b
    se = math.sqrt(d.var(ddof=1) * (1 / 5 + 1 / 4))  # (1/J + n_val/n_train), k = 5: 2.25 × the naive variance
    assert c.test == "paired-folds" and c.p == pytest.approx(2 * scipy.stats.t.sf(d.mean() / se, 4))
    naive = scipy.stats.ttest_rel(a, b).pvalue
    assert c.p > naive and "5-fold" in c.why
    half = scipy.stats.t.ppf(0.975, 4) * se
    assert (c.lo, c.hi) == pytest.approx((d.mean() - half, d.mean() + half))


def test_tost_reports_its_ninety_percent_interval():
    x, y = np.array([0.50, 0.52, 0.51, 0.49]), np.array([0.50, 0.51, 0.49, 0.50])
    c = stats.contrast([x, y], [1, -1])
    e = stats.equivalence(c, 0.05)
    ci = scipy.stats.ttest_ind(x, y, equal_var=False).confidence_interval(0.90)
    assert e.level == pytest.approx(0.90) and (e.lo, e.hi) == pytest.approx((ci.low, ci.high))
    assert (e.p_equivalent < 0.05) == (e.lo > -0.05 and e.hi < 0.05)  # TOST at α ⟺ the 90 % interval inside ±M


def _spread_p_by_hand(x, y):
    """log(SD ratio) of the centred units over every split of them into the two cells' sizes (itertools)."""
    r = np.concatenate([(x - x.mean()) * math.sqrt(len(x) / (len(x) - 1)), (y - y.mean()) * math.sqrt(len(y) / (len(y) - 1))])
    stat = []
    for chosen in itertools.combinations(range(len(r)), len(x)):
        rest = [i for i in range(len(r)) if i not in chosen]
        stat.append(math.log(np.std(r[list(chosen)], ddof=1) / np.std(r[rest], ddof=1)))
    obs = math.log(np.std(x, ddof=1) / np.std(y, ddof=1))
    return float(np.mean(np.abs(stat) >= abs(obs) - 1e-12))


def test_spreads_by_permutation_untestable_where_they_cannot_reach_alpha():
    two = stats.spread_test([0.1, 0.2], [0.1, 0.9])  # Brown–Forsythe said F = 6e28 here; 6 splits, p ≥ 1/3
    assert math.isnan(two.p) and "no relabelling can reach p < 0.05" in two.why
    three = stats.spread_test([0.1, 0.2, 0.4], [0.1, 0.9, 0.3])
    assert math.isnan(three.p) and three.reach >= 0.1
    x, y = np.array([0.90, 0.91, 0.90, 0.92]), np.array([0.70, 0.90, 0.80, 0.60])
    four = stats.spread_test(x, y)
    assert four.p == pytest.approx(_spread_p_by_hand(x, y)) and four.reach == pytest.approx(2 / 70)
    assert four.ratio == pytest.approx(np.std(x, ddof=1) / np.std(y, ddof=1)) and four.lo < four.ratio < four.hi
    # the interval is the set of ratios the test does not reject: just inside an end p > α, just outside p ≤ α
    for end, step in ((four.lo, 1.001), (four.hi, 1 / 1.001)):
        assert stats.spread_test(x / (end * step), y).p > 0.05
        assert stats.spread_test(x / (end / step), y).p <= 0.05


def test_pair_measures_are_tested_by_permuting_model_labels():
    """Within-group similarity of 4 CNNs against 4 MLPs: the units are the models; the p is the share of the 70
    relabellings of the 8 models whose difference of within-group means is as large (counted here by hand)."""
    rng = np.random.default_rng(3)
    u = rng.normal(0, 1, 8)
    v = u[:, None] + u[None, :] + np.array([[0.3 if (i < 4) == (j < 4) and i < 4 else 0.0 for j in range(8)] for i in range(8)])
    labels = ("CNN",) * 4 + ("MLP",) * 4
    s = stats.PairSample(tuple(map(str, range(8))), labels, v)
    r = stats.pair_test(s, ("CNN", "CNN"), ("MLP", "MLP"))

    def within(members):
        return np.mean([v[i, j] for i in members for j in members if i != j])

    diffs = []
    for chosen in itertools.combinations(range(8), 4):
        rest = [i for i in range(8) if i not in chosen]
        diffs.append(within(chosen) - within(rest))
    obs = within(range(4)) - within(range(4, 8))
    assert r.estimate == pytest.approx(obs) and r.relabellings == 70 and r.exact
    assert r.p == pytest.approx(np.mean(np.abs(diffs) >= abs(obs) - 1e-12))
    three = stats.PairSample(tuple(map(str, range(6))), ("CNN",) * 3 + ("MLP",) * 3, v[:6, :6])
    t3 = stats.pair_test(three, ("CNN", "CNN"), ("MLP", "MLP"))
    assert math.isnan(t3.p) and "20 relabellings" in t3.why  # 3 vs 3: the smallest p is 0.1, untestable
    jk = stats.pair_contrast(s, [("CNN", "CNN"), ("MLP", "MLP")], [1, -1], -0.1)  # a margin: the jackknife
    assert jk.test == "pairs-jackknife" and jk.estimate == pytest.approx(obs - 0.1) and jk.df == 6


def test_bad_choices_are_one_line():
    with pytest.raises(KdtuneError, match=r"^unknown correction 'fdr'; one of holm, bonferroni, none$"):
        stats.adjust([0.1], "fdr")
    with pytest.raises(KdtuneError, match="alpha must be between 0 and 1"):
        stats.check_alpha(1.5)
