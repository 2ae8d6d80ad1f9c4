"""Predictor latency per model type, compiled runtime vs scikit-learn side by side in one run:
1 window, per row in batches of 256, and the live path from raw bars.

Trains real pipelines (bot.core.estimators) on SPX features, publishes them into a temporary signed
registry (which exports the compiled form) and serves them through `Predictor` with both runtimes,
exactly as the consumer does. Prints figures and the 1-row ratios: the issue's own measure
(scikit-learn's pipeline call, scaler + model, against the compiled scaler + model; goal >= 20x),
the whole predictor call per runtime, and the model alone; asserts nothing.

    .venv/bin/python bench/predict.py [--lookback 5] [--repeat 2000]
        [--models direction-logreg,return-hgb,...]   (default: every trainable model type)
        [--threads N]   (cap OpenMP/BLAS threads, as OMP_NUM_THREADS)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

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
    ood_distances,
    ood_summary,
    supported_model_types,
    to_windows,
)
from bot.serving import Predictor
from bot.serving.predictor import _check_windows

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "SPX_1d.csv"
BATCH = 256


def load_bars() -> pd.DataFrame:
    frame = pd.read_csv(SAMPLE)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame.set_index("time").astype("float64")


MODELS = [f"{t}-{m}" for t in ("direction", "return") for m in supported_model_types(t)]


def train(bars: pd.DataFrame, target: str, model_type: str, lookback: int) -> ModelBundle:
    features = build_features(bars).to_numpy()[WARMUP_BARS:]
    X = to_windows(features, lookback)[:-1]
    close = bars["close"].to_numpy()[WARMUP_BARS + lookback - 1 :]
    log_return = np.diff(np.log(close))
    y = (log_return > 0).astype(int) if target == "direction" else log_return
    pipeline = make_pipeline(model_type, target, seed=7).fit(X, y)
    thresholds = Thresholds(0.53, 0.47) if target == "direction" else Thresholds(1e-3, -1e-3)
    return ModelBundle(
        symbol="SPX", target=target, model_type=model_type,
        version=datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ"), pipeline=pipeline,
        feature_names=FEATURE_NAMES, lookback=lookback, horizon=1, interval="1D",
        thresholds=thresholds, train_start=bars.index[0].to_pydatetime(),
        train_end=bars.index[-1].to_pydatetime(), ood=ood_summary(pipeline[0].transform(X)),
        fit_windows=X,
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


def show(label: str, seconds: np.ndarray, rows: int) -> float:
    p50, p95, p99 = (np.percentile(seconds, q) * 1e6 / rows for q in (50, 95, 99))
    rate = rows / np.median(seconds)
    print(
        f"  {label:<34} per row p50 {p50:9.1f} us  p95 {p95:9.1f} us  p99 {p99:9.1f} us  "
        f"{rate:12,.0f} rows/s"
    )
    return float(p50)


def bench_model(
    registry: ArtifactRegistry, bundle: ModelBundle, bars: pd.DataFrame, repeat: int
) -> dict[str, float]:
    """Both runtimes on the same inputs; the 1-row p50s (whole call, model only), in us."""
    registry.publish(bundle)
    registry.promote(bundle.key, bundle.version)
    folder = registry.root / bundle.key / bundle.version
    compiled_file = next(p for p in folder.glob("model.*") if p.name != "model.joblib")
    print(f"{bundle.key} (lookback {bundle.lookback}, {len(bundle.input_names)} inputs)")
    print(
        f"  files: model.joblib {(folder / 'model.joblib').stat().st_size:,} bytes, "
        f"{compiled_file.name} {compiled_file.stat().st_size:,} bytes"
    )
    windows = to_windows(build_features(bars).to_numpy()[WARMUP_BARS:], bundle.lookback)
    one, batch = windows[-1:], windows[-BATCH:]
    recent = bars.iloc[-(WARMUP_BARS + bundle.lookback + 50) :]
    pipeline = bundle.pipeline
    own = pipeline.predict_proba if bundle.target == "direction" else pipeline.predict
    p50 = {"pipeline": show("scikit-learn pipeline call", timings(partial(own, one), repeat), 1)}
    for runtime in ("compiled", "sklearn"):
        start = time.perf_counter()
        predictor = Predictor(registry, runtime=runtime)  # type: ignore[arg-type]
        predictor.reload(bundle.key)
        load_ms = (time.perf_counter() - start) * 1e3
        print(f"  [{runtime}] verified load {load_ms:8.1f} ms")
        one_row = partial(predictor.predict_windows, bundle.key, one)
        p50[runtime] = show(f"[{runtime}] 1 window", timings(one_row, repeat), 1)
        served = predictor._get(bundle.key)  # noqa: SLF001 - the model call alone, for the table
        model_only = partial(served.score, served.scale(one))
        p50[f"{runtime} model"] = show(
            f"[{runtime}] 1 window, model only", timings(model_only, repeat), 1
        )
        scaled_model = partial(lambda s, w: s.score(s.scale(w)), served, one)
        p50[f"{runtime} scaler+model"] = show(
            f"[{runtime}] 1 window, scaler + model", timings(scaled_model, repeat), 1
        )
        breakdown(runtime, served, one, p50[runtime], repeat)
        many = partial(predictor.predict_windows, bundle.key, batch)
        show(f"[{runtime}] batch of {BATCH}", timings(many, max(repeat // 20, 20)), BATCH)
        live = partial(predictor.predict_bars, "SPX", recent)
        show(f"[{runtime}] live path ({len(recent)} bars)", timings(live, max(repeat // 10, 20)), 1)
    return p50


def breakdown(runtime: str, served: Any, one: np.ndarray, call_us: float, repeat: int) -> None:
    """Where a 1-row predictor call goes, step by step (p50 of each step alone, in us)."""
    bundle, scaled = served.bundle, served.scale(one)
    steps = {
        "check": partial(_check_windows, one, bundle),
        "scale": partial(served.scale, one),
        "model": partial(served.score, scaled),
        "ood": partial(ood_distances, scaled, bundle.ood.mean, bundle.ood.precision),
    }
    figures = {name: float(np.median(timings(step, repeat))) * 1e6 for name, step in steps.items()}
    rest = call_us - sum(figures.values())
    parts = ", ".join(f"{name} {us:.1f}" for name, us in figures.items())
    print(f"  [{runtime}] 1-row call, where it goes (us): {parts}, actions and results {rest:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookback", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--models", default=",".join(MODELS))
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
    ratios = {}
    for name in args.models.split(","):
        target, model_type = name.split("-")
        with tempfile.TemporaryDirectory() as folder:
            registry = ArtifactRegistry(Path(folder), signing_key=generate_keypair()[0])
            bundle = train(bars, target, model_type, args.lookback)
            ratios[name] = bench_model(registry, bundle, bars, args.repeat)
    print(
        "1-row p50, us. The issue's measure (its table): scikit-learn's own pipeline call, scaler +"
        " model\n(predict_proba / predict with its default checks) against the compiled scaler +"
        " model; goal >= 20x.\nAlso: the whole predictor call (input check, scaler, model, OOD"
        " distance, actions, result) per runtime,\nand the model alone (scaled input given; the"
        " sklearn runtime skips scikit-learn's checks)."
    )
    print(
        f"  {'model':<18} {'pipeline':>9} {'compiled':>9} {'ratio':>7} {'goal':>5}   "
        f"{'call: compiled':>14} {'sklearn':>8} {'ratio':>6}   {'model: compiled':>15} "
        f"{'sklearn':>8} {'ratio':>6}"
    )
    for name, p50 in ratios.items():
        issue = p50["pipeline"] / p50["compiled scaler+model"]
        print(
            f"  {name:<18} {p50['pipeline']:9.1f} {p50['compiled scaler+model']:9.1f} "
            f"{issue:6.1f}x {'met' if issue >= 20 else 'no':>5}   "
            f"{p50['compiled']:14.1f} {p50['sklearn']:8.1f} "
            f"{p50['sklearn'] / p50['compiled']:5.1f}x   {p50['compiled model']:15.1f} "
            f"{p50['sklearn model']:8.1f} {p50['sklearn model'] / p50['compiled model']:5.1f}x"
        )


if __name__ == "__main__":
    main()
