"""Live metrics from running aggregates: O(1) per new outcome, whatever the history.

A `Segment` summarises an ordered run of one model's resolved signals (bar order) with what
`bot.core.live_scores.model_metrics` needs: the confusion counts, the absolute errors, the equity
growth and the running mean and variance of the strategy returns, and the trades at its two ends.
Segments combine (`combine(a, b)` is the segment of a's rows followed by b's), so a day's bucket
grows by one signal at a time, a window is the fold of its days' buckets and the all-time segment
grows with each new day. `segment_metrics` gives the same figures as `model_metrics` over the same
rows: counts exactly, sums and products up to floating-point rounding (the order of the additions
differs).

The costs of a position change depend on the position before it, so a segment keeps its first
signal's gross return apart (`first_gross`) and charges its entry cost when it is combined after
another segment or, at the start of a window, from a flat position.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bot.core import scores
from bot.core.backtesting import BPS
from bot.core.intervals import periods_per_year
from bot.core.targets import neutral_score

POSITIONS = {"buy": 1.0, "sell": -1.0, "hold": 0.0}
ArrayLike = NDArray[Any] | Sequence[float]


@dataclass(frozen=True, slots=True)
class Segment:
    """The sufficient statistics of one model's resolved signals over a run of bars."""

    first_bar: datetime
    last_bar: datetime
    n: int
    tp: int  # called up, went up
    fp: int  # called up, did not
    fn: int  # did not call up, went up
    abs_error: float  # sum |realised - prediction| (MAE of return models)
    first_p: float  # position of the first signal
    first_gross: float  # its p * r, before the cost of entering it
    last_p: float
    growth: float  # prod(1 + s) over the signals after the first
    s_count: int  # mean and sum of squared deviations (Welford) of s after the first
    s_mean: float
    s_m2: float
    first_side: float  # the run (same position) the segment starts with, and its p * r sum
    first_run: float
    last_side: float  # the run it ends with (the same as the first when `single`)
    last_run: float
    single: bool  # one run only
    profit: float  # returns of the trades closed inside, after both costs: gains and losses
    loss: float
    gross_growth: float  # prod(1 + strategy_return): the dashboard's equity, without costs

    def to_json(self) -> dict[str, Any]:
        # field by field: `dataclasses.asdict` deep-copies every value (130 us a segment)
        data = {name: getattr(self, name) for name in _SEGMENT_FIELDS}
        data["first_bar"] = self.first_bar.isoformat()
        data["last_bar"] = self.last_bar.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Segment:
        values = dict(data)
        values["first_bar"] = datetime.fromisoformat(values["first_bar"])
        values["last_bar"] = datetime.fromisoformat(values["last_bar"])
        return cls(**values)


_SEGMENT_FIELDS = tuple(item.name for item in fields(Segment))


def one(
    *,
    bar_time: datetime,
    target: str,
    prediction: float,
    action: str,
    realised_return: float,
    strategy_return: float,
) -> Segment:
    """The segment of a single resolved signal."""
    p = POSITIONS.get(action, 0.0)
    gross = p * (strategy_return / p) if p else 0.0  # as the backtest recomputes p * r
    up, called = realised_return > 0, prediction > neutral_score(target)
    return Segment(
        first_bar=bar_time,
        last_bar=bar_time,
        n=1,
        tp=int(up and called),
        fp=int(called and not up),
        fn=int(up and not called),
        abs_error=abs(realised_return - prediction),
        first_p=p,
        first_gross=gross,
        last_p=p,
        growth=1.0,
        s_count=0,
        s_mean=0.0,
        s_m2=0.0,
        first_side=p,
        first_run=gross,
        last_side=p,
        last_run=gross,
        single=True,
        profit=0.0,
        loss=0.0,
        gross_growth=1.0 + strategy_return,
    )


def _welford(count: int, mean: float, m2: float, value: float) -> tuple[int, float, float]:
    count += 1
    delta = value - mean
    mean += delta / count
    return count, mean, m2 + delta * (value - mean)


def _merge_stats(
    a: tuple[int, float, float], b: tuple[int, float, float]
) -> tuple[int, float, float]:
    (na, ma, qa), (nb, mb, qb) = a, b
    if nb == 0:
        return a
    if na == 0:
        return b
    n = na + nb
    delta = mb - ma
    return n, ma + delta * nb / n, qa + qb + delta * delta * na * nb / n


def _closed(side: float, gross: float, cost: float) -> tuple[float, float]:
    """(profit, loss) of a run closed by a later one: both sides' costs paid."""
    if side == 0:
        return 0.0, 0.0
    fee = cost * abs(side)
    value = gross - fee - fee
    return (value, 0.0) if value > 0 else (0.0, -value if value < 0 else 0.0)


