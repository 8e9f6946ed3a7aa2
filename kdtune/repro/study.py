"""One command per case study: run its sweeps, its analyses, check it against the paper, write one report.

A study file (``studies/*.yaml``, :class:`StudyModel`) names the sweeps of a case study (each with ``--set``
overrides), the analyses, the published tables to check (``abnar2021:table6``), claims of its own, the settings it
cuts from the paper's and the report's tables. ``kdtune study FILE`` (:func:`kdtune.app.study`) checks everything
before any work, runs the sweeps and the analyses as ``kdtune run`` and ``kdtune analyze`` do, and writes
``RUN/report.md`` and a self-contained ``RUN/report/index.html`` (:func:`write_report`).
"""

from __future__ import annotations

import html
import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import BeforeValidator, Field, field_validator

from kdtune.errors import KdtuneError
from kdtune.repro.claims import FAMILIES, FAMILY_NAMES, Claim, Evidence
from kdtune.repro.reference import (
    ClaimModel,
    ReferenceCheck,
    check_tables,
    read_model,
    render_checks,
    resolve_target,
    verdict_word,
)
from kdtune.results.tables import ReportSpec
from kdtune.validation import StrictModel, adapter

REPORT_MD = "report.md"
CLAIMS_CSV = "claims.csv"  # every claim row in full precision, beside report.md
UNITS_CSV = "units.csv"  # every unit behind every test (a reader can redo each p from it)
REPORT_HTML = Path("report") / "index.html"


class AnalysesModel(StrictModel):
    only: list[str] = Field(default_factory=list, description="analyses to run (default: all)")
    where: list[str] = Field(default_factory=list, description="filters, as kdtune analyze --where KEY=V1,V2")
    eval_sets: list[str] = Field(default_factory=list, description="eval sets to analyse (default: all but val)")


class SweepEntry(StrictModel):
    path: str = Field(description="the sweep file, relative to the study file")
    set: list[str] = Field(default_factory=list, description="overrides, as kdtune run --set KEY=VALUE")
    out: str | None = Field(None, description="this sweep's run folder (default: the study's)")
    tables: bool = Field(True, description="its trials count in the report's cells and claims (false: it only feeds analyses)")
    analyses: AnalysesModel | None = Field(None, description="the analyses of this sweep's run folder (default: the study's)")


STUDY_REPORT = {"metrics": ["accuracy"], "interval": "ci95"}  # a study's report: what it changes of a sweep's


class StudyModel(StrictModel):
    name: str = Field(description="the study's name; the run folder defaults to runs/<name>")
    description: str = ""
    paper: str = Field("", description="a shipped reference id (its citation heads the report)")
    out: str | None = Field(None, description="run folder, relative to the working directory")
    data_dir: str | None = Field(None, description="data folder of every sweep and analysis (as --data-dir, which overrides it)")
    sweeps: list[SweepEntry | str] = Field(min_length=1)
    analyses: AnalysesModel | None = Field(None, description="omit to run no analysis")
    references: list[str] = Field(default_factory=list, description="published tables to check, FILE:TABLE")
    claims: list[ClaimModel] = Field(default_factory=list, description="the study's own claims")
    primary: list[str] = Field(
        default_factory=list,
        description="the primary claims, FILE:TABLE/ID of a reference table's claim or ID of the study's own: Holm runs "
        "once over them and once over every other claim (exploratory)",
    )
    cuts: list[str] = Field(default_factory=list, description="settings cut from the paper's, as the report states them")
    figures: list[str] = Field(default_factory=list, description="glob patterns under RUN/analysis (default: every PNG)")
    report: Annotated[ReportSpec, BeforeValidator(lambda v: STUDY_REPORT | v if isinstance(v, dict) else v)] = Field(
        default_factory=lambda: adapter(ReportSpec).validate_python(STUDY_REPORT),
        description="kdtune's own tables, as a sweep's report section, but for accuracy with 95 % intervals by default",
    )

    @field_validator("sweeps")
    @classmethod
    def _entries(cls, v: list[SweepEntry | str]) -> list[SweepEntry | str]:
        return [SweepEntry(path=e) if isinstance(e, str) else e for e in v]


