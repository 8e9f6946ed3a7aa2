"""The analysis page: ``RUN/analysis/index.html``, one self-contained file (figures embedded as data URIs,
CSS inline, no scripts, no network) with the run's report tables and every analysis's figures, tables and notes.
"""

from __future__ import annotations

import base64
import datetime
import html
import importlib.metadata
import itertools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from kdtune.analysis import Output
from kdtune.labels import show

if TYPE_CHECKING:
    from kdtune.results.tables import ReportSpec

PAGE = "index.html"
ReportTable = tuple[str, pd.DataFrame, list[str]]  # (title, table with a named index, notes as markdown lines)

CSS = """
body { margin: 0; color: #1d1d1f; background: #fff; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto,
  "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 1.5rem 1.5rem 4rem; }
h1 { font-size: 1.6rem; margin: 0.5rem 0 0.8rem; }
h2 { font-size: 1.3rem; margin: 2.6rem 0 0.8rem; padding-bottom: 0.25rem; border-bottom: 2px solid #d8d8d8; }
h3 { font-size: 1.05rem; margin: 1.6rem 0 0.4rem; }
a { color: #0b5cad; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.88em; }
code { background: #f2f2f4; padding: 0.1em 0.35em; border-radius: 3px; overflow-wrap: anywhere; }
pre { background: #f6f6f8; padding: 0.7rem; overflow-x: auto; white-space: pre-wrap; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1.2rem; margin: 0 0 1rem; }
dl.meta dt { font-weight: 600; color: #555; }
dl.meta dd { margin: 0; }
nav.toc { background: #f7f7f9; border: 1px solid #e2e2e6; padding: 0.6rem 1.2rem; }
nav.toc ol { margin: 0.3rem 0; padding-left: 1.4rem; }
nav.toc .tag { color: #777; font-size: 0.85em; }
/* a wide table may use the right margin of the page, then scrolls */
.scroll { overflow-x: auto; margin: 0.4rem 0 1rem; width: max-content;
  max-width: calc(100vw - max(0px, (100vw - 1200px) / 2) - 3rem); }
table { border-collapse: collapse; font-size: 0.8rem; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: 0 0 0.35rem; }
th, td { border: 1px solid #b9b9c0; padding: 0.2rem 0.45rem; vertical-align: top; }
thead th { background: #eeeef2; text-align: center; }
thead th.corner { text-align: right; font-style: italic; font-weight: 500; color: #555; }
thead th.index { text-align: left; }
tbody th { background: #fafafb; text-align: left; font-weight: 600; white-space: nowrap; }
td { text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 1rem 0 1.6rem; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid #ececf0; }
figcaption { font-size: 0.85rem; color: #555; margin-top: 0.3rem; }
ul.notes li, ul.skipped li { margin: 0.15rem 0; }
ul.skipped { color: #6b5a00; }
.error { border-left: 4px solid #c0392b; background: #fdf1f0; padding: 0.5rem 1rem; margin: 0.8rem 0; }
.muted { color: #777; }
@media print { .scroll { overflow: visible; max-width: none; } figure, table { break-inside: avoid; } }
"""


@dataclass
class AnalysisFailure:
    """An analysis that raised: its name, the one-line error and the traceback."""

    name: str
    message: str
    traceback: str = ""


def kdtune_version() -> str:
    """The installed kdtune's version (the package's ``__version__`` when it is not installed)."""
    try:
        return importlib.metadata.version("kdtune")
    except importlib.metadata.PackageNotFoundError:
        import kdtune

        return str(getattr(kdtune, "__version__", "unknown"))


def report_tables(
    df: pd.DataFrame,
    metrics: Sequence[str],
    rows: Sequence[str],
    cols: Sequence[str],
    eval_sets: Sequence[str] | None,
    digits: int,
    stat: ReportSpec | None = None,
) -> list[ReportTable]:
    """The tables of ``kdtune report`` as DataFrames with their titles and notes (:func:`kdtune.results.tables.tables`,
    ``stat`` the sweep's ``report`` section): a cell of the page is the report's, character for character."""
    from kdtune.results.tables import tables

    return tables(df, metrics, rows, cols, eval_sets, digits, stat)


