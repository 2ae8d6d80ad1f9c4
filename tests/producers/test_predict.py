"""`POST /predict` over a real registry holding a model trained on real SPX bars."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from bot.artifacts import registry_from_settings
from bot.core import ModelBundle, build_features, train_model
from bot.data import load_bars
from tests.conftest import SAMPLE_DIR
from tests.support.webhook import MakeReceiver

URL = "/predict"
TOKEN = {"X-API-Token": "test-api-token-0123456789"}
KEY = "SPX-direction-logreg"


@pytest.fixture(scope="module")
def spx_bars() -> pd.DataFrame:
    return load_bars(f"csv:{SAMPLE_DIR}", "SPX").iloc[-1600:]


@pytest.fixture(scope="module")
def trained(spx_bars: pd.DataFrame) -> ModelBundle:
    result = train_model(
        spx_bars, symbol="SPX", target="direction", model_type="logreg", lookback=2
    )
    return result.bundle


@pytest.fixture
def champion(settings, trained: ModelBundle) -> str:
    registry = registry_from_settings(settings)
    published = registry.publish(trained)
    registry.promote(published.key, published.version)
    return published.version


def _bars_body(bars: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {"time": time.isoformat(), **{k: float(v) for k, v in row.items()}}
        for time, row in bars.iterrows()
    ]


async def test_bars_give_a_prediction_per_champion(
    receiver: MakeReceiver, champion: str, spx_bars: pd.DataFrame
) -> None:
    client = await receiver()
    body = {"symbol": "spx", "bars": _bars_body(spx_bars.iloc[-120:])}
    response = await client.post(URL, json=body, headers=TOKEN)
    assert response.status == 200, await response.text()
    result = await response.json()
    assert result["symbol"] == "SPX"
    [prediction] = result["predictions"]
    assert (prediction["model_key"], prediction["model_version"]) == (KEY, champion)
    assert prediction["target"] == "direction"
    assert prediction["prediction"] in {0.0, 1.0}
    assert 0.0 <= prediction["probability"] <= 1.0
    assert prediction["action"] in {"buy", "sell", "hold"}
    assert isinstance(prediction["ood"], bool)


async def test_named_feature_rows_give_the_same_answer_as_bars(
    receiver: MakeReceiver, champion: str, spx_bars: pd.DataFrame, trained: ModelBundle
) -> None:
    del champion
    client = await receiver()
    features = build_features(spx_bars.iloc[-120:]).iloc[-trained.lookback :]
    rows = [{k: float(v) for k, v in row.items()} for _, row in features.iterrows()]
    by_rows = await client.post(
        URL, json={"symbol": "SPX", "model_key": KEY, "rows": rows}, headers=TOKEN
    )
    by_bars = await client.post(
        URL, json={"symbol": "SPX", "bars": _bars_body(spx_bars.iloc[-120:])}, headers=TOKEN
    )
    assert by_rows.status == 200, await by_rows.text()
    [row_prediction] = (await by_rows.json())["predictions"]
    [bar_prediction] = (await by_bars.json())["predictions"]
    assert math.isclose(row_prediction["probability"], bar_prediction["probability"])


async def test_symbol_without_a_model_is_404(receiver: MakeReceiver, champion: str) -> None:
    del champion
    client = await receiver()
    bar = {"time": "2026-01-02T00:00:00Z", "open": 1, "high": 2, "low": 1, "close": 2, "volume": 0}
    body = {"symbol": "NDX", "bars": [bar]}
    response = await client.post(URL, json=body, headers=TOKEN)
    assert response.status == 404
    assert "no champion model for NDX" in (await response.json())["detail"]


async def test_too_short_a_sequence_is_422(
    receiver: MakeReceiver, champion: str, spx_bars: pd.DataFrame
) -> None:
    del champion
    client = await receiver()
    body = {"symbol": "SPX", "bars": _bars_body(spx_bars.iloc[-5:])}
    response = await client.post(URL, json=body, headers=TOKEN)
    assert response.status == 422
    assert (await response.json())["error"] == "bad_sequence"


async def test_rows_with_wrong_feature_names_are_422(receiver: MakeReceiver, champion: str) -> None:
    del champion
    client = await receiver()
    body = {"symbol": "SPX", "model_key": KEY, "rows": [{"nope": 1.0}, {"nope": 2.0}]}
    response = await client.post(URL, json=body, headers=TOKEN)
    assert response.status == 422
    assert (await response.json())["detail"]


@pytest.mark.parametrize("name", ["serving.json", "model.linear.json", "model.joblib"])
async def test_tampered_artifact_is_409(
    receiver: MakeReceiver, champion: str, settings, spx_bars: pd.DataFrame, name: str
) -> None:
    """The files /predict serves (the compiled form), and model.joblib, which it hashes but never
    unpickles: a version with any altered file is not served."""
    model_file = settings.artifact_dir / KEY / champion / name
    model_file.write_bytes(model_file.read_bytes() + b"tampered")
    client = await receiver()
    body = {"symbol": "SPX", "bars": _bars_body(spx_bars.iloc[-120:])}
    response = await client.post(URL, json=body, headers=TOKEN)
    assert response.status == 409
    assert (await response.json())["error"] == "conflict"


async def test_token_is_required(receiver: MakeReceiver) -> None:
    client = await receiver()
    missing = await client.post(URL, json={"symbol": "SPX"})
    wrong = await client.post(URL, json={"symbol": "SPX"}, headers={"X-API-Token": "nope"})
    assert (missing.status, wrong.status) == (401, 401)
    assert "X-API-Token" in (await missing.json())["detail"]


async def test_request_must_hold_one_form(receiver: MakeReceiver) -> None:
    client = await receiver()
    neither = await client.post(URL, json={"symbol": "SPX"}, headers=TOKEN)
    rows_without_key = await client.post(
        URL, json={"symbol": "SPX", "rows": [{"a": 1.0}]}, headers=TOKEN
    )
    assert (neither.status, rows_without_key.status) == (422, 422)
    assert "either 'bars'" in (await neither.json())["detail"][0]["message"]


async def test_a_promotion_is_served_without_a_restart(
    receiver: MakeReceiver, settings, champion: str, trained: ModelBundle, spx_bars: pd.DataFrame
) -> None:
    import dataclasses

    client = await receiver()
    body = {"symbol": "SPX", "bars": _bars_body(spx_bars.iloc[-120:])}
    first = await (await client.post(URL, json=body, headers=TOKEN)).json()
    assert {p["model_version"] for p in first["predictions"]} == {champion}

    registry = registry_from_settings(settings)
    newer = registry.publish(dataclasses.replace(trained, version=f"{trained.version}z"))
    registry.promote(newer.key, newer.version)

    second = await (await client.post(URL, json=body, headers=TOKEN)).json()
    assert {p["model_version"] for p in second["predictions"]} == {newer.version}
