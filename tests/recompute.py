"""Every reported p and interval of a study report, recomputed from its per-unit export with scipy (and itertools
for the exact permutations), independently of kdtune.results.stats: what a reader of ``units.csv`` can redo.

``recompute(claims, units)`` returns one row per test (a claim row's comparison, once): the reported p, the p
recomputed, and the same for the adjusted p (Holm over each family, untestable counted as p = 1) and the interval's
ends where the test has one. Tests that are not deterministic (a permutation over random relabellings) are left
out and counted.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import scipy.stats


def _two(x: np.ndarray, y: np.ndarray, paired: bool, folds: int | None = None) -> tuple[float, float, float]:
    """Difference, standard error and df of two cells: paired (the differences' mean) or Welch's; over folds of a
    k-fold split each variance of a mean × (1/J + 1/(k − 1)) · J (Nadeau and Bengio)."""
    if paired:
        d = x - y
        factor = (1 / len(d) + 1 / (folds - 1)) if folds else 1 / len(d)
        return d.mean(), math.sqrt(d.var(ddof=1) * factor), len(d) - 1.0
    fx = (1 / len(x) + 1 / (folds - 1)) if folds else 1 / len(x)
    fy = (1 / len(y) + 1 / (folds - 1)) if folds else 1 / len(y)
    va, vb = x.var(ddof=1) * fx, y.var(ddof=1) * fy
    return x.mean() - y.mean(), math.sqrt(va + vb), (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1))


def _contrast(u: pd.DataFrame, constant: float) -> tuple[float, float, float]:
    """Σ coef · mean(cell) + constant over the sides cell1…cellk, its Welch–Satterthwaite standard error and df."""
    parts = _cells(u)
    est = sum(coef * r["value"].mean() for _, coef, r in parts) + constant
    v = [coef**2 * r["value"].var(ddof=1) / len(r) for _, coef, r in parts]
    df = sum(v) ** 2 / sum(x**2 / (len(r) - 1) for x, (_, _, r) in zip(v, parts, strict=True) if x > 0)
    return est, math.sqrt(sum(v)), df


def _t_p(est: float, se: float, df: float) -> float:
    return float(2 * scipy.stats.t.sf(abs(est / se), df))


def _interval(est: float, se: float, df: float, level: float) -> tuple[float, float]:
    half = float(scipy.stats.t.ppf(0.5 + level / 2, df) * se)
    return est - half, est + half


def _tost(est: float, se: float, df: float, margin: float) -> tuple[float, float]:
    inside = max(scipy.stats.t.sf((est + margin) / se, df), scipy.stats.t.sf((margin - est) / se, df))
    beyond = min(1.0, 2 * min(scipy.stats.t.sf((est - margin) / se, df), scipy.stats.t.sf(-(est + margin) / se, df)))
    return float(inside), float(beyond)


def _exact_two(x: np.ndarray, y: np.ndarray, paired: bool) -> float:
    """Two-sided exact permutation p of the mean difference (sign flips of pairs, or every split of the units)."""
    if paired:
        d = x - y
        stats = [np.mean(np.array(s) * d) for s in itertools.product((1.0, -1.0), repeat=len(d))]
        obs = d.mean()
    else:
        pooled = np.concatenate([x, y])
        stats = []
        for chosen in itertools.combinations(range(len(pooled)), len(x)):
            mask = np.zeros(len(pooled), bool)
            mask[list(chosen)] = True
            stats.append(pooled[mask].mean() - pooled[~mask].mean())
        obs = x.mean() - y.mean()
    a = np.abs(stats)
    return float(np.mean(a >= abs(obs) - 1e-12 * max(1.0, a.max())))


def _spread_exact(x: np.ndarray, y: np.ndarray) -> float:
    r = np.concatenate([(x - x.mean()) * math.sqrt(len(x) / (len(x) - 1)), (y - y.mean()) * math.sqrt(len(y) / (len(y) - 1))])
    stat = []
    for chosen in itertools.combinations(range(len(r)), len(x)):
        mask = np.zeros(len(r), bool)
        mask[list(chosen)] = True
        va, vb = r[mask].var(ddof=1), r[~mask].var(ddof=1)
        stat.append(float(np.clip(0.5 * (np.log(va) - np.log(vb)), -1e3, 1e3)) if va > 0 and vb > 0 else 1e3)
    obs = 0.5 * math.log(x.var(ddof=1) / y.var(ddof=1))
    a = np.abs(stat)
    return float(np.mean(a >= abs(obs) - 1e-12 * max(1.0, a.max())))


def _cells(rows: pd.DataFrame) -> list[tuple[str, float, pd.DataFrame]]:
    """(cell name, coefficient, its unit rows) of a contrast's sides ``cell1``, ``cell2``, … in order."""
    sides = sorted({s for s in rows["side"] if str(s).startswith("cell")}, key=lambda s: int(s[4:]))
    return [(s, float(rows.loc[rows["side"] == s, "coef"].iloc[0]), rows[rows["side"] == s]) for s in sides]


def _pair_cell(rows: pd.DataFrame) -> tuple[str, str]:
    first = rows.iloc[0]
    return str(first["group1"]), str(first["group2"])


def _pair_mean(pairs: pd.DataFrame, label: dict[str, str], cell: tuple[str, str]) -> float:
    r, c = cell
    col = "within" if r == c else "between"
    sel = pairs[(pairs["model1"].map(label) == r) & (pairs["model2"].map(label) == c) & pairs[col].astype(bool)]
    return float(sel["value"].mean()) if len(sel) else float("nan")


def _pairs_permutation(rows: pd.DataFrame, groups: list[str]) -> float:
    """The permutation over model labels, every relabelling of the models of ``groups`` enumerated (itertools)."""
    cells = [_pair_cell(r) for _, _, r in _cells(rows)]
    label = {}
    for m, g in itertools.chain(
        zip(rows["model1"], rows["group1"], strict=True), zip(rows["model2"], rows["group2"], strict=True)
    ):
        label[str(m)] = str(g)
    pairs = rows.assign(model1=rows["model1"].astype(str), model2=rows["model2"].astype(str))
    pooled = sorted(m for m, g in label.items() if g in groups)
    sizes = [sum(1 for m in pooled if label[m] == g) for g in groups]

    def assignments(free: list[str], k: int):
        if k == len(groups) - 1:
            yield dict.fromkeys(free, groups[k])
            return
        for chosen in itertools.combinations(free, sizes[k]):
            rest = [m for m in free if m not in chosen]
            for tail in assignments(rest, k + 1):
                yield dict.fromkeys(chosen, groups[k]) | tail

    stats = []
    for relabel in assignments(pooled, 0):
        lab = label | relabel
        stats.append(_pair_mean(pairs, lab, cells[0]) - _pair_mean(pairs, lab, cells[1]))
    obs = _pair_mean(pairs, label, cells[0]) - _pair_mean(pairs, label, cells[1])
    a = np.abs(stats)
    return float(np.mean(a >= abs(obs) - 1e-12 * max(1.0, np.nanmax(a))))


def _by_architecture(rows: pd.DataFrame) -> pd.DataFrame:
    """Groups named by architecture and teacher (``MLP:data``) where the rows say which architecture (column
    ``model``): a barrier cell of MLPs from data and one of CNNs from data are both teacher ``data``."""
    if "model" not in rows or rows["model"].isna().all():
        return rows
    arch = rows["model"].astype(str) + ":"
    return rows.assign(group1=arch + rows["group1"].astype(str), group2=arch + rows["group2"].astype(str))


def _jackknife(rows: pd.DataFrame, constant: float) -> tuple[float, float, float]:
    """Delete-one-model jackknife of Σ coef · mean(cell) + constant, grouped by label; df over the compared groups."""
    parts = _cells(_by_architecture(rows))
    cells = [(_pair_cell(r), coef) for _, coef, r in parts]
    label = {}
    for _, _, r in parts:
        for m, g in itertools.chain(zip(r["model1"], r["group1"], strict=True), zip(r["model2"], r["group2"], strict=True)):
            label[str(m)] = str(g)
    pairs = pd.concat([r for _, _, r in parts]).drop_duplicates(["model1", "model2"])
    pairs = pairs.assign(model1=pairs["model1"].astype(str), model2=pairs["model2"].astype(str))

    def theta(drop: str | None) -> float:
        keep = pairs if drop is None else pairs[(pairs["model1"] != drop) & (pairs["model2"] != drop)]
        return sum(coef * _pair_mean(keep, label, cell) for cell, coef in cells) + constant

    involved = list(dict.fromkeys(g for cell, _ in cells for g in cell))
    var = 0.0
    for g in involved:
        loo = np.array([theta(m) for m, lab in label.items() if lab == g])
        var += (len(loo) - 1) / len(loo) * float(np.sum((loo - loo.mean()) ** 2))
    common = set(involved).intersection(*(set(cell) for cell, _ in cells))
    compared = [g for g in involved if g not in common] or involved
    df = max(1, sum(sum(1 for lab in label.values() if lab == g) - 1 for g in compared))
    return theta(None), math.sqrt(var), float(df)


def _holm(p: list[float]) -> list[float]:
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return list(adjusted)


def recompute(claims: pd.DataFrame, units: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """One row per test with reported and recomputed p, adjusted p and interval ends; and how many tests were left
    out as not deterministic."""
    rows = []
    skipped = 0
    tests = claims[claims["same_as"].isna() | (claims["same_as"] == "")].drop_duplicates("key")
    for _, c in tests.iterrows():
        out = {"key": c["key"], "test": c["test"], "family": c["test_family"], "op": ">" if c["test"] != "tost" else "≈"}
        out |= {"p": c["p"], "p_beyond": c["p_beyond"], "p_adjusted": c["p_adjusted"], "lo": c["lo"], "hi": c["hi"]}
        out |= {"p_adjusted_beyond": c["p_beyond_adjusted"], "untestable": c["link_verdict"] == "untestable"}
        u = units[units["key"] == c["key"]]
        test = c["test"]
        new: dict[str, float] = {}
        if out["untestable"] or not isinstance(test, str):
            rows.append(out | {"p_new": np.nan})
            continue
        left, right = u[u["side"] == "left"]["value"].to_numpy(float), u[u["side"] == "right"]["value"].to_numpy(float)
        level, margin = float(c["level"]), float(c["margin"]) if pd.notna(c.get("margin")) else 0.0
        folds = c.get("folds")
        if test == "welch":
            r = scipy.stats.ttest_ind(left, right, equal_var=False)
            ci = r.confidence_interval(level)
            new = {"p_new": r.pvalue, "lo_new": ci.low, "hi_new": ci.high}
        elif test == "paired":
            r = scipy.stats.ttest_rel(left, right)
            ci = r.confidence_interval(level)
            new = {"p_new": r.pvalue, "lo_new": ci.low, "hi_new": ci.high}
        elif test in ("paired-folds", "welch-folds"):
            est, se, df = _two(left, right, test == "paired-folds", int(folds))
            new = {"p_new": _t_p(est, se, df)} | dict(zip(("lo_new", "hi_new"), _interval(est, se, df, level), strict=True))
        elif test == "exact":
            new = {"p_new": _exact_two(left, right, bool(c["paired"]) if pd.notna(c["paired"]) else False)}
        elif test in ("contrast", "trend"):
            est, se, df = _contrast(u, float(c["constant"] or 0.0))
            new = {"p_new": _t_p(est, se, df)} | dict(zip(("lo_new", "hi_new"), _interval(est, se, df, level), strict=True))
        elif test == "tost":
            if len(left) and len(right):  # two cells of models
                k = int(folds) if pd.notna(folds) else None
                est, se, df = _two(left, right, bool(c["paired"]), k)
            elif "model1" in u and u["model1"].notna().any():  # pairs: the jackknife over models
                est, se, df = _jackknife(u, float(c["constant"] or 0.0))
            else:
                est, se, df = _contrast(u, float(c["constant"] or 0.0))
            p_in, p_out = _tost(est, se, df, margin)
            lo, hi = _interval(est, se, df, level)  # level: 1 − 2α on ≈ rows
            new = {"p_new": p_in, "p_beyond_new": p_out, "lo_new": lo, "hi_new": hi}
        elif test == "spread":
            if not bool(c["exact"]):
                skipped += 1
                rows.append(out | {"p_new": np.nan})
                continue
            new = {"p_new": _spread_exact(left, right)}
        elif test == "pairs":
            if not bool(c["exact"]):
                skipped += 1
                rows.append(out | {"p_new": np.nan})
                continue
            est, se, df = _jackknife(u[u["side"] != "pool"], 0.0)  # its interval: the jackknife over models
            new = {"p_new": _pairs_permutation(u, str(c["groups"]).split("|"))}
            new |= dict(zip(("lo_new", "hi_new"), _interval(est, se, df, level), strict=True))
        elif test == "pairs-jackknife":
            est, se, df = _jackknife(u, float(c["constant"] or 0.0))
            new = {"p_new": _t_p(est, se, df)} | dict(zip(("lo_new", "hi_new"), _interval(est, se, df, level), strict=True))
        else:
            skipped += 1
        rows.append(out | new)
    frame = pd.DataFrame(rows)
    for _family, sel in frame.groupby("family"):
        p = [1.0 if u else (q if np.isfinite(q) else 1.0) for u, q in zip(sel["untestable"], sel["p_new"], strict=True)]
        frame.loc[sel.index, "p_adjusted_new"] = _holm(p)
        if (sel["op"] == "≈").any():
            pb_new = sel["p_beyond_new"] if "p_beyond_new" in sel else sel["p_new"]
            beyond = [pb if op == "≈" and np.isfinite(pb) else q for op, pb, q in zip(sel["op"], pb_new, p, strict=True)]
            frame.loc[sel.index, "p_beyond_adjusted_new"] = _holm(beyond)
    return frame, skipped
