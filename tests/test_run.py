"""End to end on the tiny digits sweep, in process: what a trial leaves, resume, re-run, determinism."""

import json
import shutil

import numpy as np
import pytest
import torch

from kdtune.plan import make_plan
from kdtune.run import execute as execute_mod
from kdtune.run.execute import InlineExecutor, execute
from kdtune.run.ledger import collect
from kdtune.rundir import trial_dir
from kdtune.train.tasks import task_for
from kdtune.train.trainer import load_state, load_trained_model, teacher_train_logits


@pytest.fixture
def finished(tiny_spec):
    plan = make_plan(tiny_spec)
    failures = execute(plan, InlineExecutor(), log=lambda s: None)
    assert failures == {}
    return plan


def test_every_trial_leaves_config_metrics_checkpoint_and_outputs(finished):
    run = finished.spec.output
    for t in finished.trials.values():
        d = trial_dir(run, t.id)
        cfg = json.loads((d / "config.json").read_text())
        assert cfg["id"] == t.id and cfg["config"]["seed"] == t.seed
        m = json.loads((d / "metrics.json").read_text())
        assert m["status"] == "ok" and len(m["history"]) == 2 and set(m["eval"]) == {"val", "test", "translated"}
        state = load_state(run, t.id)  # weights_only=True
        assert all(isinstance(v, torch.Tensor) for v in state.values())
        with np.load(d / "outputs.npz", allow_pickle=False) as z:
            probs, labels = z["probs__test"], z["labels__test"]
            assert probs.shape == (len(labels), 10) and np.allclose(probs.sum(1), 1, atol=1e-5)
            assert z["features__translated"].shape[0] == 50 and z["feature_index__translated"].shape == (50,)
        # the saved probabilities are the checkpoint's predictions: the test accuracy can be recomputed
        assert m["eval"]["test"]["accuracy"] == pytest.approx((probs.argmax(1) == labels).mean())
        if t.stage == 2:
            assert {"agreement", "kl"} <= set(m["eval"]["test"])


def test_teacher_logit_cache_holds_the_teachers_training_set_logits(finished):
    from kdtune.train.data import load_data

    student = next(t for t in finished.trials.values() if t.stage == 2)
    run, tid = finished.spec.output, student.config.teacher_id
    data = load_data(student.config.data, None)
    model = load_trained_model(run, tid, data.info, torch.device("cpu"))
    assert not model.training  # teachers predict in eval mode
    assert list(trial_dir(run, tid).glob("train_logits-*.npy"))  # written by the teacher's own trial
    cached = teacher_train_logits(run, tid, data, task_for(data.info), student.config, model)
    assert torch.allclose(cached, task_for(data.info).predict(model, data.train, 512)[0], atol=1e-5)


def test_results_table_has_one_row_per_trial_and_eval_set(finished):
    df = collect(finished)
    assert len(df) == len(finished.trials) * 3
    for col in [
        "trial_id",
        "stage",
        "student",
        "teacher",
        "temperature",
        "w_hard",
        "w_soft",
        "seed",
        "eval_set",
        "accuracy",
        "nll",
        "ece",
        "agreement",
        "kl",
        "status",
        "weight_decay",
        "dropout",
        "label_smoothing",
    ]:
        assert col in df.columns
    assert set(df.status) == {"ok"}
    assert df[df.stage == 2].agreement.notna().all() and df[df.stage == 1].agreement.isna().all()


def test_rerunning_a_finished_sweep_trains_nothing(finished, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a finished trial was trained again")

    monkeypatch.setattr("kdtune.train.trainer.train_trial", boom)
    logs = []
    assert execute(make_plan(finished.spec), InlineExecutor(), log=logs.append) == {}
    assert logs == ["stage 1: nothing to run (4 trials already finished)", "stage 2: nothing to run (2 trials already finished)"]


def test_a_lost_trial_is_retrained_alone_and_reproduced_exactly(finished):
    run = finished.spec.output
    student = next(t for t in finished.trials.values() if t.stage == 2)
    before = json.loads((trial_dir(run, student.id) / "metrics.json").read_text())
    shutil.rmtree(trial_dir(run, student.id))
    logs = []
    execute(make_plan(finished.spec), InlineExecutor(), log=logs.append)
    assert "stage 2: 1 of 2 trials to run, in 1 group on inline (1 already finished)" in logs
    after = json.loads((trial_dir(run, student.id) / "metrics.json").read_text())
    assert after["eval"] == before["eval"] and after["history"] == before["history"]


def test_a_failing_trial_does_not_stop_the_others_and_its_students_are_skipped(tiny_spec, monkeypatch):
    real = execute_mod.run_group

    def flaky(payload, on_epoch=None):
        if payload["name"].startswith("CNN-from-data") and payload["trials"][0]["config"]["seed"] == 1:
            raise RuntimeError("simulated crash")
        return real(payload, on_epoch)

    monkeypatch.setattr(execute_mod, "run_group", flaky)
    plan = make_plan(tiny_spec)
    failures = execute(plan, InlineExecutor(), log=lambda s: None)
    df = collect(plan, failures)
    assert sorted(df.drop_duplicates("trial_id").status) == ["failed", "ok", "ok", "ok", "ok", "skipped"]
    assert any(v.startswith("RuntimeError: simulated crash") for v in failures.values())
