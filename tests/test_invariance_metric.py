"""The invariance metric IM (eq. 3 of the symmetry-invariance paper): kdtune.metrics.invariance_metric, the
``data.invariance`` sweep key, the transformed copies Task.evaluate predicts, and ``im`` in results and reports."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdtune.data import DataInfo, DataSpec, load_data
from kdtune.data.augment import AUGMENTATIONS
from kdtune.data.base import Split
from kdtune.errors import SpecError
from kdtune.metrics import invariance_metric
from kdtune.plan import TrialConfig, make_plan
from kdtune.report import render
from kdtune.results import collect
from kdtune.rundir import trial_dir
from kdtune.spec import parse_sweep
from kdtune.tasks import invariance_copy, task_for
from kdtune.train import train_trial


def test_im_is_the_mean_l1_distance_of_the_probabilities():
    p = np.array([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    q = np.array([[0.0, 1.0, 0.0], [0.2, 0.5, 0.3]])
    # example 1: |1-0| + |0-1| + 0 = 2; example 2: 0 + 0.2 + 0.2 = 0.4; mean 1.2
    assert invariance_metric(p, q) == pytest.approx(1.2)
    assert invariance_metric(torch.tensor(p), torch.tensor(p)) == 0.0
    with pytest.raises(ValueError, match="different shapes"):
        invariance_metric(p, q[:1])


def _spec(raw, tmp_path):
    return parse_sweep(raw, "s.yaml", output=tmp_path / "run")


def test_data_invariance_is_parsed_with_its_defaults_and_is_part_of_the_trial_ids(tiny_raw, tmp_path):
    plain = make_plan(_spec(tiny_raw, tmp_path))
    tiny_raw["data"]["invariance"] = "translate"
    spec = _spec(tiny_raw, tmp_path)
    assert dict(spec.data.invariance) == {"name": "translate", "max_shift": 2}
    tiny_raw["data"]["invariance"] = {"name": "translate", "max_shift": 1}
    spec = _spec(tiny_raw, tmp_path)
    assert dict(spec.data.invariance) == {"name": "translate", "max_shift": 1}
    plan = make_plan(spec)
    assert set(plan.trials).isdisjoint(plain.trials)
    cfg = next(iter(plan.trials.values())).config
    assert cfg.to_dict()["data"]["invariance"] == {"max_shift": 1, "name": "translate"}
    assert TrialConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert "invariance" not in next(iter(plain.trials.values())).config.to_dict()["data"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("rotate", "data.invariance: unknown augmentation 'rotate'; known: "),
        ({"max_shift": 2}, "data.invariance: must be an augmentation name or a mapping with 'name'"),
        (
            {"name": "translate", "shift": 2},
            "data.invariance.shift: unknown parameter 'shift' for this augmentation; allowed: max_shift",
        ),
        ({"name": "translate", "max_shift": 1.5}, "data.invariance.max_shift: must be of the type of its default 2"),
        ({"name": "translate", "max_shift": -1}, "data.invariance: translate with {'max_shift': -1} fails on digits's inputs"),
    ],
)
def test_bad_invariance_settings_are_one_line(tiny_raw, tmp_path, value, message):
    tiny_raw["data"]["invariance"] = value
    with pytest.raises(SpecError) as e:
        _spec(tiny_raw, tmp_path)
    assert message in str(e.value) and "\n" not in str(e.value)
    if value == "rotate":
        assert "translate" in str(e.value)  # the known names are listed


class PixelSum(nn.Module):
    """Logits from the sum of an image's pixels: blind to where its content sits."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.linspace(-1.0, 1.0, 10))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        total = x.flatten(1).sum(1, keepdim=True)
        return total * self.scale / 10, total


