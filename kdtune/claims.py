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

A chain ``a > b > c`` is ``a > b`` and ``b > c``. ``≈`` needs ``within M`` (equivalent within ±M) and is never
chained; ``std()`` compares spreads and is a whole side on both sides. SOURCE is ``report`` (the default: the
run's per-trial results; METRIC a results column, KEY a report key) or an analysis' per-model unit table
(:data:`SOURCES`).

Verdicts, with the tests of :mod:`kdtune.stats` over the cells' independent units (trained models) and one
correction (Holm by default) over the comparisons of a reference table:

- **holds**: significant in the stated direction (for ``≈``: the two one-sided tests put the difference inside ±M);
- **contradicted**: significant the other way (for ``≈``: significantly beyond ±M);
- **not significant**: neither;
- **untestable**: a cell is missing, ambiguous or has fewer than 2 units (the verdict says which).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kdtune import stats
from kdtune.config import REPORT_KEYS, REPORT_METRICS
from kdtune.errors import KdtuneError

UNIT_KEYS = ("fold", "init_seed", "data_seed")  # a report cell's unit (trained model), as far as pairing goes
HOLDS, CONTRADICTED, NOT_SIGNIFICANT, UNTESTABLE = "holds", "contradicted", "not significant", "untestable"
VERDICTS = (HOLDS, CONTRADICTED, NOT_SIGNIFICANT, UNTESTABLE)


@dataclass(frozen=True)
class Source:
    """Where the units of a cell come from: ``path`` under ``RUN/analysis/`` (``None``: the run's results),
    the columns a cell may name (``keys``), the unit column and the metric columns."""

    name: str
    path: str | None
    keys: tuple[str, ...]
    unit: str
    metrics: tuple[str, ...]
    analysis: str = ""

    def describe(self) -> str:
        return f"{self.name}.{{{','.join(self.metrics)}}}[{', '.join(self.keys)}]"


SOURCES: dict[str, Source] = {
    "report": Source("report", None, (*REPORT_KEYS, "sweep"), "trial_id", REPORT_METRICS),
    "similarity": Source(
        "similarity", "similarity/groups_similarity_units.csv", ("group", "column"), "model", ("value",), "similarity"
    ),
    "cka": Source("cka", "similarity/groups_cka_units.csv", ("group", "column"), "model", ("value",), "similarity"),
    "barriers": Source(
        "barriers",
        "barriers/units.csv",
        ("model", "teacher1", "teacher2", "same_init"),
        "trial",
        ("barrier", "accuracy_mid"),
        "barriers",
    ),
    "invariance": Source(
        "invariance", "invariance/invariance_trials.csv", ("group", "eval_set"), "trial_id", ("im",), "invariance"
    ),
    "errors": Source(
        "errors", "errors/error_units.csv", ("eval_set", "group", "column"), "trial", ("jaccard", "share_of_b_in_a"), "errors"
    ),
}


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
        pos = self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text)
        return KdtuneError(f"{self.where}: {what} at character {pos + 1} of {self.text!r}; {expected}")

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

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
        while (tok := self.peek()) is not None and tok[0] == "op":
            ops.append(_OPS[self.take()[1]])
            sides.append(self.expr())
        tok = self.peek()
        if tok is not None and tok[0] == "name" and tok[1] == "within":
            self.take()
            num = self.peek()
            if num is None or num[0] != "num":
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

    def expr(self) -> Expr:
        start = self.peek()[2] if self.peek() else len(self.text)  # type: ignore[index]
        terms: list[Term] = []
        sign = 1.0
        tok = self.peek()
        if tok is not None and tok[0] == "sym" and tok[1] == "-":
            self.take()
            sign = -1.0
        while True:
            t = self.term()
            terms.append(Term(sign * t.coef, t.cell, t.spread))
            tok = self.peek()
            if tok is not None and tok[0] == "sym" and tok[1] in "+-":
                sign = 1.0 if self.take()[1] == "+" else -1.0
                continue
            break
        end = self.peek()[2] if self.peek() else len(self.text)  # type: ignore[index]
        return Expr(tuple(terms), self.text[start:end].strip())

    def term(self) -> Term:
        tok = self.peek()
        if tok is None:
            raise self.fail("the check ends early", "expected a cell or a number")
        if tok[0] == "num":
            coef = float(self.take()[1])
            nxt = self.peek()
            if nxt is not None and nxt[0] == "sym" and nxt[1] == "*":
                self.take()
                op = self.operand()
                return Term(coef, op.cell, op.spread)
            return Term(coef)
        return self.operand()

    def operand(self) -> Term:
        tok = self.peek()
        if tok is not None and tok[0] == "name" and tok[1] == "std":
            self.take()
            if (p := self.peek()) is None or p[1] != "(":
                raise self.fail("std without '('", "write std(metric[key=value])")
            self.take()
            cell = self.cell()
            if (p := self.peek()) is None or p[1] != ")":
                raise self.fail("std( without ')'", "write std(metric[key=value])")
            self.take()
            return Term(1.0, cell, spread=True)
        return Term(1.0, self.cell())

    def cell(self) -> Cell:
        tok = self.peek()
        if tok is None or tok[0] != "name":
            raise self.fail(
                f"unexpected {tok[1]!r}" if tok else "the check ends early", "expected a cell: metric[key=value, ...]"
            )
        first = self.take()[1]
        source, metric = "report", first
        if (p := self.peek()) is not None and p[1] == ".":
            self.take()
            name = self.peek()
            if name is None or name[0] != "name":
                raise self.fail(f"nothing after {first}.", "expected source.metric[...]")
            source, metric = first, self.take()[1]
        if source not in SOURCES:
            raise self.fail(f"unknown source {source!r}", f"sources: {', '.join(SOURCES)}")
        src = SOURCES[source]
        if metric not in src.metrics:
            raise self.fail(f"unknown metric {metric!r} of {source}", f"one of {', '.join(src.metrics)}")
        br = self.peek()
        if br is None or br[0] != "br":
            raise self.fail(
                f"{metric} without [key=value, ...]", "a cell names its keys, e.g. accuracy[student=MLP, teacher=data]"
            )
        if not br[1].endswith("]"):
            raise self.fail("a '[' without ']'", "close the cell's keys with ']'")
        self.take()
        keys: list[tuple[str, str]] = []
        for part in br[1][1:-1].split(","):
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
class Units:
    """The independent units (trained models) of one cell: their pairing keys, values and the label of the cell."""

    keys: list[tuple[object, ...]]
    values: np.ndarray
    planned: int = 0

    @property
    def n(self) -> int:
        return int(np.isfinite(self.values).sum())


