"""Costs as history grows: live metrics, their rebuild and the dashboard's queries over N
resolved signals.

Per size (`--sizes 100k,1m`, `10m` allowed): a SQLite file under `--dir` (default
`var/bench-history/`) built by the migrations, seeded in SQL (one `INSERT ... SELECT` over a
recursive counter, no Python per row) with N resolved signals and their outcomes: `--models`
champions (`direction` and `return` targets alternate) on one-minute bars ending now, buy, sell
and hold calls, random returns and latencies. Then, on that copy:

- the full rebuild (`itff metrics rebuild`'s work: every resolved signal read and recomputed);
- `--batches` rounds of one new batch of outcomes (`--batch` resolved signals, the newest bars of
  every model) followed by the snapshot the outcome worker runs after it (the cost per batch);
- every dashboard query the live, equity, latency and signals views make, each on a cold query
  cache (the second of two runs, each on a new reader: the first pays the process's warm-up);
- the database size.

One table side by side at the end. Prints figures; it is not a pass/fail test.

    .venv/bin/python bench/history.py [--sizes 100k,1m] [--batch 100] [--batches 3]
        [--models 10] [--dir var/bench-history] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.contracts import utcnow  # noqa: E402
from bot.pipeline import rebuild_live_metrics, snapshot_live_metrics  # noqa: E402
from panel_app.queries import DashboardQueries  # noqa: E402
from storage.db import create_engine, create_session_factory  # noqa: E402
from storage.migrate import upgrade  # noqa: E402

SIZES = {"100k": 100_000, "1m": 1_000_000, "10m": 10_000_000}
COST_BPS = 1.0
STAMP = "%Y-%m-%d %H:%M:%S.000000"  # storage.tables' SQLite datetime text

# one statement, one row per counter value: model = i % models, bar = i / models (minute bars)
SEED_SIGNALS = """
WITH RECURSIVE c(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM c WHERE i + 1 < :stop)
INSERT INTO signals (signal_id, alert_id, symbol, interval, bar_time, model_key, model_version,
    target, prediction, probability, action, ood, latency_ms, emitted_at, horizon)
SELECT printf('s%011d', i), printf('a%011d', i / :models), printf('SYM%d', i % :models), '1m',
    strftime('%Y-%m-%d %H:%M:%S.000000', :origin + (i / :models) * 60, 'unixepoch'),
    printf('SYM%d-%s-logreg', i % :models, CASE WHEN i % :models % 2 THEN 'return' ELSE
    'direction' END), 'v1', CASE WHEN i % :models % 2 THEN 'return' ELSE 'direction' END,
    CASE WHEN i % :models % 2 THEN (abs(random()) % 2001 - 1000) / 100000.0
         ELSE (abs(random()) % 1001) / 1000.0 END,
    (abs(random()) % 1001) / 1000.0,
    CASE abs(random()) % 3 WHEN 0 THEN 'buy' WHEN 1 THEN 'sell' ELSE 'hold' END, 0,
    5 + (abs(random()) % 5000) / 100.0,
    strftime('%Y-%m-%d %H:%M:%S.000000', :origin + (i / :models) * 60 + 1, 'unixepoch'), 1
FROM c
"""
SEED_OUTCOMES = """
INSERT INTO outcomes (signal_id, model_key, bar_time, exit_time, realised_return, hit,
    strategy_return, resolved_at)
SELECT signal_id, model_key, bar_time,
    strftime('%Y-%m-%d %H:%M:%S.000000', unixepoch(bar_time) + 60, 'unixepoch'), r,
    (r > 0) = (prediction > CASE target WHEN 'return' THEN 0.0 ELSE 0.5 END),
    CASE action WHEN 'buy' THEN r WHEN 'sell' THEN -r ELSE 0.0 END * 1.0,
    strftime('%Y-%m-%d %H:%M:%S.000000', unixepoch(bar_time) + 61, 'unixepoch')
FROM (SELECT signal_id, model_key, bar_time, target, prediction, action,
    (abs(random()) % 2001 - 1000) / 100000.0 AS r FROM signals
    WHERE signal_id >= printf('s%011d', :first) AND signal_id < printf('s%011d', :stop))
"""
CHUNK = 1_000_000


@dataclass
class Figures:
    size: str
    rows: int = 0
    seed_s: float = 0.0
    rebuild_s: float = 0.0
    batch_ms: list[float] = field(default_factory=list)
    queries_ms: dict[str, float] = field(default_factory=dict)
    db_mb: float = 0.0


def seed(path: Path, *, rows: int, models: int, origin: int, first: int = 0) -> None:
    """Signals `first`..`first + rows - 1` (the counter), with their outcomes, in one session;
    counter i is model i % models at minute i // models after `origin` (epoch seconds)."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        for start in range(first, first + rows, CHUNK):
            stop = min(start + CHUNK, first + rows)
            bounds = {"first": start, "stop": stop, "models": models, "origin": origin}
            db.execute(SEED_SIGNALS, bounds)
            db.execute(SEED_OUTCOMES, {"first": start, "stop": stop})
            db.commit()


