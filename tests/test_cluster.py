"""A real two-node Ray cluster on 127.0.0.1: trials land on both nodes, students find their teachers,
results equal a local run's; a node that does not see the run folder is refused before any trial."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from kdtune.plan import make_plan
from kdtune.run.execute import InlineExecutor, execute
from kdtune.run.ledger import collect
from kdtune.spec.sweepfile import parse_sweep
from tests.conftest import trainings

pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).parent / "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_node(args: list[str], temp_dir: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``ray start … --block`` in its own process group (so exactly its processes can be stopped); waits until it is up."""
    cmd = [RAY, "start", *args, "--num-cpus=1", "--node-ip-address=127.0.0.1", "--object-store-memory=80000000"]
    log = temp_dir.parent / f"{temp_dir.name}.log"
    with open(log, "wb") as f:
        node = subprocess.Popen(
            [*cmd, f"--temp-dir={temp_dir}", "--block"], stdout=f, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
    try:
        _wait_started(node, log)
    except BaseException:
        _stop_node(node)
        raise
    return node


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop_node(node: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM the node's process group, SIGKILL what is left after ``timeout``; wait until none is left."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 30)):
        if not _group_alive(node.pid):
            break
        os.killpg(node.pid, sig)
        end = time.monotonic() + wait
        while _group_alive(node.pid) and time.monotonic() < end:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.wait(timeout=0.5)
    assert not _group_alive(node.pid), f"processes of node group {node.pid} still running"


def _wait_started(node: subprocess.Popen[bytes], log: Path, timeout: float = 180) -> None:
    """Wait until ``ray start`` says the node's runtime started (it has joined the cluster)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if "Ray runtime started" in log.read_text(errors="replace"):
            return
        assert node.poll() is None, log.read_text(errors="replace")[-3000:]
        time.sleep(0.5)
    raise AssertionError(f"the Ray node logging to {log} did not start in {timeout:g} s")


@dataclasses.dataclass
class Cluster:
    """A head and a worker node started by the test; ``tmp`` holds their temp dirs and logs; ``env`` (with the
    cluster's own auth token) is what its nodes and drivers run with."""

    address: str
    tmp: Path
    env: dict[str, str]
    nodes: list[subprocess.Popen[bytes]]

    def add_node(self, name: str, **env: str) -> subprocess.Popen[bytes]:
        """Start one more node joining this cluster (``env``: added to its environment)."""
        (self.tmp / name).mkdir()
        node = _start_node([f"--address={self.address}"], self.tmp / name, self.env | env)
        self.nodes.append(node)
        return node


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Two Ray nodes on 127.0.0.1, one CPU each, each with its own temp dir; stopped whatever happens."""
    tmp = Path(tempfile.mkdtemp(prefix="kdc", dir="/tmp"))  # short: Ray's socket paths live under it
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": uuid.uuid4().hex}  # not ~/.ray/auth_token
    env.pop("KDTUNE_FAULT", None)
    c = Cluster(f"127.0.0.1:{port}", tmp, env, [])
    try:
        (tmp / "h").mkdir()
        head = ["--head", f"--port={port}", "--include-dashboard=false", '--resources={"head_slot": 1}']
        c.nodes.append(_start_node(head, tmp / "h", env))
        c.add_node("w")
        yield c
    finally:
        for node in reversed(c.nodes):
            _stop_node(node)
        shutil.rmtree(tmp, ignore_errors=True)


def _kdtune_run(sweep: Path, out: Path, cluster: Cluster) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "kdtune", "run", str(sweep), "--out", str(out), "--address", cluster.address, "--no-report"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=cluster.env)


def test_a_sweep_on_two_nodes_uses_both_and_matches_a_local_run(cluster, tiny_raw, tiny_spec, tmp_path):
    # one Tuner reuses its workers for every trial: with 2-epoch trials the head's worker could train them all
    # before the other node's has started, so the teachers train long enough for the second worker to join
    tiny_raw["train"]["epochs"] = tiny_raw["distill"]["epochs"] = 40
    tiny_spec = parse_sweep(tiny_raw, "tiny.yaml", output=tmp_path / "unused")
    sweep = tmp_path / "tiny.yaml"
    sweep.write_text(yaml.safe_dump(tiny_raw))
    proc = _kdtune_run(sweep, tmp_path / "run", cluster)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    df = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert (df["status"] == "ok").all()
    per_trial = df.drop_duplicates("trial_id")
    assert per_trial["node_id"].nunique() == 2, per_trial[["trial_id", "node_id"]]  # both nodes trained trials
    assert per_trial["host"].notna().all()
    students = per_trial[per_trial["teacher"] == "CNN"]
    assert len(students) == 2 and set(students["teacher_id"]) <= set(per_trial["trial_id"])
    status = subprocess.run([sys.executable, "-m", "kdtune", "status", str(tmp_path / "run")], capture_output=True, text=True)
    assert status.stdout.count("ran on: ") == 1 and status.stdout.count("node ") == 2, status.stdout

    local_spec = dataclasses.replace(tiny_spec, output=tmp_path / "local")
    plan = make_plan(local_spec)
    assert execute(plan, InlineExecutor(), log=lambda s: None) == {}
    local = collect(plan).sort_values(["trial_id", "eval_set"]).reset_index(drop=True)
    ours = df.sort_values(["trial_id", "eval_set"]).reset_index(drop=True)
    assert list(ours.trial_id) == list(local.trial_id) and list(ours.eval_set) == list(local.eval_set.astype(str))
    for col in ("accuracy", "nll", "ece", "agreement", "kl"):
        assert ours[col].fillna(-1).tolist() == pytest.approx(local[col].fillna(-1).tolist(), abs=1e-6)


def test_a_node_that_does_not_see_the_run_folder_is_refused_before_any_trial(cluster, tiny_raw, tmp_path):
    # a third node whose storage check looks for every path under another folder, as a node mounting elsewhere would
    node = cluster.add_node("v", KDTUNE_FAULT=f"view:{cluster.tmp / 'elsewhere'}")
    try:
        sweep = tmp_path / "tiny.yaml"
        sweep.write_text(yaml.safe_dump(tiny_raw))
        out = tmp_path / "run"
        proc = _kdtune_run(sweep, out, cluster)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
        (line,) = [s for s in proc.stderr.splitlines() if "cannot use node" in s]
        assert f"it does not see the run folder {out.resolve()} as this machine does (marker missing)" in line
        assert "(host " in line and "every node mounts at the same path" in line
        assert not (out / "trials").exists() or not any((out / "trials").iterdir())  # no trial started
        assert not list(out.glob(".kdtune-storage-*"))  # the marker is removed
    finally:
        _stop_node(node)
        cluster.nodes.remove(node)


def _node_processes(pid: int) -> dict[int, str]:
    """The processes in process group ``pid`` (a node's) and their descendants: pid → command line."""
    procs: dict[int, tuple[int, int, str]] = {}  # pid: (ppid, pgid, command line)
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            procs[int(proc.name)] = (int(fields[1]), int(fields[2]), cmdline)
    ours = {p for p, (_, pgid, _) in procs.items() if pgid == pid}
    while more := {p for p, (ppid, _, _) in procs.items() if ppid in ours and p not in ours}:
        ours |= more
    return {p: procs[p][2] for p in ours}


def _training_on(pid: int, boards: Path, seen: set[str]) -> bool:
    """Whether a trial is training on node ``pid``: one of its processes holds a TensorBoard event file under
    ``boards`` open, which a trial does from its first epoch to its last (a starting or idle actor does not)."""
    procs = _node_processes(pid)
    seen |= {cmd[:80] for cmd in procs.values()}
    for p in procs:
        with contextlib.suppress(OSError):
            if any(os.readlink(fd).startswith(str(boards)) for fd in Path(f"/proc/{p}/fd").iterdir()):
                return True
    return False


def test_a_worker_node_lost_mid_sweep_has_its_trials_retried_elsewhere(cluster, tiny_raw, tiny_spec, tmp_path):
    from tests.test_tensorboard import check_boards

    # a third node, lost while it trains a trial: its trials hang in their first epoch, so the kill lands mid-trial
    # however fast the others run (a trial on it could end between two looks on a loaded machine); elsewhere they train
    node = cluster.add_node("k", KDTUNE_FAULT="hang::1")
    tiny_raw["train"]["epochs"] = 40
    tiny_raw["grid"] |= {"students": ["MLP", "CNN"], "teachers": ["data"], "seeds": 3}
    tiny_raw["execution"] = {"max_failures": 2, "tensorboard": True}
    sweep, out = tmp_path / "tiny.yaml", tmp_path / "run"
    sweep.write_text(yaml.safe_dump(tiny_raw))
    cmd = [sys.executable, "-m", "kdtune", "run", str(sweep), "--out", str(out), "--address", cluster.address, "--no-report"]
    run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env)
    try:
        end = time.monotonic() + 180
        seen: set[str] = set()
        while not _training_on(node.pid, out / "tensorboard", seen):
            assert run.poll() is None and time.monotonic() < end, f"no trial ran on the third node: {seen}"
            time.sleep(0.1)
        os.killpg(node.pid, signal.SIGKILL)
        _stop_node(node)
        cluster.nodes.remove(node)
        stdout, stderr = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        if node in cluster.nodes:
            _stop_node(node)
            cluster.nodes.remove(node)
    assert run.returncode == 0, stdout + stderr
    assert "trying again" in stdout, stdout  # the lost trial failed and Ray Tune retried it
    df = pd.read_parquet(out / "results.parquet")
    assert (df["status"] == "ok").all() and df["trial_id"].nunique() == 6
    trained = trainings(out)
    assert sorted(trained) == sorted(df["trial_id"].unique())  # each trial committed once

    local_spec = parse_sweep(tiny_raw, "tiny.yaml", output=tmp_path / "local")
    plan = make_plan(local_spec)
    check_boards(out, plan)  # one event file per trial, the retried one's included
    assert execute(plan, InlineExecutor(), log=lambda s: None) == {}
    local = collect(plan).sort_values(["trial_id", "eval_set"]).reset_index(drop=True)
    ours = df.sort_values(["trial_id", "eval_set"]).reset_index(drop=True)
    assert list(ours.trial_id) == list(local.trial_id) and list(ours.eval_set) == list(local.eval_set.astype(str))
    for col in ("accuracy", "nll", "ece"):
        assert ours[col].fillna(-1).tolist() == pytest.approx(local[col].fillna(-1).tolist(), abs=1e-6)
