"""Switching to distillation mid-training (student–teacher deviations paper, section 3.2): LossSpec.start/stop,
loss_for_epoch, the sweep keys (distill sections, grid axes), the plan, and what a student actually trains on."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdtune.errors import SpecError
from kdtune.labels import summary
from kdtune.plan import TrialConfig, make_plan
from kdtune.rundir import sha256_file, trial_dir
from kdtune.spec.sweepfile import parse_sweep
from kdtune.train.data import load_data
from kdtune.train.distill import (
    LABELS_ONLY,
    LossSpec,
    distill_epochs,
    kd_loss,
    loss_for_epoch,
    objective_starts,
    selection_epochs,
    switch_epoch,
    switches,
)
from kdtune.train.trainer import Trainer, train_trial

KD = LossSpec("hinton", temperature=4.0, w_hard=0.0, w_soft=1.0)


def _distilling(spec: LossSpec, epochs: int) -> list[bool]:
    return [loss_for_epoch(spec, e, epochs) == spec for e in range(1, epochs + 1)]


def test_switch_points_are_fractions_or_one_based_epoch_numbers():
    assert switch_epoch(0.0, 10) == 1 and switch_epoch(0, 10) == 1
    assert switch_epoch(0.5, 10) == 6  # round(0.5 · 10) + 1
    assert switch_epoch(0.25, 10) == 4  # 2.5 rounded up, + 1
    assert switch_epoch(0.5, 5) == 4
    assert switch_epoch(3, 10) == 3
    with pytest.raises(ValueError, match="fraction in \\[0, 1\\) or an epoch number"):
        switch_epoch(1.5, 10)


def test_loss_for_epoch_labels_before_start_teacher_from_start_on():
    spec = LossSpec("hinton", 4.0, 0.0, 1.0, start=0.5)
    assert _distilling(spec, 10) == [False] * 5 + [True] * 5
    assert loss_for_epoch(spec, 1, 10) == LABELS_ONLY == LossSpec("ce", w_hard=1.0, w_soft=0.0)
    assert _distilling(LossSpec("hinton", 4.0, 0.0, 1.0, start=3), 5) == [False, False, True, True, True]
    assert _distilling(KD, 4) == [True] * 4  # the default: every epoch
    assert loss_for_epoch(LABELS_ONLY, 2, 4) == LABELS_ONLY  # trained from data: nothing to switch


def test_loss_for_epoch_reverse_with_stop_and_a_window():
    assert _distilling(LossSpec("hinton", 4.0, 0.0, 1.0, stop=0.5), 4) == [True, True, False, False]
    assert _distilling(LossSpec("hinton", 4.0, 0.0, 1.0, stop=2), 4) == [True, False, False, False]
    window = LossSpec("hinton", 4.0, 0.0, 1.0, start=0.25, stop=0.75)
    assert _distilling(window, 4) == [False, True, True, False]
    assert list(distill_epochs(window, 4)) == [2, 3]
    assert not distill_epochs(LossSpec("hinton", 4.0, 0.0, 1.0, start=5), 4)  # after the last epoch
    assert [objective_starts(window, e, 4) for e in range(1, 5)] == [True, True, False, True]
    assert [objective_starts(KD, e, 4) for e in range(1, 5)] == [True, False, False, False]


def test_selection_epochs_run_from_the_last_switch_to_the_end():
    assert list(selection_epochs(LossSpec("hinton", 4.0, 0.0, 1.0, start=0.5), 10)) == list(range(6, 11))
    assert list(selection_epochs(LossSpec("hinton", 4.0, 0.0, 1.0, stop=0.75), 4)) == [4]  # back on the labels
    assert list(selection_epochs(LossSpec("hinton", 4.0, 0.0, 1.0, start=1, stop=3), 5)) == [3, 4, 5]
    assert list(selection_epochs(KD, 4)) == [1, 2, 3, 4] and not switches(KD, 4)
    assert list(selection_epochs(LABELS_ONLY, 3)) == [1, 2, 3] and not switches(LABELS_ONLY, 3)
    late_stop = LossSpec("hinton", 4.0, 0.0, 1.0, stop=9)  # after the last epoch: distilled throughout
    assert list(selection_epochs(late_stop, 4)) == [1, 2, 3, 4] and not switches(late_stop, 4)
    assert switches(LossSpec("hinton", 4.0, 0.0, 1.0, start=0.5), 4)


# ---------------------------------------------------------------- sweep files


def _spec(raw, tmp_path):
    return parse_sweep(raw, "s.yaml", output=tmp_path / "run")


def test_distill_sections_and_grid_axes_set_the_students_switch(tiny_raw, tmp_path):
    tiny_raw["distill"]["start"] = 0.5
    spec = _spec(tiny_raw, tmp_path)
    plan = make_plan(spec)
    students = [t for t in plan.trials.values() if t.teacher != "data"]
    baselines = [t for t in plan.trials.values() if t.teacher == "data"]
    assert {(t.config.loss.start, t.config.loss.stop) for t in students} == {(0.5, None)}
    assert {(t.config.loss.start, t.config.loss.stop) for t in baselines} == {(0.0, None)}  # from data: no switch
    assert {"start": 0.5, "stop": None}.items() <= summary(students[0].config.to_dict()).items()
    assert summary(baselines[0].config.to_dict())["start"] is None

    tiny_raw["models"]["MLP"]["distill"] = {"start": 1, "stop": 2}  # the model's distill wins over the sweep's
    assert {(t.config.loss.start, t.config.loss.stop) for t in make_plan(_spec(tiny_raw, tmp_path)).trials.values()
            if t.teacher != "data"} == {(1, 2)}  # fmt: skip

    tiny_raw["grid"] |= {"start": [0, 0.5], "stop": [None, 0.75]}  # grid axes win over both, crossed
    plan = make_plan(_spec(tiny_raw, tmp_path))
    switches = {(t.config.loss.start, t.config.loss.stop) for t in plan.trials.values() if t.teacher != "data"}
    assert switches == {(0.0, None), (0.0, 0.75), (0.5, None), (0.5, 0.75)}
    assert sum(t.teacher != "data" for t in plan.trials.values()) == 4 * 2  # × 2 seeds
    assert sum(t.teacher == "data" for t in plan.trials.values()) == 4  # baselines and teachers not repeated


def test_the_default_switch_keeps_trial_ids_and_other_switches_get_their_own(tiny_raw, tmp_path):
    before = make_plan(_spec(tiny_raw, tmp_path))
    tiny_raw["grid"]["start"] = [0, 0.5]
    after = make_plan(_spec(tiny_raw, tmp_path))
    assert set(before.trials) < set(after.trials)  # start 0 is the distillation of every epoch, as before
    student = next(t for t in after.trials.values() if t.config.loss.start == 0.5)
    assert "start" not in next(iter(before.trials.values())).config.to_dict()["loss"]
    assert student.config.to_dict()["loss"]["start"] == 0.5
    assert TrialConfig.from_dict(student.config.to_dict()) == student.config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"distill": {"start": 1.5}}, "distill.start: must be a fraction in [0, 1) of the epochs or an epoch number"),
        ({"distill": {"start": -0.1}}, "distill.start: must be a fraction in [0, 1)"),
        ({"distill": {"stop": 0}}, "distill.stop: must be a fraction in (0, 1) of the epochs or an epoch number"),
        ({"distill": {"start": "half"}}, "distill.start: must be a fraction in [0, 1) of the epochs"),
        ({"train": {"start": 0.5}}, "train.start: unknown key"),
        ({"grid": {"start": [0, 2.5]}}, "grid.start[1]: must be a fraction"),
        ({"grid": {"start": [3]}}, "grid.start: start 3 and stop None leave MLP (a student of CNN, 2 epochs) no distilled epoch"),
        ({"distill": {"start": 0.5, "stop": 0.5}}, "distill: start 0.5 and stop 0.5 leave MLP"),
        ({"grid": {"pairs": ["data -> MLP"], "start": [0.5]}}, "grid.start: switches distillation on or off, but every pair"),
    ],
)
def test_bad_switches_are_one_line(tiny_raw, tmp_path, change, message):
    raw = copy.deepcopy(tiny_raw)
    for section, values in change.items():
        if section == "grid" and "pairs" in values:
            raw["grid"] = {k: v for k, v in raw["grid"].items() if k not in ("students", "teachers")}
        raw[section] = dict(raw.get(section) or {}) | values
    with pytest.raises(SpecError) as e:
        _spec(raw, tmp_path)
    assert message in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------- what a student trains on


@pytest.fixture
def wrong_teacher(tiny_raw, tmp_path):
    """A one-batch tiny sweep (CNN → MLP, 4 epochs) whose teacher is trained, then its cached training-set
    logits replaced by confident logits for a wrong class ((y + 1) mod 10), checksum updated."""

    def make(logits: str = "wrong", **switch):
        raw = copy.deepcopy(tiny_raw)
        raw["grid"] = {"pairs": ["CNN -> MLP"], "temperature": [2], "w_hard": [0], "w_soft": [1], "seeds": [0]}
        raw["train"] |= {"epochs": 4, "batch_size": 4096, "lr": 0.05}
        raw["distill"] = dict(switch)
        spec = _spec(raw, tmp_path)
        plan = make_plan(spec)
        student = next(t for t in plan.trials.values() if t.teacher != "data")
        teacher = plan.teacher_of(student)
        run = spec.output
        train_trial(teacher.config, run, None, torch.device("cpu"))
        y = load_data(student.config.data, None).train.y
        wrong = F.one_hot((y + 1) % 10, 10).float() * 6.0 if logits == "wrong" else torch.zeros(len(y), 10)
        path = trial_dir(run, teacher.id) / f"train_logits-{student.config.data_fingerprint}.npy"
        np.save(path, wrong.numpy())
        path.with_name(path.name + ".sha256").write_text(sha256_file(path) + "\n")
        return Trainer(student.config, run, None, torch.device("cpu")), wrong

    return make


def _epochs(trainer: Trainer, wrong: torch.Tensor) -> list[tuple[LossSpec, float, float, float]]:
    """Per epoch: the LossSpec the task was given, the epoch's train_loss, and CE with the labels and KD
    with the (wrong) teacher computed by hand on the one batch with the parameters the epoch starts from."""
    used: list[LossSpec] = []
    train_loss = trainer.task.train_loss

    def record(logits, split, idx, x, t_logits, loss, smoothing):
        used.append(loss)
        return train_loss(logits, split, idx, x, t_logits, loss, smoothing)

    trainer.task.train_loss = record
    x, y = trainer.data.train.x, trainer.data.train.y
    out = []
    while not trainer.done:
        with torch.no_grad():
            logits, _ = trainer.model(x)  # MLP without dropout: train and eval mode agree
            ce = F.cross_entropy(logits, y).item()
            kd = kd_loss(logits, wrong, 2.0).item()
        row = trainer.train_epoch()
        out.append((used[-1], row["train_loss"], ce, kd))
    assert len(used) == 4  # one batch per epoch
    return out


def test_a_switched_student_trains_on_the_labels_before_start_and_on_the_teacher_after(wrong_teacher):
    trainer, wrong = wrong_teacher(start=0.5)
    assert trainer.cached_logits is not None and torch.equal(trainer.cached_logits, wrong)
    epochs = _epochs(trainer, wrong)
    assert [spec for spec, *_ in epochs] == [LABELS_ONLY, LABELS_ONLY, trainer.config.loss, trainer.config.loss]
    for i, (_, got, ce, kd) in enumerate(epochs):
        expected = ce if i < 2 else kd
        assert got == pytest.approx(expected, rel=1e-5), (i, got, ce, kd)
        assert abs(ce - kd) > 0.1  # the teacher disagrees with the labels: the two losses are told apart


def test_the_reverse_control_distils_first_and_trains_on_the_labels_from_stop_on(wrong_teacher):
    trainer, wrong = wrong_teacher(stop=0.5)
    epochs = _epochs(trainer, wrong)
    assert [spec for spec, *_ in epochs] == [trainer.config.loss, trainer.config.loss, LABELS_ONLY, LABELS_ONLY]
    for i, (_, got, ce, kd) in enumerate(epochs):
        assert got == pytest.approx(kd if i < 2 else ce, rel=1e-5), (i, got, ce, kd)


def test_a_switch_to_a_loss_of_another_scale_is_not_taken_for_divergence(wrong_teacher):
    # a uniform teacher: the distillation loss starts near 0, the labels' cross-entropy near log(10)
    trainer, uniform = wrong_teacher(logits="uniform", stop=0.5)
    epochs = _epochs(trainer, uniform)  # would raise DivergedError if epoch 3 were measured against epoch 1
    assert epochs[2][1] > 10 * epochs[0][1]
    assert trainer.start_loss == pytest.approx(epochs[2][1], rel=1e-5)  # one batch: the epoch's loss is its first batch's


# ---------------------------------------------------------------- model selection inside the switch's window


@pytest.mark.parametrize(
    ("switch", "select_from", "window", "best"),
    [
        ({"start": 0.5}, "last_switch", [3, 4], 3),  # labels in epochs 1-2: only the distilled epochs 3-4
        ({"stop": 0.5}, "last_switch", [3, 4], 3),  # the teacher in epochs 1-2: only the epochs back on the labels
        ({"start": 0.25, "stop": 0.75}, "last_switch", [4, 4], 4),  # labels, teacher (2-3), labels from 4
        ({}, "first_epoch", [1, 4], 1),  # distilled throughout: every epoch
    ],
)
def test_a_switched_student_keeps_an_epoch_from_its_last_switch_on(wrong_teacher, monkeypatch, switch, select_from, window, best):
    from kdtune.rundir import read_json
    from kdtune.train.tasks import Task

    trainer, _ = wrong_teacher(**switch)
    scripted = iter([(0.9, 0.1), (0.5, 0.5), (0.7, 0.3), (0.6, 0.4)])  # the best epoch of all is the first

    def validate(self, model, split, batch_size):
        accuracy, nll = next(scripted)
        return {"accuracy": accuracy, "nll": nll}

    monkeypatch.setattr(Task, "validate", validate)
    while not trainer.done:
        trainer.train_epoch()
    result = trainer.finish()
    assert result["best_epoch"] == best
    assert result["select_window"] == window and trainer.config.train.select_from == select_from
    on_disk = read_json(trial_dir(trainer.run_dir, trainer.config.id) / "metrics.json")
    assert (on_disk["best_epoch"], on_disk["select_window"]) == (best, window)


# trial ids of sweeps/quickstart.yaml before selection inside the switch's window existed (none of them switches)
QUICKSTART_IDS = {
    "0879f0151d91e606", "146074b153f32436", "316b570a91d0b454", "36659f4489f61dd4", "4b72b3737a1e4e66",
    "55db263f23d938b6", "5cb31a49d711a3ca", "6355de0a18cff321", "6ee9c3a8b94ad53d", "7a233a6ddaeadb45",
    "831fe90f9eb810b9", "f6f0eb055f19ae0e",
}  # fmt: skip


def test_only_switched_students_get_new_ids_for_the_selection_inside_their_window(tiny_raw, tmp_path):
    from pathlib import Path

    from kdtune.spec.sweepfile import load_sweep

    sweeps = Path(__file__).resolve().parents[1] / "sweeps"
    assert set(make_plan(load_sweep(sweeps / "quickstart.yaml", output=tmp_path / "q")).trials) == QUICKSTART_IDS
    tiny_raw["grid"]["start"] = [0, 0.5]
    plan = make_plan(_spec(tiny_raw, tmp_path))
    for trial in plan.trials.values():
        cfg = trial.config
        switched = trial.teacher != "data" and cfg.loss.start == 0.5
        assert cfg.train.select_from == ("last_switch" if switched else "first_epoch")
        assert ("select_from" in cfg.to_dict()["train"]) == switched  # left out at its default: unswitched ids kept
        assert TrialConfig.from_dict(cfg.to_dict()) == cfg
        if switched:
            # the config a switched student had before: read back as it was selected (every epoch), under its old id
            old = cfg.to_dict()
            del old["train"]["select_from"]
            before = TrialConfig.from_dict(old)
            assert before.train.select_from == "first_epoch" and before.id != cfg.id and before.to_dict() == old
