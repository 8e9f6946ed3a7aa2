"""Performance barriers: the barrier formula, interpolation, BatchNorm recomputation and the analysis on the tiny sweep."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from kdtune.analysis import RunView, TrialView
from kdtune.analysis.barriers import (
    barrier_height,
    barrier_table,
    barrier_units,
    barriers,
    batch_norm_layers,
    choose_pairs,
    evaluate,
    grid_cells,
    interpolate_state,
    interpolation_curve,
    lambda_grid,
    pair_kind,
    recompute_batch_norm,
    teacher_order,
)
from kdtune.plan import make_plan
from kdtune.run.execute import InlineExecutor, execute
from kdtune.run.ledger import write_sweep_record
from kdtune.rundir import METRICS, read_json, trial_dir
from kdtune.spec.sweepfile import parse_sweep
from kdtune.train.models import build_model
from kdtune.train.tasks import task_for
from kdtune.train.trainer import load_trained_model
from tests.conftest import TINY

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The tiny sweep, trained once: CNN (data) and MLP (data) ×2 seeds, MLP ← CNN ×2 seeds."""
    spec = parse_sweep(copy.deepcopy(TINY), "t.yaml", output=tmp_path_factory.mktemp("barriers") / "run")
    plan = make_plan(spec)
    write_sweep_record(plan)
    assert execute(plan, InlineExecutor(), log=lambda s: None) == {}
    return spec.output


@pytest.fixture(scope="module")
def view(run):
    return RunView(run)


def _trials(view, group):
    return sorted(view.groups()[group], key=lambda t: t.seed)


def _loaded(view, trial):
    data = view.data(trial)
    return data, task_for(data.info), load_trained_model(view.run_dir, trial.id, data.info, CPU)


# --- the barrier formula on hand-made curves -----------------------------------------------------------------------


def test_barrier_of_a_bump_is_its_height_above_the_chord():
    assert barrier_height([0, 0.5, 1], [1, 3, 1]) == pytest.approx(2.0)
    # chord at λ = .25: .25·2 + .75·1 = 1.25, so the rise is 3 − 1.25
    assert barrier_height([0, 0.25, 1], [1, 3, 2]) == pytest.approx(1.75)


def test_linear_and_convex_curves_have_no_barrier():
    lam = np.linspace(0, 1, 11)
    assert barrier_height(lam, 2 + 3 * lam) == pytest.approx(0.0, abs=1e-12)
    assert barrier_height(lam, (lam - 0.5) ** 2) == pytest.approx(0.0, abs=1e-12)


def test_barrier_needs_both_ends_on_the_grid():
    with pytest.raises(ValueError, match="must contain 1"):
        barrier_height([0, 0.5], [1, 2])


def test_lambda_grid_is_25_points_from_0_to_1():
    grid = lambda_grid()
    assert len(grid) == 25 and grid[0] == 0 and grid[-1] == 1 and 0.5 in grid


# --- interpolation and pairs ---------------------------------------------------------------------------------------


def test_interpolate_state_is_the_convex_combination():
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(7)}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(2)}
    mid = interpolate_state(a, b, 0.25)
    assert torch.allclose(mid["w"], 0.25 * a["w"] + 0.75 * b["w"])
    assert int(mid["n"]) == 2  # integer buffers from the nearer end (λ < .5: θ₂)
    assert int(interpolate_state(a, b, 0.75)["n"]) == 7
    assert torch.equal(interpolate_state(a, b, 1.0)["w"], a["w"]) and torch.equal(interpolate_state(a, b, 0.0)["w"], b["w"])
    with pytest.raises(ValueError, match="shapes"):
        interpolate_state(a, {"w": torch.zeros(3), "n": torch.tensor(0)}, 0.5)


def test_pair_kinds_follow_figure_9():
    assert pair_kind("data", "data") == "independent"
    assert pair_kind("CNN", "CNN") == "same teacher"
    assert pair_kind("CNN", "MLP") == "different teachers"
    assert pair_kind("CNN", "data") == pair_kind("data", "MLP") == "student vs independent"


def _fake(student, teacher, seed):
    return TrialView(f"{student}-{teacher}-{seed}", student, teacher, seed, None)


