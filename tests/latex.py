"""Compiling a LaTeX table kdtune wrote with Debian's pdflatex (``texlive-latex-recommended``, which .ci/run
installs), as a paper would: the packages kdtune's tables need, the table, and a check that every character
was typeset."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

needs_pdflatex = pytest.mark.skipif(
    shutil.which("pdflatex") is None, reason="pdflatex not installed (.ci/run installs texlive-latex-recommended)"
)
PREAMBLE = (r"\documentclass{article}", r"\usepackage[utf8]{inputenc}", r"\usepackage{booktabs}", r"\usepackage{amssymb}")


def compile_latex(body: str, folder: Path, name: str = "table", extra: tuple[str, ...] = ()) -> Path:
    """Write ``body`` into a document (the preamble, then ``extra`` lines before ``\\begin{document}``), compile
    it with pdflatex, fail the test on an error or a missing character, and return the PDF."""
    tex = folder / f"{name}.tex"
    tex.write_text("\n".join([*PREAMBLE, *extra, r"\begin{document}", body, r"\end{document}"]))
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", tex.name],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert "Missing character" not in (folder / f"{name}.log").read_text(errors="replace")
    pdf = folder / f"{name}.pdf"
    assert pdf.stat().st_size > 0
    return pdf
