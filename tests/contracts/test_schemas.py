from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from bot.contracts import Alert, DeadLetter, ModelEvent, Signal, TradingViewMessage

MESSAGE = {
    "passphrase": "secret",
    "ticker": "spx",
    "exchange": "SP",
    "interval": "1D",
    "time": "2018-12-31T00:00:00Z",
    "open": 2498.94,
    "high": 2509.24,
    "low": 2482.82,
    "close": 2506.85,
    "volume": 3442870000,
    "action": "buy",
}


def test_tradingview_message_becomes_alert_without_passphrase() -> None:
    alert = TradingViewMessage.model_validate({**MESSAGE, "plot_0": 1.5}).to_alert(
        source="tradingview"
    )
    wire = alert.model_dump_json()
    assert "secret" not in wire
    assert "passphrase" not in wire
    assert alert.symbol == "SPX"
    assert alert.extra == {"plot_0": 1.5}
    assert alert.bar_time == datetime(2018, 12, 31, tzinfo=UTC)
    assert Alert.model_validate_json(wire) == alert


def test_alert_id_is_deterministic_per_bar_and_action() -> None:
    first = TradingViewMessage.model_validate(MESSAGE).to_alert(source="tradingview")
    again = TradingViewMessage.model_validate(MESSAGE).to_alert(source="tradingview")
    sell = TradingViewMessage.model_validate({**MESSAGE, "action": "sell"}).to_alert(
        source="tradingview"
    )
    assert first.alert_id == again.alert_id
    assert first.alert_id != sell.alert_id


def test_epoch_millisecond_time_is_accepted() -> None:
    msg = TradingViewMessage.model_validate({**MESSAGE, "time": 1546214400000})
    assert msg.time == datetime(2018, 12, 31, tzinfo=UTC)


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("close", float("nan"), "close"),
        ("open", -1.0, "open"),
        ("volume", -5, "volume"),
        ("high", 1.0, "inconsistent bar"),
        ("time", "yesterday", "time"),
        ("ticker", "", "ticker"),
        ("action", "hodl", "action"),
    ],
)
def test_bad_values_are_rejected_with_the_field_named(field, value, needle) -> None:
    with pytest.raises(ValidationError) as info:
        TradingViewMessage.model_validate({**MESSAGE, field: value})
    assert needle in str(info.value)


def test_missing_field_is_named() -> None:
    body = {k: v for k, v in MESSAGE.items() if k != "close"}
    with pytest.raises(ValidationError, match="close"):
        TradingViewMessage.model_validate(body)


def test_extra_fields_are_bounded() -> None:
    big = {**MESSAGE, **{f"f{i}": i for i in range(40)}}
    with pytest.raises(ValidationError, match="extra fields"):
        TradingViewMessage.model_validate(big).to_alert(source="tradingview")


def test_every_message_has_a_schema_version() -> None:
    now = datetime.now(UTC)
    signal = Signal(
        alert_id="a" * 32,
        symbol="SPX",
        interval="1D",
        bar_time=now,
        model_key="SPX-direction-logreg",
        model_version="v1",
        target="direction",
        prediction=1.0,
        probability=0.6,
        action="buy",
        ood=False,
        latency_ms=3.2,
    )
    event = ModelEvent(
        model_key="SPX-direction-logreg", version="v1", sha256="0" * 64, event="promoted"
    )
    letter = DeadLetter(original=b"\xff\x00", error="bad", reason="undecodable", stage="decode")
    for message in (event, letter):
        assert json.loads(message.model_dump_json())["schema_version"] == 1
    assert json.loads(signal.model_dump_json())["schema_version"] == 2
    assert DeadLetter.model_validate_json(letter.model_dump_json()).original == b"\xff\x00"


def test_signal_probability_is_bounded() -> None:
    with pytest.raises(ValidationError, match="probability"):
        Signal(
            alert_id="a" * 32,
            symbol="SPX",
            interval="1D",
            bar_time=datetime.now(UTC),
            model_key="k",
            model_version="v",
            target="direction",
            prediction=1,
            probability=1.5,
            action="buy",
            ood=False,
            latency_ms=1,
        )


V1_SIGNAL = {
    "schema_version": 1, "signal_id": "s" * 32, "alert_id": "a" * 32, "symbol": "SPX",
    "interval": "1D", "bar_time": "2026-01-02T00:00:00Z", "model_key": "SPX-direction-logreg",
    "model_version": "v1", "target": "direction", "prediction": 0.0, "probability": 0.477,
    "action": "buy", "ood": False, "latency_ms": 3.2, "emitted_at": "2026-01-02T00:00:01Z",
}  # fmt: skip


def test_a_version_1_signal_still_validates_without_the_explanation() -> None:
    signal = Signal.model_validate_json(json.dumps(V1_SIGNAL))
    assert signal.schema_version == 1
    assert (signal.score, signal.buy_threshold, signal.sell_threshold) == (None, None, None)


def test_version_2_only_adds_optional_fields_that_explain_the_action() -> None:
    """A version 1 reader (its fields, unknown ones ignored) reads a version 2 signal unchanged."""
    explained = Signal.model_validate(
        {
            **V1_SIGNAL,
            "schema_version": 2,
            "score": 0.477,
            "buy_threshold": 0.47,
            "sell_threshold": 0.4,
        }
    )
    wire = json.loads(explained.model_dump_json())
    assert {k: v for k, v in wire.items() if k in V1_SIGNAL and k != "schema_version"} == {
        k: v for k, v in V1_SIGNAL.items() if k != "schema_version"
    }
    assert set(wire) - set(V1_SIGNAL) == {"score", "buy_threshold", "sell_threshold"}
    required = {name for name, field in Signal.model_fields.items() if field.is_required()}
    assert required.isdisjoint({"score", "buy_threshold", "sell_threshold"})
    # the action follows the threshold, not `prediction`: buy at 0.477 >= 0.47 although < 0.5
    assert explained.action == "buy"
    assert explained.score is not None
    assert explained.buy_threshold is not None
    assert explained.score >= explained.buy_threshold
