"""The results pages in docs/results are reports that ``kdtune study --export`` wrote, made by this results version:
a page made before the results changed fails here, so a results table in the docs is never older than kdtune."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kdtune.repro.study import INDEX_MARKER, load_study
from kdtune.train.config import RESULTS_VERSION

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
PAGES = sorted(p for p in RESULTS.glob("*.md") if p.name != "index.md")


def test_there_are_results_pages():
    assert PAGES, "docs/results holds no exported report"


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_each_page_is_a_report_of_this_results_version_with_its_figures(page):
    lines = page.read_text().splitlines()
    marker = INDEX_MARKER.match(lines[0])
    assert marker, f"{page.name}: not written by kdtune study --export (no marker line)"
    name, version = marker.groups()
    assert version == str(RESULTS_VERSION), (
        f"{page.name} was made with results version {version}, kdtune's is {RESULTS_VERSION}: re-run "
        f"kdtune study studies/{name}.yaml --export docs/results"
    )
    assert page.stem == name
    study = load_study(ROOT / "studies" / f"{name}.yaml")  # the study that made it still exists and loads
    assert study.name == name
    for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text()):
        assert (RESULTS / target).is_file(), f"{page.name}: figure {target} is missing"


def test_the_index_lists_every_page():
    index = (RESULTS / "index.md").read_text()
    for page in PAGES:
        assert f"]({page.name})" in index


@pytest.mark.parametrize("page", ["README.md", "docs/case-studies.md"])
def test_results_measured_in_the_docs_say_they_are_of_this_results_version(page):
    """Tables outside docs/results say which results version made them ('with results version N', '(results
    version N'); a bump of RESULTS_VERSION fails here until they are re-measured (or marked as older)."""
    text = (ROOT / page).read_text()
    made = re.findall(r"(?:with\s|\()results\s+version\s+(\d+)", text)
    assert made, f"{page} says no results version its tables were made with"
    stale = sorted({v for v in made if v != str(RESULTS_VERSION)})
    assert not stale, f"{page}: tables made with results version {', '.join(stale)}; kdtune's is {RESULTS_VERSION}"
