"""Eval sets of the training split (``source: train``, or the eval set ``train``): scored as every eval set is,
for training-set accuracy and perplexity tables, and covered by the data fingerprint."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from kdtune.errors import SpecError
from kdtune.plan import make_plan
from kdtune.run.execute import InlineExecutor, execute
from kdtune.run.ledger import collect, write_sweep_record
from kdtune.rundir import METRICS, read_json, trial_dir
from kdtune.spec.sweepfile import parse_sweep
from kdtune.train.data import DataSpec, EvalSetSpec, data_fingerprint, load_data
from kdtune.train.data.corruptions import CORRUPTIONS
from kdtune.train.data.dataset import eval_seed
from kdtune.train.tasks import task_for
from kdtune.train.trainer import load_trained_model

CPU = torch.device("cpu")
SHIFTED = {"name": "train_shifted", "source": "train", "corruption": "translate", "shift": 2}


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x)[0].argmax(1) == y).double().mean().item()


def test_stored_accuracy_on_the_training_split_is_the_models_accuracy_recomputed_on_it(tiny_raw, tmp_path):
    raw = copy.deepcopy(tiny_raw)
    raw["data"]["eval_sets"] = ["test", "train", SHIFTED]
    raw["grid"] |= {"teachers": ["data"], "students": ["MLP"], "seeds": 1}
    spec = parse_sweep(raw, "t.yaml", output=tmp_path / "run")
    assert spec.data.eval_sets[1:] == (
        EvalSetSpec("train", "train"),
        EvalSetSpec("train_shifted", "train", "translate", (("shift", 2),)),
    )
    plan = make_plan(spec)
    write_sweep_record(plan)
    assert execute(plan, InlineExecutor(), log=lambda s: None) == {}
    (trial,) = plan.trials.values()
    data = load_data(spec.data, None)
    model = load_trained_model(spec.output, trial.id, data.info, CPU)
    stored = read_json(trial_dir(spec.output, trial.id) / METRICS)["eval"]
    assert stored["train"]["n"] == len(data.train) == len(data.train.y)
    assert stored["train"]["accuracy"] == pytest.approx(_accuracy(model, data.train.x, data.train.y), abs=1e-9)
    # the corrupted copy: the training images shifted by the eval set's own seeded generator, as test sets are
    gen = torch.Generator().manual_seed(eval_seed("train_shifted", spec.data.corruption_seed))
    shifted = CORRUPTIONS.get("translate")(data.train.x, generator=gen, shift=2)
    assert stored["train_shifted"]["accuracy"] == pytest.approx(_accuracy(model, shifted, data.train.y), abs=1e-9)
    assert stored["train_shifted"]["accuracy"] != stored["train"]["accuracy"]
    # and in the results table, as every eval set
    df = collect(plan)
    assert set(df["eval_set"].astype(str)) == {"val", "test", "train", "train_shifted"}


def test_the_fingerprint_covers_an_eval_set_of_the_training_split():
    base = DataSpec("digits", eval_sets=(EvalSetSpec("test"),))
    with_train = dataclasses.replace(base, eval_sets=(EvalSetSpec("test"), EvalSetSpec("train", "train")))
    shifted = dataclasses.replace(
        base, eval_sets=(EvalSetSpec("test"), EvalSetSpec("train", "train", "translate", (("shift", 2),)))
    )
    prints = {data_fingerprint(d, None) for d in (base, with_train, shifted)}
    assert len(prints) == 3
    bundle = load_data(with_train, None)
    assert bundle.evals["train"] is bundle.train  # the training split itself, not a copy (also on a device)
    moved = bundle.to("cpu")
    assert moved.evals["train"] is moved.train


def test_a_text_eval_set_of_the_training_split_is_the_training_sentences_encoded_for_scoring():
    params = (("train_size", 200), ("test_per_group", 10))
    spec = DataSpec("agreement_synthetic", params, eval_sets=(EvalSetSpec("test"), EvalSetSpec("seen", "train")))
    bundle = load_data(spec, None)
    seen, train = bundle.evals["seen"], bundle.train
    assert len(seen) == len(train) and sorted(seen.y.tolist()) == sorted(train.y.tolist())
    assert sorted(seen.x["lengths"].tolist()) == sorted(train.x["lengths"].tolist())  # type: ignore[index]
    task = task_for(bundle.info)
    assert set(task.scores(torch.zeros(len(seen), 2), seen)) >= {"accuracy", "nll"}


def test_an_unknown_source_gets_one_line_naming_the_allowed_ones(tiny_raw):
    raw = copy.deepcopy(tiny_raw)
    raw["data"]["eval_sets"] = ["test", {"name": "x", "source": "training"}]
    with pytest.raises(SpecError) as e:
        parse_sweep(raw, "t.yaml")
    assert e.value.field == "data.eval_sets[1].source" and "test, val, train" in e.value.message
    raw["data"]["eval_sets"] = ["trian"]
    with pytest.raises(SpecError, match="known: train, test, translated, scaled"):
        parse_sweep(raw, "t.yaml")
