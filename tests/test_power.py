"""kdtune.repro.power: claims on synthetic units drawn from published means, SDs and n."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from kdtune.repro.claims import Claim, parse_check
from kdtune.repro.power import Summary, calibrate, needed_n, pass_rate, summaries_of

A = "accuracy[student=MLP, teacher=CNN, eval_set=test]"
B = "accuracy[student=MLP, teacher=data, eval_set=test]"


def cells(claim: Claim):
    return list(dict.fromkeys(claim.check.cells))


def test_pass_rate_is_the_power_of_the_claims_test():
    claim = Claim("c", parse_check(f"{A} > {B}"))
    a, b = cells(claim)
    summaries = {a: Summary(0.52, 0.01, 4), b: Summary(0.50, 0.01, 4)}
    # Welch's t at n = 4 on 20,000 draws of scipy's own: the share significant (two-sided α = 0.05) and positive
    rng = np.random.default_rng(123)
    x, y = rng.normal(0.52, 0.01, (20000, 4)), rng.normal(0.50, 0.01, (20000, 4))
    r = scipy.stats.ttest_ind(x, y, axis=1, equal_var=False)
    expected = np.mean((r.pvalue < 0.05) & (r.statistic > 0))
    assert pass_rate(claim, summaries, {a: 4, b: 4}) == pytest.approx(expected, abs=0.035)
    null = {a: Summary(0.5, 0.01, 4), b: Summary(0.5, 0.01, 4)}
    assert pass_rate(claim, null, {a: 4, b: 4}) <= 0.025 + 0.015  # a true null holds (one way) at most α/2
    assert pass_rate(claim, summaries, {a: 4, b: 4}) == pass_rate(claim, summaries, {a: 4, b: 4})  # seeded


def test_needed_n_reaches_the_target_and_one_less_does_not():
    claim = Claim("c", parse_check(f"{A} > {B}"))
    a, b = cells(claim)
    s = {a: Summary(0.51, 0.01, 4), b: Summary(0.50, 0.01, 4)}
    n = needed_n(claim, s, 0.05)
    assert n is not None and 10 <= n <= 30  # d = 1: about 17 per group for 80 % (a textbook value)
    assert pass_rate(claim, s, {a: n, b: n}, 0.05, 400) >= 0.8 - 0.05
    assert pass_rate(claim, s, {a: n - 3, b: n - 3}, 0.05, 400) < 0.8
    c = calibrate(claim, s, {a: 5, b: 5}, family_size=6)
    assert c is not None and c.level == pytest.approx(0.05 / 6) and c.n_paper == 4 and c.passes < 0.5


def test_a_cell_without_sds_is_not_calibrated_and_a_pilot_gives_its_own():
    claim = Claim("c", parse_check(f"{A} > {B}"))
    a, b = cells(claim)
    assert calibrate(claim, {a: Summary(0.5, 0.01, 4)}, {}, 1) is None
    pilot = summaries_of({a: np.array([0.50, 0.52, np.nan, 0.51]), b: np.array([0.40, 0.41])})
    assert pilot[a] == Summary(0.51, pytest.approx(0.01), 3) and pilot[b].n == 2


def test_family_power_is_holm_over_the_family_drawn_together():
    """Two claims that share a cell: one far from its null, one near; under Holm the near one meets α/1 once the far
    one is rejected, so its power is above its Bonferroni bound (α/2) and at most its unadjusted power (α)."""
    from kdtune.repro.power import family_needed_n, family_power

    far = Claim("far", parse_check(f"{A} > {B}"))
    c = "accuracy[student=CNN, teacher=data, eval_set=test]"
    near = Claim("near", parse_check(f"{c} > {B}"))
    a, b = cells(far)
    cn = near.check.cells[0]
    s = {a: Summary(0.60, 0.01, 4), b: Summary(0.50, 0.01, 4), cn: Summary(0.515, 0.01, 4)}
    far_p, near_p = family_power([far, near], s, 5)
    assert far_p == pytest.approx(1.0, abs=0.01)
    bonferroni, unadjusted = pass_rate(near, s, {cn: 5, b: 5}, 0.025), pass_rate(near, s, {cn: 5, b: 5}, 0.05)
    assert bonferroni - 0.03 <= near_p <= unadjusted + 0.03
    assert family_power([far, near], s, 5, others=4)[1] < near_p  # four more tests that never reject: lower
    n80 = family_needed_n([far, near], s)
    assert n80[0] <= 3 and n80[1] is not None and family_power([far, near], s, n80[1])[1] >= 0.8 - 0.03