def _esc(v: Any) -> str:
    return html.escape(str(v), quote=True)


_NUMERIC_TEXT = re.compile(r"^[-+−]?(\d|\.\d)")


def _cell(v: Any) -> tuple[str, bool]:
    """A table cell's text and whether it is a number (right-aligned)."""
    if v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and np.isnan(v)):
        return "–", True
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v)), False
    if isinstance(v, (int, np.integer)):
        return str(int(v)), True
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v)), True
        return (f"{v:.4f}" if 1e-3 <= abs(v) < 1e6 else f"{v:.3e}"), True
    text = str(v)
    return text, bool(_NUMERIC_TEXT.match(text.removeprefix("**").removeprefix("<u>")))


_MARKED = re.compile(r"^(\*\*|<u>)(.+?)(?:\*\*|</u>)(.*)$")  # a report's bold or underlined cell, maybe a marker after it
_TAGS = {"**": "strong", "<u>": "u"}


def _cell_html(text: str) -> str:
    """A cell's text escaped, a report's bold cell (``**…**``) in ``<strong>``, an underlined one (``<u>…</u>``) in ``<u>``."""
    m = _MARKED.match(text)
    if m:
        tag = _TAGS[m.group(1)]
        return f"<{tag}>{_esc(m.group(2))}</{tag}>{_esc(m.group(3))}"
    return _esc(text)


def _runs(values: list[tuple[Any, ...]], i: int, depth: int) -> int:
    """How many rows from ``i`` on share the first ``depth`` index values of row ``i``."""
    n = 1
    while i + n < len(values) and values[i + n][:depth] == values[i][:depth]:
        n += 1
    return n


def html_table(table: pd.DataFrame, caption: str | None = None) -> str:
    """A DataFrame as an HTML table: its index as row headers (spanning repeated values), multi-level column headers
    (spanning), every text escaped, numbers right-aligned."""
    n_idx = table.index.nlevels
    idx_names = [show(n) if n is not None else "" for n in table.index.names]
    cols = [c if isinstance(c, tuple) else (c,) for c in table.columns]
    levels = table.columns.nlevels
    col_names = [n for n in table.columns.names]
    named_cols = any(n is not None for n in col_names)
    out = ['<div class="scroll"><table>']
    if caption:
        out.append(f"<caption>{_esc(caption)}</caption>")
    out.append("<thead>")
    for lvl in range(levels):
        if named_cols:
            name = col_names[lvl]
            cells = [f'<th class="corner" colspan="{n_idx}">{_esc(name) if name is not None else ""}</th>']
        else:  # one header row: the index names, then the columns
            cells = [f'<th class="index">{_esc(n)}</th>' for n in idx_names]
        j = 0
        while j < len(cols):
            k = j
            while lvl < levels - 1 and k + 1 < len(cols) and cols[k + 1][: lvl + 1] == cols[j][: lvl + 1]:
                k += 1
            span = f' colspan="{k - j + 1}"' if k > j else ""
            cells.append(f"<th{span}>{_esc(show(cols[j][lvl]))}</th>")
            j = k + 1
        out.append("<tr>" + "".join(cells) + "</tr>")
    if named_cols and any(idx_names):
        out.append("<tr>" + "".join(f'<th class="index">{_esc(n)}</th>' for n in idx_names) + "<th></th>" * len(cols) + "</tr>")
    out.append("</thead><tbody>")
    index = [i if isinstance(i, tuple) else (i,) for i in table.index]
    for i, (key, row) in enumerate(zip(index, table.itertuples(index=False, name=None), strict=True)):
        cells = []
        for lvl in range(n_idx):
            if i > 0 and index[i - 1][: lvl + 1] == key[: lvl + 1]:
                continue  # spanned by the row above
            n = _runs(index, i, lvl + 1) if lvl < n_idx - 1 else 1
            span = f' rowspan="{n}"' if n > 1 else ""
            cells.append(f'<th scope="row"{span}>{_esc(show(key[lvl]))}</th>')
        for v in row:
            text, num = _cell(v)
            cells.append(f'<td class="num">{_cell_html(text)}</td>' if num else f"<td>{_cell_html(text)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _inline(text: str) -> str:
    """Escaped text with markdown ``code`` and **bold** spans (as report and analysis notes use them)."""
    s = _esc(text)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)


