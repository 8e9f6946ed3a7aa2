"""The example outputs in the docs are kdtune's own: each block after a ``<!-- kdtune output: COMMAND -->`` line is
what COMMAND prints on the quickstart run kept in tests/data/quickstart (its config and metrics files, as
``kdtune run sweeps/quickstart.yaml`` wrote them; ``runs/quickstart`` in a command means that folder), and every
LaTeX table the docs show, and every ``--format latex`` command they show on the quickstart run, compiles with
pdflatex without an overfull box.

After a change to what kdtune prints, ``make docs-examples`` (``python -m tests.test_docs_examples``) writes the
blocks anew; this test fails until then.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pandas as pd
import pytest

from kdtune.cli import main
from tests.latex import compile_latex, needs_pdflatex
from tests.test_docs import SHOWN, _argv

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "tests" / "data" / "quickstart"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARK = re.compile(r"^<!-- kdtune output: (kdtune .+?) -->\n```(\w*)\n(.*?)```\n", re.M | re.S)


def output(command: str) -> str:
    """What ``command`` (a ``kdtune report`` line of the docs) prints on the kept quickstart run."""
    argv = [str(RUN) if w == "runs/quickstart" else w for w in shlex.split(command)[1:]]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(argv) == 0, command
    return out.getvalue()


def examples() -> list[tuple[Path, str, str, str]]:
    """Every marked example of the docs: (page, command, language of its block, the block as written)."""
    return [(p, m[1], m[2], m[3]) for p in PAGES for m in MARK.finditer(p.read_text())]


def write() -> None:
    """Write every marked block anew from kdtune's output (``make docs-examples``)."""
    for page in PAGES:
        text = page.read_text()
        new = MARK.sub(lambda m: f"<!-- kdtune output: {m[1]} -->\n```{m[2]}\n{output(m[1])}```\n", text)
        if new != text:
            page.write_text(new)
            print(f"wrote {page.relative_to(ROOT)}")


def test_there_are_examples_of_every_format():
    found = examples()
    assert {lang for *_, lang, _ in found} >= {"markdown", "latex"}
    assert any("--bold best" in c for _, c, *_ in found) and any("--compare" in c for _, c, *_ in found)


@pytest.mark.parametrize("page, command, lang, block", examples(), ids=[f"{p.name}: {c}" for p, c, *_ in examples()])
def test_each_example_is_what_kdtune_prints(page, command, lang, block):
    assert block == output(command), f"{page.name}: {command}: the block is stale; run make docs-examples"


def test_the_prose_of_how_to_read_a_table_has_the_numbers_of_its_example():
    """The sentence under the example cites the difference, its p and its Holm-corrected p from the CSV."""
    csv = pd.read_csv(io.StringIO(output(f"kdtune report {RUN} --compare teacher=data --metric accuracy --eval-sets "
                                         "test --format csv")))  # fmt: skip
    cell = csv[(csv.student == "MLP") & (csv.teacher == "CNN")].iloc[0]
    tested = csv["p"].notna().sum()
    text = " ".join((ROOT / "docs" / "commands.md").read_text().split())  # the prose as one line
    assert (f"the {cell['diff']:+.3f} of the CNN's MLP student (p = {cell['p']:.2g} alone, {cell['p_adjusted']:.2g} "
            f"after Holm over the table's {tested} comparisons)") in text  # fmt: skip
    assert f"Holm-corrected over the table's {tested} comparisons" in text


def _latex_commands() -> list[str]:
    return sorted({c for cmds in SHOWN.values() for c in cmds if "--format latex" in c and "runs/quickstart" in c})


@needs_pdflatex
@pytest.mark.parametrize("command", _latex_commands())
def test_every_latex_command_the_docs_show_compiles_without_an_overfull_box(command, tmp_path):
    compile_latex(output(shlex.join(["kdtune", *_argv(command)])), tmp_path)


@needs_pdflatex
def test_every_latex_block_the_docs_show_compiles_without_an_overfull_box(tmp_path):
    blocks = [b for *_, lang, b in examples() if lang == "latex"]
    assert blocks
    for i, block in enumerate(blocks):
        compile_latex(block, tmp_path, f"block{i}")


if __name__ == "__main__":
    write()
