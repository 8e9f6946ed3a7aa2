"""The statistics of kdtune's tables and claims: intervals, tests of a difference, multiple-comparison corrections.

One definition of each, built on :mod:`scipy.stats`, used by ``report``, the claims and the analyses: every spread
uses ``ddof = 1`` (:data:`DDOF`), every test is named by :data:`TEST_NAMES` in the note under the table that used it.

A statistic is computed over *independent units*, and the test follows from what the unit is:

- **models** (a cell of the report: seeds × folds, each a trained model): Welch's t-test, or the paired t-test
  where two cells' units are paired (:func:`pairing`: the same initialisation, i.e. the same architecture and
  initialisation seed, or a shared fold);
- **folds** (units that differ by their fold of one k-fold split, whose training sets overlap): the corrected
  resampled t-test of Nadeau & Bengio (2003), in the repeated-k-fold form of Bouckaert & Frank (2004): the
  variance of the mean is ``s² · (1/J + 1/(k − 1))`` for J units, not ``s²/J``;
- **pairs of models** (similarity, CKA, error overlap, loss barriers; :class:`PairSample`): a permutation test
  over the models' labels (:func:`pair_test`, exact where the relabellings are few), its interval and the tests of
  contrasts from a jackknife over models (:func:`pair_contrast`); a cell whose permutation cannot reach α is
  untestable, never "not significant";
- **spreads** (``std(A) < std(B)``): a permutation test of log(SD ratio) on the cells' centred units, its
  interval by inverting the test (:func:`spread_test`); untestable where no relabelling can reach α.

Zero variance (every unit of both cells equal, or every paired difference equal) never gives p = 0: the t-tests
are replaced by the exact permutation test of the same mean difference, whose p is at least the permutation bound
(``2/2ⁿ`` for n pairs, ``2/C(2n, n)`` for n vs n units), and the interval is not printed (it has no width).
"""

from __future__ import annotations

import functools
import inspect
import itertools
import math
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.stats

from kdtune.errors import KdtuneError
from kdtune.labels import CORRECTIONS, INTERVALS

DDOF = 1  # the one ddof of every spread kdtune reports (sample standard deviation)
ALPHA = 0.05
SEED = 0  # the default seed of the resampling tests (bootstrap, permutation): a table is reproducible
RESAMPLES = 9999  # resamples of the bootstrap and of a permutation test too large to enumerate
MAX_EXACT = 20000  # relabellings a permutation test enumerates; beyond, RESAMPLES random ones (seeded)
_TIE = 1e-12  # relative tolerance of "as extreme as observed" in the permutation tests (floating-point ties)

