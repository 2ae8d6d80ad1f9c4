"""`itff kafka fetch | start | stop | status | topics`: the local Apache Kafka broker."""

from __future__ import annotations

import asyncio

import typer

from bot.contracts import Settings, load_settings


def _external(settings: Settings) -> bool:
    if settings.uses_local_kafka:
        return False
    typer.echo(
        f"ITFF_KAFKA_BOOTSTRAP is set: the external cluster at {settings.bootstrap} is used; "
        "no local broker is started or stopped"
    )
    return True


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f} MiB"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def fetch_command() -> None:
    """Download the Apache Kafka jars with Maven into ITFF_KAFKA_CACHE_DIR (once)."""
    from bot.kafka import local as kafka_local

    broker = kafka_local.LocalBroker.from_settings(load_settings())
    if kafka_local.fetch(broker):
        typer.echo(f"fetched Apache Kafka {broker.version} into {broker.libs}")
    else:
        typer.echo(f"Apache Kafka {broker.version} is already in {broker.libs}")


def start_command() -> None:
    """Start the local broker in the background (idempotent) and wait until it answers."""
    from bot.kafka import local as kafka_local

    settings = load_settings()
    if _external(settings):
        return
    broker = kafka_local.LocalBroker.from_settings(settings)
    result = asyncio.run(kafka_local.start(broker))
    if not result.started:
        typer.echo(f"a Kafka broker already answers on {broker.bootstrap}; nothing to do")
        return
    typer.echo(
        f"Kafka {broker.version} started on {broker.bootstrap} (pid {result.pid}) "
        f"in {result.seconds:.1f} s; logs in {broker.log_dir}"
    )


def stop_command(
    timeout: float = typer.Option(30.0, help="seconds to wait before SIGKILL"),
) -> None:
    """Stop the local broker: SIGTERM, then SIGKILL after the timeout."""
    from bot.kafka import local as kafka_local

    settings = load_settings()
    if _external(settings):
        return
    broker = kafka_local.LocalBroker.from_settings(settings)
    if kafka_local.stop(broker, timeout=timeout):
        typer.echo(f"Kafka on {broker.bootstrap} stopped")
    else:
        typer.echo(f"no local Kafka broker of {broker.data_dir} is running")


def status_command() -> None:
    """Running or stopped, pid, port, uptime and memory of the local broker."""
    from bot.kafka import local as kafka_local

    settings = load_settings()
    if not settings.uses_local_kafka:
        answers = asyncio.run(kafka_local.broker_answers(settings.bootstrap))
        state = "answers" if answers else "does NOT answer"
        typer.echo(f"external cluster {settings.bootstrap} {state}")
        raise typer.Exit(0 if answers else 1)
    broker = kafka_local.LocalBroker.from_settings(settings)
    found = kafka_local.status(broker)
    if not found.running:
        typer.echo(f"stopped (port {found.port}, data {broker.data_dir})")
        if kafka_local.port_open(broker.port):
            typer.echo(f"note: something else answers on port {broker.port} (another data dir?)")
        raise typer.Exit(3)
    typer.echo(
        f"running  pid {found.pid}  port {found.port}  uptime {_duration(found.uptime_seconds)}  "
        f"rss {_mib(found.rss_bytes)}  version {broker.version}  data {broker.data_dir}"
    )


def topics_command() -> None:
    """Create the ITFF topics if missing and list them with their partition counts."""
    from bot.kafka import admin as kafka_admin

    settings = load_settings()
    asyncio.run(kafka_admin.ensure_topics(settings))
    partitions = asyncio.run(kafka_admin.describe_topics(settings, settings.topics.all()))
    for name in settings.topics.all():
        typer.echo(f"{name:<32} partitions={partitions[name]}")


def register(app: typer.Typer) -> None:
    kafka = typer.Typer(
        help="The local Apache Kafka broker and the ITFF topics.", no_args_is_help=True
    )
    kafka.command("fetch")(fetch_command)
    kafka.command("start")(start_command)
    kafka.command("stop")(stop_command)
    kafka.command("status")(status_command)
    kafka.command("topics")(topics_command)
    app.add_typer(kafka, name="kafka")
