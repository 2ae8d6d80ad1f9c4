"""`make bench`: every benchmark with small defaults, then one summary table.

Each benchmark runs as its own process (as `python bench/NAME.py ARGS`), with arguments small
enough for the whole set to take a few minutes on two cores; its full output is kept in
`reports/bench/NAME.txt` and its headline (the last line that carries figures) goes into the
table. The benchmarks that need Kafka (`pipeline`, `ingest`, `e2e`, `notifier`) use
`ITFF_KAFKA_BOOTSTRAP` when it is set, else a local broker this script starts on free ports and
stops at the end.
Figures, not verdicts: a benchmark that fails is reported as failed, and the script exits
non-zero only then.

    .venv/bin/python bench/run_all.py [--only ingest,outbox] [--timeout 600] [--with-large]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports" / "bench"
HEADLINE_CHARS = 110
FIGURE = re.compile(r"\d\s*(us|ms|s|/s|x)\b|\bx\s?\d")


@dataclass(frozen=True, slots=True)
class Bench:
    name: str
    args: tuple[str, ...]
    kafka: bool = False


BENCHES = (
    Bench("features", ("--repeat", "200")),
    Bench("predict", ("--repeat", "200")),
    Bench("signing", ("--repeat", "300")),
    Bench("backtest", ("--bars", "2000", "--repeat", "5")),
    Bench("train", ("--symbols", "2", "--bars", "1500", "--model-types", "logreg,ridge")),
    Bench("pipeline", ("--bars", "1500", "--model-types", "logreg"), kafka=True),
    Bench("outbox", ("--alerts", "300")),
    Bench("ingest", ("--count", "500", "--rounds", "1", "--seconds", "1"), kafka=True),
    Bench("e2e", ("--rates", "100", "--seconds", "2", "--symbols", "2"), kafka=True),
    Bench("notifier", ("--rate", "20", "--seconds", "5"), kafka=True),
    Bench("history", ("--sizes", "100k", "--batches", "3")),
)
# sizes that do not fit `make bench`'s few minutes, added with --with-large
LARGE = (Bench("history", ("--sizes", "100k,1m,10m", "--batches", "3")),)


@dataclass(frozen=True, slots=True)
class Outcome:
    bench: Bench
    seconds: float
    returncode: int
    headline: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def kafka(needed: bool) -> Iterator[str | None]:
    """The bootstrap of ITFF_KAFKA_BOOTSTRAP, or of a local broker started (and stopped) here."""
    given = os.environ.get("ITFF_KAFKA_BOOTSTRAP")
    if not needed or given:
        yield given
        return
    from bot.contracts import load_settings
    from bot.kafka import local
    from bot.kafka.install import LocalBroker

    settings = load_settings()
    with tempfile.TemporaryDirectory(prefix="itff-bench-kafka-") as data:
        broker = LocalBroker(
            version=settings.kafka_version,
            cache_dir=settings.kafka_cache_dir.absolute(),
            data_dir=Path(data),
            port=_free_port(),
            controller_port=_free_port(),
            heap="512m",
        )
        asyncio.run(local.start(broker))
        try:
            yield broker.bootstrap
        finally:
            local.stop(broker)


def headline(output: str) -> str:
    """The last line with a measured figure (a number with a unit: us, ms, s, /s, x), else the
    last line with a digit; shortened for the table."""
    lines = [line.strip() for line in output.splitlines() if not line.startswith("load average")]
    measured = [line for line in lines if FIGURE.search(line)]
    numbered = [line for line in lines if any(c.isdigit() for c in line)]
    line = (measured or numbered or ["(no figures printed)"])[-1]
    return line if len(line) <= HEADLINE_CHARS else line[: HEADLINE_CHARS - 3] + "..."


def run(bench: Bench, bootstrap: str | None, timeout: float) -> Outcome:
    env = dict(os.environ)
    if bootstrap:
        env["ITFF_KAFKA_BOOTSTRAP"] = bootstrap
    command = [sys.executable, str(ROOT / "bench" / f"{bench.name}.py"), *bench.args]
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout or b""
        text = partial.decode() if isinstance(partial, bytes) else partial
        output, code = text + f"\ntimed out after {timeout:.0f} s", 124
    seconds = time.perf_counter() - started
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / f"{bench.name}.txt").write_text(f"$ {' '.join(command)}\n{output}")
    shown = headline(output) if code == 0 else f"FAILED (exit {code}): {headline(output)}"
    return Outcome(bench, seconds, code, shown)


def table(outcomes: list[Outcome]) -> str:
    rows = [("bench", "arguments", "s", "headline")]
    rows += [
        (o.bench.name, " ".join(o.bench.args), f"{o.seconds:.0f}", o.headline) for o in outcomes
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        f"{name:<{widths[0]}}  {args:<{widths[1]}}  {secs:>{widths[2]}}  {line}"
        for name, args, secs, line in rows
    ]
    lines.insert(1, "-" * min(160, max(len(line) for line in lines)))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated bench names")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per bench")
    parser.add_argument(
        "--with-large",
        action="store_true",
        help="history at 100k, 1M and 10M resolved signals instead of 100k (about an hour)",
    )
    args = parser.parse_args()
    large = {b.name: b for b in LARGE} if args.with_large else {}
    benches = [large.get(b.name, b) for b in BENCHES]
    chosen = [b for b in benches if not args.only or b.name in args.only.split(",")]
    if not chosen:
        raise SystemExit(f"no bench named {args.only!r}; known: {[b.name for b in BENCHES]}")
    outcomes: list[Outcome] = []
    with kafka(any(b.kafka for b in chosen)) as bootstrap:
        for bench in chosen:
            print(f"running bench/{bench.name}.py {' '.join(bench.args)}", flush=True)
            outcomes.append(run(bench, bootstrap if bench.kafka else None, args.timeout))
    print()
    print(table(outcomes))
    print(f"\nfull outputs: {REPORTS.relative_to(ROOT)}/NAME.txt")
    if any(o.returncode for o in outcomes):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