def _notes(lines: Sequence[str], css: str = "notes") -> str:
    """Notes as paragraphs, with markdown list items (``- ...``) as lists."""
    out: list[str] = []
    for is_item, group in itertools.groupby(lines, key=lambda line: line.startswith("- ")):
        if is_item:
            out.append(f'<ul class="{css}">' + "".join(f"<li>{_inline(i[2:])}</li>" for i in group) + "</ul>")
        else:
            out += [f"<p>{_inline(line)}</p>" for line in group]
    return "\n".join(out)


def _anchor(name: str) -> str:
    return "a-" + re.sub(r"[^A-Za-z0-9_-]+", "-", name)


def _css_width(png: bytes) -> int | None:
    """A PNG's width in CSS pixels (96 per inch) from its ``IHDR`` and ``pHYs`` chunks, so that a figure shows at
    the size it was drawn; None when the PNG does not give its dpi."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    pos, width = 8, 0
    while pos + 8 <= len(png):
        size, kind = int.from_bytes(png[pos : pos + 4], "big"), png[pos + 4 : pos + 8]
        chunk = png[pos + 8 : pos + 8 + size]
        if kind == b"IHDR":
            width = int.from_bytes(chunk[:4], "big")
        elif kind == b"pHYs" and len(chunk) == 9 and chunk[8] == 1:  # unit 1: pixels per metre
            per_metre = int.from_bytes(chunk[:4], "big")
            return round(width * 96 / (per_metre * 0.0254)) if per_metre else None
        elif kind in (b"IDAT", b"IEND"):
            return None
        pos += 12 + size
    return None


def embedded_png(png: Path, alt: str) -> str:
    """A PNG as an ``<img>`` whose source is the image itself (a data URI; the page needs no file beside it), at the
    width it was drawn; a one-line error paragraph when it cannot be read. The one embedder of kdtune's pages (the
    analysis page and the study report)."""
    try:
        raw = png.read_bytes()
    except OSError as e:
        return f'<p class="error">figure {_esc(png.name)}: cannot read it ({_esc(e.strerror)})</p>'
    data = base64.b64encode(raw).decode("ascii")
    size = _css_width(raw)
    width = f' width="{size}"' if size else ""
    return f'<img src="data:image/png;base64,{data}"{width} alt="{_esc(alt)}">'


def _figure(png: Path, page_dir: Path) -> str:
    """A PNG embedded as a data URI, with a link to the PDF beside it (relative to the page)."""
    img = embedded_png(png, png.stem)
    if not img.startswith("<img"):
        return img
    pdf = png.with_suffix(".pdf")
    link = ""
    if pdf.is_file():
        href = quote(Path(os.path.relpath(pdf, page_dir)).as_posix())
        link = f' · <a href="{_esc(href)}">PDF</a>'
    return f"<figure>{img}<figcaption>{_esc(png.stem)}{link}</figcaption></figure>"


def _section(item: Output | AnalysisFailure, page_dir: Path) -> str:
    if isinstance(item, AnalysisFailure):
        trace = f"<details><summary>traceback</summary><pre>{_esc(item.traceback)}</pre></details>" if item.traceback else ""
        return (
            f'<section id="{_anchor(item.name)}"><h2>{_esc(item.name)}</h2>'
            f'<div class="error"><p><strong>failed:</strong> {_esc(item.message)}</p>{trace}</div></section>'
        )
    parts = [f'<section id="{_anchor(item.name)}"><h2>{_esc(item.title)} <span class="muted">({_esc(item.name)})</span></h2>']
    if item.notes:
        parts.append(_notes(item.notes))
    parts += [_figure(Path(p), page_dir) for p in item.figures]
    parts += [html_table(t, title) for title, t in item.tables]
    if item.skipped:
        parts.append("<h3>Skipped</h3>" + _notes([f"- {s}" for s in item.skipped], "skipped"))
    if not (item.figures or item.tables or item.notes or item.skipped):
        parts.append('<p class="muted">nothing to show</p>')
    parts.append("</section>")
    return "\n".join(parts)


def _toc(items: Sequence[Output | AnalysisFailure], report: Sequence[ReportTable]) -> str:
    out = ['<nav class="toc"><strong>Contents</strong><ol>', '<li><a href="#report">Report</a>']
    if report:
        links = "".join(f'<li><a href="#report-{k}">{_esc(title)}</a></li>' for k, (title, _, _) in enumerate(report))
        out.append(f"<ol>{links}</ol>")
    out.append("</li>")
    for item in items:
        if isinstance(item, AnalysisFailure):
            out.append(f'<li><a href="#{_anchor(item.name)}">{_esc(item.name)}</a> <span class="tag">failed</span></li>')
            continue
        tags = f"{len(item.figures)} figure(s), {len(item.tables)} table(s)"
        tags += f", {len(item.skipped)} skipped" if item.skipped else ""
        out.append(f'<li><a href="#{_anchor(item.name)}">{_esc(item.title)}</a> <span class="tag">{_esc(tags)}</span></li>')
    out.append("</ol></nav>")
    return "\n".join(out)


def write_page(
    run_dir: str | Path,
    outputs: Sequence[Output | AnalysisFailure],
    command: str,
    report_tables: Sequence[ReportTable],
    *,
    sweep: str | None = None,
    facts: Sequence[tuple[str, str]] = (),
    report_notes: Sequence[str] = (),
    date: str | None = None,
) -> Path:
    """Write ``run_dir/analysis/index.html`` (the sweeps' names, ``command``, kdtune's version, the date, ``facts``,
    the report tables, then each analysis or its failure, in order) and return its path."""
    from kdtune.results.reader import select_records

    run_dir = Path(run_dir)
    page = run_dir / "analysis" / PAGE
    page.parent.mkdir(parents=True, exist_ok=True)
    sweeps = list(dict.fromkeys(r.sweep for r in select_records(run_dir, sweep)))
    when = date or datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    meta = [("sweep" if len(sweeps) == 1 else "sweeps", ", ".join(sweeps)), ("run folder", str(run_dir)), *facts]
    meta_html = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in meta)
    meta_html += f"<dt>command</dt><dd><code>{_esc(command)}</code></dd>"
    meta_html += f"<dt>kdtune</dt><dd>{_esc(kdtune_version())}</dd><dt>date</dt><dd>{_esc(when)}</dd>"
    report = ['<section id="report"><h2>Report</h2>']
    if report_notes:
        report.append(_notes(report_notes))
    for k, (title, table, lines) in enumerate(report_tables):
        report.append(f'<div id="report-{k}">{html_table(table, title)}{_notes(lines)}</div>')
    if not report_tables and not report_notes:
        report.append('<p class="muted">no report tables</p>')
    report.append("</section>")
    body = [
        f"<h1>kdtune analysis: {_esc(', '.join(sweeps))}</h1>",
        f'<dl class="meta">{meta_html}</dl>',
        _toc(outputs, report_tables),
        *report,
        *(_section(item, page.parent) for item in outputs),
    ]
    if not outputs:
        body.append('<p class="muted">No analyses were run.</p>')
    text = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>kdtune analysis: {_esc(', '.join(sweeps))}</title>\n<style>{CSS}</style>\n</head>\n"
        "<body><main>\n" + "\n".join(body) + "\n</main></body>\n</html>\n"
    )
    tmp = page.with_name(f".{PAGE}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(page)
    return page