def test_grid_puts_data_then_self_then_other_teachers_in_the_lower_triangle():
    trials = [_fake("MLP", t, s) for t in ("CNN", "MLP", "data") for s in range(3)]
    assert teacher_order(trials) == ["data", "MLP", "CNN"]
    cells = grid_cells(trials, max_pairs=4)
    assert [(c.teacher1, c.teacher2) for c in cells] == [
        ("data", "data"), ("MLP", "data"), ("MLP", "MLP"), ("CNN", "data"), ("CNN", "MLP"), ("CNN", "CNN"),
    ]  # fmt: skip
    for c in cells:
        same = c.teacher1 == c.teacher2
        assert c.available == (3 if same else 9)  # 3 seeds: C(3, 2) within a group, 3 × 3 across
        assert len(c.pairs) == min(4, c.available)
        assert all(a.teacher == c.teacher1 and b.teacher == c.teacher2 and a.id != b.id for a, b in c.pairs)


def _student(teacher, seed):
    config = SimpleNamespace(arch="mlp", params=(), seed=seed, loss=SimpleNamespace(distills=teacher != "data"))
    return TrialView(f"MLP-{teacher}-{seed}", "MLP", teacher, seed, config)


def test_pairs_that_share_their_initialisation_are_never_averaged_with_pairs_that_do_not():
    # students of seed s draw one initialisation whatever their teacher: MLP ← CNN s0 and MLP ← MLP s0 start alike
    trials = [_student(t, s) for t in ("data", "MLP", "CNN") for s in range(3)]
    cells = grid_cells(trials, max_pairs=10)
    different = [c for c in cells if (c.teacher1, c.teacher2) == ("CNN", "MLP")]
    assert [c.same_init for c in different] == [False, True]
    apart, shared = different
    assert shared.available == 3 and all(a.seed == b.seed for a, b in shared.pairs)
    assert apart.available == 6 and all(a.seed != b.seed for a, b in apart.pairs)
    assert all(c.kind == "different teachers" for c in different)
    # a student and a model from data never share their initialisation: one cell each
    assert [c.same_init for c in cells if (c.teacher1, c.teacher2) == ("CNN", "data")] == [False]
    pairs = _pairs(cells, lambda c, a, b: 0.0 if c.same_init else 1.0)
    table = barrier_table({"MLP": cells}, pairs)
    assert table.loc[("MLP", "CNN", "MLP", "yes"), "barrier height"] == "0.000 ± 0.000 (3)"  # 3 models of model 1
    assert table.loc[("MLP", "CNN", "MLP", "no"), "barrier height"] == "1.000 ± 0.000 (3)"  # 6 pairs of 3 models


def _pairs(cells, barrier):
    """pairs.csv of made-up pairs: ``barrier(cell, model 1, model 2)`` each, accuracies fixed."""
    return pd.DataFrame(
        [{"model": "MLP", "teacher1": c.teacher1, "teacher2": c.teacher2, "same_init": c.same_init,
          "trial1": a.id, "trial2": b.id, "seed1": a.seed, "seed2": b.seed,
          "barrier": barrier(c, a, b), "accuracy_mid": 0.9, "accuracy_ends": 0.95}
         for c in cells for a, b in c.pairs]
    )  # fmt: skip


# four models from data (seeds 0-3) and two students of CNN (seeds 0, 1): made-up barriers of their pairs
WITHIN = {(0, 1): 0.9, (0, 2): 0.8, (0, 3): 0.7, (1, 2): 0.6, (1, 3): 0.5, (2, 3): 0.4}
ACROSS = {(0, 0): 0.3, (0, 1): 0.5, (0, 2): 0.1, (0, 3): 0.3, (1, 0): 0.4, (1, 1): 0.6, (1, 2): 0.5, (1, 3): 0.5}


def test_barrier_table_is_over_models_each_models_pairs_averaged_first():
    trials = [_student("data", s) for s in range(4)] + [_student("CNN", s) for s in range(2)]
    cells = grid_cells(trials, max_pairs=10)
    pairs = _pairs(cells, lambda c, a, b: (WITHIN if c.teacher2 == c.teacher1 else ACROSS)[(a.seed, b.seed)])
    table = barrier_table({"MLP": cells}, pairs)
    # data × data: each model's 3 pairs averaged: 0.8, 2/3, 0.6, 1.6/3 → 0.650, std (ddof 1) 0.114, n = 4 models
    # (over the 6 pairs it would be 0.650 ± 0.187 (6))
    assert table.loc[("MLP", "data", "data", "no"), "barrier height"] == "0.650 ± 0.114 (4)"
    assert table.loc[("MLP", "data", "data", "no"), "pairs"] == "6 of 6"
    # CNN × data, units the students (model 1): s0 (0.3, 0.5, 0.1, 0.3) → 0.3, s1 (0.4, 0.6, 0.5, 0.5) → 0.5
    assert table.loc[("MLP", "CNN", "data", "no"), "barrier height"] == "0.400 ± 0.141 (2)"
    assert table.loc[("MLP", "CNN", "data", "no"), "accuracy at λ = 0.5"] == "0.900 ± 0.000 (2)"
    # CNN × CNN: one pair, which counts for both its models (within one teacher)
    assert table.loc[("MLP", "CNN", "CNN", "no"), "barrier height"] == "0.900 ± 0.000 (2)"
    units = barrier_units({"MLP": cells}, pairs)
    within = units[(units["teacher1"] == "data") & (units["teacher2"] == "data")]
    assert within["seed"].tolist() == [0, 1, 2, 3] and within["pairs"].tolist() == [3, 3, 3, 3]
    assert within["barrier"].tolist() == pytest.approx([0.8, 2 / 3, 0.6, 1.6 / 3])
    across = units[(units["teacher1"] == "CNN") & (units["teacher2"] == "data")]
    assert across["trial"].tolist() == ["MLP-CNN-0", "MLP-CNN-1"] and across["pairs"].tolist() == [4, 4]


