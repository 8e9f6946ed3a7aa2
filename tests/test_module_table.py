"""docs/getting-started.md's module table lists every module of kdtune/ (every .py file that defines something: a
folder's face of docstring and re-exports aside), each once, by its path; and no two modules share a name."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "getting-started.md"


def defines_something(path: Path) -> bool:
    """A module with a definition of its own (a package's face of a docstring and re-exports is none)."""
    body = ast.parse(path.read_text()).body
    return any(
        isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign))
        and not (isinstance(n, ast.Assign) and [getattr(t, "id", None) for t in n.targets] == ["__all__"])
        for n in body
    )


def table() -> str:
    text = PAGE.read_text()
    start = text.index("| module | job |")
    return text[start : text.index("\n\n", start)]


def test_the_table_lists_every_module_once():
    listed = re.findall(r"`(kdtune/[\w/]+\.py)`", table())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "kdtune").rglob("*.py") if defines_something(p)}
    assert not modules - set(listed), f"modules missing from {PAGE.name}'s table: {sorted(modules - set(listed))}"
    assert not set(listed) - {p.relative_to(ROOT).as_posix() for p in (ROOT / "kdtune").rglob("*.py")}, "no such module"
    assert [m for m, n in Counter(listed).items() if n > 1] == []


def test_no_two_modules_share_a_name():
    stems = Counter(p.stem for p in (ROOT / "kdtune").rglob("*.py") if p.name != "__init__.py")
    assert [s for s, n in stems.items() if n > 1] == []


def test_a_face_only_gathers():
    """The folders' faces (no definitions of their own) hold a docstring and imports alone: no code hides in them."""
    for path in (ROOT / "kdtune").rglob("__init__.py"):
        if not defines_something(path):
            body = ast.parse(path.read_text()).body
            assert all(isinstance(n, (ast.Expr, ast.ImportFrom, ast.Import, ast.Assign)) for n in body), path
