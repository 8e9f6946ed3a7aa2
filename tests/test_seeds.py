"""The seed design: a sweep sets a model's initialisation stream and its data stream (data order, dropout,
augmentation) apart (``grid.init_seeds`` × ``grid.data_seeds``), and chooses whether students share their streams
with the models trained from data (``grid.student_streams``). Sweeps that use neither keep every trial id."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from kdtune.analysis import RunView, same_init
from kdtune.analysis.barriers import barriers
from kdtune.errors import SpecError
from kdtune.plan import TrialConfig, make_plan
from kdtune.results.reader import load_records
from kdtune.run.execute import InlineExecutor, execute
from kdtune.run.ledger import collect, write_sweep_record
from kdtune.spec.sweepfile import load_sweep, parse_sweep
from kdtune.train.trainer import Trainer, stream_seeds
from tests.test_batched import _compare

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"
FINGERPRINT = "0123456789abcdef"  # a fixed data fingerprint: the shipped sweeps' ids without their data

# computed with kdtune.plan.make_plan on main before the seed design existed (commit d91bc2a)
QUICKSTART_IDS = ["6266b6eddee2994c", "6ab0294bf3d1f398", "7a1d9dce7cbad892", "875b23759fc38711", "8f419d0330194891",
                  "96ef97b4cf09da13", "a1b1f955e814a19e", "a49f5305a4896284", "d93ae21b13703306", "e5c9460b6d1cc575",
                  "f666ce0475d03aae", "f9b555646cdeeab9"]  # fmt: skip
TINY_IDS = [
    "11a3be54ba917dd7",
    "52fed1406333773d",
    "6795453ef4b23321",
    "7db72770d5fbc124",
    "bf62b4841ecd65ae",
    "c94969b2cdd6242b",
]  # fmt: skip  (tests/conftest.py TINY, its real digits fingerprint)
SWEEP_ID_HASHES = {  # sha256 of the sorted ids joined by commas, first 16 hex digits; (number of trials)
    "switch_digits": ("3a46f8d85c1cd46f", 30),
    "mnist_c_cpu": ("c3c6d1460760dfd9", 16),
    "agreement_quickstart": ("fa0346631a17f3c5", 40),
    "symmetry_dsinv_mlp": ("1177a82ec857e707", 100),
}


def _ids(name: str, tmp_path: Path) -> list[str]:
    spec = load_sweep(SWEEPS / f"{name}.yaml", output=tmp_path / "run")
    return sorted(make_plan(spec, fingerprint=FINGERPRINT).trials)


def _plan(raw: dict[str, Any], tmp_path: Path, **grid: Any):
    raw = copy.deepcopy(raw)
    raw["grid"] |= grid
    for key in [k for k, v in grid.items() if v is None]:
        del raw["grid"][key]
    return make_plan(parse_sweep(raw, "t.yaml", output=tmp_path / "run"))


# --- ids of sweeps without the new axes ------------------------------------------------------------------------------


def test_shipped_sweeps_keep_their_trial_ids(tmp_path):
    assert _ids("quickstart", tmp_path) == QUICKSTART_IDS
    for name, (digest, n) in SWEEP_ID_HASHES.items():
        ids = _ids(name, tmp_path)
        assert (hashlib.sha256(",".join(ids).encode()).hexdigest()[:16], len(ids)) == (digest, n), name


def test_the_tiny_sweep_keeps_its_trial_ids_and_unit_0_of_the_new_axes_is_seed_0(tiny_raw, tmp_path):
    assert sorted(_plan(tiny_raw, tmp_path).trials) == TINY_IDS
    # init 0 × data 0 is what seed 0 always was: the same trials, nothing new to train
    plan = _plan(tiny_raw, tmp_path, seeds=None, init_seeds=[0], data_seeds=[0])
    seed0 = {t.id for t in _plan(tiny_raw, tmp_path, seeds=[0]).trials.values()}
    assert set(plan.trials) == seed0
    # explicitly apart students are today's students
    assert set(_plan(tiny_raw, tmp_path, student_streams="apart").trials) == set(TINY_IDS)


# --- the grid's seed units -------------------------------------------------------------------------------------------


def test_fixed_initialisation_and_varied_data_order_are_units_numbered_in_order(tiny_raw, tmp_path):
    plan = _plan(tiny_raw, tmp_path, seeds=None, init_seeds=[0], data_seeds=3)
    baselines = sorted((t for t in plan.trials.values() if t.student == "MLP" and t.teacher == "data"), key=lambda t: t.seed)
    assert [t.seed for t in baselines] == [0, 1, 2]
    assert [(t.config.seed, t.config.data_seed) for t in baselines] == [(0, None), (0, 1), (0, 2)]
    assert [stream_seeds(t.config) for t in baselines] == [{"init_seed": 0, "data_seed": d} for d in (0, 1, 2)]
    students = sorted((t for t in plan.trials.values() if t.teacher == "CNN"), key=lambda t: t.seed)
    inits = {stream_seeds(t.config)["init_seed"] for t in students}
    datas = {stream_seeds(t.config)["data_seed"] for t in students}
    assert len(inits) == 1 and len(datas) == 3 and inits.isdisjoint({0})  # students: apart from the baselines
    assert [t.teacher_seed for t in students] == [0, 1, 2]  # unit k reads teacher unit k
    assert all(plan.trials[t.config.teacher_id].seed == t.seed for t in students)
    # the three units of one configuration are one group (trained together), one class of the results table
    assert {len(g.trials) for g in plan.groups()} == {1}
    df = collect(plan)
    assert sorted(df.loc[df["student"] == "MLP", "seed"].unique().tolist()) == [0, 1, 2]
    per_cell = df.groupby(["student", "teacher"], observed=True)["config"].agg(lambda c: len(set(c.astype(str))))
    assert (per_cell == 1).all()  # the units do not split a cell


def test_init_and_data_seeds_cross_and_an_axis_left_out_is_held_at_0(tiny_raw, tmp_path):
    raw = copy.deepcopy(tiny_raw)
    raw["grid"] |= {"teachers": ["data"], "students": ["MLP"]}
    plan = _plan(raw, tmp_path, seeds=None, init_seeds=[3, 5], data_seeds=[3, 7])
    units = sorted(
        (t.seed, stream_seeds(t.config)["init_seed"], stream_seeds(t.config)["data_seed"]) for t in plan.trials.values()
    )
    assert units == [(0, 3, 3), (1, 3, 7), (2, 5, 3), (3, 5, 7)]
    only_init = _plan(raw, tmp_path, seeds=None, init_seeds=2)
    assert sorted((t.config.seed, t.config.data_seed) for t in only_init.trials.values()) == [(0, None), (1, 0)]


def test_a_fixed_teacher_unit_is_a_unit_number(tiny_raw, tmp_path):
    plan = _plan(tiny_raw, tmp_path, seeds=None, init_seeds=[0], data_seeds=[4, 5], teacher_seed=1)
    teachers = {t.config.teacher_id for t in plan.trials.values() if t.teacher == "CNN"}
    (teacher,) = [plan.trials[i] for i in teachers]
    assert teacher.seed == 1 and stream_seeds(teacher.config) == {"init_seed": 0, "data_seed": 5}


def test_students_can_share_their_streams_with_the_models_trained_from_data(tiny_raw, tmp_path):
    raw = copy.deepcopy(tiny_raw)
    raw["grid"] |= {"teachers": ["data", "MLP"]}  # MLP ← MLP: self-distillation
    apart = _plan(raw, tmp_path)
    shared = _plan(raw, tmp_path, student_streams="shared")
    for plan, same in ((apart, False), (shared, True)):
        for seed in (0, 1):
            (base,) = [t for t in plan.trials.values() if t.teacher == "data" and t.seed == seed]
            (student,) = [t for t in plan.trials.values() if t.teacher == "MLP" and t.seed == seed]
            assert (stream_seeds(student.config) == stream_seeds(base.config)) is same
    # the baselines are the same trials either way; the students are new ones (a config field tells them apart)
    assert {i for i, t in apart.trials.items() if t.teacher == "data"} == {
        i for i, t in shared.trials.items() if t.teacher == "data"
    }
    students = [t for t in shared.trials.values() if t.teacher != "data"]
    assert all(t.config.to_dict()["student_streams"] == "shared" for t in students)
    assert all(TrialConfig.from_dict(t.config.to_dict()) == t.config for t in shared.trials.values())
    assert not {t.id for t in students} & set(apart.trials)


def test_a_trial_config_round_trips_with_its_streams(tiny_raw, tmp_path):
    plan = _plan(tiny_raw, tmp_path, seeds=None, init_seeds=2, data_seeds=[1], student_streams="shared")
    for t in plan.trials.values():
        assert TrialConfig.from_dict(json.loads(json.dumps(t.config.to_dict()))) == t.config


# --- trainers: the streams drawn --------------------------------------------------------------------------------------


def _trainers(plan, tmp_path: Path) -> list[Trainer]:
    trials = sorted((t for t in plan.trials.values() if t.teacher == "data"), key=lambda t: t.seed)
    return [Trainer(t.config, tmp_path / "run", None, torch.device("cpu")) for t in trials]


def _same_weights(a: Trainer, b: Trainer) -> bool:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_fixed_initialisation_varied_data_order_trains_from_equal_weights_on_different_orders(tiny_raw, tmp_path):
    raw = copy.deepcopy(tiny_raw)
    raw["grid"] |= {"teachers": ["data"], "students": ["MLP"]}
    first, second, third = _trainers(_plan(raw, tmp_path, seeds=None, init_seeds=[0], data_seeds=3), tmp_path)
    assert _same_weights(first, second) and _same_weights(first, third)
    orders = [t._begin_epoch()[0] for t in (first, second, third)]
    assert not torch.equal(orders[0], orders[1]) and not torch.equal(orders[1], orders[2])
    assert len({int(t.dropout_key) for t in (first, second, third)}) == 3
    # and the other way round: one data order, different initial weights
    a, b = _trainers(_plan(raw, tmp_path, seeds=None, init_seeds=2, data_seeds=[0]), tmp_path)
    assert not _same_weights(a, b) and torch.equal(a._begin_epoch()[0], b._begin_epoch()[0])
    assert int(a.dropout_key) == int(b.dropout_key)
    # unit (init 0, data 1) draws its data order as seed 1 does, and its weights as seed 0 does
    seed0, seed1 = _trainers(_plan(raw, tmp_path, seeds=2), tmp_path)
    (mixed,) = _trainers(_plan(raw, tmp_path, seeds=None, init_seeds=[0], data_seeds=[1]), tmp_path)
    assert _same_weights(mixed, seed0) and not _same_weights(mixed, seed1)
    assert torch.equal(mixed._begin_epoch()[0], seed1._begin_epoch()[0])
    assert mixed._rng is not None and torch.equal(mixed._rng, seed1._rng)  # the global stream (unkeyed dropout) too


def test_fixed_initialisation_units_batched_equal_alone(tiny_raw, tmp_path, monkeypatch):
    from kdtune.train.batched import SeedBatch

    epochs = []
    train_epoch = SeedBatch.train_epoch
    monkeypatch.setattr(SeedBatch, "train_epoch", lambda self, *a, **k: epochs.append(1) or train_epoch(self, *a, **k))
    raw = copy.deepcopy(tiny_raw)
    raw["grid"] = {k: v for k, v in raw["grid"].items() if k != "seeds"} | {
        "teachers": ["data"], "init_seeds": [0], "data_seeds": 3}  # fmt: skip
    raw["train"] |= {"dropout": 0.3, "optimizer": "adam", "augment": {"name": "translate"}}
    _compare(raw, tmp_path, 1, params_tol=1e-4, metric_tol=1e-4)
    assert len(epochs) == raw["train"]["epochs"]  # the three units trained as one vmapped model


def test_distilled_units_of_one_initialisation_batched_equal_alone(tiny_raw, tmp_path):
    raw = copy.deepcopy(tiny_raw)
    raw["grid"] = {k: v for k, v in raw["grid"].items() if k != "seeds"} | {
        "teachers": ["MLP"], "students": ["MLP"], "w_hard": [0.5], "init_seeds": [0], "data_seeds": 3,
        "student_streams": "shared"}  # fmt: skip
    raw["models"]["MLP"]["train"] = {"dropout": 0.2}
    _compare(raw, tmp_path, 2, params_tol=1e-4, metric_tol=1e-4)


# --- the barrier analysis pairs them ----------------------------------------------------------------------------------


def test_barrier_pairs_of_one_initialisation_are_marked_same_init(tiny_raw, tmp_path):
    raw = copy.deepcopy(tiny_raw)
    raw["grid"] = {k: v for k, v in raw["grid"].items() if k != "seeds"} | {
        "teachers": ["data"], "students": ["MLP"], "init_seeds": [0, 1], "data_seeds": [0, 1]}  # fmt: skip
    raw["train"]["epochs"] = 1
    spec = parse_sweep(raw, "t.yaml", output=tmp_path / "run")
    plan = make_plan(spec)
    write_sweep_record(plan)
    assert execute(plan, InlineExecutor(), log=lambda s: None) == {}
    view = RunView(spec.output)
    trials = {t.seed: t for t in view.trials}
    assert same_init(trials[0], trials[1]) and same_init(trials[2], trials[3]) and not same_init(trials[0], trials[2])
    out = barriers(view, tmp_path / "out", num_lambdas=3, max_pairs=10)
    (_, table), = out.tables  # fmt: skip
    assert table.loc[("MLP", "data", "data", "yes"), "pairs"].startswith("2")
    assert table.loc[("MLP", "data", "data", "no"), "pairs"].startswith("4")
    import pandas as pd

    pairs = pd.read_csv(tmp_path / "out" / "pairs.csv")
    shared = {frozenset((int(r.seed1), int(r.seed2))) for r in pairs.itertuples() if r.same_init}
    assert shared == {frozenset((0, 1)), frozenset((2, 3))}


# --- what the plan and the run folder say ----------------------------------------------------------------------------


def test_plan_output_and_sweep_record_say_which_conditions_share_which_streams(tiny_raw, tmp_path, capsys):
    from kdtune.cli import main
    from kdtune.plan import stream_design

    plan = _plan(tiny_raw, tmp_path, seeds=None, init_seeds=[0], data_seeds=2)
    design = stream_design(plan.spec)
    assert design["units"] == [{"seed": 0, "init": 0, "data": 0}, {"seed": 1, "init": 0, "data": 1}]
    text = "\n".join(design["lines"])
    assert "same initial weights" in text and "students draw theirs apart" in text
    record = write_sweep_record(plan)
    assert json.loads((record / "plan.json").read_text())["streams"] == design
    assert load_records(plan.spec.output)[0].streams == design
    legacy = "\n".join(stream_design(_plan(tiny_raw, tmp_path).spec)["lines"])
    assert "seed s sets initialisation and data order" in legacy
    shared = "\n".join(stream_design(_plan(tiny_raw, tmp_path, student_streams="shared").spec)["lines"])
    assert "students share theirs" in shared
    raw = copy.deepcopy(tiny_raw)
    raw["grid"] = {k: v for k, v in raw["grid"].items() if k != "seeds"} | {"init_seeds": [0], "data_seeds": 2}
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps(raw))
    assert main(["plan", str(path), "--out", str(tmp_path / "run2")]) == 0
    assert "streams: 2 seed units" in capsys.readouterr().out


# --- sweep-file checks -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grid", "field", "words"),
    [
        ({"init_seeds": [0]}, "grid.init_seeds", "either seeds"),
        ({"seeds": None, "data_seeds": [1, 1]}, "grid.data_seeds", "distinct"),
        ({"seeds": None, "init_seeds": 0}, "grid.init_seeds", ">= 1"),
        ({"seeds": None, "init_seeds": [0], "data_seeds": 2, "teacher_seed": 2}, "grid.teacher_seed", "0-1"),
        ({"student_streams": "together"}, "grid.student_streams", "apart, shared"),
        ({"student_streams": "shared", "teachers": ["data"]}, "grid.student_streams", "trains from data"),
    ],
)
def test_bad_stream_settings_get_one_line_naming_the_field(tiny_raw, grid, field, words):
    raw = copy.deepcopy(tiny_raw)
    raw["grid"] |= grid
    for key in [k for k, v in grid.items() if v is None]:
        del raw["grid"][key]
    with pytest.raises(SpecError) as e:
        parse_sweep(raw, "t.yaml")
    assert e.value.field == field and words in e.value.message and "\n" not in str(e.value)
