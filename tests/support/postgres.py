"""A real PostgreSQL server for the test session, a fresh migrated database per test, and the
`store` switch that runs a test on SQLite, PostgreSQL or both.

The server, in order: `ITFF_TEST_POSTGRES_URL` (any URL of a role that may CREATE DATABASE, e.g.
`postgresql://itff:pw@localhost:5432/postgres`); a testcontainers PostgreSQL when a Docker engine
answers; otherwise the project's local server (`bot.postgres`, Debian's binaries) in a temporary
folder, fsync off, stopped at the end of the session. It never skips: without a server the tests
fail, saying why.

Each test's database is `CREATE DATABASE ... TEMPLATE` of one migrated at the start of the session
(tens of milliseconds instead of a migration run), dropped afterwards.

Use from a test module: `pytestmark = both_stores` (the `both_stores` marker; or `@both_stores` on
a test or class) runs every test whose fixtures reach `database_url` (`settings`,
`session_factory`, ...) once per store, and leaves the module's other tests alone; the PostgreSQL
variants carry the `postgres` marker (`-m "not postgres"` leaves them out).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from bot import postgres
from bot.contracts import ItffError
from storage.db import sync_url
from storage.migrate import upgrade
from tests.support.kafka import _docker_answers

CONTAINER_IMAGE = "postgres:16-alpine"
STORES = ("sqlite", pytest.param("postgresql", marks=pytest.mark.postgres))
both_stores = pytest.mark.both_stores


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`both_stores` tests whose fixtures reach the database run once per store; the others in
    a marked module or class are left as they are."""
    marked = metafunc.definition.get_closest_marker("both_stores") is not None
    if marked and "store" in metafunc.fixturenames:
        metafunc.parametrize("store", STORES, indirect=True)


def async_url(url: str) -> str:
    """`postgres://` / `postgresql://` / `postgresql+psycopg2://` as `postgresql+asyncpg://`."""
    return make_url(url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def admin_execute(server_url: str, *statements: str) -> None:
    """Run statements outside a transaction (CREATE/DROP DATABASE) on the server's own database."""
    engine = sqlalchemy.create_engine(
        sync_url(server_url), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    try:
        with engine.connect() as connection:
            for statement in statements:
                connection.execute(sqlalchemy.text(statement))
    finally:
        engine.dispose()


def _external(url: str) -> str:
    try:
        admin_execute(async_url(url), "SELECT 1")
    except Exception as exc:
        pytest.fail(
            f"ITFF_TEST_POSTGRES_URL={make_url(url).render_as_string()} does not answer: {exc}; "
            "start one with '.venv/bin/itff postgres start' or unset ITFF_TEST_POSTGRES_URL"
        )
    return async_url(url)


def _container() -> Iterator[str]:
    from testcontainers.community.postgres import PostgresContainer

    with PostgresContainer(CONTAINER_IMAGE, driver=None) as container:
        yield async_url(container.get_connection_url())


def local_test_server(data_dir: Path) -> postgres.LocalPostgres:
    """The project's server on a free port, its cluster under `data_dir`, fsync off."""
    from tests.support.kafka import free_port

    configured = os.environ.get("ITFF_POSTGRES_BIN_DIR")
    return postgres.LocalPostgres(
        data_dir=data_dir,
        bin_dir=postgres.find_bin_dir(Path(configured) if configured else None),
        port=free_port(),
        fast=True,
    )


def reachable_temp_dir() -> Path:
    """A temporary folder that the `postgres` system user can enter (pytest's are 0700 root)."""
    folder = Path(tempfile.mkdtemp(prefix="itff-pg-"))
    folder.chmod(0o755)
    return folder


def _local() -> Iterator[str]:
    folder = reachable_temp_dir()
    try:
        server = local_test_server(folder)
        result = postgres.start(server)
    except ItffError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(
            "no PostgreSQL server for the tests: ITFF_TEST_POSTGRES_URL is unset, no Docker engine "
            f"answers, and the local server failed to start: {exc}"
        )
    try:
        yield server.url(result.port, database="postgres")
    finally:
        postgres.stop(server)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """An async URL of a PostgreSQL server's maintenance database, for the whole session."""
    configured = os.environ.get("ITFF_TEST_POSTGRES_URL", "").strip()
    if configured:
        yield _external(configured)
    elif _docker_answers():
        yield from _container()
    else:
        yield from _local()


@pytest.fixture(scope="session")
def postgres_template(postgres_server_url: str) -> Iterator[str]:
    """A database migrated to head once per session: the template of every test's database."""
    name = f"itff_template_{uuid.uuid4().hex[:12]}"
    admin_execute(postgres_server_url, f'CREATE DATABASE "{name}"')
    with ThreadPoolExecutor(1) as pool:  # Alembic's env runs its own event loop
        pool.submit(upgrade, with_database(postgres_server_url, name)).result()
    yield name
    admin_execute(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_server_url: str, postgres_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database of this test (dropped afterwards)."""
    name = f"itff_test_{uuid.uuid4().hex[:12]}"
    admin_execute(postgres_server_url, f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    yield with_database(postgres_server_url, name)
    admin_execute(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_blank_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database (no migration applied), dropped afterwards."""
    name = f"itff_blank_{uuid.uuid4().hex[:12]}"
    admin_execute(postgres_server_url, f'CREATE DATABASE "{name}"')
    yield with_database(postgres_server_url, name)
    admin_execute(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def store(request: pytest.FixtureRequest) -> str:
    """`sqlite` unless the test is parametrised over `STORES` (`both_stores`)."""
    chosen: str = getattr(request, "param", "sqlite")
    return chosen


@pytest.fixture
def database_url(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The test's database: a SQLite file in its folder, or a fresh PostgreSQL database
    (already migrated: the `session_factory` fixture's upgrade is then a no-op)."""
    if store == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return f"sqlite+aiosqlite:///{tmp_path / 'itff.db'}"


@pytest.fixture
def blank_database_url(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Like `database_url`, but empty: for tests that run the migrations themselves."""
    if store == "postgresql":
        url: str = request.getfixturevalue("postgres_blank_url")
        return url
    return f"sqlite+aiosqlite:///{tmp_path / 'itff.db'}"
