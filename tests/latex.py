"""Compiling a LaTeX table kdtune wrote with Debian's pdflatex (``texlive-latex-recommended`` and, for siunitx,
``texlive-science``, which .ci/run installs), as a paper would: the standard article class at 10 pt, the packages
kdtune's tables name in their first line, the table, and checks that every character was typeset and that nothing
sticks out of the text width (no ``Overfull \\hbox`` in the log)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

needs_pdflatex = pytest.mark.skipif(
    shutil.which("pdflatex") is None or shutil.which("kpsewhich") is None
    or subprocess.run(["kpsewhich", "siunitx.sty"], capture_output=True, text=True).stdout.strip() == "",
    reason="pdflatex with siunitx not installed (.ci/run installs texlive-latex-recommended and texlive-science)",
)  # fmt: skip
PREAMBLE = (r"\documentclass{article}", r"\usepackage[utf8]{inputenc}")


def packages(body: str) -> list[str]:
    """The ``\\usepackage`` lines that kdtune's ``% needs \\usepackage{...}`` comments in ``body`` ask for."""
    found = dict.fromkeys(p.strip() for line in re.findall(r"% needs \\usepackage\{([^}]*)\}", body) for p in line.split(","))
    return [rf"\usepackage{{{p}}}" for p in found]


def compile_latex(body: str, folder: Path, name: str = "table", extra: tuple[str, ...] = ()) -> Path:
    """Write ``body`` into a document (the preamble, the packages it names, then ``extra`` lines before
    ``\\begin{document}``), compile it with pdflatex, fail the test on an error, a missing character or an overfull
    box, and return the PDF."""
    tex = folder / f"{name}.tex"
    tex.write_text("\n".join([*PREAMBLE, *packages(body), *extra, r"\begin{document}", body, r"\end{document}"]))
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", tex.name],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    log = (folder / f"{name}.log").read_text(errors="replace")
    assert "Missing character" not in log
    assert "Overfull \\hbox" not in log, re.findall(r"Overfull \\hbox.*", log)
    pdf = folder / f"{name}.pdf"
    assert pdf.stat().st_size > 0
    return pdf
