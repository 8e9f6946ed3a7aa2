"""``kdtune analyze``: one-line errors before any work, analyses into RUN/analysis/, one page, read-only elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kdtune.analysis import Output, RunView, load_all
from kdtune.cli import main
from tests import test_analysis_page as page_tests
from tests.test_analysis_page import DUMMY, dummy_analysis

finished_run, run_copy, registered = page_tests.finished_run, page_tests.run_copy, page_tests.registered  # shared fixtures


def _files(run: Path) -> dict[str, int]:
    """Every file of the run folder outside ``analysis/``, with its modification time."""
    return {str(p.relative_to(run)): p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file() and "analysis" not in p.parts}


def test_analyze_runs_the_analyses_and_writes_the_page(run_copy, registered, capsys):
    registered(DUMMY, dummy_analysis)
    before = _files(run_copy)
    assert main(["analyze", str(run_copy), "--only", DUMMY]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"analyze {run_copy}: 6 finished trials → {run_copy / 'analysis'}"
    assert out[1] == f"{DUMMY}: 1 figure(s), 1 table(s); left out:" and out[2].startswith("  - ")
    assert out[-1] == f"page: {run_copy / 'analysis' / 'index.html'}"
    folder = run_copy / "analysis" / DUMMY
    assert {p.name for p in folder.iterdir()} >= {"accuracy_per_group.png", "accuracy_per_group.pdf", "accuracy_per_group.csv"}
    text = (run_copy / "analysis" / "index.html").read_text()
    assert f"<code>kdtune analyze {run_copy} --only {DUMMY}</code>" in text and "accuracy: mean ± std (n) over seeds" in text
    assert _files(run_copy) == before  # read-only outside RUN/analysis/


def test_analyze_filters_trials_and_eval_sets(run_copy, registered, capsys):
    seen: dict[str, object] = {}

    def spy(view: RunView, out: Path) -> Output:
        seen.update(groups=list(view.groups()), eval_sets=view.eval_sets, n=len(view.trials))
        return Output("spy", "Spy")

    registered("zz_page_test_spy", spy)
    argv = ["analyze", str(run_copy), "--only", "zz_page_test_spy", "--where", "teacher=CNN", "--where", "seed=0,1"]
    assert main([*argv, "--eval-set", "translated"]) == 0
    assert seen == {"groups": ["MLP ← CNN"], "eval_sets": ["translated"], "n": 2}
    assert "2 finished trials with teacher in {CNN} and seed in {0, 1}" in capsys.readouterr().out
    text = (run_copy / "analysis" / "index.html").read_text()
    assert "--where teacher=CNN --where seed=0,1 --eval-set translated" in text
    assert ">test</th>" not in text  # the report tables show the chosen eval set only


def test_analyze_runs_every_installed_module_by_default(run_copy, registered, monkeypatch, capsys):
    registered(DUMMY, dummy_analysis)
    monkeypatch.setattr("kdtune.analysis.MODULES", {"zz_not_written_yet": "zz_not_written_yet", DUMMY: DUMMY})
    load_all()  # a module of MODULES that does not exist is simply not registered
    assert main(["analyze", str(run_copy)]) == 0
    assert f"{DUMMY}: 1 figure(s), 1 table(s); left out:" in capsys.readouterr().out.splitlines()


def test_a_failing_analysis_is_reported_and_the_others_still_run(run_copy, registered, capsys):
    def broken(view: RunView, out: Path) -> Output:
        raise ValueError("no <luck>\nhere")

    registered("zz_page_test_broken", broken)
    registered(DUMMY, dummy_analysis)
    assert main(["analyze", str(run_copy), "--only", f"zz_page_test_broken,{DUMMY}"]) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == ["zz_page_test_broken: failed: ValueError: no <luck> here"]
    assert f"{DUMMY}: 1 figure(s), 1 table(s)" in captured.out
    text = (run_copy / "analysis" / "index.html").read_text()
    assert "<strong>failed:</strong> ValueError: no &lt;luck&gt; here" in text and "Traceback (most recent call last)" in text


def test_the_page_reports_unfinished_trials_as_kdtune_report_does(run_copy, registered, capsys):
    import shutil

    from kdtune.results.reader import load_records
    from kdtune.rundir import trial_dir

    registered(DUMMY, dummy_analysis)
    trials = load_records(run_copy)[0].trials
    gone = next(tid for tid, t in trials.items() if t["teacher"] == "CNN" and t["seed"] == 1)
    shutil.rmtree(trial_dir(run_copy, gone))  # as if the run had stopped before this student
    assert main(["analyze", str(run_copy), "--only", DUMMY]) == 0
    assert "5 finished trials" in capsys.readouterr().out
    text = (run_copy / "analysis" / "index.html").read_text()
    assert "<p>1 trial did not finish; cells show (finished/planned):</p>" in text
    assert f"<li>pending: MLP ← CNN, seed 1 ({gone[:8]})</li>" in text and " (1/2)</td>" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--only", "nope"], "--only nope: unknown analysis; known: "),
        (["--where", "student"], "--where student: must be KEY=V1,V2"),
        (["--where", "=MLP"], "--where =MLP: must be KEY=V1,V2"),
        (["--where", "colour=red"], "--where colour: not a column of the results"),
        (["--where", "student=Nope"], "no finished trial with student in {Nope} to analyse"),
        (["--eval-set", "rotated"], "--eval-set rotated: not in these results; known: test, translated"),
        (["--sweep", "other"], "no sweep 'other' recorded here; recorded: tiny"),
        (["--data-dir", "/no/such/folder"], "--data-dir /no/such/folder: no such folder"),
    ],
)
def test_analyze_wrong_input_is_one_line_before_any_work(run_copy, registered, capsys, args, message):
    registered(DUMMY, dummy_analysis)
    assert main(["analyze", str(run_copy), "--only", DUMMY, *args]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kdtune: error: ") and message in lines[0], captured.err
    assert captured.out == "" and not (run_copy / "analysis").exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing", "missing: no such run folder"),
        (lambda tmp: tmp, "not a kdtune run folder"),
    ],
)
def test_analyze_needs_a_run_folder(tmp_path, capsys, make, message):
    assert main(["analyze", str(make(tmp_path))]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kdtune: error: ") and message in lines[0]
    assert not os.listdir(tmp_path)
