"""Loading bars from files and folders, and the documented validation rule."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bot.contracts import BadInput, NotFound
from bot.core import WARMUP_BARS, build_features
from bot.data import anomaly_report, load_bars, load_bars_report
from bot.data.binance import _frame
from bot.data.validation import validate_bars
from tests.conftest import SAMPLE_DIR


def _bars(n: int = 40, start: str = "2024-01-01", freq: str = "B") -> pd.DataFrame:
    rng = np.random.default_rng(1)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    return pd.DataFrame(
        {
            "time": pd.date_range(start, periods=n, freq=freq, tz="UTC"),
            "open": open_,
            "high": np.maximum(open_, close) * 1.01,
            "low": np.minimum(open_, close) * 0.99,
            "close": close,
            "volume": rng.uniform(1e5, 2e5, n),
        }
    )


def test_sample_data_loads_as_the_bars_contract():
    bars = load_bars(f"csv:{SAMPLE_DIR}", "spx")
    assert len(bars) == 5031
    assert bars.index.name == "time"
    assert str(bars.index.tz) == "UTC"
    assert bars.index.is_monotonic_increasing
    assert bars.index.is_unique
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert all(dtype == np.float64 for dtype in bars.dtypes)


def test_sample_report_finds_only_real_market_closures():
    report = load_bars_report(f"csv:{SAMPLE_DIR}", "NDX").report
    assert report.n_bad == 0
    assert report.duplicates == 0
    assert not report.unsorted
    # 9/11 (4 sessions), Ford's funeral after New Year 2007, hurricane Sandy (2 sessions)
    assert report.examples["gap before"] == [
        "2001-09-17 00:00:00+00:00",
        "2007-01-03 00:00:00+00:00",
        "2012-10-31 00:00:00+00:00",
    ]
    assert json.loads(report.to_json())["gaps"] == 3


def test_unsorted_rows_are_sorted_and_duplicates_keep_the_last():
    raw = _bars(10)
    dup = raw.iloc[[3]].assign(close=raw["close"].iloc[3] * 1.001, high=raw["high"].iloc[3] * 1.01)
    shuffled = pd.concat([raw.iloc[::-1], dup], ignore_index=True)
    bars, report = validate_bars(shuffled, symbol="X")
    assert report.unsorted
    assert report.duplicates == 1
    assert bars.index.is_monotonic_increasing
    assert len(bars) == 10
    assert bars["close"].iloc[3] == pytest.approx(dup["close"].iloc[0])


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("close", np.nan, "non-finite or non-positive price"),
        ("open", -1.0, "non-finite or non-positive price"),
        ("close", np.inf, "non-finite or non-positive price"),
        ("high", 50.0, "high below max(open, close)"),
        ("low", 500.0, "low above min(open, close)"),
        ("volume", -5.0, "negative or infinite volume"),
    ],
)
def test_bad_rows_are_dropped_and_reported(column, value, reason):
    raw = _bars(40)
    raw.loc[7, column] = value
    bars, report = validate_bars(raw, symbol="X", max_bad_fraction=0.05)
    assert len(bars) == 39
    assert raw["time"].iloc[7] not in bars.index
    assert report.bad_rows[reason] == 1
    assert report.examples[reason] == [str(raw["time"].iloc[7])]


def test_too_many_bad_rows_fail_the_load_with_counts():
    raw = _bars(40)
    raw.loc[[1, 2, 3], "volume"] = -1.0
    with pytest.raises(BadInput, match=r"3 of 40 bars of X are invalid.*allowed 5%"):
        validate_bars(raw, symbol="X", max_bad_fraction=0.05)
    bars, _ = validate_bars(raw, symbol="X", max_bad_fraction=0.1)
    assert len(bars) == 37


def test_daily_gaps_are_business_day_aware():
    raw = _bars(30, freq="B")  # weekdays only: weekends are not gaps
    assert validate_bars(raw, symbol="X")[1].gaps == 0
    one_holiday = raw.drop(index=[5])
    assert validate_bars(one_holiday, symbol="X")[1].gaps == 0
    two_missing = raw.drop(index=[5, 6])
    report = validate_bars(two_missing, symbol="X")[1]
    assert report.gaps == 1
    assert report.examples["gap before"] == [str(raw["time"].iloc[7])]


def test_intraday_gaps_are_longer_steps_than_the_interval():
    raw = _bars(30, freq="h").drop(index=[10])
    report = validate_bars(raw, symbol="X", interval="1h")[1]
    assert report.gaps == 1


def test_folder_of_files_csv_and_parquet_with_epoch_times(tmp_path):
    raw = _bars(20)
    first = raw.iloc[:12].copy()
    first["time"] = first["time"].astype("int64") // 10**6  # epoch milliseconds
    first.rename(columns=str.upper).to_csv(tmp_path / "ABC_part1.csv", index=False)
    raw.iloc[10:].set_index("time").to_parquet(tmp_path / "ABC_part2.parquet")
    (tmp_path / "OTHER_1d.csv").write_text("time,open,high,low,close,volume\n")
    loaded = load_bars_report(f"csv:{tmp_path}", "abc")
    assert len(loaded.bars) == 20
    assert loaded.report.duplicates == 2  # overlapping files: the later file wins
    np.testing.assert_allclose(loaded.bars["close"], raw["close"])


def test_missing_symbol_and_missing_columns_say_what_to_do(tmp_path):
    (tmp_path / "SPX_1d.csv").write_text("time,open,close\n2024-01-01,1,1\n")
    with pytest.raises(NotFound, match=r"no bar files for NDX .* symbols there: SPX"):
        load_bars(f"csv:{tmp_path}", "NDX")
    with pytest.raises(BadInput, match="missing columns"):
        load_bars(f"csv:{tmp_path}", "SPX")
    with pytest.raises(BadInput, match="unknown data source"):
        load_bars("ftp:somewhere", "SPX")
    with pytest.raises(NotFound, match="does not exist"):
        load_bars(f"csv:{tmp_path / 'nope'}", "SPX")


def test_unparseable_times_are_bad_rows(tmp_path):
    raw = _bars(40)
    raw["time"] = raw["time"].astype(str)
    raw.loc[4, "time"] = "not a time"
    raw.to_csv(tmp_path / "T.csv", index=False)
    loaded = load_bars_report(f"csv:{tmp_path / 'T.csv'}", "T")
    assert len(loaded.bars) == 39
    assert loaded.report.bad_rows == {"unparseable or out-of-range time": 1}


def test_anomaly_report_of_a_loaded_frame_never_drops():
    raw = _bars(20).set_index("time")
    raw.iloc[3, raw.columns.get_loc("volume")] = -1
    report = anomaly_report(raw, interval="1D", symbol="X")
    assert report.bad_rows == {"negative or infinite volume": 1}
    assert report.as_dict()["n_bad"] == 1


def test_binance_rows_of_a_bar_still_open_are_dropped():
    hour = 3_600_000
    rows = [[t, "1", "2", "0.5", "1.5", "10", t + hour - 1] for t in (0, hour, 2 * hour)]
    frame = _frame(rows, now=pd.Timestamp(2 * hour + 10, unit="ms", tz="UTC"))
    assert len(frame) == 2


def test_a_file_without_volume_loads_with_a_missing_volume_and_neutral_feature(tmp_path):
    """Index exports (TradingView's SPX, NDX) have no volume column, or empty cells."""
    bars = _bars(80).drop(columns="volume")
    bars.to_csv(tmp_path / "IDX_1d.csv", index=False)
    loaded = load_bars_report(f"csv:{tmp_path}", "IDX")
    assert len(loaded.bars) == 80
    assert loaded.bars["volume"].isna().all()
    assert loaded.report.n_bad == 0
    features = build_features(loaded.bars).iloc[WARMUP_BARS:]
    assert (features["volume_z_20"] == 0).all()
    assert not features.isna().any().any()


def test_empty_volume_cells_are_missing_not_bad(tmp_path):
    raw = _bars(40)
    raw["volume"] = raw["volume"].astype(object)
    raw.loc[5:9, "volume"] = ""
    raw.to_csv(tmp_path / "X_1d.csv", index=False)
    loaded = load_bars_report(f"csv:{tmp_path}", "X")
    assert len(loaded.bars) == 40
    assert loaded.bars["volume"].isna().sum() == 5


def test_future_and_unrepresentable_times_are_dropped_and_reported():
    raw = _bars(40)
    raw["time"] = raw["time"].astype(str)
    now = pd.Timestamp("2024-03-01T00:00:00Z").to_pydatetime()
    raw.loc[38, "time"] = "2024-03-04T00:00:00Z"  # three days ahead of `now`: a bar from the future
    raw.loc[39, "time"] = "9999-12-31T00:00:00Z"  # beyond pandas' range
    bars, report = validate_bars(raw, symbol="X", max_bad_fraction=0.1, now=now)
    assert len(bars) == 38
    assert report.bad_rows == {"unparseable or out-of-range time": 2}
    assert bars.index.max() <= pd.Timestamp(now) + pd.Timedelta(days=1, minutes=5)