def test_pair_choice_is_deterministic_and_limited():
    pairs = [(_fake("MLP", "CNN", i), _fake("MLP", "data", j)) for i in range(4) for j in range(4)]
    chosen = choose_pairs(pairs, 6, "CNN|data")
    assert len(chosen) == 6 and len(set(chosen)) == 6
    assert chosen == choose_pairs(list(reversed(pairs)), 6, "CNN|data")
    assert choose_pairs(pairs[:3], 6) == sorted(pairs[:3], key=lambda p: (p[0].seed, p[1].seed))


# --- BatchNorm recomputation ---------------------------------------------------------------------------------------


def test_batch_norm_recomputation_changes_statistics_not_weights(view):
    data, task, model = _loaded(view, _trials(view, "CNN (data)")[0])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recompute_batch_norm(model, task, data.train, batch_size=256)
    after = model.state_dict()
    params = {name for name, _ in model.named_parameters()}
    for key in params:
        assert torch.equal(before[key], after[key]), key
    stats = [k for k in before if k.endswith(("running_mean", "running_var"))]
    assert stats and all(not torch.equal(before[k], after[k]) for k in stats)
    assert len(data.train) % 256 != 1  # else the last row joins the batch before it
    n_batches = -(-len(data.train) // 256)
    assert all(int(m.num_batches_tracked) == n_batches for m in batch_norm_layers(model))
    assert all(m.momentum == 0.1 for m in batch_norm_layers(model)) and not model.training


def test_one_batch_gives_the_training_sets_mean_and_unbiased_variance(view):
    data, task, model = _loaded(view, _trials(view, "CNN (data)")[0])
    recompute_batch_norm(model, task, data.train, batch_size=len(data.train))
    with torch.no_grad():
        h = model.conv1(data.train.x)  # what norm1 normalises
    mean = h.mean(dim=(0, 2, 3))
    var = h.transpose(0, 1).flatten(1).var(dim=1, unbiased=True)
    torch.testing.assert_close(model.norm1.running_mean, mean, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model.norm1.running_var, var, rtol=1e-4, atol=1e-5)


def test_dropout_does_not_reach_the_recomputed_statistics(view):
    trial = _trials(view, "CNN (data)")[0]
    data, task, trained = _loaded(view, trial)
    model = build_model(trial.arch, data.info, 0.5, dict(trial.config.params))
    model.load_state_dict(trained.state_dict())
    runs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        recompute_batch_norm(model, task, data.train, batch_size=256)
        runs.append({k: v.clone() for k, v in model.state_dict().items()})
    for key in runs[0]:
        assert torch.equal(runs[0][key], runs[1][key]), key


# --- curves against direct evaluations -----------------------------------------------------------------------------


def test_a_checkpoint_with_itself_has_a_flat_curve_and_no_barrier(view):
    data, task, model = _loaded(view, _trials(view, "CNN (data)")[0])
    theta = {k: v.clone() for k, v in model.state_dict().items()}
    curve = interpolation_curve(model, theta, theta, task, data.train, data.evals["test"], lambda_grid(5))
    assert np.allclose(curve["loss"], curve["loss"].iloc[0], rtol=1e-5, atol=1e-7)
    assert barrier_height(curve["lam"], curve["loss"]) == pytest.approx(0.0, abs=1e-5)


def test_ends_of_a_batch_norm_pair_equal_direct_evaluations_with_recomputed_statistics(view):
    t1, t2 = _trials(view, "CNN (data)")
    data, task, m1 = _loaded(view, t1)
    m2 = _loaded(view, t2)[2]
    theta1, theta2 = ({k: v.clone() for k, v in m.state_dict().items()} for m in (m1, m2))
    curve = interpolation_curve(m1, theta1, theta2, task, data.train, data.evals["test"], [0.0, 0.5, 1.0])
    for lam, trial in ((1.0, t1), (0.0, t2)):
        direct = _loaded(view, trial)[2]
        recompute_batch_norm(direct, task, data.train)
        loss, acc = evaluate(direct, task, data.evals["test"])
        row = curve[curve["lam"] == lam].iloc[0]
        assert row["loss"] == pytest.approx(loss, rel=1e-6) and row["accuracy"] == pytest.approx(acc)


def test_ends_of_a_pair_without_batch_norm_equal_the_stored_test_nll(view):
    t1, t2 = _trials(view, "MLP (data)")
    data, task, m1 = _loaded(view, t1)
    assert not batch_norm_layers(m1)
    theta1 = {k: v.clone() for k, v in m1.state_dict().items()}
    theta2 = {k: v.clone() for k, v in _loaded(view, t2)[2].state_dict().items()}
    curve = interpolation_curve(m1, theta1, theta2, task, data.train, data.evals["test"], [0.0, 1.0])
    for lam, trial in ((1.0, t1), (0.0, t2)):
        stored = read_json(trial_dir(view.run_dir, trial.id) / METRICS)["eval"]["test"]
        row = curve[curve["lam"] == lam].iloc[0]
        assert row["loss"] == pytest.approx(stored["nll"], rel=1e-6)
        assert row["accuracy"] == pytest.approx(stored["accuracy"])


# --- the analysis --------------------------------------------------------------------------------------------------


def test_analysis_writes_one_figure_per_architecture_and_the_table(view, tmp_path):
    out = barriers(view, tmp_path, num_lambdas=5, max_pairs=2)
    assert not out.skipped
    assert sorted(p.name for p in out.figures) == ["barriers_CNN.png", "barriers_MLP.png"]
    assert all(p.is_file() and p.with_suffix(".pdf").is_file() for p in out.figures)
    (title, table), = out.tables  # fmt: skip
    assert "test" in title and list(table.index.names) == ["model", "teacher of model 1", "teacher of model 2", "same init"]
    assert list(table.index) == [
        ("CNN", "data", "data", "no"), ("MLP", "data", "data", "no"), ("MLP", "CNN", "data", "no"), ("MLP", "CNN", "CNN", "no"),
    ]  # fmt: skip
    assert table.loc[("MLP", "CNN", "data", "no"), "pairs"] == "2 of 4"  # limited to 2 of the 2 × 2 pairs
    assert table.loc[("MLP", "CNN", "data", "no"), "kind"] == "student vs independent"
    curves, pairs = pd.read_csv(tmp_path / "curves.csv"), pd.read_csv(tmp_path / "pairs.csv")
    assert len(pairs) == 1 + 1 + 2 + 1 and len(curves) == 5 * len(pairs)
    for _, p in pairs.iterrows():
        c = curves[(curves["trial1"] == p["trial1"]) & (curves["trial2"] == p["trial2"])]
        assert p["barrier"] == pytest.approx(barrier_height(c["lam"], c["loss"]))
        assert p["accuracy_mid"] == pytest.approx(c.loc[c["lam"] == 0.5, "accuracy"].iloc[0])
    # students of the same seed share their initialisation; a student and an independent model never do
    assert not pairs.loc[pairs["kind"] == "student vs independent", "same_init"].any()
    assert any("test" in n for n in out.notes) and any("at most 2 pairs" in n.lower() for n in out.notes)
    assert (tmp_path / "barriers.md").is_file() and (tmp_path / "barriers.tex").is_file()
    units = pd.read_csv(tmp_path / "units.csv")
    assert set(units["trial"]) <= set(pairs["trial1"]) | set(pairs["trial2"]) and "n models" in title
    assert any(n.startswith("Units: models") and "ddof 1" in n for n in out.notes)


def test_analysis_restores_the_thread_count(view, tmp_path):
    before = torch.get_num_threads()
    barriers(RunView(view.run_dir, where={"student": ["CNN"]}), tmp_path, num_lambdas=3, threads=1)
    assert torch.get_num_threads() == before


def test_analysis_skips_with_one_line_when_no_architecture_has_two_checkpoints(run, tmp_path):
    view = RunView(run, where={"seed": ["0"], "teacher": ["data"]})  # one CNN and one MLP
    out = barriers(view, tmp_path)
    assert len(out.skipped) == 1 and "two" in out.skipped[0]
    assert not out.figures and not out.tables
