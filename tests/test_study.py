"""``kdtune study``: one command runs a case study's sweeps and analyses and writes its reproduction report;
Ctrl-C keeps what finished, and a re-run trains nothing twice and ends with the report of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from kdtune.cli import main
from kdtune.errors import KdtuneError
from kdtune.repro.study import load_study
from tests.conftest import trainings

REFERENCE = {
    "id": "madeup",
    "citation": "A. Author. A made-up paper. 2026.",
    "models": {"Convnet": "CNN", "Perceptron": "MLP"},
    "tables": {
        "table1": {
            "title": "Table 1: accuracy of the made-up paper",
            "where": "Table 1",
            "n": 4,
            "spread": "std",
            "settings": {"MLP": {"epochs": 100, "hidden": [32]}},
            "fixed": {"eval_set": "test"},
            "values": [
                {"student": "MLP", "teacher": "data", "metric": "accuracy", "mean": 0.95, "spread": 0.01},
                {"student": "CNN", "teacher": "data", "metric": "accuracy", "mean": 0.97, "spread": 0.01},
                {"student": "MLP", "teacher": "CNN", "temperature": 4, "metric": "accuracy", "mean": 0.96, "spread": 0.01},
            ],
            "claims": [
                {
                    "id": "kd-helps",
                    "quote": "distillation helps",
                    "where": "section 1",
                    "check": "accuracy[student=MLP, teacher=CNN, eval_set=test] > "
                    "accuracy[student=MLP, teacher=data, eval_set=test]",
                },
                {"id": "no-lstm", "check": "accuracy[student=LSTM, teacher=data, eval_set=test] > 0.5"},
            ],
        }
    },
}


def _write_study(folder: Path, tiny: dict, cnn_epochs: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    raw = dict(tiny)
    raw["models"] = {k: dict(v) for k, v in tiny["models"].items()}
    raw["models"]["CNN"]["train"] = {"epochs": cnn_epochs}
    (folder / "sweep.yaml").write_text(yaml.safe_dump(raw))
    (folder / "ref.yaml").write_text(yaml.safe_dump(REFERENCE, allow_unicode=True))
    study = {
        "name": "tiny_study",
        "description": "The tiny sweep as a study.",
        "out": "run",
        "sweeps": ["sweep.yaml"],
        "analyses": {"only": ["calibration"]},
        "references": ["ref.yaml:table1"],
        "claims": [
            {
                "id": "cnn-beats-mlp",
                "check": "accuracy[student=CNN, teacher=data, eval_set=test] > "
                "accuracy[student=MLP, teacher=data, eval_set=test]",
            }
        ],
        "cuts": ["MLP trained 2 epochs, not 100"],
        "report": {"metrics": ["accuracy"], "compare": "teacher=data"},
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study, allow_unicode=True))
    return path


def test_a_study_file_is_checked_before_any_work(tiny_raw, tmp_path, monkeypatch, capsys):
    path = _write_study(tmp_path, tiny_raw)
    monkeypatch.chdir(tmp_path)
    study = load_study(path)
    assert study.out == Path("run") and [e.path for e in study.sweeps] == ["sweep.yaml"]
    raw = yaml.safe_load(path.read_text())
    cases = [
        ({"nosuch": 1}, "study.yaml: nosuch: unknown key; allowed here: name, description,"),
        ({"sweeps": ["missing.yaml"]}, "sweeps: missing.yaml: no such sweep file"),
        ({"references": ["ref.yaml:table9"]}, "no table 'table9' in ref.yaml; tables: table1"),
        ({"references": ["nosuchpaper:table1"]}, "unknown reference 'nosuchpaper'"),
        ({"claims": [{"id": "x", "check": "accuracy[studnt=MLP] > 1"}]}, "claims: x: unknown key 'studnt'"),
        ({"report": {"interval": "sd"}}, "study.yaml: report.interval: must be one of std, se, ci95; got 'sd'"),
        ({"primary": ["ref.yaml:table1/kd-hlps"]}, "primary: 'ref.yaml:table1/kd-hlps' is no claim of the study's"),
        (
            {"claims": [{"id": "x", "check": "accuracy[student=MLP] > 1", "kind": "fact"}]},
            "study.yaml: claims: x: kind 'fact' is not one of finding, setup, premise, design",
        ),
        ({"sweeps": []}, "sweeps:"),
        ({"sweeps": [{"path": "sweep.yaml", "set": 3}]}, "study.yaml: sweeps[0].set: must be a list, got int 3"),
        ({"sweeps": [3]}, "study.yaml: sweeps[0]: must be a mapping or a string, got int 3"),
    ]
    for change, says in cases:
        path.write_text(yaml.safe_dump({**raw, **change}, allow_unicode=True))
        with pytest.raises(KdtuneError) as e:
            load_study(path)
        assert says in str(e.value) and "\n" not in str(e.value), str(e.value)
    # a sweep with an error: kdtune study stops before training, one line, no run folder
    path.write_text(yaml.safe_dump({**raw, "sweeps": [{"path": "sweep.yaml", "set": ["train.epochs=-1"]}]}, allow_unicode=True))
    assert main(["study", str(path), "--executor", "inline"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train.epochs" in err and not (tmp_path / "run").exists()


class _Study:
    """``python -m kdtune study study.yaml --executor inline`` in ``folder``, in its own process group."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.argv = ["study", "study.yaml", "--executor", "inline"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kdtune", *self.argv],
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [
            threading.Thread(target=lambda: self.out.extend(self.proc.stdout), daemon=True),
            threading.Thread(target=lambda: self.err.extend(self.proc.stderr), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def wait(self, timeout: float = 300) -> int:
        rc = self.proc.wait(timeout=timeout)
        for t in self._threads:
            t.join(timeout=10)
        return rc

    def cnn_training(self) -> bool:
        try:
            groups = json.loads((self.folder / "run" / "progress.json").read_text()).get("groups", {})
        except (OSError, ValueError):
            return False
        mlp_done = sum(g["state"] == "done" for name, g in groups.items() if name.startswith("MLP"))
        return mlp_done >= 2 and any(g["epoch"] >= 1 and name.startswith("CNN") for name, g in groups.items())


def _trial_files(run: Path) -> dict[str, float]:
    return {str(p.relative_to(run)): p.stat().st_mtime_ns for p in (run / "trials").rglob("*") if p.is_file()}


@pytest.mark.slow
def test_ctrl_c_then_a_rerun_trains_nothing_twice_and_ends_with_the_same_report(tiny_raw, tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    _write_study(whole, tiny_raw, cnn_epochs=40)
    _write_study(cut, tiny_raw, cnn_epochs=40)

    a = _Study(whole)
    assert a.wait() == 0, "".join(a.out + a.err)
    report = (whole / "run" / "report.md").read_text()
    page = (whole / "run" / "report" / "index.html").read_text()
    assert "# Reproduction report: tiny_study" in report and "madeup:table1" in report
    assert "MLP trained 2 epochs, not 100" in report and "kdtune study study.yaml" in report
    assert "**untestable**" in report and "no student=LSTM" in report  # the claim on a model the study lacks
    assert "MLP epochs: 2 here, 100 in the paper" in report  # a setting that differs, from the trial's config
    assert "![run/analysis/calibration/reliability__test](analysis/calibration/reliability__test.png)" in report
    assert 'src="data:image/png;base64,' in page and "tiny_study" in page  # self-contained

    b = _Study(cut)
    try:
        end = time.monotonic() + 240
        while not b.cnn_training():
            assert b.proc.poll() is None and time.monotonic() < end, "".join(b.out + b.err)
            time.sleep(0.1)
        os.killpg(b.proc.pid, signal.SIGINT)
        rc = b.wait(60)
    finally:
        if b.proc.poll() is None:
            os.killpg(b.proc.pid, signal.SIGKILL)
    err = "".join(b.err)
    assert rc == 130, err
    assert "Resume with the same command: python -m kdtune study study.yaml --executor inline" in err
    assert "Traceback" not in err and not (cut / "run" / "report.md").exists()
    kept = _trial_files(cut / "run")
    trained = trainings(cut / "run")
    every = trainings(whole / "run")
    # the two MLPs from data had finished; a CNN seed may have finished too before the signal landed (its
    # epochs are short), but the sweep was cut: its students had not been trained
    assert 2 <= len(trained) < len(every) == 6 and len({k.split("/")[1] for k in kept}) == len(trained), trained

    c = _Study(cut)
    assert c.wait() == 0, "".join(c.out + c.err)
    after = _trial_files(cut / "run")
    assert {k: after[k] for k in kept} == kept  # nothing that had finished was trained or written again
    again = trainings(cut / "run")
    assert again[: len(trained)] == trained and sorted(again) == sorted(every)  # each trial trained once
    assert (cut / "run" / "report.md").read_text() == report


def test_report_only_without_a_run_folder_is_one_line(tiny_raw, tmp_path, monkeypatch, capsys):
    path = _write_study(tmp_path, tiny_raw)
    monkeypatch.chdir(tmp_path)
    assert main(["study", str(path), "--report-only"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--report-only: no run folder run yet" in err


def test_a_study_error_counts_other_fields_not_union_members(tiny_raw, tmp_path):
    """A sweep entry is a mapping or a path (a union): one wrong key is one problem, two are 'and 1 more'."""
    path = _write_study(tmp_path, tiny_raw)
    raw = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**raw, "sweeps": [{"path": "sweep.yaml", "nosuch": 1}]}))
    with pytest.raises(KdtuneError) as one:
        load_study(path)
    path.write_text(yaml.safe_dump({**raw, "sweeps": [{"pth": "sweep.yaml"}]}))
    with pytest.raises(KdtuneError) as two:
        load_study(path)
    assert str(one.value).endswith("sweeps[0].nosuch: unknown key; allowed here: path, set, out, tables, analyses")
    assert str(two.value).endswith("sweeps[0].path: is required (and 1 more)")