@dataclass(frozen=True)
class Study:
    path: Path
    model: StudyModel
    sweeps: tuple[SweepEntry, ...]
    out: Path
    claims: tuple[Claim, ...]

    @property
    def name(self) -> str:
        return self.model.name

    def out_of(self, entry: SweepEntry) -> Path:
        """The run folder of one sweep: its own ``out``, else the study's."""
        return Path(entry.out) if entry.out else self.out

    @property
    def run_dirs(self) -> list[Path]:
        """Every run folder the study's sweeps write, each once, in order."""
        return list(dict.fromkeys(self.out_of(e) for e in self.sweeps))

    @property
    def table_dirs(self) -> list[Path]:
        """The run folders whose trials make the report's cells (those of sweeps with ``tables: true``)."""
        return list(dict.fromkeys(self.out_of(e) for e in self.sweeps if e.tables))

    def analyses_of(self, run_dir: Path) -> AnalysesModel | None:
        """The analyses of one run folder: those of its first sweep that names some, else the study's."""
        for e in self.sweeps:
            if self.out_of(e) == run_dir and e.analyses is not None:
                return e.analyses
        return self.model.analyses


def load_study(path: str | Path, out: str | None = None) -> Study:
    """A study file, checked: its fields (one line naming the field), its sweep files exist, its reference tables
    resolve and every claim parses. The sweeps themselves are planned by the caller (as ``kdtune run`` does)."""
    p = Path(path)
    if not p.is_file():
        raise KdtuneError(f"{path}: no such study file")
    model = read_model(p, StudyModel, "a study file is a mapping with name, sweeps, analyses, references, …")
    sweeps = tuple(e for e in model.sweeps if isinstance(e, SweepEntry))
    for e in sweeps:
        if not (p.parent / e.path).is_file():
            raise KdtuneError(f"{path}: sweeps: {e.path}: no such sweep file (paths are relative to the study file)")
    known = {c.name for target in model.references for c in resolve_target(target).claims}
    claims = tuple(c.claim(f"{path}: claims: {c.id}") for c in model.claims)
    known |= {c.id for c in claims}
    for name in model.primary:
        if name not in known:
            listed = ", ".join(sorted(known)[:3]) + (", …" if len(known) > 3 else "")
            raise KdtuneError(
                f"{path}: primary: {name!r} is no claim of the study's reference tables or its own; "
                f"write FILE:TABLE/ID (e.g. {listed or 'abnar2021:table6/cnn-teacher-improves-mlp-accuracy-scaled'})"
            )
    run = Path(out or model.out or Path("runs") / model.name)
    return Study(p, model, sweeps, run, claims)


def sweep_path(study: Study, entry: SweepEntry) -> Path:
    return study.path.parent / entry.path


# ------------------------------------------------------------------------------------------------------ the report


def _checks(study: Study, df: pd.DataFrame) -> tuple[list[ReferenceCheck], ReferenceCheck | None]:
    """Every reference table and the study's own claims checked together: one test per distinct comparison, Holm once
    over the primary claims and once over the rest; verdicts read "here" when the study declares cuts."""
    from kdtune.results.tables import SETTINGS

    r = study.model.report
    evidence = Evidence(df, study.run_dirs, SETTINGS)
    tables = [resolve_target(t) for t in study.model.references]
    checks = check_tables(
        tables,
        evidence,
        own=study.claims,
        own_name=study.name,
        primary=study.model.primary,
        interval=r.interval,
        test=r.test,
        alpha=r.alpha,
        correction=r.correction,
        here=bool(study.model.cuts),
    )
    if study.claims:
        return checks[:-1], checks[-1]
    return checks, None


