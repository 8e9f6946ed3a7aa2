"""A real, throwaway PostgreSQL server for tests (Optuna's ``RDBStorage`` through SQLAlchemy and psycopg2).

``postgres_server(tmp_dir)`` runs ``initdb`` into a fresh folder (trust authentication, superuser ``kdtune``),
starts the server with ``pg_ctl`` listening only on 127.0.0.1 on a free port (its unix socket in that folder,
fsync off), creates the database ``kdtune``, yields ``postgresql+psycopg2://kdtune@127.0.0.1:PORT/kdtune``
and stops the server (``pg_ctl stop -m fast``) when the block ends, failed or not. PostgreSQL refuses to run
as root, so as root the server runs as the ``postgres`` user (``nobody`` without one) in a new folder in the system's temp folder
that it owns (pytest's own temporary folders are private to root); the folder is removed afterwards.

The binaries come from ``$KDTUNE_PG_BIN`` (a folder) when set, else the newest /usr/lib/postgresql/*/bin
(Debian, Ubuntu), else ``PATH``. Without them the test is skipped, saying why; any other trouble fails it.

Tests get a fresh server each through the ``postgres_url`` fixture: ``tests/conftest.py`` may carry
``from tests.postgres import postgres_url  # noqa: F401``, or a test module imports it the same way.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

USER = "kdtune"
DATABASE = "kdtune"
DRIVER = "postgresql+psycopg2"
BIN_ENV = "KDTUNE_PG_BIN"
START_TIMEOUT = 60  # seconds; pg_ctl waits this long for the server to accept connections
STOP_TIMEOUT = 30
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "50",
    "shared_buffers": "16MB",
    "logging_collector": "off",
    "log_min_messages": "warning",
}


def find_bin_dir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or None (see the module's docstring for the search)."""
    if BIN_ENV in os.environ:
        folder = Path(os.environ[BIN_ENV])
        return folder if _has_binaries(folder) else None
    versions = []
    for folder in Path("/usr/lib/postgresql").glob("*/bin"):
        if _has_binaries(folder):
            key = tuple(int(part) for part in re.findall(r"\d+", folder.parent.name))
            versions.append((key, folder))
    if versions:
        return max(versions)[1]
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl and Path(initdb).parent == Path(pg_ctl).parent:
        return Path(initdb).parent
    return None


def _has_binaries(folder: Path) -> bool:
    return all(os.access(folder / name, os.X_OK) and (folder / name).is_file() for name in ("initdb", "pg_ctl"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accepts_connections(port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def process_alive(pid: int) -> bool:
    """Whether the process runs (a zombie, one that ended but is not reaped yet, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


class _Runner:
    """Runs the server's commands, as an unprivileged user when we are root."""

    def __init__(self, bin_dir: Path, base: Path) -> None:
        self.bin_dir, self.base = bin_dir, base
        self.prefix: list[str] = []
        self.owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self.owner = _unprivileged_user()
            if shutil.which("runuser"):
                self.prefix = ["runuser", "-u", self.owner.pw_name, "--"]
            elif shutil.which("setpriv"):
                self.prefix = ["setpriv", f"--reuid={self.owner.pw_uid}", f"--regid={self.owner.pw_gid}", "--clear-groups"]
            else:
                raise RuntimeError("running as root, and neither runuser nor setpriv is there to run PostgreSQL as another user")
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        self.env.update(LC_ALL="C", LANG="C")

    def __call__(self, program: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.prefix, str(self.bin_dir / program), *args],
            cwd=self.base,  # the unprivileged user may not be able to enter ours
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _unprivileged_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root, and there is neither a 'postgres' nor a 'nobody' user to run PostgreSQL as")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


def _failed(what: str, result: subprocess.CompletedProcess[str], log: Path | None = None) -> RuntimeError:
    message = f"PostgreSQL: {what} failed (exit {result.returncode}):\n{result.stdout}{result.stderr}"
    if log is not None:
        message += f"\nserver log:\n{_tail(log)}"
    return RuntimeError(message)


def _postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _stop(run: _Runner, data: Path, pid: int | None) -> None:
    """Stop the server started in ``data``: a fast shutdown, then an immediate one, then SIGKILL to its postmaster."""
    pid = _postmaster_pid(data) or pid
    if pid is None:
        return
    for mode in ("fast", "immediate"):
        with contextlib.suppress(subprocess.TimeoutExpired):
            run("pg_ctl", "stop", "-D", str(data), "-m", mode, "-w", "-t", str(STOP_TIMEOUT), timeout=STOP_TIMEOUT + 10)
        if _wait_gone(pid, 5):
            return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _wait_gone(pid, 5)


def _create_database(port: int) -> None:
    import psycopg2

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            conn = psycopg2.connect(host="127.0.0.1", port=port, user=USER, dbname="postgres", connect_timeout=5)
            break
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        conn.close()


@contextlib.contextmanager
def postgres_server(tmp_dir: Path | str) -> Iterator[str]:
    """A fresh PostgreSQL server for the block; yields its SQLAlchemy URL (see the module's docstring)."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        where = f"${BIN_ENV}={os.environ[BIN_ENV]}" if BIN_ENV in os.environ else "/usr/lib/postgresql/*/bin or PATH"
        pytest.skip(f"PostgreSQL server binaries (initdb, pg_ctl) not found in {where}; install the 'postgresql' package")
    root = os.geteuid() == 0
    # As root the server's user must reach the folder (pytest's are root's alone); the socket path must stay short.
    own = root or len(str(tmp_dir)) > 60
    base = Path(tempfile.mkdtemp(prefix="kdtune-pg-", dir=None if own else tmp_dir))
    data, log = base / "data", base / "server.log"
    run, pid = None, None
    try:
        run = _Runner(bin_dir, base)
        if run.owner is not None:
            os.chown(base, run.owner.pw_uid, run.owner.pw_gid)
        options = ["-U", USER, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"]
        result = run("initdb", "-D", str(data), *options)
        if result.returncode != 0:
            raise _failed("initdb", result)
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(f"\nunix_socket_directories = '{base}'\n")
            conf.writelines(f"{key} = {value}\n" for key, value in SERVER_SETTINGS.items())
        for attempt in range(3):  # another process may take the free port before the server binds it
            port = free_port()
            result = run(
                "pg_ctl", "start", "-D", str(data), "-l", str(log), "-w", "-t", str(START_TIMEOUT), "-o", f"-p {port}",
                timeout=START_TIMEOUT + 10,
            )  # fmt: skip
            pid = _postmaster_pid(data) or pid
            if result.returncode == 0:
                break
            if attempt == 2 or "could not bind" not in _tail(log, 50):
                raise _failed("pg_ctl start", result, log)
        _create_database(port)
        yield f"{DRIVER}://{USER}@127.0.0.1:{port}/{DATABASE}"
    finally:
        if run is not None:
            _stop(run, data, pid)
        # A cluster weighs some 40 MB: only the server log stays behind, in tmp_dir.
        shutil.rmtree(base if own else data, ignore_errors=True)


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    """The SQLAlchemy URL of a fresh PostgreSQL server for this test (skips when PostgreSQL is not installed)."""
    with postgres_server(tmp_path) as url:
        yield url
