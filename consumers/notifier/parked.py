"""`itff notifications retry`: send parked notifications again, with the notifier's own delivery
(retries, backoff, parking), each row updated with its new result."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from bot.contracts import BadInput, Settings, Signal
from consumers.notifier.delivery import Deliverer, Result
from consumers.notifier.destinations import destinations, http_session
from storage.db import create_engine, create_session_factory
from storage.migrate import upgrade_async
from storage.notifications import list_notifications
from storage.tables import Notification


async def notifications(
    settings: Settings,
    *,
    parked_only: bool = False,
    destination_names: Collection[str] = (),
    limit: int = 1000,
) -> Sequence[Notification]:
    await upgrade_async(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as session:
            return await list_notifications(
                session=session,
                status="parked" if parked_only else None,
                destinations=destination_names,
                limit=limit,
            )
    finally:
        await engine.dispose()


async def retry_parked(
    settings: Settings,
    *,
    destination_names: Collection[str] = (),
    signal_ids: Collection[str] = (),
) -> list[Result]:
    """Each parked notification chosen, delivered again to its destination (if still configured)."""
    configured = {d.name: d for d in destinations(settings)}
    unknown = set(destination_names) - set(configured)
    if unknown:
        raise BadInput(
            f"no destination {sorted(unknown)} is configured; configured: {sorted(configured)}"
        )
    await upgrade_async(settings.database_url)
    engine = create_engine(settings.database_url)
    factory = create_session_factory(engine)
    http = http_session(settings)
    results = []
    try:
        async with factory() as session:
            rows = await list_notifications(
                session=session,
                status="parked",
                destinations=destination_names,
                signal_ids=signal_ids,
            )
        for row in rows:
            target = configured.get(row.destination)
            if target is None:
                continue
            deliverer = Deliverer(
                [target],
                http=http,
                session_factory=factory,
                park_after=settings.notifier_park_after_seconds,
            )
            signal = Signal.model_validate_json(row.signal)
            result = await deliverer.deliver(target, signal)
            await deliverer.record(signal, [result])
            results.append(result)
    finally:
        await http.close()
        await engine.dispose()
    return results
