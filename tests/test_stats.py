"""kdtune.stats against hand computations and against scipy.stats itself."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from kdtune import stats
from kdtune.errors import KdtuneError

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
    a = [(0, 11, 21), (0, 12, 22)]
    assert stats.is_paired(a, list(reversed(a)))
    assert not stats.is_paired(a, [(0, 11, 21), (0, 13, 23)])  # another stream
    assert not stats.is_paired(a, a[:1])  # a unit without its partner
    assert not stats.is_paired([(0, None, None)] * 2, [(0, None, None)] * 2)  # results without stream seeds
    assert not stats.is_paired([(0, 1, 1), (0, 1, 1)], [(0, 1, 1), (0, 1, 1)])  # a key twice: not one to one


def test_bad_choices_are_one_line():
    with pytest.raises(KdtuneError, match=r"^unknown correction 'fdr'; one of holm, bonferroni, none$"):
        stats.adjust([0.1], "fdr")
    with pytest.raises(KdtuneError, match="alpha must be between 0 and 1"):
        stats.check_alpha(1.5)
