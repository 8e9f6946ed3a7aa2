"""Training paths: outputs.feature_epochs in sweeps and trial ids, the snapshots a trainer keeps (and that
keeping them changes nothing else), and the paths analysis on a finished tiny run."""

from __future__ import annotations

import copy
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from kdtune.analysis import RunView
from kdtune.analysis.paths import paths
from kdtune.errors import SpecError
from kdtune.plan import TrialConfig, make_plan
from kdtune.rundir import load_outputs, trial_dir
from kdtune.spec.sweepfile import parse_sweep
from kdtune.train.models import build_model
from kdtune.train.tasks import feature_index, task_for
from kdtune.train.trainer import PATHS, Trainer, load_state, train_trial, trial_seed

# The tiny sweep's trial ids under RESULTS_VERSION 3, computed before outputs.feature_epochs, data.folds,
# data.invariance and loss.start/stop existed in this version: settings at their defaults leave the ids alone.
IDS_BEFORE_FEATURE_EPOCHS = {
    ("MLP", "data", 0): "7db72770d5fbc124",
    ("MLP", "data", 1): "6795453ef4b23321",
    ("CNN", "data", 0): "11a3be54ba917dd7",
    ("CNN", "data", 1): "c94969b2cdd6242b",
    ("MLP", "CNN", 0): "bf62b4841ecd65ae",
    ("MLP", "CNN", 1): "52fed1406333773d",
}


def test_ids_of_sweeps_without_feature_epochs_are_unchanged(tiny_spec):
    plan = make_plan(tiny_spec)
    assert {(t.student, t.teacher, t.seed): t.id for t in plan.trials.values()} == IDS_BEFORE_FEATURE_EPOCHS
    cfg = next(iter(plan.trials.values())).config
    assert "feature_epochs" not in cfg.to_dict()["outputs"]


def test_feature_epochs_are_parsed_sorted_part_of_the_id_and_read_back(tiny_raw, tmp_path):
    tiny_raw["outputs"]["feature_epochs"] = [4, 0, 2]
    spec = parse_sweep(tiny_raw, "t.yaml", output=tmp_path)
    assert spec.outputs.feature_epochs == (0, 2, 4)
    plan = make_plan(spec)
    cfg = next(iter(plan.trials.values())).config
    assert cfg.to_dict()["outputs"]["feature_epochs"] == [0, 2, 4]
    assert TrialConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert set(plan.trials).isdisjoint(IDS_BEFORE_FEATURE_EPOCHS.values())  # another config, another trial


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([1, 1], "outputs.feature_epochs: must be distinct epochs"),
        ([0, -1], "outputs.feature_epochs[1]: must be an integer >= 0"),
        (["2"], "outputs.feature_epochs[0]: must be an integer >= 0"),
        ([], "outputs.feature_epochs: must not be empty"),
    ],
)
def test_bad_feature_epochs_are_refused_naming_the_field(tiny_raw, tmp_path, value, message):
    tiny_raw["outputs"]["feature_epochs"] = value
    with pytest.raises(SpecError, match=re.escape(message)):
        parse_sweep(tiny_raw, "t.yaml", output=tmp_path)


def test_feature_epochs_need_feature_examples(tiny_raw, tmp_path):
    tiny_raw["outputs"] = {"feature_examples": 0, "feature_epochs": [0, 1]}
    with pytest.raises(SpecError, match=re.escape("outputs.feature_epochs: needs outputs.feature_examples > 0")):
        parse_sweep(tiny_raw, "t.yaml", output=tmp_path)


