"""Dashboard authentication on every route the server has, not only `/`: the routes are read from
the Bokeh/Panel server that `itff dashboard` builds (a route added later is covered too), then each
is requested from a running `itff dashboard` without a login."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import panel as pn
import pytest
from pydantic import SecretStr

from bot.contracts import Settings
from panel_app.queries import DashboardQueries
from panel_app.server import server_options
from tests.support.env import child_env
from tests.support.processes import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
USERNAME, PASSWORD = "trader", "correct-horse-battery-staple"
# open by design: platform checks, the login pages, and package assets (Bokeh's and Panel's
# JavaScript and CSS, `/components/` being Panel's StaticFileHandler for its components' files)
PUBLIC = {"/health", "/login", "/logout", "/favicon.ico", "/static/", "/static/extensions/"}
PUBLIC |= {"/components/"}
# the arguments a route needs to get as far as its login check (else a 400 says nothing)
QUERY = {"/autoload.js": "?bokeh-autoload-element=p1&bokeh-absolute-url=http://127.0.0.1/"}
START_S = 240.0


def route_paths(settings: Settings) -> set[str]:
    """The path of every route of the dashboard's server, a sample value in each wildcard."""
    queries = DashboardQueries.from_url(settings.database_url)
    try:
        options = server_options(settings, queries) | {"port": free_port()}
        server = pn.serve({"/": lambda: pn.pane.Markdown("x")}, start=False, **options)
        try:
            rules = server._tornado.wildcard_router.rules
            patterns = [rule.matcher.regex.pattern for rule in rules]
        finally:
            server.stop()
    finally:
        queries.close()
    paths = set()
    for pattern in patterns:
        path = re.sub(r"\(\?!extensions/\)", "", pattern).removesuffix("$").replace("/?", "/")
        paths.add(path.replace("(.*)", ""))
    return paths


@pytest.fixture
def dashboard(settings: Settings, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = child_env(
        settings,
        ITFF_DASH_HOST="127.0.0.1",
        ITFF_DASH_PORT=str(port),
        ITFF_DASH_USERNAME=USERNAME,
        ITFF_DASH_PASSWORD=PASSWORD,
        ITFF_LOG_JSON="false",
    )
    log = tmp_path / "dashboard.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("itff")), "dashboard"],
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=sink,
        )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


async def wait_healthy(http: aiohttp.ClientSession, url: str) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        try:
            async with http.get(f"{url}/health") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio_sleep(0.5)
    pytest.fail(f"itff dashboard did not answer /health within {START_S} s")


async def asyncio_sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def refused(url: str, status: int, location: str) -> bool:
    """A request without a login: sent to the login page, or refused outright."""
    if status in {301, 302, 303, 307}:
        return urllib.parse.urlsplit(urllib.parse.urljoin(url, location)).path == "/login"
    return status in {401, 403}


async def test_every_route_but_health_login_and_assets_needs_a_login(
    settings: Settings, dashboard: str
) -> None:
    locked = settings.model_copy(update={"dash_password": SecretStr(PASSWORD)})
    paths = route_paths(locked)
    protected = sorted(p for p in paths if p not in PUBLIC)
    assert {"/", "/ws", "/metadata", "/autoload.js"} <= set(protected)
    # unsafe: keep the login cookie of an IP-address host (127.0.0.1)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await wait_healthy(http, dashboard)
        answers = {}
        for path in protected:
            url = f"{dashboard}{path}{QUERY.get(path, '')}"
            async with http.get(url, allow_redirects=False) as response:
                answers[url] = (response.status, response.headers.get("Location", ""))
        let_through = {url: a for url, a in answers.items() if not refused(url, *a)}
        assert let_through == {}
        with pytest.raises(aiohttp.WSServerHandshakeError):  # no websocket session either
            await http.ws_connect(f"{dashboard}/ws")

        # logged in, the same routes answer (so the refusals above came from the login check)
        form = {"username": USERNAME, "password": PASSWORD}
        async with http.post(f"{dashboard}/login", data=form, allow_redirects=False) as login:
            assert login.status == 302
        for path in ("/", "/metadata", "/autoload.js"):
            url = f"{dashboard}{path}{QUERY.get(path, '')}"
            async with http.get(url, allow_redirects=False) as page:
                assert page.status == 200, url