INTERVAL_NAMES = {
    "std": f"std (ddof={DDOF})",
    "se": f"s.e. (ddof={DDOF})",
    "ci95": f"95 % CI (t, ddof={DDOF})",
}
TEST_NAMES = {
    "paired": "paired t-test (scipy.stats.ttest_rel)",
    "welch": "Welch's t-test (scipy.stats.ttest_ind, equal_var=False)",
    "paired-folds": "corrected resampled paired t-test over folds (Nadeau & Bengio 2003: variance × (1/J + 1/(k−1)))",
    "welch-folds": "Welch's t-test over folds with the Nadeau–Bengio correction (each variance × (1/J + 1/(k−1)))",
    "exact": "exact permutation test of the mean difference (zero variance: no t-test)",
    "bootstrap": "BCa bootstrap of the mean difference (scipy.stats.bootstrap)",
    "permutation": "permutation test of the mean difference (scipy.stats.permutation_test)",
    "contrast": "Welch–Satterthwaite t-test of a linear contrast",
    "tost": "two one-sided tests (TOST) with their 90 % interval",
    "spread": "permutation test of log(SD ratio) on the cells' centred units, interval by test inversion",
    "pairs": "permutation test over model labels of a mean over pairs of models, jackknife-over-models interval",
    "pairs-jackknife": "jackknife-over-models t-test of a contrast of pair measures",
    "trend": "Welch–Satterthwaite t-test of a linear trend (centred ranks) across a chain",
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


def is_constant(values: np.ndarray, scale: float = 1.0) -> bool:
    """Whether units are equal up to floating-point noise (their range below 1e-9 × the data's magnitude): such a
    cell has zero variance, and a t statistic of it measures rounding (scipy warns of catastrophic cancellation)."""
    v = np.asarray(values, dtype=float)
    return bool(len(v) == 0 or np.ptp(v) <= 1e-9 * max(1.0, scale, float(np.max(np.abs(v)))))


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


# ------------------------------------------------------------------------------------------------------ pairing


def _known(v: object) -> bool:
    return not (v is None or (isinstance(v, float) and np.isnan(v)))


def pair_up(units_a: Sequence[Hashable], units_b: Sequence[Hashable]) -> tuple[list[tuple[int, int]] | None, str]:
    """Which unit of cell ``a`` is paired with which of cell ``b`` (index pairs), or None, and why.

    A unit key is ``(fold, init_seed, data_seed)`` or ``(fold, init_seed, data_seed, init)``, where ``fold`` is None
    without folds and ``init`` names what the initialisation was drawn for (architecture and its parameters). Two
    cells are paired when every unit of one has one partner in the other that shares its **fold** (both cells hold
    each fold of one k-fold split once: the units share their training and validation data, whatever their seeds
    and architectures), or else its **initialisation**: the same ``(fold, init_seed, data_seed)`` and the same
    ``init`` (same architecture, same seed, same start). A CNN and an MLP drawn from one seed share neither: they are
    not paired. A key with a missing seed (results of a kdtune without stream seeds) pairs nothing."""
    a, b = [k if isinstance(k, tuple) else (k,) for k in units_a], [k if isinstance(k, tuple) else (k,) for k in units_b]
    if not a or not b:
        return None, "a cell without units"
    folds_a, folds_b = [k[0] for k in a], [k[0] for k in b]
    if all(_known(f) for f in [*folds_a, *folds_b]) and len(set(folds_a)) == len(a) and len(set(folds_b)) == len(b):
        if set(folds_a) == set(folds_b):
            where = {f: j for j, f in enumerate(folds_b)}
            return [(i, where[f]) for i, f in enumerate(folds_a)], "the same folds"
        return None, "different folds"
    if not all(len(k) >= 3 and _known(k[1]) and _known(k[2]) for k in [*a, *b]):
        return None, "no stream seeds recorded"
    stream_a, stream_b = [k[:3] for k in a], [k[:3] for k in b]
    if len(set(stream_a)) != len(a) or len(set(stream_b)) != len(b):
        return None, "a unit key twice: not one to one"
    if set(stream_a) != set(stream_b):
        return None, "different random streams"
    where = {k[:3]: j for j, k in enumerate(b)}
    matched = [(i, where[k[:3]]) for i, k in enumerate(a)]
    init = [(a[i][3] if len(a[i]) > 3 else None, b[j][3] if len(b[j]) > 3 else None) for i, j in matched]
    if all(x == y for x, y in init) and all(len(k) == 3 or _known(k[3]) for k in a):
        return matched, "the same initialisation (architecture and seed)"
    return None, "different architectures: the same seeds, but no shared start or fold"


def pairing(units_a: Sequence[Hashable], units_b: Sequence[Hashable]) -> tuple[bool, str]:
    """Whether two cells are paired unit by unit (:func:`pair_up`), and why (or why not)."""
    matched, why = pair_up(units_a, units_b)
    return matched is not None, why


def is_paired(units_a: Sequence[Hashable], units_b: Sequence[Hashable]) -> bool:
    """:func:`pairing` without its reason."""
    return pairing(units_a, units_b)[0]


# -------------------------------------------------------------------------------------------- permutations


def _multinomial(sizes: Sequence[int]) -> int:
    """In how many distinct ways ``sum(sizes)`` units split into groups of these sizes."""
    return math.factorial(sum(sizes)) // math.prod(math.factorial(s) for s in sizes)


@functools.lru_cache(maxsize=256)
def _assignments(sizes: tuple[int, ...], limit: int, seed: int, draws: int) -> tuple[np.ndarray, bool]:
    """Label assignments of ``sum(sizes)`` positions, group g taking ``sizes[g]`` of them, as a (P, N) integer array
    whose first row is the observed assignment (0…0 1…1 …): every distinct one when there are at most ``limit``,
    else the observed one and ``draws`` random ones (seeded by ``seed``). Returns the array (read-only: it is
    cached) and whether it is exhaustive."""
    n = int(sum(sizes))
    base = np.repeat(np.arange(len(sizes)), sizes)
    if _multinomial(sizes) <= limit:
        rows: list[np.ndarray] = []

        def fill(row: np.ndarray, free: list[int], g: int) -> None:
            if g == len(sizes) - 1:
                row = row.copy()
                row[free] = g
                rows.append(row)
                return
            for chosen in itertools.combinations(free, sizes[g]):
                nxt = row.copy()
                nxt[list(chosen)] = g
                fill(nxt, [i for i in free if i not in chosen], g + 1)

        fill(np.full(n, -1), list(range(n)), 0)
        out = np.array(rows)
        first = int(np.flatnonzero((out == base).all(axis=1))[0])
        out[[0, first]] = out[[first, 0]]
        exhaustive = True
    else:
        rng = np.random.default_rng(seed)
        out = np.vstack([base[None, :], np.array([rng.permutation(base) for _ in range(draws)])])
        exhaustive = False
    out.setflags(write=False)
    return out, exhaustive


def _p_from(stat: np.ndarray) -> tuple[float, float]:
    """Two-sided p of the observed statistic (``stat[0]``) among the relabellings' (``|T*| ≥ |T|``), and the smallest p
    any relabelling could have (the test's reach), by :func:`spread_p`; both NaN where ``stat[0]`` is not finite.
    Monte Carlo: ``(1 + #) / (1 + draws)`` (the observed counted)."""
    if not np.isfinite(stat[0]):
        return float("nan"), float("nan")
    p, reach = spread_p(stat)
    return float(p), float(reach)


def _mean_diffs(
    x: np.ndarray, y: np.ndarray, *, paired: bool, seed: int = SEED, flips: float = MAX_EXACT
) -> tuple[np.ndarray, bool]:
    """The mean difference ``x − y`` under each rearrangement, the observed first: sign flips of the pairs (all of them
    up to ``flips``), or relabellings of the units (all up to :data:`MAX_EXACT`); else :data:`RESAMPLES` random ones
    seeded by ``seed``. And whether they were all."""
    if not paired:
        pooled = np.concatenate([x, y])
        assign, exact = _assignments((len(x), len(y)), MAX_EXACT, seed, RESAMPLES)
        ga = assign == 0
        return (ga * pooled).sum(1) / len(x) - (~ga * pooled).sum(1) / len(y), exact
    d = np.asarray(x, float) - np.asarray(y, float)
    n = len(d)
    if 2**n <= flips:
        return np.array(list(itertools.product((1.0, -1.0), repeat=n))) @ d / n, True
    signs = np.vstack([np.ones(n), np.random.default_rng(seed).choice((1.0, -1.0), size=(RESAMPLES, n))])
    return signs @ d / n, False


def _t_interval(est: float, se: float, df: float, level: float) -> tuple[float, float, float]:
    """The ``level`` interval ``est ± t·se`` on ``df`` degrees of freedom and the two-sided p of ``est / se``."""
    half = float(scipy.stats.t.ppf(0.5 + level / 2, df) * se)
    return est - half, est + half, float(2 * scipy.stats.t.sf(abs(est / se), df))


# ------------------------------------------------------------------------------------------ two cells of models


@dataclass(frozen=True)
class Comparison:
    """A difference of means ``a - b`` and its test: ``lo``/``hi`` its interval at the level asked for (NaN where it
    has no width: zero variance), ``p`` the two-sided p-value (uncorrected); ``test`` a key of :data:`TEST_NAMES`;
    ``n_pairs`` the pairs used (0 unpaired). NaN everywhere but the counts when a side has fewer than 2 units (a test
    needs 2). ``why``: what the reader must know (e.g. zero variance, an exact permutation p instead of a t-test)."""

    diff: float
    lo: float
    hi: float
    p: float
    test: str
    paired: bool
    n_pairs: int
    n_a: int
    n_b: int
    why: str = ""
    level: float = 1 - ALPHA


def _seeded(func: Any, seed: int) -> dict[str, Any]:
    """The keyword that seeds ``func``'s generator: ``rng`` (scipy >= 1.15) or ``random_state`` (older)."""
    name = "rng" if "rng" in inspect.signature(func).parameters else "random_state"
    return {name: np.random.default_rng(seed)}


def _mean_diff_paired(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x - y, axis=axis)


def _mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def fold_factor(units: int, folds: int) -> float:
    """The Nadeau–Bengio factor of the variance of a mean over ``units`` fold units of a ``folds``-fold split:
    ``1/J + n_val/n_train`` with ``n_val/n_train = 1/(k − 1)`` (one fold held out, k − 1 train), instead of ``1/J``."""
    return 1.0 / units + 1.0 / (folds - 1)


def compare(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    paired: bool,
    test: str = "t",
    level: float = 1 - ALPHA,
    seed: int = SEED,
    resamples: int = RESAMPLES,
    folds: int | None = None,
) -> Comparison:
    """Compare the units of cell ``a`` with those of cell ``b`` (the reference): ``mean(a) - mean(b)``.

    ``paired``: ``a[i]`` and ``b[i]`` are one pair (:func:`pairing`); pairs with a missing value on either side are
    dropped. ``test``: ``t`` (paired t-test if ``paired``, else Welch's), ``bootstrap`` (BCa interval of the mean
    difference, resampling pairs if ``paired``, its p-value from the bootstrap distribution by percentile inversion:
    ``2 · min(P*(d ≤ 0), P*(d ≥ 0))``) or ``permutation`` (sign flips of the pairs if ``paired``, else relabelling
    the units; exact when the permutations are fewer than ``resamples``). ``folds``: the units are folds of one
    ``folds``-fold split (and seeds): the t-tests take the Nadeau–Bengio correction (:func:`fold_factor`). Zero
    variance (every difference, or every unit of both cells, equal): the exact permutation p of the mean difference,
    no interval. Both resampling tests are seeded by ``seed``.
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
    use_folds = folds is not None and folds >= 2
    name = ("paired" if paired else "welch") + ("-folds" if use_folds else "") if test == "t" else test
    n_pairs = len(x) if paired else 0
    nan = float("nan")
    if len(x) < 2 or len(y) < 2:
        return Comparison(nan, nan, nan, nan, name, paired, n_pairs, len(x), len(y), "fewer than 2 units a side", level)
    diff = float(np.mean(x - y)) if paired else float(np.mean(x) - np.mean(y))
    scale = float(np.max(np.abs(np.concatenate([x, y]))))
    if is_constant(x - y, scale) if paired else (is_constant(x, scale) and is_constant(y, scale)):
        # zero variance: no t statistic; the exact permutation test of the same difference
        p = 1.0 if abs(diff) <= 1e-9 * max(1.0, scale) else _p_from(_mean_diffs(x, y, paired=paired, seed=seed)[0])[0]
        why = "zero variance: exact permutation p, no interval"
        return Comparison(diff, nan, nan, p, "exact", paired, n_pairs, len(x), len(y), why, level)
    if test == "t" and use_folds:
        assert folds is not None
        if paired:
            d = x - y
            se = math.sqrt(np.var(d, ddof=DDOF) * fold_factor(len(d), folds))
            df = len(d) - 1.0
        else:
            va = np.var(x, ddof=DDOF) * fold_factor(len(x), folds)
            vb = np.var(y, ddof=DDOF) * fold_factor(len(y), folds)
            se = math.sqrt(va + vb)
            df = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1))
        lo, hi, p = _t_interval(diff, se, df, level)
        why = f"units are folds of a {folds}-fold split (corrected for their overlapping training sets)"
        return Comparison(diff, lo, hi, p, name, paired, n_pairs, len(x), len(y), why, level)
    t = scipy.stats.ttest_rel(x, y) if paired else scipy.stats.ttest_ind(x, y, equal_var=False)
    ci = t.confidence_interval(level)
    lo, hi, p = float(ci.low), float(ci.high), float(t.pvalue)
    stat = _mean_diff_paired if paired else _mean_diff
    how: dict[str, Any] = {"vectorized": True, "n_resamples": resamples}
    if test == "bootstrap":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a degenerate resample (BCa's acceleration undefined)
            how |= _seeded(scipy.stats.bootstrap, seed)
            res = scipy.stats.bootstrap((x, y), stat, paired=paired, confidence_level=level, method="BCa", **how)
        dist = np.asarray(res.bootstrap_distribution)
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        p = float(min(1.0, 2 * min(np.mean(dist <= 0), np.mean(dist >= 0))))
    elif test == "permutation":
        how |= _seeded(scipy.stats.permutation_test, seed)
        kind = "samples" if paired else "independent"
        p = float(scipy.stats.permutation_test((x, y), stat, permutation_type=kind, alternative="two-sided", **how).pvalue)
    return Comparison(diff, lo, hi, p, name, paired, n_pairs, len(x), len(y), "", level)


def adjust(p: Sequence[float] | np.ndarray, method: str = "holm") -> np.ndarray:
    """p-values corrected for multiple comparisons over the family ``p`` (NaNs stay NaN and do not count: a caller
    that counts an untestable comparison in its family passes it as p = 1).

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


# ---------------------------------------------------------------------------------------------- linear contrasts


@dataclass(frozen=True)
class Contrast:
    """A linear contrast ``L = Σ cᵢ · mean(cellᵢ) + c₀`` of independent cells, tested against 0 with a
    Welch–Satterthwaite t-test: ``se² = Σ cᵢ² sᵢ² / nᵢ``, ``df = se⁴ / Σ (cᵢ² sᵢ² / nᵢ)² / (nᵢ - 1)``.
    ``lo``/``hi``: its interval at ``level``; ``p``: two-sided. One cell against a constant is the one-sample t-test
    (:func:`scipy.stats.ttest_1samp`), two cells with coefficients ±1 Welch's t-test. NaN p with ``why`` when it
    cannot be tested (a cell with fewer than 2 units, or zero variance in every cell)."""

    estimate: float
    se: float
    df: float
    lo: float
    hi: float
    p: float
    why: str = ""
    level: float = 1 - ALPHA
    test: str = "contrast"


def contrast_arrays(
    cells: Sequence[np.ndarray], coefs: Sequence[float], constant: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimate, standard error and Welch–Satterthwaite df of ``Σ cᵢ mean(cellᵢ) + c₀``, vectorised: each cell an
    array ``(..., nᵢ)`` (the leading axes are independent draws, as in :mod:`kdtune.repro.power`)."""
    est = sum(c * np.mean(x, axis=-1) for c, x in zip(coefs, cells, strict=True)) + constant
    parts = [c * c * np.var(x, axis=-1, ddof=DDOF) / x.shape[-1] for c, x in zip(coefs, cells, strict=True)]
    var = sum(parts)
    with np.errstate(divide="ignore", invalid="ignore"):
        den = sum(np.where(v > 0, v * v / (x.shape[-1] - 1), 0.0) for v, x in zip(parts, cells, strict=True))
        df = np.where(var > 0, var * var / den, np.inf)
    return np.asarray(est, float), np.sqrt(np.asarray(var, float)), np.asarray(df, float)


def contrast(
    cells: Sequence[Sequence[float] | np.ndarray], coefs: Sequence[float], constant: float = 0.0, level: float = 1 - ALPHA
) -> Contrast:
    """The Welch–Satterthwaite test of ``Σ coefs[i] · mean(cells[i]) + constant = 0`` (see :class:`Contrast`);
    untestable (NaN p, ``why``) when a cell has fewer than 2 finite units or every cell has zero variance (the
    contrast has no standard error: never p = 0)."""
    xs = [_finite(c) for c in cells]
    nan = float("nan")
    if not xs or any(len(x) < 2 for x in xs):
        return Contrast(nan, nan, nan, nan, nan, nan, "a cell with fewer than 2 units", level)
    est, se, df = (float(v) for v in contrast_arrays(xs, coefs, constant))
    scale = max(float(np.max(np.abs(x))) for x in xs)
    if se == 0 or all(is_constant(x, scale) for x in xs):
        return Contrast(est, 0.0, nan, nan, nan, nan, "zero variance in every cell: no test", level)
    return Contrast(est, se, df, *_t_interval(est, se, df, level), "", level)


def paired_contrast(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, level: float = 1 - ALPHA) -> Contrast:
    """``mean(a - b)`` of paired units as a :class:`Contrast` (one-sample t-test of the differences, df = n - 1)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    return contrast([x[ok] - y[ok]], [1.0], level=level)


@dataclass(frozen=True)
class Equivalence:
    """Two one-sided tests (TOST) of ``|L| < margin`` for a contrast ``L``: ``p_equivalent`` (the larger of the two
    one-sided p-values: small when L lies inside ±margin) and ``p_beyond`` (small when L lies beyond the nearer
    margin: twice the smaller one-sided p of ``L > margin`` and ``L < -margin``, capped at 1). ``lo``/``hi``: the
    ``1 − 2α`` interval of L (90 % at α = 0.05), the one TOST at α corresponds to: inside ±margin exactly when
    ``p_equivalent < α``."""

    estimate: float
    margin: float
    p_equivalent: float
    p_beyond: float
    lo: float = float("nan")
    hi: float = float("nan")
    level: float = 1 - 2 * ALPHA
    why: str = ""


def tost_arrays(est: np.ndarray, se: np.ndarray, df: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """TOST's ``(p_equivalent, p_beyond)`` from estimates, standard errors and df (vectorised; see :class:`Equivalence`)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        above_low = scipy.stats.t.sf((est + margin) / se, df)  # H0: L <= -margin (small when L > -margin)
        below_high = scipy.stats.t.sf((margin - est) / se, df)  # H0: L >= margin (small when L < margin)
        beyond_high = scipy.stats.t.sf((est - margin) / se, df)  # H0: L <= margin (small when L > margin)
        beyond_low = scipy.stats.t.sf(-(est + margin) / se, df)  # H0: L >= -margin (small when L < -margin)
    return np.maximum(above_low, below_high), np.minimum(1.0, 2 * np.minimum(beyond_high, beyond_low))


def equivalence(c: Contrast, margin: float, alpha: float = ALPHA) -> Equivalence:
    """TOST of a contrast (its t statistic shifted by ∓margin, the same df) against ``±margin``, with the ``1 − 2α``
    interval. A contrast without a standard error (zero variance) is untestable here (NaN p, ``why``); a two-cell
    comparison with zero variance is tested by :func:`equivalence_exact` instead."""
    if not margin > 0:
        raise KdtuneError(f"an equivalence margin must be positive, got {margin}")
    nan = float("nan")
    level = 1 - 2 * alpha
    if not np.isfinite(c.estimate) or not np.isfinite(c.se) or c.se == 0:
        return Equivalence(c.estimate, margin, nan, nan, nan, nan, level, c.why or "no standard error")
    p_eq, p_out = tost_arrays(np.float64(c.estimate), np.float64(c.se), np.float64(c.df), margin)
    half = float(scipy.stats.t.ppf(1 - alpha, c.df) * c.se)
    return Equivalence(c.estimate, margin, float(p_eq), float(p_out), c.estimate - half, c.estimate + half, level)


def equivalence_exact(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, margin: float, *, paired: bool, alpha: float = ALPHA
) -> Equivalence:
    """TOST of ``mean(a) − mean(b)`` within ±margin by exact permutation tests (for units with zero variance, where no
    t-test exists): each one-sided null ``Δ = ±margin`` is tested by shifting ``a`` by ∓margin and counting the
    rearrangements (sign flips of the pairs, or relabellings) whose mean difference is at least as far toward the
    inside (or the outside). No interval (the units have no spread)."""
    x, y = _finite(a), _finite(b)
    nan = float("nan")
    if len(x) < 2 or len(y) < 2:
        return Equivalence(nan, margin, nan, nan, nan, nan, 1 - 2 * alpha, "fewer than 2 units a side")

    def one_sided(shift: float, sign: float) -> float:
        """P(T* ≥ T) for T = sign · (mean difference after shifting ``a`` by ``shift``); row 0 is the observed one."""
        stat = sign * _mean_diffs(x - shift, y, paired=paired, flips=math.inf)[0]
        tol = _TIE * max(1.0, float(np.max(np.abs(stat))))
        return float(np.mean(stat >= stat[0] - tol))

    est = float(np.mean(x - y)) if paired else float(np.mean(x) - np.mean(y))
    p_eq = max(one_sided(-margin, 1.0), one_sided(margin, -1.0))  # inside: above −margin and below +margin
    p_out = min(1.0, 2 * min(one_sided(margin, 1.0), one_sided(-margin, -1.0)))
    why = "zero variance: exact permutation TOST, no interval"
    return Equivalence(est, margin, p_eq, p_out, nan, nan, 1 - 2 * alpha, why)


# --------------------------------------------------------------------------------------------------------- spreads


@dataclass(frozen=True)
class SpreadTest:
    """Whether two cells' spreads differ: ``ratio`` = std(a) / std(b) (ddof 1), ``lo``/``hi`` its interval at
    ``level`` (the ratios the permutation test does not reject), ``p`` the two-sided permutation p of
    ``log(std(a)/std(b))``; ``reach`` the smallest p any relabelling could give (above α: untestable, ``why``)."""

    std_a: float
    std_b: float
    ratio: float
    p: float
    lo: float = float("nan")
    hi: float = float("nan")
    reach: float = float("nan")
    exact: bool = True
    why: str = ""
    level: float = 1 - ALPHA


def _residuals(x: np.ndarray) -> np.ndarray:
    """Units centred on their cell's mean and scaled by √(n/(n−1)), so cells of different n are comparable."""
    n = x.shape[-1]
    return (x - np.mean(x, axis=-1, keepdims=True)) * math.sqrt(n / (n - 1))


def spread_stats(x: np.ndarray, y: np.ndarray, assign: np.ndarray) -> np.ndarray:
    """log(SD ratio) of every relabelling (rows of ``assign``: 0 = cell a) of the centred units of ``x`` and ``y``,
    vectorised over leading axes: ``x`` (..., nₐ), ``y`` (..., n_b) → (..., P)."""
    r = np.concatenate([_residuals(x), _residuals(y)], axis=-1)
    na, nb = x.shape[-1], y.shape[-1]
    ga = (assign == 0).astype(float)
    s1, s2 = r @ ga.T, (r * r) @ ga.T
    t1, t2 = r.sum(-1, keepdims=True), (r * r).sum(-1, keepdims=True)
    var_a = (s2 - s1 * s1 / na) / (na - 1)
    var_b = ((t2 - s2) - (t1 - s1) ** 2 / nb) / (nb - 1)
    with np.errstate(divide="ignore", invalid="ignore"):  # a relabelling of equal residuals: ±inf, kept finite
        return np.clip(0.5 * (np.log(var_a) - np.log(var_b)), -1e3, 1e3)


def spread_assignments(na: int, nb: int, seed: int = SEED) -> tuple[np.ndarray, bool]:
    """The relabellings the spread test uses for cells of ``na`` and ``nb`` units (exhaustive where few)."""
    return _assignments((na, nb), MAX_EXACT, seed, RESAMPLES)


def spread_p(stat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided p and reach of the spread statistics of :func:`spread_stats` (``[..., 0]`` observed), vectorised."""
    a = np.abs(stat)
    finite = np.isfinite(a)
    a0 = a[..., :1]
    with np.errstate(invalid="ignore"):
        tol = _TIE * np.maximum(1.0, np.nanmax(np.where(finite, a, np.nan), axis=-1, keepdims=True))
        top = np.nanmax(np.where(finite, a, np.nan), axis=-1, keepdims=True)
    count = finite.sum(-1)
    p = ((a >= a0 - tol) & finite).sum(-1) / count
    reach = ((a >= top - tol) & finite).sum(-1) / count
    p = np.where(np.isfinite(a0[..., 0]), p, np.nan)
    return p, reach


def spread_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    alpha: float = ALPHA,
    level: float | None = None,
    seed: int = SEED,
) -> SpreadTest:
    """Permutation test of equal spreads: the statistic ``log(std(a)/std(b))`` of the cells' centred units against its
    value under every relabelling of those units between the cells (exact where there are at most
    :data:`MAX_EXACT`). Untestable (NaN p, ``why``) when a side has fewer than 2 units, when both cells are constant,
    or when no relabelling could give p < ``alpha`` (e.g. 2 vs 2 units: 6 relabellings, the smallest two-sided p is
    1/3; 3 vs 3: 0.1). The interval of the ratio: every ratio ρ whose null (``a``'s residuals divided by ρ) the test
    does not reject at ``1 − level`` (by bisection on log ρ)."""
    level = 1 - alpha if level is None else level
    x, y = _finite(a), _finite(b)
    nan = float("nan")
    if len(x) < 2 or len(y) < 2:
        return SpreadTest(nan, nan, nan, nan, why="fewer than 2 units a side", level=level)
    sa, sb = float(np.std(x, ddof=DDOF)), float(np.std(y, ddof=DDOF))
    ratio = sa / sb if sb > 0 else float("inf") if sa > 0 else nan
    if sa == 0 and sb == 0:
        return SpreadTest(sa, sb, ratio, nan, why="both cells constant: no spread to compare", level=level)
    assign, exact = spread_assignments(len(x), len(y), seed)
    p, reach = (float(v) for v in spread_p(spread_stats(x, y, assign)))
    n = f"{len(x)} vs {len(y)} units"
    if not reach < alpha:
        why = f"{n}: no relabelling can reach p < {alpha:g} (the smallest possible p is {reach:.2g})"
        return SpreadTest(sa, sb, ratio, nan, reach=reach, exact=exact, why=why, level=level)
    if sa == 0 or sb == 0:
        return SpreadTest(sa, sb, ratio, p, reach=reach, exact=exact, why="one cell constant: no interval", level=level)
    cut = 1 - level

    def p_at(delta: float) -> float:
        return float(spread_p(spread_stats(x * math.exp(-delta), y, assign))[0])

    est = math.log(sa / sb)

    def edge(direction: float) -> float:
        inside, step = est, 0.5
        outside = est + direction * step
        while p_at(outside) > cut:
            inside, step = outside, step * 2
            outside = est + direction * step
            if step > 64:
                return direction * math.inf
        for _ in range(50):
            mid = (inside + outside) / 2
            if p_at(mid) > cut:
                inside = mid
            else:
                outside = mid
        return inside

    lo, hi = math.exp(edge(-1.0)), math.exp(edge(1.0))
    return SpreadTest(sa, sb, ratio, p, lo, hi, reach, exact, "", level)


# ------------------------------------------------------------------------------------------------- pair measures


@dataclass(frozen=True)
class PairSample:
    """A measure between pairs of models: ``values[i, j]`` for models i, j (NaN: not computed; ordered: the row model
    first), each model's group ``labels[i]`` and id ``models[i]``. ``within``/``between``: which pairs count in a
    cell of one group and in a cell of two groups (None: every pair of distinct models); a pair left out by design
    (two models that share their initialisation, say) is left out under every relabelling too."""

    models: tuple[str, ...]
    labels: tuple[str, ...]
    values: np.ndarray
    within: np.ndarray | None = None
    between: np.ndarray | None = None

    def index(self, label: str) -> np.ndarray:
        return np.flatnonzero(np.asarray(self.labels, dtype=object) == label)

    def usable_for(self, within: bool) -> np.ndarray:
        """The pairs a cell of one group (``within``) or of two groups may average."""
        keep = ~np.eye(len(self.models), dtype=bool)
        mask = self.within if within else self.between
        return keep & np.asarray(mask, dtype=bool) if mask is not None else keep


@dataclass(frozen=True)
class PairTest:
    """A test on pair measures: the estimate (a difference of cell means, or a contrast), its interval at ``level``
    (jackknife over models), the p (permutation over model labels for :func:`pair_test`, jackknife t for
    :func:`pair_contrast`), how many relabellings, whether they were all, and the smallest p they could give."""

    estimate: float
    lo: float
    hi: float
    p: float
    test: str
    se: float = float("nan")
    df: float = float("nan")
    relabellings: int = 0
    exact: bool = True
    reach: float = float("nan")
    why: str = ""
    level: float = 1 - ALPHA
    models: tuple[str, ...] = field(default_factory=tuple)


Cell = tuple[str, str]  # (row group, column group) of a pair measure


def _cell_means(sample: PairSample, cells: Sequence[Cell], rows: np.ndarray, drop: np.ndarray | None = None) -> np.ndarray:
    """Mean of each cell's pairs under each labelling (``rows``: (P, m) labels), a (P, len(cells)) array; models marked
    in ``drop`` (P, m) are left out."""
    out = np.empty((rows.shape[0], len(cells)))
    for c, (r, col) in enumerate(cells):
        ok = sample.usable_for(r == col) & np.isfinite(sample.values)
        v, k = np.where(ok, sample.values, 0.0), ok.astype(float)
        rm, cm = (rows == r).astype(float), (rows == col).astype(float)
        if drop is not None:
            rm, cm = rm * ~drop, cm * ~drop
        s = ((rm @ v) * cm).sum(1)
        n = ((rm @ k) * cm).sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, c] = s / n
    return out


def _jackknife(
    sample: PairSample, cells: Sequence[Cell], coefs: Sequence[float], constant: float
) -> tuple[float, float, float, str]:
    """Delete-one-model jackknife of ``Σ cᵢ mean(cellᵢ) + c₀``: estimate, standard error and df, grouped by label
    (``se² = Σ_g (n_g − 1)/n_g Σ_{k∈g} (θ₋ₖ − θ̄_g)²``); df = Σ (n_g − 1) over the groups that are compared (those
    not in every cell; a shared column group is not), which kept the t-test at its level under exchangeable models
    at 3 to 6 models a group (tests/test_stats_null.py); ``why`` when a deletion leaves a cell without pairs."""
    labels = np.asarray(sample.labels, dtype=object)
    rows = labels[None, :]
    theta = float(_cell_means(sample, cells, rows)[0] @ np.asarray(coefs) + constant)
    involved = list(dict.fromkeys(g for c in cells for g in c))
    members = [i for i, lab in enumerate(labels) if lab in involved]
    drop = np.zeros((len(members), len(labels)), dtype=bool)
    drop[np.arange(len(members)), members] = True
    means = _cell_means(sample, cells, np.repeat(rows, len(members), axis=0), drop)
    if not np.isfinite(means).all():
        return theta, float("nan"), float("nan"), "a cell has no pair left when one model is left out (too few models)"
    loo = means @ np.asarray(coefs) + constant
    var = 0.0
    sizes = {}
    for g in involved:
        sel = np.array([labels[i] == g for i in members])
        n = sizes[g] = int(sel.sum())
        if n < 2:
            return theta, float("nan"), float("nan"), f"group {g} has {n} model(s): no jackknife"
        var += (n - 1) / n * float(np.sum((loo[sel] - loo[sel].mean()) ** 2))
    common = set(involved).intersection(*(set(c) for c in cells))  # a group in every cell (a shared column)
    compared = [g for g in involved if g not in common] or involved
    return theta, math.sqrt(var), float(max(1, sum(sizes[g] - 1 for g in compared))), ""


def exchangeable(a: Cell, b: Cell) -> list[str]:
    """The groups whose models are exchangeable under the null that cells ``a`` and ``b`` have the same mean: the
    groups that differ between them (``(G1, C)`` vs ``(G2, C)``: G1 and G2; ``(A, A)`` vs ``(B, B)``: A and B)."""
    if a[1] == b[1]:
        return list(dict.fromkeys([a[0], b[0]]))
    if a[0] == b[0]:
        return list(dict.fromkeys([a[1], b[1]]))
    return list(dict.fromkeys([*a, *b]))


def pair_test(
    sample: PairSample,
    a: Cell,
    b: Cell,
    *,
    alpha: float = ALPHA,
    level: float = 1 - ALPHA,
    seed: int = SEED,
    limit: int = MAX_EXACT,
) -> PairTest:
    """Test ``mean(cell a) = mean(cell b)`` of a pair measure by permuting model labels: the models of the groups that
    differ between the cells (:func:`exchangeable`) are relabelled in every distinct way that keeps each group's
    size (exact up to ``limit`` relabellings, else :data:`RESAMPLES` random ones), each cell's mean over its pairs
    recomputed, and p is the share of relabellings whose difference is at least as large in absolute value. The
    models, not the pairs, are the units: a model's pairs move with it. Untestable (NaN p, ``why``) when a group has
    no model, when a pair a relabelling needs was not computed, or when no relabelling can reach p < ``alpha``
    (e.g. 3 vs 3 models: 20 relabellings, the smallest p is 0.1). The interval: jackknife over models."""
    nan = float("nan")
    groups = exchangeable(a, b)
    labels = np.asarray(sample.labels, dtype=object)
    idx = [np.flatnonzero(labels == g) for g in groups]
    n = " vs ".join(f"{len(i)}" for i in idx)
    missing = [g for c in (a, b) for g in c if len(sample.index(g)) == 0]  # (the groups of idx among them)
    if missing:
        return PairTest(nan, nan, nan, nan, "pairs", why=f"no model in group {missing[0]}", level=level)
    pooled = np.concatenate(idx)
    count = _multinomial([len(i) for i in idx])
    if count * alpha <= 1:  # even the observed labelling alone among them has p = 1/count ≥ α: too few models
        why = f"{n} models: {count} relabellings, no p below 1/{count} = {1 / count:.2g} (not below {alpha:g})"
        observed = _cell_means(sample, [a, b], labels[None, :])[0]
        est = float(observed[0] - observed[1])
        return PairTest(est, nan, nan, nan, "pairs", relabellings=count, reach=1 / count, why=why, level=level)
    # every pair a relabelling could put in a cell must have a value (or be left out by design)
    lacking = 0
    for r, c in (a, b):
        need = np.zeros((len(labels), len(labels)), dtype=bool)
        need[np.ix_(pooled if r in groups else sample.index(r), pooled if c in groups else sample.index(c))] = True
        lacking += int((need & sample.usable_for(r == c) & ~np.isfinite(sample.values)).sum())
    if lacking:
        why = f"the permutation needs every pair among the models of {', '.join(groups)}; {lacking} were not computed"
        return PairTest(nan, nan, nan, nan, "pairs", why=why, level=level)
    assign, exact = _assignments(tuple(len(i) for i in idx), limit, seed, RESAMPLES)
    rows = np.repeat(labels[None, :], len(assign), axis=0)
    names = np.asarray(groups, dtype=object)
    rows[:, pooled] = names[assign]
    means = _cell_means(sample, [a, b], rows)
    stat = means[:, 0] - means[:, 1]
    p, reach = _p_from(stat)
    theta, se, df, jwhy = _jackknife(sample, [a, b], [1.0, -1.0], 0.0)
    lo, hi, _ = _t_interval(theta, se, df, level) if np.isfinite(se) and se > 0 else (nan, nan, nan)
    common = {"se": se, "df": df, "relabellings": len(assign), "exact": exact, "reach": reach, "level": level}
    if not np.isfinite(p):
        return PairTest(float(stat[0]), lo, hi, nan, "pairs", why="a cell without pairs", **common)
    if not reach < alpha:
        why = f"{n} models: {len(assign)} relabellings, the smallest possible p is {reach:.2g} (not below {alpha:g})"
        return PairTest(float(stat[0]), lo, hi, nan, "pairs", why=why, **common)
    return PairTest(float(stat[0]), lo, hi, p, "pairs", why=jwhy, **common)


def pair_contrast(
    sample: PairSample, cells: Sequence[Cell], coefs: Sequence[float], constant: float = 0.0, *, level: float = 1 - ALPHA
) -> Contrast:
    """``Σ cᵢ mean(cellᵢ) + c₀`` of a pair measure with its jackknife-over-models standard error (:func:`_jackknife`),
    tested with a t distribution, as a :class:`Contrast` (so that :func:`equivalence` can take it): for contrasts with a
    constant or a margin, which a permutation of labels cannot test. Untestable (NaN p, ``why``) with fewer than 3
    models in a group (the jackknife of a within-group cell needs pairs left after a deletion)."""
    nan = float("nan")
    for g in dict.fromkeys(x for c in cells for x in c):
        if len(sample.index(g)) < 3:
            why = f"group {g}: {len(sample.index(g))} model(s), the jackknife needs 3"
            return Contrast(nan, nan, nan, nan, nan, nan, why, level, "pairs-jackknife")
    theta, se, df, why = _jackknife(sample, cells, coefs, constant)
    if why or not np.isfinite(se):
        return Contrast(theta, nan, nan, nan, nan, nan, why or "no standard error", level, "pairs-jackknife")
    if se == 0:
        return Contrast(theta, 0.0, nan, nan, nan, nan, "zero variance over the jackknife: no test", level, "pairs-jackknife")
    return Contrast(theta, se, df, *_t_interval(theta, se, df, level), "", level, "pairs-jackknife")


POWER = 0.8  # the power at which :func:`detectable` measures what a test can find


def detectable(n_a: int, n_b: int, *, paired: bool, alpha: float, test: str = "t", power: float = POWER) -> float:
    """The smallest true difference of means, in standard deviations of the units (of the pairs' differences when
    ``paired``), that a two-sided test of ``n_a`` against ``n_b`` units finds at level ``alpha`` with probability
    ``power``: the noncentral t distribution of the paired t-test (df = n - 1) or of the two-sample t-test
    (df = n_a + n_b - 2, Welch's at equal spreads). ``inf`` where no data can reach ``alpha``: fewer than 2 units a side,
    or a permutation test whose smallest p (``2 / 2^n`` sign flips, ``2 / C(n_a + n_b, n_a)`` relabellings) is not
    below ``alpha``. What a test "cannot decide" at a table's n: ``--bold significant`` uses it."""
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