def _text(v: object) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _match(column: pd.Series, text: str) -> pd.Series:
    """Rows whose value reads as ``text`` (``4`` for 4.0, ``yes``/``no``/``true``/``false`` for booleans)."""
    lowered = text.lower()
    want_bool = {"yes": True, "true": True, "no": False, "false": False}.get(lowered)

    def same(v: object) -> bool:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return False
        if isinstance(v, (bool, np.bool_)) or (isinstance(v, str) and v in ("True", "False")):
            return want_bool is not None and (v in (True, "True")) == want_bool
        if isinstance(v, (int, float, np.integer, np.floating)):
            try:
                return float(v) == float(text)
            except ValueError:
                return False
        return str(v) == text or _text(v) == text

    if column.name == "sweep":  # a trial run by several sweeps records them all: "a,b"
        return column.map(lambda v: isinstance(v, str) and text in v.split(",")).astype(bool)
    return column.map(same).astype(bool)


def _listing(values: pd.Series) -> str:
    seen = [_text(v) for v in dict.fromkeys(values.dropna().tolist())]
    return ", ".join(seen[:12]) + (", …" if len(seen) > 12 else "")


class Evidence:
    """Resolves cells to their units: the run's results (``df``, as :func:`kdtune.results.collect_runs` gives) and
    the analyses' unit tables under ``run_dir/analysis`` (read once each)."""

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

    @property
    def run_dir(self) -> Path | None:
        """The first run folder (where a trial's stored config is looked up first)."""
        return self.run_dirs[0] if self.run_dirs else None

    def table(self, source: Source) -> pd.DataFrame | None:
        """The results (``report``) or an analysis' unit table, those of several run folders stacked."""
        if source.path is None:
            return self.df
        if source.name not in self._tables:
            found = [pd.read_csv(p) for d in self.run_dirs if (p := d / "analysis" / source.path).is_file()]
            self._tables[source.name] = pd.concat(found, ignore_index=True) if found else None
        return self._tables[source.name]

    def units(self, cell: Cell) -> Units | str:
        """The cell's units, or why it cannot be tested (missing, ambiguous)."""
        src = SOURCES[cell.source]
        frame = self.table(src)
        if frame is None:
            return f"{cell}: no analysis/{src.path} (run kdtune analyze RUN --only {src.analysis})"
        rows = frame
        for key, text in cell.keys:
            if key not in rows.columns:
                return f"{cell}: these results have no {key}"
            kept = rows[_match(rows[key], text)]
            if kept.empty:
                return f"{cell}: no {key}={text} (there is {_listing(rows[key]) or 'nothing'})"
            rows = kept
        if cell.metric not in rows.columns:
            return f"{cell}: these results have no {cell.metric}"
        if cell.source == "report":
            return self._report_units(cell, rows)
        units = rows[src.unit]
        if units.duplicated().any():
            free = [k for k in src.keys if k in rows.columns and rows[k].nunique(dropna=False) > 1]
            return f"{cell}: matches more than one cell (name {', '.join(free) or 'more keys'})"
        values = rows[cell.metric].to_numpy(dtype=float)
        return Units([(u,) for u in units], values, len(values))

    def _report_units(self, cell: Cell, rows: pd.DataFrame) -> Units | str:
        named = {k for k, _ in cell.keys}
        varying = [c for c in self.settings if c not in named and c in rows and rows[c].astype(str).nunique() > 1]
        if varying:
            shown = "; ".join(f"{c}: {_listing(rows[c].astype(object).where(rows[c].notna(), '–'))}" for c in varying)
            return f"{cell}: matches more than one configuration ({shown}); name one with key=value"
        if "sweep" in rows and "sweep" not in named:
            sets = [set(str(x).split(",")) for x in rows["sweep"].dropna()]
            if sets and not set.intersection(*sets):
                shown = ", ".join(sorted(set.union(*sets)))
                return f"{cell}: matches trials of different sweeps ({shown}); name one with sweep=NAME"
        ok = rows[rows["status"] == "ok"] if "status" in rows else rows
        planned = rows["trial_id"].nunique() if "trial_id" in rows else len(rows)
        keys = []
        for _, r in ok.iterrows():
            parts = []
            for k in UNIT_KEYS:
                v = r.get(k)
                if k == "fold" and ("fold" not in ok or ok["fold"].isna().all()):
                    v = 0
                parts.append(None if v is None or (isinstance(v, float) and np.isnan(v)) else v)
            keys.append(tuple(parts))
        return Units(keys, ok[cell.metric].to_numpy(dtype=float), planned)


