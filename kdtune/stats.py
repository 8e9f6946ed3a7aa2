"""The statistics of kdtune's tables: intervals, tests of a difference, multiple-comparison corrections.

One definition of each, built on :mod:`scipy.stats`, used by ``report`` (and meant for the analyses and the
reproduction checks): every spread uses ``ddof = 1`` (:data:`DDOF`), every test is named by :data:`TEST_NAMES`
in the note under the table that used it.

A statistic is computed over *independent units*: the trained models of a cell (seeds × folds), never pairs of
models. Two cells are *paired* when their units match one to one by the seeds of their random streams
(``fold``, ``init_seed``, ``data_seed``; :func:`is_paired`): then a difference is tested unit by unit
(:func:`scipy.stats.ttest_rel`), otherwise as two independent samples (Welch's :func:`scipy.stats.ttest_ind`).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.stats

from kdtune.errors import KdtuneError

DDOF = 1  # the one ddof of every spread kdtune reports (sample standard deviation)
INTERVALS = ("std", "se", "ci95")  # what ``±`` shows: standard deviation, standard error, t-based 95 % interval
TESTS = ("auto", "paired", "welch", "bootstrap", "permutation")  # auto: paired where the design is, else Welch
CORRECTIONS = ("holm", "bonferroni", "none")
ALPHA = 0.05
SEED = 0  # the default seed of the resampling tests (bootstrap, permutation): a table is reproducible
RESAMPLES = 9999  # resamples of the bootstrap and of a permutation test too large to enumerate

INTERVAL_NAMES = {
    "std": f"std (ddof={DDOF})",
    "se": f"s.e. (ddof={DDOF})",
    "ci95": f"95 % CI (t, ddof={DDOF})",
}
TEST_NAMES = {
    "paired": "paired t-test (scipy.stats.ttest_rel)",
    "welch": "Welch's t-test (scipy.stats.ttest_ind, equal_var=False)",
    "bootstrap": "BCa bootstrap of the mean difference (scipy.stats.bootstrap)",
    "permutation": "permutation test of the mean difference (scipy.stats.permutation_test)",
}
CORRECTION_NAMES = {"holm": "Holm", "bonferroni": "Bonferroni", "none": "no"}


def check_choice(what: str, value: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``, else a one-line :class:`KdtuneError` listing them."""
    if value not in choices:
        raise KdtuneError(f"unknown {what} {value!r}; one of {', '.join(choices)}")
    return value


def check_alpha(alpha: float) -> float:
    """A significance level strictly between 0 and 1."""
    if not 0 < alpha < 1:
        raise KdtuneError(f"alpha must be between 0 and 1 (exclusive), got {alpha}")
    return float(alpha)


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[np.isfinite(x)]


def half_width(values: Sequence[float] | np.ndarray, kind: str = "std") -> float:
    """What a table shows after ``±`` for these units: their std, the standard error of their mean, or the
    half-width of the t-based 95 % interval of their mean (all with ``ddof = 1``); NaN for fewer than 2 values."""
    check_choice("interval", kind, INTERVALS)
    x = _finite(values)
    if len(x) < 2:
        return float("nan")
    if kind == "std":
        return float(np.std(x, ddof=DDOF))
    se = float(scipy.stats.sem(x, ddof=DDOF))
    if kind == "se" or se == 0:
        return se  # (units all equal: an interval of width 0)
    lo, hi = scipy.stats.t.interval(0.95, len(x) - 1, loc=0.0, scale=se)
    return float((hi - lo) / 2)


def is_paired(units_a: Sequence[Hashable], units_b: Sequence[Hashable]) -> bool:
    """Whether two cells are paired unit by unit: each unit key (e.g. ``(fold, init_seed, data_seed)``) occurs
    once in each cell and both cells have the same keys. A key holding a missing value (None or NaN, e.g. results
    of an older kdtune without stream seeds) pairs nothing."""

    def known(k: Hashable) -> bool:
        parts = k if isinstance(k, tuple) else (k,)
        return not any(p is None or (isinstance(p, float) and np.isnan(p)) for p in parts)

    a, b = list(units_a), list(units_b)
    if not a or not all(known(k) for k in [*a, *b]):
        return False
    return len(set(a)) == len(a) and len(set(b)) == len(b) and set(a) == set(b)