def _figures(study: Study) -> list[Path]:
    patterns = study.model.figures or ["**/*.png"]
    found = [
        f for d in study.run_dirs if (d / "analysis").is_dir() for pat in patterns for f in sorted((d / "analysis").glob(pat))
    ]
    return list(dict.fromkeys(f for f in found if f.suffix == ".png"))


def _summary(checks: Sequence[ReferenceCheck], family: str) -> pd.DataFrame:
    """Every claim of one family: table, claim, where, verdict (a claim whose test is listed under another says so)."""
    rows = []
    for c in checks:
        for v in c.verdicts:
            if v.family != family:
                continue
            where = (v.claim.where or "–") + (f"; the same test as {v.same_as}" if v.same_as else "")
            word = f"**{verdict_word(v.verdict, c.here)}**"
            rows.append({"table": c.table.id, "claim": v.claim.id, "where": where, "verdict": word})
    return pd.DataFrame(rows).set_index(["table", "claim"]) if rows else pd.DataFrame()


def _tally(checks: Sequence[ReferenceCheck]) -> pd.DataFrame:
    """Per reference table, how many of its findings got each verdict (a test listed under another claim once)."""
    from kdtune.repro.claims import CHECKS, VERDICTS

    rows = []
    for c in checks:
        got = [v.verdict for v in c.verdicts if v.family != CHECKS and not v.same_as]
        if got:
            words = {k: verdict_word(k, c.here) for k in VERDICTS}
            rows.append({"table": c.table.id, **{words[k]: got.count(k) for k in VERDICTS}, "claims": len(got)})
    return pd.DataFrame(rows).set_index("table").fillna(0).astype(int) if rows else pd.DataFrame()


POWER_NOTES = [
    "power: each primary claim's share of 2,000 synthetic data sets (normal cells of the given means and SDs, unpaired; "
    "a cell two claims share drawn once) in which it holds with Holm over the primary family, as its verdict is reached "
    "(tests without numbers to draw from counted as never rejected); at this run's n per cell, from the paper's numbers "
    "and from this run's own cells (the effect this run measured); n for 80 %: the units per cell, every cell alike, at "
    "which it reaches 80 %. – : no published SDs for a cell."
]


def _power_table(checks: Sequence[ReferenceCheck], alpha: float) -> pd.DataFrame:
    """Per primary claim: its n here, its power under Holm over the primary family (:func:`kdtune.repro.power.family_power`)
    at that n and the n per cell that 80 % needs, from the paper's numbers and from this run's (a pilot)."""
    from kdtune.repro.claims import PRIMARY
    from kdtune.repro.power import calibratable, family_needed_n, family_power, summaries_of
    from kdtune.repro.reference import paper_summaries

    family = next((c.families[PRIMARY] for c in checks if PRIMARY in c.families), None)
    found = [(c, v) for c in checks for v in c.verdicts if v.family == PRIMARY and not v.same_as]
    if family is None or not found:
        return pd.DataFrame()
    m = len(family.links)
    paper, pilot, n_here = {}, {}, {}
    for c, v in found:
        if c.table.source:
            paper |= paper_summaries(c.table, v.claim.check.cells)
        for x in v.links:
            for cell, k in x.cells_n.items():
                values = np.asarray([float(r["value"]) for r in x.units if r.get("cell") == str(cell)])
                pilot |= summaries_of({cell: values})
                n_here[cell] = k
    claims = [v.claim for _, v in found]
    n = min(n_here.values()) if n_here else 0

    def columns(summaries: dict) -> dict[str, tuple[str, str]]:
        """Per claim with numbers: its power here and the n per cell for 80 %, as the table shows them."""
        ok = [cl for cl in claims if calibratable(cl, summaries)]
        if not ok:
            return {}
        others = max(0, m - sum(max(1, len(cl.check.ops)) for cl in ok))
        power = family_power(ok, summaries, n, alpha, others=others) if n >= 2 else [float("nan")] * len(ok)
        needed = family_needed_n(ok, summaries, alpha, others=others)
        shown = [
            (f"{pw:.2f}" if np.isfinite(pw) else "–", "> 64" if k is None else str(k))
            for pw, k in zip(power, needed, strict=True)
        ]
        return dict(zip((cl.name for cl in ok), shown, strict=True))

    from_paper, from_run = columns(paper), columns(pilot)
    rows = []
    for _, v in found:
        name = v.claim.name
        cells_n = " vs ".join(str(n_here[c]) for c in dict.fromkeys(v.claim.check.cells) if c in n_here) or "–"
        (p_power, p_need), (r_power, r_need) = from_paper.get(name, ("–", "–")), from_run.get(name, ("–", "–"))
        rows.append(
            {
                "claim": name,
                "n here": cells_n,
                "power here (paper's effect)": p_power,
                "n for 80 % (paper)": p_need,
                "power here (this run's effect)": r_power,
                "n for 80 % (this run)": r_need,
            }
        )
    return pd.DataFrame(rows).set_index("claim")


