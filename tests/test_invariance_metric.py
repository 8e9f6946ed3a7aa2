"""The invariance metric IM (eq. 3 of the symmetry-invariance paper): kdtune.train.metrics.invariance_metric, the
``data.invariance`` sweep key, the transformed copies Task.evaluate predicts, and ``im`` in results and reports."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdtune.errors import SpecError
from kdtune.plan import TrialConfig, make_plan
from kdtune.results.tables import render
from kdtune.run.ledger import collect
from kdtune.rundir import trial_dir
from kdtune.spec.sweepfile import parse_sweep
from kdtune.train.data import DataInfo, DataSpec, load_data
from kdtune.train.data.augment import AUGMENTATIONS
from kdtune.train.data.base import Split
from kdtune.train.metrics import invariance_metric
from kdtune.train.tasks import invariance_copy, task_for
from kdtune.train.trainer import train_trial


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
    assert dict(spec.data.invariance) == {"name": "translate", "max_shift": 2, "non_identity": True}
    tiny_raw["data"]["invariance"] = {"name": "translate", "max_shift": 1}
    spec = _spec(tiny_raw, tmp_path)
    assert dict(spec.data.invariance) == {"name": "translate", "max_shift": 1, "non_identity": True}
    plan = make_plan(spec)
    assert set(plan.trials).isdisjoint(plain.trials)
    cfg = next(iter(plan.trials.values())).config
    assert cfg.to_dict()["data"]["invariance"] == {"max_shift": 1, "name": "translate", "non_identity": True}
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
        (
            {"name": "translate", "max_shift": 0},  # only the identity: nothing to measure
            "data.invariance: translate with {'max_shift': 0} fails on digits's inputs: max_shift must be at least 1",
        ),
        ({"name": "translate", "non_identity": False}, "data.invariance.non_identity: unknown parameter 'non_identity'"),
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


# --- the transformed copies are drawn without the identity --------------------------------------------------


def _centre_pixels(n: int, side: int = 3) -> torch.Tensor:
    """``n`` one-channel side × side images, each one lit pixel at the centre."""
    x = torch.zeros(n, 1, side, side)
    x[:, 0, side // 2, side // 2] = 1.0
    return x


def test_translate_copies_are_shifted_by_one_of_the_8_nonzero_shifts_of_max_shift_1():
    """``{name: translate, max_shift: 1}``: the shift is uniform on {-1, 0, 1}² without (0, 0), so every copy of a
    centred pixel has it on one of its 8 neighbours, never in place (the bug: 1 copy in 9 unshifted)."""
    x = _centre_pixels(720)
    spec = DataSpec("digits", invariance=(("max_shift", 1), ("name", "translate"), ("non_identity", True)))
    moved = invariance_copy(Split(x, torch.zeros(720, dtype=torch.long)), "test", spec).x
    assert (moved != x).flatten(1).any(1).all()  # every copy differs from its original
    pos = moved[:, 0].flatten(1).argmax(1)
    assert torch.equal(moved.flatten(1).sum(1), torch.ones(720))  # moved, not pushed out: one lit pixel each
    shifts = torch.stack([pos // 3 - 1, pos % 3 - 1], 1)
    counts = {tuple(s.tolist()): int(c) for s, c in zip(*shifts.unique(dim=0, return_counts=True), strict=True)}
    assert set(counts) == {(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)} - {(0, 0)}
    assert all(60 <= c <= 120 for c in counts.values())  # 90 expected each (sd 8.9): uniform on the 8


@pytest.mark.parametrize("max_shift", [1, 2, 3])
def test_translate_without_identity_draws_every_other_shift_of_the_square(max_shift):
    from kdtune.train.data.augment import random_translate

    side = 2 * max_shift + 1
    x = _centre_pixels(4000, side)
    moved = random_translate(x, torch.Generator().manual_seed(0), max_shift, non_identity=True)
    pos = moved[:, 0].flatten(1).argmax(1)
    assert (pos != side * side // 2).all()
    assert len(pos.unique()) == side * side - 1
    # training augmentation keeps drawing from the whole square, (0, 0) included
    again = random_translate(x, torch.Generator().manual_seed(0), max_shift)[:, 0].flatten(1).argmax(1)
    assert (again == side * side // 2).any()


def test_permute_copies_are_never_the_given_order():
    """With 2 points the only order other than the given one is the swap: every copy is it."""
    x = torch.tensor([[[1.0], [0.0]], [[0.0], [2.0]], [[3.0], [4.0]]]).repeat(20, 1, 1)
    spec = DataSpec("sets", invariance=(("name", "permute"), ("non_identity", True)))
    moved = invariance_copy(Split(x, torch.zeros(60, dtype=torch.long)), "test", spec).x
    assert torch.equal(moved, x.flip(1))
    from kdtune.train.data.corruptions import permute_points, random_order

    assert torch.equal(permute_points(x, torch.Generator().manual_seed(0)), x.flip(1))  # the permuted eval sets too
    order = random_order(3000, 3, torch.Generator().manual_seed(1), non_identity=True)
    assert not (order == torch.arange(3)).all(1).any() and len(order.unique(dim=0)) == 5  # the 3! - 1 others
    with pytest.raises(ValueError, match="at least 2 points"):
        random_order(4, 1, None, non_identity=True)


def test_translate_points_copies_move_every_cloud():
    from kdtune.train.data.augment import random_translate_points

    x = torch.randn(50, 4, 3)
    moved = random_translate_points(x, torch.Generator().manual_seed(0), 0.5, non_identity=True)
    assert (moved != x).flatten(1).any(1).all()
    with pytest.raises(ValueError, match="max_shift must be > 0"):
        random_translate_points(x, torch.Generator().manual_seed(0), 0.0, non_identity=True)


class PixelLogits(nn.Module):
    """Logits ``c`` × the pixels: 9 classes on a 3 × 3 image."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return 2.0 * x.flatten(1), x.flatten(1)