def combine(a: Segment, b: Segment, *, cost_bps: float) -> Segment:
    """The segment of a's signals followed by b's (b's bars after a's)."""
    cost = cost_bps * BPS
    s = b.first_gross - cost * abs(b.first_p - a.last_p)
    stats = _merge_stats(_welford(a.s_count, a.s_mean, a.s_m2, s), (b.s_count, b.s_mean, b.s_m2))
    profit, loss = a.profit + b.profit, a.loss + b.loss
    first, last = (a.first_side, a.first_run), (b.last_side, b.last_run)
    if a.last_side == b.first_side:  # one run across the seam
        merged = a.last_run + b.first_run
        if a.single:
            first = (a.first_side, merged)
        if b.single:
            last = (b.last_side, merged)
        elif not a.single:
            gain, lost = _closed(a.last_side, merged, cost)
            profit, loss = profit + gain, loss + lost
        single = a.single and b.single
    else:
        ends = [] if a.single else [(a.last_side, a.last_run)]
        ends += [] if b.single else [(b.first_side, b.first_run)]
        for side, gross in ends:
            gain, lost = _closed(side, gross, cost)
            profit, loss = profit + gain, loss + lost
        single = False
    if single:
        last = first
    return replace(
        a,
        last_bar=b.last_bar,
        n=a.n + b.n,
        tp=a.tp + b.tp,
        fp=a.fp + b.fp,
        fn=a.fn + b.fn,
        abs_error=a.abs_error + b.abs_error,
        last_p=b.last_p,
        growth=a.growth * (1.0 + s) * b.growth,
        s_count=stats[0],
        s_mean=stats[1],
        s_m2=stats[2],
        first_side=first[0],
        first_run=first[1],
        last_side=last[0],
        last_run=last[1],
        single=single,
        profit=profit,
        loss=loss,
        gross_growth=a.gross_growth * b.gross_growth,
    )


def fold(segments: Iterable[Segment], *, cost_bps: float) -> Segment | None:
    """The segment of several in bar order (None for none)."""
    out: Segment | None = None
    for segment in segments:
        out = segment if out is None else combine(out, segment, cost_bps=cost_bps)
    return out


def _trading(segment: Segment, *, cost_bps: float, interval: str) -> dict[str, float | None]:
    cost = cost_bps * BPS
    s0 = segment.first_gross - cost * abs(segment.first_p)  # entered from flat
    count, mean, m2 = _merge_stats((1, s0, 0.0), (segment.s_count, segment.s_mean, segment.s_m2))
    sharpe = None
    if count >= 2 and m2 > 0:  # noqa: PLR2004 - a sample std needs two values
        ratio = mean / math.sqrt(m2 / (count - 1)) * math.sqrt(periods_per_year(interval))
        sharpe = ratio if math.isfinite(ratio) else None
    profit, loss = segment.profit, segment.loss
    runs = [(segment.first_side, segment.first_run, not segment.single)]
    if not segment.single:
        runs.append((segment.last_side, segment.last_run, False))
    for side, gross, closed in runs:
        if side != 0:
            fee = cost * abs(side)
            value = gross - fee - (fee if closed else 0.0)
            profit, loss = (profit + value, loss) if value > 0 else (profit, loss - min(value, 0))
    return {
        "profit_factor": profit / loss if loss > 0 else None,
        "sharpe": sharpe,
        "total_return": (1.0 + s0) * segment.growth - 1.0,
    }


def segment_metrics(
    segment: Segment, *, target: str, interval: str, cost_bps: float
) -> dict[str, float | None]:
    """`bot.core.live_scores.model_metrics` of the signals `segment` summarises."""
    n, tp, fp, fn = segment.n, segment.tp, segment.fp, segment.fn
    hits = n - fp - fn
    interval_ci = scores.wilson_interval(hits, n)
    out: dict[str, float | None] = {
        "accuracy": hits / n,
        "accuracy_ci_low": interval_ci[0] if interval_ci else None,
        "accuracy_ci_high": interval_ci[1] if interval_ci else None,
        "n": float(n),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "f1": 2.0 * tp / (2.0 * tp + fn + fp) if tp + fn + fp else 0.0,
        "roc_auc": None,
        "mae": segment.abs_error / n if target == "return" else None,
    }
    out.update(_trading(segment, cost_bps=cost_bps, interval=interval))
    out["signal_count"] = float(n)
    return out


def day_of(bar_time: datetime) -> datetime:
    """The UTC day (midnight) a bar belongs to: the key of its bucket."""
    utc = bar_time.astimezone(UTC)
    return datetime(utc.year, utc.month, utc.day, tzinfo=UTC)


def window_days_start(now: datetime, span: timedelta) -> datetime:
    """The first day of a window: the UTC day `span` before `now`, whole (windows are made of
    day buckets, so a 7-day window counts the bars from that day's midnight on)."""
    return day_of(now - span)