def timed_ms(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def dashboard_queries() -> dict[str, Callable[[DashboardQueries], Any]]:
    calls: dict[str, Callable[[DashboardQueries], Any]] = {}
    for window in ("7d", "30d", "all"):
        calls[f"live_metrics({window})"] = lambda q, w=window: q.live_metrics(w)
        calls[f"live_returns({window})"] = lambda q, w=window: q.live_returns(w)
        calls[f"latencies({window})"] = lambda q, w=window: q.latencies(w)
    calls["signals()"] = lambda q: q.signals()
    calls["signal_choices()"] = lambda q: q.signal_choices()
    return calls


async def measure(path: Path, figures: Figures, args: argparse.Namespace, origin: int) -> None:
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(url)
    factory = create_session_factory(engine)
    try:
        started = time.perf_counter()
        await rebuild_live_metrics(session_factory=factory, cost_bps=COST_BPS)
        figures.rebuild_s = time.perf_counter() - started
        total = figures.rows
        for _ in range(args.batches):
            await asyncio.to_thread(
                seed, path, rows=args.batch, models=args.models, origin=origin, first=total
            )
            total += args.batch
            started = time.perf_counter()
            await snapshot_live_metrics(session_factory=factory, cost_bps=COST_BPS)
            figures.batch_ms.append((time.perf_counter() - started) * 1000)
    finally:
        await engine.dispose()
    for name, call in dashboard_queries().items():
        runs = []
        for _ in range(2):  # the second: a warm process (the dashboard is long-lived), cold cache
            queries = DashboardQueries.from_url(url, ttl_seconds=0.001)
            try:
                runs.append(timed_ms(lambda c=call, q=queries: c(q)))
            finally:
                queries.close()
        figures.queries_ms[name] = runs[-1]
    figures.db_mb = sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2**20


def run_size(size: str, args: argparse.Namespace) -> Figures:
    figures = Figures(size, rows=SIZES[size])
    folder = args.dir / size
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    path = folder / "history.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    started = time.perf_counter()
    # the last new batch ends about now: the history runs up to it, minute after minute
    minutes = (figures.rows + args.batch * args.batches) // args.models + 1
    origin = int((utcnow() - timedelta(minutes=minutes)).timestamp()) // 60 * 60
    seed(path, rows=figures.rows, models=args.models, origin=origin)
    figures.seed_s = time.perf_counter() - started
    print(f"{size}: seeded {figures.rows:,} resolved signals in {figures.seed_s:.1f} s", flush=True)
    asyncio.run(measure(path, figures, args, origin))
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return figures


def report(all_figures: list[Figures], batch: int) -> str:
    head = ["", *(f.size for f in all_figures)]
    rows = [
        ["database size (MB)", *(f"{f.db_mb:.0f}" for f in all_figures)],
        ["seed (s)", *(f"{f.seed_s:.1f}" for f in all_figures)],
        ["full rebuild (s)", *(f"{f.rebuild_s:.2f}" for f in all_figures)],
        [
            f"snapshot per batch of {batch} (ms, median)",
            *(f"{statistics.median(f.batch_ms):.1f}" for f in all_figures),
        ],
    ]
    rows.extend(
        [f"dashboard {name} (ms)", *(f"{f.queries_ms[name]:.1f}" for f in all_figures)]
        for name in all_figures[0].queries_ms
    )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(
            cell.rjust(w) if i else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [head, *rows]
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100k,1m", help=f"comma-separated, of {list(SIZES)}")
    parser.add_argument("--batch", type=int, default=100, help="new outcomes per batch")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--dir", type=Path, default=ROOT / "var" / "bench-history")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    args = parser.parse_args()
    sizes = [s.strip().lower() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown or not sizes:
        raise SystemExit(f"unknown size(s) {unknown}; use any of {', '.join(SIZES)}")
    print(f"history bench at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, cost {COST_BPS} bps")
    results = [run_size(size, args) for size in sizes]
    print()
    print(report(results, args.batch))
    worst = max(results, key=lambda f: f.rows)
    print(
        f"{worst.size}: snapshot per batch {statistics.median(worst.batch_ms):.1f} ms, "
        f"slowest dashboard query {max(worst.queries_ms.values()):.0f} ms"
    )


if __name__ == "__main__":
    main()
