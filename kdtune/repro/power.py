"""Claims calibrated on numbers: how often a claim, as coded, passes on synthetic units drawn from a table's means,
SDs and n (the paper's own, or a pilot run's), and how many units it needs for 80 % power.

**paper passes**: the share of seeded normal draws (:data:`DRAWS`) from the paper's cells in which the claim holds as
:mod:`kdtune.repro.claims` tests it, at α unadjusted (below half: its coding is in question); at the run's n per cell,
at α/m of its family of m tests, its **power** (a lower bound of Holm's), and :func:`needed_n` the n for 80 %.
Synthetic cells are unpaired (a lower bound for positively correlated pairs); pair measures have no published SDs and
are not calibrated (docs/studies.md, "Calibration and power").
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.stats

from kdtune.repro.claims import Cell, Claim, Expr, contrast_terms, trend_coefs
from kdtune.results import stats

DRAWS = 2000  # synthetic draws per claim and n
TARGET = 0.8  # the power :func:`needed_n` looks for
MAX_N = 64  # the largest n per cell :func:`needed_n` tries


@dataclass(frozen=True)
class Summary:
    """A cell's published (or a pilot run's) mean, standard deviation and n."""

    mean: float
    sd: float
    n: int


@dataclass(frozen=True)
class Calibration:
    """A claim on synthetic units: the share of draws at ``n_paper`` per cell where it holds (``passes``), its power
    at the run's n per cell (``power``, at ``level``: α/m), and the n per cell that gives 80 % at that level
    (``needed``, None beyond :data:`MAX_N`)."""

    passes: float
    power: float
    level: float
    needed: int | None
    n_paper: int
    n_run: tuple[int, ...]


def _seed(name: str, n: int | Sequence[int]) -> int:
    return zlib.crc32(f"{name}|{n}".encode()) + stats.SEED


def _draw(cells: Sequence[Cell], summaries: Mapping[Cell, Summary], n: Mapping[Cell, int], rng: np.random.Generator,
          draws: int) -> dict[Cell, np.ndarray]:  # fmt: skip
    return {c: rng.normal(summaries[c].mean, summaries[c].sd, (draws, n[c])) for c in dict.fromkeys(cells)}


def _t_p(cells: Sequence[np.ndarray], coefs: Sequence[float], constant: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per draw, the two-sided Welch–Satterthwaite p of the contrast and its estimate."""
    est, se, df = stats.contrast_arrays(cells, coefs, constant)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 2 * scipy.stats.t.sf(np.abs(est / se), df), est


def _link_p(left: Expr, op: str, right: Expr, margin: float | None, x: Mapping[Cell, np.ndarray],
            alpha: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per draw, the link's p as kdtune tests it on independent cells (≈: TOST's; a spread that cannot reach
    ``alpha``: 1) and whether its estimate lies the claimed way (always true for ≈)."""
    if any(t.spread for t in left.terms):
        a, b = x[left.cells[0]], x[right.cells[0]]
        assign, _ = stats.spread_assignments(a.shape[-1], b.shape[-1])
        p, reach = stats.spread_p(stats.spread_stats(a, b, assign))
        ratio = np.std(a, axis=-1, ddof=stats.DDOF) / np.std(b, axis=-1, ddof=stats.DDOF)
        return np.where(reach < alpha, p, 1.0), (ratio > 1 if op == ">" else ratio < 1)
    cells, coefs, constant = contrast_terms(left, right)
    if op == "≈":
        est, se, df = stats.contrast_arrays([x[c] for c in cells], coefs, constant)
        p_eq, _ = stats.tost_arrays(est, se, df, float(margin or 0.0))
        return p_eq, np.ones(est.shape, dtype=bool)
    p, est = _t_p([x[c] for c in cells], coefs, constant)
    return p, (est > 0 if op == ">" else est < 0)


def _claim_ps(claim: Claim, x: Mapping[Cell, np.ndarray], alpha: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per test of the claim (its links, or its one trend), the p per draw and whether it lies the claimed way."""
    if claim.chain == "trend" and len(claim.check.ops) > 1:
        p, est = _t_p([x[s.plain] for s in claim.check.sides], trend_coefs(claim.check))  # type: ignore[index]
        return [(p, est > 0)]
    return [_link_p(left, op, right, claim.check.margin, x, alpha) for left, op, right in claim.check.links]


