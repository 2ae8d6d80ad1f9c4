"""`itff report parity` and the daily report's parity section: every resolved live signal
recomputed by the batch path from the stored bars with the same model version
(`bot.core.parity`). Mismatches are counted in `itff_parity_mismatches_total{model_key}`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.artifacts import ArtifactRegistry
from bot.contracts import ItffError
from bot.core import LiveSignal, ParityResult, check_parity
from bot.pipeline import telemetry as m
from bot.pipeline.refresh import stored_bars
from bot.runtime import get_logger
from storage.signals import resolved_signal_rows
from storage.tables import SignalRow

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ParityReport:
    checked: int
    mismatches: list[ParityResult]


async def parity_report(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    registry: ArtifactRegistry,
    since: datetime | None = None,
    resolved: tuple[datetime, datetime] | None = None,
) -> ParityReport:
    """Check every resolved signal with bar time from `since` (and resolved within `resolved`);
    count the mismatches."""
    async with session_factory() as session:
        rows = await resolved_signal_rows(session=session, since=since, resolved=resolved)
    groups: dict[tuple[str, str, str, str], list[SignalRow]] = {}
    for row in rows:
        groups.setdefault((row.model_key, row.model_version, row.symbol, row.interval), []).append(
            row
        )
    mismatches: list[ParityResult] = []
    for (key, version, symbol, interval), members in groups.items():
        signals = [_live(row) for row in members]
        bars = await stored_bars(session_factory=session_factory, symbol=symbol, interval=interval)
        found = await asyncio.to_thread(_check, registry, key, version, bars, signals)
        bad = [result for result in found if result.problem is not None]
        if bad:
            m.PARITY_MISMATCHES.labels(key).inc(len(bad))
            log.error("parity_mismatch", model_key=key, version=version, count=len(bad))
        mismatches.extend(bad)
    return ParityReport(checked=len(rows), mismatches=mismatches)


def _check(
    registry: ArtifactRegistry,
    key: str,
    version: str,
    bars: pd.DataFrame,
    signals: Sequence[LiveSignal],
) -> list[ParityResult]:
    try:
        bundle = registry.load(key, version)
    except (ItffError, LookupError, OSError) as exc:
        problem = f"version {version} cannot be loaded: {exc}"
        return [ParityResult(s, None, None, problem) for s in signals]
    return check_parity(bars, bundle, signals)


def _live(row: SignalRow) -> LiveSignal:
    return LiveSignal(
        signal_id=row.signal_id,
        model_key=row.model_key,
        model_version=row.model_version,
        bar_time=row.bar_time,
        prediction=row.prediction,
        probability=row.probability,
        action=row.action,
        ood=row.ood,
    )