def bucket_name(day: datetime) -> str:
    """The stored name of a day's bucket, `YYYY-MM-DD` (they sort as the days do)."""
    return day.strftime("%Y-%m-%d")


@dataclass(slots=True)
class ModelAggregates:
    """One model's day buckets (some of them) and its all-time segment (None: to be refolded
    from every bucket)."""

    target: str
    interval: str
    days: dict[datetime, Segment]
    total: Segment | None
    dirty: set[datetime] = field(default_factory=set)  # days to recompute from their rows

    def add(self, signal: Segment, *, cost_bps: float) -> None:
        """Count one more resolved signal: O(1) when its bar follows the bucket's last one
        (the usual order); otherwise its day is marked to be recomputed from its rows."""
        day = day_of(signal.first_bar)
        held = self.days.get(day)
        if held is None and day not in self.dirty:
            self.days[day] = signal
        elif held is not None and signal.first_bar > held.last_bar:
            self.days[day] = combine(held, signal, cost_bps=cost_bps)
        else:
            self.dirty.add(day)
        if self.total is not None and signal.first_bar > self.total.last_bar:
            self.total = combine(self.total, signal, cost_bps=cost_bps)
        else:
            self.total = None


def window_metrics(
    models: dict[str, ModelAggregates],
    *,
    now: datetime,
    cost_bps: float,
    windows: tuple[tuple[str, timedelta | None], ...],
) -> dict[tuple[str, str], dict[str, float | None]]:
    """`bot.core.live_scores.live_metrics` from aggregates: per model, the all-time segment and
    the fold of the day buckets inside each window."""
    out: dict[tuple[str, str], dict[str, float | None]] = {}
    for key in sorted(models):
        model = models[key]
        for name, span in windows:
            if span is None:
                segment = model.total
            else:
                start = window_days_start(now, span)
                segment = fold(
                    (model.days[d] for d in sorted(model.days) if d >= start), cost_bps=cost_bps
                )
            if segment is not None:
                out[(key, name)] = segment_metrics(
                    segment, target=model.target, interval=model.interval, cost_bps=cost_bps
                )
    return out


def segment_of(
    *,
    bar_times: Sequence[datetime],
    target: str,
    predictions: ArrayLike,
    actions: Sequence[str],
    realised_returns: ArrayLike,
    strategy_returns: ArrayLike,
    cost_bps: float,
) -> Segment:
    """The segment of one model's resolved signals in bar order, computed over arrays: the same
    as folding `one` of each (a day's bucket in one step when many signals arrive at once)."""
    if len(actions) == 1:  # a replay's usual day: `one` costs a tenth of the arrays' set-up
        return one(
            bar_time=bar_times[0],
            target=target,
            prediction=float(predictions[0]),
            action=actions[0],
            realised_return=float(realised_returns[0]),
            strategy_return=float(strategy_returns[0]),
        )
    p = np.array([POSITIONS.get(a, 0.0) for a in actions], dtype=float)
    sr = np.asarray(strategy_returns, dtype=float)
    realised = np.asarray(realised_returns, dtype=float)
    prediction = np.asarray(predictions, dtype=float)
    gross = np.where(p != 0, p * (sr / np.where(p != 0, p, 1.0)), 0.0)
    up, called = realised > 0, prediction > neutral_score(target)
    cost = cost_bps * BPS
    rest = gross[1:] - cost * np.abs(np.diff(p))
    mean = float(np.mean(rest)) if rest.size else 0.0
    starts = np.flatnonzero(np.diff(p, prepend=np.nan) != 0)
    sides, runs = p[starts], np.add.reduceat(gross, starts)
    middle_sides, middle_runs = sides[1:-1], runs[1:-1]
    fees = cost * np.abs(middle_sides)
    closed = (middle_runs - fees - fees)[middle_sides != 0]
    return Segment(
        first_bar=bar_times[0],
        last_bar=bar_times[-1],
        n=int(p.size),
        tp=int(np.sum(up & called)),
        fp=int(np.sum(called & ~up)),
        fn=int(np.sum(up & ~called)),
        abs_error=float(np.sum(np.abs(realised - prediction))),
        first_p=float(p[0]),
        first_gross=float(gross[0]),
        last_p=float(p[-1]),
        growth=float(np.prod(1.0 + rest)),
        s_count=int(rest.size),
        s_mean=mean,
        s_m2=float(np.sum((rest - mean) ** 2)),
        first_side=float(sides[0]),
        first_run=float(runs[0]),
        last_side=float(sides[-1]),
        last_run=float(runs[-1]),
        single=bool(starts.size == 1),
        profit=float(np.sum(closed[closed > 0])),
        loss=float(-np.sum(closed[closed < 0])),
        gross_growth=float(np.prod(1.0 + sr)),
    )