def family_power(claims: Sequence[Claim], summaries: Mapping[Cell, Summary], n: int, alpha: float = stats.ALPHA,
                 draws: int = DRAWS, others: int = 0) -> list[float]:  # fmt: skip
    """Each claim's power as the verdict is reached: all the family's claims on one synthetic data set per draw (a
    cell two claims share is drawn once), every link's p, Holm over the family's links at ``alpha``; a claim holds
    when all its links do. ``n`` units per cell; ``others``: tests of the family without numbers to draw from, counted
    as never rejected (p = 1: a lower bound). Holm is more powerful than its Bonferroni bound when other claims of
    the family are far from their null (they are rejected first and the rest meet larger thresholds)."""
    cells = list(dict.fromkeys(c for claim in claims for c in claim.check.cells))
    rng = np.random.default_rng(_seed("|".join(c.name for c in claims), n))
    x = _draw(cells, summaries, dict.fromkeys(cells, n), rng, draws)
    ps, ways, owner = [], [], []
    for i, claim in enumerate(claims):
        for p, way in _claim_ps(claim, x, alpha):
            ps.append(np.where(np.isfinite(p), p, 1.0))
            ways.append(way)
            owner.append(i)
    p = np.stack(ps + [np.ones(draws)] * others, axis=1)  # draws × links
    m = p.shape[1]
    order = np.argsort(p, axis=1, kind="stable")
    stepped = np.minimum(1.0, (m - np.arange(m)) * np.take_along_axis(p, order, axis=1))
    adjusted = np.empty_like(p)
    np.put_along_axis(adjusted, order, np.maximum.accumulate(stepped, axis=1), axis=1)
    holds = (adjusted[:, : len(ways)] < alpha) & np.stack(ways, axis=1)
    return [float(np.mean(holds[:, [j for j, o in enumerate(owner) if o == i]].all(axis=1))) for i in range(len(claims))]


def family_needed_n(claims: Sequence[Claim], summaries: Mapping[Cell, Summary], alpha: float = stats.ALPHA,
                    draws: int = DRAWS // 2, others: int = 0) -> list[int | None]:  # fmt: skip
    """Per claim, the smallest n per cell (2 … :data:`MAX_N`, every cell of the family at that n) at which its power
    under Holm over the family (:func:`family_power`) reaches :data:`TARGET`; None beyond."""
    out: list[int | None] = [None] * len(claims)
    for n in range(2, MAX_N + 1):
        power = family_power(claims, summaries, n, alpha, draws, others)
        for i, pw in enumerate(power):
            if out[i] is None and pw >= TARGET:
                out[i] = n
        if all(v is not None for v in out):
            break
    return out


def pass_rate(claim: Claim, summaries: Mapping[Cell, Summary], n: Mapping[Cell, int], alpha: float = stats.ALPHA,
              draws: int = DRAWS) -> float:  # fmt: skip
    """The share of ``draws`` synthetic data sets (normal cells of the summaries' means and SDs, ``n`` units each) in
    which every link of the claim holds at ``alpha`` (a trend claim: its one trend)."""
    rng = np.random.default_rng(_seed(claim.name, sorted(n.values())))
    x = _draw(claim.check.cells, summaries, n, rng, draws)
    ok = np.ones(draws, dtype=bool)
    for p, way in _claim_ps(claim, x, alpha):
        ok &= (p < alpha) & way
    return float(np.mean(ok))


def calibratable(claim: Claim, summaries: Mapping[Cell, Summary]) -> bool:
    """Whether every cell of the claim has a summary with a positive SD (a per-model source: pair measures do not)."""
    cells = claim.check.cells
    return bool(cells) and all(c in summaries and summaries[c].sd > 0 and summaries[c].n >= 2 for c in cells)


def needed_n(claim: Claim, summaries: Mapping[Cell, Summary], level: float, draws: int = DRAWS // 5) -> int | None:
    """The smallest n per cell (2 … :data:`MAX_N`) at which the claim holds in :data:`TARGET` of the draws at ``level``
    (bisection over n: the power grows with n), None when even :data:`MAX_N` does not reach it."""
    cells = list(dict.fromkeys(claim.check.cells))

    def power(k: int) -> float:
        return pass_rate(claim, summaries, dict.fromkeys(cells, k), level, draws)

    if power(MAX_N) < TARGET:
        return None
    lo, hi = 1, MAX_N  # power(lo) < TARGET (n = 1 cannot be tested), power(hi) >= TARGET
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if power(mid) >= TARGET:
            hi = mid
        else:
            lo = mid
    return hi


def calibrate(
    claim: Claim,
    summaries: Mapping[Cell, Summary],
    run_n: Mapping[Cell, int],
    family_size: int,
    alpha: float = stats.ALPHA,
    draws: int = DRAWS,
) -> Calibration | None:
    """A claim on the summaries' numbers: paper passes (at the summaries' n, α), its power at ``run_n`` and the n for 80 %
    (both at α / ``family_size``); None when a cell has no summary."""
    if not calibratable(claim, summaries):
        return None
    cells = list(dict.fromkeys(claim.check.cells))
    n_paper = {c: summaries[c].n for c in cells}
    level = alpha / max(1, family_size)
    passes = pass_rate(claim, summaries, n_paper, alpha, draws)
    testable = all(run_n.get(c, 0) >= 2 for c in cells)
    power = pass_rate(claim, summaries, {c: run_n[c] for c in cells}, level, draws) if testable else float("nan")
    needed = needed_n(claim, summaries, level)
    return Calibration(passes, power, level, needed, min(n_paper.values()), tuple(run_n.get(c, 0) for c in cells))


def summaries_of(units: Mapping[Cell, np.ndarray]) -> dict[Cell, Summary]:
    """A pilot run's summaries: each cell's mean, SD (ddof 1) and n of its finite units."""
    out = {}
    for c, v in units.items():
        x = np.asarray(v, dtype=float)
        x = x[np.isfinite(x)]
        if len(x) >= 2:
            out[c] = Summary(float(np.mean(x)), float(np.std(x, ddof=stats.DDOF)), len(x))
    return out
