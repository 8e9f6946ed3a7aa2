"""The trainer advances one epoch at a time; trials trained in lockstep equal trials trained alone."""

from __future__ import annotations

import dataclasses

import torch

from kdtune.plan import make_plan
from kdtune.spec.sweepfile import parse_sweep
from kdtune.train.trainer import Trainer, train_trial


def test_seeds_trained_in_lockstep_give_what_they_give_alone(tiny_raw, tmp_path):
    tiny_raw["models"]["MLP"]["train"] = {"dropout": 0.3}  # dropout draws from the global random state
    spec = parse_sweep(tiny_raw, "tiny.yaml", output=tmp_path / "alone")
    trials = [t for t in make_plan(spec).trials.values() if t.student == "MLP" and t.stage == 1]
    assert len(trials) == 2
    alone = [train_trial(t.config, tmp_path / "alone", None, torch.device("cpu")) for t in trials]

    trainers = [Trainer(t.config, tmp_path / "lockstep", None, torch.device("cpu")) for t in trials]
    torch.manual_seed(999)  # the caller's random state must not leak into the trainers
    while not all(tr.done for tr in trainers):
        for tr in trainers:
            tr.train_epoch()
    together = [tr.finish() for tr in trainers]
    for a, b in zip(alone, together, strict=True):
        assert a["history"] == b["history"] and a["eval"] == b["eval"]
    assert alone[0]["eval"] != alone[1]["eval"]  # two seeds, two results


def test_the_trainer_reports_every_validation_metric_each_epoch(tiny_spec):
    trial = next(t for t in make_plan(tiny_spec).trials.values() if t.stage == 1)
    trainer = Trainer(dataclasses.replace(trial.config), tiny_spec.output, None, torch.device("cpu"))
    row = trainer.train_epoch()
    assert {"epoch", "train_loss", "lr", "val_accuracy", "val_nll", "val_ece"} <= set(row)
    assert row["epoch"] == 1 and not trainer.done
