"""Claims about a paper as small checkable statements, and their verdicts on a run's results.

A claim's ``check`` is a comparison of cells of kdtune's tables, e.g.::

    accuracy[student=MLP, teacher=CNN, eval_set=translated] > accuracy[student=MLP, teacher=data, eval_set=translated]
    a_accuracy[student=LSTM, teacher=data] > a_accuracy[student=UT-seq, teacher=data] > a_accuracy[student=MLP, teacher=data]
    im[student=MLP, teacher=ResNet, eval_set=test] ≈ im[student=MLP, teacher=MLP, eval_set=test] within 0.05
    std(accuracy[student=CNN, teacher=data, eval_set=scaled]) < std(accuracy[student=MLP, teacher=data, eval_set=scaled])
    accuracy[student=MLP, teacher=CNN, start=0.5] > 0.5*accuracy[student=MLP, teacher=CNN] + 0.5*accuracy[student=MLP]

The grammar::

    check    := expr OP expr (OP expr)* ["within" NUMBER]
    OP       := ">" | "<" | "≈"            (">=", "<=" read as ">", "<": no test tells them apart; "~" for "≈")
    expr     := ["-"] term (("+" | "-") term)*
    term     := NUMBER ["*" operand] | operand
    operand  := cell | "std(" cell ")"
    cell     := [SOURCE "."] METRIC "[" KEY "=" VALUE ("," KEY "=" VALUE)* "]"

A chain ``a > b > c`` is ``a > b`` and ``b > c`` (or one linear trend: ``Claim.chain``). ``≈`` needs ``within M``
(equivalent within ±M) and is never chained; ``std()`` compares spreads and is a whole side on both sides. SOURCE is
``report`` (the default: the run's per-trial results; METRIC a results column, KEY a report key) or an analysis'
table (:data:`SOURCES`).

Each comparison is tested with :mod:`kdtune.results.stats` over the cells' independent units, one test per
comparison (:class:`Checker`), Holm once per family (:data:`FAMILIES`); the tests, families and verdicts
(:data:`VERDICTS`) are described in docs/studies.md ("Claims and verdicts").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.stats

from kdtune import labels
from kdtune.errors import KdtuneError
from kdtune.labels import METRICS, REPORT_KEYS, UNIT_KEYS, Units, cell_units, matches, number_labels, varying
from kdtune.results import stats

HOLDS, CONTRADICTED, NOT_SIGNIFICANT, UNTESTABLE = "holds", "contradicted", "not significant", "untestable"
VERDICTS = (HOLDS, CONTRADICTED, NOT_SIGNIFICANT, UNTESTABLE)


@dataclass(frozen=True)
class Source:
    """Where the units of a cell come from: ``path`` under ``RUN/analysis/`` (``None``: the run's results), the keys
    a cell may name, the unit column and the metrics (``columns``: a metric's column in the file, if named otherwise).

    A source of *pairs* (``pairs``: similarity, CKA, error overlap, barriers) holds one row per pair of models: its
    two models (``ids``) and their groups (``groups``); a cell names its row and column group with ``cell_keys`` and
    the other keys select the pairs' sample (an eval set; an architecture). ``symmetric``: a pair listed once stands
    for both orders. Columns ``within``/``between`` (when present) say whether a pair counts in a cell of one group or
    of two groups."""

    name: str
    path: str | None
    keys: tuple[str, ...]
    unit: str
    metrics: tuple[str, ...]
    analysis: str = ""
    columns: tuple[tuple[str, str], ...] = ()
    pairs: bool = False
    ids: tuple[str, str] = ("", "")
    groups: tuple[str, str] = ("", "")
    cell_keys: tuple[str, str] = ("", "")
    symmetric: bool = True

    def column(self, metric: str) -> str:
        return dict(self.columns).get(metric, metric)


SOURCES: dict[str, Source] = {
    "report": Source("report", None, (*REPORT_KEYS, "sweep"), "trial_id", METRICS),
    "similarity": Source(
        "similarity", "similarity/pairs.csv", ("group", "column"), "pair", ("value",), "similarity",
        (("value", "similarity"),), True, ("trial1", "trial2"), ("group1", "group2"), ("group", "column"),
    ),
    "cka": Source(
        "cka", "similarity/pairs.csv", ("group", "column"), "pair", ("value",), "similarity",
        (("value", "cka"),), True, ("trial1", "trial2"), ("group1", "group2"), ("group", "column"),
    ),
    "barriers": Source(
        "barriers", "barriers/pairs.csv", ("model", "teacher1", "teacher2", "same_init"), "pair",
        ("barrier", "accuracy_mid"), "barriers", (), True, ("trial1", "trial2"), ("teacher1", "teacher2"),
        ("teacher1", "teacher2"),
    ),
    "invariance": Source(
        "invariance", "invariance/invariance_trials.csv", ("group", "eval_set"), "trial_id", ("im",), "invariance"
    ),
    "errors": Source(
        "errors", "errors/error_pairs.csv", ("eval_set", "group", "column"), "pair", ("jaccard", "share_of_b_in_a"),
        "errors", (), True, ("a", "b"), ("group_a", "group_b"), ("group", "column"), False,
    ),
}  # fmt: skip


# ---------------------------------------------------------------------------------------------------- the grammar


@dataclass(frozen=True)
class Cell:
    """One cell of a table: ``source.metric[key=value, ...]``."""

    source: str
    metric: str
    keys: tuple[tuple[str, str], ...]

    def __str__(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.keys)
        prefix = "" if self.source == "report" else f"{self.source}."
        return f"{prefix}{self.metric}[{inner}]"


@dataclass(frozen=True)
class Term:
    """``coef · cell`` (``cell`` None: the constant ``coef``); ``spread``: ``std(cell)``."""

    coef: float
    cell: Cell | None = None
    spread: bool = False


@dataclass(frozen=True)
class Expr:
    terms: tuple[Term, ...]
    text: str

    @property
    def cells(self) -> list[Cell]:
        return [t.cell for t in self.terms if t.cell is not None]

    @property
    def plain(self) -> Cell | None:
        """The cell when the side is one cell with coefficient 1 (a two-cell comparison), else None."""
        if len(self.terms) == 1 and self.terms[0].cell is not None and self.terms[0].coef == 1 and not self.terms[0].spread:
            return self.terms[0].cell
        return None


@dataclass(frozen=True)
class Check:
    """A parsed claim: ``sides[0] ops[0] sides[1] ops[1] …`` (``margin`` for ``≈``)."""

    sides: tuple[Expr, ...]
    ops: tuple[str, ...]
    margin: float | None
    text: str

    @property
    def links(self) -> list[tuple[Expr, str, Expr]]:
        return [(self.sides[i], op, self.sides[i + 1]) for i, op in enumerate(self.ops)]

    @property
    def cells(self) -> list[Cell]:
        return [c for s in self.sides for c in s.cells]


_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<br>\[[^\]]*\]?)"
    r"|(?P<op>≈|~=|~|>=|<=|≥|≤|>|<)|(?P<sym>[().*+-])|(?P<bad>\S))"
)
_OPS = {"≈": "≈", "~=": "≈", "~": "≈", ">=": ">", "≥": ">", ">": ">", "<=": "<", "≤": "<", "<": "<"}


class _Parser:
    def __init__(self, text: str, where: str) -> None:
        self.text, self.where = text, where
        self.tokens: list[tuple[str, str, int]] = []
        for m in _TOKEN.finditer(text):
            kind = m.lastgroup
            if kind is None:
                continue
            self.tokens.append((kind, m.group(kind), m.start(kind)))
        self.i = 0

    def fail(self, what: str, expected: str) -> KdtuneError:
        return KdtuneError(f"{self.where}: {what} at character {self.position() + 1} of {self.text!r}; {expected}")

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def at(self, kind: str, *texts: str) -> bool:
        """Whether the next token is of ``kind`` (and one of ``texts``, when given)."""
        tok = self.peek()
        return tok is not None and tok[0] == kind and (not texts or tok[1] in texts)

    def take(self) -> tuple[str, str, int]:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def check(self) -> Check:
        if not self.tokens:
            raise KdtuneError(
                f"{self.where}: empty check; e.g. accuracy[student=MLP, teacher=CNN] > accuracy[student=MLP, teacher=data]"
            )
        sides, ops, margin = [self.expr()], [], None
        while self.at("op"):
            ops.append(_OPS[self.take()[1]])
            sides.append(self.expr())
        if self.at("name", "within"):
            self.take()
            if not self.at("num"):
                raise self.fail("'within' without a number", "write e.g. 'within 0.05'")
            margin = float(self.take()[1])
            if margin <= 0:
                raise self.fail(f"margin {margin:g}", "an equivalence margin must be positive")
        if self.peek() is not None:
            raise self.fail(f"unexpected {self.peek()[1]!r}", "expected an operator (>, <, ≈), 'within', + or -")  # type: ignore[index]
        if not ops:
            raise self.fail("no comparison", "a check compares two sides with >, < or ≈")
        if "≈" in ops and len(ops) > 1:
            raise self.fail("≈ in a chain", "≈ compares exactly two sides")
        if "≈" in ops and margin is None:
            raise self.fail("≈ without a margin", "write 'A ≈ B within M' (equivalent within ±M)")
        if margin is not None and "≈" not in ops:
            raise self.fail("'within' without ≈", "a margin belongs to an equivalence (A ≈ B within M)")
        if len(set(ops)) > 1:
            raise self.fail("a chain mixing > and <", "a chain goes one way (a > b > c)")
        if not any(s.cells for s in sides):
            raise self.fail("no cell", "a check compares cells, e.g. accuracy[student=MLP] > 0.9")
        if len(ops) > 1 and not all(s.cells for s in sides):
            raise self.fail("a number inside a chain", "each side of a chain is a cell")
        spread = [any(t.spread for t in s.terms) for s in sides]
        if any(spread) and not (
            all(spread) and len(sides) == 2 and all(len(s.terms) == 1 and s.terms[0].coef == 1 for s in sides)
        ):
            raise self.fail("std() mixed with other terms", "compare spreads side against side: std(A) < std(B)")
        if any(spread) and "≈" in ops:
            raise self.fail("std() with ≈", "spreads are compared with > or <")
        return Check(tuple(sides), tuple(ops), margin, self.text)

    def position(self) -> int:
        return self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text)

    def expr(self) -> Expr:
        start = self.position()
        terms: list[Term] = []
        sign = 1.0
        if self.at("sym", "-"):
            self.take()
            sign = -1.0
        while True:
            t = self.term()
            terms.append(Term(sign * t.coef, t.cell, t.spread))
            if not self.at("sym", "+", "-"):
                break
            sign = 1.0 if self.take()[1] == "+" else -1.0
        return Expr(tuple(terms), self.text[start : self.position()].strip())

    def term(self) -> Term:
        if self.peek() is None:
            raise self.fail("the check ends early", "expected a cell or a number")
        if not self.at("num"):
            return self.operand()
        coef = float(self.take()[1])
        if not self.at("sym", "*"):
            return Term(coef)
        self.take()
        op = self.operand()
        return Term(coef, op.cell, op.spread)

    def operand(self) -> Term:
        if not self.at("name", "std"):
            return Term(1.0, self.cell())
        self.take()
        if (p := self.peek()) is None or p[1] != "(":
            raise self.fail("std without '('", "write std(metric[key=value])")
        self.take()
        cell = self.cell()
        if (p := self.peek()) is None or p[1] != ")":
            raise self.fail("std( without ')'", "write std(metric[key=value])")
        self.take()
        return Term(1.0, cell, spread=True)

    def cell(self) -> Cell:
        tok = self.peek()
        if not self.at("name"):
            raise self.fail(
                f"unexpected {tok[1]!r}" if tok else "the check ends early", "expected a cell: metric[key=value, ...]"
            )
        first = self.take()[1]
        source, metric = "report", first
        if (p := self.peek()) is not None and p[1] == ".":
            self.take()
            if not self.at("name"):
                raise self.fail(f"nothing after {first}.", "expected source.metric[...]")
            source, metric = first, self.take()[1]
        if source not in SOURCES:
            raise self.fail(f"unknown source {source!r}", f"sources: {', '.join(SOURCES)}")
        src = SOURCES[source]
        if metric not in src.metrics:
            raise self.fail(f"unknown metric {metric!r} of {source}", f"one of {', '.join(src.metrics)}")
        if not self.at("br"):
            raise self.fail(
                f"{metric} without [key=value, ...]", "a cell names its keys, e.g. accuracy[student=MLP, teacher=data]"
            )
        if not (br := self.peek()[1]).endswith("]"):  # type: ignore[index]
            raise self.fail("a '[' without ']'", "close the cell's keys with ']'")
        self.take()
        keys: list[tuple[str, str]] = []
        for part in br[1:-1].split(","):
            key, eq, value = (s.strip() for s in part.partition("="))
            if not eq or not key or not value:
                raise self.fail(f"{part.strip()!r} in {metric}[…]", "each key is KEY=VALUE, separated by commas")
            if key not in src.keys:
                raise self.fail(f"unknown key {key!r} of {source}", f"keys: {', '.join(src.keys)}")
            if key in dict(keys):
                raise self.fail(f"key {key!r} twice", "name each key once")
            keys.append((key, value))
        return Cell(source, metric, tuple(keys))


def parse_check(text: str, where: str = "claim") -> Check:
    """Parse a claim's ``check`` (the grammar in this module's docstring); a one-line :class:`KdtuneError`
    naming ``where``, the position and what was expected when it does not parse."""
    if not isinstance(text, str):
        raise KdtuneError(f"{where}: a check must be a string, got {type(text).__name__}")
    return _Parser(text, where).check()


# ------------------------------------------------------------------------------------------------------- the units


@dataclass
class PairCell:
    """A cell of a pair measure: its sample (the pairs of one eval set or architecture: :class:`kdtune.results.stats.PairSample`),
    which sample that is (``sample_key``), and the cell's row and column group."""

    sample: stats.PairSample
    sample_key: tuple[tuple[str, str], ...]
    row: str
    col: str

    @property
    def cell(self) -> stats.Cell:
        return (self.row, self.col)

    def pairs(self) -> list[tuple[int, int]]:
        """The pairs (model indices) the cell averages."""
        s = self.sample
        rows, cols = s.index(self.row), s.index(self.col)
        mask = s.usable_for(self.row == self.col)
        return [(int(i), int(j)) for i in rows for j in cols if mask[i, j] and np.isfinite(s.values[i, j])]

    @property
    def n(self) -> int:
        """Models of the row group (the units a permutation moves), or of both groups between two."""
        return len(self.sample.index(self.row))

    def describe(self) -> str:
        return f"{self.n} models" if self.row == self.col else f"{self.n}×{len(self.sample.index(self.col))} models"


def _narrow(rows: pd.DataFrame, keys: Sequence[tuple[str, str]], cell: object, lacks: str) -> pd.DataFrame | str:
    """The rows whose every ``key`` reads as its value (:func:`kdtune.labels.matches`), or one line: ``lacks`` and the
    key the rows do not have (``these results have no seed``), or the value no row holds (and the values they do)."""
    for key, text in keys:
        if key not in rows.columns:
            return f"{cell}: {lacks} {key}"
        kept = rows[matches(rows[key], text)]
        if kept.empty:
            return f"{cell}: no {key}={text} (there is {_listing(rows[key]) or 'nothing'})"
        rows = kept
    return rows


def _listing(values: pd.Series) -> str:
    seen = list(number_labels(dict.fromkeys(values.dropna().tolist())).values())
    return ", ".join(seen[:12]) + (", …" if len(seen) > 12 else "")


def _bools(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame:
        return np.ones(len(frame), dtype=bool)
    return frame[column].map(lambda v: v in (True, "True", "true", 1)).to_numpy(dtype=bool)


class Evidence:
    """Resolves cells to their units: the run's results (``df``, as :func:`kdtune.results.reader.collect_runs` gives) and
    the analyses' tables under ``run_dir/analysis`` (read once each)."""

    def __init__(self, df: pd.DataFrame, run_dir: Path | Sequence[Path] | None = None, settings: Sequence[str] = ()) -> None:
        self.df = df
        dirs = [] if run_dir is None else [run_dir] if isinstance(run_dir, (str, Path)) else list(run_dir)
        self.run_dirs = [Path(d) for d in dirs]
        self.settings = [s for s in settings if s in df.columns]
        self._tables: dict[str, pd.DataFrame | None] = {}

    def restricted(self, sweeps: Sequence[str]) -> tuple[Evidence, list[str]]:
        """The evidence of the trials of ``sweeps`` (sweep names) when the results hold any of them, else all of it;
        and the names used (empty: no restriction). A reference table names the sweeps that reproduce it, so a
        label two sweeps share (an MLP on digits and an MLP on sets) never pools their trials."""
        if not sweeps or "sweep" not in self.df:
            return self, []
        wanted = set(sweeps)
        keep = self.df["sweep"].map(lambda v: isinstance(v, str) and bool(wanted & set(v.split(","))))
        if not keep.any():
            return self, []
        out = Evidence(self.df[keep], self.run_dirs, self.settings)
        out._tables = self._tables
        found = sorted({x for v in self.df.loc[keep, "sweep"] for x in v.split(",")} & wanted)
        return out, found

    def table(self, source: Source) -> pd.DataFrame | None:
        """The results (``report``) or an analysis' table, those of several run folders stacked."""
        if source.path is None:
            return self.df
        if source.path not in self._tables:
            found = [pd.read_csv(p) for d in self.run_dirs if (p := d / "analysis" / source.path).is_file()]
            self._tables[source.path] = pd.concat(found, ignore_index=True) if found else None
        return self._tables[source.path]

    def units(self, cell: Cell) -> Units | PairCell | str:
        """The cell's units (models, or the pairs of a pair measure), or why it cannot be tested (missing, ambiguous)."""
        src = SOURCES[cell.source]
        frame = self.table(src)
        if frame is None:
            return f"{cell}: no analysis/{src.path} (run kdtune analyze RUN --only {src.analysis})"
        if src.pairs:
            return self._pair_cell(cell, src, frame)
        rows = _narrow(frame, cell.keys, cell, "these results have no")
        if isinstance(rows, str):
            return rows
        if cell.metric not in rows.columns:
            return f"{cell}: these results have no {cell.metric}"
        if cell.source == "report":
            return self._report_units(cell, rows)
        units = rows[src.unit]
        if units.duplicated().any():
            free = [k for k in src.keys if k in rows.columns and rows[k].nunique(dropna=False) > 1]
            return f"{cell}: matches more than one cell (name {', '.join(free) or 'more keys'})"
        values = rows[cell.metric].to_numpy(dtype=float)
        return Units([(u,) for u in units], values, len(values), [str(u) for u in units])

    def _report_units(self, cell: Cell, rows: pd.DataFrame) -> Units | str:
        named = {k for k, _ in cell.keys}
        free = varying(rows, (), [([c for c in self.settings if c not in named], True)])
        if free:
            shown = "; ".join(f"{c}: {_listing(rows[c].astype(object).where(rows[c].notna(), '–'))}" for c in free)
            return f"{cell}: matches more than one configuration ({shown}); name one with key=value"
        if "sweep" in rows and "sweep" not in named:
            sets = [set(str(x).split(",")) for x in rows["sweep"].dropna()]
            if sets and not set.intersection(*sets):
                shown = ", ".join(sorted(set.union(*sets)))
                return f"{cell}: matches trials of different sweeps ({shown}); name one with sweep=NAME"
        return cell_units(rows, cell.metric).finished()  # the planned design (k folds), the units that finished

    def _pair_cell(self, cell: Cell, src: Source, frame: pd.DataFrame) -> PairCell | str:
        keys = dict(cell.keys)
        row_key, col_key = src.cell_keys
        missing = [k for k in (row_key, col_key) if k not in keys]
        if missing:
            return f"{cell}: a cell of {src.name} names its {' and '.join(missing)}"
        column = src.column(cell.metric)
        if column not in frame.columns:
            return f"{cell}: analysis/{src.path} has no {column} (re-run kdtune analyze RUN --only {src.analysis})"
        sample_key = tuple((k, v) for k, v in cell.keys if k not in (row_key, col_key))
        rows = _narrow(frame, sample_key, cell, f"analysis/{src.path} has no")
        if isinstance(rows, str):
            return rows
        known = pd.concat([rows[g] for g in src.groups]).astype(str)
        for key in (row_key, col_key):
            if keys[key] not in set(known):
                return f"{cell}: no {key}={keys[key]} (there is {_listing(known)})"
        sample = pair_sample(rows, src, column)
        if isinstance(sample, str):
            return f"{cell}: {sample}"
        return PairCell(sample, sample_key, keys[row_key], keys[col_key])


def pair_sample(rows: pd.DataFrame, src: Source, column: str) -> stats.PairSample | str:
    """The :class:`kdtune.results.stats.PairSample` of a pair table's rows (one sample: one eval set, one architecture)."""
    id1, id2 = src.ids
    g1, g2 = src.groups
    models = list(dict.fromkeys([*rows[id1].astype(str), *rows[id2].astype(str)]))
    where = {m: i for i, m in enumerate(models)}
    label: dict[str, str] = {}
    for ids, groups in ((id1, g1), (id2, g2)):
        for m, g in zip(rows[ids].astype(str), rows[groups].astype(str), strict=True):
            if label.setdefault(m, g) != g:
                return f"model {m} is in two groups ({label[m]}, {g})"
    n = len(models)
    values, within, between = np.full((n, n), np.nan), np.zeros((n, n), dtype=bool), np.zeros((n, n), dtype=bool)
    i = rows[id1].astype(str).map(where).to_numpy(dtype=int)
    j = rows[id2].astype(str).map(where).to_numpy(dtype=int)
    v = rows[column].to_numpy(dtype=float)
    w, b = _bools(rows, "within"), _bools(rows, "between")
    for sides in ((j, i), (i, j)) if src.symmetric else ((i, j),):  # a listed order wins over a mirrored one
        values[sides] = v
        within[sides] = w
        between[sides] = b
    return stats.PairSample(tuple(models), tuple(label[m] for m in models), values, within=within, between=between)


# ---------------------------------------------------------------------------------------------------- the verdicts


@dataclass
class Link:
    """One comparison ``left op right`` of a claim, its test and (after :func:`decide`) its verdict.

    ``estimate``/``lo``/``hi``: the difference (for spreads the SD ratio, ``ratio``) and its interval at ``level``
    (``1 − 2α`` for ≈: the interval TOST corresponds to), unadjusted; ``p``: two-sided (≈: TOST's); ``p_beyond``: ≈
    only, the p of a difference beyond the margin; ``why``: why it is untestable, or what a reader must know (zero
    variance, the pairing). ``units``: one row per unit behind the test (the per-unit export); ``spec``: what a
    recomputation of the test needs (paired, folds, coefficients, the pair cells)."""

    claim: str
    text: str
    op: str
    estimate: float = float("nan")
    lo: float = float("nan")
    hi: float = float("nan")
    level: float = 1 - stats.ALPHA
    p: float = float("nan")
    p_beyond: float = float("nan")
    p_adjusted: float = float("nan")
    p_beyond_adjusted: float = float("nan")
    test: str = ""
    n: str = ""
    verdict: str = UNTESTABLE
    why: str = ""
    note: str = ""
    ratio: bool = False
    units: list[dict[str, object]] = field(default_factory=list)
    spec: dict[str, object] = field(default_factory=dict)
    cells_n: dict[Cell, int] = field(default_factory=dict)  # units per cell of a per-model source (for power)


TEST_LABELS = stats.TEST_NAMES


def _unit_rows(side: str, cell: Cell, u: Units | PairCell, coef: float = 1.0) -> list[dict[str, object]]:
    """The per-unit export rows of one side of a link."""
    if isinstance(u, PairCell):
        return _pair_rows(side, str(cell), coef, u.sample, u.pairs(), dict(u.sample_key))
    rows = []
    for uid, key, v in zip(u.ids or [""] * len(u.values), u.keys, u.values, strict=True):
        if not np.isfinite(v):
            continue
        extra = dict(zip(UNIT_KEYS, key, strict=False)) if len(key) == len(UNIT_KEYS) else {"key": key[0] if key else ""}
        rows.append({"side": side, "cell": str(cell), "coef": coef, "unit": uid, "value": float(v), **extra})
    return rows


def _pair_rows(side: str, cell: str, coef: float, s: stats.PairSample, pairs: Sequence[tuple[int, int]],
               extra: Mapping[str, str] | None = None) -> list[dict[str, object]]:  # fmt: skip
    """The export rows of pairs (model indices) of a pair sample: the two models, their groups, the value."""
    within, between = s.usable_for(True), s.usable_for(False)
    return [
        {
            "side": side,
            "cell": cell,
            "coef": coef,
            "unit": f"{s.models[i]}|{s.models[j]}",
            "model1": s.models[i],
            "model2": s.models[j],
            "group1": s.labels[i],
            "group2": s.labels[j],
            "value": float(s.values[i, j]),
            "within": bool(within[i, j]),
            "between": bool(between[i, j]),
            **(extra or {}),
        }
        for i, j in pairs
    ]


def _pool_rows(sample: stats.PairSample, cells: Sequence[stats.Cell], groups: Sequence[str]) -> list[dict[str, object]]:
    """The pairs a permutation of ``groups`` could bring into the cells beyond the observed ones (side ``pool``)."""
    pooled = np.flatnonzero(np.isin(np.asarray(sample.labels, dtype=object), list(groups)))
    seen: set[tuple[int, int]] = set()
    for r, c in cells:
        rows = pooled if r in groups else sample.index(r)
        cols = pooled if c in groups else sample.index(c)
        mask = sample.usable_for(r == c)
        seen |= {(int(i), int(j)) for i in rows for j in cols if i != j and mask[i, j] and np.isfinite(sample.values[i, j])}
    return _pair_rows("pool", "", 0.0, sample, sorted(seen))


def _merge(cells: Sequence[PairCell]) -> tuple[stats.PairSample, list[stats.Cell]]:
    """One sample for pair cells of several samples (e.g. two architectures): each model's label prefixed by its
    sample; no pair between two samples exists (NaN), so only the jackknife can compare them."""
    by_key: dict[tuple[tuple[str, str], ...], stats.PairSample] = {}
    for c in cells:
        by_key.setdefault(c.sample_key, c.sample)
    if len(by_key) == 1:
        return cells[0].sample, [c.cell for c in cells]
    names = {k: ",".join(f"{a}={b}" for a, b in k) for k in by_key}
    models = tuple(f"{names[k]}|{m}" for k, s in by_key.items() for m in s.models)
    labels = tuple(f"{names[k]}|{g}" for k, s in by_key.items() for g in s.labels)
    blocks = by_key.values()
    values = scipy.linalg.block_diag(*(s.values for s in blocks))
    values[~scipy.linalg.block_diag(*(np.ones(s.values.shape, dtype=bool) for s in blocks))] = np.nan  # no pair between samples
    within = scipy.linalg.block_diag(*(s.usable_for(True) for s in blocks))
    merged = stats.PairSample(
        models, labels, values, within=within, between=scipy.linalg.block_diag(*(s.usable_for(False) for s in blocks))
    )
    return merged, [(f"{names[c.sample_key]}|{c.row}", f"{names[c.sample_key]}|{c.col}") for c in cells]


def _link(claim: str, left: Expr, op: str, right: Expr, margin: float | None, units: Callable[[Cell], Units | PairCell | str],
          test: str, alpha: float, seed: int) -> Link:  # fmt: skip
    text = f"{left.text} {op} {right.text}" + (f" within {margin:g}" if margin is not None else "")
    link = Link(claim, text, op, level=1 - (2 * alpha if op == "≈" else alpha))
    got: dict[Cell, Units | PairCell] = {}
    for cell in [*left.cells, *right.cells]:
        u = units(cell)
        if isinstance(u, str):
            link.why = u
            return link
        if isinstance(u, Units) and u.n < 2:
            link.why = f"{cell}: n = {u.n} (a test needs 2 units per cell)"
            return link
        got[cell] = u
    cells = list(dict.fromkeys([*left.cells, *right.cells]))
    pair_cells = [got[c] for c in cells if isinstance(got[c], PairCell)]
    if pair_cells and len(pair_cells) != len(cells):
        link.why = "a check mixes a pair measure with per-model cells: no common unit"
        return link
    if pair_cells:
        link.n = " vs ".join(got[c].describe() for c in cells)  # type: ignore[union-attr]
        return _pair_link(link, left, right, margin, got, alpha, seed)
    link.n = " vs ".join(str(got[c].n) for c in cells)  # type: ignore[union-attr]
    link.cells_n = {c: got[c].n for c in cells}  # type: ignore[union-attr]
    a, b = left.plain, right.plain
    if any(t.spread for t in left.terms):
        ua, ub = got[left.cells[0]], got[right.cells[0]]
        s = stats.spread_test(ua.values, ub.values, alpha=alpha, seed=seed)  # type: ignore[union-attr]
        link.estimate, link.lo, link.hi, link.p, link.test, link.ratio = s.ratio, s.lo, s.hi, s.p, "spread", True
        link.level = s.level
        link.why = s.why
        link.units = _unit_rows("left", left.cells[0], ua) + _unit_rows("right", right.cells[0], ub)  # type: ignore[arg-type]
        link.spec = {"kind": "spread", "exact": s.exact}
        return link
    if a is not None and b is not None and a != b:
        ua, ub = got[a], got[b]
        assert isinstance(ua, Units) and isinstance(ub, Units)
        matched, how = stats.pair_up(ua.keys, ub.keys)
        paired = matched is not None and test in ("auto", "paired")
        if test == "paired" and not paired:
            link.why = f"--test paired: {a} and {b} are not paired ({how})"
            return link
        xa, xb = ua.values, ub.values
        if paired:  # partners side by side (a fold pairs units whose seeds or initialisations differ)
            assert matched is not None
            ia, ib = [i for i, _ in matched], [j for _, j in matched]
            xa, xb = ua.values[ia], ub.values[ib]
            ua = Units([ua.keys[i] for i in ia], xa, ua.planned, [ua.ids[i] for i in ia] if ua.ids else [], ua.folds)
            ub = Units([ub.keys[j] for j in ib], xb, ub.planned, [ub.ids[j] for j in ib] if ub.ids else [], ub.folds)
        folds = ua.folds if ua.folds is not None and ua.folds == ub.folds else None
        link.note = f"paired: {how}" if paired else ""
        link.units = _unit_rows("left", a, ua) + _unit_rows("right", b, ub)
        link.spec = {"kind": "two", "paired": paired, "folds": folds, "margin": margin}
        if op == "≈":
            assert margin is not None
            c = stats.paired_contrast(xa, xb) if paired else stats.contrast([xa, xb], [1.0, -1.0])
            if folds is not None and np.isfinite(c.se):
                c = _fold_contrast(xa, xb, paired, folds)
                link.note = "; ".join(x for x in (link.note, f"units are folds of a {folds}-fold split (corrected)") if x)
            e = stats.equivalence(c, margin, alpha)
            if not np.isfinite(e.p_equivalent) and "zero variance" in (c.why or ""):
                e = stats.equivalence_exact(xa, xb, margin, paired=paired, alpha=alpha)
            return _tost(link, e, c)
        kind = "t" if test in ("auto", "paired", "welch") else test
        r = stats.compare(xa, xb, paired=paired, test=kind, level=1 - alpha, seed=seed, folds=folds)
        link.estimate, link.lo, link.hi, link.p, link.test, link.level = r.diff, r.lo, r.hi, r.p, r.test, r.level
        link.why = r.why if r.test in ("exact",) or not np.isfinite(r.p) else ""
        if r.test.endswith("-folds"):
            link.note = (link.note + "; " if link.note else "") + r.why
        return link
    cells, weights, constant = contrast_terms(left, right)
    if not cells:
        link.why = "the two sides cancel out"
        return link
    c = stats.contrast([got[x].values for x in cells], weights, constant, 1 - alpha)  # type: ignore[union-attr]
    link.units = [row for i, x in enumerate(cells) for row in _unit_rows(f"cell{i + 1}", x, got[x], weights[i])]
    link.spec = {"kind": "contrast", "constant": constant, "margin": margin}
    link.estimate, link.lo, link.hi, link.p, link.test = c.estimate, c.lo, c.hi, c.p, "contrast"
    link.why = c.why
    return _tost(link, stats.equivalence(c, margin, alpha), c) if op == "≈" else link  # type: ignore[arg-type]


def contrast_terms(left: Expr, right: Expr) -> tuple[list[Cell], list[float], float]:
    """``left − right`` as its cells (those that do not cancel out), their coefficients and a constant."""
    coefs: dict[Cell, float] = {}
    constant = 0.0
    for side, sign in ((left, 1.0), (right, -1.0)):
        for term in side.terms:
            if term.cell is None:
                constant += sign * term.coef
            else:
                coefs[term.cell] = coefs.get(term.cell, 0.0) + sign * term.coef
    cells = [c for c, k in coefs.items() if k != 0]
    return cells, [coefs[c] for c in cells], constant


def trend_coefs(check: Check) -> list[float]:
    """A chain's linear trend coefficients: centred ranks ``cᵢ = (k + 1)/2 − i``, signed by the chain's direction."""
    k = len(check.sides)
    sign = 1.0 if check.ops[0] == ">" else -1.0
    return [sign * ((k + 1) / 2 - (i + 1)) for i in range(k)]


def _fold_contrast(xa: np.ndarray, xb: np.ndarray, paired: bool, folds: int) -> stats.Contrast:
    """A two-cell difference over fold units as a contrast with the Nadeau–Bengio corrected standard error."""
    if paired:
        d = xa - xb
        var = float(np.var(d, ddof=stats.DDOF)) * stats.fold_factor(len(d), folds)
        df = len(d) - 1.0
        est = float(np.mean(d))
    else:
        va = float(np.var(xa, ddof=stats.DDOF)) * stats.fold_factor(len(xa), folds)
        vb = float(np.var(xb, ddof=stats.DDOF)) * stats.fold_factor(len(xb), folds)
        var = va + vb
        df = var**2 / (va**2 / (len(xa) - 1) + vb**2 / (len(xb) - 1))
        est = float(np.mean(xa) - np.mean(xb))
    se = var**0.5
    nan = float("nan")
    p = float(2 * scipy.stats.t.sf(abs(est / se), df)) if se > 0 else nan
    return stats.Contrast(est, se, df, nan, nan, p)


def _pair_link(link: Link, left: Expr, right: Expr, margin: float | None, got: Mapping[Cell, Units | PairCell], alpha: float,
               seed: int) -> Link:  # fmt: skip
    """A link between cells of a pair measure: two plain cells of one sample by permuting model labels
    (:func:`kdtune.results.stats.pair_test`; untestable where it cannot reach α or lacks pairs, never handed to another test);
    a contrast with a constant, a margin (≈), or cells of two samples that share no pair (two architectures' barriers)
    by the jackknife over models (:func:`kdtune.results.stats.pair_contrast`)."""
    cells, weights, constant = contrast_terms(left, right)
    if not cells:
        link.why = "the two sides cancel out"
        return link
    pcs = [got[c] for c in cells]
    sample, keys = _merge(pcs)  # type: ignore[arg-type]
    link.units = [row for i, c in enumerate(cells) for row in _unit_rows(f"cell{i + 1}", c, pcs[i], weights[i])]
    link.spec = {"kind": "pairs", "cells": [list(k) for k in keys], "coefs": weights, "constant": constant,
                 "margin": margin, "models": list(sample.models), "labels": list(sample.labels)}  # fmt: skip
    plain = left.plain is not None and right.plain is not None and constant == 0 and len(cells) == 2 and link.op != "≈"
    if plain and len({pc.sample_key for pc in pcs}) == 1:  # type: ignore[union-attr]
        # one sample (one eval set, one architecture): the permutation, and nothing else when it cannot decide
        r = stats.pair_test(sample, keys[0], keys[1], alpha=alpha, level=1 - alpha, seed=seed)
        link.estimate, link.lo, link.hi, link.p, link.test = r.estimate, r.lo, r.hi, r.p, "pairs"
        link.why = r.why if not np.isfinite(r.p) else ""
        link.note = f"{r.relabellings} relabellings" + ("" if r.exact else f" (random, seed {seed})") if r.relabellings else ""
        groups = stats.exchangeable(keys[0], keys[1])
        seen = {row["unit"] for row in link.units}
        link.units += [row for row in _pool_rows(sample, keys, groups) if row["unit"] not in seen]
        link.spec |= {"groups": groups, "exact": r.exact, "relabellings": r.relabellings}
        return link
    c = stats.pair_contrast(sample, keys, weights, constant, level=1 - alpha)
    link.estimate, link.lo, link.hi, link.p, link.test, link.why = c.estimate, c.lo, c.hi, c.p, c.test, c.why
    link.spec |= {"se": c.se, "df": c.df}
    return _tost(link, stats.equivalence(c, margin, alpha), c) if link.op == "≈" else link  # type: ignore[arg-type]


def _tost(link: Link, e: stats.Equivalence, c: stats.Contrast) -> Link:
    """The link as its TOST found it (≈), with what a recomputation needs (the contrast's se and df)."""
    link.estimate, link.lo, link.hi, link.level = e.estimate, e.lo, e.hi, e.level
    link.p, link.p_beyond, link.test, link.why = e.p_equivalent, e.p_beyond, "tost", e.why
    link.spec |= {"se": c.se, "df": c.df}
    return link


def decide(links: Sequence[Link], alpha: float = stats.ALPHA, correction: str = "holm") -> None:
    """Adjust the links' p-values over the family ``links`` and set each verdict (in place).

    An untestable link counts in the family as p = 1 (the family's size is every test it was meant to hold, so a
    missing cell never shrinks the correction of the others). A ≈ link is one test of the family: its TOST p is
    adjusted over the family (the other links' p beside it), and so is its beyond-the-margin p."""
    p = [x.p if np.isfinite(x.p) and np.isfinite(x.estimate) else 1.0 for x in links]
    adjusted = stats.adjust(p, correction)
    outside = [x.p_beyond if x.op == "≈" and np.isfinite(x.p_beyond) else q for x, q in zip(links, p, strict=True)]
    beyond = stats.adjust(outside, correction)
    for x, pa, pb in zip(links, adjusted, beyond, strict=True):
        if not np.isfinite(x.p) or not np.isfinite(x.estimate):
            x.verdict, x.p_adjusted, x.p_beyond_adjusted = UNTESTABLE, float("nan"), float("nan")
            x.why = x.why or "no test (a cell's units are all missing)"
            continue
        x.p_adjusted = float(pa)
        x.p_beyond_adjusted = float(pb) if x.op == "≈" else float("nan")
        if x.op == "≈":
            x.verdict = HOLDS if pa < alpha else CONTRADICTED if pb < alpha else NOT_SIGNIFICANT
            continue
        sign = np.log(x.estimate) if x.ratio else x.estimate
        right_way = sign > 0 if x.op == ">" else sign < 0
        x.verdict = NOT_SIGNIFICANT if pa >= alpha or sign == 0 else HOLDS if right_way else CONTRADICTED


def combine(verdicts: Sequence[str]) -> str:
    """A chain's verdict from its links': untestable if any is, contradicted if any is, holds if all hold."""
    if UNTESTABLE in verdicts:
        return UNTESTABLE
    if CONTRADICTED in verdicts:
        return CONTRADICTED
    return HOLDS if verdicts and all(v == HOLDS for v in verdicts) else NOT_SIGNIFICANT


FINDING, SETUP, PREMISE, DESIGN = "finding", "setup", "premise", "design"
KINDS = (FINDING, SETUP, PREMISE, DESIGN)  # only findings are the paper's results; the others are checked apart
KIND_NAMES = {
    FINDING: "a finding of the paper",
    SETUP: "a check of the setup (true by construction: not a finding)",
    PREMISE: "a premise the paper builds on (from the literature: not a finding)",
    DESIGN: "the paper's description of its design (not a finding)",
}
CHAINS = ("links", "trend")  # a chain a > b > c: every link tested, or one linear trend across it


def check_kind(where: str, kind: str, chain: str, check: Check) -> None:
    """A claim's ``kind`` and ``chain`` fields: one line naming the claim and what is allowed."""
    if kind not in KINDS:
        raise KdtuneError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    if chain not in CHAINS:
        raise KdtuneError(f"{where}: chain {chain!r} is not one of {', '.join(CHAINS)}")
    if chain == "trend" and len(check.ops) < 2:
        raise KdtuneError(f"{where}: chain: trend needs a chain (a > b > c), got {check.text!r}")


PRIMARY, EXPLORATORY, CHECKS = "primary", "exploratory", "checks"
FAMILIES = (PRIMARY, EXPLORATORY, CHECKS)
FAMILY_NAMES = {
    PRIMARY: "primary claims (declared by the study)",
    EXPLORATORY: "exploratory claims (every other finding)",
    CHECKS: "setup checks, premises and design descriptions (not findings)",
}


@dataclass
class Claim:
    """A claim of a paper: its id, the check (parsed), the paper's words and where they are. ``kind``: a finding, or
    a check of the setup, a premise or a design description (:data:`KINDS`; those are not counted as findings);
    ``chain``: a chain tested link by link or as one trend (:data:`CHAINS`); ``ref``: its id across a study
    (``FILE:TABLE/ID`` for a reference file's claims)."""

    id: str
    check: Check
    quote: str = ""
    where: str = ""
    extra: Mapping[str, object] = field(default_factory=dict)
    kind: str = FINDING
    chain: str = "links"
    ref: str = ""

    @property
    def name(self) -> str:
        return self.ref or self.id


@dataclass
class Verdict:
    """A claim's verdict, its links, its family (:data:`FAMILIES`) and, when every one of its comparisons is listed
    under another claim first, that claim's name (``same_as``: one test, one verdict, listed once)."""

    claim: Claim
    verdict: str
    links: list[Link]
    family: str = EXPLORATORY
    same_as: str = ""
    calibration: object | None = None  # kdtune.repro.power.Calibration on the paper's numbers, where they exist


@dataclass
class Family:
    """One family of tests (Holm once over it): its unique links and which were untestable (counted as p = 1)."""

    name: str
    links: list[Link]

    @property
    def untestable(self) -> list[Link]:
        return [x for x in self.links if x.verdict == UNTESTABLE]

    def note(self, alpha: float, correction: str) -> str:
        """``Primary claims: Holm over 6 tests (5 performed, 1 untestable counted as p = 1: ID)``."""
        m, dead = len(self.links), self.untestable
        how = "uncorrected" if correction == "none" else f"{stats.CORRECTION_NAMES[correction]} over {m} test{'s' * (m != 1)}"
        done = f"{m - len(dead)} performed"
        if dead:
            names = ", ".join(" = ".join(link_ids(x)) for x in dead)
            done += f", {len(dead)} untestable counted as p = 1: {names}"
        return f"{FAMILY_NAMES[self.name][0].upper()}{FAMILY_NAMES[self.name][1:]}: α = {alpha:g}, {how} ({done})."


def _key(left: Expr, op: str, right: Expr, margin: float | None, scope: str) -> str:
    """The comparison a link tests, whichever claim states it: cells with their keys sorted, ``<`` turned into ``>``,
    the two sides of ``≈`` in order, and the evidence it reads (``scope``: the sweeps a table restricts to)."""

    def side(e: Expr) -> str:
        parts = []
        for term in e.terms:
            if term.cell is None:
                parts.append(f"{term.coef:g}")
                continue
            cell = f"{term.cell.source}.{term.cell.metric}[{', '.join(f'{k}={v}' for k, v in sorted(term.cell.keys))}]"
            parts.append(f"{term.coef:g}*{'std(' + cell + ')' if term.spread else cell}")
        return " + ".join(sorted(parts))

    a, b = side(left), side(right)
    if op == "<":
        a, b, op = b, a, ">"
    if op == "≈":
        a, b = sorted((a, b))
    return f"{a} {op} {b}" + (f" within {margin:g}" if margin is not None else "") + f" @ {scope}"


def _trend_link(claim: Claim, units: Callable[[Cell], Units | PairCell | str], alpha: float) -> Link:
    """A chain ``s₁ > s₂ > … > s_k`` as one test: the linear trend ``Σ cᵢ mean(sᵢ)`` with centred ranks
    ``cᵢ = (k + 1)/2 − i`` against 0 (Welch–Satterthwaite), so that two neighbours the paper itself prints as ties do not
    sink a monotone claim. One link, one p."""
    coefs = trend_coefs(claim.check)
    link = Link(claim.id, f"trend of {claim.check.text}", ">", level=1 - alpha)
    cells = [s.plain for s in claim.check.sides]
    if any(c is None for c in cells):
        link.why = "a trend needs one cell per side"
        return link
    got = {}
    for c in cells:
        u = units(c)  # type: ignore[arg-type]
        if isinstance(u, str):
            link.why = u
            return link
        if not isinstance(u, Units) or u.n < 2:
            link.why = f"{c}: a trend needs 2 units per cell of a per-model source"
            return link
        got[c] = u
    link.n = " vs ".join(str(got[c].n) for c in cells)
    link.cells_n = {c: got[c].n for c in cells}  # type: ignore[misc]
    r = stats.contrast([got[c].values for c in cells], coefs, 0.0, 1 - alpha)
    link.estimate, link.lo, link.hi, link.p, link.test, link.why = r.estimate, r.lo, r.hi, r.p, "trend", r.why
    link.units = [row for i, c in enumerate(cells) for row in _unit_rows(f"cell{i + 1}", c, got[c], coefs[i])]  # type: ignore[arg-type]
    link.spec = {"kind": "contrast", "constant": 0.0, "margin": None}
    link.note = "coefficients " + ", ".join(f"{c:+g}" for c in coefs)
    return link


class Checker:
    """Claims tested together: one test per distinct comparison (a comparison under two claim ids is one link with
    both ids), each claim in its family (:data:`FAMILIES`: primary when ``primary`` names it, checks when it is not a
    finding, else exploratory), and Holm once per family (:meth:`finish`)."""

    def __init__(
        self,
        *,
        test: str = "auto",
        alpha: float = stats.ALPHA,
        correction: str = "holm",
        seed: int = stats.SEED,
        primary: Sequence[str] = (),
    ) -> None:
        stats.check_choice("test", test, labels.TESTS)
        stats.check_alpha(alpha)
        stats.check_choice("correction", correction, labels.CORRECTIONS)
        self.test, self.alpha, self.correction, self.seed = test, alpha, correction, seed
        self.primary = set(primary)
        self.links: dict[str, Link] = {}
        self.verdicts: list[Verdict] = []
        self.families: dict[str, Family] = {}

    def family_of(self, claim: Claim) -> str:
        if claim.kind != FINDING:
            return CHECKS
        return PRIMARY if claim.name in self.primary or claim.id in self.primary else EXPLORATORY

    def add(self, claim: Claim, evidence: Evidence, scope: str = "") -> Verdict:
        """Test one claim on ``evidence`` (``scope``: what restricts it, part of the comparison's identity)."""
        links, fresh = [], []
        if claim.chain == "trend" and len(claim.check.ops) > 1:
            sides = " > ".join(_key(s, ">", Expr((), ""), None, "").split(" > ")[0] for s in claim.check.sides)
            key = f"trend {sides if claim.check.ops[0] == '>' else sides + ' (rising)'} @ {scope}"
            makers = [(key, lambda: _trend_link(claim, evidence.units, self.alpha))]
        else:
            makers = [
                (_key(left, op, right, claim.check.margin, scope),
                 lambda left=left, op=op, right=right: _link(claim.id, left, op, right, claim.check.margin, evidence.units,
                                                              self.test, self.alpha, self.seed))
                for left, op, right in claim.check.links
            ]  # fmt: skip
        for key, make in makers:
            if key in self.links:
                link = self.links[key]
            else:
                link = self.links[key] = make()
                link.spec["key"] = key
                link.spec["ids"] = []
                fresh.append(link)
            ids = link.spec["ids"]
            assert isinstance(ids, list)
            if claim.name not in ids:
                ids.append(claim.name)
            links.append(link)
        owners = [str(x.spec["ids"][0]) for x in links]  # type: ignore[index]
        same_as = ", ".join(dict.fromkeys(owners)) if links and not fresh else ""  # every comparison listed first elsewhere
        v = Verdict(claim, UNTESTABLE, links, self.family_of(claim), same_as)
        self.verdicts.append(v)
        return v

    def finish(self) -> dict[str, Family]:
        """Holm once per family over its distinct links; every claim's verdict. A link of claims of two families
        counts in the first of primary, exploratory, checks."""
        home: dict[int, str] = {}
        for v in self.verdicts:
            for x in v.links:
                home[id(x)] = min(home.get(id(x), v.family), v.family, key=FAMILIES.index)
        unique = list({id(x): x for v in self.verdicts for x in v.links}.values())
        self.families = {}
        for f in FAMILIES:
            members = [x for x in unique if home[id(x)] == f]
            for x in members:
                x.spec["family"] = f
            if members:
                decide(members, self.alpha, self.correction)
                self.families[f] = Family(f, members)
        for v in self.verdicts:
            v.verdict = combine([x.verdict for x in v.links])
        return self.families


def evaluate(
    claims: Sequence[Claim],
    evidence: Evidence,
    *,
    test: str = "auto",
    alpha: float = stats.ALPHA,
    correction: str = "holm",
    seed: int = stats.SEED,
    primary: Sequence[str] = (),
) -> list[Verdict]:
    """Every claim's verdict: one test per distinct comparison, Holm once per family (:class:`Checker`)."""
    checker = Checker(test=test, alpha=alpha, correction=correction, seed=seed, primary=primary)
    out = [checker.add(c, evidence) for c in claims]
    checker.finish()
    return out


def link_ids(link: Link) -> list[str]:
    """The claims (names) whose comparison a link is."""
    ids = link.spec.get("ids") or [link.claim]
    return [str(i) for i in ids]  # type: ignore[union-attr]


def deciding_p(link: Link) -> tuple[float, str]:
    """The adjusted p that decided the link's verdict and which one it is (``≈``: TOST's for holds and not significant,
    the beyond-the-margin one for contradicted)."""
    if link.op == "≈" and link.verdict == CONTRADICTED:
        return link.p_beyond_adjusted, "beyond"
    return link.p_adjusted, "TOST" if link.op == "≈" else ""
