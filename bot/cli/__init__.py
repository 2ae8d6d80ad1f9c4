"""The `itff` command line. Each command group lives in its own module under `bot.cli`.

Errors reach the user as one line that says what to do, never as a traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer

from bot.contracts import ConfigError, ItffError

app = typer.Typer(
    name="itff",
    help="ITFF: TradingView alerts -> Kafka -> scikit-learn signals.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module defines `register(app)`. Add a module here when it is created.
COMMAND_MODULES = (
    "bot.cli.db",
    "bot.cli.kafka",
    "bot.cli.postgres",
    "bot.cli.up",
    "bot.cli.artifacts",
    "bot.cli.consumer",
    "bot.cli.dashboard",
    "bot.cli.pipeline",
    "bot.cli.train",
    "bot.cli.webhook",
    "bot.cli.outbox",
    "bot.cli.dlq",
    "bot.cli.contract",
    "bot.cli.signals",
    "bot.cli.notifier",
    "bot.cli.metrics",
)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


def _exit_for_click(exc: Exception) -> None:
    """Usage errors and `Exit` from Typer's bundled click keep their own message and code."""
    show = getattr(exc, "show", None)
    code = getattr(exc, "exit_code", None)
    if callable(show):
        show()
    if isinstance(code, int):
        sys.exit(code)
    if type(exc).__name__ == "Abort":
        sys.exit(1)


def _safe(exc: BaseException) -> str:
    """The error as one line, with any URL's password masked."""
    from bot.runtime import mask_url_passwords

    return mask_url_passwords(str(exc))


def main() -> None:
    """Console entry point."""
    _register_all()
    try:
        code = app(standalone_mode=False)
    except ConfigError as exc:
        typer.secho(f"itff: configuration error: {_safe(exc)}", err=True, fg="red")
        sys.exit(2)
    except ItffError as exc:
        typer.secho(f"itff: {_safe(exc)}", err=True, fg="red")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        _exit_for_click(exc)
        typer.secho(
            f"itff: unexpected error: {type(exc).__name__}: {_safe(exc)} "
            "(set ITFF_LOG_LEVEL=DEBUG and see the logs)",
            err=True,
            fg="red",
        )
        sys.exit(1)
    if isinstance(code, int) and code:  # without standalone mode, `typer.Exit(n)` returns n
        sys.exit(code)
