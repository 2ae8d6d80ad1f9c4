"""Wall time to train and evaluate (walk-forward) N symbols x targets x model types on 5,000 bars.

Symbols are copies of the real SPX and NDX daily bars (last `--bars` rows) under new names, so
the work is the real work. Runs the same jobs as `itff train` (walk-forward evaluation, final fit,
bundle) with the same executor (`bot.pipeline.run_tasks`, fork-server worker processes). Prints
figures; asserts nothing.

    .venv/bin/python bench/train.py [--symbols 10] [--model-types logreg,ridge,hgb] [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from bot.core import WalkForwardConfig, plan
from bot.data import load_bars
from bot.pipeline import TrainTask, run_tasks

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--targets", default="direction,return")
    parser.add_argument("--model-types", default="logreg,ridge,hgb")
    parser.add_argument("--bars", type=int, default=5000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--refit-every", type=int, default=250)
    args = parser.parse_args()
    real = {name: load_bars(f"csv:{SAMPLE}", name).iloc[-args.bars :] for name in ("SPX", "NDX")}
    names = [f"S{i:02d}" for i in range(args.symbols)]
    combos, skips = plan(names, args.targets.split(","), args.model_types.split(","))
    notes = sorted({f"skipped {s.key.split('-', 1)[1]}: {s.reason}" for s in skips})
    config = WalkForwardConfig(refit_every=args.refit_every)
    jobs = [
        TrainTask(
            symbol=c.symbol,
            target=c.target,
            model_type=c.model_type,
            bars=real["SPX" if int(c.symbol[1:]) % 2 == 0 else "NDX"],
            lookback=1,
            horizon=1,
            interval="1D",
            seed=42,
            cost_bps=1.0,
            config=config,
        )
        for c in combos
    ]
    print(f"{len(jobs)} trainings ({args.symbols} symbols x {args.targets} x {args.model_types}; "
          f"{'; '.join(notes) or 'no skips'}), {args.bars} bars, refit every {args.refit_every}, "
          f"{args.jobs} worker processes")  # fmt: skip
    started, cpu = time.perf_counter(), time.process_time()
    per_model: dict[str, list[float]] = {}
    worker_cpu = 0.0
    for outcome in run_tasks(jobs, args.jobs):
        if outcome.error:
            print(f"  failed {outcome.key}: {outcome.error}")
        per_model.setdefault(outcome.key.split("-", 1)[1], []).append(outcome.cpu_seconds)
        worker_cpu += outcome.cpu_seconds
    wall = time.perf_counter() - started
    print(f"wall time {wall:.1f} s ({wall / len(jobs):.2f} s per training; "
          f"parent CPU {time.process_time() - cpu:.1f} s)")  # fmt: skip
    print(f"worker CPU {worker_cpu:.1f} s in total: {worker_cpu / args.jobs:.1f} s of wall time "
          f"on {args.jobs} otherwise idle cores")  # fmt: skip
    for line, seconds in sorted(per_model.items()):
        print(f"  {line:20s} mean CPU {sum(seconds) / len(seconds):6.2f} s per symbol")
    print(f"load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
