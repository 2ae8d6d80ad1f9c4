"""Pipeline benchmark: one full run for 10 symbols x 2 targets x 3 model types on 5,000 bars each.

Ten symbols are made from the real sample data (SPX and NDX, plus variants whose daily log returns
are rotated by k x 450 bars, so each has a real return distribution and its own path). The run is
the production code path: CSV refresh into a fresh SQLite database, training in worker processes,
publishing to a temporary artifact folder, promotion and ModelEvents on the real broker
(ITFF_KAFKA_BOOTSTRAP, default localhost:9092; the benchmark's topics are deleted afterwards).

    .venv/bin/python bench/pipeline.py [--bars 5000] [--workers N] [--model-types logreg,ridge,hgb]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from bot.artifacts import ArtifactRegistry
from bot.contracts import load_settings
from bot.kafka import ModelEventPublisher, admin_client
from bot.pipeline import run_pipeline
from storage import runs as run_repo
from storage.db import create_engine, create_session_factory
from storage.migrate import upgrade_async

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


def make_symbols(folder: Path, bars: int) -> list[str]:
    """SPX, NDX and four rotated-return variants of each, `bars` daily bars per file."""
    symbols = []
    for base in ("SPX", "NDX"):
        frame = pd.read_csv(SAMPLE / f"{base}_1d.csv").tail(bars).reset_index(drop=True)
        for k in range(5):
            symbol = base if k == 0 else f"{base}R{k}"
            _variant(frame, shift=450 * k).to_csv(folder / f"{symbol}_1d.csv", index=False)
            symbols.append(symbol)
    return symbols


def _variant(frame: pd.DataFrame, shift: int) -> pd.DataFrame:
    if shift == 0:
        return frame
    close = frame["close"].to_numpy()
    returns = np.roll(np.diff(np.log(close)), shift)
    new_close = close[0] * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))
    ratio = new_close / close
    out = frame.copy()
    for column in ("open", "high", "low", "close"):
        out[column] = frame[column] * ratio
    return out


async def main(bars: int, workers: int | None, model_types: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="itff-bench-"))
    (work / "bars").mkdir()
    symbols = make_symbols(work / "bars", bars)
    settings = load_settings(
        env="test",
        symbols=",".join(symbols),
        model_types=model_types,
        data_source=f"csv:{work / 'bars'}",
        database_url=f"sqlite+aiosqlite:///{work / 'itff.db'}",
        artifact_dir=work / "artifacts",
        log_dir=work / "logs",
        topic_prefix=f"bench{uuid.uuid4().hex[:8]}",
        kafka_bootstrap=os.environ.get("ITFF_KAFKA_BOOTSTRAP", "localhost:9092"),
        pipeline_workers=workers,
    )
    await upgrade_async(settings.database_url)
    engine = create_engine(settings.database_url)
    factory = create_session_factory(engine)
    try:
        started, main_cpu = time.perf_counter(), time.process_time()
        async with ModelEventPublisher(settings) as events:
            summary = await run_pipeline(
                settings, session_factory=factory, events=events, trigger="bench",
                registry=ArtifactRegistry(settings.artifact_dir),
            )  # fmt: skip
        wall = time.perf_counter() - started
        main_cpu = time.process_time() - main_cpu
        async with factory() as session:
            row = await run_repo.get_run(session=session, run_id=summary.run_id)
    finally:
        await engine.dispose()
        await _drop_topics(settings)
    _report(
        summary,
        row,
        wall,
        bars=bars,
        symbols=len(symbols),
        workers=settings.pipeline_workers,
        main_cpu=main_cpu,
    )


def _report(summary, row, wall: float, *, bars, symbols, workers, main_cpu) -> None:
    train = [m["train_seconds"] for m in summary.metrics.values()]
    cpu = [m["train_cpu_seconds"] for m in summary.metrics.values()]
    print(f"pipeline benchmark: {symbols} symbols x {bars} bars, cores={os.cpu_count()}, "
          f"workers={workers or os.cpu_count()}")  # fmt: skip
    print(f"  status           {summary.status} {summary.error or ''}")
    print(f"  wall time        {wall:.1f} s (run record: {summary.duration_s:.1f} s)")
    print(f"  models           {json.dumps(summary.counts)}")
    print(f"  main process cpu {main_cpu:.1f} s (refresh, publish, record, events; not training)")
    if train:
        print(f"  train seconds    sum {sum(train):.1f}, max {max(train):.2f}, "
              f"mean {np.mean(train):.2f} per model")  # fmt: skip
        print(f"  train cpu        sum {sum(cpu):.1f} s over the workers")
    record = {
        "run_id": row.run_id, "trigger": row.trigger, "status": row.status,
        "started_at": row.started_at.isoformat(), "duration_s": row.duration_s,
        "counts": row.counts, "log_path": row.log_path,
        "decisions (first 3)": dict(list(row.decisions.items())[:3]),
        "metrics (first 1)": dict(list(row.metrics.items())[:1]),
        "anomalies (first 1)": dict(list(row.anomalies.items())[:1]),
    }  # fmt: skip
    print("sample run record:")
    print(json.dumps(record, indent=2, default=str))


async def _drop_topics(settings) -> None:
    async with admin_client(settings.bootstrap) as admin:
        await admin.delete_topics(list(settings.topics.all()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--model-types", default="logreg,ridge,hgb")
    args = parser.parse_args()
    asyncio.run(main(args.bars, args.workers, args.model_types))
