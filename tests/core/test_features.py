"""The feature set: names and order, warm-up, live parity, parity with the pandas implementation,
exact rolling statistics, the tail helper, and lookback windows."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from bot.contracts import BadInput
from bot.core import (
    FEATURE_NAMES,
    WARMUP_BARS,
    ModelBundle,
    _rolling_mean_std,
    build_features,
    build_features_tail,
    complete_feature_rows,
    feature_rows,
    make_dataset,
    to_windows,
    window_names,
)
from bot.core.features import _safe_ratio, _windows
from bot.data import load_bars
from tests.conftest import SAMPLE_DIR
from tests.support.features_reference import reference_features

# Features built on a rolling mean or standard deviation: the pandas reference computes those with
# running sums, whose round-off grows along a long history (see test_rolling_statistics_are_exact).
ROLLING_FEATURES = (
    "vol_5", "vol_20", "vol_ratio", "bb_pctb_20", "bb_width_20", "volume_z_20", "close_sma_50",
)  # fmt: skip


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


def test_live_rows_are_bit_identical_to_rows_from_the_whole_history(spx):
    """Every window is summed in the same order however much history came with it."""
    full = build_features(spx).to_numpy()
    live = [
        build_features(spx.iloc[end - WARMUP_BARS - 1 : end]).to_numpy()[-1]
        for end in range(WARMUP_BARS + 1, len(spx) + 1)
    ]
    np.testing.assert_array_equal(np.array(live), full[WARMUP_BARS:])


def test_series_computed_together_equal_each_series_alone(spx):
    """The consumer's one pass over a batch's symbols: no row leaks into the next series, even
    across awkward bars (constant stretches, flat bars, missing values) and short series."""
    ragged = _ragged(spx)
    series = [
        spx.iloc[-200:].to_numpy(),
        ragged.to_numpy(),
        spx.iloc[:WARMUP_BARS].to_numpy(),  # too short: no complete row
        spx.iloc[500 : 500 + WARMUP_BARS + 1].to_numpy(),  # exactly one complete row
        ragged.iloc[150:280].to_numpy(),
    ]
    together = complete_feature_rows(series)
    assert [len(rows) for rows in together] == [200 - WARMUP_BARS, 300 - WARMUP_BARS, 0, 1, 27]
    for bars, rows in zip(series, together, strict=True):
        np.testing.assert_array_equal(rows, feature_rows(bars)[WARMUP_BARS:])
    np.testing.assert_array_equal(feature_rows(series[0]), build_features(spx.iloc[-200:]))
    assert complete_feature_rows([]) == []


# A price whose plain 20- and 50-bar means are not exactly itself (sum / n rounds), so a constant
# window needs its own care to get a mean of exactly the price and a deviation of exactly 0.
_CONSTANT = 9363.01


def _index(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC", name="time")


def _flat(n: int, price: float, volume: float) -> pd.DataFrame:
    prices = dict.fromkeys(("open", "high", "low", "close"), price)
    return pd.DataFrame({**prices, "volume": volume}, index=_index(n))


def _ragged(bars: pd.DataFrame) -> pd.DataFrame:
    """300 bars holding every awkward case at once: a jump to a 71-bar constant stretch, flat
    bars (h = l), zero volume, and a missing close, volume and high."""
    out = bars.iloc[-300:].copy()
    prices = ["open", "high", "low", "close"]
    out.iloc[100:171, [out.columns.get_loc(name) for name in prices]] = _CONSTANT
    for i in range(3, 300, 7):
        out.iloc[i, [out.columns.get_loc(name) for name in prices]] = out["close"].iloc[i]
    out.iloc[200:231, out.columns.get_loc("volume")] = 0.0
    for i, name in ((250, "close"), (260, "volume"), (270, "high")):
        out.iloc[i, out.columns.get_loc(name)] = np.nan
    return out


def assert_matches_reference(bars: pd.DataFrame, *, rolling_rtol: float, rolling_atol: float):
    """Today's features against the frozen pandas implementation; the rolling-window features
    within the given tolerance, as pandas' running sums drift on long or jumping series."""
    new, old = build_features(bars), reference_features(bars)
    assert new.index.equals(old.index)
    assert new.columns.equals(old.columns)
    others = [name for name in FEATURE_NAMES if name not in ROLLING_FEATURES]
    np.testing.assert_allclose(new[others], old[others], rtol=1e-12, atol=1e-14)
    rolling = list(ROLLING_FEATURES)
    np.testing.assert_allclose(new[rolling], old[rolling], rtol=rolling_rtol, atol=rolling_atol)


@pytest.fixture(scope="module")
def ndx() -> pd.DataFrame:
    return load_bars(f"csv:{SAMPLE_DIR}", "NDX")


