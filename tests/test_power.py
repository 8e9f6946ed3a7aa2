"""kdtune.power: claims on synthetic units drawn from published means, SDs and n."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from kdtune.claims import Claim, parse_check
from kdtune.power import Summary, calibrate, needed_n, pass_rate, summaries_of

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
