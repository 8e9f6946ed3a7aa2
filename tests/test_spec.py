"""Sweep files: valid ones parse; every malformed one stops with one line naming file and field."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kdtune.errors import SpecError
from kdtune.spec.sweepfile import load_sweep, parse_sweep

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((REPO / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_sweeps_validate(path):
    spec = load_sweep(path)
    assert spec.grid.pairs and spec.models


def test_layers_of_training_settings(tiny_spec):
    from kdtune.spec.sweepfile import resolve_train

    mlp = tiny_spec.models["MLP"]
    assert resolve_train(tiny_spec, mlp).schedule.name == "constant"
    student = resolve_train(tiny_spec, mlp, student=True, overrides=(("lr", 0.5),))
    assert student.schedule.name == "cosine_restarts" and student.lr == 0.5 and student.epochs == 2


BAD = [
    ({"grid": {"students": ["MLP"], "bogus": 1}}, "grid.bogus: unknown key"),
    ({"grid": {"students": []}}, "grid.students: must not be empty"),
    ({"grid": {"students": ["RNN"]}}, "grid.students[0]: must be one of CNN, MLP; got 'RNN'"),
    ({"grid": {"students": ["MLP"], "teachers": ["data", "GPT"]}}, "grid.teachers[1]: must be one of data, self, CNN, MLP"),
    ({"grid": {"students": ["MLP"], "temperature": [4, -1]}}, "grid.temperature[1]: must be a number > 0, got -1"),
    ({"grid": {"students": ["MLP"], "teachers": ["CNN"], "w_hard": [0], "w_soft": [0]}}, "grid: w_hard = 0 and w_soft = 0"),
    ({"grid": {"students": ["MLP"], "seeds": [1, 1]}}, "grid.seeds: seeds must be distinct"),
    ({"train": {"epochs": "ten"}}, "train.epochs: must be an integer >= 1, got str 'ten'"),
    ({"train": {"epochs": 0}}, "train.epochs: must be an integer >= 1, got int 0"),
    ({"train": {"dropout": 1.5}}, "train.dropout: must be a number >= 0 and < 1, got 1.5"),
    ({"train": {"schedule": {"name": "linear"}}}, "train.schedule: unknown schedule 'linear'; known: constant, cosine"),
    ({"train": {"schedule": {"name": "exponential", "rate": 0.9}}}, "train.schedule.rate: unknown parameter 'rate'"),
    ({"grid": {"students": ["MLP"], "temperature": [float("inf")]}}, "grid.temperature[0]: must be a finite number, got inf"),
    (
        {"train": {"schedule": {"name": "cosine_restarts", "t_mul": 0.5}}},
        "train.schedule.t_mul: must be a number >= 1, got 0.5",
    ),
    ({"models": {"MLP": {"arch": "mlp", "params": {"hidden": [-5]}}}}, "models.MLP.params: Trying to create tensor with"),
    (
        {"models": {"CNN": {"arch": "cnn", "params": {"channels": [4, 4, 8], "pool": 20}}}},
        "models.CNN.params: Given input size: (4x12x12). Calculated output size: (4x0x0). Output size is too small",
    ),
    ({"train": {"optimizer": "lbfgs"}}, "train.optimizer: unknown optimizer 'lbfgs'; known: adam, adamw, sgd"),
    (
        {"models": {"MLP": {"arch": "transformer9"}}},
        "models.MLP.arch: unknown model 'transformer9'; known: cnn, deepsets_equiv, deepsets_inv, dgcnn, lstm",
    ),
    ({"models": {"MLP": {"arch": "mlp", "params": {"width": 3}}}}, "models.MLP.params.width: unknown parameter 'width'"),
    ({"models": {"CNN": {"arch": "cnn", "params": {"channels": [4, 4]}}}}, "models.CNN.params: channels must list 3 widths"),
    ({"models": {"data": {"arch": "mlp"}}}, "models.data: model labels must"),
    (
        {"data": {"name": "cifar"}},
        "data.name: unknown data set 'cifar'; known: agreement_synthetic, digits, jets_hls4ml, linzen_simple, linzen_tsv, "
        "mnist, modelnet40, particle_sets, shapes",
    ),
    ({"data": {"name": "digits", "eval_sets": ["rotated"]}}, "data.eval_sets[0]: unknown eval set 'rotated' for digits"),
    ({"data": {"name": "digits", "val_size": 1.5}}, "data.val_size: must be a fraction in (0, 1) or a count >= 1, got 1.5"),
    ({"data": {"name": "digits", "params": {"pad": "x"}}}, "data.params.pad: must be of the type of its default 2"),
    ({"resources": {"cpu": -1}}, "resources.cpu: must be a number >= 0, got -1"),
    ({"execution": {"seeds_per_trial": 0}}, "execution.seeds_per_trial: must be an integer >= 1"),
    ({"extra_section": {}}, "extra_section: unknown key; allowed here: name, description"),
]


@pytest.mark.parametrize("patch,message", BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_malformed_sweeps_name_the_file_and_field(tiny_raw, patch, message):
    for key, value in patch.items():
        if key == "models":
            tiny_raw["models"] = dict(tiny_raw["models"]) | value
        elif key in ("grid", "train") and key in tiny_raw:
            tiny_raw[key] = {k: v for k, v in tiny_raw[key].items() if key != "grid" or k not in ("students", "teachers")} | value
        else:
            tiny_raw[key] = value
    with pytest.raises(SpecError) as e:
        parse_sweep(tiny_raw, "sweeps/bad.yaml")
    text = str(e.value)
    assert text.startswith("sweeps/bad.yaml: ") and message in text and "\n" not in text


def test_missing_required_sections(tiny_raw):
    del tiny_raw["grid"]
    with pytest.raises(SpecError, match="grid: is required"):
        parse_sweep(tiny_raw, "s.yaml")


def test_yaml_syntax_error_names_line(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("data:\n  name: digits\n grid: [\n")
    with pytest.raises(SpecError, match=r"broken.yaml: not valid YAML at line \d+, column \d+"):
        load_sweep(p)


def test_set_overrides_apply_before_validation(tmp_path, tiny_raw):
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(tiny_raw))
    spec = load_sweep(p, ["train.epochs=5", "grid.temperature=[1, 2]", "models.MLP.params.hidden=[8]"])
    assert dict(spec.train)["epochs"] == 5 and spec.grid.temperature == (1.0, 2.0)
    assert dict(spec.models["MLP"].params)["hidden"] == (8,)
    with pytest.raises(SpecError, match=r"--set: train\.epochs: must be an integer"):
        load_sweep(p, ["train.epochs=-2"])
    with pytest.raises(SpecError, match="--set: nonsense: expected KEY=VALUE"):
        load_sweep(p, ["nonsense"])


def test_set_null_removes_a_field(tmp_path, tiny_raw):
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(tiny_raw))
    with pytest.raises(SpecError, match="use either pairs or students × teachers"):
        load_sweep(p, ["grid.pairs=['CNN -> MLP']"])
    spec = load_sweep(p, ["grid.students=null", "grid.teachers=null", "grid.pairs=['CNN -> MLP']", "train.lr=null"])
    assert spec.grid.pairs == (("CNN", "MLP"),)
    assert "lr" not in dict(spec.train) and dict(spec.train)["epochs"] == 2


def test_yaml_tags_are_not_executed(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("data: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_sweep(p)


def test_cli_prints_one_line_and_exits_2_on_a_bad_sweep(tmp_path, tiny_raw, kdtune_run):
    tiny_raw["grid"]["temperature"] = [-5]
    p, proc = kdtune_run(tiny_raw, "bad.yaml")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"kdtune: error: {p}: grid.temperature[0]: must be a number > 0, got -5")
    assert not (tmp_path / "run").exists()  # nothing started


def test_cli_rejects_unknown_flags_with_the_usage_and_one_error_line():
    proc = subprocess.run([sys.executable, "-m", "kdtune", "report", "x", "--format", "html"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("usage: kdtune report ")
    assert proc.stderr.splitlines()[-1].startswith("kdtune: error: argument --format: invalid choice: 'html'")
    assert proc.stderr.count("error") == 1


def test_cli_checks_the_data_split_before_any_work(tmp_path, tiny_raw, kdtune_run):
    tiny_raw["data"]["val_size"] = 5000  # digits has 1,797 images
    p, proc = kdtune_run(tiny_raw, "big_val.yaml")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"kdtune: error: {p}: data: val_size 5000 leaves no training")
    assert not (tmp_path / "run").exists()