def test_snapshots_are_the_features_at_those_epochs_and_change_nothing_else(tiny_raw, tmp_path):
    tiny_raw["models"]["CNN"]["train"] = {"dropout": 0.3, "select": "last"}  # dropout and batch norm: modes matter
    plain = parse_sweep(copy.deepcopy(tiny_raw), "t.yaml", output=tmp_path / "plain")
    tiny_raw["outputs"]["feature_epochs"] = [0, 2, 1, 9]  # 9: beyond the 2 epochs trained, skipped
    kept = parse_sweep(tiny_raw, "t.yaml", output=tmp_path / "kept")
    cfg_plain, cfg_kept = (
        next(t.config for t in make_plan(s).trials.values() if (t.student, t.seed) == ("CNN", 0)) for s in (plain, kept)
    )
    cpu = torch.device("cpu")
    torch.manual_seed(5)
    a = train_trial(cfg_plain, plain.output, None, cpu)
    after_a = torch.rand(3)
    torch.manual_seed(5)
    b = train_trial(cfg_kept, kept.output, None, cpu)
    assert torch.equal(torch.rand(3), after_a)  # the caller's random state is left as it was, snapshots or not
    assert a["history"] == b["history"] and a["eval"] == b["eval"]
    sa, sb = load_state(plain.output, cfg_plain.id), load_state(kept.output, cfg_kept.id)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # weights and batch-norm statistics alike

    d = trial_dir(kept.output, cfg_kept.id)
    assert PATHS in json.loads((d / "checksums.json").read_text())
    assert not (trial_dir(plain.output, cfg_plain.id) / PATHS).exists()
    with np.load(d / PATHS) as z:
        snaps = {k: z[k] for k in z.files}
    assert snaps["epochs"].tolist() == [0, 1, 2] and str(snaps["eval_set"]) == "test"
    outputs = load_outputs(kept.output, cfg_kept.id)
    np.testing.assert_array_equal(snaps["feature_index"], outputs["feature_index__test"])
    np.testing.assert_allclose(snaps["path_features__e2"], outputs["features__test"], rtol=1e-5, atol=1e-6)  # last epoch

    # epoch 0 is the initialisation: the model built from the trial's seed, before any step
    trainer = Trainer(cfg_kept, tmp_path / "again", None, cpu)
    assert trainer.model.training  # the snapshot left it in training mode
    torch.manual_seed(trial_seed(cfg_kept))
    model = build_model(cfg_kept.arch, trainer.data.info, cfg_kept.train.dropout, dict(cfg_kept.params)).eval()
    split = trainer.data.evals["test"]
    idx = feature_index(len(split), cfg_kept.outputs.feature_examples)
    with torch.no_grad():
        expected = task_for(trainer.data.info).outputs(model, split.x[idx])[1]
    np.testing.assert_allclose(snaps["path_features__e0"], expected.numpy(), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from kdtune.run.execute import InlineExecutor, execute
    from kdtune.run.ledger import write_sweep_record
    from tests.conftest import TINY

    raw = copy.deepcopy(TINY)
    raw["grid"]["seeds"] = 1  # CNN and MLP from data, MLP ← CNN
    raw["outputs"]["feature_epochs"] = [0, 1, 2]
    spec = parse_sweep(raw, "tiny.yaml", output=tmp_path_factory.mktemp("paths") / "run")
    plan = make_plan(spec)
    write_sweep_record(plan)  # what kdtune run records first; RunView reads the trials it planned
    assert execute(plan, InlineExecutor(), log=lambda s: None) == {}
    return spec.output


def test_the_analysis_embeds_every_snapshot_and_draws_each_path(tiny_run, tmp_path):
    out = paths(RunView(tiny_run), tmp_path)
    assert [p.name for p in out.figures] == ["paths.png", "paths_by_group.png"] and all(p.is_file() for p in out.figures)
    assert out.skipped == [] and "eval set test" in out.notes[0]
    coords = pd.read_csv(tmp_path / "paths.csv")
    assert len(coords) == 3 * 3 and coords.groupby("trial_id")["epoch"].apply(list).map(lambda e: e == [0, 1, 2]).all()
    assert np.isfinite(coords[["x", "y"]].to_numpy()).all()


def test_the_analysis_skips_with_one_line_when_no_trial_kept_snapshots(tiny_run, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    for f in run.glob(f"trials/*/{PATHS}"):
        f.unlink()
    out = paths(RunView(run), tmp_path / "out")
    assert out.figures == [] and len(out.skipped) == 1 and "no trial kept feature snapshots" in out.skipped[0]


def test_a_damaged_snapshot_file_is_left_out_and_named(tiny_run, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    damaged = sorted(run.glob(f"trials/*/{PATHS}"))[0]
    damaged.write_bytes(damaged.read_bytes() + b"x")
    out = paths(RunView(run), tmp_path / "out")
    assert len(out.figures) == 2 and len(out.skipped) == 1 and damaged.parent.name in out.skipped[0]
    assert len(pd.read_csv(tmp_path / "out" / "paths.csv")) == 2 * 3
