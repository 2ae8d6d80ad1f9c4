"""`itff outbox list|retry|drop`: the receiver's outbox, above all its parked entries.

An entry is parked once Kafka refused it `ITFF_OUTBOX_MAX_ATTEMPTS` times (docs/webhook.md). The
commands work on the database of ITFF_DATABASE_URL while the receiver runs: it notices entries
queued again within seconds. Payloads are never shown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from bot.contracts import BadInput, Settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from storage.outbox import OutboxCounts, OutboxSummary

ERROR_CHARS = 120
COLUMNS = ("id", "alert_id", "topic", "attempts", "state", "parked_at", "last_error")

Entry = Annotated[str | None, typer.Argument(help="entry id or alert id (see `itff outbox list`)")]
Parked = Annotated[bool, typer.Option("--parked", help="only the parked entries")]
Limit = Annotated[int, typer.Option(min=1, help="at most this many entries, oldest first")]
Every = Annotated[bool, typer.Option("--all", help="every parked entry")]
AllParked = Annotated[bool, typer.Option("--all-parked", help="every parked entry")]


@asynccontextmanager
async def _session(settings: Settings) -> AsyncIterator[AsyncSession]:
    """One transaction on the migrated database, committed with synchronous=FULL as the
    receiver's own."""
    from storage.db import create_engine, create_session_factory
    from storage.migrate import upgrade_async

    await upgrade_async(settings.database_url)
    engine = create_engine(settings.database_url, synchronous="FULL")
    try:
        async with create_session_factory(engine)() as session, session.begin():
            yield session
    finally:
        await engine.dispose()


async def _find_parked(session: AsyncSession, ref: str) -> OutboxSummary:
    from storage import outbox as repo

    found = await repo.find_outbox_entries(session=session, ref=ref)
    if not found:
        raise BadInput(f"no outbox entry has the id or alert id {ref!r}; see `itff outbox list`")
    if len(found) > 1:
        ids = ", ".join(str(entry.id) for entry in found)
        raise BadInput(f"{ref!r} matches entries {ids} (an id and an alert id); give the id")
    (entry,) = found
    if entry.parked_at is None:
        raise BadInput(
            f"entry {entry.id} (alert {entry.alert_id}) is queued, not parked: the receiver is "
            "still delivering it"
        )
    return entry


async def _list(
    settings: Settings, *, parked_only: bool, limit: int
) -> tuple[OutboxCounts, list[OutboxSummary]]:
    from storage import outbox as repo

    async with _session(settings) as session:
        counts = await repo.outbox_counts(session=session)
        entries = await repo.list_outbox_entries(
            session=session, parked_only=parked_only, limit=limit
        )
    return counts, entries


async def _retry(settings: Settings, ref: str | None) -> list[OutboxSummary]:
    from storage import outbox as repo

    async with _session(settings) as session:
        chosen = [await _find_parked(session, ref)] if ref else None
        if chosen is None:
            chosen = await repo.list_outbox_entries(session=session, parked_only=True)
        await repo.unpark_outbox_entries(session=session, ids=[entry.id for entry in chosen])
        return chosen


async def _drop(settings: Settings, ref: str | None) -> list[OutboxSummary]:
    from storage import outbox as repo

    async with _session(settings) as session:
        ids = [(await _find_parked(session, ref)).id] if ref else None
        return await repo.delete_parked_entries(session=session, ids=ids)


def _one_of(ref: str | None, *, every: bool, flag: str) -> None:
    if (ref is None) == (not every):
        raise BadInput(f"give either one entry (its id or alert id) or {flag}")


def _entries(count: int) -> str:
    return f"{count} parked {'entry' if count == 1 else 'entries'}"


def _error(entry: OutboxSummary) -> str:
    """The last error on one line, shortened."""
    error = " ".join((entry.last_error or "-").split())
    return error[: ERROR_CHARS - 3] + "..." if len(error) > ERROR_CHARS else error


def _row(entry: OutboxSummary) -> tuple[str, ...]:
    return (
        str(entry.id),
        entry.alert_id,
        entry.topic,
        str(entry.attempts),
        "queued" if entry.parked_at is None else "parked",
        entry.parked_at.isoformat(timespec="seconds") if entry.parked_at else "-",
        _error(entry),
    )


def _table(entries: Sequence[OutboxSummary]) -> str:
    rows = [COLUMNS, *(_row(entry) for entry in entries)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)), row[-1]])
        for row in rows
    )


def register(app: typer.Typer) -> None:
    outbox = typer.Typer(
        help="The receiver's outbox: queued and parked alerts.", no_args_is_help=True
    )

    @outbox.command("list")
    def list_entries(
        parked: Parked = False,
        limit: Limit = 100,
    ) -> None:
        """Queued and parked entries, oldest first: id, alert id, topic, attempts, state,
        parked_at, last error (never the payload)."""
        counts, entries = asyncio.run(_list(load_settings(), parked_only=parked, limit=limit))
        typer.echo(f"outbox: {counts.queued} queued, {counts.parked} parked")
        if entries:
            typer.echo(_table(entries))

    @outbox.command("retry")
    def retry(
        entry: Entry = None,
        every: Every = False,
    ) -> None:
        """Queue a parked entry again (or every one with --all), with fresh attempts."""
        _one_of(entry, every=every, flag="--all")
        retried = asyncio.run(_retry(load_settings(), entry))
        for summary in retried:
            typer.echo(f"queued again: entry {summary.id} (alert {summary.alert_id})")
        if not retried:
            typer.echo("no parked entries")
            return
        typer.echo(
            f"{_entries(len(retried))} queued again; a running receiver sends them within seconds"
        )

    @outbox.command("drop")
    def drop(
        entry: Entry = None,
        all_parked: AllParked = False,
    ) -> None:
        """Delete a parked entry (or every one with --all-parked): its alert is not delivered."""
        _one_of(entry, every=all_parked, flag="--all-parked")
        dropped = asyncio.run(_drop(load_settings(), entry))
        for summary in dropped:
            typer.echo(
                f"dropped: entry {summary.id} (alert {summary.alert_id}, topic {summary.topic}, "
                f"{summary.attempts} attempts, last error: {_error(summary)})"
            )
        typer.echo(f"{_entries(len(dropped))} dropped" if dropped else "no parked entries")

    app.add_typer(outbox, name="outbox")