def _counts(checks: Sequence[ReferenceCheck]) -> str:
    """``primary: 5 holds here, 1 not shown here; exploratory: …; checks (not findings): …``: each claim once."""
    from kdtune.repro.claims import VERDICTS

    here = any(c.here for c in checks)
    parts = []
    for f in FAMILIES:
        got = [v.verdict for c in checks for v in c.verdicts if v.family == f and not v.same_as]
        if got:
            tally = ", ".join(f"{got.count(k)} {verdict_word(k, here)}" for k in VERDICTS if got.count(k))
            parts.append(f"{f} ({len(got)}): {tally}")
    return "; ".join(parts) or "no claims"


def write_report(study: Study, df: pd.DataFrame, command: str, runs: Sequence[str]) -> tuple[Path, Path]:
    """Write ``RUN/report.md`` and ``RUN/report/index.html`` (the same content; the page self-contained)."""
    from kdtune.analysis.page import kdtune_version
    from kdtune.repro.reference import citation
    from kdtune.results.tables import to_markdown

    m = study.model
    checks, own = _checks(study, df)
    all_checks = [*checks, *([own] if own else [])]
    several = len(study.table_dirs) > 1
    tables = [
        (f"{d}: {t}" if several else t, x, notes) for d, part in _by_run(study, df) for t, x, notes in own_tables(part, m.report)
    ]
    figures = _figures(study)
    cite = citation(m.paper) if m.paper else ""
    versions = results_versions(study.run_dirs)
    version = min(versions) if versions else None
    md = [f"<!-- kdtune study {m.name}; results version {version} -->", f"# Reproduction report: {m.name}", ""]
    if m.description:
        md += [m.description, ""]
    if cite:
        md += [f"Paper: {cite}", ""]
    made = f"results version {version}" + (f" (trials of versions {sorted(versions)})" if len(versions) > 1 else "")
    md += [f"kdtune {kdtune_version()} · {made} · `{command}`", "", "## Runs", ""]
    md += [f"- {line}" for line in runs]
    if m.cuts:
        md += ["", "## Settings cut from the paper's (declared by the study)", ""] + [f"- {c}" for c in m.cuts]
    md += ["", "## Verdicts", "", f"{_counts(all_checks)}.", ""]
    md += [
        f"Every claim row in full precision is in `{CLAIMS_CSV}` and every unit behind every test (one row per claim, "
        f"link, side and unit, with what identifies the unit) in `{UNITS_CSV}`, beside this report: each p and interval "
        "can be recomputed from them.",
        "",
    ]
    families = all_checks[0].families if all_checks else {}
    md += [f"- {families[f].note(m.report.alpha, m.report.correction)}" for f in FAMILIES if f in families]
    if families:
        md.append("")
    shown = [(_power_table(all_checks, m.report.alpha), "power of the primary claims", POWER_NOTES)]
    shown.append((_tally(all_checks), "findings per table (each test once)", []))
    shown += [(_summary(all_checks, f), f"every claim checked: {FAMILY_NAMES[f]}", []) for f in FAMILIES]
    for frame, title, notes in shown:
        if not frame.empty:
            md += [to_markdown(frame, title, notes), ""]
    md += ["## The paper beside kdtune", ""]
    md += [render_checks(checks, "markdown", m.report.alpha, m.report.correction) if checks else "no reference tables", ""]
    if own:
        md += ["## The study's own claims", "", render_checks([own], "markdown", m.report.alpha, m.report.correction), ""]
    md += ["## kdtune's tables", ""]
    for title, table, notes in tables:
        md += [to_markdown(table, title, notes), ""]
    if figures:
        md += ["## Figures", ""]
        for f in figures:
            rel = Path(os.path.relpath(f, study.out)).as_posix()
            md += [f"![{Path(os.path.relpath(f.with_suffix(''), Path.cwd())).as_posix()}]({rel})", ""]
    study.out.mkdir(parents=True, exist_ok=True)
    md_path = study.out / REPORT_MD
    _atomic(md_path, "\n".join(md).rstrip() + "\n")
    claims, units = unit_tables(all_checks)
    _atomic(study.out / CLAIMS_CSV, claims.to_csv(index=False))
    _atomic(study.out / UNITS_CSV, units.to_csv(index=False))

    page = report_html(md_path.read_text(), study.out, f"{m.name}: reproduction report")
    html_path = study.out / REPORT_HTML
    html_path.parent.mkdir(exist_ok=True)
    _atomic(html_path, page)
    return md_path, html_path


