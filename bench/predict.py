"""Predictor latency: 1 window, per row in batches of 256, and the live path from raw bars.

Trains real pipelines (bot.core.estimators) on SPX features, publishes them into a temporary signed
registry and serves them through `Predictor`, exactly as the consumer does. Prints figures; asserts
nothing.

    .venv/bin/python bench/predict.py [--lookback 5] [--repeat 2000] [--models logreg,hgb]
                                      [--threads N]   (cap OpenMP/BLAS threads, as OMP_NUM_THREADS)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from bot.artifacts import ArtifactRegistry, generate_keypair
from bot.core import (
    FEATURE_NAMES,
    WARMUP_BARS,
    ModelBundle,
    Thresholds,
    build_features,
    make_pipeline,
    ood_summary,
    to_windows,
)
from bot.serving import Predictor

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "SPX_1d.csv"
BATCH = 256


def load_bars() -> pd.DataFrame:
    frame = pd.read_csv(SAMPLE)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame.set_index("time").astype("float64")


def train(bars: pd.DataFrame, model_type: str, lookback: int) -> ModelBundle:
    features = build_features(bars).to_numpy()[WARMUP_BARS:]
    X = to_windows(features, lookback)[:-1]
    close = bars["close"].to_numpy()[WARMUP_BARS + lookback - 1 :]
    y = (np.diff(close) > 0).astype(int)
    pipeline = make_pipeline(model_type, "direction", seed=7).fit(X, y)
    return ModelBundle(
        symbol="SPX", target="direction", model_type=model_type,
        version=datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ"), pipeline=pipeline,
        feature_names=FEATURE_NAMES, lookback=lookback, horizon=1, interval="1D",
        thresholds=Thresholds(0.53, 0.47), train_start=bars.index[0].to_pydatetime(),
        train_end=bars.index[-1].to_pydatetime(), ood=ood_summary(pipeline[0].transform(X)),
    )  # fmt: skip


def timings(call: Callable[[], object], repeat: int) -> np.ndarray:
    for _ in range(min(50, repeat)):
        call()
    out = np.empty(repeat)
    for i in range(repeat):
        start = time.perf_counter()
        call()
        out[i] = time.perf_counter() - start
    return out


def show(label: str, seconds: np.ndarray, rows: int) -> None:
    p50, p95, p99 = (np.percentile(seconds, q) * 1e6 / rows for q in (50, 95, 99))
    rate = rows / np.median(seconds)
    print(
        f"  {label:<28} per row p50 {p50:9.1f} us  p95 {p95:9.1f} us  p99 {p99:9.1f} us  "
        f"{rate:12,.0f} rows/s"
    )


def bench_model(
    registry: ArtifactRegistry, bundle: ModelBundle, bars: pd.DataFrame, repeat: int
) -> None:
    registry.publish(bundle)
    registry.promote(bundle.key, bundle.version)
    start = time.perf_counter()
    predictor = Predictor(registry)
    predictor.reload(bundle.key)
    load_ms = (time.perf_counter() - start) * 1e3
    size = (registry.root / bundle.key / bundle.version / "model.joblib").stat().st_size
    print(f"{bundle.key} (lookback {bundle.lookback}, {len(bundle.input_names)} inputs)")
    print(f"  verified load (SHA-256, Ed25519, unpickle) {load_ms:8.1f} ms  model {size:,} B")
    windows = to_windows(build_features(bars).to_numpy()[WARMUP_BARS:], bundle.lookback)
    one, batch = windows[-1:], windows[-BATCH:]
    show("1 window", timings(lambda: predictor.predict_windows(bundle.key, one), repeat), 1)
    show(
        f"batch of {BATCH}",
        timings(lambda: predictor.predict_windows(bundle.key, batch), max(repeat // 20, 20)),
        BATCH,
    )
    recent = bars.iloc[-(WARMUP_BARS + bundle.lookback + 50) :]
    show(
        f"live path ({len(recent)} bars)",
        timings(lambda: predictor.predict_bars("SPX", recent), max(repeat // 10, 20)),
        1,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookback", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--models", default="logreg,hgb")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=args.threads)
    bars = load_bars()
    threads = args.threads or "library default"
    print(
        f"predictor latency on {len(bars)} SPX bars; {args.repeat} repeats of 1 window; "
        f"OpenMP/BLAS threads: {threads}"
    )
    for model_type in args.models.split(","):
        with tempfile.TemporaryDirectory() as folder:
            registry = ArtifactRegistry(Path(folder), signing_key=generate_keypair()[0])
            bench_model(registry, train(bars, model_type, args.lookback), bars, args.repeat)


if __name__ == "__main__":
    main()
