"""`itff up`: the whole bot on this machine.

Kafka (the local broker unless `ITFF_KAFKA_BOOTSTRAP` is set), the topics, the database schema, a
first model when there is none, then the services as supervised child processes until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from bot.contracts import Settings, TransientError, load_settings
from bot.runtime import mask_url_passwords

# Runs the `itff` entry point of this very interpreter, whatever PATH holds.
ITFF = (sys.executable, "-c", "import sys; from bot.cli import main; sys.argv[0] = 'itff'; main()")


@dataclass(frozen=True, slots=True)
class Service:
    """One service of `itff up`: its `itff` command and what the user can open."""

    name: str
    command: tuple[str, ...]
    where: Callable[[Settings], str]
    # why it does not start with these settings (None: it starts)
    idle: Callable[[Settings], str | None] = lambda _settings: None


def _no_destination(settings: Settings) -> str | None:
    configured = (
        settings.signal_webhook_urls,
        settings.telegram_bot_token,
        settings.discord_webhook_url,
    )
    if any(configured):
        return None
    return "no destination (ITFF_SIGNAL_WEBHOOK_URLS, ITFF_TELEGRAM_*, ITFF_DISCORD_WEBHOOK_URL)"


SERVICES = (
    Service(
        "webhook",
        ("webhook",),
        lambda s: (
            f"http://localhost:{s.webhook_port}  (POST /webhook/tradingview, /health, /metrics)"
        ),
    ),
    Service(
        "consumer",
        ("consumer",),
        lambda s: f"metrics http://localhost:{s.consumer_metrics_port}/metrics",
    ),
    Service(
        "scheduler",
        ("scheduler",),
        lambda s: f"metrics http://localhost:{s.scheduler_metrics_port}/metrics",
    ),
    Service("dashboard", ("dashboard",), lambda s: f"http://localhost:{s.dash_port}"),
    Service(
        "notifier",
        ("notifier",),
        lambda s: f"metrics http://localhost:{s.notifier_metrics_port}/metrics",
        _no_destination,
    ),
)
# The first training leaves the newest bars out, so that the README's `itff replay --limit 300`
# of the sample's last bars is an out-of-sample test of the models, not a replay of their
# training data; the scheduler's daily pipeline then trains on everything.
DEMO_HOLDOUT_BARS = 300
TRAIN_COMMAND = ("pipeline", "run")
TRAIN_ARGS = ("--holdout-bars", str(DEMO_HOLDOUT_BARS))


def registered(path: Sequence[str]) -> bool:
    """True when `itff <path...>` is a command of this build."""
    import typer.main

    from bot.cli import app

    command: Any = typer.main.get_command(app)
    for part in path:
        commands = getattr(command, "commands", None)
        if not isinstance(commands, dict) or part not in commands:
            return False
        command = commands[part]
    return True


def _kafka(settings: Settings) -> bool:
    """Make sure a broker answers; True when this call started the local one."""
    from bot.kafka import local as kafka_local

    if not settings.uses_local_kafka:
        if not asyncio.run(kafka_local.broker_answers(settings.bootstrap, wait_seconds=10.0)):
            raise TransientError(
                f"the Kafka cluster at ITFF_KAFKA_BOOTSTRAP={settings.bootstrap} does not answer; "
                "check it, or unset ITFF_KAFKA_BOOTSTRAP to run the local broker"
            )
        typer.echo(f"kafka      external cluster {settings.bootstrap}")
        return False
    broker = kafka_local.LocalBroker.from_settings(settings)
    result = asyncio.run(kafka_local.start(broker))
    state = f"started in {result.seconds:.1f} s" if result.started else "already running"
    typer.echo(f"kafka      {broker.bootstrap}  Apache Kafka {broker.version}, {state}")
    return result.started


def _prepare(settings: Settings) -> None:
    from bot.kafka import describe_topics, ensure_topics
    from storage.migrate import upgrade

    asyncio.run(ensure_topics(settings))
    counts = asyncio.run(describe_topics(settings, settings.topics.all()))
    typer.echo("topics     " + ", ".join(f"{name} ({n})" for name, n in counts.items()))
    upgrade(settings.database_url)
    typer.echo(f"database   {mask_url_passwords(settings.database_url)} (migrated)")


def has_champion(settings: Settings) -> bool:
    return any(settings.artifact_dir.glob("*/CHAMPION"))


def _train_first_model(settings: Settings) -> None:
    """Without any champion the consumer could emit no signal: train once before it starts."""
    if has_champion(settings):
        return
    command = (*TRAIN_COMMAND, *TRAIN_ARGS)
    typer.echo(
        f"models     none in {settings.artifact_dir}: training now (itff {' '.join(command)}; "
        f"the newest {DEMO_HOLDOUT_BARS} bars of each symbol are held out for `itff replay`)"
    )
    done = subprocess.run([*ITFF, *command], check=False)  # noqa: S603 - our own entry point
    if done.returncode != 0 or not has_champion(settings):
        typer.secho(
            "models     training did not promote a model; the consumer starts without signals "
            "until the scheduler's pipeline succeeds (see the output above)",
            fg="yellow",
        )


def _services(settings: Settings, skip: Sequence[str]) -> list[Any]:
    from bot.runtime import ServiceSpec

    specs = []
    for service in SERVICES:
        if service.name in skip:
            typer.echo(f"{service.name:<10} skipped (--skip)")
        elif (idle := service.idle(settings)) is not None:
            typer.echo(f"{service.name:<10} not started: {idle}")
        elif not registered(service.command):
            typer.echo(
                f"{service.name:<10} not available: 'itff {service.name}' is not in this build"
            )
        else:
            specs.append(ServiceSpec(service.name, [*ITFF, *service.command]))
            typer.echo(f"{service.name:<10} {service.where(settings)}")
    return specs


def _supervise(specs: list[Any]) -> int:
    from bot.runtime import Supervisor, supervise

    if not specs:
        typer.secho("no service to run", fg="red", err=True)
        return 1
    typer.echo("Ctrl-C stops everything.")
    return asyncio.run(supervise(Supervisor(specs)))


def up_command(
    skip: Annotated[
        list[str] | None, typer.Option("--skip", help="a service not to start (repeatable)")
    ] = None,
    train: Annotated[
        bool, typer.Option(help="train a first model when none is promoted yet")
    ] = True,
) -> None:
    """Start Kafka, create the topics, migrate the database, and run every service until Ctrl-C."""
    from bot.kafka import local as kafka_local
    from bot.runtime import configure_logging

    skip = skip or []
    settings = load_settings()
    configure_logging(level=settings.log_level, json=settings.log_json, service="up")
    started_kafka = _kafka(settings)
    code = 1
    try:
        _prepare(settings)
        if train and "consumer" not in skip:
            _train_first_model(settings)
        code = _supervise(_services(settings, skip))
    finally:
        if started_kafka:
            typer.echo("kafka      stopping the broker this command started")
            kafka_local.stop(kafka_local.LocalBroker.from_settings(settings))
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("up")(up_command)
