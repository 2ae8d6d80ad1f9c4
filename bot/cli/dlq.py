"""`itff dlq list|show|replay`: the consumer's dead letters (`itff.alerts.dlq`).

Reading never commits anything (no consumer group). A replay sends the original records unchanged,
so each alert keeps its `alert_id` and one that already has signals gets none again
(docs/consumers.md, "Dead letters").
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from bot.contracts import BadInput, Settings, load_settings

if TYPE_CHECKING:
    from bot.kafka import LetterFilter, StoredLetter

T = TypeVar("T")
ERROR_CHARS = 80
SHOWN_BYTES = 4096  # of an original that is not JSON
COLUMNS = ("dlq", "failed_at", "reason", "stage", "original", "alert_id", "symbol", "error")
# keys whose values are never shown, should an original (written by any producer) carry one
SECRET_KEY = re.compile(r"pass|secret|token|password|signature|api.?key", re.IGNORECASE)

Reason = Annotated[list[str] | None, typer.Option("--reason", help="only this reason (repeatable)")]
Since = Annotated[
    str | None, typer.Option(help="failed at or after: ISO time or a duration ago (2h, 3d)")
]
Until = Annotated[
    str | None, typer.Option(help="failed at or before: ISO time or a duration ago (2h, 3d)")
]
Limit = Annotated[int, typer.Option(min=1, help="at most this many letters, oldest first")]
Ref = Annotated[str, typer.Argument(help="OFFSET or PARTITION:OFFSET on the dead-letter topic")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="replay without asking")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="list what would be sent; send nothing")]
IncludeInvalid = Annotated[
    bool,
    typer.Option(
        "--include-invalid",
        help="send originals that are not valid alerts too (they are dead-lettered again)",
    ),
]


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one Kafka call; aiokafka's own warnings stay quiet: a failure is one line of ours."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    return asyncio.run(coro)


def _letters(settings: Settings, chosen: LetterFilter | None = None) -> list[StoredLetter]:
    from bot.kafka import read_dead_letters

    found = _run(read_dead_letters(settings))
    if found.unreadable:
        typer.echo(
            f"note: {len(found.unreadable)} records on {settings.topics.dlq} are not dead "
            f"letters: {', '.join(found.unreadable[:10])}",
            err=True,
        )
    return chosen.apply(found.letters) if chosen else found.letters


def _filter(reason: list[str] | None, since: str | None, until: str | None) -> LetterFilter:
    from bot.kafka import LetterFilter, parse_when

    return LetterFilter(
        reasons=frozenset(reason or ()),
        since=parse_when(since) if since else None,
        until=parse_when(until) if until else None,
    )


def _one_line(text: str, limit: int = ERROR_CHARS) -> str:
    flat = " ".join(text.split())
    return flat[: limit - 3] + "..." if len(flat) > limit else flat


def _origin(stored: StoredLetter) -> str:
    letter = stored.letter
    if letter.topic is None:
        return "-"
    return f"{letter.topic}[{letter.partition}]@{letter.offset}"


def _row(stored: StoredLetter) -> tuple[str, ...]:
    letter, alert = stored.letter, stored.alert
    return (
        stored.ref,
        letter.failed_at.isoformat(timespec="seconds"),
        letter.reason,
        letter.stage,
        _origin(stored),
        alert.alert_id if alert else "-",
        alert.symbol if alert else "-",
        _one_line(letter.error),
    )


def _table(letters: Sequence[StoredLetter]) -> str:
    rows = [COLUMNS, *(_row(stored) for stored in letters)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)), row[-1]])
        for row in rows
    )


def _redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: "**********" if SECRET_KEY.search(str(k)) else _redacted(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value


def _original(original: bytes) -> str:
    """Pretty JSON (secret-looking keys masked), else the bytes as base64."""
    try:
        return json.dumps(_redacted(json.loads(original)), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):
        encoded = base64.b64encode(original[:SHOWN_BYTES]).decode()
        more = " ..." if len(original) > SHOWN_BYTES else ""
        return f"(not JSON; {len(original)} bytes, base64) {encoded}{more}"


def _find(letters: Sequence[StoredLetter], ref: str) -> StoredLetter:
    partition, _, offset = ref.rpartition(":")
    if not offset.isdigit() or (partition and not partition.isdigit()):
        raise BadInput(f"{ref!r} is not OFFSET or PARTITION:OFFSET; see `itff dlq list`")
    found = [
        s
        for s in letters
        if s.offset == int(offset) and (not partition or s.partition == int(partition))
    ]
    if not found:
        raise BadInput(f"no dead letter at {ref}; see `itff dlq list`")
    if len(found) > 1:
        refs = ", ".join(s.ref for s in found)
        raise BadInput(f"{ref} is on several partitions ({refs}); give PARTITION:OFFSET")
    return found[0]


def _show(stored: StoredLetter) -> str:
    letter = stored.letter
    fields = {
        "dlq": stored.ref,
        "failed_at": letter.failed_at.isoformat(),
        "reason": letter.reason,
        "stage": letter.stage,
        "original": f"{_origin(stored)} ({len(letter.original)} bytes)",
        "alert_id": stored.alert.alert_id if stored.alert else "- (not a valid alert)",
        "error": letter.error,
    }
    lines = [f"{name + ':':<11}{value}" for name, value in fields.items()]
    return "\n".join([*lines, "original value:", _original(letter.original)])


def _skipped(skipped: dict[str, int]) -> str:
    return "; ".join(f"{count} skipped: {why}" for why, count in skipped.items())


def replay_command(  # noqa: PLR0917 - one parameter per command-line option
    reason: Reason = None,
    since: Since = None,
    until: Until = None,
    dry_run: DryRun = False,
    yes: Yes = False,
    include_invalid: IncludeInvalid = False,
) -> None:
    """Send the original alerts of the chosen letters to the alerts topic again, unchanged (same
    alert_id: an alert that already has signals gets none again)."""
    from bot.kafka import plan_replay, republish

    settings = load_settings()
    chosen = _letters(settings, _filter(reason, since, until))
    plan = plan_replay(chosen, include_invalid=include_invalid)
    if plan.skipped:
        hint = "" if include_invalid else " (--include-invalid sends those that are not alerts)"
        typer.echo(f"{_skipped(plan.skipped)}{hint}")
    if not plan.send:
        typer.echo("nothing to replay")
        return
    target = f"{len(plan.send)} originals to {settings.topics.alerts}"
    if dry_run:
        typer.echo(_table(plan.send))
        typer.echo(f"dry run: would replay {target}")
        return
    if not yes:
        typer.confirm(f"replay {target}?", abort=True)
    sent = _run(republish(settings, plan.send))
    typer.echo(f"replayed {sent} originals to {settings.topics.alerts}")


def register(app: typer.Typer) -> None:
    dlq = typer.Typer(
        help="The consumer's dead letters: list, show, replay the originals.",
        no_args_is_help=True,
    )

    @dlq.command("list")
    def list_letters(
        reason: Reason = None,
        since: Since = None,
        until: Until = None,
        limit: Limit = 100,
    ) -> None:
        """Dead letters, oldest first: place on the topic, failed_at, reason, stage, the original's
        topic[partition]@offset, alert id, symbol, error (shortened)."""
        settings = load_settings()
        letters = _letters(settings, _filter(reason, since, until))
        typer.echo(f"{settings.topics.dlq}: {len(letters)} dead letters")
        if letters:
            typer.echo(_table(letters[:limit]))

    @dlq.command("show")
    def show(ref: Ref) -> None:
        """One dead letter in full, its original pretty-printed when JSON."""
        typer.echo(_show(_find(_letters(load_settings()), ref)))

    dlq.command("replay")(replay_command)
    app.add_typer(dlq, name="dlq")