# ---------------------------------------------------------------------------------------------------- the verdicts


@dataclass
class Link:
    """One comparison ``left op right`` of a claim, its test and (after :func:`decide`) its verdict."""

    claim: str
    text: str
    op: str
    estimate: float = float("nan")
    lo: float = float("nan")
    hi: float = float("nan")
    p: float = float("nan")
    p_beyond: float = float("nan")  # ≈ only: the p of a difference beyond the margin
    p_adjusted: float = float("nan")
    p_beyond_adjusted: float = float("nan")
    test: str = ""
    n: str = ""
    verdict: str = UNTESTABLE
    why: str = ""


TEST_LABELS = {
    **stats.TEST_NAMES,
    "contrast": "Welch–Satterthwaite t-test of a linear contrast",
    "tost": "two one-sided tests (TOST)",
    "spread": "Brown–Forsythe test of equal spreads (scipy.stats.levene, center='median')",
}


def _link(claim: str, left: Expr, op: str, right: Expr, margin: float | None, units: Callable[[Cell], Units | str],
          test: str, alpha: float, seed: int) -> Link:  # fmt: skip
    text = f"{left.text} {op} {right.text}" + (f" within {margin:g}" if margin is not None else "")
    link = Link(claim, text, op)
    got: dict[Cell, Units] = {}
    for cell in [*left.cells, *right.cells]:
        u = units(cell)
        if isinstance(u, str):
            link.why = u
            return link
        if u.n < 2:
            link.why = f"{cell}: n = {u.n} (a test needs 2 units per cell)"
            return link
        got[cell] = u
    link.n = " vs ".join(str(got[c].n) for c in dict.fromkeys([*left.cells, *right.cells]))
    level = 1 - alpha
    a, b = left.plain, right.plain
    if any(t.spread for t in left.terms):
        ua, ub = got[left.cells[0]], got[right.cells[0]]
        s = stats.spread_test(ua.values, ub.values)
        link.estimate, link.p, link.test = s.std_a - s.std_b, s.p, "spread"
        return link
    if a is not None and b is not None and a != b:
        ua, ub = got[a], got[b]
        paired = test in ("auto", "paired") and stats.is_paired(ua.keys, ub.keys)
        if test == "paired" and not paired:
            link.why = f"--test paired: {a} and {b} do not share their units' random streams"
            return link
        xa, xb = ua.values, ub.values
        if paired:
            ka, kb = dict(zip(ua.keys, ua.values, strict=True)), dict(zip(ub.keys, ub.values, strict=True))
            xa, xb = np.array([ka[k] for k in ka]), np.array([kb[k] for k in ka])
        if op == "≈":
            c = stats.paired_contrast(xa, xb, level) if paired else stats.contrast([xa, xb], [1.0, -1.0], level=level)
            e = stats.equivalence(c, margin)  # type: ignore[arg-type]
            link.estimate, link.lo, link.hi = c.estimate, c.lo, c.hi
            link.p, link.p_beyond, link.test = e.p_equivalent, e.p_beyond, "tost"
            link.test = "tost"
            link.why = "paired" if paired else "Welch"
            return link
        kind = "t" if test in ("auto", "paired", "welch") else test
        r = stats.compare(xa, xb, paired=paired, test=kind, level=level, seed=seed)
        link.estimate, link.lo, link.hi, link.p, link.test = r.diff, r.lo, r.hi, r.p, r.test
        return link
    coefs: dict[Cell, float] = {}
    constant = 0.0
    for side, sign in ((left, 1.0), (right, -1.0)):
        for t in side.terms:
            if t.cell is None:
                constant += sign * t.coef
            else:
                coefs[t.cell] = coefs.get(t.cell, 0.0) + sign * t.coef
    cells = [c for c, k in coefs.items() if k != 0]
    if not cells:
        link.why = "the two sides cancel out"
        return link
    c = stats.contrast([got[x].values for x in cells], [coefs[x] for x in cells], constant, level)
    link.estimate, link.lo, link.hi, link.p, link.test = c.estimate, c.lo, c.hi, c.p, "contrast"
    if op == "≈":
        e = stats.equivalence(c, margin)  # type: ignore[arg-type]
        link.p, link.p_beyond, link.test, link.why = e.p_equivalent, e.p_beyond, "tost", "Welch–Satterthwaite"
    return link


