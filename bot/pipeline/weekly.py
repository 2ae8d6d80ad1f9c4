"""`itff report weekly` and the scheduler's `weekly-report` job: each champion's live metrics over
the 7 and 30 days before the end of an ISO week, against the backtest stored with it, and the
drift rule's verdict (`bot.core.weekly_report`), PNG charts beside the Markdown, and, when
precision or recall drifts, recalibrated thresholds (`bot.core.recalibration`) that `--apply`
publishes as a new version of the model line and promotes through the champion switch."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import BadInput, Settings, utcnow
from bot.core import (
    LIVE_COLUMNS,
    Proposal,
    Thresholds,
    live_metrics,
    new_version,
    proposal_markdown,
    propose,
    wants_recalibration,
    weekly_markdown,
    weekly_paths,
    weekly_rows,
)
from bot.pipeline.same_period import resolved_frame, same_period_metrics
from bot.runtime import get_logger
from storage import model_versions as model_repo
from storage.bars import bars_between

if TYPE_CHECKING:
    from bot.artifacts import ArtifactRegistry
    from bot.pipeline.champions import ChampionSwitch
    from storage.tables import ModelVersion

log = get_logger(__name__)
WINDOWS = (("7d", timedelta(days=7)), ("30d", timedelta(days=30)))
LONGEST = timedelta(days=30)
# draws one PNG per champion from the report's rows: (rows of one champion, target) -> target
ChartRenderer = Callable[[list[dict[str, Any]], Path], Path]


@dataclass(frozen=True, slots=True)
class WeeklyReport:
    week: str
    markdown: Path
    rows: list[dict[str, Any]]
    charts: list[Path] = field(default_factory=list)
    proposals: list[Proposal] = field(default_factory=list)


def previous_week(now: datetime | None = None) -> str:
    """The last complete ISO week (Monday to Sunday, UTC), as `YYYY-Www`."""
    year, week, _ = ((now or utcnow()).date() - timedelta(days=7)).isocalendar()
    return f"{year}-W{week:02d}"


def week_end(week: str) -> datetime:
    """Midnight UTC after the Sunday of `YYYY-Www`."""
    try:
        monday = date.fromisocalendar(int(week[:4]), int(week.split("-W")[1]), 1)
    except (ValueError, IndexError) as exc:
        raise BadInput(f"--week must be an ISO week like 2026-W49, got {week!r}") from exc
    return datetime.combine(monday + timedelta(days=7), time(), tzinfo=UTC)


def chart_path(report_dir: Path, week: str, key: str) -> Path:
    """`REPORT_DIR/live/weekly/YYYY-Www/<model_key>.png`."""
    return weekly_paths(report_dir, week)[0].with_suffix("") / f"{key}.png"


async def weekly_report(
    settings: Settings,
    *,
    session_factory: async_sessionmaker[AsyncSession],
    week: str,
    now: datetime | None = None,
    registry: ArtifactRegistry | None = None,
    charts: ChartRenderer | None = None,
) -> WeeklyReport:
    """Write the report of `week` (an ISO week that is over) under `ITFF_REPORT_DIR/live/weekly`.

    `registry`: to read the champions' current thresholds (no proposals without it); `charts`:
    draws each champion's PNG (none without it)."""
    end = week_end(week)
    if end > (now or utcnow()):
        raise BadInput(f"{week} is not over yet (UTC); e.g. --week {previous_week(now)}")
    frame = await resolved_frame(session_factory, since=end - LONGEST, until=end)
    async with session_factory() as session:
        champions = await model_repo.list_versions(session=session, status=model_repo.CHAMPION)
    live = await asyncio.to_thread(
        live_metrics, frame.loc[:, list(LIVE_COLUMNS)], now=end, cost_bps=settings.cost_bps,
        windows=WINDOWS,
    )  # fmt: skip
    backtest = {row.model_key: dict(row.metrics) for row in champions}
    same = None
    if registry is not None:
        same = await same_period_metrics(
            settings, session_factory, registry, champions=champions, frame=frame, now=end,
            windows=WINDOWS,
        )  # fmt: skip
    rows = weekly_rows(live, backtest, margin=settings.drift_margin, same_period=same)
    proposals = []
    if registry is not None:
        proposals = await _proposals(
            settings, session_factory, registry,
            rows=rows, champions=champions, frame=frame, since=end - LONGEST,
        )  # fmt: skip
    drawn = await _charts(settings, week, rows, charts)
    markdown, document = weekly_paths(settings.report_dir, week)
    markdown.parent.mkdir(parents=True, exist_ok=True)
    record = {"week": week, "rows": rows, "proposals": [p.as_record() for p in proposals]}
    document.write_text(json.dumps(record, indent=2) + "\n")
    text = weekly_markdown(week, rows, settings.drift_margin)
    text += "\n".join([*_chart_lines(markdown, drawn), *proposal_markdown(proposals, week)])
    markdown.write_text(text)
    log.info(
        "weekly_report_written", week=week, path=str(markdown), rows=len(rows),
        charts=len(drawn), proposals=len(proposals),
    )  # fmt: skip
    return WeeklyReport(week, markdown, rows, drawn, proposals)


