"""Dashboard protection (loopback rule, credentials, throttling), server options and the views."""

from __future__ import annotations

import json
import sys

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import ConfigError, Settings
from panel_app.app import Dashboard
from panel_app.queries import DashboardQueries
from panel_app.server import (
    MAX_FAILED_LOGINS,
    DashboardAuth,
    HealthHandler,
    _Credentials,
    is_loopback,
    password_of,
    server_options,
)
from tests.support.dashboard import A_KEY, N_SIGNALS, seed_dashboard
from tests.support.postgres import both_stores

pytestmark = both_stores


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "dashboard.example.com"])
def test_public_hosts(host: str) -> None:
    assert not is_loopback(host)


def test_a_public_address_without_password_is_refused(settings: Settings) -> None:
    public = settings.model_copy(update={"dash_host": "0.0.0.0", "dash_password": None})
    with pytest.raises(ConfigError, match="ITFF_DASH_PASSWORD"):
        password_of(public)


def test_loopback_without_password_is_allowed(settings: Settings) -> None:
    assert password_of(settings.model_copy(update={"dash_password": None})) is None


def test_a_public_address_with_password_is_allowed(settings: Settings) -> None:
    public = settings.model_copy(
        update={"dash_host": "0.0.0.0", "dash_password": SecretStr("s3cret-s3cret")}
    )
    assert password_of(public) == "s3cret-s3cret"


def test_credentials_need_both_name_and_password() -> None:
    credentials = _Credentials("trader", "s3cret")
    assert credentials.check("1.2.3.4", "trader", "s3cret")
    assert not credentials.check("1.2.3.4", "trader", "wrong")
    assert not credentials.check("1.2.3.4", "other", "s3cret")
    assert not credentials.check("1.2.3.4", "trader", "")


def test_repeated_failures_block_the_client_only() -> None:
    credentials = _Credentials("trader", "s3cret")
    for _ in range(MAX_FAILED_LOGINS):
        assert not credentials.check("6.6.6.6", "trader", "guess")
    assert credentials.blocked("6.6.6.6")
    assert not credentials.blocked("1.2.3.4")


async def test_server_options_protect_and_expose_health(settings: Settings) -> None:
    # async: Panel's auth provider touches Tornado's IOLoop, which must be the test's own loop
    queries = DashboardQueries.from_url(settings.database_url)
    try:
        open_options = server_options(settings, queries)
        assert "auth_provider" not in open_options
        locked = settings.model_copy(update={"dash_password": SecretStr("s3cret-s3cret")})
        options = server_options(locked, queries)
    finally:
        queries.close()
    assert isinstance(options["auth_provider"], DashboardAuth)
    assert options["cookie_secret"]
    assert options["extra_patterns"][0][:2] == (r"/health", HealthHandler)
    assert "localhost:5006" in options["websocket_origin"]
    assert options["address"] == "127.0.0.1"


