"""Tables that go into a paper as they are: on the quickstart run kept in tests/data/quickstart, ``kdtune report
--format latex`` writes one captioned, labelled table per metric whose numbers stand in siunitx ``S`` columns, in
a layout that fits the page (compiled with pdflatex, no overfull box), and the options of how cells read
(percentages, n once, a smaller ±) do what they say."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from kdtune.errors import KdtuneError
from kdtune.results.reader import collect_run
from kdtune.results.tables import Look, ReportSpec, render, to_latex
from tests.latex import compile_latex, needs_pdflatex

RUN = Path(__file__).resolve().parent / "data" / "quickstart"


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return collect_run(RUN)


def _captions(tex: str) -> list[str]:
    return re.findall(r"\\caption\{(.*)\}\n", tex)


def test_one_captioned_labelled_table_per_metric_that_says_what_its_numbers_are(df):
    tex = render(df, ["accuracy", "ece"], "latex", label="quickstart", stat=ReportSpec(compare="teacher=data"))
    assert tex.count(r"\begin{table}") == tex.count(r"\end{table}") == 2
    assert re.findall(r"\\label\{(.*)\}", tex) == ["tab:quickstart-accuracy", "tab:quickstart-ece"]
    accuracy, ece = _captions(tex)
    assert accuracy.startswith(r"accuracy: mean $\pm$ std (n) over seeds.")  # the metric, the statistic, n
    assert "Welch's t-test" in accuracy and "Holm-corrected over the table's" in accuracy  # the test and correction
    assert "accuracy: fraction of examples classified correctly (0 to 1)" in accuracy
    assert "ece: expected calibration error of the top-1 confidence (15 equal-width bins), a fraction (0 to 1)" in ece
    test_split = int(1797 * 0.25)  # scikit-learn's 1797 digits, the digits data set's test_fraction 0.25: 449
    assert f"eval sets: test = the test split, {test_split} examples; translated = the test split, translate shift=1, " in ece
    assert f"scaled = the test split, scale factor=0.7, {test_split} examples." in ece
    assert tex.count(r"\toprule") == 2 and r"\cline" not in tex and r"\hline" not in tex


def test_the_numbers_are_aligned_on_the_decimal_point_by_siunitx(df):
    tex = render(df, ["accuracy"], "latex", eval_sets=["test"], look=Look(textwidth=1000))
    assert "{lS[table-format=1.3, table-space-text-post={${}\\pm{}$0.003 (2)}]" in tex
    assert r"CNN & 0.993{${}\pm{}$0.003 (2)} & 0.989{${}\pm{}$0.009 (2)} & 0.989{${}\pm{}$0.003 (2)} \\" in tex
    assert tex.startswith(r"% needs \usepackage{booktabs, siunitx, array}")


def test_the_layout_is_chosen_to_fit_the_text_width(df):
    """Nine columns of ``0.993 ± 0.003 (2)`` do not fit 345 pt: the eval sets become row groups, said in a comment.
    On a page of 1000 pt the layout asked for stays; on 241 pt (one column of two) the table wraps or shrinks."""
    narrow = render(df, ["accuracy"], "latex")
    assert "% eval_set moved from the columns to the rows to fit 345 pt" in narrow
    assert "\n{eval\\_set} & {student} & {data} & {CNN} & {MLP} \\\\\n" in narrow and r"\addlinespace" in narrow
    wide = render(df, ["accuracy"], "latex", look=Look(textwidth=1000))
    assert "moved" not in wide and r"\cmidrule(lr){2-4} \cmidrule(lr){5-7} \cmidrule(lr){8-10}" in wide
    column = render(df, ["accuracy"], "latex", look=Look(textwidth=241))  # a column key stays: shrunk, the last resort
    assert "% eval_set moved from the columns to the rows to fit 241 pt" in column and r"\resizebox{\textwidth}" in column


def test_percent_n_once_and_a_smaller_pm(df):
    tex = render(df, ["accuracy"], "latex", eval_sets=["test"], look=Look(percent=True, n_once=True, small_pm=True))
    assert _captions(tex)[0].startswith(r"accuracy (\%): mean $\pm$ std over seeds, n = 2 a cell.")
    assert "percentage of examples classified correctly, in \\% (0 to 100)" in tex
    assert r"CNN & 99.3{{\scriptsize${}\pm{}$0.3}} & 98.9{{\scriptsize${}\pm{}$0.9}}" in tex  # 0.9933 → 99.3, no (2)
    md = render(df, ["accuracy"], eval_sets=["test"], look=Look(percent=True, n_once=True))
    assert "**accuracy (%): mean ± std over seeds, n = 2 a cell**" in md and "| CNN | 99.3 ± 0.3 | 98.9 ± 0.9 |" in md
    nll = render(df, ["nll"], eval_sets=["test"], look=Look(percent=True))  # not a fraction: as it is
    assert "**nll: mean ± std (n) over seeds**" in nll and "in nats" in nll
    csv = pd.read_csv(__import__("io").StringIO(render(df, ["accuracy"], "csv", look=Look(percent=True))))
    assert csv["mean"].max() < 1  # the CSV keeps fractions


def test_n_once_keeps_the_n_of_a_cell_that_differs(df):
    partial = df[~((df["student"] == "MLP") & (df["teacher"] == "data") & (df["seed"] == 1))]
    md = render(partial, ["accuracy"], eval_sets=["test"], look=Look(n_once=True))
    assert "**accuracy: mean ± std over seeds, n = 2 a cell unless it says (n)**" in md
    assert "| MLP | 0.973 (1) | 0.986 ± 0.002 | 0.971 ± 0.003 |" in md  # seed 0 alone: 437 of 449 digits


def test_bad_look_is_one_line():
    with pytest.raises(KdtuneError, match=r"--small-pm sets the ± part in .*: it needs --format latex"):
        render(pd.DataFrame(), ["accuracy"], "markdown", look=Look(small_pm=True))
    with pytest.raises(KdtuneError, match="--textwidth is a width in pt between 50 and 2000"):
        render(pd.DataFrame(), ["accuracy"], "latex", look=Look(textwidth=3))


@needs_pdflatex
@pytest.mark.parametrize(
    "look, stat",
    [
        (Look(), ReportSpec()),
        (Look(textwidth=241), ReportSpec(bold="best")),
        (Look(percent=True, n_once=True, small_pm=True), ReportSpec(compare="teacher=data", interval="ci95")),
        (Look(textwidth=505), ReportSpec(bold="significant")),
    ],
    ids=["plain", "one-column", "options", "table*"],
)
def test_every_layout_compiles_without_an_overfull_box(df, look, stat, tmp_path):
    extra = (rf"\setlength{{\textwidth}}{{{look.textwidth}pt}}",)  # the page the table was made for
    compile_latex(render(df, ["accuracy", "ece"], "latex", stat=stat, look=look), tmp_path, extra=extra)


@needs_pdflatex
def test_a_table_too_wide_for_any_layout_wraps_its_text_or_at_last_shrinks(tmp_path):
    words = pd.DataFrame(
        {"claim": ["a-long-claim-identifier-that-breaks-at-its-hyphens"] * 3, "what": ["a few words of text " * 6] * 3},
        index=pd.Index(["x", "y", "z"], name="id"),
    )
    wrapped = to_latex(words, "text")
    assert r"p{" in wrapped and r"\resizebox" not in wrapped and r"\footnotesize" in wrapped
    numbers = pd.DataFrame([[f"{v:.3f} ± 0.001 (5)" for v in range(12)]], index=pd.Index(["MLP"], name="student"))
    shrunk = to_latex(numbers, "twelve numbers")
    assert shrunk.startswith(r"% needs \usepackage{booktabs, siunitx, array, graphicx}") and r"\resizebox{\textwidth}" in shrunk
    compile_latex(wrapped + "\n\n" + shrunk, tmp_path)


@needs_pdflatex
def test_a_column_whose_text_after_the_numbers_holds_a_semicolon_or_a_colon_compiles(tmp_path):
    """A claims table's p column reads ``1 (TOST; beyond 1)``: its room for the text after the number goes into the
    column format, which pandas' Styler cut at the ``;`` (a CSS-like property string), leaving an unclosed tabular
    (found in the MNIST study's report/tables.tex)."""
    table = pd.DataFrame(
        {"p (adjusted)": ["1 (TOST; beyond 1)", "0.0033", "0.19 (note: one)"], "test": ["tost", "pairs", "welch"]},
        index=pd.Index(["a", "b", "c"], name="claim"),
    )
    tex = to_latex(table, "claims")
    assert "beyond 1" in tex.split(r"\toprule")[0]  # the column format is whole
    compile_latex(tex, tmp_path)


@needs_pdflatex
def test_the_reference_checks_compile_on_a_standard_page(tmp_path, capsys):
    """The tables of a reproduction report (``--reference``, and kdtune study's report/tables.tex) in a plain
    article at 10 pt: no landscape, no \\tiny, no overfull box."""
    from kdtune.cli import main

    assert main(["report", str(RUN), "--reference", "abnar2021:table6", "--format", "latex"]) == 0
    tex = capsys.readouterr().out
    assert tex.count(r"\begin{table}") == 2
    compile_latex(tex, tmp_path)


@needs_pdflatex
def test_a_study_writes_its_tables_for_a_paper_and_they_compile(tmp_path, capsys):
    """kdtune study's report/tables.tex (the paper beside kdtune, the claims, kdtune's own tables), from the kept
    quickstart run with --report-only: every table captioned and labelled, the whole compiling on a standard page."""
    import shutil

    import yaml

    from kdtune.cli import main

    shutil.copytree(RUN, tmp_path / "run")
    study = {"name": "qs", "out": str(tmp_path / "run"), "sweeps": [str(RUN.parents[2] / "sweeps" / "quickstart.yaml")],
             "references": ["abnar2021:table6"], "report": {"compare": "teacher=data"}}  # fmt: skip
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    assert main(["study", str(tmp_path / "study.yaml"), "--report-only"]) == 0, capsys.readouterr().err
    assert f"LaTeX tables: {tmp_path / 'run' / 'report' / 'tables.tex'}" in capsys.readouterr().out
    tex = (tmp_path / "run" / "report" / "tables.tex").read_text()
    assert tex.count(r"\begin{table}") == tex.count(r"\caption{") == 3  # the values, the claims, kdtune's accuracy
    labels = re.findall(r"\\label\{(.*)\}", tex)
    assert labels == ["tab:abnar2021-table6-the-paper-beside-kdtune", "tab:abnar2021-table6-claims", "tab:run-accuracy"]
    compile_latex(tex, tmp_path)
