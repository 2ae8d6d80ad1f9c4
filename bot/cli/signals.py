"""`itff signals tail`: watch `itff.signals` live, as a downstream subscriber does.

No consumer group: nothing is committed and no other reader is disturbed. A readable table by
default, one JSON message per line with `--json` (the record's value as sent).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.text import Text

from bot.contracts import Signal, load_settings

if TYPE_CHECKING:
    from bot.core.signal_filter import SignalFilter

Symbols = Annotated[
    list[str] | None, typer.Option("--symbol", help="only this symbol (repeatable)")
]
Models = Annotated[
    list[str] | None, typer.Option("--model", help="only this model key (repeatable)")
]
Actions = Annotated[
    list[str] | None, typer.Option("--action", help="only buy, sell or hold (repeatable)")
]
FromBeginning = Annotated[
    bool, typer.Option("--from-beginning", help="every signal the topic still holds, then live")
]
AsJson = Annotated[bool, typer.Option("--json", help="one JSON message per line, as sent")]
Count = Annotated[int | None, typer.Option(min=1, help="stop after this many matching signals")]
# each column with its width
COLUMNS = {
    "emitted_at": 19,
    "symbol": 10,
    "interval": 8,
    "bar_time": 19,
    "action": 6,
    "probability": 11,
    "prediction": 10,
    "ood": 5,
    "model_key": 28,
    "model_version": 20,
    "latency_ms": 10,
}
STYLE = {"buy": "bold green", "sell": "bold red", "hold": "dim"}


def _cells(signal: Signal) -> dict[str, str]:
    probability = "-" if signal.probability is None else f"{signal.probability:.3f}"
    return {
        "emitted_at": signal.emitted_at.strftime("%Y-%m-%d %H:%M:%S"),
        "symbol": signal.symbol,
        "interval": signal.interval,
        "bar_time": signal.bar_time.strftime("%Y-%m-%d %H:%M:%S"),
        "action": signal.action,
        "probability": probability,
        "prediction": f"{signal.prediction:.4g}",
        "ood": "yes" if signal.ood else "no",
        "model_key": signal.model_key,
        "model_version": signal.model_version,
        "latency_ms": f"{signal.latency_ms:.1f}",
    }


def row(signal: Signal) -> Text:
    """One line of the table, the action coloured."""
    line = Text()
    for name, text in _cells(signal).items():
        line.append(text.ljust(COLUMNS[name]) + " ", style=STYLE[text] if name == "action" else "")
    return line


def header() -> Text:
    return Text(" ".join(name.ljust(width) for name, width in COLUMNS.items()), style="bold")


async def _tail(
    chosen: SignalFilter, *, from_beginning: bool, as_json: bool, count: int | None
) -> None:
    from bot.kafka.signals import tail_signals

    settings = load_settings()
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    shown = 0

    def ready(topic: str) -> None:
        start = "its beginning" if from_beginning else "now"
        err.print(f"tailing {topic} on {settings.bootstrap} from {start}; Ctrl-C to stop")
        if not as_json:
            out.print(header())

    async for record in tail_signals(settings, from_beginning=from_beginning, on_ready=ready):
        if record.signal is None:
            err.print(f"{record.partition}:{record.offset} {record.error}", markup=False)
            continue
        if not chosen.matches(record.signal):
            continue
        if as_json:
            sys.stdout.write(record.value.decode() + "\n")
            sys.stdout.flush()
        else:
            out.print(row(record.signal))
        shown += 1
        if count is not None and shown >= count:
            return


def register(app: typer.Typer) -> None:
    signals = typer.Typer(help="The signals topic, as a subscriber reads it.", no_args_is_help=True)

    @signals.command("tail")
    def tail(  # noqa: PLR0917 - typer passes options by keyword
        symbol: Symbols = None,
        model: Models = None,
        action: Actions = None,
        from_beginning: FromBeginning = False,
        as_json: AsJson = False,
        count: Count = None,
    ) -> None:
        """Signals as they arrive (without a consumer group: nothing committed), as a table or
        JSON lines; records that are not valid signals are named on stderr."""
        from bot.core.signal_filter import SignalFilter

        chosen = SignalFilter.of(symbols=symbol or (), models=model or (), actions=action or ())
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        asyncio.run(_tail(chosen, from_beginning=from_beginning, as_json=as_json, count=count))

    app.add_typer(signals, name="signals")