def test_im_by_hand_on_centred_pixels_equals_kdtunes():
    """A lit centre pixel gives p = softmax(2 e_centre); any shift other than (0, 0) moves it to a neighbour,
    p' = softmax(2 e_neighbour), so ‖p − p′‖₁ = 2 (e² − 1) / (e² + 8) for every copy, and IM is that (an
    identity draw would add a 0 and lower IM, by 1/9 on average)."""
    n = 45
    x = _centre_pixels(n)
    split = Split(x, torch.zeros(n, dtype=torch.long))
    spec = DataSpec("digits", invariance=(("max_shift", 1), ("name", "translate"), ("non_identity", True)))
    task = task_for(DataInfo("image", (1, 3, 3), 9))
    row, _ = task.evaluate(PixelLogits(), split, 16, 4, None, "test", spec)
    e2 = float(np.exp(2.0))
    assert row["im"] == pytest.approx(2 * (e2 - 1) / (e2 + 8), rel=1e-9)


def test_im_by_hand_on_two_point_sets_equals_kdtunes():
    """Sets of 2 points, logits the two points' values: the copy is the swap, so example (a, b) contributes
    ‖softmax(a, b) − softmax(b, a)‖₁ = 2 tanh(|a − b| / 2): IM of (1, 0) and (0, 2) is tanh(1/2) + tanh(1)."""
    x = torch.tensor([[[1.0], [0.0]], [[0.0], [2.0]]])
    split = Split(x, torch.zeros(2, dtype=torch.long))
    spec = DataSpec("sets", invariance=(("name", "permute"), ("non_identity", True)))

    class Values(nn.Module):
        def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return inputs[..., 0], inputs[..., 0]

    task = task_for(DataInfo("set", (2, 1), 2))
    row, _ = task.evaluate(Values(), split, 16, 2, None, "test", spec)
    assert row["im"] == pytest.approx(np.tanh(0.5) + np.tanh(1.0), rel=1e-9)


def test_a_config_from_before_non_identity_keeps_its_id_its_definition_and_its_own_report_rows(tiny_raw, tmp_path):
    """A config stored by a kdtune that drew the identity too (no ``non_identity``) keeps its trial id and is
    evaluated as then; the report never averages its im with the new definition's in one cell."""
    from kdtune.labels import summary
    from tests.cells import aggregate

    tiny_raw["data"]["invariance"] = {"name": "translate", "max_shift": 1}
    cfg = next(iter(make_plan(_spec(tiny_raw, tmp_path)).trials.values())).config
    old_dict = cfg.to_dict()
    del old_dict["data"]["invariance"]["non_identity"]
    old = TrialConfig.from_dict(json.loads(json.dumps(old_dict)))
    assert old.id != cfg.id and old.to_dict() == old_dict  # its own id, read back as it was stored
    assert summary(cfg.to_dict())["invariance"] == "translate max_shift=1"
    assert summary(old.to_dict())["invariance"] == "translate max_shift=1 (identity drawn too)"
    x = _centre_pixels(900)
    copy_old = invariance_copy(Split(x, torch.zeros(900, dtype=torch.long)), "test", old.data).x
    assert 50 < int((copy_old == x).flatten(1).all(1).sum()) < 150  # identity drawn too, 1 in 9 (100 expected)

    rows = [
        {"student": "MLP", "teacher": "data", "eval_set": "test", "seed": s, "im": v, "status": "ok", "invariance": c}
        for s, (v, c) in enumerate([(1.0, "translate max_shift=1"), (0.9, "translate max_shift=1 (identity drawn too)")])
    ]
    agg = aggregate(pd.DataFrame(rows), "im")
    assert len(agg) == 2 and set(agg["n"]) == {1}  # two rows, one per definition
