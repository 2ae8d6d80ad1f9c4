"""`itff webhook` (run the receiver) and `itff replay` (send a CSV of bars to it)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.contracts import BadInput, Settings, load_settings, service_settings

if TYPE_CHECKING:
    from producers.replay import ReplaySummary, Shot


def register(app: typer.Typer) -> None:
    app.command("webhook")(webhook)
    app.command("replay")(replay)


def webhook(
    host: str | None = typer.Option(None, help="Listen address (ITFF_WEBHOOK_HOST)"),
    port: int | None = typer.Option(None, help="Listen port (ITFF_WEBHOOK_PORT)"),
) -> None:
    """Run the webhook receiver until Ctrl-C (graceful shutdown, outbox drainer awaited)."""
    from bot.runtime import single_native_thread

    single_native_thread()
    from bot.runtime import configure_logging
    from producers import create_app, metrics_listener
    from producers.server import serve
    from storage.migrate import upgrade

    settings = service_settings("webhook")
    configure_logging(level=settings.log_level, json=settings.log_json, service="itff-webhook")
    upgrade(settings.database_url)
    host, port = host or settings.webhook_host, port or settings.webhook_port
    typer.echo(
        f"itff webhook: listening on http://{host}:{port} (POST /webhook/tradingview, "
        f"POST /webhook, POST /predict, GET /health, GET /ready); metrics on "
        f"http://{settings.metrics_host}:{settings.webhook_metrics_port}/metrics; "
        f"Kafka {settings.bootstrap}, topic {settings.topics.alerts}",
        err=True,
    )
    app = create_app(settings)
    app.cleanup_ctx.append(metrics_listener(settings.metrics_host, settings.webhook_metrics_port))
    serve(app, host=host, port=port)


File = Annotated[Path, typer.Argument(help="CSV of bars: time,open,high,low,close,volume")]
SymbolOpt = Annotated[str | None, typer.Option(help="Ticker sent (default: from the file name)")]
Rate = Annotated[float, typer.Option(help="Alerts per second; 0 sends as fast as possible")]
Url = Annotated[str | None, typer.Option(help="Receiver base URL (default: the local receiver)")]
Signed = Annotated[bool, typer.Option("--signed", help="Sign with ITFF_WEBHOOK_SECRET")]
Limit = Annotated[int | None, typer.Option(min=1, help="Send only the last N bars")]
IntervalOpt = Annotated[str | None, typer.Option(help="Interval field (default ITFF_INTERVAL)")]
Concurrency = Annotated[int, typer.Option(min=1, max=512, help="Requests in flight at most")]


def replay(  # noqa: PLR0917 - one parameter per command-line option
    file: File,
    symbol: SymbolOpt = None,
    rate: Rate = 10.0,
    url: Url = None,
    signed: Signed = False,
    limit: Limit = None,
    interval: IntervalOpt = None,
    concurrency: Concurrency = 8,
) -> None:
    """Send the bars of a CSV to the receiver as TradingView alerts (or signed requests)."""
    from producers import replay as rp

    settings = load_settings()
    bars = rp.read_bars(file, limit)
    ticker = (symbol or rp.symbol_from(file)).upper()
    chosen = interval or settings.interval
    shots = list(
        rp.signed_shots(bars, symbol=ticker, interval=chosen, secret=_secret(settings))
        if signed
        else rp.tradingview_shots(
            bars,
            symbol=ticker,
            interval=chosen,
            passphrase=settings.tradingview_passphrase.get_secret_value(),
        )
    )
    base = (url or f"http://127.0.0.1:{settings.webhook_port}").rstrip("/")
    summary = asyncio.run(_run(base, shots, rate, concurrency))
    for line in summary.lines():
        typer.echo(line)
    if summary.rejected:
        raise typer.Exit(1)


def _secret(settings: Settings) -> str:
    if not settings.webhook_secrets:
        raise BadInput("--signed needs ITFF_WEBHOOK_SECRET (whsec_...), the receiver's secret")
    return settings.webhook_secrets[0]


async def _run(base: str, shots: list[Shot], rate: float, concurrency: int) -> ReplaySummary:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from producers import replay as rp

    async with rp.client_session(concurrency) as session:
        await rp.check_reachable(session, base)
        columns = (BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, transient=True) as progress:
            task = progress.add_task("replay", total=len(shots))
            return await rp.fire(
                session,
                base,
                shots,
                rate=rate,
                concurrency=concurrency,
                on_result=lambda: progress.advance(task),
            )
