"""The run folder, the source of truth: one sub-folder per finished trial, written atomically.

``<run>/trials/<id>/`` holds ``config.json``, ``metrics.json`` (its presence means finished),
``model.pt`` (a state dict), ``outputs.npz`` (per eval set: probabilities of every example, labels,
penultimate features of a fixed subset and their indices), for teachers ``train_logits-<data>.npy``
(the logits cache their students read), and ``checksums.json`` (SHA-256 of every other file, written
last). The whole folder appears with one rename. ``<run>/.kdtune-run`` marks a run folder,
``<run>/.lock`` is held by the one ``kdtune run`` writing into it, and trials found damaged are moved
to ``<run>/damaged/`` (kept, never deleted).
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from kdtune.errors import KdtuneError

CONFIG, METRICS, MODEL, OUTPUTS, CHECKSUMS = "config.json", "metrics.json", "model.pt", "outputs.npz", "checksums.json"
MARKER, LOCK, LOCK_INFO = ".kdtune-run", ".lock", ".lock.json"


def trial_dir(run_dir: Path, trial_id: str) -> Path:
    """Where trial ``trial_id`` lives (whether or not it has finished)."""
    return Path(run_dir) / "trials" / trial_id


def is_finished(run_dir: Path, trial_id: str) -> bool:
    """Whether ``trial_id`` finished: its ``metrics.json`` exists (it is written last)."""
    return (trial_dir(run_dir, trial_id) / METRICS).is_file()


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, default=float))
    os.replace(tmp, path)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    try:  # Linux: read it without changing it
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: Path) -> None:
    """Give a folder made by ``mkdtemp`` (mode 0700) the mode a plain ``mkdir`` would: colleagues on
    shared cluster storage read run folders as the user's umask allows."""
    os.chmod(path, 0o777 & ~_umask())


def check_trial(run_dir: Path, trial_id: str, files: tuple[str, ...] | None = None) -> str | None:
    """None if a finished trial's files match the checksums recorded when it was committed (all of them,
    or only ``files``); else a one-line reason naming the file."""
    d = trial_dir(run_dir, trial_id)
    try:
        sums = json.loads((d / CHECKSUMS).read_text())
    except FileNotFoundError:
        return f"{d / CHECKSUMS}: missing (no checksums recorded)"
    except (OSError, json.JSONDecodeError) as e:
        return f"{d / CHECKSUMS}: unreadable ({type(e).__name__})"
    for name in files if files is not None else sorted(sums):
        if name not in sums:
            return f"{d / name}: not among the files recorded in {CHECKSUMS}"
        try:
            if sha256_file(d / name) != sums[name]:
                return f"{d / name}: damaged (checksum differs from the one recorded when the trial finished)"
        except FileNotFoundError:
            return f"{d / name}: missing"
        except OSError as e:
            return f"{d / name}: unreadable ({e.strerror or e})"
    return None


def quarantine(run_dir: Path, trial_id: str) -> Path:
    """Move a damaged trial's folder to ``<run>/damaged/`` (kept for inspection) so it is trained again."""
    dest = Path(run_dir) / "damaged" / f"{trial_id}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(trial_dir(run_dir, trial_id), dest)
    return dest


