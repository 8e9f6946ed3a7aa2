"""Command-line mistakes: a ``--set`` typo blames ``--set``, a folder is not a sweep file, and argparse
errors print the usage and one ``kdtune: error:`` line."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kdtune.errors import KdtuneError, SpecError
from kdtune.spec.sweepfile import load_sweep

REPO = Path(__file__).resolve().parents[1]


def kdtune(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kdtune", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize(
    "override,message",
    [
        ("trian.epochs=3", "--set: trian.epochs: unknown key 'trian'; allowed here: name, description, output, data"),
        ("train.lrr=1", "--set: train.lrr: unknown key 'lrr'; allowed here: epochs, batch_size"),
        ("grid.temprature=[2]", "--set: grid.temprature: unknown key 'temprature'; allowed here: students, teachers"),
        ("models.MLP.paramz.hidden=[3]", "--set: models.MLP.paramz.hidden: unknown key 'paramz'; allowed here: arch, params"),
    ],
)
def test_cli_set_typos_blame_set(override, message):
    proc = kdtune("plan", "sweeps/quickstart.yaml", "--set", override)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"kdtune: error: {message}"), proc.stderr


def test_errors_of_the_file_still_blame_the_file(tmp_path, tiny_raw):
    tiny_raw["grid"]["bogus"] = 1
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(tiny_raw))
    with pytest.raises(SpecError) as e:
        load_sweep(p, ["grid.seeds=3"])  # a parent of grid.bogus, but the file fails so alone
    assert str(e.value).startswith(f"{p}: grid.bogus: unknown key; allowed here")


def test_errors_that_only_set_causes_name_file_and_set(tmp_path, tiny_raw):
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(tiny_raw))
    with pytest.raises(SpecError) as e:
        load_sweep(p, ["models.MLPP.params.hidden=[3]"])  # a new model without arch
    assert str(e.value).startswith(f"{p} with --set: models.MLPP.arch: is required")
    with pytest.raises(SpecError) as e:
        load_sweep(p, ["models.MLP.params.hidden=[-3]"])  # the model the value builds fails
    assert str(e.value).startswith("--set: models.MLP.params: Trying to create tensor")


def test_cli_folder_is_not_a_sweep_file(tmp_path):
    proc = kdtune("run", "sweeps")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("kdtune: error: sweeps: is a folder; give a sweep file (e.g. sweeps/quickstart.yaml); ")
    assert "sweeps/mnist_c.yaml" in proc.stderr and "no such" not in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = kdtune("plan", "empty", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == "kdtune: error: empty: is a folder; give a sweep file (e.g. sweeps/quickstart.yaml)\n"


def test_folder_lists_at_most_eight_files(tmp_path):
    for i in range(11):
        (tmp_path / f"s{i:02d}.yaml").write_text("{}")
    with pytest.raises(KdtuneError) as e:
        load_sweep(tmp_path)
    assert f"{tmp_path / 's07.yaml'} and 3 more" in str(e.value) and "s08" not in str(e.value)


@pytest.mark.parametrize(
    "args,usage,error",
    [
        (
            (),
            "usage: kdtune [-h]",  # the command list (run,tune,…,study,…,schema) wraps onto the next line
            "the following arguments are required: command",
        ),
        (("runn",), "usage: kdtune [-h]", "argument command: invalid choice: 'runn'"),
        (("report", "--bogus", "x"), "usage: kdtune", "unrecognized arguments: --bogus"),
        (("report", "x", "--format", "html"), "usage: kdtune report [-h]", "argument --format: invalid choice: 'html'"),
        (("run",), "usage: kdtune run [-h]", "the following arguments are required: sweep"),
    ],
)
def test_cli_usage_errors_print_usage_and_one_error_line(args, usage, error):
    proc = kdtune(*args)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and proc.stdout == ""
    assert lines[0].startswith(usage) and lines[-1].startswith(f"kdtune: error: {error}")
    assert proc.stderr.count("kdtune: error:") == 1 and "kdtune: error: kdtune" not in proc.stderr


def test_every_mistake_at_once_each_blaming_its_author(tmp_path, tiny_raw):
    """Issue 28: four mistakes, one refusal listing them all in the file's order, one line each; a problem that
    --set wrote blames --set, one of the file alone blames the file."""
    tiny_raw["train"] |= {"lrr": 0.1, "epochs": "two"}
    tiny_raw["models"]["MLP"]["params"]["hiden"] = [3]
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(tiny_raw))
    with pytest.raises(SpecError) as e:
        load_sweep(p, ["grid.temperature=[0]", "train.lrr=0.2"])
    assert str(e.value).splitlines() == [
        f"{p}: models.MLP.params.hiden: unknown parameter 'hiden' for this model; allowed: hidden, batch_norm",
        f"{p}: train.epochs: must be an integer >= 1, got str 'two'",
        "--set: train.lrr: unknown key 'lrr'; allowed here: epochs, batch_size, optimizer, lr, weight_decay, dropout, "
        "label_smoothing, grad_clip, schedule, augment, select",
        "--set: grid.temperature[0]: must be a number > 0, got 0",
    ]
    assert [x.field for x in e.value.problems][:2] == ["models.MLP.params.hiden", "train.epochs"]


def test_mistakes_of_kdtune_own_rules_are_listed_together_too(tmp_path, tiny_raw):
    """Past the schema: an unknown eval set, a student that is no model and a trial asking for nothing, at once."""
    tiny_raw["data"]["eval_sets"] = ["test", "rotated"]
    tiny_raw["grid"]["students"] = ["GNN"]
    tiny_raw["resources"] = {"cpu": 0}
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(tiny_raw))
    proc = kdtune("plan", str(p), "--out", str(tmp_path / "run"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [line.split(": ")[3] for line in proc.stderr.splitlines()] == ["data.eval_sets[1]", "grid.students[0]", "resources"]
    assert all(line.startswith(f"kdtune: error: {p}: ") for line in proc.stderr.splitlines())


def test_more_mistakes_than_the_cap_are_counted():
    errors = SpecError.of([SpecError("s.yaml", f"train.x{i}", "unknown key") for i in range(SpecError.MAX + 3)])
    lines = str(errors).splitlines()
    assert len(lines) == SpecError.MAX + 1 and lines[-1] == "… and 3 more mistakes" and len(errors.problems) == SpecError.MAX + 3