def decide(links: Sequence[Link], alpha: float = stats.ALPHA, correction: str = "holm") -> None:
    """Adjust the links' p-values over the family ``links`` and set each verdict (in place)."""
    adjusted = stats.adjust([x.p for x in links], correction)
    beyond = stats.adjust([x.p_beyond if x.op == "≈" else np.nan for x in links], correction)
    for x, p, pb in zip(links, adjusted, beyond, strict=True):
        x.p_adjusted, x.p_beyond_adjusted = float(p), float(pb)
        if not np.isfinite(x.p) or not np.isfinite(x.estimate):
            x.verdict = UNTESTABLE
            x.why = x.why or "no test (a cell's units are all missing)"
            continue
        if x.op == "≈":
            x.verdict = HOLDS if p < alpha else CONTRADICTED if pb < alpha else NOT_SIGNIFICANT
            continue
        if p >= alpha or x.estimate == 0:
            x.verdict = NOT_SIGNIFICANT
            continue
        right_way = x.estimate > 0 if x.op == ">" else x.estimate < 0
        x.verdict = HOLDS if right_way else CONTRADICTED


def combine(verdicts: Sequence[str]) -> str:
    """A chain's verdict from its links': untestable if any is, contradicted if any is, holds if all hold."""
    if UNTESTABLE in verdicts:
        return UNTESTABLE
    if CONTRADICTED in verdicts:
        return CONTRADICTED
    return HOLDS if verdicts and all(v == HOLDS for v in verdicts) else NOT_SIGNIFICANT


@dataclass
class Claim:
    """A claim of a paper: its id, the check (parsed), the paper's words and where they are."""

    id: str
    check: Check
    quote: str = ""
    where: str = ""
    extra: Mapping[str, object] = field(default_factory=dict)


@dataclass
class Verdict:
    claim: Claim
    verdict: str
    links: list[Link]


def evaluate(
    claims: Sequence[Claim],
    evidence: Evidence,
    *,
    test: str = "auto",
    alpha: float = stats.ALPHA,
    correction: str = "holm",
    seed: int = stats.SEED,
) -> list[Verdict]:
    """Every claim's verdict, the comparisons of all ``claims`` corrected together (one family)."""
    stats.check_choice("test", test, stats.TESTS)
    stats.check_alpha(alpha)
    stats.check_choice("correction", correction, stats.CORRECTIONS)
    per_claim = [
        [_link(c.id, left, op, right, c.check.margin, evidence.units, test, alpha, seed) for left, op, right in c.check.links]
        for c in claims
    ]
    decide([x for links in per_claim for x in links], alpha, correction)
    return [Verdict(c, combine([x.verdict for x in links]), links) for c, links in zip(claims, per_claim, strict=True)]
