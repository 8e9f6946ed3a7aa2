"""The documentation site: `mkdocs build --strict` passes, every hand-written page of docs/ is in the navigation,
the README's links lead to files that exist, a newcomer finds the essentials from the README's links alone, and
every kdtune command shown in the README or the docs is one kdtune's own parser accepts, on files that exist."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import yaml

from kdtune.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text()
# pages a generator writes (kdtune study --export docs/results): only their index is in the nav
GENERATED = "results/"


def _nav_files(nav) -> list[str]:
    """Every file a mkdocs nav names, depth first."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [f for item in nav for f in _nav_files(item)]
    if isinstance(nav, dict):
        return [f for value in nav.values() for f in _nav_files(value)]
    return []


def _config() -> dict:
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text())


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
    reason="mkdocs and mkdocs-material are not installed (pip install -e '.[dev]')",
)
def test_mkdocs_build_strict_passes(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").is_file()


def test_the_build_is_strict_and_fails_on_pages_missing_from_the_nav():
    config = _config()
    assert config["strict"] is True and config["docs_dir"] == "docs" and config["theme"]["name"] == "material"
    assert config["validation"]["nav"]["omitted_files"] == "warn"  # with strict: an error
    assert config["validation"]["links"]["not_found"] == "warn"
    assert config["validation"]["links"]["anchors"] == "warn"


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    nav = _nav_files(_config()["nav"])
    assert len(nav) == len(set(nav)), "a page is twice in the nav"
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    hand_written = {p for p in pages if not p.startswith(GENERATED)}
    assert not hand_written - set(nav), f"pages missing from the nav in mkdocs.yml: {sorted(hand_written - set(nav))}"
    assert not set(nav) - pages, f"nav entries without a page: {sorted(set(nav) - pages)}"
    assert "results/index.md" in nav


def _github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = unicodedata.normalize("NFKC", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {_github_slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def _readme_links() -> list[tuple[str, Path, str]]:
    """(link as written, file, anchor) of every relative link and image in the README."""
    links = []
    for target in re.findall(r"\]\(([^)\s]+)\)", README):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        file, _, anchor = target.partition("#")
        links.append((target, ROOT / file, anchor))
    return links


def test_every_relative_link_in_the_readme_points_to_an_existing_file():
    links = _readme_links()
    assert len(links) >= 10
    missing = [t for t, f, _ in links if not f.is_file()]
    assert not missing, f"README links to files that do not exist: {missing}"
    bad = [t for t, f, a in links if a and f.suffix == ".md" and a not in _anchors(f)]
    assert not bad, f"README links to headings that do not exist: {bad}"


def test_the_readme_has_its_parts_and_is_short():
    lines = README.splitlines()
    assert len(lines) <= 210, f"the README has {len(lines)} lines; the rest belongs in docs/"
    assert "make quickstart" in README and "make test" in README and "source .venv/bin/activate" in README
    assert len(re.findall(r"!\[[^\]]*\]\(docs/figures/[^)]+\.png\)", README)) == 1  # one figure


@pytest.mark.parametrize(
    "what, pattern",
    [
        ("how to write a sweep with a temperature grid", r"```yaml\n(?:[^`]*\n)?grid:\n(?:[^`]*\n)?\s+temperature: \[[^\]\n]*,"),
        ("how to tune", r"kdtune tune \S+ --model [\s\S]*?\ntune:\n[\s\S]*?\n\s+space:"),
        ("how to run on two nodes", r"ray start --head[\s\S]*?ray start --address[\s\S]*?kdtune run [^\n]*--address"),
        ("what ECE's bins are", r"\bECE\b[^\n]*(?:\n[^\n]+){0,3}?15 equal-width"),
    ],
)
def test_a_newcomer_finds_it_from_the_readme_links_alone(what, pattern):
    pages = {f for _, f, _ in _readme_links() if f.suffix == ".md"}
    found = [f.relative_to(ROOT).as_posix() for f in sorted(pages) if re.search(pattern, f.read_text())]
    assert found, f"{what}: in none of the pages the README links to"


def _shown_commands(text: str) -> list[str]:
    """Every kdtune command line of a page: each one of its ``bash`` blocks (continuations joined), and inline code
    that is a command with its argument (``kdtune run sweeps/x.yaml --set …``), not a mention of a command or a flag
    (``kdtune run``, ``kdtune report --metric``)."""

    def bare(line: str) -> str:
        line = re.sub(r"^(?:[A-Z_]+=\S+\s+)+", "", line.strip())  # RAY_AUTH_MODE=token kdtune …
        return re.sub(r"^(?:\.venv/bin/|python -m )", "", line)

    shown = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        shown += [bare(line) for line in block.replace("\\\n", " ").splitlines()]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for code in re.findall(r"`([^`]+)`", prose):
        words = bare(" ".join(code.split())).split()
        if len(words) > 2 and not words[2].startswith("-"):
            shown.append(" ".join(words))
    return [c for c in shown if c.startswith("kdtune ") and "…" not in c and "..." not in c]


SHOWN = {
    page: _shown_commands(text)
    for page, text in {
        "README.md": README,
        **{p.relative_to(ROOT).as_posix(): p.read_text() for p in sorted(DOCS.glob("*.md"))},
    }.items()
}


def test_commands_are_found():
    assert sum(len(c) for c in SHOWN.values()) > 60
    assert any(c.startswith("kdtune tune ") for c in SHOWN["docs/tuning.md"])


def _argv(line: str) -> list[str]:
    """kdtune's arguments in a shell line: the words after ``kdtune`` up to a comment, a redirection or a pipe."""
    lex = shlex.shlex(line, posix=True, punctuation_chars=True)
    lex.whitespace_split, lex.commenters = True, "#"
    words = list(lex)
    ends = [i for i, w in enumerate(words) if w and set(w) <= set("|&;<>")]
    return words[1 : ends[0] if ends else len(words)]


def test_a_shell_line_gives_kdtune_its_own_words_only():
    line = "kdtune schema --markdown > docs/x.md  # a comment with $schema=y"
    assert _argv(line) == ["schema", "--markdown"]
    assert _argv("kdtune tune s.yaml --model 'A -> B' | tee log && echo done") == ["tune", "s.yaml", "--model", "A -> B"]


@pytest.mark.parametrize("page", sorted(SHOWN))
def test_every_kdtune_command_shown_parses_as_written(page):
    """A command of the docs with a flag kdtune does not have, a wrong choice or a missing argument fails here; so
    does a sweep or study file that does not exist (placeholders such as RUN or <row> aside)."""
    parser = build_parser()
    bad = []
    for line in SHOWN[page]:
        argv = _argv(line)
        try:
            args = parser.parse_args(argv)
        except (SystemExit, Exception) as e:  # kdtune's parser raises its usage error instead of exiting
            bad.append(f"{line}  (refused by kdtune's parser: {e})")
            continue
        for value in vars(args).values():
            if isinstance(value, str) and re.fullmatch(r"(sweeps|studies)/[\w.-]+\.yaml", value) and not (ROOT / value).is_file():
                bad.append(f"{line}  ({value} does not exist)")
    assert not bad, f"{page}: commands that do not run as written:\n" + "\n".join(bad)
