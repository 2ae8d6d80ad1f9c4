"""The dashboard in a real browser: `itff dashboard` served, Debian's Chromium driven by Playwright.

The database is seeded through the storage repository functions with known figures
(`tests/support/dashboard.py`). Without Chromium these tests fail, they never skip.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect, sync_playwright

from bot.contracts import Signal, utcnow
from panel_app.snapshot import CHROMIUM_ARGS
from storage import signals as signal_repo
from storage.db import create_engine, create_session_factory
from storage.migrate import upgrade_async
from tests.support.dashboard import A_KEY, BAR0, N_SIGNALS, Seeded, seed_dashboard
from tests.support.env import child_env
from tests.support.images import colours, rgb
from tests.support.kafka import run_sync

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
USERNAME, PASSWORD = "trader", "correct-horse-battery-staple"
START_DEADLINE_S = 240.0
UI_TIMEOUT_MS = 60_000
expect.set_options(timeout=UI_TIMEOUT_MS)  # a wait for the page, not a speed requirement


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Chromium is missing: `apt-get install chromium` (or `make system-deps`)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _seed(database_url: str) -> Seeded:
    await upgrade_async(database_url)
    engine = create_engine(database_url)
    try:
        return await seed_dashboard(create_session_factory(engine))
    finally:
        await engine.dispose()


class Served:
    def __init__(self, url: str, database_url: str, seeded: Seeded, workdir: Path) -> None:
        self.url, self.database_url, self.seeded, self.workdir = url, database_url, seeded, workdir


def _wait_for_health(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"itff dashboard exited with {process.returncode}: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    pytest.fail(f"itff dashboard did not answer /health: {log.read_text()}")


PARITY = {  # the daily report's JSON: what the Reports tab's parity section reads
    "parity_checked": 12,
    "parity_mismatches": [
        {
            "signal_id": "sig-7", "model_key": "SPX-direction-logreg", "model_version": "v1",
            "bar_time": "2026-12-03T00:00:00+00:00", "problem": "action buy live, sell batch",
        }
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("dashboard")
    database_url = f"sqlite+aiosqlite:///{workdir / 'itff.db'}"
    seeded = run_sync(_seed(database_url))
    daily = workdir / "reports" / "live" / "daily"  # ITFF_REPORT_DIR is `reports` under the cwd
    daily.mkdir(parents=True)
    (daily / "2026-12-03.md").write_text(REPORT)
    (daily / "2026-12-03.json").write_text(json.dumps(PARITY))
    _weekly_with_chart(workdir)
    port = free_port()
    env = child_env(
        ITFF_DATABASE_URL=database_url,
        ITFF_DASH_HOST="127.0.0.1",
        ITFF_DASH_PORT=str(port),
        ITFF_DASH_USERNAME=USERNAME,
        ITFF_DASH_PASSWORD=PASSWORD,
        ITFF_DASH_REFRESH_SECONDS="2",
        ITFF_LOG_JSON="false",
        ITFF_TRUSTED_PROXIES="127.0.0.1",  # the tests below post as a proxy would
    )
    log = workdir / "dashboard.log"
    itff = Path(sys.executable).parent / "itff"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(itff), "dashboard"], cwd=workdir, env=env, stdout=sink, stderr=sink
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_health(process, url, log)
        yield Served(url, database_url, seeded, workdir)
    finally:
        process.terminate()
        returncode = process.wait(timeout=30)
    assert returncode == 0, f"SIGTERM should stop the dashboard cleanly: {log.read_text()}"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    executable = chromium()
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=executable,
            args=list(CHROMIUM_ARGS),
            viewport={"width": 1500, "height": 1000},
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        yield context
        context.close()


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    browser.clear_cookies()
    tab = browser.new_page()
    yield tab
    tab.close()


REPORT = "# Daily report 2026-12-03\n\n- alerts accepted: 12\n- signals: 36 (buy: 20, hold: 16)\n"
CHART_SIZE = (320, 200)
WEEKLY = (  # as `itff report weekly` links its charts, and a link trying to leave the folder
    "# Weekly report 2026-W49\n\n## Charts (live vs backtest per rate metric)\n\n"
    "![SPX-direction-logreg](2026-W49/SPX-direction-logreg.png)\n\n"
    "![outside](../../../outside.png)\n"
)


def _weekly_with_chart(workdir: Path) -> None:
    from PIL import Image

    weekly = workdir / "reports" / "live" / "weekly"
    (weekly / "2026-W49").mkdir(parents=True)
    (weekly / "2026-W49.md").write_text(WEEKLY)
    Image.new("RGB", CHART_SIZE, "#0072B2").save(weekly / "2026-W49" / "SPX-direction-logreg.png")
    Image.new("RGB", CHART_SIZE, "#D55E00").save(workdir / "outside.png")  # not a report's


def login(page: Page, url: str, *, username: str = USERNAME, password: str = PASSWORD) -> None:
    page.goto(f"{url}/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def off_the_browser_loop(work: Callable[[], object]) -> None:
    """Playwright's sync API runs an event loop in this thread; other loops need their own."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(work).result()


