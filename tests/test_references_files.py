"""The seed papers' reference files (kdtune/references/<id>.yaml): structure, ids, keys, and labels that exist in
the shipped sweep files. Fast: reads YAML only, trains nothing."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import yaml

from kdtune.labels import REPORT_KEYS
from kdtune.spec.sweepfile import NO_TEACHER
from kdtune.train.data import DATASETS

ROOT = Path(__file__).resolve().parents[1]
REFERENCES = ROOT / "kdtune" / "references"
SWEEPS = ROOT / "sweeps"
PAPERS = ROOT.parent / "shared" / "papers"

FILES = sorted(REFERENCES.glob("*.yaml"))
TOP_FIELDS = {"id", "citation", "source", "models", "tables"}
TABLE_FIELDS = {"title", "where", "sweeps", "n", "spread", "reading", "values", "claims"}
OPTIONAL_TABLE_FIELDS = {"settings", "fixed", "untested", "data"}
SPREADS = {"std", "se", "ci95", "none"}
VALUE_FIELDS = {"metric", "mean", "spread", "note", "kdtune_metric"}
CLAIM_FIELDS = {"id", "quote", "where", "check"}
OPTIONAL_CLAIM_FIELDS = {"margin", "note", "kind", "chain", "recoded"}
# kdtune's spec accepts "train" as an eval set of every data set (data.eval_sets: [test, train]), shipped or not
ALWAYS_EVAL_SETS = {"train"}


@cache
def sweep(name: str) -> dict:
    return yaml.safe_load((SWEEPS / name).read_text())


def sweep_labels(name: str) -> set[str]:
    return set(sweep(name).get("models") or {})


def sweep_eval_sets(name: str) -> set[str]:
    data = sweep(name).get("data") or {}
    items = data.get("eval_sets")
    if items is None:  # the data set's defaults (spec._data)
        items = list(DATASETS.get(data["name"]).default_eval_sets)
    return {item if isinstance(item, str) else item["name"] for item in items}


def load(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict), path
    return doc


def test_there_are_reference_files():
    assert {p.stem for p in FILES} >= {"abnar2021", "symmetry2024", "nagarajan2023"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_file_fields(path):
    doc = load(path)
    assert set(doc) >= TOP_FIELDS, f"missing {TOP_FIELDS - set(doc)}"
    assert doc["id"] == path.stem
    assert isinstance(doc["citation"], str) and doc["citation"]
    assert isinstance(doc["source"], str) and doc["source"].endswith(".txt")
    if PAPERS.is_dir():
        assert (PAPERS / doc["source"]).is_file(), doc["source"]
    assert isinstance(doc["models"], dict)
    assert isinstance(doc["tables"], dict) and doc["tables"]
    for key, table in doc["tables"].items():
        assert isinstance(key, str) and key and " " not in key and ":" not in key, key
        missing = TABLE_FIELDS - set(table)
        assert not missing, f"{key}: missing {missing}"
        unknown = set(table) - TABLE_FIELDS - OPTIONAL_TABLE_FIELDS
        assert not unknown, f"{key}: unknown fields {unknown}"
        for field in ("title", "where", "reading"):
            assert isinstance(table[field], str) and table[field].strip(), f"{key}.{field}"
        assert isinstance(table["sweeps"], list) and table["sweeps"], key
        for name in table["sweeps"]:
            assert (SWEEPS / name).is_file(), f"{key}: no sweep {name}"
        assert table["n"] is None or (isinstance(table["n"], int) and table["n"] >= 1), key
        assert table["spread"] in SPREADS, key
        assert isinstance(table["values"], list) and isinstance(table["claims"], list), key
        assert table["values"] or table["claims"] or table.get("untested"), f"{key}: empty"
        for name in ("settings", "fixed"):
            assert isinstance(table.get(name, {}), dict), f"{key}.{name}"
        for item in table.get("untested", []):
            assert set(item) == {"quote", "where", "why"}, key
        for claim in table["claims"]:
            assert set(claim) >= CLAIM_FIELDS, f"{key}: claim {claim.get('id')} lacks {CLAIM_FIELDS - set(claim)}"
            assert not set(claim) - CLAIM_FIELDS - OPTIONAL_CLAIM_FIELDS, f"{key}: claim {claim['id']}"
            for field in CLAIM_FIELDS | (OPTIONAL_CLAIM_FIELDS & set(claim)):
                assert isinstance(claim[field], str) and claim[field].strip(), f"{key}: claim {claim['id']}.{field}"
            if "≈" in claim["check"]:
                needs = f"{key}: claim {claim['id']} needs 'within M' and a margin"
                assert " within " in claim["check"] and "margin" in claim, needs


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_ids_unique(path):
    text = path.read_text()
    doc = load(path)
    # yaml.safe_load keeps the last of duplicate mapping keys: count table keys in the text itself
    for key in doc["tables"]:
        assert text.count(f"\n  {key}:\n") == 1, f"table {key} defined more than once"
    claims = [c["id"] for t in doc["tables"].values() for c in t["claims"]]
    dupes = {c for c in claims if claims.count(c) > 1}
    assert not dupes, f"duplicate claim ids: {sorted(dupes)}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_values_use_report_keys_and_sweep_labels(path):
    doc = load(path)
    for key, table in doc["tables"].items():
        labels = set().union(*(sweep_labels(s) for s in table["sweeps"])) | {NO_TEACHER}
        eval_sets = set().union(*(sweep_eval_sets(s) for s in table["sweeps"])) | ALWAYS_EVAL_SETS
        fixed = table.get("fixed") or {}
        assert not set(fixed) - set(REPORT_KEYS), f"{key}: fixed keys {set(fixed) - set(REPORT_KEYS)} are not report keys"
        for value in table["values"]:
            unknown = set(value) - set(REPORT_KEYS) - VALUE_FIELDS
            assert not unknown, f"{key}: {value} has keys {unknown} that are neither report keys nor {sorted(VALUE_FIELDS)}"
            assert not set(value) & set(fixed), f"{key}: {value} repeats a fixed key"
            row = fixed | value
            assert isinstance(row.get("metric"), str) and row["metric"], f"{key}: {value}"
            assert "mean" in row and isinstance(row["mean"], (int, float)), f"{key}: {value}"
            assert row.get("spread") is None or isinstance(row["spread"], (int, float)), f"{key}: {value}"
            assert "student" in row, f"{key}: {value} names no student"
            for field in ("student", "teacher"):
                if field in row:
                    assert row[field] in labels, f"{key}: {field} {row[field]!r} is no label of {table['sweeps']}"
            if "eval_set" in row:
                assert row["eval_set"] in eval_sets, f"{key}: eval_set {row['eval_set']!r} not in {sorted(eval_sets)}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_models_map_to_shipped_labels(path):
    shipped = set().union(*(sweep_labels(p.name) for p in SWEEPS.glob("*.yaml")))
    for paper_name, label in load(path)["models"].items():
        assert isinstance(paper_name, str) and paper_name
        assert label in shipped, f"{paper_name} -> {label!r}: no shipped sweep has that label"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_the_papers_own_numbers_pass_every_claim_coded_from_them(path):
    """A claim whose cells the paper's tables give means, SDs and n for is run on 2,000 synthetic draws from them
    (kdtune.repro.power): the paper's own data must pass it at least half of the time, unless the claim says how it was
    recoded (``recoded:``) or is a premise (``kind: premise``). A claim its own paper fails says more about its
    coding than about any reproduction."""
    from kdtune.repro.power import calibratable, pass_rate
    from kdtune.repro.reference import load_reference, paper_summaries

    failing, checked = [], 0
    for key, table in load_reference(str(path)).items():
        for claim in table.claims:
            summaries = paper_summaries(table, claim.check.cells)
            if not calibratable(claim, summaries):
                continue
            checked += 1
            share = pass_rate(claim, summaries, {c: summaries[c].n for c in claim.check.cells})
            if share < 0.5 and not claim.extra.get("recoded") and claim.kind != "premise":
                failing.append(f"{key}/{claim.id}: paper passes {share:.2f}")
    assert not failing, "claims the paper's own numbers fail (recode them or mark kind: premise): " + "; ".join(failing)
    if path.stem == "abnar2021":
        assert checked >= 50  # the test must not pass by calibrating nothing


def test_the_paper_passes_test_fails_on_a_claim_its_own_numbers_do_not_carry(tmp_path):
    """The check above is not vacuous: a made-up claim against its own table's numbers fails it."""
    from kdtune.repro.power import pass_rate
    from kdtune.repro.reference import load_reference, paper_summaries

    doc = load(REFERENCES / "abnar2021.yaml")
    table = doc["tables"]["table5"]
    table["claims"] = [
        {"id": "equal-stds", "quote": "q", "where": "w",
         "check": "std(ece[student=CNN, teacher=data, eval_set=test]) < std(ece[student=MLP, teacher=data, eval_set=test])"}
    ]  # fmt: skip
    path = tmp_path / "abnar2021.yaml"
    path.write_text(yaml.safe_dump({**doc, "tables": {"table5": table}}, allow_unicode=True))
    loaded = load_reference(str(path))["table5"]
    claim = loaded.claims[0]
    summaries = paper_summaries(loaded, claim.check.cells)
    assert pass_rate(claim, summaries, {c: 4 for c in claim.check.cells}) < 0.5  # Table 5b prints 0.0006 and 0.0006
