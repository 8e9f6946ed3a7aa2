"""The analysis page (kdtune.analysis.page): self-contained HTML, every figure and table, escaped, rendered by a browser."""

from __future__ import annotations

import base64
import copy
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kdtune.analysis import ANALYSES, Output, RunView, run_analyses, save_figure, write_table
from kdtune.analysis.page import AnalysisFailure, html_table, kdtune_version, report_tables, write_page
from kdtune.plan import make_plan
from kdtune.run.execute import InlineExecutor, execute
from kdtune.run.ledger import write_sweep_record
from kdtune.spec.sweepfile import parse_sweep
from tests.conftest import TINY

DUMMY = "zz_page_test_dummy"  # registered only while a test runs
NASTY = '<img src=x onerror="alert(1)"> & co'  # a label that must come out escaped


def dummy_analysis(view: RunView, out: Path) -> Output:
    """Accuracy per group on the first eval set: one bar figure (pure red bars), one table, a note, a skip."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eval_set = view.eval_sets[0]
    rows = []
    for group, trials in view.groups().items():
        accs = []
        for t in trials:
            arrays = view.outputs(t.id)
            accs.append(float((arrays[f"probs__{eval_set}"].argmax(1) == arrays[f"labels__{eval_set}"]).mean()))
        rows.append((group, len(trials), float(np.mean(accs))))
    table = pd.DataFrame(
        {"trials": [r[1] for r in rows], f"accuracy ({eval_set})": [r[2] for r in rows]},
        index=pd.Index([r[0] for r in rows], name="group"),
    )
    table.loc[NASTY] = [0, 0.5]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(range(len(rows)), [r[2] for r in rows], color="#ff0000")
    ax.set_xticks(range(len(rows)), [r[0] for r in rows], rotation=30, ha="right")
    ax.set_ylabel(f"accuracy ({eval_set})")
    ax.set_title("dummy: accuracy per group")
    png = save_figure(fig, out, "accuracy_per_group")
    write_table(table, out, "accuracy_per_group", "accuracy per group")
    return Output(
        DUMMY,
        "Dummy analysis <for the page test>",
        figures=[png],
        tables=[(f"accuracy per group {NASTY}", table)],
        notes=["a note with `code` & <b>markup</b>"],
        skipped=[f"{view.trials[0].label}: a skipped line, for the test"],
    )


@pytest.fixture
def registered() -> Iterator[Callable[[str, Callable[[RunView, Path], Output]], None]]:
    """Register analyses for one test; they are removed from ``ANALYSES`` afterwards."""
    names: list[str] = []

    def add(name: str, fn: Callable[[RunView, Path], Output]) -> None:
        ANALYSES.register(name)(fn)
        names.append(name)

    yield add
    for name in names:
        ANALYSES._items.pop(name, None)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny sweep trained and recorded, as ``kdtune run`` leaves it (shared by this module's tests; read-only)."""
    run = tmp_path_factory.mktemp("page") / "run"
    plan = make_plan(parse_sweep(copy.deepcopy(TINY), "t.yaml", output=run))
    write_sweep_record(plan, ["run", "t.yaml"])
    assert execute(plan, InlineExecutor(), log=lambda s: None) == {}
    return run


@pytest.fixture
def run_copy(finished_run: Path, tmp_path: Path) -> Path:
    """A private copy of the finished run folder."""
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


@pytest.fixture
def page(run_copy: Path, registered) -> tuple[Path, list[Output | AnalysisFailure]]:
    """The page of the tiny run with the dummy analysis and a failed one, and the outputs."""
    registered(DUMMY, dummy_analysis)
    view = RunView(run_copy)
    outputs: list[Output | AnalysisFailure] = list(run_analyses(view, run_copy / "analysis", [DUMMY], log=lambda s: None))
    outputs.append(AnalysisFailure("broken", "ValueError: <bad> input", "Traceback (most recent call last):\n  ..."))
    tables = report_tables(view.results, ["accuracy", "ece"], ["student"], ["eval_set", "teacher"], None, 3)
    path = write_page(run_copy, outputs, "kdtune analyze runs/tiny --where 'student=<MLP>'", tables, facts=[("trials", "4")])
    return path, outputs


def test_page_embeds_every_figure_as_a_data_uri_with_its_pdf(page):
    path, outputs = page
    text = path.read_text()
    assert path == path.parent.parent / "analysis" / "index.html"
    figures = [f for o in outputs if isinstance(o, Output) for f in o.figures]
    assert figures
    for png in figures:
        data = base64.b64encode(Path(png).read_bytes()).decode()
        assert f'src="data:image/png;base64,{data}"' in text
        assert f'href="{DUMMY}/{Path(png).stem}.pdf"' in text and Path(png).with_suffix(".pdf").is_file()


