"""``kdtune status``'s trial listings tell apart the trials of one student, teacher and seed by their settings."""

from __future__ import annotations

import copy
from pathlib import Path

from kdtune.cli import main
from kdtune.plan import make_plan
from kdtune.results.status import distinguishing
from kdtune.run.ledger import record_outcome, write_sweep_record
from kdtune.rundir import METRICS, trial_dir, write_json
from kdtune.spec.sweepfile import parse_sweep


def _record(raw, out: Path, name: str = "tiny"):
    raw = copy.deepcopy(raw)
    raw["name"] = name
    plan = make_plan(parse_sweep(raw, f"{name}.yaml", output=out))
    return plan, write_sweep_record(plan)


def _finish(out: Path, trials) -> None:
    for t in trials:
        write_json(trial_dir(out, t.id) / METRICS, {"host": "vm"})


def _status(out: Path, *args: str, capsys) -> list[str]:
    capsys.readouterr()
    assert main(["status", str(out), *args]) == 0
    return capsys.readouterr().out.splitlines()


def test_trials_of_one_seed_show_the_settings_they_differ_in(tiny_raw, tmp_path, capsys):
    out = tmp_path / "run"
    tiny_raw["grid"] |= {"temperature": [2, 4.5], "w_hard": [0, 0.5]}
    plan, record = _record(tiny_raw, out)
    students = [t for t in plan.trials.values() if t.teacher == "CNN"]
    _finish(
        out, [t for t in plan.trials.values() if t.teacher == "data"] + [t for t in students if t.config.loss.temperature == 2]
    )
    record_outcome(record, {t.id: "RuntimeError: boom" for t in students if t.config.loss.temperature == 4.5 and t.seed == 1}, 1)
    lines = _status(out, "--trials", capsys=capsys)
    for t in students:
        tau, w_hard = t.config.loss.temperature, t.config.loss.w_hard
        label = f"MLP ← CNN, seed {t.seed}, temperature={tau:g}, w_hard={w_hard:g} ({t.id[:8]})"
        if tau == 2:
            assert f"    {label}: vm (no Ray)" in lines
        elif t.seed == 1:
            assert f"    {label}: RuntimeError: boom" in lines
    # trials alone in their seed (baselines, teachers) keep their short label
    for t in plan.trials.values():
        if t.teacher == "data":
            assert f"    {t.student}, seed {t.seed} ({t.id[:8]}): vm (no Ray)" in lines


def test_a_tuned_and_an_untuned_teacher_are_told_apart_by_their_own_settings(tiny_raw, tmp_path, capsys):
    out = tmp_path / "run"
    plain, _ = _record(tiny_raw, out)
    tiny_raw["models"]["CNN"]["train"] = {"lr": 0.0011834812, "dropout": 0.25}  # as tuned values are
    tuned, _ = _record(tiny_raw, out, "tuned")
    _finish(out, [*plain.trials.values(), *tuned.trials.values()])
    lines = _status(out, "--trials", capsys=capsys)
    for plan, teacher in [(plain, "teacher.lr=0.01, teacher.dropout=0"), (tuned, "teacher.lr=0.001183, teacher.dropout=0.25")]:
        for t in plan.trials.values():
            if t.teacher == "CNN":
                assert f"    MLP ← CNN, seed {t.seed}, {teacher} ({t.id[:8]}): vm (no Ray)" in lines
            elif t.student == "CNN":
                assert f"    CNN, seed {t.seed}, {teacher.replace('teacher.', '')} ({t.id[:8]}): vm (no Ray)" in lines
    # one record alone has one CNN: nothing to tell apart
    assert "    MLP ← CNN, seed 0 (" in "\n".join(_status(out, "--trials", "--sweep", "tuned", capsys=capsys))


def test_other_settings_and_the_teacher_id_where_the_report_settings_do_not_tell(tiny_spec, tmp_path):
    plan = make_plan(tiny_spec)
    student = next(t for t in plan.trials.values() if t.teacher == "CNN" and t.seed == 0)
    info = {"student": "MLP", "teacher": "CNN", "seed": 0, "fold": None, "teacher_seed": 0}

    def entry(decay: float, teacher_id: str) -> dict:
        config = copy.deepcopy(student.config.to_dict())
        config["train"]["schedule"]["params"]["t_mul"] = decay
        config["teacher_id"] = teacher_id
        return info | {"teacher_id": teacher_id, "config": config}

    run = tmp_path / "empty"
    apart = distinguishing(run, {"a": entry(1.0, "aaaa0000aaaa0000"), "b": entry(2.0, "aaaa0000aaaa0000")})
    assert apart == {"a": "schedule.t_mul=1", "b": "schedule.t_mul=2"}
    # teachers whose configs are nowhere to be found: their ids
    apart = distinguishing(run, {"a": entry(1.0, "aaaa0000aaaa0000"), "b": entry(1.0, "bbbb1111bbbb1111")})
    assert apart == {"a": "teacher=aaaa0000", "b": "teacher=bbbb1111"}
    # alone, or other seeds: nothing
    assert distinguishing(run, {"a": entry(1.0, "aaaa0000aaaa0000"), "b": entry(2.0, "aaaa0000aaaa0000") | {"seed": 1}}) == {
        "a": "",
        "b": "",
    }


def test_sweeps_are_named_as_their_user_named_them_two_of_one_name_by_what_differs(tiny_raw, tmp_path, capsys):
    """Issue 28: report and status said quickstart-0f5f563a (a hash of the planned trials: the record's folder).
    Now the sweep's name, and where two sweeps of that name were run into one folder, the settings that differ."""
    out = tmp_path / "run"
    _, first = _record(tiny_raw, out)
    _, second = _record(tiny_raw | {"grid": tiny_raw["grid"] | {"seeds": 3, "temperature": [2, 4]}}, out)
    assert first.name == "tiny" and second.name.startswith("tiny-")  # the folders keep their names
    lines = _status(out, capsys=capsys)
    heads = [line.split(":")[0] for line in lines if line.startswith("sweep ")]
    assert heads == ["sweep tiny [grid.seeds=2, grid.temperature=[4]]", "sweep tiny [grid.seeds=3, grid.temperature=[2, 4]]"]
    assert second.name not in "\n".join(lines)
    main(["report", str(out)])
    err = capsys.readouterr().err
    assert f"{out}: union of tiny [grid.seeds=2, grid.temperature=[4]] (" in err and second.name not in err.splitlines()[0]
    one = _status(out, "--sweep", "tiny [grid.seeds=3, grid.temperature=[2, 4]]", capsys=capsys)
    heads = [line.split(":")[0] for line in one if line.startswith("sweep ")]
    assert heads == ["sweep tiny [grid.seeds=3, grid.temperature=[2, 4]]"]


def test_a_lone_sweep_is_its_name(tiny_raw, tmp_path, capsys):
    out = tmp_path / "run"
    _record(tiny_raw, out)
    assert any(line.startswith("sweep tiny: ") for line in _status(out, capsys=capsys))
