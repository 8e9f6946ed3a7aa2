"""Ctrl-C during ``kdtune run``, as a terminal sends it: SIGINT to the whole foreground process group.

The MLP teachers train 2 epochs, the CNN teachers thousands, so Ctrl-C lands in stage 1 after the MLPs
finished and while a CNN trains.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow
HINT = "kdtune: interrupted; 2 of 6 trials finished and are kept. Resume with the same command:"


def _children() -> dict[int, list[int]]:
    """Every process's children, from /proc."""
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            out.setdefault(ppid, []).append(int(entry))
    return out


def _descendants(pid: int) -> list[int]:
    tree, todo, out = _children(), [pid], []
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _names(pids: list[int]) -> list[str]:
    out = []
    for pid in pids:
        with contextlib.suppress(OSError):
            out.append(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode())
    return out


class Run:
    """``kdtune run`` in its own session (its own process group), its output collected as it comes."""

    def __init__(self, raw: dict, tmp_path: Path, *extra: str) -> None:
        self.sweep, self.out = tmp_path / "sweep.yaml", tmp_path / "run"
        self.sweep.write_text(yaml.safe_dump(raw))
        self.argv = ["run", str(self.sweep), "--out", str(self.out), *extra]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kdtune", *self.argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=lambda: self.stdout.extend(self.proc.stdout), daemon=True),
            threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True),
        ]
        for t in self._readers:
            t.start()

    def wait_for(self, condition, timeout: float = 120) -> None:
        end = time.monotonic() + timeout
        while not condition():
            assert self.proc.poll() is None, "".join(self.stdout + self.stderr)
            assert time.monotonic() < end, "".join(self.stdout + self.stderr)
            time.sleep(0.1)

    def progress(self) -> dict:
        try:
            return json.loads((self.out / "progress.json").read_text())
        except (OSError, ValueError):
            return {}

    def cnn_training(self) -> bool:
        """Both MLP teachers finished and a CNN teacher is in the middle of its epochs."""
        groups = self.progress().get("groups", {})
        mlp_done = sum(g["state"] == "done" for name, g in groups.items() if name.startswith("MLP"))
        return mlp_done == 2 and any(g["epoch"] >= 1 and name.startswith("CNN") for name, g in groups.items())

    def interrupt(self, times: int = 1, gap: float = 0.3) -> float:
        """Ctrl-C (``times``, ``gap`` seconds apart); returns the seconds until the process ended."""
        start = time.monotonic()
        for i in range(times):
            if i:
                time.sleep(gap)
            os.killpg(self.proc.pid, signal.SIGINT)
        self.proc.wait(timeout=60)
        for t in self._readers:
            t.join(timeout=10)
        return time.monotonic() - start

    def kill(self) -> None:
        """Clean up after a failed test: the run and every process it started (Ray workers have their own group)."""
        if self.proc.poll() is None:
            left = _descendants(self.proc.pid)
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
            for pid in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def slow_cnn(tiny_raw):
    raw = tiny_raw
    raw["models"]["MLP"]["train"] = {"epochs": 2}
    raw["models"]["CNN"]["train"] = {"epochs": 5000}
    return raw


def _trial_files(run: Path) -> dict[str, float]:
    return {str(p.relative_to(run)): p.stat().st_mtime for p in (run / "trials").rglob("*") if p.is_file()}


def test_one_ctrl_c_stops_the_ray_run_at_once_and_keeps_finished_trials(slow_cnn, tmp_path):
    run = Run(slow_cnn, tmp_path)
    ray_pids: list[int] = []
    try:
        run.wait_for(run.cnn_training)
        ray_pids = [p for p in _descendants(run.proc.pid) if _alive(p)]
        assert any("raylet" in n for n in _names(ray_pids)) and any("gcs_server" in n for n in _names(ray_pids))
        kept = _trial_files(run.out)
        seconds = run.interrupt()
    finally:
        run.kill()
    out, err = "".join(run.stdout), "".join(run.stderr)
    print(f"Ctrl-C to exit: {seconds:.1f} s")
    assert run.proc.returncode == 130, out + err
    assert seconds < 10
    assert "stage 2" not in out  # the next stage did not start
    assert err.strip().splitlines() == [f"{HINT} python -m kdtune {' '.join(run.argv)}"]
    for text in ("Traceback", "Tuner.restore", "Failed to fetch metrics", "Stop signal received", "WARNING"):
        assert text not in out + err
    # the MLP teachers' folders are untouched; nothing else finished
    assert _trial_files(run.out) == kept and len({k.split("/")[1] for k in kept}) == 2
    assert run.progress()["state"] == "interrupted"
    # Ray's processes of that run (raylet, gcs_server, workers) are gone within a few seconds
    end = time.monotonic() + 5
    while any(map(_alive, ray_pids)) and time.monotonic() < end:
        time.sleep(0.1)
    assert not [n for p, n in zip(ray_pids, _names(ray_pids), strict=False) if _alive(p)]


def test_a_second_ctrl_c_changes_nothing(slow_cnn, tmp_path):
    run = Run(slow_cnn, tmp_path)
    try:
        run.wait_for(run.cnn_training)
        seconds = run.interrupt(times=2, gap=0.3)
    finally:
        run.kill()
    out, err = "".join(run.stdout), "".join(run.stderr)
    assert run.proc.returncode == 130 and seconds < 10, out + err
    assert "Traceback" not in out + err and "stage 2" not in out
    assert err.startswith(HINT)


def test_ctrl_c_while_ray_starts_leaves_no_ray_process(slow_cnn, tmp_path):
    run = Run(slow_cnn, tmp_path)
    seen: set[int] = set()
    try:
        run.wait_for(lambda: any("gcs_server" in n for n in _names(_descendants(run.proc.pid))))
        seen.update(_descendants(run.proc.pid))
        run.interrupt(times=2, gap=0.2)
    finally:
        run.kill()
    assert run.proc.returncode == 130 and "Traceback" not in "".join(run.stderr)
    end = time.monotonic() + 5
    while any(map(_alive, seen)) and time.monotonic() < end:
        time.sleep(0.1)
    assert not any(map(_alive, seen))


def test_ctrl_c_stops_the_inline_executor_too(slow_cnn, tmp_path):
    run = Run(slow_cnn, tmp_path, "--executor", "inline")
    try:
        run.wait_for(run.cnn_training)
        seconds = run.interrupt(times=2, gap=0.2)
    finally:
        run.kill()
    out, err = "".join(run.stdout), "".join(run.stderr)
    assert run.proc.returncode == 130 and seconds < 10, out + err
    assert "Traceback" not in out + err and "stage 2" not in out
    assert err.strip() == f"{HINT} python -m kdtune {' '.join(run.argv)}"
    assert len(list((run.out / "trials").iterdir())) == 2
