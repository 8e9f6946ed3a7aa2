"""Real trackers for tests: a throwaway MLflow tracking server, and a reader of W&B's offline run files.

``mlflow_server(folder)`` runs ``mlflow server`` (installed by the ``dev`` extra) with a SQLite backend store and an
artifact folder under ``folder``, listening on 127.0.0.1 on a free port, one worker; it yields the tracking URI once
``/health`` answers and stops the server (its whole process group) when the block ends, failed or not.

``wandb_records(path)`` reads a ``run-<id>.wandb`` file of an offline W&B run: W&B's record log (a 7-byte header
``:W&B``, 0xBEE1, version; then 32 KiB blocks of records, each a 7-byte header of CRC-32, length and type FULL,
FIRST, MIDDLE or LAST) of protobuf ``Record`` messages. ``offline_run(path)`` gathers what kdtune checks: the run's
project, group and name, its config, its summary, its history rows and its exit code.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.postgres import free_port

START_TIMEOUT = 240  # seconds: mlflow's imports are slow on a loaded 2-core machine


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """A real MLflow tracking server on 127.0.0.1 (see the module's docstring); yields its URI."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    cmd = [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"]
    cmd += ["--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log = open(folder / "server.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {proc.returncode}: {(folder / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > end:
                raise RuntimeError(
                    f"mlflow server did not answer in {START_TIMEOUT} s: {(folder / 'server.log').read_text()[-2000:]}"
                )
            time.sleep(0.5)
        yield uri
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()


BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def wandb_records(path: Path) -> Iterator[bytes]:
    """The serialized records of a ``.wandb`` file, each checked against its CRC-32."""
    data = Path(path).read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and magic == 0xBEE1, f"{path}: not a W&B run file"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # the block's tail is padding
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        assert zlib.crc32(bytes([kind]) + chunk) & 0xFFFFFFFF == crc, f"{path}: a record fails its checksum"
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk
            pending = b""


def offline_run(folder: Path) -> dict[str, Any]:
    """What one offline run folder (``offline-run-…``) holds: project, group, name, config, summary, history, exit code."""
    from wandb.proto import wandb_internal_pb2

    (path,) = Path(folder).glob("run-*.wandb")
    out: dict[str, Any] = {"config": {}, "summary": {}, "history": [], "exit_code": None}
    for data in wandb_records(path):
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(data)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out |= {"project": rec.run.project, "group": rec.run.run_group, "name": rec.run.display_name}
            out["config"] |= {i.key: json.loads(i.value_json) for i in rec.run.config.update}
        elif kind == "config":
            out["config"] |= {i.key: json.loads(i.value_json) for i in rec.config.update}
        elif kind == "summary":
            out["summary"] |= {(i.key or ".".join(i.nested_key)): json.loads(i.value_json) for i in rec.summary.update}
        elif kind == "history":
            out["history"].append({(i.key or ".".join(i.nested_key)): json.loads(i.value_json) for i in rec.history.item})
        elif kind == "exit":
            out["exit_code"] = rec.exit.exit_code
    out["config"].pop("_wandb", None)
    return out
