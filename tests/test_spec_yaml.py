"""YAML 1.2 numbers: ``3e-4`` is a number in sweep files, in ``--set`` values and in recorded sweeps."""

import math
import subprocess
import sys

import pytest
import yaml

from kdtune.errors import SpecError
from kdtune.spec.sweepfile import load_sweep
from kdtune.yamlio import dump_yaml, load_yaml


@pytest.mark.parametrize(
    "text,value",
    [("3e-4", 0.0003), ("1e5", 1e5), ("-2E-3", -0.002), ("+1.5", 1.5), (".5", 0.5), ("-.5", -0.5), ("5.", 5.0),
     ("1.0e-4", 1e-4), ("12", 12), ("-7", -7), ("1_000", 1000)],
)  # fmt: skip
def test_numbers_yaml_1_2_reads(text, value):
    got = load_yaml(f"x: {text}")["x"]
    assert got == value and type(got) is type(value)


def test_special_floats_quoted_strings_and_words():
    assert math.isinf(load_yaml("x: .inf")["x"]) and load_yaml("x: -.inf")["x"] < 0 and math.isnan(load_yaml("x: .nan")["x"])
    assert load_yaml("x: '3e-4'")["x"] == "3e-4" and load_yaml('x: "1e5"')["x"] == "1e5"
    for word in ("e5", "3e", "1e-", "1.2.3", "3e-4x", "0x", "e-4"):
        assert load_yaml(f"x: {word}")["x"] == word


def test_still_safe():
    with pytest.raises(yaml.YAMLError):
        load_yaml("x: !!python/object/apply:os.system ['echo hacked']")


def test_dump_quotes_strings_that_read_as_numbers():
    data = {"lr": 3e-4, "note": "3e-4", "steps": 100000, "tiny": 1e-5}
    text = dump_yaml(data)
    assert load_yaml(text) == data and list(load_yaml(text)) == list(data)


def test_sweep_file_with_exponent_lr(tmp_path, tiny_raw):
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(tiny_raw).replace("lr: 0.01", "lr: 3e-4"))
    assert "lr: 3e-4" in p.read_text()
    assert dict(load_sweep(p).train)["lr"] == 0.0003


def test_set_exponent_lr(tmp_path, tiny_raw):
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(tiny_raw))
    assert dict(load_sweep(p, ["train.lr=3e-4", "grid.temperature=[1e1, 2.5E0]"]).train)["lr"] == 0.0003
    assert load_sweep(p, ["grid.temperature=[1e1, 2.5E0]"]).grid.temperature == (10.0, 2.5)
    with pytest.raises(SpecError, match=r"--set: train\.lr: must be a number > 0, got str '3e-4'"):
        load_sweep(p, ["train.lr='3e-4'"])  # quoted: a string, as in YAML


def test_cli_set_exponent_lr(tmp_path, tiny_raw):
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(tiny_raw))
    cmd = [sys.executable, "-m", "kdtune", "plan", str(p), "--out", str(tmp_path / "run"), "--set", "train.lr=3e-4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("sweep tiny: ") and "error" not in proc.stderr