class FirstRow(nn.Module):
    """Logits from the pixels of one image row: changes when the content moves."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(width, 10, generator=torch.Generator().manual_seed(0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        row = x[:, 0, 4, :]
        return row @ self.w, row


@pytest.fixture
def digits_with_invariance(tiny_raw, tmp_path):
    tiny_raw["data"]["invariance"] = {"name": "translate", "max_shift": 2}
    spec = _spec(tiny_raw, tmp_path)
    data = load_data(spec.data, None)
    return spec.data, data


def test_evaluate_adds_im_of_a_fixed_transformed_copy(digits_with_invariance):
    spec, data = digits_with_invariance
    split = data.evals["test"]
    original = split.x.clone()
    moved = invariance_copy(split, "test", spec)
    assert torch.equal(split.x, original)  # the eval set itself is untouched
    assert torch.equal(invariance_copy(split, "test", spec).x, moved.x)  # every model sees the same copy
    assert not torch.equal(invariance_copy(split, "translated", spec).x, moved.x)  # another set, another draw
    assert not torch.equal(moved.x, split.x) and torch.equal(moved.y, split.y)
    # digits are 8×8 in a frame padded by 2: a shift of at most 2 keeps every pixel, only moves it
    assert torch.allclose(moved.x.flatten(1).sum(1), split.x.flatten(1).sum(1), atol=1e-4)

    task = task_for(data.info)
    model = FirstRow(split.x.shape[-1])
    row, _ = task.evaluate(model, split, 256, 10, None, "test", spec)
    with torch.no_grad():
        p = F.softmax(model(split.x)[0].double(), -1).numpy()
        q = F.softmax(model(moved.x)[0].double(), -1).numpy()
    by_hand = np.abs(p - q).sum(1).mean()
    assert row["im"] == pytest.approx(by_hand, rel=1e-9) and row["im"] > 0.05
    assert "im" not in task.evaluate(model, split, 256, 10, None, "test", None)[0]  # no data.invariance: no im

    blind, _ = task.evaluate(PixelSum(), split, 256, 10, None, "test", spec)
    assert blind["im"] == pytest.approx(0.0, abs=1e-5)


@pytest.mark.skipif("permute" not in AUGMENTATIONS, reason="the permute augmentation comes with the set data")
def test_im_is_zero_for_a_model_that_pools_over_permuted_positions():
    n, points, feats = 64, 16, 3
    x = torch.randn(n, points, feats, generator=torch.Generator().manual_seed(1))
    split = Split(x, torch.zeros(n, dtype=torch.long))
    spec = DataSpec("sets", invariance=(("name", "permute"),))
    moved = invariance_copy(split, "test", spec)
    assert not torch.equal(moved.x, x)
    assert torch.allclose(moved.x.sort(1).values, x.sort(1).values)  # the same points, in another order
    lin = torch.randn(feats, 10, generator=torch.Generator().manual_seed(2))

    class Pooled(nn.Module):
        def forward(self, inputs):
            pooled = inputs.mean(1)
            return pooled @ lin, pooled

    class Ordered(nn.Module):
        def forward(self, inputs):
            return inputs[:, 0] @ lin, inputs[:, 0]

    task = task_for(DataInfo("set", (points, feats), 10))
    assert task.evaluate(Pooled(), split, 32, 4, None, "test", spec)[0]["im"] == pytest.approx(0.0, abs=1e-5)
    assert task.evaluate(Ordered(), split, 32, 4, None, "test", spec)[0]["im"] > 0.05


def test_a_trained_trial_reports_im_for_every_eval_set(tiny_raw, tmp_path):
    raw = copy.deepcopy(tiny_raw)
    raw["data"]["invariance"] = {"name": "translate", "max_shift": 2}
    raw["grid"] = {"pairs": ["data -> MLP"], "seeds": [0, 1]}
    raw["train"]["epochs"] = 1
    spec = _spec(raw, tmp_path)
    plan = make_plan(spec)
    for trial in plan.trials.values():
        train_trial(trial.config, spec.output, None, torch.device("cpu"))
    metrics = json.loads((trial_dir(spec.output, next(iter(plan.trials))) / "metrics.json").read_text())
    assert set(metrics["eval"]) == {"val", "test", "translated"}
    assert all(0 <= row["im"] <= 2 for row in metrics["eval"].values())
    df = collect(plan)
    assert df["im"].notna().all() and (df["im"] > 0).all()
    text = render(df, ["im"], rows=["student"], cols=["eval_set"])
    test_ims = df[df["eval_set"] == "test"]["im"]
    assert f"{test_ims.mean():.3f} ± {test_ims.std():.3f} (2)" in text