def write_latex(study: Study, df: pd.DataFrame) -> Path:
    """``RUN/report/tables.tex``: the study's tables for a paper, as ``kdtune report --format latex`` writes them (one
    captioned, labelled ``table`` each that fits a standard article at 10 pt): the paper's beside kdtune's and the
    claims, then kdtune's own tables of each run folder."""
    from kdtune.repro.reference import render_checks
    from kdtune.results.tables import render

    r = study.model.report
    checks, own = _checks(study, df)
    parts = [render_checks([*checks, *([own] if own else [])], "latex", r.alpha, r.correction)] if checks or own else []
    metrics = [x for x in r.metrics if x in df and df[x].notna().any()]
    for d, part in _by_run(study, df) if metrics else []:
        try:
            parts.append(render(part, metrics, "latex", r.rows, r.cols, r.eval_sets, r.digits, r, label=d.name))
        except KdtuneError as e:  # as the markdown report says: no table, and why
            parts.append(f"% {d}: no table: {e}")
    path = study.out / REPORT_HTML.parent / "tables.tex"
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic(path, "\n\n".join(parts) + "\n")
    return path


def results_versions(run_dirs: Sequence[Path]) -> set[int]:
    """The results versions (``kdtune.trial/N`` of each finished trial's config) of the trials in these folders."""
    import json

    found = set()
    for d in run_dirs:
        for path in (d / "trials").glob("*/config.json") if (d / "trials").is_dir() else []:
            try:
                schema = json.loads(path.read_text()).get("config", {}).get("schema", "")
            except (OSError, ValueError):
                continue
            if isinstance(schema, str) and schema.rpartition("/")[2].isdigit():
                found.add(int(schema.rpartition("/")[2]))
    return found


def own_tables(df: pd.DataFrame, r: ReportSpec) -> list[tuple[str, pd.DataFrame, list[str]]]:
    """kdtune's own tables of the study (as ``kdtune report`` with the study's ``report`` section)."""
    from kdtune.results.tables import tables

    metrics = [x for x in r.metrics if x in df and df[x].notna().any()]
    if not metrics:
        return []
    try:
        return tables(df, metrics, r.rows, r.cols, r.eval_sets, r.digits, r)
    except KdtuneError as e:
        return [(f"no table: {e}", pd.DataFrame(), [])]


def _by_run(study: Study, df: pd.DataFrame) -> list[tuple[Path, pd.DataFrame]]:
    """Each run folder of the report's tables with its trials: one set of tables per run folder (two folders may hold
    the same labels on other data)."""
    dirs = study.table_dirs
    return [(d, df[df["run"] == str(d)] if "run" in df and len(dirs) > 1 else df) for d in dirs]