async def _charts(
    settings: Settings, week: str, rows: list[dict[str, Any]], charts: ChartRenderer | None
) -> list[Path]:
    if charts is None:
        return []
    drawn = []
    for key in sorted({row["model_key"] for row in rows}):
        mine = [row for row in rows if row["model_key"] == key]
        target = chart_path(settings.report_dir, week, key)
        drawn.append(await asyncio.to_thread(charts, mine, target))
    return drawn


def _chart_lines(markdown: Path, drawn: list[Path]) -> list[str]:
    if not drawn:
        return []
    lines = ["## Charts (live vs backtest per rate metric)", ""]
    for path in drawn:
        lines += [f"![{path.stem}]({path.relative_to(markdown.parent).as_posix()})", ""]
    return lines


async def _proposals(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    registry: ArtifactRegistry,
    *,
    rows: list[dict[str, Any]],
    champions: Sequence[ModelVersion],
    frame: pd.DataFrame,
    since: datetime,
) -> list[Proposal]:
    """A proposal per champion whose precision or recall drifts in either window, computed on
    its 30-day window's resolved signals."""
    drifting = {row["model_key"] for row in rows if wants_recalibration(row)}
    proposals = []
    for champion in (c for c in champions if c.model_key in drifting):
        meta = await asyncio.to_thread(registry.meta, champion.model_key, champion.version)
        interval = str(meta["interval"])
        async with session_factory() as session:
            bars = await bars_between(
                session=session, symbol=champion.symbol, interval=interval, start=since
            )
        mine = frame[frame["model_key"] == champion.model_key].sort_values("bar_time")
        mine = mine.assign(next_return=_next_returns(bars, mine["bar_time"]))
        mine = mine[np.isfinite(mine["next_return"].to_numpy(dtype=float))]
        work = partial(
            propose, model_key=champion.model_key, version=champion.version,
            target=champion.target, interval=interval,
            current=Thresholds(float(meta["thresholds"]["buy"]), float(meta["thresholds"]["sell"])),
            scores_=mine["prediction"].to_numpy(dtype=float),
            next_returns=mine["next_return"].to_numpy(dtype=float),
            realised=mine["realised_return"].to_numpy(dtype=float), cost_bps=settings.cost_bps,
        )  # fmt: skip
        proposals.append(await asyncio.to_thread(work))
    return proposals


def _next_returns(bars: pd.DataFrame, times: pd.Series) -> npt.NDArray[np.float64]:
    """The one-bar simple return after each bar time (NaN where the next bar is not stored)."""
    close = bars["close"].astype(float)
    forward = (close.shift(-1) / close - 1.0).to_numpy()
    index = pd.DatetimeIndex(bars.index)
    wanted = pd.DatetimeIndex(pd.to_datetime(times, utc=True))
    where = index.get_indexer(wanted)
    return np.where(where >= 0, forward[np.maximum(where, 0)], np.nan)


async def apply_proposals(
    report: WeeklyReport, *, switch: ChampionSwitch, now: datetime | None = None
) -> list[str]:
    """Publish each proposal as a new version of its model line (the champion's model files with
    the proposed thresholds) and promote it through the champion switch; the new versions."""
    applied = []
    for item in report.proposals:
        version = new_version(item.model_key, now)
        reason = (
            f"weekly report {report.week}: thresholds recalibrated on {item.signals} live signals "
            f"(sell {item.current.sell:.4f} -> {item.proposed.sell:.4f}, "
            f"buy {item.current.buy:.4f} -> {item.proposed.buy:.4f})"
        )
        published = await asyncio.to_thread(
            switch.registry.derive, item.model_key, item.version,
            new_version=version, thresholds=item.proposed, reason=reason,
        )  # fmt: skip
        metrics = await _record_derived(switch, item, version, published.sha256)
        await switch.promote(
            key=item.model_key, version=version, sha256=published.sha256,
            previous=item.version, reason=reason, metrics=metrics,
        )  # fmt: skip
        applied.append(version)
    return applied


async def _record_derived(
    switch: ChampionSwitch, item: Proposal, version: str, sha256: str
) -> dict[str, float | None]:
    """The `model_versions` row of a recalibrated version: the source's backtest metrics."""
    async with switch.session_factory() as session:
        source = await model_repo.get_version(
            session=session, key=item.model_key, version=item.version
        )
        if source is None:
            raise BadInput(
                f"{item.model_key}/{item.version} is not recorded; run `itff db upgrade`"
            )
        metrics = dict(source.metrics)
        await model_repo.add_version(
            session=session, key=item.model_key, version=version, symbol=source.symbol,
            target=source.target, model_type=source.model_type, sha256=sha256, metrics=metrics,
            train_start=source.train_start, train_end=source.train_end, run_id=None,
        )  # fmt: skip
        await session.commit()
    return {k: v if v is None else float(v) for k, v in metrics.items() if _number(v)}


def _number(value: object) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))