def finished_trials(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Every finished trial folder of a run folder: id → its config.json content (unreadable ones skipped)."""
    out: dict[str, dict[str, Any]] = {}
    for d in sorted((Path(run_dir) / "trials").glob("[!.]*")):  # (a file has no METRICS inside)
        if not (d / METRICS).is_file():
            continue
        try:
            out[d.name] = json.loads((d / CONFIG).read_text())
        except (OSError, json.JSONDecodeError):
            out[d.name] = {}
    return out


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a run folder written by kdtune (its marker, or the layout of older versions)."""
    path = Path(path)
    return (path / MARKER).is_file() or ((path / "trials").is_dir() and (path / "plan.json").is_file())


def check_out_dir(path: Path) -> None:
    """Refuse, in one line, an ``--out`` that is a file or a folder holding things other than a run."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise KdtuneError(f"{path}: is a file, not a run folder; give --out a new or empty folder, or an existing run folder")
    if path.is_dir() and not is_run_dir(path):
        others = sorted(p.name for p in path.iterdir())
        if others:
            shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            raise KdtuneError(
                f"{path}: not a kdtune run folder (it holds {shown}); give --out a new or empty folder, "
                "or a run folder written by kdtune run"
            )


def remove_scratch(run_dir: Path) -> int:
    """Remove the scratch folders (``trials/.<id>.*``) that a worker killed mid-commit left behind; call it
    only while holding the run folder's lock, before any worker starts. Returns how many were removed."""
    leftovers = [d for d in (Path(run_dir) / "trials").glob(".*") if d.is_dir()]  # (a trailing / in glob: 3.11+)
    for d in leftovers:
        shutil.rmtree(d, ignore_errors=True)
    return len(leftovers)


def init_run_dir(path: Path) -> None:
    """Create a run folder (or adopt one of an older kdtune version) and mark it as such."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if not (path / MARKER).is_file():
        write_json(path / MARKER, {"kdtune": "run folder", "created": time.strftime("%Y-%m-%d %H:%M:%S")})


class RunLock:
    """The run folder's lock: one ``kdtune run`` writes into a folder at a time. A real file lock
    (``filelock``, released by the OS when its holder dies); who holds it is in ``.lock.json``."""

    def __init__(self, run_dir: Path) -> None:
        from filelock import FileLock

        self.run_dir = Path(run_dir)
        self._lock = FileLock(str(self.run_dir / LOCK), is_singleton=False)

    def __enter__(self) -> RunLock:
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise KdtuneError(f"{self.run_dir}: {describe_holder(self.run_dir)}; wait for it to end or stop it") from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "user": _user(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(["kdtune", *sys.argv[1:]]),
        }
        write_json(self.run_dir / LOCK_INFO, info)
        return self

    def __exit__(self, *exc: object) -> None:
        (self.run_dir / LOCK_INFO).unlink(missing_ok=True)
        self._lock.release()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "?"


def lock_holder(run_dir: Path) -> dict[str, Any] | None:
    """Who holds a run folder's lock now (pid, host, command, started), or None if nobody does."""
    from filelock import FileLock, Timeout

    path = Path(run_dir) / LOCK
    if not path.exists():
        return None
    probe = FileLock(str(path), is_singleton=False)
    try:
        probe.acquire(timeout=0)
    except Timeout:
        try:
            return json.loads((Path(run_dir) / LOCK_INFO).read_text())
        except (OSError, json.JSONDecodeError):
            return {}
    except OSError:  # a read-only folder: nobody can be writing into it
        return None
    probe.release()
    return None


def describe_holder(run_dir: Path) -> str:
    """One phrase naming the process that holds a run folder's lock."""
    h = lock_holder(run_dir) or {}
    if not h:
        return "in use by another kdtune run"
    return f"in use by another kdtune run (pid {h.get('pid')} on {h.get('host')}, since {h.get('started')}: {h.get('command')})"


def read_json(path: Path) -> Any:
    """Read a JSON file written by kdtune; a clear one-line error if it is missing or damaged."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise KdtuneError(f"{path}: cannot read kdtune JSON ({e})") from None


class TrialWriter:
    """Collects a trial's files in a scratch folder and publishes them with one rename."""

    def __init__(self, run_dir: Path, trial_id: str) -> None:
        self.final = trial_dir(run_dir, trial_id)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{trial_id}.", dir=self.final.parent))
        follow_umask(self.tmp)

    def path(self, name: str) -> Path:
        return self.tmp / name

    def save_outputs(self, arrays: dict[str, np.ndarray]) -> None:
        np.savez(self.path(OUTPUTS), **arrays)

    def commit(self, config: dict[str, Any], metrics: dict[str, Any]) -> Path:
        """Write config and metrics (last) and move the folder into place."""
        write_json(self.path(CONFIG), config)
        write_json(self.path(METRICS), metrics)
        sums = {p.name: sha256_file(p) for p in sorted(self.tmp.iterdir()) if p.is_file() and p.name != CHECKSUMS}
        write_json(self.path(CHECKSUMS), sums)
        if self.final.exists():
            if (self.final / METRICS).is_file():  # finished meanwhile elsewhere: keep that one
                shutil.rmtree(self.tmp, ignore_errors=True)
                return self.final
            shutil.rmtree(self.final)  # an incomplete leftover of a crash
        os.replace(self.tmp, self.final)
        return self.final

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def load_outputs(run_dir: Path, trial_id: str) -> dict[str, np.ndarray]:
    """A finished trial's saved outputs (probabilities, labels, features) as arrays."""
    path = trial_dir(run_dir, trial_id) / OUTPUTS
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise KdtuneError(f"{path}: cannot read outputs ({e})") from None


def save_array_atomic(path: Path, array: np.ndarray) -> None:
    """Save one ``.npy`` array atomically (several processes may compute the same cache)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)