def unit_tables(checks: Sequence[ReferenceCheck]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every claim row of the report (``claims.csv``: p, adjusted p, interval, test and what recomputing it needs, in
    full precision) and every unit behind each test (``units.csv``: one row per claim, link, side and unit, with the
    unit's value and the columns that identify it: trial id, fold, stream seeds, initialisation; for a pair measure
    the two models and their groups; ``side`` pool: a pair only a relabelling brings into a cell)."""
    from kdtune.repro.claims import link_ids

    claims, units = [], []
    seen: set[str] = set()
    for c in checks:
        if not c.claims.empty:
            claims.append(c.claims.assign(table=c.table.id))
        for v in c.verdicts:
            for i, x in enumerate(v.links):
                key = str(x.spec.get("key", ""))
                if key in seen:
                    continue
                seen.add(key)
                ids = " = ".join(link_ids(x))
                link = f"{i + 1}/{len(v.links)}"
                for row in x.units:
                    units.append({"claim": ids, "link": link, "key": key, "test": x.test, **row})
    claim_frame = pd.concat(claims, ignore_index=True) if claims else pd.DataFrame()
    unit_frame = pd.DataFrame(units)
    first = ["claim", "link", "key", "test", "side", "cell", "coef", "unit", "value"]
    if not unit_frame.empty:
        unit_frame = unit_frame[[c for c in first if c in unit_frame] + [c for c in unit_frame if c not in first]]
    return claim_frame, unit_frame


def report_html(markdown_text: str, folder: Path, title: str) -> str:
    """The study's page from its ``report.md`` (one source for both): the Markdown converted by python-markdown (pipe
    tables, lists), every wide table in a scrolling box, and every figure (a Markdown image, relative to ``folder``)
    embedded once as a data URI by the analysis page's embedder; self-contained (no script, no network)."""
    import markdown

    from kdtune.analysis.page import CSS, embedded_png

    body = markdown.markdown(markdown_text, extensions=["tables", "sane_lists"], output_format="html")
    body = body.replace("<table>", '<div class="scroll"><table>').replace("</table>", "</table></div>")

    def embed(m: re.Match[str]) -> str:
        src, alt = html.unescape(m.group("src")), html.unescape(m.group("alt"))
        img = embedded_png(folder / src, alt)
        if not img.startswith("<img"):
            return img
        return f"<figure>{img}<figcaption>{html.escape(alt)}</figcaption></figure>"

    body = re.sub(r'<p><img alt="(?P<alt>[^"]*)" src="(?P<src>[^"]+\.png)"\s*/?></p>', embed, body)
    body = re.sub(r'<img alt="(?P<alt>[^"]*)" src="(?P<src>[^"]+\.png)"\s*/?>', embed, body)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{CSS}</style></head><body><main>\n{body}\n</main></body></html>\n"
    )


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def export(study: Study, dest: Path) -> Path:
    """Copy the study's ``report.md`` to ``dest/<name>.md`` with its figures beside it in ``dest/<name>/``, the
    links rewritten, so a docs folder holds the report as it was made (its marker line says the results version)."""
    import shutil

    text = (study.out / REPORT_MD).read_text()
    folder = dest / study.name
    if folder.exists():
        shutil.rmtree(folder)  # the figures of an earlier export: never a stale figure beside a new table
    folder.mkdir(parents=True)

    def copy(m: re.Match[str]) -> str:
        source = Path(os.path.normpath(study.out / m.group(2)))
        if not source.is_file():
            return m.group(0)
        # named from the folder that holds the study's run folders (as written, links not followed): the same
        # names wherever the study ran and whatever its runs/ links to
        rel = Path(os.path.relpath(source, os.path.normpath(study.out.absolute().parent)))
        name = "__".join(p for p in rel.parts if p not in ("..", "runs", "analysis"))
        shutil.copyfile(source, folder / name)
        return f"![{m.group(1)}]({study.name}/{name})"

    out = dest / f"{study.name}.md"
    _atomic(out, re.sub(r"!\[([^\]]*)\]\(([^)]+\.png)\)", copy, text))
    for name in (CLAIMS_CSV, UNITS_CSV):
        if (study.out / name).is_file():
            shutil.copyfile(study.out / name, folder / name)
    _write_index(dest)
    return out


