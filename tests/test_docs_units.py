"""The exported reproduction reports (docs/results) as a statistician would check them (issue 29's done-when):

- every report has its per-unit export, and every p, Holm adjustment and interval is recomputed from it with scipy
  (tests/recompute.py), to 1e-9 where the test is deterministic;
- no comparison has two verdicts;
- each family note's size is the number of tests with a finite p plus the untestable ones it names;
- every ≈ row shows the p that decided it and a 90 % interval;
- every claim whose cells the paper gives SDs for has a "paper passes" figure and a power at the run's n.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.recompute import recompute

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
PAGES = sorted(p for p in RESULTS.glob("*.md") if p.name != "index.md")
FAMILY_NOTE = re.compile(
    r"^- (?P<name>Primary claims|Exploratory claims|Setup checks)[^:]*: α = [\d.]+, Holm over (?P<m>\d+) tests? "
    r"\((?P<done>\d+) performed(?:, (?P<dead>\d+) untestable counted as p = 1: (?P<ids>.*))?\)\.$"
)
FAMILY_KEY = {"Primary claims": "primary", "Exploratory claims": "exploratory", "Setup checks": "checks"}


def export_of(page: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    folder = RESULTS / page.stem
    assert (folder / "units.csv").is_file() and (folder / "claims.csv").is_file(), (
        f"{page.name}: no units.csv / claims.csv beside it; re-export it with kdtune study --export docs/results"
    )
    return pd.read_csv(folder / "claims.csv"), pd.read_csv(folder / "units.csv")


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_every_p_and_interval_is_recomputed_from_the_units(page):
    claims, units = export_of(page)
    redone, skipped = recompute(claims, units)
    tested = redone[~redone["untestable"] & redone["p_new"].notna()]
    assert len(tested) >= 0.8 * (~redone["untestable"]).sum() - skipped, "too few tests recomputed"
    assert (tested["p"] - tested["p_new"]).abs().max() <= 1e-9 if len(tested) else True
    adjusted = redone[~redone["untestable"] & redone["p_adjusted_new"].notna()]
    if len(adjusted):
        assert (adjusted["p_adjusted"] - adjusted["p_adjusted_new"]).abs().max() <= 1e-9
    ends = tested.dropna(subset=["lo_new"]) if "lo_new" in tested else tested.iloc[:0]
    if len(ends):
        assert (ends["lo"] - ends["lo_new"]).abs().max() <= 1e-9 and (ends["hi"] - ends["hi_new"]).abs().max() <= 1e-9


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_one_comparison_one_verdict(page):
    claims, _ = export_of(page)
    verdicts = claims.groupby("key")["link_verdict"].nunique()
    assert (verdicts <= 1).all(), f"{page.name}: comparisons with two verdicts: {list(verdicts[verdicts > 1].index)}"
    listed = claims[claims["same_as"].isna() | (claims["same_as"] == "")]
    assert not listed["key"].duplicated().any(), f"{page.name}: a comparison listed twice"


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_each_family_note_counts_its_tests_and_names_the_untestable(page):
    claims, _ = export_of(page)
    tests = claims.drop_duplicates("key")
    notes = [m for line in page.read_text().splitlines() if (m := FAMILY_NOTE.match(line))]
    assert notes, f"{page.name}: no family note"
    for m in notes:
        family = tests[tests["test_family"] == FAMILY_KEY[m["name"]]]
        finite = int(np.isfinite(family["p"]).sum())
        dead = family[family["link_verdict"] == "untestable"]
        named = [x for x in (m["ids"] or "").split(", ") if x]
        assert int(m["m"]) == len(family) == finite + len(dead), f"{page.name}: {m['name']} counts {m['m']} tests"
        assert int(m["done"]) == finite and len(named) == len(dead)
        assert {n.split(" = ")[0] for n in named} == {i.split(" = ")[0] for i in dead["ids"]}


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_equivalence_rows_show_the_deciding_p_and_a_ninety_percent_interval(page):
    claims, _ = export_of(page)
    tost = claims[(claims["test"] == "tost") & (claims["link_verdict"] != "untestable")]
    assert (tost["level"].round(6) == 0.9).all()
    assert np.isfinite(tost["p_decided"]).all() and set(tost["p_which"]) <= {"TOST", "beyond"}
    contradicted = tost[tost["link_verdict"] == "contradicted"]
    assert (contradicted["p_decided"] == contradicted["p_beyond_adjusted"]).all()
    text = page.read_text()
    for _, row in tost.iterrows():
        if isinstance(row["same_as"], str) and row["same_as"]:
            continue
        assert re.search(rf"\| {re.escape(row['claim'])}[^|]* \|.*\| [^|]* 90 % \|", text), f"{row['claim']}: no 90 % interval"


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_every_claim_with_the_papers_sds_has_paper_passes_and_power(page):
    from kdtune.repro.power import calibratable
    from kdtune.repro.reference import paper_summaries, resolve_target

    claims, _ = export_of(page)
    for table, rows in claims.groupby("table"):
        if ":" not in table or table.endswith(":claims"):
            continue
        ref = resolve_target(table)
        by_id = {c.id: c for c in ref.claims}
        for _, row in rows.iterrows():
            claim = by_id.get(row["ref"].split("/")[-1])
            if claim is None or (isinstance(row["same_as"], str) and row["same_as"]):
                continue
            if calibratable(claim, paper_summaries(ref, claim.check.cells)):
                assert np.isfinite(row["paper_passes"]), f"{row['ref']}: no paper passes"
                if row["link_verdict"] != "untestable":
                    assert np.isfinite(row["power"]), f"{row['ref']}: no power at this run's n"