@dataclass(frozen=True)
class Comparison:
    """A difference of means ``a - b`` and its test: ``lo``/``hi`` its interval at the level asked for, ``p`` the
    two-sided p-value (uncorrected); ``test`` a key of :data:`TEST_NAMES`; ``n_pairs`` the pairs used (0 unpaired).
    NaN everywhere but the counts when a side has fewer than 2 units (a t-test needs 2)."""

    diff: float
    lo: float
    hi: float
    p: float
    test: str
    paired: bool
    n_pairs: int
    n_a: int
    n_b: int


def _seeded(func: Any, seed: int) -> dict[str, Any]:
    """The keyword that seeds ``func``'s generator: ``rng`` (scipy >= 1.15) or ``random_state`` (older)."""
    name = "rng" if "rng" in inspect.signature(func).parameters else "random_state"
    return {name: np.random.default_rng(seed)}


def _mean_diff_paired(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x - y, axis=axis)


def _mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def compare(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    paired: bool,
    test: str = "t",
    level: float = 1 - ALPHA,
    seed: int = SEED,
    resamples: int = RESAMPLES,
) -> Comparison:
    """Compare the units of cell ``a`` with those of cell ``b`` (the reference): ``mean(a) - mean(b)``.

    ``paired``: ``a[i]`` and ``b[i]`` are one pair (same random streams); pairs with a missing value on either
    side are dropped. ``test``: ``t`` (paired t-test if ``paired``, else Welch's), ``bootstrap`` (BCa interval
    of the mean difference, resampling pairs if ``paired``, its p-value from the bootstrap distribution by
    percentile inversion: ``2 · min(P*(d ≤ 0), P*(d ≥ 0))``) or ``permutation`` (sign flips of the pairs if
    ``paired``, else relabelling the units; exact when the permutations are fewer than ``resamples``). The
    interval of a t or permutation test is the t-test's; both resampling tests are seeded by ``seed``.
    """
    check_choice("test", test, ("t", "bootstrap", "permutation"))
    if paired:
        x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        if x.shape != y.shape:
            raise ValueError(f"paired samples of different lengths: {len(x)} and {len(y)}")
        ok = np.isfinite(x) & np.isfinite(y)
        x, y = x[ok], y[ok]
    else:
        x, y = _finite(a), _finite(b)
    name = ("paired" if paired else "welch") if test == "t" else test
    n_pairs = len(x) if paired else 0
    nan = float("nan")
    if len(x) < 2 or len(y) < 2:
        return Comparison(nan, nan, nan, nan, name, paired, n_pairs, len(x), len(y))
    diff = float(np.mean(x - y)) if paired else float(np.mean(x) - np.mean(y))
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        # identical units (a tie) or a constant difference: NaN or a p of 0, without scipy's precision warning
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        t = scipy.stats.ttest_rel(x, y) if paired else scipy.stats.ttest_ind(x, y, equal_var=False)
        ci = t.confidence_interval(level)
    lo, hi, p = float(ci.low), float(ci.high), float(t.pvalue)
    if test == "bootstrap":
        stat = _mean_diff_paired if paired else _mean_diff
        res = scipy.stats.bootstrap(
            (x, y),
            stat,
            paired=paired,
            vectorized=True,
            confidence_level=level,
            method="BCa",
            n_resamples=resamples,
            **_seeded(scipy.stats.bootstrap, seed),
        )
        dist = np.asarray(res.bootstrap_distribution)
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        p = float(min(1.0, 2 * min(np.mean(dist <= 0), np.mean(dist >= 0))))
    elif test == "permutation":
        stat = _mean_diff_paired if paired else _mean_diff
        res = scipy.stats.permutation_test(
            (x, y),
            stat,
            permutation_type="samples" if paired else "independent",
            vectorized=True,
            n_resamples=resamples,
            alternative="two-sided",
            **_seeded(scipy.stats.permutation_test, seed),
        )
        p = float(res.pvalue)
    return Comparison(diff, lo, hi, p, name, paired, n_pairs, len(x), len(y))


