"""A verdict the docs state about a paper is a reproduction report's verdict, never prose.

The pages outside docs/results cite a verdict as ``**VERDICT** ([`claim-id`, `claim-id`](results/REPORT.md))``:
the bold verdict, then the claims of that exported report that carry it. This test reads every such citation
and fails when a claim is not in the report or the report says otherwise, so re-exporting a report that
changes a verdict fails until the prose is changed with it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kdtune.repro.reference import HERE  # the verdict words of a cut-down configuration

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
VERDICTS = ("holds", "contradicted", "not significant", "untestable", *HERE.values())
CITATION = re.compile(
    r"\*\*(?P<verdict>[a-z ]+)\*\* \(\[(?P<ids>`[^\]]+`)\]\((?:docs/)?results/(?P<report>[\w.-]+)\.md(?:#[^)]*)?\)\)"
)
# a link whose text is claim ids: it must be a citation as above (a verdict before it)
CLAIM_LINK = re.compile(r"\[(`[a-z0-9][a-z0-9-]*`(?:, `[a-z0-9][a-z0-9-]*`)*)\]\((?:docs/)?results/[\w.-]+\.md")
CLAIM_ROW = re.compile(r"^\| ([\w:.]+) \| ([a-z0-9][a-z0-9-]*) \| [^|]* \| \*\*([a-z ]+)\*\* \|$")
PAGES = sorted([ROOT / "README.md", *(p for p in (ROOT / "docs").rglob("*.md") if RESULTS not in p.parents)])


def report_verdicts(report: str) -> dict[str, set[str]]:
    """Claim id → the verdicts it has in the report's 'every claim checked' table (one per reference table)."""
    page = RESULTS / f"{report}.md"
    assert page.is_file(), f"no exported report docs/results/{report}.md"
    out: dict[str, set[str]] = {}
    for line in page.read_text().splitlines():
        row = CLAIM_ROW.match(line)
        if row:
            out.setdefault(row.group(2), set()).add(row.group(3))
    assert out, f"docs/results/{report}.md lists no claim"
    return out


def citations(text: str) -> list[tuple[str, str, list[str]]]:
    return [(m["verdict"], m["report"], re.findall(r"`([^`]+)`", m["ids"])) for m in CITATION.finditer(text)]


def test_the_citation_syntax_reads_a_made_up_line():
    line = "CNN > MLP: **holds** ([`a-b`, `c`](results/x_cpu.md)); not this: **holds** (see results/x.md)"
    assert citations(line) == [("holds", "x_cpu", ["a-b", "c"])]
    assert len(CLAIM_LINK.findall(line)) == 1


def test_every_report_row_is_read():
    """The claim table rows are parsed (a change of the report's layout must not make this test vacuous)."""
    for page in RESULTS.glob("*.md"):
        if page.name == "index.md":
            continue
        text = page.read_text()
        rows = len(report_verdicts(page.stem))
        assert rows >= 1
        claimed = re.search(r"^\| table \| claim \| where \| verdict \|$", text, re.M)
        assert claimed, f"{page.name}: no 'every claim checked' table"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_verdict_cited_in_the_docs_is_the_reports(page: Path):
    text = page.read_text()
    found = citations(text)
    assert len(CLAIM_LINK.findall(text)) == len(found), (
        f"{page.relative_to(ROOT)}: a link to claims of a report without its verdict before it; write "
        "**VERDICT** ([`claim-id`](results/REPORT.md))"
    )
    for verdict, report, ids in found:
        assert verdict in VERDICTS, f"{page.relative_to(ROOT)}: **{verdict}** is not a verdict ({', '.join(VERDICTS)})"
        known = report_verdicts(report)
        for claim in ids:
            assert claim in known, f"{page.relative_to(ROOT)}: claim {claim} is not in docs/results/{report}.md"
            assert known[claim] == {verdict}, (
                f"{page.relative_to(ROOT)} says {claim} {verdict}; docs/results/{report}.md says "
                f"{', '.join(sorted(known[claim]))}"
            )


def test_the_case_studies_cite_every_exported_report():
    text = (ROOT / "docs" / "case-studies.md").read_text()
    cited = {report for _, report, _ in citations(text)}
    exported = {p.stem for p in RESULTS.glob("*.md") if p.name != "index.md"}
    assert exported <= cited, f"docs/case-studies.md cites no verdict of {', '.join(sorted(exported - cited))}"