def test_the_cli_refuses_a_public_dashboard_without_password(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    monkeypatch.setenv("ITFF_DASH_HOST", "0.0.0.0")
    monkeypatch.setattr(sys, "argv", ["itff", "dashboard"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "without a password" in capsys.readouterr().err


async def test_views_show_empty_states_then_data(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    queries = DashboardQueries.from_url(settings.database_url, ttl_seconds=0.001)
    dashboard = Dashboard(queries, drift_margin=0.05, refresh_seconds=5)
    try:
        await dashboard.refresh()
        assert dashboard.overview.empty.visible
        assert "itff train" in dashboard.overview.empty.object
        assert dashboard.signals.no_signals.visible
        assert "itff replay" in dashboard.signals.no_signals.object
        assert dashboard.pipeline.empty.visible
        assert dashboard.latency.empty.visible

        await seed_dashboard(session_factory)
        queries._cache.clear()
        await dashboard.refresh()
    finally:
        queries.close()
    assert not dashboard.overview.empty.visible
    assert dashboard.overview.table.value["model_key"].tolist()[1] == A_KEY
    assert len(dashboard.signals.table.value) == 2 * N_SIGNALS
    assert dashboard.equity.model.options[1] == A_KEY
    assert "drifting: SPX-direction-logreg" in dashboard.overview.drift_note.object
    assert not dashboard.problem.visible


async def test_an_unreadable_database_shows_a_banner(blank_database_url: str) -> None:
    queries = DashboardQueries.from_url(blank_database_url)
    dashboard = Dashboard(queries, drift_margin=0.05, refresh_seconds=5)
    try:
        await dashboard.refresh()
    finally:
        queries.close()
    assert dashboard.problem.visible
    assert "itff db upgrade" in dashboard.problem.object


async def test_allowed_origins_add_to_the_local_ones(settings: Settings) -> None:
    queries = DashboardQueries.from_url(settings.database_url)
    try:
        extra = settings.model_copy(update={"dash_allowed_origins": ["itff.example.com"]})
        origins = server_options(extra, queries)["websocket_origin"]
    finally:
        queries.close()
    assert origins == ["localhost:5006", "127.0.0.1:5006", "itff.example.com"]


async def test_the_reports_tab_lists_the_reports_on_file_and_keeps_the_choice(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    queries = DashboardQueries.from_url(settings.database_url, ttl_seconds=0.001)
    dashboard = Dashboard(
        queries, drift_margin=0.05, refresh_seconds=5, report_dir=settings.report_dir
    )
    live = settings.report_dir / "live"
    try:
        await dashboard.refresh()
        assert dashboard.reports.empty.visible
        assert "itff report daily" in dashboard.reports.empty.object

        (live / "daily").mkdir(parents=True)
        (live / "daily" / "2026-12-02.md").write_text("# Daily report 2026-12-02\n")
        (live / "daily" / "2026-12-03.md").write_text("# Daily report 2026-12-03\n")
        (live / "daily_notes.md").write_text("my own note\n")
        await dashboard.refresh()
        assert not dashboard.reports.empty.visible
        assert dashboard.reports.choice.options == [
            "validation log (daily_notes.md)",
            "daily 2026-12-03",
            "daily 2026-12-02",
        ]
        dashboard.reports.choice.value = "daily 2026-12-02"
        assert dashboard.reports.body.object == "# Daily report 2026-12-02\n"

        (live / "weekly").mkdir()
        (live / "weekly" / "2026-W49.md").write_text("# Weekly report 2026-W49\n")
        await dashboard.refresh()
    finally:
        queries.close()
    assert "weekly 2026-W49" in dashboard.reports.choice.options
    assert dashboard.reports.choice.value == "daily 2026-12-02"  # the reader's choice stays
    assert dashboard.reports.body.object == "# Daily report 2026-12-02\n"


async def test_the_reports_tab_counts_and_lists_the_parity_mismatches(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    queries = DashboardQueries.from_url(settings.database_url, ttl_seconds=0.001)
    dashboard = Dashboard(
        queries, drift_margin=0.05, refresh_seconds=5, report_dir=settings.report_dir
    )
    daily = settings.report_dir / "live" / "daily"
    mismatch = {
        "signal_id": "s-1", "model_key": "SPX-direction-logreg", "model_version": "v1",
        "bar_time": "2026-12-02T00:00:00+00:00", "live_score": 0.61, "batch_score": 0.43,
        "live_action": "buy", "batch_action": "sell", "problem": "score 0.61 live, 0.43 batch",
    }  # fmt: skip
    try:
        await dashboard.refresh()
        assert "no daily report yet" in dashboard.reports.parity.object
        assert not dashboard.reports.mismatches.visible

        daily.mkdir(parents=True)
        (daily / "2026-12-02.json").write_text(
            json.dumps({"parity_checked": 12, "parity_mismatches": [mismatch]})
        )
        (daily / "2026-12-03.json").write_text(
            json.dumps({"parity_checked": 9, "parity_mismatches": []})
        )
        (daily / "2026-12-04.json").write_text("{not json")  # skipped, not fatal
        await dashboard.refresh()
    finally:
        queries.close()
    text = dashboard.reports.parity.object
    assert "**Parity:** 1 mismatch(es) in 21 resolved signals checked by the newest 2" in text
    assert "itff report parity" in text
    assert dashboard.reports.mismatches.visible
    rows = dashboard.reports.mismatches.object.to_dict("records")
    assert rows == [
        {
            "day": "2026-12-02", "model_key": "SPX-direction-logreg", "model_version": "v1",
            "bar_time": "2026-12-02T00:00:00+00:00", "signal_id": "s-1",
            "problem": "score 0.61 live, 0.43 batch",
        }
    ]  # fmt: skip
