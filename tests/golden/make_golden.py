"""Regenerate tests/golden/golden.json: `python -m tests.golden.make_golden`.

Only run this when a change to the features or models is intended; the diff of golden.json is the
record of what changed. The golden test recomputes everything and compares.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bot.core import make_dataset, make_pipeline, predict_scores, supported_model_types
from bot.data import load_bars

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("golden.json")
SOURCE = f"csv:{ROOT / 'data' / 'sample'}"
SYMBOL = "SPX"
FIRST_BAR, TRAIN_BARS, SAMPLE_WINDOWS = 4000, 700, 6
LOOKBACK, HORIZON, SEED = 3, 1, 11


def golden_bars() -> pd.DataFrame:
    return load_bars(SOURCE, SYMBOL).iloc[FIRST_BAR : FIRST_BAR + TRAIN_BARS + SAMPLE_WINDOWS]


def trained_scores(target: str, model_type: str, bars: pd.DataFrame) -> np.ndarray:
    """Fit on the first TRAIN_BARS bars, score the sample windows (the windows of the last bars)."""
    train = make_dataset(bars.iloc[:TRAIN_BARS], lookback=LOOKBACK, horizon=HORIZON, target=target)
    n = train.n_labelled
    pipeline = make_pipeline(model_type, target, SEED).fit(train.X[:n], train.y[:n])
    return predict_scores(pipeline, sample_windows(bars), target)


def sample_windows(bars: pd.DataFrame) -> np.ndarray:
    ds = make_dataset(bars, lookback=LOOKBACK, horizon=HORIZON, target="return")
    return ds.X[-SAMPLE_WINDOWS:]


def build() -> dict[str, Any]:
    bars = golden_bars()
    predictions = {
        f"{target}-{model_type}": trained_scores(target, model_type, bars).tolist()
        for target in ("direction", "return")
        for model_type in supported_model_types(target)
    }
    return {
        "symbol": SYMBOL,
        "bars": [str(bars.index[0]), str(bars.index[-1])],
        "lookback": LOOKBACK,
        "seed": SEED,
        "windows": sample_windows(bars).tolist(),
        "predictions": predictions,
    }


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {GOLDEN}")
