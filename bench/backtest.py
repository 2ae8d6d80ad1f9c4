"""Vectorised backtest (bot.core.backtesting) vs the plain loop of the tests, on the same signals.

Prints the time of each and the speed ratio; checks that both give the same equity.

    .venv/bin/python bench/backtest.py [--bars 5000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

import numpy as np

from bot.core import backtest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the loop lives in the tests
loop_backtest = importlib.import_module("tests.core.test_backtest").loop_backtest


def signals(bars: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    returns = rng.normal(0.0003, 0.012, bars)
    return {
        "long/short": (rng.choice([-1.0, 1.0], bars), returns),
        "long/flat/short": (rng.choice([-1.0, 0.0, 1.0], bars), returns),
        "regimes": (np.repeat(rng.choice([-1.0, 0.0, 1.0], bars // 20 + 1), 20)[:bars], returns),
    }


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bars", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(f"backtest of {args.bars} bars, cost 1 bps, best of {args.repeat}")
    for name, (positions, returns) in signals(args.bars).items():
        fast = backtest(positions, returns, cost_bps=1.0, periods_per_year=252)
        slow = loop_backtest(list(positions), list(returns), 1.0, 252)
        assert np.allclose(fast.equity, slow["equity"], rtol=1e-9)
        vector = best_of(lambda p=positions, r=returns: backtest(
            p, r, cost_bps=1.0, periods_per_year=252), args.repeat)  # fmt: skip
        loop = best_of(lambda p=list(positions), r=list(returns): loop_backtest(
            p, r, 1.0, 252), max(3, args.repeat // 4))  # fmt: skip
        print(f"  {name:16s} vectorised {vector * 1e3:7.3f} ms   loop {loop * 1e3:8.2f} ms   "
              f"ratio {loop / vector:6.0f}x")  # fmt: skip


if __name__ == "__main__":
    main()
