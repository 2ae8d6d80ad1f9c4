"""Feature-build latency: `build_features` per call on live windows and on a whole sample file.

The frozen pandas implementation (`tests/support/features_reference.py`) runs in the same process,
interleaved call by call, so the speed-up is a ratio measured under the same load. Wall time and
CPU time of this thread are both shown (CPU time is the fairer figure on a busy machine). Prints
figures; asserts nothing.

    .venv/bin/python bench/features.py [--repeat 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the reference implementation lives in the tests package

from bot.core import WARMUP_BARS, build_features, build_features_tail  # noqa: E402
from bot.data import load_bars  # noqa: E402
from tests.support.features_reference import reference_features  # noqa: E402

Call = Callable[[], object]


def per_call_ms(calls: dict[str, Call], repeat: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(wall, cpu) milliseconds of each call, `repeat` times, interleaved, after a warm-up."""
    for call in calls.values():
        for _ in range(min(50, repeat)):
            call()
    wall = {name: np.empty(repeat) for name in calls}
    cpu = {name: np.empty(repeat) for name in calls}
    for i in range(repeat):
        for name, call in calls.items():
            start, start_cpu = time.perf_counter(), time.thread_time()
            call()
            cpu[name][i] = (time.thread_time() - start_cpu) * 1e3
            wall[name][i] = (time.perf_counter() - start) * 1e3
    return {name: (wall[name], cpu[name]) for name in calls}


def show(label: str, times: tuple[np.ndarray, np.ndarray], old: np.ndarray | None = None) -> None:
    """Wall p50/p95 and CPU p50/min (the minimum: the call with the least interference)."""
    wall, cpu = times
    line = (
        f"  {label:<34} wall p50 {np.median(wall):6.3f} p95 {np.percentile(wall, 95):6.3f}"
        f"  cpu p50 {np.median(cpu):6.3f} min {np.min(cpu):6.3f} ms"
    )
    if old is not None:
        ratio = np.median(old) / np.median(cpu)
        line += f"  | pandas cpu p50 {np.median(old):6.3f} min {np.min(old):6.3f} ms  x{ratio:4.1f}"
    print(line)


def bench_window(bars: pd.DataFrame, repeat: int, tails: tuple[int, ...] = ()) -> None:
    calls: dict[str, Call] = {"new": lambda: build_features(bars)}
    calls |= {f"tail {rows}": lambda r=rows: build_features_tail(bars, r) for rows in tails}
    calls["old"] = lambda: reference_features(bars)
    times = per_call_ms(calls, repeat)
    show(f"build_features, {len(bars)} bars", times["new"], times["old"][1])
    for rows in tails:
        show(f"build_features_tail({len(bars)} bars, {rows})", times[f"tail {rows}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    bars = load_bars(f"csv:{ROOT / 'data' / 'sample'}", "SPX")
    print(f"SPX sample, {len(bars)} bars; load average {os.getloadavg()[0]:.2f} at start")
    bench_window(bars.iloc[-(WARMUP_BARS + 5) :], args.repeat)
    bench_window(bars.iloc[-200:], args.repeat, tails=(1, 5))
    for n in (5000, len(bars)):
        bench_window(bars.iloc[-n:], max(args.repeat // 20, 20))
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
