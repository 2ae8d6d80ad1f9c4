"""Helpers of the pipeline and scheduler tests: real small fitted bundles and sample-data slices."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from bot.core import ModelBundle, OodSummary, Thresholds

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "data" / "sample"
FEATURES = ("f1", "f2")


def small_bundle(
    version: str, *, symbol: str = "SPX", accuracy: float = 0.5, seed: int = 0
) -> ModelBundle:
    """A genuinely fitted (tiny) direction model, enough for the registry and the predictor."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, len(FEATURES)))
    y = (X[:, 0] + rng.normal(scale=0.5, size=60) > 0).astype(int)
    pipeline = Pipeline([("scaler", StandardScaler()), ("model", LogisticRegression())]).fit(X, y)
    return ModelBundle(
        symbol=symbol,
        target="direction",
        model_type="logreg",
        version=version,
        pipeline=pipeline,
        feature_names=FEATURES,
        lookback=1,
        horizon=1,
        interval="1D",
        thresholds=Thresholds(buy=0.55, sell=0.45),
        train_start=datetime(2020, 1, 1, tzinfo=UTC),
        train_end=datetime(2020, 3, 1, tzinfo=UTC),
        ood=OodSummary(mean=np.zeros(2), precision=np.eye(2), threshold=9.0),
        metrics={"accuracy": accuracy, "sharpe": 0.5},
        fit_windows=X,
    )


def write_sample_slice(folder: Path, symbols: dict[str, str], bars: int) -> Path:
    """The last `bars` daily bars of sample files as `{SYMBOL}_1d.csv` under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for symbol, sample in symbols.items():
        frame = pd.read_csv(SAMPLE_DIR / f"{sample}_1d.csv")
        frame.tail(bars).to_csv(folder / f"{symbol}_1d.csv", index=False)
    return folder