INDEX_MARKER = re.compile(r"^<!-- kdtune study (\S+); results version (\S+) -->$")


def _write_index(dest: Path) -> None:
    """``dest/index.md``: every exported report of the folder, its command and its verdicts per reference table,
    read from the reports themselves (nothing typed by hand)."""
    lines = [
        "# Results: the case studies' reproduction reports",
        "",
        "Each page is the report `kdtune study` wrote (`--export docs/results`), unedited: the paper's published",
        "cells beside kdtune's, every claim with its verdict and test, kdtune's own tables and the figures. This",
        "index is rewritten from those pages at each export.",
        "",
        "| study | command | verdicts |",
        "| --- | --- | --- |",
    ]
    for page in sorted(dest.glob("*.md")):
        if page.name == "index.md":
            continue
        text = page.read_text().splitlines()
        if not text or not (marker := INDEX_MARKER.match(text[0])):
            continue
        name = marker.group(1)
        command = next((line.split("`")[1] for line in text if line.startswith("kdtune ") and "`" in line), "")
        tally = next((line.rstrip(".") for line in text if re.match(r"^(primary|exploratory|checks) \(\d+\): ", line)), "")
        lines.append(f"| [{name}]({page.name}) | `{command}` | {tally} |")
    _atomic(dest / "index.md", "\n".join(lines) + "\n")


def describe(study: Study) -> list[str]:
    """What a study will do, one line each (for ``kdtune study --dry-run``)."""
    m = study.model
    lines = [f"study {m.name} → {study.out / REPORT_MD}"]
    lines += [
        f"  sweep {e.path}" + "".join(f" --set {shlex.quote(x)}" for x in e.set) + f" → {study.out_of(e)}" for e in study.sweeps
    ]
    for d in study.run_dirs:
        a = study.analyses_of(d)
        if a is not None:
            lines.append(f"  analyse {d}: {', '.join(a.only) or 'all'}" + "".join(f" --where {w}" for w in a.where))
    lines += [f"  check {t}" for t in m.references]
    if study.claims:
        lines.append(f"  {len(study.claims)} claims of its own")
    lines += [f"  {line}" for line in primary_power(study)]
    return lines


def primary_power(study: Study) -> list[str]:
    """Per primary claim with the paper's means, SDs and n: the units per cell it needs for 80 % power under Holm over
    the primary family (:func:`kdtune.repro.power.family_needed_n`), from the paper's numbers."""
    from kdtune.repro.power import calibratable, family_needed_n
    from kdtune.repro.reference import paper_summaries

    if not study.model.primary:
        return []
    found = {c.name: (t, c) for name in study.model.references for t in [resolve_target(name)] for c in t.claims}
    claims, summaries = [], {}
    for name in study.model.primary:
        if name in found:
            table, claim = found[name]
            s = paper_summaries(table, claim.check.cells)
            if calibratable(claim, s):
                claims.append(claim)
                summaries |= s
    others = len(study.model.primary) - len(claims)
    needed = dict(
        zip((c.name for c in claims), family_needed_n(claims, summaries, study.model.report.alpha, others=others), strict=True)
    )
    out = [f"primary claims ({len(study.model.primary)}; Holm over them, the paper's numbers):"]
    for name in study.model.primary:
        if name not in needed:
            out.append(f"  {name}: no published SDs for its cells (a pilot run's report gives its n)")
            continue
        n = needed[name]
        out.append(f"  {name}: 80 % power at n = {n} per cell" if n else f"  {name}: 80 % power not within 64 per cell")
    return out
