"""One feature pass for every symbol of a batch: each alert still gets exactly what predicting on
its own point-in-time bars gives, whatever else shares its batch (no database: `infer_batch` on
real models)."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from bot.contracts import Alert, BadInput, Settings
from bot.serving import Predictor
from consumers.deadletters import Reason, RecordRef
from consumers.inference import GroupInput, Item, infer_batch
from consumers.served_models import PredictorModels
from consumers.service import window_size
from consumers.windows import BarArrays, WindowKey
from tests.support.consumer import alerts_for, publish_champions, sample_bars


def point_in_time(history: pd.DataFrame, alerts: list[Alert], i: int) -> pd.DataFrame:
    """The bars known when alert `i` is processed, up to its own bar."""
    bars = history.copy()
    for alert in alerts[: i + 1]:
        bars.loc[pd.Timestamp(alert.bar_time)] = [
            alert.open, alert.high, alert.low, alert.close, alert.volume,
        ]  # fmt: skip
    bars = bars.sort_index()
    return bars[bars.index <= pd.Timestamp(alerts[i].bar_time)]


def batch_alerts(symbol: str, bars: pd.DataFrame, stored: int) -> tuple[pd.DataFrame, list[Alert]]:
    """Stored history (one bar missing) and alerts in offset order: new bars, a revision of a
    stored bar, the missing (late) bar, another new bar."""
    history = bars.iloc[:stored].drop(bars.index[stored - 8])
    new = alerts_for(symbol, bars.iloc[stored : stored + 3])
    revised = alerts_for(symbol, bars.iloc[stored - 3 : stored - 2])[0]
    revised = revised.model_copy(
        update={"close": revised.close * 1.01, "high": revised.high * 1.01}
    )
    late = alerts_for(symbol, bars.iloc[stored - 8 : stored - 7])
    return history, [*new[:2], revised, *late, new[2]]


@pytest.fixture
def predictor(settings: Settings) -> PredictorModels:
    publish_champions(settings, "SPX")
    publish_champions(settings, "NDX")
    return PredictorModels.from_settings(settings)


def test_a_mixed_batch_equals_each_alert_predicted_on_its_own_bars(
    predictor: PredictorModels,
) -> None:
    size = window_size(max(spec.lookback for spec in predictor.specs("SPX")))
    # SPX: a full window; NDX: a young symbol whose history is shorter than the window
    spx_history, spx_alerts = batch_alerts("SPX", sample_bars("SPX"), 400)
    ndx_history, ndx_alerts = batch_alerts("NDX", sample_bars("NDX"), size - 2)
    groups: dict[WindowKey, GroupInput] = {}
    for symbol, history, alerts in (
        ("SPX", spx_history, spx_alerts),
        ("NDX", ndx_history, ndx_alerts),
    ):
        items = [
            Item(RecordRef(a.model_dump_json().encode(), "t", 0, i), a)
            for i, a in enumerate(alerts)
        ]
        groups[(symbol, "1D")] = GroupInput(BarArrays.of(history), items, predictor.specs(symbol))
    results = infer_batch(groups, predictor.predict_windows, size)

    served: Predictor = predictor.predictor
    for symbol, history, alerts in (
        ("SPX", spx_history, spx_alerts),
        ("NDX", ndx_history, ndx_alerts),
    ):
        result = results[(symbol, "1D")]
        got = {(s.alert_id, s.model_key): (s.prediction, s.probability) for s in result.signals}
        short = {d.original for d in result.dead_letters if d.reason == Reason.INSUFFICIENT_HISTORY}
        expected = {}
        for i, alert in enumerate(alerts):
            try:
                predictions = served.predict_bars(symbol, point_in_time(history, alerts, i))
            except BadInput:  # too few bars: the consumer dead-letters it
                assert alert.model_dump_json().encode() in short
                continue
            for p in predictions:
                expected[(alert.alert_id, p.model_key)] = (p.prediction, p.probability)
        assert got == expected
        assert result.window.times[-1] == max(pd.Timestamp(a.bar_time).value for a in alerts)
    assert len(results[("SPX", "1D")].signals) == 5 * 3
    assert 0 < len(results[("NDX", "1D")].signals) < 5 * 3  # the first alerts lack history
    assert timedelta(0) < ndx_alerts[-1].bar_time - ndx_alerts[0].bar_time