def shown(page: Page, text: str, *, exact: bool = True) -> Locator:
    """The first visible element with this text (hidden tabs hold the same figures)."""
    return page.get_by_text(text, exact=exact).filter(visible=True).first


def open_tab(page: Page, name: str) -> None:
    page.locator(".bk-tab", has_text=name).click()


def save(page: Page, tmp_path: Path, name: str) -> None:
    """Keep the screenshot with the test and under reports/ for a human to look at."""
    shot = tmp_path / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    keep = ROOT / "reports" / "e2e" / "dashboard"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, keep / shot.name)


def test_health_answers_without_login(served: Served) -> None:
    with urllib.request.urlopen(f"{served.url}/health", timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        body = json.loads(response.read())
    assert body["status"] == "ok"
    assert body["database"] == "ok"


def _post_login(url: str, client: str, password: str) -> int:
    form = urllib.parse.urlencode({"username": USERNAME, "password": password}).encode()
    request = urllib.request.Request(
        f"{url}/login", data=form, headers={"X-Forwarded-For": f"203.0.113.9, {client}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_failed_logins_behind_the_proxy_block_that_client_only(served: Served) -> None:
    """Every request comes from the proxy (127.0.0.1): the throttle counts the forwarded client,
    so one client's guesses do not lock every trader out; the left hop (forgeable) is ignored."""
    guesses = [_post_login(served.url, "198.51.100.7", f"guess-{n}") for n in range(12)]
    assert 429 not in guesses[:10]
    assert guesses[10:] == [429, 429]
    assert _post_login(served.url, "198.51.100.8", "wrong-again") != 429
    assert _post_login(served.url, "198.51.100.8", PASSWORD) != 429


def test_the_dashboard_needs_a_login(served: Served, page: Page) -> None:
    page.goto(f"{served.url}/")
    expect(page).to_have_url(f"{served.url}/login?next=%2F")
    expect(page.locator("input[name=password]")).to_be_visible()


@pytest.mark.parametrize(
    ("username", "password"),
    [(USERNAME, "wrong-password"), ("intruder", PASSWORD), (USERNAME, "")],
)
def test_a_wrong_login_is_refused(served: Served, page: Page, username: str, password: str) -> None:
    login(page, served.url, username=username, password=password)
    expect(page.get_by_text("Invalid username or password!")).to_be_visible()
    assert "/login" in page.url
    page.goto(f"{served.url}/")
    expect(page).to_have_url(f"{served.url}/login?next=%2F")


def test_a_trader_sees_every_view(served: Served, page: Page, tmp_path: Path) -> None:
    login(page, served.url)
    expect(page).to_have_url(f"{served.url}/")
    expect(shown(page, "2 champion models")).to_be_visible()

    for figure in ("56.25%", "48.25%", "0.0091", "1,200", "within margin"):
        expect(shown(page, figure)).to_be_visible()
    expect(shown(page, "directional accuracy -8.0 pp", exact=False)).to_be_visible()
    expect(shown(page, "drifting: SPX-direction-logreg", exact=False)).to_be_visible()
    # no artifacts, so no backtest on the live period: the Drift column says what it compared
    expect(shown(page, "Compared with")).to_be_visible()
    expect(shown(page, "stored backtest").first).to_be_visible()
    # the seeded champions have no artifacts here: the same-period table says so per model
    expect(shown(page, "Backtest on the live period", exact=False)).to_be_visible()
    expect(shown(page, "unavailable: ", exact=False).first).to_be_visible()
    assert_wholly_shown(page, ("drift", "comparison"))
    save(page, tmp_path, "overview")

    open_tab(page, "Equity")
    expect(shown(page, "same period: 2018-10-01 to 2018-10-15", exact=False)).to_be_visible()
    expect(page.locator(".bk-Canvas").filter(visible=True).first).to_be_visible()
    expect(shown(page, "live +1.41% over 15 bars", exact=False)).to_be_visible()
    save(page, tmp_path, "equity")

    open_tab(page, "Signals")
    expect(shown(page, f"Latest {2 * N_SIGNALS} signals", exact=False)).to_be_visible()
    expect(shown(page, "SPX-019")).to_be_visible()
    save(page, tmp_path, "signals")

    open_tab(page, "Models")
    for text in ("champion", "retired", "challenger", "FAILED", "b" * 64):
        expect(shown(page, text)).to_be_visible()
    expect(shown(page, "accuracy 0.5625 beats 0.54")).to_be_visible()
    save(page, tmp_path, "models")

    open_tab(page, "Pipeline")
    for text in ("failed", "succeeded", "42.50", "data source unavailable"):
        expect(shown(page, text)).to_be_visible()
    expect(shown(page, "logs/pipeline/run-1.log")).to_be_visible()
    save(page, tmp_path, "pipeline")

    open_tab(page, "Reports")
    expect(page.get_by_role("heading", name="Daily report 2026-12-03")).to_be_visible()
    expect(shown(page, "alerts accepted: 12", exact=False)).to_be_visible()
    expect(shown(page, "1 mismatch(es) in 12 resolved signals", exact=False)).to_be_visible()
    expect(shown(page, "action buy live, sell batch")).to_be_visible()
    save(page, tmp_path, "reports")
    page.locator("select").filter(visible=True).first.select_option(label="weekly 2026-W49")
    chart = page.locator('img[alt="SPX-direction-logreg"]').filter(visible=True).first
    expect(chart).to_be_visible()
    # displayed: the browser decoded the embedded PNG at its size
    assert chart.evaluate("img => img.decode().then(() => img.naturalWidth)") == CHART_SIZE[0]
    expect(shown(page, "not shown: it is outside the reports folder", exact=False)).to_be_visible()
    assert page.locator('img[alt="outside"]').count() == 0
    save(page, tmp_path, "reports-weekly")

    open_tab(page, "Latency")
    latencies = np.array(served.seeded.a_latencies + served.seeded.b_latencies)
    p50, p99 = np.quantile(latencies, [0.5, 0.99])
    expect(shown(page, f"p50 {p50:,.1f} ms")).to_be_visible()
    expect(shown(page, f"p99 {p99:,.1f} ms")).to_be_visible()
    save(page, tmp_path, "latency")


def assert_wholly_shown(page: Page, fields: tuple[str, ...]) -> None:
    """Each visible cell of these columns shows all of its text: nothing cut off below or right."""
    selector = ", ".join(f'.tabulator-cell[tabulator-field="{field}"]' for field in fields)
    cells = page.locator(selector).filter(visible=True)
    expect(cells.first).to_be_visible()
    clipped = [
        cell.inner_text()
        for cell in cells.all()
        if cell.evaluate(
            "c => c.scrollHeight > c.clientHeight + 1 || c.scrollWidth > c.clientWidth + 1"
        )
    ]
    assert clipped == [], f"cut off in the table: {clipped}"


def test_signals_filter_and_update_without_a_reload(
    served: Served, page: Page, tmp_path: Path
) -> None:
    login(page, served.url)
    open_tab(page, "Signals")
    expect(shown(page, f"Latest {2 * N_SIGNALS} signals", exact=False)).to_be_visible()
    action = page.locator(".choices", has=page.locator("input")).nth(2)
    action.click()
    page.keyboard.type("sell")
    page.keyboard.press("Enter")
    expect(shown(page, f"Latest {N_SIGNALS // 2} signals", exact=False)).to_be_visible()

    off_the_browser_loop(lambda: run_sync(_add_sell_signal(served.database_url)))
    # the page is not reloaded: the periodic refresh brings the new signal in
    expect(shown(page, f"Latest {N_SIGNALS // 2 + 1} signals", exact=False)).to_be_visible()
    expect(shown(page, "SPX-live")).to_be_visible()
    save(page, tmp_path, "signals-filtered")


async def _add_sell_signal(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        factory = create_session_factory(engine)
        async with factory() as session:
            await signal_repo.insert_signals(
                session=session,
                signals=[
                    Signal(
                        alert_id="SPX-live",
                        symbol="SPX",
                        interval="1D",
                        bar_time=BAR0 + timedelta(days=200),
                        model_key=A_KEY,
                        model_version="v2",
                        target="direction",
                        prediction=0.2,
                        probability=0.2,
                        action="sell",
                        ood=False,
                        latency_ms=12.0,
                        emitted_at=utcnow(),
                    )
                ],
                horizons={A_KEY: 1},
            )
            await session.commit()
    finally:
        await engine.dispose()


def test_report_snapshot_renders_the_key_charts(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.cli import main
    from panel_app.views.theme import BACKTEST_COLOR, LIVE_COLOR

    target = tmp_path / "snapshot.png"
    monkeypatch.setenv("ITFF_DATABASE_URL", served.database_url)
    monkeypatch.setattr(
        sys, "argv", ["itff", "report", "snapshot", "--window", "all", "--output", str(target)]
    )
    off_the_browser_loop(main)  # exits (SystemExit) only on failure
    from PIL import Image

    with Image.open(target) as image:
        width, height = image.size
    assert width >= 1400
    assert height > 1000
    found = colours(target)
    assert rgb(LIVE_COLOR) in found
    assert rgb(BACKTEST_COLOR) in found
    keep = ROOT / "reports" / "e2e" / "dashboard"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(target, keep / "snapshot.png")
