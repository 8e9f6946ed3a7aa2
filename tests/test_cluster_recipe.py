"""The cluster recipe of docs/cluster.md, run as written: its head, node and driver blocks, on 127.0.0.1 with other
ports, folders and a home of the test's own (where ``ray get-auth-token --generate`` puts the token); and a
driver without the token, which gets one line naming the authentication failure and leaves no run folder."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.test_cluster import _free_port, _stop_node

pytestmark = pytest.mark.slow

CLUSTER_PAGE = (Path(__file__).resolve().parents[1] / "docs" / "cluster.md").read_text()
ROOT = Path(__file__).resolve().parents[1]


def recipe() -> dict[str, str]:
    """The recipe blocks of docs/cluster.md by name: head, node, driver."""
    return dict(re.findall(r"<!-- cluster recipe: (\w+) -->\n```bash\n(.*?)```", CLUSTER_PAGE, re.S))


def _place(script: str, **values: str) -> str:
    """The block with its ``export HEAD_IP=… PORT=… SHARED=…`` line set to ``values`` (the only change)."""
    lines = script.splitlines()
    (i,) = [k for k, line in enumerate(lines) if line.startswith("export HEAD_IP=")]
    lines[i] = "export " + " ".join(f"{k}={v}" for k, v in values.items())
    return "\n".join(lines) + "\n"


@dataclasses.dataclass
class Recipe:
    tmp: Path
    env: dict[str, str]  # what a shell on these machines has: a home, a temp folder, kdtune on PATH
    values: dict[str, str]  # HEAD_IP, PORT, SHARED
    nodes: list[subprocess.Popen[bytes]]


def _shell(script: str, env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """``bash -c script`` in its own process group: what it leaves running in the background stays in it."""
    with open(log, "wb") as f:
        return subprocess.Popen(
            ["bash", "-c", script], stdout=f, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )


@pytest.fixture(scope="module")
def started() -> Iterator[Recipe]:
    tmp = Path(tempfile.mkdtemp(prefix="kdr", dir="/tmp"))  # short: Ray's socket paths live under it
    for d in ("home", "bin", "t1", "t2", "shared/data", "sweeps"):
        (tmp / d).mkdir(parents=True)
    (tmp / "bin" / "kdtune").write_text(f'#!/bin/sh\nexec {sys.executable} -m kdtune "$@"\n')
    (tmp / "bin" / "kdtune").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "KDTUNE_"))}
    env |= {"HOME": str(tmp / "home"), "PYTHONPATH": str(ROOT)}
    env["PATH"] = f"{tmp / 'bin'}:{Path(sys.executable).parent}:{env.get('PATH', '')}"
    values = {"HEAD_IP": "127.0.0.1", "PORT": str(_free_port()), "SHARED": str(tmp / "shared")}
    r = Recipe(tmp, env, values, [])
    blocks = recipe()
    try:
        # each node its own Ray temp folder (RAY_TMPDIR), as on its own machine; one home, as on a shared one
        for name, temp in (("head", "t1"), ("node", "t2")):
            log = tmp / f"{name}.log"
            node = _shell(_place(blocks[name], **values), env | {"RAY_TMPDIR": str(tmp / temp)}, log, tmp)
            r.nodes.append(node)
            _wait_log(log)
        yield r
    finally:
        for node in reversed(r.nodes):
            _stop_node(node)
        shutil.rmtree(tmp, ignore_errors=True)


def _wait_log(log: Path, timeout: float = 180) -> None:
    """Wait until the ``ray start`` of a recipe block (its shell has returned; ray start runs on) says it started."""
    end = time.monotonic() + timeout
    while "Ray runtime started" not in log.read_text(errors="replace"):
        assert time.monotonic() < end, log.read_text(errors="replace")[-3000:]
        time.sleep(0.5)


def _driver(r: Recipe, tiny_raw: dict, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    (r.tmp / "sweeps" / "mnist_c.yaml").write_text(yaml.safe_dump(tiny_raw))
    shutil.rmtree(r.tmp / "shared" / "runs", ignore_errors=True)
    cmd = ["bash", "-c", recipe()["driver"]]
    return subprocess.run(cmd, env=env | r.values, cwd=r.tmp, capture_output=True, text=True, timeout=400)


def test_the_readme_recipe_runs_a_sweep_on_two_nodes(started, tiny_raw):
    head = (started.tmp / "head.log").read_text()
    token = (started.tmp / "home" / ".ray" / "auth_token").read_text().strip()
    assert token and token in head  # ray get-auth-token --generate made it and printed it
    proc = _driver(started, tiny_raw, started.env | {"RAY_TMPDIR": str(started.tmp / "t1")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    df = pd.read_parquet(started.tmp / "shared" / "runs" / "mnist_c" / "results.parquet")
    assert (df["status"] == "ok").all() and df["trial_id"].nunique() == 6


@pytest.mark.parametrize(
    ("auth", "why"),
    [
        ({}, "RAY_AUTH_MODE is not set"),
        ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64}, "the cluster refused this token"),
        ({"RAY_AUTH_MODE": "token"}, "no token found"),
    ],
)
def test_a_driver_without_the_token_is_told_so_in_one_line_and_makes_no_run_folder(started, tiny_raw, tmp_path, auth, why):
    sweep, out = tmp_path / "tiny.yaml", tmp_path / "run"
    sweep.write_text(yaml.safe_dump(tiny_raw))
    env = started.env | {"HOME": str(tmp_path), "RAY_TMPDIR": str(tmp_path)} | auth  # a home without ~/.ray/auth_token
    address = f"127.0.0.1:{started.values['PORT']}"
    cmd = [sys.executable, "-m", "kdtune", "run", str(sweep), "--out", str(out), "--address", address]
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - start
    print(f"{why}: {seconds:.1f} s")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"kdtune: error: cannot join the Ray cluster at {address}: authentication failed ({why}): set RAY_AUTH_MODE=token "
        "and the head's token (RAY_AUTH_TOKEN=<token>, or the file ~/.ray/auth_token or $RAY_AUTH_TOKEN_PATH; "
        "`ray get-auth-token` on the head prints it)"
    ]
    assert not out.exists()
    assert seconds < 15  # Ray alone retries for 20 s, then says "Failed to connect"
