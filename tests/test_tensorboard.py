"""Per-trial TensorBoard curves (``execution.tensorboard`` / ``kdtune run --tensorboard``): one event file per
trial under RUN/tensorboard/<group>/<trial id>/, holding its metrics.json history; trial ids and results unchanged."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kdtune.plan import make_plan
from kdtune.run.execute import InlineExecutor, execute
from kdtune.rundir import trial_dir
from kdtune.spec.sweepfile import SpecError, parse_sweep

pytestmark = pytest.mark.slow


def read_scalars(path: Path) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} of an event file (TFRecord framing: 8-byte length, 4-byte crc, data, 4-byte crc)."""
    from tensorboardX.proto import event_pb2

    data, pos, out = path.read_bytes(), 0, {}
    while pos < len(data):
        (n,) = struct.unpack("<Q", data[pos : pos + 8])
        event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + n])
        pos += 12 + n + 4
        for v in event.summary.value:
            out.setdefault(v.tag, {})[event.step] = v.simple_value
    return out


def check_boards(run_dir: Path, plan) -> None:
    """Every trial of ``plan`` has exactly one event file whose scalars are its metrics.json history."""
    for g in plan.groups():
        for t in g.trials:
            files = list((run_dir / "tensorboard" / g.name / t.id).iterdir())
            assert len(files) == 1 and files[0].name.startswith("events.out.tfevents."), files
            history = json.loads((trial_dir(run_dir, t.id) / "metrics.json").read_text())["history"]
            scalars = read_scalars(files[0])
            assert {"train_loss", "val_accuracy", "val_nll", "lr", "val_ece"} <= set(scalars)
            assert set(scalars) == {k for k in history[0] if k != "epoch"}
            for key, by_step in scalars.items():
                assert by_step == pytest.approx({row["epoch"]: row[key] for row in history}, rel=1e-6, nan_ok=True), key


def test_tensorboard_curves_equal_the_history_and_leave_ids_and_results_unchanged(tiny_raw, tmp_path):
    plain = parse_sweep(tiny_raw, "tiny.yaml", output=tmp_path / "plain")
    boarded = parse_sweep(tiny_raw | {"execution": {"tensorboard": True}}, "tiny.yaml", output=tmp_path / "board")
    assert boarded.execution.tensorboard and not plain.execution.tensorboard
    p1, p2 = make_plan(plain), make_plan(boarded)
    assert list(p1.trials) == list(p2.trials)
    assert execute(p2, InlineExecutor(), log=lambda s: None) == {}
    check_boards(tmp_path / "board", p2)
    # results: a trial trained without curves gives the same metrics
    small = tiny_raw | {"grid": tiny_raw["grid"] | {"teachers": ["data"], "seeds": 1}}
    one = make_plan(parse_sweep(small, "tiny.yaml", output=tmp_path / "plain"))
    assert set(one.trials) < set(p2.trials)
    assert execute(one, InlineExecutor(), log=lambda s: None) == {}
    for tid in one.trials:
        a = json.loads((trial_dir(tmp_path / "plain", tid) / "metrics.json").read_text())
        b = json.loads((trial_dir(tmp_path / "board", tid) / "metrics.json").read_text())
        assert a["history"] == b["history"] and a["eval"] == b["eval"]
    assert not (tmp_path / "plain" / "tensorboard").exists()
    with pytest.raises(SpecError, match=r"execution\.tensorboard"):
        parse_sweep(tiny_raw | {"execution": {"tensorboard": 1}}, "tiny.yaml", output=tmp_path / "x")


def test_the_run_flag_writes_curves(tiny_raw, tmp_path):
    tiny_raw["grid"] |= {"teachers": ["data"], "seeds": 1}
    sweep = tmp_path / "tiny.yaml"
    sweep.write_text(yaml.safe_dump(tiny_raw))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "kdtune", "run", str(sweep), "--out", str(out), "--executor", "inline", "--tensorboard"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=None)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plan = make_plan(parse_sweep(tiny_raw, "tiny.yaml", output=out))
    check_boards(out, plan)
