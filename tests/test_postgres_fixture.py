"""The PostgreSQL fixture: an Optuna study kept on a real server, the server stopped afterwards (failed block or
not), and the skip when the server's binaries are missing."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import optuna
import pytest

from tests.postgres import accepts_connections, postgres_server, postgres_url, process_alive  # noqa: F401


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -10, 10)
    return (x - 2) ** 2


def test_optuna_study_on_postgres(postgres_url: str) -> None:  # noqa: F811
    assert postgres_url.startswith("postgresql+psycopg2://kdtune@127.0.0.1:")
    storage = optuna.storages.RDBStorage(postgres_url)
    study = optuna.create_study(study_name="pg", storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(_objective, n_trials=3)
    values = [trial.value for trial in study.trials]
    params = [trial.params for trial in study.trials]
    storage.engine.dispose()

    fresh = optuna.storages.RDBStorage(postgres_url)
    try:
        loaded = optuna.load_study(study_name="pg", storage=fresh)
        finished = loaded.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        assert len(finished) == 3
        assert [trial.value for trial in finished] == values
        assert loaded.best_value == min(values)
        assert [trial.params for trial in finished] == params
        assert loaded.best_trial.params == params[values.index(min(values))]
    finally:
        fresh.engine.dispose()


def _server_facts(url: str) -> tuple[int, int]:
    """The server's port and its postmaster's pid, asked of the server itself."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            data_dir = conn.execute(sqlalchemy.text("SHOW data_directory")).scalar_one()
            port = int(conn.execute(sqlalchemy.text("SHOW port")).scalar_one())
    finally:
        engine.dispose()
    pid = int((Path(data_dir) / "postmaster.pid").read_text().split()[0])
    return port, pid


def _assert_stopped(port: int, pid: int) -> None:
    deadline = time.monotonic() + 10
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(pid), f"postmaster {pid} still runs"
    assert not accepts_connections(port), f"something still listens on 127.0.0.1:{port}"


@pytest.mark.parametrize("fail", [False, True], ids=["block-ends", "block-raises"])
def test_server_stopped_afterwards(tmp_path: Path, fail: bool) -> None:
    class Boom(Exception):
        pass

    facts: list[tuple[int, int]] = []
    with pytest.raises(Boom) if fail else contextlib.nullcontext(), postgres_server(tmp_path) as url:
        facts.append(_server_facts(url))
        port, pid = facts[0]
        assert accepts_connections(port) and process_alive(pid)
        if fail:
            raise Boom
    _assert_stopped(*facts[0])


@pytest.mark.parametrize("folder", ["empty", "missing"])
def test_skips_without_binaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str) -> None:
    bin_dir = tmp_path / "bin"
    if folder == "empty":
        bin_dir.mkdir()
    monkeypatch.setenv("KDTUNE_PG_BIN", str(bin_dir))
    skipped = pytest.raises(pytest.skip.Exception, match=r"initdb, pg_ctl\) not found in \$KDTUNE_PG_BIN=")
    with skipped, postgres_server(tmp_path):
        pytest.fail("the block ran without a server")