@pytest.fixture(scope="module")
def edge_cases(spx) -> dict[str, pd.DataFrame]:
    """Live-size windows and edge cases (at most a few hundred bars, no jump in price level)."""
    cases = {f"spx_last_{n}": spx.iloc[-n:] for n in (WARMUP_BARS + 1, 108, 200)}
    # lengths at which a window is first complete: rolling 5/20/50, Wilder 42 on 1-bar moves (43
    # bars), the MACD's slow average 78 (its line), and the warm-up
    lengths = (0, 1, 2, 5, 6, 20, 21, 42, 43, 50, 51, 77, 78, WARMUP_BARS)
    cases |= {f"spx_first_{n}": spx.iloc[:n] for n in lengths}
    cases["flat_near_1e4"] = _flat(WARMUP_BARS + 30, _CONSTANT, 250.0)
    cases["flat_zero_volume"] = _flat(WARMUP_BARS + 30, 10.0, 0.0)
    cases["integer_columns"] = spx.iloc[:150].round().astype("int64")
    return cases


def test_live_size_and_edge_inputs_match_the_pandas_implementation(edge_cases):
    for name, bars in edge_cases.items():
        try:
            assert_matches_reference(bars, rolling_rtol=1e-12, rolling_atol=1e-12)
        except AssertionError as e:
            raise AssertionError(f"case {name}") from e


def test_missing_values_flat_bars_and_a_price_jump_match_the_pandas_implementation(ndx):
    # After the jump to _CONSTANT and back, pandas' running sums are off by ~1e-11 relative.
    assert_matches_reference(_ragged(ndx), rolling_rtol=1e-10, rolling_atol=1e-11)


def test_edge_inputs_keep_their_zeros_and_missing_values(edge_cases, ndx):
    flat = build_features(edge_cases["flat_near_1e4"]).iloc[WARMUP_BARS:]
    unmoved = [name for name in FEATURE_NAMES if not name.startswith(("macd", "rsi", "range"))]
    assert (flat[unmoved] == 0).all().all()  # no move, no spread, no deviation: exactly 0
    assert (flat["rsi_14"] == 0.5).all()
    np.testing.assert_allclose(flat[["macd", "macd_signal", "macd_hist"]], 0, atol=1e-15)
    ragged = build_features(_ragged(ndx))
    constant = ragged.iloc[170]  # ends 71 bars at one price: zero volatility, bands and trend
    assert (constant[["vol_5", "vol_20", "vol_ratio", "bb_pctb_20", "bb_width_20"]] == 0).all()
    assert constant["close_sma_50"] == 0
    assert ragged.iloc[250:260].isna().any(axis=1).all()  # the missing close reaches later rows
    assert (ragged.iloc[260:280]["volume_z_20"] == 0).all()  # a missing volume is neutral
    assert ragged.iloc[280]["volume_z_20"] != 0


@pytest.mark.parametrize("symbol", ["SPX", "NDX"])
def test_the_whole_sample_file_matches_the_pandas_implementation(symbol):
    # Rolling features up to ~1e-10 relative apart over 5031 bars: pandas' round-off, not ours.
    bars = load_bars(f"csv:{SAMPLE_DIR}", symbol)
    assert_matches_reference(bars, rolling_rtol=1e-9, rolling_atol=1e-10)


def _exact_mean_std(values: np.ndarray, window: int, ddof: int) -> tuple[np.ndarray, np.ndarray]:
    exact = [Fraction(float(value)) for value in values]
    mean, sd = np.full(len(values), np.nan), np.full(len(values), np.nan)
    for end in range(window - 1, len(values)):
        chunk = exact[end - window + 1 : end + 1]
        centre = sum(chunk, Fraction(0)) / window
        mean[end] = float(centre)
        sd[end] = math.sqrt(sum((x - centre) ** 2 for x in chunk) / (window - ddof))
    return mean, sd


@pytest.mark.parametrize(("window", "ddof"), [(5, 1), (20, 0), (20, 1), (50, 0)])
def test_rolling_statistics_are_exact_on_prices_near_1e4(spx, window, ddof):
    """Against exact rational arithmetic: a running sum of squares would be off by ~1e-7 here."""
    prices = spx["close"].to_numpy()[-400:] + 1e4
    prices[100:130] = _CONSTANT  # a jump to a constant stretch: exactly its value and 0
    mean, sd = _rolling_mean_std(prices, window, ddof=ddof)
    exact_mean, exact_sd = _exact_mean_std(prices, window, ddof)
    np.testing.assert_allclose(mean, exact_mean, rtol=2e-15)
    np.testing.assert_allclose(sd, exact_sd, rtol=2e-15, atol=0)
    assert (sd[100 + window - 1 : 130] == 0).all()
    assert (mean[100 + window - 1 : 130] == _CONSTANT).all()


@pytest.mark.parametrize("rows", [1, 3, 50, 800, 2000])
def test_tail_rows_equal_the_last_rows_of_the_whole_history(spx, rows):
    tail = build_features_tail(spx, rows)
    pd.testing.assert_frame_equal(tail, build_features(spx).iloc[-rows:], check_exact=True)


