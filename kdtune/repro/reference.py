"""Published results as data (``kdtune/references/*.yaml``) and the check of a run against them.

A reference file holds one paper: its citation, the mapping of its model names to kdtune's labels and, per table
(or figure, or section), the published cells keyed by kdtune's report keys, the paper's n and ± convention, the
paper's training settings, and its claims as checkable statements (:mod:`kdtune.repro.claims`). ``kdtune report RUN
--reference abnar2021:table6`` puts kdtune's cells beside the paper's and gives every claim of the table its
verdict; ``kdtune study`` does it for a whole case study.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import scipy.stats
import yaml
from pydantic import BaseModel, Field, ValidationError

from kdtune.errors import KdtuneError, SpecError
from kdtune.labels import REPORT_KEYS
from kdtune.repro.claims import Cell, Checker, Claim, Evidence, Family, Link, Verdict, check_kind, parse_check
from kdtune.repro.power import DRAWS, Summary, calibrate
from kdtune.results import stats
from kdtune.validation import StrictModel, error_line, json_schema_of, spec_error

REFERENCE_DIR = Path(__file__).parents[1] / "references"  # kdtune/references (package data)
SPREADS = ("std", "se", "ci95", "none")
M = TypeVar("M", bound=BaseModel)
VALUE_FIELDS = ("metric", "kdtune_metric", "mean", "spread", "note")


class ClaimModel(StrictModel):
    id: str = Field(description="unique in its file; cited as FILE:TABLE/ID")
    check: str = Field(description="the statement, in kdtune's claim grammar (kdtune.repro.claims)")
    quote: str = Field("", description="the paper's words")
    where: str = Field("", description="section, page or figure of the words")
    margin: str = Field("", description="for ≈: why this margin")
    note: str = Field("", description="how the words were turned into the check")
    kind: str = Field(
        "finding",
        description="finding (default), setup (true by construction: a check of the setup), premise (from the literature) "
        "or design (the paper describing its design): only findings count as the paper's results",
    )
    chain: str = Field("links", description="a chain a > b > c: links (every link tested) or trend (one linear trend)")
    recoded: str = Field("", description="how and why the check departs from the words' literal reading")

    def claim(self, where: str, ref: str = "") -> Claim:
        """The claim, its check parsed and its kind and chain checked (one line naming ``where`` when not)."""
        check = parse_check(self.check, where)
        check_kind(where, self.kind, self.chain, check)
        extra = {"margin": self.margin, "note": self.note, "recoded": self.recoded}
        return Claim(self.id, check, self.quote, self.where, extra, self.kind, self.chain, ref)


class PaperDataModel(StrictModel):
    name: str = Field(description="the paper's data set: kdtune's data set name where kdtune has it (mnist), else in words")
    eval_sets: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="eval set name → what the paper evaluated on: source split, corruption and its parameters, as a "
        "kdtune data.eval_sets item (translated: {source: test, corruption: translate, shift: 3})",
    )
    archs: dict[str, str] = Field(default_factory=dict, description="model label → the paper's architecture, as kdtune's arch")


class TableModel(StrictModel):
    title: str
    where: str = ""
    sweeps: list[str] = Field(default_factory=list, description="shipped sweep files whose labels the table uses")
    n: int | None = Field(None, description="the paper's runs per cell")
    spread: str = Field("none", description="the paper's ± convention: std, se, ci95 or none")
    reading: str = Field("", description="how the extracted text of the table was read")
    data: PaperDataModel | None = Field(None, description="what the paper's numbers were measured on (data, eval sets, models)")
    settings: dict[str, Any] = Field(default_factory=dict, description="the paper's settings per model label")
    fixed: dict[str, Any] = Field(default_factory=dict, description="report keys shared by every value")
    values: list[dict[str, Any]] = Field(default_factory=list)
    claims: list[ClaimModel] = Field(default_factory=list)
    untested: list[dict[str, Any]] = Field(
        default_factory=list, description="statements of the paper the claim grammar cannot check (quote, where, why)"
    )
    note: str = ""


class ReferenceModel(StrictModel):
    id: str
    citation: str
    source: str = ""
    url: str = ""
    models: dict[str, str] = Field(default_factory=dict, description="the paper's model name -> kdtune label")
    note: str = Field("", description="where the citation's details come from, and other remarks")
    tables: dict[str, TableModel]


@dataclass(frozen=True)
class RefValue:
    """One published cell: its report keys, the paper's metric name and kdtune's, mean and ± (the paper's)."""

    keys: dict[str, str]
    metric: str
    kdtune_metric: str | None
    mean: float
    spread: float | None
    note: str = ""


@dataclass(frozen=True)
class RefTable:
    ref: str  # the reference id
    key: str  # the table key
    model: TableModel
    values: tuple[RefValue, ...]
    claims: tuple[Claim, ...]
    source: str = ""  # the name it was loaded by (a shipped id or a file path); "" for a study's own claims

    @property
    def id(self) -> str:
        return f"{self.ref}:{self.key}"


def _value(where: str, raw: dict[str, Any], fixed: dict[str, Any]) -> RefValue:
    unknown = [k for k in raw if k not in REPORT_KEYS and k not in VALUE_FIELDS]
    if unknown:
        allowed = f"report keys ({', '.join(REPORT_KEYS)}) or {', '.join(VALUE_FIELDS)}"
        raise KdtuneError(f"{where}.{unknown[0]}: unknown key; allowed here: {allowed}")
    for need in ("metric", "mean"):
        if need not in raw:
            raise KdtuneError(f"{where}.{need}: is required")
    try:
        mean = float(raw["mean"])
        spread = None if raw.get("spread") is None else float(raw["spread"])
    except (TypeError, ValueError):
        raise KdtuneError(f"{where}: mean and spread must be numbers, got {raw.get('mean')!r}, {raw.get('spread')!r}") from None
    keys = {k: str(v) for k, v in {**fixed, **raw}.items() if k in REPORT_KEYS}
    metric = str(raw["metric"])
    kd = raw.get("kdtune_metric", metric)
    return RefValue(keys, metric, None if kd is None else str(kd), mean, spread, str(raw.get("note", "")))


def reference_path(name: str) -> Path:
    """A reference file: a shipped id (``abnar2021``) or a path to a YAML file."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise KdtuneError(f"{name}: no such reference file")
        return p
    shipped = REFERENCE_DIR / f"{name}.yaml"
    if not shipped.is_file():
        raise KdtuneError(
            f"unknown reference {name!r}; shipped: {', '.join(shipped_references()) or 'none'} (or a path to a .yaml file)"
        )
    return shipped


def shipped_references() -> list[str]:
    return sorted(p.stem for p in REFERENCE_DIR.glob("*.yaml"))


def read_model(path: str | Path, model: type[M], shape: str) -> M:
    """A YAML mapping (``yaml.safe_load``) validated by ``model``; one line naming the file when it is not YAML,
    not a mapping (``shape`` says what it should hold) or not valid."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as e:
        raise KdtuneError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    if not isinstance(raw, dict):
        raise KdtuneError(f"{path}: {shape}")
    try:
        return model.model_validate(raw)
    except ValidationError as e:  # said as a sweep file's errors are: field path, what was given, what is allowed
        fields = {error_line(x, json_schema_of(model))[0] for x in e.errors(include_url=False)}
        fields = {f for f in fields if not any(g.startswith((f + ".", f + "[")) for g in fields)}  # a union's other member
        first, more = spec_error(e, str(path), model), len(fields) - 1
        raise SpecError(first.source, first.field, first.message + (f" (and {more} more)" if more else "")) from None


def load_reference(name: str) -> dict[str, RefTable]:
    """Every table of a reference file, checked: fields, value keys, and every claim's grammar (one line each)."""
    path = reference_path(name)
    model = read_model(path, ReferenceModel, "a reference file is a mapping with id, citation and tables")
    out = {}
    seen: set[str] = set()
    for key, t in model.tables.items():
        if t.spread not in SPREADS:
            raise KdtuneError(f"{path}: tables.{key}.spread: {t.spread!r}; one of {', '.join(SPREADS)}")
        values = tuple(_value(f"{path}: tables.{key}.values[{i}]", v, t.fixed) for i, v in enumerate(t.values))
        claims = []
        for c in t.claims:
            if c.id in seen:
                raise KdtuneError(f"{path}: tables.{key}: claim id {c.id!r} used twice in this file")
            seen.add(c.id)
            claims.append(c.claim(f"{path}: tables.{key}: claim {c.id}", f"{model.id}:{key}/{c.id}"))
        out[key] = RefTable(model.id, key, t, values, tuple(claims), name)
    return out


def citation(name: str) -> str:
    raw = yaml.safe_load(reference_path(name).read_text())
    return str(raw.get("citation", ""))


def resolve_target(target: str) -> RefTable:
    """``FILE:TABLE`` (``abnar2021:table6``) as its table; one line listing the tables when there is no such one."""
    name, sep, key = target.rpartition(":")
    if not sep or not name or not key:
        raise KdtuneError(f"--reference {target}: must be FILE:TABLE, e.g. abnar2021:table6")
    tables = load_reference(name)
    if key not in tables:
        raise KdtuneError(f"--reference {target}: no table {key!r} in {name}; tables: {', '.join(tables)}")
    return tables[key]


# ------------------------------------------------------------------------------------------------- the comparison


def _fmt(v: float, digits: int = 3) -> str:
    if v is None or not np.isfinite(v):
        return "–"
    return f"{v:.{digits}f}"


def _p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "–"
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def value_rows(table: RefTable, evidence: Evidence, interval: str = "ci95") -> pd.DataFrame:
    """kdtune's cell beside each published one: means, intervals, n, the difference (kdtune − paper) and whether
    the paper's mean lies inside kdtune's interval."""
    rows = []
    for v in table.values:
        row: dict[str, Any] = {k: v.keys.get(k, "") for k in ("student", "teacher", "eval_set")}
        row.update({k: x for k, x in v.keys.items() if k not in row})
        row |= {"metric": v.metric, "paper_mean": v.mean, "paper_spread": v.spread, "paper_n": table.model.n}
        cell = Cell("report", str(v.kdtune_metric), tuple(v.keys.items()))
        if v.kdtune_metric is None:
            u: Any = "not computed by kdtune" + (f": {v.note}" if v.note else "")
        else:
            u = evidence.units(cell) if v.kdtune_metric in evidence.df.columns else f"{cell}: these results have no {cell.metric}"
        x = np.array([]) if isinstance(u, str) else u.values[np.isfinite(u.values)]
        n = len(x)
        mean = float(np.mean(x)) if n else np.nan
        half = np.nan if isinstance(u, str) else stats.half_width(x, interval)
        why = u if isinstance(u, str) else "" if n else "no finished trial"
        sd_here = float(np.std(x, ddof=stats.DDOF)) if n >= 2 else np.nan
        sd_paper = _as_sd(v.spread, table.model.spread, table.model.n)
        p = np.nan
        if n >= 2 and sd_paper is not None and table.model.n and table.model.n >= 2 and (sd_here > 0 or sd_paper > 0):
            p = float(scipy.stats.ttest_ind_from_stats(mean, sd_here, n, v.mean, sd_paper, table.model.n, equal_var=False).pvalue)
        inside = None if not np.isfinite(p) else bool(p >= stats.ALPHA)
        row |= {"mean": mean, interval: half, "n": n, "diff": mean - v.mean, "paper_p": p, "paper_inside": inside, "why": why}
        rows.append(row)
    return pd.DataFrame(rows)


def _eval_params(spec: dict[str, Any]) -> dict[str, Any]:
    """An eval set's corruption parameters: its ``params`` and (in a paper's table) the keys beside them."""
    return {k: v for k, v in spec.items() if k not in ("name", "source", "corruption", "params")} | dict(spec.get("params") or {})


def _describe_eval_set(spec: dict[str, Any]) -> str:
    corruption = spec.get("corruption", "identity")
    what = "the clean split" if corruption == "identity" else corruption
    return f"{what}" + "".join(f" {k}={v}" for k, v in sorted(_eval_params(spec).items())) + f" of {spec.get('source', 'test')}"


def _same_eval_set(mine: dict[str, Any], paper: dict[str, Any]) -> bool:
    if any(mine.get(k, d) != paper.get(k, d) for k, d in (("source", "test"), ("corruption", "identity"))):
        return False
    ours = dict(mine.get("params") or {})
    return all(k in ours and (str(ours[k]) == str(v) or _close(ours[k], v)) for k, v in _eval_params(paper).items())


def _trial_config(run_dirs: Sequence[Path], trial_id: object) -> dict[str, Any] | None:
    """A trial's stored config (``config.json``'s ``config``), from the first run folder that holds it."""
    for folder in run_dirs:
        path = folder / "trials" / str(trial_id) / "config.json"
        if path.is_file():
            return json.loads(path.read_text()).get("config", {})
    return None


def data_differences(table: RefTable, evidence: Evidence) -> list[str]:
    """What differs between the run's trials and what the paper measured (the table's ``data``): the data set, the
    definition of each eval set the run shares with the paper, and the architecture of each model label; read from
    the trials' stored configs. Empty when the table says nothing or the run folder holds no configs."""
    paper = table.model.data
    df = evidence.df
    if paper is None or "trial_id" not in df or not evidence.run_dirs:
        return []
    configs: dict[str, dict[str, Any]] = {}
    for label, rows in df.groupby(df["student"].astype(str) if "student" in df else pd.Series("", index=df.index)):
        if (config := _trial_config(evidence.run_dirs, rows["trial_id"].iloc[0])) is not None:
            configs[str(label)] = config
    if not configs:
        return []
    out = []
    names = sorted({str(c.get("data", {}).get("name")) for c in configs.values()})
    if paper.name not in names:
        out.append(f"the run's data set is {', '.join(names)}, not the paper's ({paper.name})")
    mine = {e["name"]: e for c in configs.values() for e in c.get("data", {}).get("eval_sets", [])}
    for name, spec in paper.eval_sets.items():
        if name in mine and not _same_eval_set(mine[name], spec):
            out.append(f"eval set {name} is {_describe_eval_set(mine[name])} here, {_describe_eval_set(spec)} in the paper")
    for label, arch in paper.archs.items():
        if label in configs and configs[label].get("arch") != arch:
            out.append(f"{label} is a {configs[label].get('arch')} here, a {arch} in the paper")
    return out


def _setting(config: dict[str, Any], key: str) -> Any:
    """A paper setting's value in a trial's config: a dotted path, else ``train.KEY``, ``params.KEY``, ``loss.KEY``,
    ``data.KEY``; ``KeyError`` when the config has none."""
    paths = [key] if "." in key else [f"train.{key}", f"params.{key}", f"loss.{key}", f"data.{key}", key]
    for path in paths:
        node: Any = config
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            return node
    raise KeyError(key)


def setting_notes(table: RefTable, df: pd.DataFrame, run_dirs: Sequence[Path]) -> list[str]:
    """The paper's settings beside the run's: ``differ: …`` lines for the settings of a model label whose value in a
    trial's stored config differs, then ``paper: …`` lines for what the paper states that kdtune has no setting
    for (or for labels that are no model of this run, e.g. ``training``)."""
    differ, stated = [], []
    for label, settings in table.model.settings.items():
        if not isinstance(settings, dict):
            stated.append(f"{label}: {settings}")
            continue
        rows = df[(df["student"] == label) & (df["teacher"] == "data")] if "student" in df else df.iloc[:0]
        config = None if rows.empty else _trial_config(run_dirs, rows["trial_id"].iloc[0])
        unknown = []
        for key, paper in settings.items():
            try:
                mine = _setting(config, key) if config is not None else None
            except KeyError:
                mine = None
            if mine is None:
                unknown.append(f"{key} = {paper}")
            elif str(mine) != str(paper) and not _close(mine, paper):
                differ.append(f"{label} {key}: {mine} here, {paper} in the paper")
        if unknown:
            stated.append(f"{label}: " + "; ".join(unknown))
    out = []
    if differ:
        out += ["Settings that differ from the paper's:"] + [f"- {d}" for d in differ]
    if stated:
        out += ["The paper's other settings (no kdtune setting of that name to compare):"] + [f"- {x}" for x in stated]
    return out


def _close(a: Any, b: Any) -> bool:
    try:
        return bool(np.isclose(float(a), float(b)))
    except (TypeError, ValueError):
        return False


def claim_rows(verdicts: Sequence[Verdict]) -> pd.DataFrame:
    """One row per comparison of each claim (a chain has one per link), with the claim's verdict, its family, the
    p that decided it (adjusted), the interval (unadjusted, at ``level``) and the claims that share the test."""
    from kdtune.repro.claims import deciding_p, link_ids

    rows = []
    for v in verdicts:
        cal = v.calibration
        calibration = {column: getattr(cal, name, np.nan) for column, name in _CALIBRATION_COLUMNS}
        calibration["n_for_80"] = getattr(cal, "needed", None)
        for i, x in enumerate(v.links):
            decided, which = deciding_p(x)
            rows.append(
                calibration
                | {
                    "claim": v.claim.id if len(v.links) == 1 else f"{v.claim.id} ({i + 1}/{len(v.links)})",
                    "ref": v.claim.name,
                    "ids": " = ".join(link_ids(x)),
                    "same_as": v.same_as,
                    "family": v.family,
                    **{k: getattr(v.claim, k) for k in ("kind", "where", "quote")},
                    "check": x.text,
                    "verdict": v.verdict,
                    "link_verdict": x.verdict,
                    **{k: getattr(x, k) for k in _LINK_COLUMNS},
                    "p_decided": decided,
                    "p_which": which,
                    **{k: getattr(x, k) for k in ("test", "n", "why", "note")},
                    **spec_columns(x),
                }
            )
    return pd.DataFrame(rows)


_CALIBRATION_COLUMNS = (("paper_passes", "passes"), ("power", "power"), ("power_level", "level"))  # then n_for_80
_LINK_COLUMNS = ("estimate", "lo", "hi", "level", "ratio", "p", "p_beyond", "p_adjusted", "p_beyond_adjusted")


SPEC_COLUMNS = ("key", "family", "paired", "folds", "margin", "constant", "exact", "relabellings", "groups", "se", "df")


def spec_columns(link: Link) -> dict[str, object]:
    """What a recomputation of a link's test needs beside its units (:data:`SPEC_COLUMNS`, in claims.csv)."""
    spec = link.spec
    out: dict[str, object] = {}
    for k in SPEC_COLUMNS:
        v = spec.get(k)
        out["test_family" if k == "family" else k] = "|".join(map(str, v)) if isinstance(v, (list, tuple)) else v
    return out


@dataclass
class ReferenceCheck:
    """A reference table checked against a run: the values side by side, the claims' verdicts, the notes; the
    families its claims were corrected in (shared by the tables checked together) and whether its verdicts are of a
    configuration other than the paper's (``here``: they read "holds here", "opposite here", "not shown here")."""

    table: RefTable
    values: pd.DataFrame
    claims: pd.DataFrame
    verdicts: list[Verdict]
    notes: list[str]
    interval: str
    families: dict[str, Family] = field(default_factory=dict)
    here: bool = False
    other: list[str] = field(default_factory=list)  # what differs from the paper's data, eval sets and models


def paper_summaries(table: RefTable, cells: Sequence[Cell]) -> dict[Cell, Summary]:
    """The paper's mean, SD and n of each report cell that a published value matches (metric and every key the cell
    names), looked up in ``table`` first, then in the other tables of its reference file that share a sweep with
    it (Table 6's claims read Table 5's from-data cells); a cell matched by two different values, or by a value
    without a ± (or a ± that is not a std, se or 95 % interval), gets none."""
    tables = load_reference_cached(table.source)
    mine = set(table.model.sweeps)
    scope = [table] + [t for t in tables.values() if t.key != table.key and mine & set(t.model.sweeps)]
    out: dict[Cell, Summary] = {}
    for cell in cells:
        if cell.source != "report":
            continue
        for t in scope:
            found = {(v.mean, v.spread) for v in t.values if _matches(v, cell)}
            if not found:
                continue
            if len(found) == 1:
                mean, spread = found.pop()
                sd = _as_sd(spread, t.model.spread, t.model.n)
                if sd is not None and t.model.n:
                    out[cell] = Summary(mean, sd, int(t.model.n))
            break
    return out


def _matches(v: RefValue, cell: Cell) -> bool:
    """Whether a published value is the cell: its metric, and every key the cell names (as text, or as a number)."""
    return v.kdtune_metric == cell.metric and all(k in v.keys and (v.keys[k] == x or _close(v.keys[k], x)) for k, x in cell.keys)


def _as_sd(spread: float | None, convention: str, n: int | None) -> float | None:
    """A published ± as a standard deviation (std as is; se × √n; a 95 % t-interval's half-width / t · √n)."""
    if spread is None or not n or convention not in ("std", "se", "ci95"):
        return None
    if convention == "std":
        return float(spread)
    if convention == "se":
        return float(spread) * n**0.5
    return float(spread) / float(scipy.stats.t.ppf(0.975, n - 1)) * n**0.5


@functools.lru_cache(maxsize=16)
def load_reference_cached(name: str) -> dict[str, RefTable]:
    """:func:`load_reference`, once per process (the files do not change while kdtune runs)."""
    return load_reference(name)


def calibrate_verdicts(checks: Sequence[ReferenceCheck], alpha: float) -> None:
    """Each claim with the paper's means, SDs and n for all its cells: paper passes and power (:mod:`kdtune.repro.power`),
    on the verdict (``calibration``) and its rows."""
    for check in checks:
        if not check.table.source:  # a study's own claims: no published numbers
            continue
        for v in check.verdicts:
            if v.same_as:
                continue
            summaries = paper_summaries(check.table, v.claim.check.cells)
            run_n = {c: k for x in v.links for c, k in x.cells_n.items()}
            size = len(check.families[v.family].links) if v.family in check.families else 1
            v.calibration = calibrate(v.claim, summaries, run_n, size, alpha)
        check.claims = claim_rows(check.verdicts)


def check_tables(
    tables: Sequence[RefTable],
    evidence: Evidence,
    *,
    own: Sequence[Claim] = (),
    own_name: str = "claims",
    primary: Sequence[str] = (),
    interval: str = "ci95",
    test: str = "auto",
    alpha: float = stats.ALPHA,
    correction: str = "holm",
    seed: int = stats.SEED,
    here: bool = False,
) -> list[ReferenceCheck]:
    """Check reference tables (and claims of a study's own) against the evidence together: each table's cells are
    those of its sweeps (``sweeps``, by name) where the results hold any of them; one test per distinct comparison,
    Holm once over the ``primary`` claims and once over the rest (:class:`kdtune.repro.claims.Checker`). The own claims come
    last, as a table named ``own_name``."""
    checker = Checker(test=test, alpha=alpha, correction=correction, seed=seed, primary=primary)
    parts = []
    for table in tables:
        scoped, used = evidence.restricted([Path(s).stem for s in table.model.sweeps])
        verdicts = [checker.add(c, scoped, ",".join(used)) for c in table.claims]
        parts.append((table, scoped, used, verdicts))
    if own:
        mine = RefTable(own_name, "claims", TableModel(title="the study's own claims"), (), tuple(own))
        parts.append((mine, evidence, [], [checker.add(c, evidence) for c in own]))
    families = checker.finish()
    out: list[ReferenceCheck] = []
    for table, scoped, used, verdicts in parts:
        notes = setting_notes(table, scoped.df, scoped.run_dirs)
        if used:
            notes = [f"Cells from the trials of sweep{'s' if len(used) > 1 else ''} {', '.join(used)}.", *notes]
        values = value_rows(table, scoped, interval) if table.values else pd.DataFrame()
        other = data_differences(table, scoped)
        out.append(
            ReferenceCheck(table, values, claim_rows(verdicts), verdicts, notes, interval, families, here or bool(other), other)
        )
    calibrate_verdicts(out, alpha)
    return out


def _key_columns(v: pd.DataFrame) -> tuple[list[str], dict[str, str]]:
    """The value table's key columns that vary (shown) and those equal in every row (said once in the note)."""
    text = {c: v[c].astype(object).where(v[c].notna(), "").map(str) for c in v.columns if c in REPORT_KEYS}
    present = [c for c, col in text.items() if (col != "").any()]
    varying = [c for c in present if text[c].nunique() > 1]
    fixed = {c: text[c].iloc[0] for c in present if c not in varying}
    if not varying and present:
        varying, fixed = [present[0]], {c: x for c, x in fixed.items() if c != present[0]}
    return varying, fixed


def _values_frame(check: ReferenceCheck) -> pd.DataFrame:
    v = check.values
    if v.empty:
        return v
    spread = check.table.model.spread
    keys, _fixed = _key_columns(v)
    shown = pd.DataFrame({k: v[k].fillna("") for k in keys})
    shown["metric"] = v["metric"]
    pm = "" if spread == "none" else " ± "
    shown["paper"] = [
        f"{m:.3f}{pm}{s:.3f}" if s is not None and np.isfinite(s) and pm else f"{m:.3f}"
        for m, s in zip(v["paper_mean"], v["paper_spread"], strict=True)
    ]
    shown["kdtune"] = [
        f"{_fmt(m)} ± {_fmt(h)} ({n})" if n else "–" for m, h, n in zip(v["mean"], v[check.interval], v["n"], strict=True)
    ]
    shown["difference"] = [f"{d:+.3f}" if np.isfinite(d) else "–" for d in v["diff"]]
    other = "other data; " if check.other else ""
    shown["paper vs kdtune"] = [
        "–" if x is None or not np.isfinite(p) else f"{other}{'consistent' if x else 'differs'}, p {_p(p)}"
        for x, p in zip(v["paper_inside"], v.get("paper_p", pd.Series(np.nan, index=v.index)), strict=True)
    ]
    return shown.set_index(keys) if keys else shown


HERE = {"holds": "holds here", "contradicted": "opposite here", "not significant": "not shown here", "untestable": "untestable"}
# verdicts on a configuration cut from the paper's: what the run shows, not what the paper's configuration would


def verdict_word(verdict: str, here: bool) -> str:
    """A verdict as the report writes it: on a cut-down configuration or other data, with where (:data:`HERE`)."""
    return HERE.get(verdict, verdict) if here else verdict


def _interval(e: float, lo: float, hi: float, level: float, ratio: bool) -> str:
    if not np.isfinite(e):
        return "–"
    mid = f"×{e:.3g}" if ratio else f"{e:+.3f}"
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo == hi:
        return f"{mid} (no interval)"
    ends = f"[{lo:.3g}, {hi:.3g}]" if ratio else f"[{_fmt(lo)}, {_fmt(hi)}]"
    return f"{mid} {ends} {100 * level:.0f} %"


def _decided(row: pd.Series) -> str:
    if row["link_verdict"] == "untestable":
        return "–"
    p = _p(row["p_decided"])
    if row["p_which"] == "TOST" and row["link_verdict"] != "holds":
        return f"{p} (TOST; beyond {_p(row['p_beyond_adjusted'])})"
    return f"{p} ({row['p_which']})" if row["p_which"] else p


def _claims_frame(check: ReferenceCheck) -> pd.DataFrame:
    c = check.claims
    if c.empty:
        return c
    rows = []
    for _, r in c.iterrows():
        others = [i for i in r["ids"].split(" = ") if i and i != r["ref"]]
        label = r["claim"] + (f" (= {', '.join(others)})" if others and not r["same_as"] else "")
        verdict = f"**{verdict_word(r['verdict'], check.here)}**"
        if r["verdict"] != r["link_verdict"]:
            verdict += f" (this link: {verdict_word(r['link_verdict'], check.here)})"
        row = {"claim": label, "check": r["check"], "verdict": verdict}
        if r["same_as"]:
            row |= {"estimate [interval, unadjusted]": f"the same test as {r['same_as']}", "p (adjusted)": "(there)"}
        else:
            row["estimate [interval, unadjusted]"] = _interval(r["estimate"], r["lo"], r["hi"], r["level"], bool(r["ratio"]))
            row["p (adjusted)"] = _decided(r)
        row |= {"test": r["test"] or "–", "n": r["n"] or "–"}
        rows.append(
            row | (dict.fromkeys(("paper passes", "power (n here)"), "(there)") if r["same_as"] else _calibration_cells(r))
        )
    frame = pd.DataFrame(rows).set_index("claim")
    if "paper passes" in frame and frame["paper passes"].isin(["–", "(there)"]).all():
        frame = frame.drop(columns=["paper passes", "power (n here)"])
    return frame


def _calibration_cells(r: pd.Series) -> dict[str, str]:
    """``paper passes`` and ``power (n here)`` of a claim row (– where the paper gives no SDs for its cells)."""
    passes = r.get("paper_passes", np.nan)
    if not np.isfinite(passes):
        return {"paper passes": "–", "power (n here)": "–"}
    power = r.get("power", np.nan)
    need = r.get("n_for_80")
    need_text = f"80 % at n = {int(need)}" if need is not None and np.isfinite(need) else "80 % not within n = 64"
    shown = f"{power:.2f}; {need_text}" if np.isfinite(power) else f"– ; {need_text}"
    flag = " ⚠" if passes < 0.5 else ""
    return {"paper passes": f"{passes:.2f}{flag}", "power (n here)": shown}


_HERE_NOTE = (
    " Verdicts here are of this run's configuration, which the study declares cut from the paper's (or whose data "
    "differ): holds here / opposite here / not shown here."
)
_OTHER_NOTE = "; other data: the run measured something else than the paper (above), so neither reads as a reproduction"


def _claim_notes(check: ReferenceCheck, alpha: float, correction: str) -> list[str]:
    from kdtune.repro.claims import FAMILIES, KIND_NAMES, TEST_LABELS, UNTESTABLE

    c = check.claims
    if c.empty:
        return []
    lines = [check.families[f].note(alpha, correction) for f in FAMILIES if f in set(c["family"]) and f in check.families]
    tests = [t for t in dict.fromkeys(c["test"]) if t]
    here = _HERE_NOTE if check.here else ""
    lines.append(
        f"Tests: {'; '.join(TEST_LABELS.get(t, t) for t in tests) or 'none'}. holds: significant in the stated direction "
        "after the family's correction (≈: inside ±margin by TOST); contradicted: significant the other way (≈: beyond "
        "the margin); not significant: neither (not a finding of no difference: read the interval); untestable: no "
        f"valid test (the reason is below).{here} p: the adjusted p that decided the verdict (≈: TOST's, or the "
        "beyond-the-margin one for contradicted). estimate [interval]: unadjusted, 95 % (90 % on ≈ rows: the interval "
        "TOST at α corresponds to); × a ratio of SDs. n: units per cell (trained models; for pair measures the models "
        "of the row × column groups)."
    )
    if "paper_passes" in c and c["paper_passes"].notna().any():
        lines.append(
            f"paper passes: the share of {DRAWS:,} draws of synthetic units from the paper's own means, SDs and n (normal; "
            f"seeded) in which the claim holds as coded, at α = {alpha:g} unadjusted (⚠ below 0.5: the coding, not the "
            "run, is in question). power (n here): the same at this run's n per cell, at α/m of the claim's family of m "
            "tests (a lower bound of Holm's power; synthetic cells are unpaired), and the n per cell that reaches 80 %. "
            "– : the paper gives no SDs for a cell."
        )
    by_quote: dict[tuple[str, str], list[str]] = {}
    for v in check.verdicts:
        if v.claim.quote:
            by_quote.setdefault((v.claim.quote, v.claim.where), []).append(v.claim.id)
    lines += [f"- {', '.join(ids)}{f' ({w})' if w else ''}: “{q}”" for (q, w), ids in by_quote.items()]
    for v in check.verdicts:
        if v.claim.kind != "finding":
            lines.append(f"- {v.claim.id} is {KIND_NAMES[v.claim.kind]}: checked, not counted as a finding")
        recoded = str(v.claim.extra.get("recoded", "") or "")
        if recoded:
            lines.append(f"- {v.claim.id} recoded: {recoded}")
        if v.same_as:
            continue
        why = "; ".join(x.why for x in v.links if x.verdict == UNTESTABLE and x.why)
        if why:
            lines.append(f"- {v.claim.id} is untestable: {why}")
        notes = "; ".join(dict.fromkeys(x.note for x in v.links if x.note))
        extra = "; ".join(dict.fromkeys(x.why for x in v.links if x.verdict != UNTESTABLE and x.why))
        if notes or extra:
            lines.append(f"- {v.claim.id}: {'; '.join(s for s in (notes, extra) if s)}")
    return lines


def _value_notes(check: ReferenceCheck) -> list[str]:
    t = check.table.model
    shown = stats.INTERVAL_NAMES[check.interval]
    conv = {"std": "std", "se": "standard error", "ci95": "95 % interval", "none": "no ± given"}[t.spread]
    _keys, fixed = _key_columns(check.values) if not check.values.empty else ([], {})
    every = f"Every cell: {', '.join(f'{k} = {x}' for k, x in fixed.items())}. " if fixed else ""
    lines = [
        f"{every}paper: mean ± {conv} over {t.n if t.n else '?'} runs ({t.where or t.title}); kdtune: mean ± {shown} (n) "
        "over its trained models; difference: kdtune − paper; paper vs kdtune: Welch's t-test on the two summaries "
        f"(scipy.stats.ttest_ind_from_stats: the paper's mean, SD and n against kdtune's), consistent where p ≥ {stats.ALPHA:g} "
        f"(unadjusted; not a finding of equality), – where the paper gives no ±{_OTHER_NOTE if check.other else ''}."
    ]
    if t.reading:
        lines.append(f"How the table was read from the paper's text: {t.reading}")
    missing = [w for w in check.values.get("why", []) if w]
    if missing:
        lines.append(f"{len(missing)} published cell(s) without a kdtune cell (–):")
        reasons = Counter(w.split("]: ", 1)[-1] for w in missing)  # "cell: reason": each reason once, with its count
        lines += [f"- {reason} ({n} cell{'s' if n > 1 else ''})" for reason, n in reasons.items()]
    return lines + check.notes


def render_checks(
    checks: Sequence[ReferenceCheck], fmt: str = "markdown", alpha: float = stats.ALPHA, correction: str = "holm"
) -> str:
    """The checks as markdown, LaTeX (booktabs, notes as comments) or one tidy CSV (``part`` = value or claim)."""
    from kdtune.results.tables import to_latex, to_markdown

    if fmt == "csv":
        frames = [
            f
            for c in checks
            for f in (c.values.assign(part="value", reference=c.table.id), c.claims.assign(part="claim", reference=c.table.id))
            if not f.empty
        ]
        return pd.concat(frames, ignore_index=True).to_csv(index=False) if frames else ""
    write = to_markdown if fmt == "markdown" else to_latex
    out = []
    for c in checks:
        head = f"{c.table.id} — {c.table.model.title}"
        if c.other:
            line = other_data_line(c)
            out.append(f"**{line}**" if fmt == "markdown" else f"% {line}")
        if not c.values.empty:
            out.append(write(_values_frame(c), f"{head}: the paper beside kdtune", _value_notes(c)))
        elif c.notes:  # (in LaTeX as comments, as the notes under a table)
            out.append("\n".join(("% " if fmt == "latex" else "") + n for n in _value_notes(c)[1:]))
        if not c.claims.empty:
            frame = _claims_frame(c)
            if fmt == "markdown":  # a check as code: its * and < are the grammar's, not Markdown's emphasis or HTML
                frame["check"] = [f"`{x}`" for x in frame["check"]]
            out.append(write(frame, f"{head}: claims", _claim_notes(c, alpha, correction)))
        untested = untested_lines(c.table)
        if untested:
            out.append("\n".join(untested) if fmt == "markdown" else "\n".join(f"% {line}" for line in untested))
    return "\n\n".join(out) + "\n"


def other_data_line(check: ReferenceCheck) -> str:
    """The one line a check against other data than the paper's starts with: what differs, and what that makes of it."""
    return (
        f"Other data ({check.table.id}): {'; '.join(check.other)}. The comparison below is marked other data and its "
        "verdicts read 'here': they are of this run, not a reproduction of the paper's numbers."
    )


def untested_lines(table: RefTable) -> list[str]:
    """The table's statements that are no claim (``untested``: the grammar cannot check them, or the paper's own numbers
    cannot carry a test), each with why: a report lists them, never leaves them out silently."""
    items = table.model.untested
    head = [f"{table.id}: {len(items)} statement(s) of the paper not checked:"] if items else []
    return head + [f"- “{item.get('quote', '')}” ({item.get('where', '')}): {item.get('why', '')}" for item in items]
