"""The results' vocabulary (kdtune.labels): one number formatter, one value matcher, one rule for the settings that
tell trials apart, a stored config's settings read from its JSON, the training settings once, and ``kdtune status``
and ``kdtune report`` writing a setting alike."""

from __future__ import annotations

import dataclasses
import io
from contextlib import redirect_stdout

import numpy as np
import pandas as pd
import pytest

from kdtune import labels
from kdtune.cli import main
from kdtune.labels import matches, number_labels, summary, varying


@pytest.mark.parametrize(
    ("values", "shown"),
    [
        ([0.0011834812, 0.01], ["0.001183", "0.01"]),  # at least 4 significant digits
        ([0.00118348, 0.00118349], ["0.00118348", "0.00118349"]),  # more where 4 would make them one
        ([1.0, 1.00001], ["1", "1.00001"]),  # a whole float is an integer, and still kept apart
        ([4.0, 2.5, None, "hinton", 3, float("nan")], ["4", "2.5", "–", "hinton", "3", "–"]),
        ([1e-5, 3.3e-6], ["1e-05", "3.3e-06"]),
    ],
)
def test_numbers_take_the_fewest_digits_that_keep_them_apart(values, shown):
    text = number_labels(values)
    assert [text.get(v, labels.show(v)) for v in values] == shown


def test_a_value_alone_has_four_significant_digits():
    assert labels.value_text(0.018464373720728802) == "0.01846" and labels.value_text(5.0) == "5"
    assert labels.value_text([32, 32]) == "[32, 32]" and labels.show(None) == "–"


def test_the_matcher_reads_labels_numbers_booleans_and_sweep_lists():
    column = pd.Series([4.0, 0.0011834812, None, 7], name="x", dtype=object)
    assert matches(column, "4").tolist() == [True, False, False, False]
    assert matches(column, "4.0").tolist() == [True, False, False, False]
    assert matches(column, "0.001183").tolist() == [False, True, False, False]  # as the tables write it
    assert matches(column, "0.0011834812").tolist() == [False, True, False, False]  # or in full
    flags = pd.Series([True, False, "True", np.bool_(False)], name="same_init", dtype=object)
    assert matches(flags, "yes").tolist() == [True, False, True, False]
    assert matches(flags, "false").tolist() == [False, True, False, True]
    assert matches(flags, "1").tolist() == [False] * 4  # a boolean is named by a word
    sweeps = pd.Series(["a,b", "b", None], name="sweep")
    assert matches(sweeps, "a").tolist() == [True, False, False]
    assert matches(pd.Series(["MLP", "CNN"], name="student"), "MLP").tolist() == [True, False]


def test_varying_takes_a_tier_whole_before_the_next_and_groups_by_what_it_chose():
    rows = pd.DataFrame(
        {
            "student": ["A"] * 4 + ["B"] * 2,
            "lr": [0.1, 0.1, 0.2, 0.2, 0.1, 0.1],
            "dropout": [0.0, 0.5, 0.0, 0.5, 0.0, 0.0],
            "decay": [1, 1, 1, 1, 1, 2],
            "teacher_id": ["t1", "t2", "t1", "t2", "t3", "t3"],
        }
    )
    tiers = [(["lr", "dropout"], True), (["decay"], True), (["teacher_id"], True)]
    # lr and dropout tell A's apart; B's differ in decay alone; the teacher id follows dropout
    assert varying(rows, ["student"], tiers) == ["lr", "dropout", "decay"]
    assert varying(rows, ["student"], [(["lr", "dropout"], False), (["teacher_id"], True)]) == ["lr", "dropout"]
    assert varying(rows[rows["student"] == "A"], ["student"], [(["decay"], True), (["teacher_id"], True)]) == ["teacher_id"]
    assert varying(rows.assign(lr=[0.1, None, 0.1, 0.1, 0.1, 0.1]), [], [(["lr"], True)]) == ["lr"]  # missing is a value


def test_the_training_settings_are_the_train_sections_fields():
    from kdtune.train.config import TrainSpec

    fields = {f.name for f in dataclasses.fields(TrainSpec)} - {"schedule", "augment", "select", "select_from"}
    assert set(labels.TRAIN_SETTINGS) == fields and len(labels.TRAIN_SETTINGS) == len(fields)
    assert set(labels.INT_SETTINGS) <= set(labels.TRAIN_SETTINGS)
    assert labels.SETTING_COLUMNS[: len(labels.KD_SETTINGS)] == labels.KD_SETTINGS


def test_the_settings_of_a_stored_config_are_read_from_its_json(tiny_spec):
    from kdtune.plan import make_plan
    from kdtune.train.trainer import stream_seeds

    plan = make_plan(tiny_spec)
    for t in plan.trials.values():
        c = t.config
        s = summary(c.to_dict())  # what the run folder holds: settings at their old values left out
        assert s["arch"] == c.arch and s["select_from"] == c.train.select_from
        assert {k: s[k] for k in labels.TRAIN_SETTINGS} == {k: getattr(c.train, k) for k in labels.TRAIN_SETTINGS}
        assert s["schedule"] == c.train.schedule.name and s["augment"] is None and s["invariance"] is None
        kd = {"temperature": c.loss.temperature, "w_hard": c.loss.w_hard, "w_soft": c.loss.w_soft, "kd_loss": c.loss.kind,
              "start": c.loss.start, "stop": c.loss.stop}  # fmt: skip
        assert {k: s[k] for k in kd} == (kd if c.loss.distills else dict.fromkeys(kd))
        assert {k: s[k] for k in ("init_seed", "data_seed")} == stream_seeds(c)


def test_status_and_report_write_a_setting_alike(tiny_raw, tmp_path, capsys):
    """Two learning rates 4 significant digits apart: status lines and the report's rows write them the same way."""
    from kdtune.plan import make_plan
    from kdtune.run.execute import InlineExecutor, execute
    from kdtune.run.ledger import write_sweep_record
    from kdtune.spec.sweepfile import parse_sweep

    raw = dict(tiny_raw, output=str(tmp_path / "run"), train=dict(tiny_raw["train"], epochs=1))
    raw["grid"] = {"students": ["MLP"], "teachers": ["data"], "seeds": 1, "lr": [0.0011834812, 0.0012345]}
    plan = make_plan(parse_sweep(raw, "tiny.yaml"))
    write_sweep_record(plan)
    assert not execute(plan, InlineExecutor())
    capsys.readouterr()
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["status", str(tmp_path / "run"), "--trials"]) == 0
        assert main(["report", str(tmp_path / "run"), "--metric", "accuracy", "--rows", "student", "--cols", "eval_set"]) == 0
    text = out.getvalue()
    for lr in ("0.001183", "0.001234"):
        assert f"lr={lr}" in text  # status
        assert f"| {lr} |" in text  # the report's row of that lr
