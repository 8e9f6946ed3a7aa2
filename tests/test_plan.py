"""Plan expansion: trials, stages, dependencies and stable ids."""

import dataclasses

import pytest

from kdtune.plan import TrialConfig, make_plan
from kdtune.spec.sweepfile import parse_sweep


@pytest.fixture
def grid_2x3x2x2(tiny_raw, tmp_path):
    tiny_raw["grid"] = {"students": ["CNN", "MLP"], "teachers": ["data", "CNN", "MLP"], "temperature": [1, 5], "seeds": [0, 1]}
    return make_plan(parse_sweep(tiny_raw, "g.yaml", output=tmp_path))


def test_grid_expands_into_the_right_trials_and_stages(grid_2x3x2x2):
    plan = grid_2x3x2x2
    stage1 = [t for g in plan.stages[0] for t in g.trials]
    stage2 = [t for g in plan.stages[1] for t in g.trials]
    # stage 1: CNN and MLP from data × 2 seeds; the teachers are those same trials (same config → same id)
    assert len(stage1) == 4 and {(t.student, t.teacher, t.seed) for t in stage1} == {
        (m, "data", s) for m in ("CNN", "MLP") for s in (0, 1)
    }
    # stage 2: 2 students × 2 KD teachers × 2 τ × 2 seeds
    assert len(stage2) == 16
    assert {(t.student, t.teacher, t.config.loss.temperature, t.seed) for t in stage2} == {
        (s, te, tau, seed) for s in ("CNN", "MLP") for te in ("CNN", "MLP") for tau in (1.0, 5.0) for seed in (0, 1)
    }
    assert len(plan.trials) == 20


def test_student_seed_s_reads_teacher_seed_s_trained_in_an_earlier_stage(grid_2x3x2x2):
    plan = grid_2x3x2x2
    for t in (t for g in plan.stages[1] for t in g.trials):
        teacher = plan.teacher_of(t)
        assert teacher is not None and teacher.stage == 1
        assert teacher.student == t.teacher and teacher.seed == t.seed == t.teacher_seed
        assert teacher.config.loss.kind == "ce"
    assert plan.needs_train_logits == {t.id for g in plan.stages[0] for t in g.trials}


def test_fixed_teacher_seed_and_self_distillation(tiny_raw, tmp_path):
    tiny_raw["grid"] = {"students": ["MLP"], "teachers": ["self"], "seeds": 3, "teacher_seed": 7}
    plan = make_plan(parse_sweep(tiny_raw, "g.yaml", output=tmp_path))
    students = [t for g in plan.stages[1] for t in g.trials]
    assert [t.seed for t in sorted(students, key=lambda t: t.seed)] == [0, 1, 2]
    assert {plan.teacher_of(t).seed for t in students} == {7} and {t.teacher for t in students} == {"MLP"}
    assert len(plan.stages[0]) == 1


def test_ids_are_stable_and_follow_the_config_only(tiny_spec, tmp_path):
    a, b = make_plan(tiny_spec), make_plan(tiny_spec)
    assert list(a.trials) == list(b.trials)
    t = next(iter(a.trials.values())).config
    assert TrialConfig.from_dict(t.to_dict()) == t and TrialConfig.from_dict(t.to_dict()).id == t.id
    assert dataclasses.replace(t, seed=9).id != t.id
    assert dataclasses.replace(t, train=dataclasses.replace(t.train, lr=0.5)).id != t.id
    # where the run folder is and what a trial asks of Ray are not part of its identity
    moved = dataclasses.replace(
        tiny_spec, output=tmp_path / "elsewhere", resources=dataclasses.replace(tiny_spec.resources, cpu=2)
    )
    assert list(make_plan(moved).trials) == list(a.trials)


def test_grid_training_axes_apply_to_students_and_baselines_not_to_teachers(tiny_raw, tmp_path):
    tiny_raw["grid"]["weight_decay"] = [0.0, 0.01]
    plan = make_plan(parse_sweep(tiny_raw, "g.yaml", output=tmp_path))
    baselines = [t for t in plan.trials.values() if t.teacher == "data" and t.student == "MLP"]
    students = [t for t in plan.trials.values() if t.stage == 2]
    teachers = [t for t in plan.trials.values() if t.student == "CNN"]
    assert sorted(t.config.train.weight_decay for t in baselines) == [0.0, 0.0, 0.01, 0.01]
    assert sorted(t.config.train.weight_decay for t in students) == [0.0, 0.0, 0.01, 0.01]
    assert {t.config.train.weight_decay for t in teachers} == {0.0}


def test_seeds_per_trial_groups_seeds_of_one_config(tiny_raw, tmp_path):
    tiny_raw["grid"]["seeds"] = 5
    tiny_raw["execution"] = {"seeds_per_trial": 2}
    plan = make_plan(parse_sweep(tiny_raw, "g.yaml", output=tmp_path))
    for stage in plan.stages:
        by_cell = {}
        for g in stage:
            assert len({(t.student, t.teacher) for t in g.trials}) == 1
            by_cell.setdefault((g.trials[0].student, g.trials[0].teacher), []).append([t.seed for t in g.trials])
        assert all(v == [[0, 1], [2, 3], [4]] for v in by_cell.values())


def test_two_labels_with_one_configuration_are_rejected(tiny_raw, tmp_path):
    from kdtune.errors import KdtuneError

    tiny_raw["models"]["MLP2"] = {"arch": "mlp", "params": {"hidden": [32]}}
    tiny_raw["grid"] = {"students": ["MLP", "MLP2"], "seeds": 1}
    with pytest.raises(KdtuneError, match="models 'MLP' and 'MLP2' resolve to the same configuration"):
        make_plan(parse_sweep(tiny_raw, "g.yaml", output=tmp_path))


def test_integer_and_float_spellings_of_a_float_parameter_give_one_id(tiny_raw, tmp_path):
    ids = []
    for rate in (1, 1.0):
        tiny_raw["train"]["schedule"] = {"name": "exponential", "decay_epochs": rate}
        ids.append(list(make_plan(parse_sweep(tiny_raw, "g.yaml", output=tmp_path)).trials))
    assert ids[0] == ids[1]


def test_plan_tells_every_trial_of_a_switch_sweep_apart(tmp_path, capsys):
    """sweeps/switch_digits.yaml: students that differ only in their switch point print it (issue 28: four trials
    printed as the same text); every line of a stage is distinct once its group's hashed name is set aside."""
    from kdtune.cli import main

    assert main(["plan", "sweeps/switch_digits.yaml", "--out", str(tmp_path / "s")]) == 0
    lines = [line.split(": ", 1)[1] for line in capsys.readouterr().out.splitlines() if line.startswith("  MLP-from-")]
    assert len(lines) == 3 + 24 and len(set(lines)) == len(lines)
    assert "seeds 0 τ=4 w_hard=0 w_soft=1 start=0.25 ← 3825dd51" in lines
    assert "seeds 0" in lines  # the MLP from data: nothing to tell apart within its seed