def test_page_shows_every_table_cell_notes_and_skips(page):
    path, outputs = page
    text = path.read_text()
    for o in outputs:
        if not isinstance(o, Output):
            continue
        for _, table in o.tables:
            for v in table.to_numpy().ravel():
                shown = str(int(v)) if float(v).is_integer() else f"{v:.4f}"
                assert f">{shown}</td>" in text
            for label in table.index:
                assert f">{_escaped(label)}</th>" in text
        assert "a note with <code>code</code> &amp; &lt;b&gt;markup&lt;/b&gt;" in text
        assert "a skipped line, for the test" in text
    # the report tables: the accuracy and ECE tables, their title and eval-set headers, mean ± std (n) cells
    for words in ("accuracy: mean ± std (n) over seeds", "ece: mean ± std (n) over seeds", ">translated</th>", " ± "):
        assert words in text
    assert text.count('colspan="2">test</th>') == 2  # one header cell over the test column's teachers, per table


def test_page_escapes_html_in_labels(page):
    text = page[0].read_text()
    assert NASTY not in text and "<b>markup</b>" not in text and "<for the page test>" not in text
    assert _escaped(NASTY) in text
    assert "Dummy analysis &lt;for the page test&gt;" in text
    assert "ValueError: &lt;bad&gt; input" in text  # the failed analysis, escaped too
    assert "student=&lt;MLP&gt;" in text


def test_page_makes_no_network_reference_and_needs_no_script(page):
    text = page[0].read_text()
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:)?//""", text, re.IGNORECASE)
    assert not re.search(r"url\(|@import|<script|<link|<iframe", text, re.IGNORECASE)


def test_page_names_sweep_command_version_date_and_failures(page):
    text = page[0].read_text()
    assert "<h1>kdtune analysis: tiny</h1>" in text
    assert "<code>kdtune analyze runs/tiny --where &#x27;student=&lt;MLP&gt;&#x27;</code>" in text
    assert f"<dt>kdtune</dt><dd>{kdtune_version()}</dd>" in text and kdtune_version() not in ("", "unknown")
    assert re.search(r"<dt>date</dt><dd>\d{4}-\d\d-\d\d \d\d:\d\d", text)
    assert '<a href="#a-broken">broken</a> <span class="tag">failed</span>' in text  # in the contents
    assert '<section id="a-broken">' in text and "<summary>traceback</summary>" in text
    assert f'<a href="#a-{DUMMY}">' in text and '<a href="#report-0">' in text


def test_html_table_spans_headers_and_right_aligns_numbers():
    cols = pd.MultiIndex.from_tuples([("test", "data"), ("test", "CNN"), ("scaled", "data")], names=["eval_set", "teacher"])
    index = pd.MultiIndex.from_tuples([("MLP", 1), ("MLP", 2), ("CNN", 1)], names=["student", "seed"])
    table = pd.DataFrame([[0.91, "0.9 ± 0.1 (2)", None], [1.0, "n/a", 3], [np.nan, "–", 0.00001]], index=index, columns=cols)
    text = html_table(table, "a & b")
    assert "<caption>a &amp; b</caption>" in text
    assert '<th colspan="2">test</th><th>scaled</th>' in text and '<th class="corner" colspan="2">eval_set</th>' in text
    assert '<th class="index">student</th><th class="index">seed</th>' in text
    assert '<th scope="row" rowspan="2">MLP</th><th scope="row">1</th>' in text  # MLP spans its two rows
    assert '<td class="num">0.9100</td><td class="num">0.9 ± 0.1 (2)</td>' in text
    assert "<td>n/a</td>" in text and '<td class="num">1.000e-05</td>' in text and '<td class="num">1</td>' in text


# --- the report tables of the page are kdtune report's: same interval, markers, bold -----------------------------------

BASE = [0.80, 0.70, 0.90, 0.75, 0.85]  # from data
LIFTED = {"data": BASE, "big": [v + 0.20 for v in [0.82, 0.69, 0.91, 0.73, 0.86]], "same": [0.78, 0.72, 0.88, 0.77, 0.84]}


