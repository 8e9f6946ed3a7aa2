"""The JSON Schema of sweep files (``kdtune schema``, shipped as kdtune/sweep.schema.json): up to date with the
pydantic models, named by every shipped sweep, valid for every shipped sweep, and in agreement with kdtune on
mutations of the quickstart. And every malformed sweep file generated from the shipped ones is refused in one line."""

from __future__ import annotations

import copy
import functools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from kdtune.errors import KdtuneError
from kdtune.spec.sweepfile import load_yaml, parse_sweep, schema_text

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "kdtune" / "sweep.schema.json"
SWEEPS = sorted((REPO / "sweeps").glob("*.yaml"))
HEADER = "# yaml-language-server: $schema=../kdtune/sweep.schema.json\n"


@functools.cache
def validator() -> jsonschema.protocols.Validator:
    schema = load_yaml(SHIPPED.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_shipped_schema_is_what_kdtune_schema_prints():
    assert SHIPPED.read_text() == schema_text(), (
        "kdtune/sweep.schema.json is out of date: kdtune schema > kdtune/sweep.schema.json"
    )


def test_kdtune_schema_prints_it():
    proc = subprocess.run([sys.executable, "-m", "kdtune", "schema"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout == SHIPPED.read_text()


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_every_shipped_sweep_names_the_schema_and_validates_against_it(path):
    text = path.read_text()
    assert text.startswith(HEADER)
    errors = [e.message for e in validator().iter_errors(load_yaml(text))]
    assert not errors, errors


def test_every_field_has_a_description():
    def walk(node: Any, where: str) -> Iterator[str]:
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                if "description" not in sub:
                    yield f"{where}.{name}"
            for key, sub in node.items():
                yield from walk(sub, f"{where}.{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                yield from walk(sub, f"{where}[{i}]")

    assert not list(walk(load_yaml(SHIPPED.read_text()), "schema"))


# ---------------------------------------------------------------- mutations


def _set(raw: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    node = out
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return out


def mutations(raw: Any, path: tuple[Any, ...] = (), ranges: bool = False) -> Iterator[tuple[str, tuple[Any, ...], Any]]:
    """(what, where, value): an unknown key under every mapping, a string for every number, a mapping for every
    string; with ``ranges`` also numbers out of most ranges kdtune has (negative, zero, a fraction)."""
    if isinstance(raw, dict):
        yield "unknown key", (*path, "zz_unknown_key"), {"zz": 1}
        for k, v in raw.items():
            yield from mutations(v, (*path, k), ranges)
    elif isinstance(raw, list):
        for i, v in enumerate(raw):
            yield from mutations(v, (*path, i), ranges)
    elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
        yield "string for a number", path, "abc"
        if ranges:
            yield from ((f"number {v}", path, v) for v in (-1, 0, 1.5))  # (no huge ones: a model would be built of them)
    elif isinstance(raw, str):
        yield "mapping for a string", path, {"a": 1}
        if ranges:
            yield "number for a string", path, 3


def _refused_in_one_line(raw: dict[str, Any], source: str) -> bool:
    """Whether kdtune refuses ``raw``; a refusal of one wrong value must be one line naming the file (anything but a
    KdtuneError fails the test): a mapping of another shape (``{a: 1}`` for a pair) too, not one line per key."""
    try:
        parse_sweep(raw, source)
    except KdtuneError as e:
        lines = str(e).splitlines()
        one = len(lines) == 1 or (lines[0].endswith("got str 'x'") and lines[1].endswith("got str 'y'"))  # ["x", "y"]
        assert one and all(line.startswith(f"{source}: ") for line in lines), str(e)
        return True
    return False


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_malformed_sweeps_generated_from_the_shipped_ones_are_refused_in_one_line(path):
    raw = load_yaml(path.read_text())
    accepted = []
    for what, where, value in mutations(raw):
        if not _refused_in_one_line(_set(raw, where, value), path.name):
            accepted.append(f"{what} at {'.'.join(map(str, where))}")
    assert not accepted, accepted


def test_malformed_tune_sections_are_refused_in_one_line(tiny_raw):
    tune = {"metric": "accuracy", "seeds": 2, "sampler_seed": 0, "asha": {"grace_period": 1, "reduction_factor": 2},
            "space": {"MLP": {"lr": {"loguniform": [1.0e-3, 1.0e-1]}, "epochs": {"int": [2, 8], "step": 2},
                              "batch_size": {"categorical": [32, 64]}, "schedule.alpha": {"uniform": [0, 0.5]}},
                      "CNN -> MLP": {"temperature": {"uniform": [1, 8]}}}}  # fmt: skip
    tiny_raw["train"]["schedule"] = "cosine"
    raw = tiny_raw | {"tune": tune}
    assert not _refused_in_one_line(raw, "t.yaml")
    accepted = [
        where for what, where, value in mutations(tune, ("tune",)) if not _refused_in_one_line(_set(raw, where, value), "t.yaml")
    ]
    assert not accepted, accepted


def test_every_mistake_of_a_malformed_sweep_is_one_line_from_the_cli(tmp_path):
    """Issue 28: four mistakes took four rounds to fix; now each is one line of one refusal, in the file's order."""
    raw = load_yaml((REPO / "sweeps" / "quickstart.yaml").read_text())
    raw["tune"]["metric"] = {"a": 1}
    raw["grid"]["seeds"] = "abc"
    raw["train"]["lrr"] = 0.1
    raw["models"]["MLP"]["params"]["hiden"] = [3]
    p = tmp_path / "bad.yaml"
    p.write_text(HEADER + __import__("yaml").safe_dump(raw))
    proc = subprocess.run([sys.executable, "-m", "kdtune", "plan", str(p)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "pydantic" not in proc.stderr, proc.stderr
    assert [line.split(": ")[3] for line in proc.stderr.splitlines()] == [
        "models.MLP.params.hiden", "train.lrr", "grid.seeds", "tune.metric"
    ]  # fmt: skip
    assert all(line.startswith(f"kdtune: error: {p}: ") for line in proc.stderr.splitlines())
    assert "unknown parameter 'hiden' for this model; allowed: hidden, batch_norm" in proc.stderr and "http" not in proc.stderr


# Rules the schema cannot say (they relate fields to each other, or need the data's shapes): a mutation the
# schema accepts and kdtune refuses there is expected. grid.w_soft 0: the quickstart's w_hard is 0 too (no loss
# left); resources.cpu 0: its gpu is 0 too (a trial must ask for something).
KDTUNE_ONLY = ("grid.students", "grid.teachers", "models.", "tune.space.", "outputs.feature", "data.eval_sets", "grid.w_soft.0",
               "resources.cpu")  # fmt: skip


def test_the_schema_and_kdtune_agree_on_mutations_of_the_quickstart():
    raw = load_yaml((REPO / "sweeps" / "quickstart.yaml").read_text())
    disagree = []
    for what, where, value in mutations(raw, ranges=True):
        mutated = _set(raw, where, value)
        by_schema = not validator().is_valid(mutated)
        by_kdtune = _refused_in_one_line(mutated, "quickstart.yaml")
        field = ".".join(map(str, where))
        if by_schema != by_kdtune and not (by_kdtune and field.startswith(KDTUNE_ONLY)):
            disagree.append(f"{what} at {field}: schema {'refuses' if by_schema else 'accepts'}, kdtune "
                            f"{'refuses' if by_kdtune else 'accepts'}")  # fmt: skip
    assert not disagree, disagree
