"""The README is the front door: every flag of every command is documented there, and so are the
report keys (a flag added without documentation fails here)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from kdtune.cli import build_parser
from kdtune.report import KEYS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_flag_of_every_command_is_in_the_readme(command):
    sub = _subcommands()[command]
    assert f"kdtune {command}" in README
    flags = [s for a in sub._actions for s in a.option_strings if s.startswith("--") and s != "--help"]
    missing = [f for f in flags if f not in README]
    assert not missing, f"kdtune {command}: {missing} not in README.md"


def test_the_report_keys_are_listed_and_latex_needs_booktabs():
    assert all(f"`{k}`" in README for k in KEYS)
    assert "booktabs" in README