def adjust(p: Sequence[float] | np.ndarray, method: str = "holm") -> np.ndarray:
    """p-values corrected for multiple comparisons over the family ``p`` (NaNs stay NaN and do not count).

    ``holm``: Holm's step-down (1979): with the m p-values sorted, ``p_(i)`` becomes
    ``max_{j <= i} min(1, (m - j + 1) · p_(j))``; ``bonferroni``: ``min(1, m · p)``; ``none``: unchanged.
    (statsmodels' ``multipletests`` computes the same; kdtune does not depend on statsmodels for these lines.)
    """
    check_choice("correction", method, CORRECTIONS)
    p = np.asarray(p, dtype=float)
    out = p.copy()
    ok = np.isfinite(p)
    m = int(ok.sum())
    if method == "none" or m == 0:
        return out
    q = p[ok]
    if method == "bonferroni":
        out[ok] = np.minimum(1.0, m * q)
        return out
    order = np.argsort(q, kind="stable")
    stepped = np.minimum(1.0, (m - np.arange(m)) * q[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(stepped)
    out[ok] = adjusted
    return out


@dataclass(frozen=True)
class Contrast:
    """A linear contrast ``L = Σ cᵢ · mean(cellᵢ) + c₀`` of independent cells, tested against 0 with a
    Welch–Satterthwaite t-test: ``se² = Σ cᵢ² sᵢ² / nᵢ``, ``df = se⁴ / Σ (cᵢ² sᵢ² / nᵢ)² / (nᵢ - 1)``.
    ``lo``/``hi``: its interval at the level asked for; ``p``: two-sided. One cell against a constant is the
    one-sample t-test (:func:`scipy.stats.ttest_1samp`), two cells with coefficients ±1 Welch's t-test."""

    estimate: float
    se: float
    df: float
    lo: float
    hi: float
    p: float


def contrast(
    cells: Sequence[Sequence[float] | np.ndarray], coefs: Sequence[float], constant: float = 0.0, level: float = 1 - ALPHA
) -> Contrast:
    """The Welch–Satterthwaite test of ``Σ coefs[i] · mean(cells[i]) + constant = 0`` (see :class:`Contrast`);
    NaN when a cell has fewer than 2 finite units."""
    xs = [_finite(c) for c in cells]
    nan = float("nan")
    if not xs or any(len(x) < 2 for x in xs):
        return Contrast(nan, nan, nan, nan, nan, nan)
    estimate = float(sum(c * np.mean(x) for c, x in zip(coefs, xs, strict=True)) + constant)
    parts = [c * c * np.var(x, ddof=DDOF) / len(x) for c, x in zip(coefs, xs, strict=True)]
    var = float(sum(parts))
    if var == 0:  # every unit of every cell equal: the contrast is exact
        p = 1.0 if estimate == 0 else 0.0
        return Contrast(estimate, 0.0, float("inf"), estimate, estimate, p)
    df = var * var / sum(v * v / (len(x) - 1) for v, x in zip(parts, xs, strict=True) if v > 0)
    se = var**0.5
    t = estimate / se
    p = float(2 * scipy.stats.t.sf(abs(t), df))
    half = float(scipy.stats.t.ppf(0.5 + level / 2, df) * se)
    return Contrast(estimate, se, float(df), estimate - half, estimate + half, p)


@dataclass(frozen=True)
class Equivalence:
    """Two one-sided tests (TOST) of ``|L| < margin`` for a contrast ``L``: ``p_equivalent`` (the larger of the two
    one-sided p-values: small when L lies inside ±margin) and ``p_beyond`` (small when L lies beyond the nearer
    margin: twice the smaller one-sided p of ``L > margin`` and ``L < -margin``, capped at 1)."""

    estimate: float
    margin: float
    p_equivalent: float
    p_beyond: float


def equivalence(c: Contrast, margin: float) -> Equivalence:
    """TOST of a contrast (its t statistic shifted by ∓margin, the same df) against ``±margin``."""
    if not margin > 0:
        raise KdtuneError(f"an equivalence margin must be positive, got {margin}")
    nan = float("nan")
    if not np.isfinite(c.estimate):
        return Equivalence(nan, margin, nan, nan)
    if c.se == 0:
        inside = abs(c.estimate) < margin
        return Equivalence(c.estimate, margin, 0.0 if inside else 1.0, 0.0 if abs(c.estimate) > margin else 1.0)
    sf = lambda t: float(scipy.stats.t.sf(t, c.df))
    above_low = sf((c.estimate + margin) / c.se)  # H0: L <= -margin (small when L > -margin)
    below_high = sf((margin - c.estimate) / c.se)  # H0: L >= margin (small when L < margin)
    beyond_high = sf((c.estimate - margin) / c.se)  # H0: L <= margin (small when L > margin)
    beyond_low = sf(-(c.estimate + margin) / c.se)  # H0: L >= -margin (small when L < -margin)
    return Equivalence(c.estimate, margin, max(above_low, below_high), min(1.0, 2 * min(beyond_high, beyond_low)))


def paired_contrast(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, level: float = 1 - ALPHA) -> Contrast:
    """``mean(a - b)`` of paired units as a :class:`Contrast` (one-sample t-test of the differences, df = n - 1)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    return contrast([x[ok] - y[ok]], [1.0], level=level)


@dataclass(frozen=True)
class SpreadTest:
    """Whether two cells' spreads differ: ``ratio`` = std(a) / std(b) (ddof 1) and the p of the Brown–Forsythe test
    (:func:`scipy.stats.levene` with ``center="median"``)."""

    std_a: float
    std_b: float
    ratio: float
    p: float


def spread_test(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> SpreadTest:
    """Brown–Forsythe test of equal spreads; NaN when a side has fewer than 2 units."""
    x, y = _finite(a), _finite(b)
    nan = float("nan")
    if len(x) < 2 or len(y) < 2:
        return SpreadTest(nan, nan, nan, nan)
    sa, sb = float(np.std(x, ddof=DDOF)), float(np.std(y, ddof=DDOF))
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(scipy.stats.levene(x, y, center="median").pvalue)
    if not np.isfinite(p):  # both sides constant
        p = 1.0
    return SpreadTest(sa, sb, sa / sb if sb > 0 else float("inf") if sa > 0 else float("nan"), p)


POWER = 0.8  # the power at which :func:`detectable` measures what a test can find


def detectable(n_a: int, n_b: int, *, paired: bool, alpha: float, test: str = "t", power: float = POWER) -> float:
    """The smallest true difference of means, in standard deviations of the units (of the pairs' differences when
    ``paired``), that a two-sided test of ``n_a`` against ``n_b`` units finds at level ``alpha`` with probability
    ``power``: the noncentral t distribution of the paired t-test (df = n - 1) or of the two-sample t-test
    (df = n_a + n_b - 2, Welch's at equal spreads). ``inf`` where no data can reach ``alpha``: fewer than 2 units a side,
    or a permutation test whose smallest p (``2 / 2^n`` sign flips, ``2 / C(n_a + n_b, n_a)`` relabellings) is not
    below ``alpha``. What a test "cannot decide" at a table's n: ``--bold significant`` uses it."""
    import math

    from scipy.optimize import brentq

    if min(n_a, n_b) < 2:
        return float("inf")
    if test == "permutation" and (2 / 2**n_a if paired else 2 / math.comb(n_a + n_b, n_a)) >= alpha:
        return float("inf")
    df = n_a - 1 if paired else n_a + n_b - 2
    scale = math.sqrt(n_a) if paired else 1 / math.sqrt(1 / n_a + 1 / n_b)
    crit = float(scipy.stats.t.ppf(1 - alpha / 2, df))
    found = lambda d: float(scipy.stats.nct.sf(crit, df, d * scale)) - power  # (the far tail is negligible)
    high = 1.0
    while found(high) < 0:
        high *= 2
        if high > 1e6:
            return float("inf")
    return float(brentq(found, 0.0, high))
