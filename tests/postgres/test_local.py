"""`itff postgres start | status | stop`: the local server from Debian's binaries, as an operator
runs it; and the errors that tell them what to do."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.exc import OperationalError

from storage.db import sync_url
from tests.support.cli import run_itff
from tests.support.env import child_env
from tests.support.kafka import free_port
from tests.support.postgres import reachable_temp_dir

pytestmark = pytest.mark.postgres  # Debian's server binaries, like the PostgreSQL variants


@pytest.fixture
def data_dir() -> Iterator[Path]:
    folder = reachable_temp_dir()
    yield folder / "postgres"
    shutil.rmtree(folder, ignore_errors=True)


def _url(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("ITFF_DATABASE_URL=")]
    assert lines, output
    return lines[-1].removeprefix("ITFF_DATABASE_URL=")


def _query(url: str, statement: str) -> list[tuple[object, ...]]:
    engine = sqlalchemy.create_engine(sync_url(url))
    try:
        with engine.begin() as connection:
            result = connection.execute(sqlalchemy.text(statement))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def test_start_status_stop_and_the_data_survives_a_restart(data_dir: Path) -> None:
    port = free_port()
    env = child_env(ITFF_POSTGRES_DATA_DIR=str(data_dir), ITFF_POSTGRES_PORT=str(port))
    try:
        started = run_itff(env, "postgres", "start")
        assert started.returncode == 0, started.stderr
        assert f"PostgreSQL started on localhost:{port}" in started.stdout
        assert "new cluster, database itff created" in started.stdout
        url = _url(started.stdout)
        assert url.startswith("postgresql+asyncpg://itff:")
        assert url.endswith(f"@localhost:{port}/itff")
        assert _query(url, "SELECT current_user, current_database()") == [("itff", "itff")]
        _query(url, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
        if os.geteuid() == 0:  # PostgreSQL refuses root: the cluster belongs to `postgres`
            assert (data_dir / "data").owner() == "postgres"

        again = run_itff(env, "postgres", "start")
        assert again.returncode == 0, again.stderr
        assert f"PostgreSQL already runs on localhost:{port}" in again.stdout
        assert _url(again.stdout) == url

        running = run_itff(env, "postgres", "status")
        assert running.returncode == 0, running.stderr
        assert running.stdout.startswith("running  pid ")
        assert f"port {port}" in running.stdout

        stopped = run_itff(env, "postgres", "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert "stopped" in stopped.stdout
        after = run_itff(env, "postgres", "status")
        assert after.returncode == 3
        assert "start it with: itff postgres start" in after.stdout
        with pytest.raises(OperationalError):
            _query(url, "SELECT 1")

        restarted = run_itff(env, "postgres", "start")
        assert restarted.returncode == 0, restarted.stderr
        assert "new cluster" not in restarted.stdout
        assert _url(restarted.stdout) == url
        assert _query(url, "SELECT n FROM kept") == [(42,)]
    finally:
        run_itff(env, "postgres", "stop")


def test_a_wrong_password_is_refused(data_dir: Path) -> None:
    env = child_env(ITFF_POSTGRES_DATA_DIR=str(data_dir), ITFF_POSTGRES_PORT=str(free_port()))
    try:
        started = run_itff(env, "postgres", "start")
        assert started.returncode == 0, started.stderr
        url = _url(started.stdout)
        password = url.split(":")[2].split("@")[0]
        with pytest.raises(OperationalError, match="password authentication failed"):
            _query(url.replace(password, "wrong-password"), "SELECT 1")
    finally:
        run_itff(env, "postgres", "stop")


def test_a_port_taken_by_something_else_is_a_clear_error(data_dir: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = child_env(ITFF_POSTGRES_DATA_DIR=str(data_dir), ITFF_POSTGRES_PORT=str(port))
        done = run_itff(env, "postgres", "start")
    assert done.returncode == 2
    assert f"port {port} is taken" in done.stderr
    assert "ITFF_POSTGRES_PORT" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_server_binaries_say_what_to_install(data_dir: Path, tmp_path: Path) -> None:
    env = child_env(ITFF_POSTGRES_DATA_DIR=str(data_dir), ITFF_POSTGRES_BIN_DIR=str(tmp_path))
    done = run_itff(env, "postgres", "start")
    assert done.returncode == 2
    assert "no PostgreSQL server binaries" in done.stderr
    assert "postgresql" in done.stderr
    assert "Traceback" not in done.stderr


def test_status_of_a_server_never_started(data_dir: Path) -> None:
    done = run_itff(child_env(ITFF_POSTGRES_DATA_DIR=str(data_dir)), "postgres", "status")
    assert done.returncode == 3
    assert "stopped" in done.stdout