def _results() -> pd.DataFrame:
    """A made-up results table: a significant (big) and a null (same) difference from the baseline, 5 seeds each, for
    two students (CNN 0.3 lower than MLP throughout: MLP's cells are the best of their columns, in bold)."""
    rows = []
    for student, shift in (("MLP", 0.0), ("CNN", -0.3)):
        for teacher, accs in LIFTED.items():
            for seed, acc in enumerate(accs):
                stream = seed if teacher == "data" else 1000 + seed
                rows.append({"student": student, "teacher": teacher, "eval_set": "test", "seed": seed, "fold": None,
                             "init_seed": stream, "data_seed": stream, "accuracy": acc + shift, "ece": 1 - acc - shift,
                             "status": "ok"})  # fmt: skip
    return pd.DataFrame(rows)


def _markdown_tables(text: str) -> list[tuple[str, list[list[str]], list[str]]]:
    """``kdtune report``'s markdown as (title, body cells without the row labels, note lines) per table."""
    out = []
    for block in text.strip().split("\n\n**"):
        lines = block.strip().splitlines()
        title = lines[0].strip("*")
        body = [line for line in lines[1:] if line.startswith("| ")][1:]  # past the header row
        cells = [[c.strip() for c in line.strip("|").split(" | ")][1:] for line in body]
        out.append((title, cells, [line for line in lines[1:] if line and not line.startswith("|")]))
    return out


def test_report_tables_equal_kdtune_reports_cells_markers_and_notes():
    from kdtune.results.tables import ReportSpec, render

    opts = ReportSpec(interval="ci95", compare="teacher=data", bold="significant")
    args = (["accuracy", "ece"], ["student"], ["eval_set", "teacher"], None, 3)
    tables = report_tables(_results(), *args, stat=opts)
    report = _markdown_tables(render(_results(), args[0], "markdown", *args[1:], stat=opts))
    assert len(tables) == len(report) == 2
    for (title, table, notes), (r_title, r_cells, r_notes) in zip(tables, report, strict=True):
        assert title == r_title and "95 % CI" in title
        assert table.to_numpy().tolist() == r_cells
        assert notes == r_notes and any("significantly higher/lower" in n for n in notes)
    cells = tables[0][1].to_numpy().ravel().tolist()
    assert any(c.endswith(" ▲") for c in cells) and any(c.startswith("**") for c in cells)  # a marker and a bold cell
    html = html_table(tables[0][1])
    big = next(c for c in cells if c.endswith(" ▲"))
    shown = f"<strong>{big[2:-4]}</strong> ▲" if big.startswith("**") else big
    assert f'<td class="num">{shown}</td>' in html and "**" not in html


def test_the_analyze_page_shows_the_report_tables_of_the_sweeps_report_settings(run_copy, registered, capsys):
    import yaml

    from kdtune.cli import main
    from kdtune.results.reader import load_records

    registered(DUMMY, dummy_analysis)
    sweep_yaml = load_records(run_copy)[0].path / "sweep.yaml"
    raw = yaml.safe_load(sweep_yaml.read_text())
    raw["report"] = {"interval": "se", "compare": "teacher=data", "bold": "best"}  # as the sweep file would set them
    sweep_yaml.write_text(yaml.safe_dump(raw))
    assert main(["report", str(run_copy)]) == 0
    report = _markdown_tables(capsys.readouterr().out)
    assert main(["analyze", str(run_copy), "--only", DUMMY]) == 0
    text = (run_copy / "analysis" / "index.html").read_text()
    marked = re.compile(r"^(\*\*|<u>)(.+?)(?:\*\*|</u>)(.*)$")
    for title, cells, notes in report:
        assert f"<caption>{_escaped(title)}</caption>" in text and "s.e. (ddof=1)" in title
        for c in (c for row in cells for c in row):
            m = marked.match(c)
            tag = {"**": "strong", "<u>": "u"}[m[1]] if m else ""
            assert f">{f'<{tag}>{_escaped(m[2])}</{tag}>{_escaped(m[3])}' if m else _escaped(c)}</td>" in text
        assert any("bold: the best mean of each column (eval_set × teacher)" in n for n in notes)
        for n in notes:
            assert _escaped(n.removeprefix("- ")).split("`")[0] in text
    assert "<strong>" in text and "<u>" in text


def _escaped(label: object) -> str:
    import html

    return html.escape(str(label), quote=True)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="no chromium or chromium-browser on PATH (apt-get install chromium)")
def test_page_renders_in_headless_chromium(page, tmp_path):
    from PIL import Image

    shot = tmp_path / "page.png"
    cmd = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1200,2000",
        page[0].resolve().as_uri(),
    ]
    subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert shot.is_file(), "chromium wrote no screenshot"
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (2000, 1200)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50 and pixels.std() > 10  # text, tables, a figure: not blank
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)
    assert red.sum() > 1000, "the embedded figure (red bars) is not on the screenshot"
