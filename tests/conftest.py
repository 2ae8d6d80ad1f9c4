"""Fixtures shared by every test: isolated settings (own topics, own database file) and a database.

Service fixtures live in `tests/support/` and are loaded as plugins below.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Settings, load_settings
from storage.db import create_engine, create_session_factory
from storage.migrate import upgrade_async

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "sample"

pytest_plugins: list[str] = [
    "tests.support.kafka",
    "tests.support.postgres",
    "tests.support.webhook",
]


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Settings:
    """Settings of one test: its own topic prefix, database (a SQLite file, or a PostgreSQL
    database under `both_stores`), artifact and log folders."""
    for name in list(__import__("os").environ):
        if name.startswith("ITFF_") and name != "ITFF_KAFKA_BOOTSTRAP":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return load_settings(
        env="test",
        topic_prefix=f"t{uuid.uuid4().hex[:10]}",
        database_url=database_url,
        artifact_dir=tmp_path / "artifacts",
        log_dir=tmp_path / "logs",
        report_dir=tmp_path / "reports",
        data_source=f"csv:{SAMPLE_DIR}",
        tradingview_passphrase="test-passphrase-0123456789",
        api_token="test-api-token-0123456789",
        log_json=False,
    )


@pytest.fixture
async def session_factory(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """The migrated database of this test (SQLite, or PostgreSQL under `both_stores`)."""
    await upgrade_async(settings.database_url)
    engine = create_engine(settings.database_url)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
def cli_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands run through typer's CliRunner leave the process's logging alone: their logging
    set-up would point every later log line at the runner's stream, closed once it returns."""
    monkeypatch.setattr("bot.runtime.configure_logging", lambda **_kwargs: None)