def test_tail_of_a_short_history_is_the_whole_of_it(spx):
    short = spx.iloc[:30]
    pd.testing.assert_frame_equal(build_features_tail(short, 50), build_features(short))


@pytest.mark.parametrize("rows", [0, -1, 1.5, True, "3"])
def test_tail_refuses_a_row_count_that_is_not_a_positive_integer(spx, rows):
    with pytest.raises(BadInput, match="rows must be a positive integer"):
        build_features_tail(spx, rows)


def test_renaming_the_columns_of_one_result_leaves_the_next_alone(spx):
    first = build_features(spx.iloc[:120])
    first.columns.name = "feature"
    assert build_features(spx.iloc[:120]).columns.name is None


def test_a_text_column_is_refused_with_its_name(spx):
    bars = spx.iloc[:10].astype({"volume": object})
    bars.iloc[3, bars.columns.get_loc("volume")] = "n/a"
    with pytest.raises(BadInput, match="bar column 'volume' is not numeric"):
        build_features(bars)


def test_flat_bars_and_constant_volume_give_finite_features():
    n = WARMUP_BARS + 5
    index = pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC")
    flat = pd.DataFrame(
        {"open": 10.0, "high": 10.0, "low": 10.0, "close": 10.0, "volume": 0.0}, index=index
    )
    assert np.isfinite(build_features(flat).to_numpy()[WARMUP_BARS:]).all()


def test_missing_columns_are_named():
    message = (
        r"^bars are missing columns \['volume'\]; expected \['open', 'high', 'low', 'close', "
        r"'volume'\] \(load them with bot.data.load_bars\)$"
    )
    with pytest.raises(BadInput, match=message):
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


def test_a_nullable_column_holding_na_reads_as_a_missing_value(spx):
    bars = spx.iloc[:150].copy()
    nullable = bars.astype({"volume": "Float64", "close": object})  # pd.NA in a text-like column
    nullable.iloc[120, nullable.columns.get_loc("volume")] = pd.NA
    nullable.iloc[130, nullable.columns.get_loc("close")] = pd.NA
    plain = bars.copy()
    plain.iloc[120, plain.columns.get_loc("volume")] = np.nan
    plain.iloc[130, plain.columns.get_loc("close")] = np.nan
    pd.testing.assert_frame_equal(build_features(nullable), build_features(plain))
    assert build_features(nullable)["volume_z_20"].iloc[120:140].eq(0).all()


def test_a_ratio_over_zero_is_zero_and_a_missing_operand_stays_missing():
    numerator = np.array([np.nan, 1.0, 2.0, 3.0, np.nan])
    denominator = np.array([0.0, 0.0, 4.0, np.nan, 2.0])
    np.testing.assert_array_equal(
        _safe_ratio(numerator, denominator), [np.nan, 0, 0.5, np.nan, np.nan]
    )
    np.testing.assert_array_equal(_safe_ratio(np.array([1.0, 3.0]), np.array([2.0, 1.0])), [0.5, 3])


@pytest.mark.parametrize("window", [5, 20, 50])
def test_a_constant_stretch_exactly_one_window_long_has_its_value_and_no_spread(window):
    rng = np.random.default_rng(window)
    for extra in (0, 1):  # the stretch is one window long, or one bar longer
        values = np.concatenate((rng.normal(1e4, 50, 30), np.full(window + extra, _CONSTANT)))
        mean, sd = _rolling_mean_std(values, window, ddof=1)
        assert (mean[30 + window - 1 :] == _CONSTANT).all()
        assert (sd[30 + window - 1 :] == 0).all()
        assert np.isfinite(mean[window - 1 : 30 + window - 1]).all()
        assert (mean[window - 1 : 30 + window - 1] != _CONSTANT).all()


def test_trailing_windows_are_read_only_views():
    values = np.arange(6, dtype=float)
    windows = _windows(values, 3)
    np.testing.assert_array_equal(windows, [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]])
    assert not windows.flags.writeable
    assert np.shares_memory(windows, values)


@pytest.mark.parametrize("scale", [1e-4, 1e3])
def test_price_features_do_not_depend_on_the_price_unit(spx, scale):
    """Every price feature is a ratio or a log return: a coin at $0.40 or a price in cents gives
    the same rows (RSI included, whose average moves are then below 1)."""
    bars = spx.iloc[:300]
    scaled = bars.assign(**{name: bars[name] * scale for name in ("open", "high", "low", "close")})
    np.testing.assert_allclose(build_features(scaled), build_features(bars), rtol=1e-7, atol=1e-10)


def test_volume_that_varies_only_by_float_round_off_reads_as_constant():
    bars = _flat(80, 100.0, 1e6)
    bars["volume"] = 1e6 + np.tile([0.0, 1e-9], 40)  # log1p apart by ~1e-15: round-off, not news
    z = build_features(bars)["volume_z_20"].to_numpy()
    assert (z[19:] == 0).all()
