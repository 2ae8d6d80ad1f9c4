"""No look-ahead: changing any bar after t changes no feature, scaled input or prediction at or
before t, neither for a fitted model nor for the walk-forward's out-of-sample scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core import (
    WARMUP_BARS,
    WalkForwardConfig,
    build_features,
    make_dataset,
    make_pipeline,
    predict_scores,
    run_walk_forward,
)
from bot.data import load_bars
from tests.conftest import SAMPLE_DIR

N_BARS = 520
LOOKBACK = 3


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return load_bars(f"csv:{SAMPLE_DIR}", "NDX").iloc[1000 : 1000 + N_BARS]


@pytest.fixture(scope="module")
def fitted(bars):
    ds = make_dataset(bars.iloc[:350], lookback=LOOKBACK, horizon=1, target="direction")
    n = ds.n_labelled
    return make_pipeline("logreg", "direction", 0).fit(ds.X[:n], ds.y[:n])


def perturb_after(bars: pd.DataFrame, t: int, seed: int, size: float) -> pd.DataFrame:
    """Bars after position t rescaled (prices by one factor per bar, volume by another)."""
    rng = np.random.default_rng(seed)
    out = bars.copy()
    later = len(bars) - t - 1
    price = np.exp(rng.normal(0, size, later))
    for column in ("open", "high", "low", "close"):
        out.iloc[t + 1 :, out.columns.get_loc(column)] *= price
    out.iloc[t + 1 :, out.columns.get_loc("volume")] *= np.exp(rng.normal(0, 1, later))
    return out


def _known(bars: pd.DataFrame, t: int) -> pd.Series:
    return pd.Series(bars.index <= bars.index[t], index=bars.index)


common = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@common
@given(t=st.integers(0, N_BARS - 2), seed=st.integers(0, 2**16), size=st.floats(0.001, 0.5))
def test_features_at_or_before_t_ignore_later_bars(bars, t, seed, size):
    changed = perturb_after(bars, t, seed, size)
    assert not changed.iloc[t + 1 :].equals(bars.iloc[t + 1 :])
    np.testing.assert_array_equal(
        build_features(changed).to_numpy()[: t + 1], build_features(bars).to_numpy()[: t + 1]
    )


@common
@given(
    t=st.integers(WARMUP_BARS + LOOKBACK, N_BARS - 2),
    seed=st.integers(0, 2**16),
    size=st.floats(0.001, 0.5),
)
def test_scaled_inputs_and_predictions_at_or_before_t_ignore_later_bars(
    bars, fitted, t, seed, size
):
    changed = perturb_after(bars, t, seed, size)
    original = make_dataset(bars, lookback=LOOKBACK, horizon=1, target="direction")
    altered = make_dataset(changed, lookback=LOOKBACK, horizon=1, target="direction")
    upto = int((original.times <= bars.index[t]).sum())
    scaler = fitted.named_steps["scaler"]
    np.testing.assert_array_equal(
        scaler.transform(altered.X[:upto]), scaler.transform(original.X[:upto])
    )
    np.testing.assert_array_equal(
        predict_scores(fitted, altered.X[:upto], "direction"),
        predict_scores(fitted, original.X[:upto], "direction"),
    )


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(t=st.integers(300, N_BARS - 2), seed=st.integers(0, 2**16))
def test_walk_forward_scores_at_or_before_t_ignore_later_bars(bars, t, seed):
    config = WalkForwardConfig(min_train=150, refit_every=60)

    def scores(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        ds = make_dataset(frame, lookback=LOOKBACK, horizon=1, target="direction")
        n = ds.n_labelled
        run = run_walk_forward(
            ds.X[:n], ds.y[:n], ds.next_returns[:n], target="direction", model_type="ridge",
            horizon=1, seed=0, cost_bps=1.0, config=config,
        )  # fmt: skip
        known = ds.times[run.test_index] <= frame.index[t]
        return run.scores[known], run.positions[known]

    before_scores, before_positions = scores(bars)
    after_scores, after_positions = scores(perturb_after(bars, t, seed, 0.05))
    assert before_scores.size > 0
    np.testing.assert_array_equal(after_scores, before_scores)
    np.testing.assert_array_equal(after_positions, before_positions)
