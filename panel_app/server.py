"""Serving the dashboard: basic auth, `/health`, and the refusal to expose it without a password.

Login uses Panel's basic-auth pages with our own check: the username and password of
`ITFF_DASH_USERNAME` / `ITFF_DASH_PASSWORD`, compared in constant time, with failed logins
throttled per client address (behind `ITFF_TRUSTED_PROXIES`, the forwarded one). `/health`
answers without authentication for platform checks.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import secrets
import signal
from typing import Any

import panel as pn
from cachetools import TTLCache
from panel.auth import BasicAuthProvider, BasicLoginHandler
from tornado.web import HTTPError, RequestHandler

from bot.artifacts import registry_from_settings
from bot.contracts import ConfigError, Settings, utcnow
from bot.runtime import get_logger
from bot.runtime.forwarding import Network, client_address, networks
from panel_app.app import session
from panel_app.live_period import LivePeriod
from panel_app.queries import DashboardQueries

log = get_logger(__name__)
MAX_FAILED_LOGINS = 10
FAILED_LOGIN_WINDOW_S = 300
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
TITLE = "ITFF dashboard"


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def password_of(settings: Settings) -> str | None:
    """The dashboard password, or None; refuses to expose an unprotected dashboard."""
    password = settings.dash_password.get_secret_value() if settings.dash_password else ""
    if password:
        return password
    if not is_loopback(settings.dash_host):
        raise ConfigError(
            f"the dashboard would listen on {settings.dash_host} without a password: set "
            "ITFF_DASH_PASSWORD (and ITFF_DASH_USERNAME), or ITFF_DASH_HOST=127.0.0.1"
        )
    return None


class _Credentials:
    """The one user of the dashboard, checked in constant time, with failed logins throttled."""

    def __init__(self, username: str, password: str) -> None:
        self._username = username.encode()
        self._password = password.encode()
        self._failures: TTLCache[str, int] = TTLCache(maxsize=10_000, ttl=FAILED_LOGIN_WINDOW_S)

    def blocked(self, client: str) -> bool:
        return self._failures.get(client, 0) >= MAX_FAILED_LOGINS

    def check(self, client: str, username: str, password: str) -> bool:
        user_ok = hmac.compare_digest(username.encode(), self._username)
        password_ok = hmac.compare_digest(password.encode(), self._password)
        if user_ok and password_ok:
            self._failures.pop(client, None)
            return True
        self._failures[client] = self._failures.get(client, 0) + 1
        log.warning("dashboard login refused", client=client, user=username)
        return False


class _LoginHandler(BasicLoginHandler):
    credentials: _Credentials
    trusted_proxies: tuple[Network, ...] = ()

    def _client(self) -> str:
        """The address failed logins count against: behind `ITFF_TRUSTED_PROXIES`, the client's
        (so a flood through the proxy does not lock every trader out), never a spoofed one."""
        forwarded = self.request.headers.get("X-Forwarded-For")
        return client_address(self.request.remote_ip or "?", forwarded, self.trusted_proxies)

    def post(self) -> None:
        if self.credentials.blocked(self._client()):
            raise HTTPError(429, reason="Too many failed logins; wait five minutes")
        super().post()

    def _validate(self, username: str, password: str) -> bool:
        return self.credentials.check(self._client(), username, password)


class DashboardAuth(BasicAuthProvider):
    """Panel's login and logout pages, validating against the settings' single user."""

    def __init__(self, username: str, password: str, trusted_proxies: list[str]) -> None:
        self._credentials = _Credentials(username, password)
        self._trusted = networks(trusted_proxies)
        self._handler: type[RequestHandler] | None = None
        super().__init__()  # Bokeh reads `login_handler` in here

    @property
    def login_handler(self) -> type[RequestHandler]:
        if self._handler is None:
            self._handler = type(
                "ItffLoginHandler",
                (_LoginHandler,),
                {
                    "credentials": self._credentials,
                    "trusted_proxies": self._trusted,
                    "_login_endpoint": self._login_endpoint,
                    "_login_template": self._login_template,
                },
            )
        return self._handler


class HealthHandler(RequestHandler):
    """`GET /health`: 200 JSON without authentication; says whether the database answers."""

    def initialize(self, queries: DashboardQueries) -> None:
        self.queries = queries

    async def get(self) -> None:
        try:
            await asyncio.to_thread(self.queries.ping)
            database = "ok"
        except Exception as exc:
            database = f"unreachable: {type(exc).__name__}"
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        body = {
            "status": "ok" if database == "ok" else "degraded",
            "service": "itff-dashboard",
            "database": database,
            "time": utcnow().isoformat(),
        }
        self.finish(json.dumps(body))


def server_options(settings: Settings, queries: DashboardQueries) -> dict[str, Any]:
    """Keyword arguments of `pn.serve` for these settings (auth, origins, /health)."""
    password = password_of(settings)
    local = [
        f"{host}:{settings.dash_port}" for host in ("localhost", "127.0.0.1", settings.dash_host)
    ]
    # ITFF_DASH_ALLOWED_ORIGINS adds origins (a public hostname) to the local ones
    origins = list(dict.fromkeys([*local, *settings.dash_allowed_origins]))
    options: dict[str, Any] = {
        "port": settings.dash_port,
        "address": settings.dash_host,
        "websocket_origin": origins,
        "title": TITLE,
        "show": False,
        "extra_patterns": [(r"/health", HealthHandler, {"queries": queries})],
    }
    if password is not None:
        options["auth_provider"] = DashboardAuth(
            settings.dash_username, password, settings.trusted_proxies
        )
        options["cookie_secret"] = secrets.token_urlsafe(32)
    else:
        log.warning("dashboard has no password; it listens on loopback only")
    return options


def serve(settings: Settings) -> None:
    """Serve the dashboard until SIGTERM or SIGINT (blocking); either stops it cleanly (exit 0)."""
    queries = DashboardQueries.from_url(
        settings.database_url, ttl_seconds=max(1.0, settings.dash_refresh_seconds - 0.5)
    )
    options = server_options(settings, queries)
    pn.extension("tabulator", sizing_mode="stretch_width")
    live_period = LivePeriod(registry_from_settings(settings), cost_bps=settings.cost_bps)

    def app() -> pn.viewable.Viewable:
        return session(
            queries,
            drift_margin=settings.drift_margin,
            refresh_seconds=settings.dash_refresh_seconds,
            report_dir=settings.report_dir,
            live_period=live_period,
        )

    server = pn.serve({"/": app}, start=False, **options)
    loop = server.io_loop.asyncio_loop  # tornado's IOLoop runs on asyncio

    def stop(signum: signal.Signals) -> None:
        log.info("dashboard stopping", signal=signum.name)
        server.io_loop.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop, signum)
    log.info("dashboard listening", url=f"http://{settings.dash_host}:{settings.dash_port}")
    try:
        server.start()
        server.io_loop.start()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        server.stop()
        queries.close()
        log.info("dashboard stopped")
