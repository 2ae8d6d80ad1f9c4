"""`itff postgres start | stop | status`: the local PostgreSQL server."""

from __future__ import annotations

import typer

from bot.contracts import load_settings


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def start_command() -> None:
    """Start the local server in the background (idempotent; initdb the first time) and print
    the URL to set as ITFF_DATABASE_URL."""
    from bot import postgres

    server = postgres.LocalPostgres.from_settings(load_settings())
    result = postgres.start(server)
    if result.started:
        first = " (new cluster, database itff created)" if result.initialised else ""
        typer.echo(
            f"PostgreSQL started on localhost:{result.port} (pid {result.pid}) in "
            f"{result.seconds:.1f} s{first}; data in {server.pgdata}"
        )
    else:
        typer.echo(f"PostgreSQL already runs on localhost:{result.port} (pid {result.pid})")
    typer.echo(f"ITFF_DATABASE_URL={server.url(result.port)}")
    typer.echo("then create the tables: itff db upgrade")


def stop_command(
    timeout: int = typer.Option(30, help="seconds of a fast shutdown before an immediate one"),
) -> None:
    """Stop the local server (fast shutdown: sessions ended, clean checkpoint)."""
    from bot import postgres

    server = postgres.LocalPostgres.from_settings(load_settings())
    if postgres.stop(server, timeout=timeout):
        typer.echo(f"PostgreSQL of {server.pgdata} stopped")
    else:
        typer.echo(f"no local PostgreSQL of {server.pgdata} is running")


def status_command() -> None:
    """Running or stopped, pid, port, uptime, memory and the URL of the local server."""
    from bot import postgres

    server = postgres.LocalPostgres.from_settings(load_settings())
    found = postgres.status(server)
    if not found.running:
        typer.echo(f"stopped (data {server.pgdata}); start it with: itff postgres start")
        raise typer.Exit(3)
    rss = "-" if found.rss_bytes is None else f"{found.rss_bytes / 2**20:.0f} MiB"
    typer.echo(
        f"running  pid {found.pid}  port {found.port}  uptime {_duration(found.uptime_seconds)}  "
        f"rss {rss}  data {server.pgdata}"
    )
    typer.echo(f"ITFF_DATABASE_URL={server.url(found.port)}")


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="A local PostgreSQL server (Debian's binaries) for several processes or tests.",
        no_args_is_help=True,
    )
    group.command("start")(start_command)
    group.command("stop")(stop_command)
    group.command("status")(status_command)
    app.add_typer(group, name="postgres")
