"""The README is the front door and docs/ the manual: every flag of every command is documented in one of them,
and so are the report keys (a flag added without documentation fails here); the README's quickstart tables are
what kdtune prints."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from kdtune.cli import build_parser
from kdtune.labels import REPORT_KEYS as KEYS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# the hand-written pages (docs/results/ holds reports that kdtune study --export wrote, not documentation of flags)
DOCS = {p.relative_to(ROOT).as_posix(): p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))}
DOCUMENTED = "\n".join([README, *DOCS.values()])


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_flag_of_every_command_is_in_the_readme_or_the_docs(command):
    sub = _subcommands()[command]
    assert f"kdtune {command}" in DOCUMENTED
    flags = [s for a in sub._actions for s in a.option_strings if s.startswith("--") and s != "--help"]
    missing = [f for f in flags if f not in DOCUMENTED]
    assert not missing, f"kdtune {command}: {missing} not in README.md nor docs/*.md"


def test_the_docs_pages_are_there():
    """The flag test above reads docs/*.md: it must not pass on an empty or missing folder."""
    assert {"docs/commands.md", "docs/sweep-files.md", "docs/tuning.md", "docs/analyses.md"} <= set(DOCS)


def test_the_report_keys_are_listed_and_latex_needs_booktabs():
    assert all(f"`{k}`" in DOCUMENTED for k in KEYS)
    assert "booktabs" in DOCUMENTED


def _tables(text: str) -> list[str]:
    """The markdown tables of ``text`` (title line and rows), in order, each as one block of lines."""
    blocks, current = [], []
    for line in text.splitlines():
        if line.startswith("**") and line.endswith("**") and "over" in line:
            current = [line]
            blocks.append(current)
        elif current and line.startswith("|"):
            current.append(line)
        elif current and line.strip() and not line.startswith("|"):
            current = []
    return ["\n".join(b) for b in blocks]


@pytest.mark.slow
def test_the_quickstart_tables_in_the_readme_are_what_kdtune_run_prints(tmp_path):
    """The README's quickstart tables, and their copy in the case studies' results, digit for digit, against
    `kdtune run sweeps/quickstart.yaml` now."""
    import subprocess
    import sys

    copies = {}
    for name, text in {"README.md": README, "docs/case-studies.md": DOCS["docs/case-studies.md"]}.items():
        section = text.split("### Quickstart (embedded digits)", 1)[1].split("\n### ", 1)[0]
        copies[name] = _tables(section)
        assert len(copies[name]) == 2, name  # accuracy and ece
    expected = copies["README.md"]
    assert copies["docs/case-studies.md"] == expected
    done = subprocess.run(
        [sys.executable, "-m", "kdtune", "run", "sweeps/quickstart.yaml", "--out", str(tmp_path / "q")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert _tables(done.stdout) == expected
