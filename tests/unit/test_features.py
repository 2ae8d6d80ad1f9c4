"""The feature set: names and order, warm-up, live parity, and lookback windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bot.bundle import ModelBundle
from bot.data import load_bars
from bot.errors import BadInput
from bot.features import FEATURE_NAMES, WARMUP_BARS, build_features
from bot.sequences import make_dataset, to_windows, window_names
from tests.conftest import SAMPLE_DIR


@pytest.fixture(scope="module")
def spx() -> pd.DataFrame:
    return load_bars(f"csv:{SAMPLE_DIR}", "SPX").iloc[:800]


def test_named_ordered_columns_on_the_same_index(spx):
    features = build_features(spx)
    assert tuple(features.columns) == FEATURE_NAMES
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert features.index.equals(spx.index)


def test_warmup_rows_are_incomplete_and_every_later_row_is_finite(spx):
    features = build_features(spx).to_numpy()
    assert np.isnan(features[:WARMUP_BARS]).any(axis=1).all()
    assert np.isfinite(features[WARMUP_BARS:]).all()


def test_live_rows_from_warmup_history_equal_rows_from_the_whole_history(spx):
    full = build_features(spx)
    for end in (WARMUP_BARS + 1, 400, len(spx)):
        live = build_features(spx.iloc[end - WARMUP_BARS - 1 : end])
        np.testing.assert_allclose(live.iloc[-1], full.iloc[end - 1], rtol=1e-9, atol=1e-12)


def test_flat_bars_and_constant_volume_give_finite_features():
    n = WARMUP_BARS + 5
    index = pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC")
    flat = pd.DataFrame(
        {"open": 10.0, "high": 10.0, "low": 10.0, "close": 10.0, "volume": 0.0}, index=index
    )
    assert np.isfinite(build_features(flat).to_numpy()[WARMUP_BARS:]).all()


def test_missing_columns_are_named():
    with pytest.raises(BadInput, match=r"missing columns \['volume'\]"):
        build_features(pd.DataFrame({"open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0]}))


def test_windows_are_oldest_bar_first_and_match_the_bundle_input_names():
    features = np.arange(12, dtype=float).reshape(4, 3)  # 4 bars x 3 features
    windows = to_windows(features, 2)
    assert windows.shape == (3, 6)
    np.testing.assert_array_equal(windows[0], [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(windows[-1], [6, 7, 8, 9, 10, 11])
    names = window_names(("a", "b", "c"), 2)
    assert names == ("a@t-1", "b@t-1", "c@t-1", "a@t", "b@t", "c@t")
    bundle_names = ModelBundle.input_names.fget  # type: ignore[attr-defined]
    fake = type("B", (), {"lookback": 2, "feature_names": ("a", "b", "c")})()
    assert bundle_names(fake) == names


@pytest.mark.parametrize(("shape", "lookback", "match"), [((3,), 1, "2-D"), ((2, 3), 3, "fewer")])
def test_bad_windows_requests_are_refused(shape, lookback, match):
    with pytest.raises(BadInput, match=match):
        to_windows(np.zeros(shape), lookback)


def test_dataset_aligns_windows_targets_and_next_returns(spx):
    ds = make_dataset(spx, lookback=3, horizon=2, target="return")
    close = spx["close"].to_numpy()
    first_end = WARMUP_BARS + 2
    assert ds.times[0] == spx.index[first_end]
    assert ds.y[0] == pytest.approx(np.log(close[first_end + 2] / close[first_end]))
    assert ds.next_returns[0] == pytest.approx(close[first_end + 1] / close[first_end] - 1)
    assert ds.n_labelled == len(ds.y) - 2
    assert np.isnan(ds.y[-2:]).all()
    features = build_features(spx).to_numpy()
    np.testing.assert_array_equal(ds.X[0][-len(FEATURE_NAMES) :], features[first_end])
