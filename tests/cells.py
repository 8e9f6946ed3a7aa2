"""The cells of one report table as a tidy frame, built from the steps :func:`kdtune.results.tables.render` takes (the planned
rows and keys of a table, then their aggregation): what the tests of cells, baselines and unfinished trials read."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from kdtune.results.tables import _aggregate, _scope


def aggregate(
    df: pd.DataFrame,
    metric: str,
    rows: Sequence[str] = ("student",),
    cols: Sequence[str] = ("eval_set", "teacher"),
    eval_sets: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Mean, std (ddof=1), n and n_expected (planned trials, finished or not) of ``metric`` per cell, tidy: each cell
    once, cells where nothing finished too (n = 0); baselines' KD settings empty (NaN); ``missing``: the status words
    of the cell's trials without a value."""
    planned, keys = _scope(df, metric, rows, cols, eval_sets)
    return _aggregate(planned, keys, metric)
