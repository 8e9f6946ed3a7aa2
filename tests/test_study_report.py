"""The study's report without training: families and primary claims, its page made from its Markdown (one source:
the page says everything report.md says, figures embedded once), and the per-unit export a reader can redo every
p from. Fast: the results are made up (tests/test_claims.py), the run folder holds one figure."""

from __future__ import annotations

import dataclasses
import html
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from kdtune.repro.study import export, load_study, write_report
from tests.recompute import recompute
from tests.test_claims import results
from tests.test_study import REFERENCE

# a 1×1 PNG with a pHYs chunk (the embedder reads its width)
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000970485973000017120000171201"
    "679fd2520000000c4944415408d763f8cfc000000301010018dd8db00000000049454e44ae426082"
)


@pytest.fixture
def study(tiny_raw, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(tiny_raw))
    ref = dict(REFERENCE)
    table = dict(ref["tables"]["table1"])
    table["fixed"] = {"eval_set": "translated"}
    table["values"] = [
        {"student": "MLP", "teacher": "data", "metric": "accuracy", "mean": 0.31, "spread": 0.01},
        {"student": "MLP", "teacher": "CNN", "temperature": 5, "metric": "accuracy", "mean": 0.50, "spread": 0.01},
    ]
    acc = "accuracy[student={}, teacher={}, eval_set=translated]".format
    table["claims"] = [
        {"id": "kd-helps", "quote": "distillation helps", "where": "section 1",
         "check": f"{acc('MLP', 'CNN')} > {acc('MLP', 'data')}"},
        {"id": "kd-helps-again", "quote": "the same, said again", "where": "section 2",
         "check": f"{acc('MLP', 'data')} < {acc('MLP', 'CNN')}"},
        {"id": "self-helps", "check": f"{acc('MLP', 'MLP')} > 0.5*{acc('MLP', 'data')} + 0.5*{acc('MLP', 'CNN')}"},
        {"id": "no-lstm", "check": f"{acc('LSTM', 'data')} > 0.5"},
        {"id": "cnn-steadier", "kind": "setup", "check": f"std({acc('CNN', 'data')}) < std({acc('CNN', 'CNN')})"},
        {"id": "cnn-like-mlp", "check": f"{acc('CNN', 'data')} ≈ {acc('MLP', 'data')} within 0.05", "margin": "made up"},
        {"id": "closer", "check": "similarity.value[group=A, column=C] > similarity.value[group=B, column=C]"},
        {"id": "alike", "check": "similarity.value[group=A, column=A] ≈ similarity.value[group=B, column=B] within 0.05",
         "margin": "made up"},
    ]  # fmt: skip
    table["untested"] = [{"quote": "a vague remark", "where": "section 3", "why": "no cells to compare"}]
    ref["tables"] = {"table1": table}
    (tmp_path / "ref.yaml").write_text(yaml.safe_dump(ref, allow_unicode=True))
    doc = {
        "name": "made_up",
        "out": "run",
        "sweeps": ["sweep.yaml"],
        "references": ["ref.yaml:table1"],
        "primary": ["madeup:table1/kd-helps", "madeup:table1/no-lstm"],
        "cuts": ["everything is made up"],
        "figures": ["**/*.png"],
        "report": {"metrics": ["accuracy"], "compare": "teacher=data"},
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    rng = np.random.default_rng(5)
    models = [(g, f"{g}{i}") for g in "ABC" for i in range(4)]
    effect = {m: rng.normal(0, 0.02) for _, m in models}
    pairs = [
        {"trial1": a, "trial2": b, "group1": ga, "group2": gb, "within": True, "between": True,
         "similarity": 0.5 + 0.1 * (ga == "A" and gb == "C") + effect[a] + effect[b] + rng.normal(0, 0.01)}
        for ga, a in models for gb, b in models if a != b
    ]  # fmt: skip
    folder = tmp_path / "run" / "analysis" / "similarity"
    folder.mkdir(parents=True)
    pd.DataFrame(pairs).to_csv(folder / "pairs.csv", index=False)
    figure = tmp_path / "run" / "analysis" / "calibration" / "reliability.png"
    figure.parent.mkdir(parents=True)
    figure.write_bytes(PNG)
    return load_study(tmp_path / "study.yaml")


def plain(line: str) -> str:
    """A Markdown line's text as a reader of the page sees it (no emphasis, code or list markers)."""
    line = re.sub(r"^\s*(?:- |#+ )", "", line)
    line = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", line)
    return line.replace("**", "").replace("`", "").strip()


def page_text(page: str) -> str:
    text = re.sub(r"</?(?:code|strong|em|a)\b[^>]*>", "", page)  # inline: no space
    text = re.sub(r"<[^>]+>", " ", text)
    return " ".join(html.unescape(text).split())


def test_the_page_says_everything_the_markdown_says_figures_once(study):
    df = results()
    md_path, html_path = write_report(study, df, "kdtune study study.yaml", ["sweep tiny in run: 20 of 20 trials finished"])
    md, page = md_path.read_text(), html_path.read_text()
    text = page_text(page)
    for line in md.splitlines():
        if not line.strip() or line.startswith("<!--") or re.match(r"^\|[-:| ]+\|$", line):
            continue
        if line.startswith("|"):
            for cell in line.strip("|").split("|"):
                assert " ".join(plain(cell).split()) in text, f"table cell {cell!r} of report.md is not on the page"
        else:
            assert " ".join(plain(line).split()) in text, f"{line!r} of report.md is not on the page"
    assert "paper vs kdtune" in text and "distillation helps" in text and "a vague remark" in text
    assert page.count("data:image/png;base64,") == md.count("![") == 1  # each figure embedded once
    assert "<script" not in page and 'src="http' not in page  # self-contained


def test_the_study_report_has_its_families_first_and_one_verdict_per_comparison(study):
    md_path, _ = write_report(study, results(), "kdtune study study.yaml", [])
    md = md_path.read_text()
    verdicts = md.split("## Verdicts")[1].splitlines()[2]
    # primary counted first; the comparison two claims make once; the setup check apart from the findings
    assert verdicts.startswith("primary (2): 1 holds here, 1 untestable; exploratory (4): ")
    assert verdicts.endswith("; checks (1): 1 holds here.")
    family = "α = 0.05, Holm over 2 tests (1 performed, 1 untestable counted as p = 1: madeup:table1/no-lstm)"
    assert f"Primary claims (declared by the study): {family}" in md
    assert "| kd-helps (= madeup:table1/kd-helps-again) |" in md  # listed once, with both ids
    assert "the same test as madeup:table1/kd-helps" in md
    assert "`accuracy[student=MLP, teacher=MLP, eval_set=translated] > 0.5*accuracy" in md  # a check as code
    assert "ref.yaml" not in md.split("## Verdicts")[0] and "1 statement(s) of the paper not checked:" in md


def test_units_csv_lets_a_reader_redo_every_p_and_interval(study, tmp_path):
    write_report(study, results(), "kdtune study study.yaml", [])
    exported = export(study, tmp_path / "docs")
    units = pd.read_csv(exported.parent / "made_up" / "units.csv")
    claims = pd.read_csv(exported.parent / "made_up" / "claims.csv")
    assert {"claim", "link", "side", "unit", "value", "fold", "init_seed", "data_seed", "init"} <= set(units.columns)
    assert {"model1", "model2", "group1", "group2", "within", "between"} <= set(units.columns)  # a pair's two models
    redone, skipped = recompute(claims, units)
    tested = redone[~redone["untestable"]]
    assert skipped == 0 and set(tested["test"]) >= {"welch", "contrast", "spread", "tost", "pairs"}
    assert (tested["p"] - tested["p_new"]).abs().max() <= 1e-9
    assert (redone["p_adjusted"].fillna(-1) - redone["p_adjusted_new"].where(~redone["untestable"], -1)).abs().max() <= 1e-9
    ends = tested.dropna(subset=["lo_new"])
    assert (
        len(ends) >= 3 and (ends["lo"] - ends["lo_new"]).abs().max() <= 1e-9 and (ends["hi"] - ends["hi_new"]).abs().max() <= 1e-9
    )


def test_export_names_figures_from_the_runs_folder_as_written_not_where_a_link_points(study, tmp_path, monkeypatch):
    """A runs/ that links elsewhere (another disk, a worktree) must not leak that path into the exported names."""
    elsewhere = tmp_path / "disk" / "somewhere" / "runs"
    for figure in ("made_up/analysis/errors/venn_test.png", "made_up_barriers/analysis/barriers/barriers_CNN.png"):
        (elsewhere / figure).parent.mkdir(parents=True)
        (elsewhere / figure).write_bytes(b"\x89PNG")
    (elsewhere / "made_up" / "report.md").write_text(
        "# report\n\n![venn](analysis/errors/venn_test.png)\n"
        "![barriers](../made_up_barriers/analysis/barriers/barriers_CNN.png)\n"
    )
    work = tmp_path / "work"
    work.mkdir()
    (work / "runs").symlink_to(elsewhere, target_is_directory=True)
    monkeypatch.chdir(work)
    exported = export(dataclasses.replace(study, out=Path("runs/made_up")), work / "docs")
    assert sorted(p.name for p in (work / "docs" / "made_up").glob("*.png")) == [
        "made_up__errors__venn_test.png",
        "made_up_barriers__barriers__barriers_CNN.png",
    ]
    assert "](made_up/made_up__errors__venn_test.png)" in exported.read_text()
