"""The bar rule on real SQLite and real models: every alert is predicted point-in-time.

An alert for a bar the data refresh already stored, or a replay of old stored bars, yields the
signals that predicting on the history truncated at that bar yields: no later bar is ever used.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.contracts import Alert, Settings, Signal
from bot.serving import Predictor
from consumers.deadletters import RecordRef
from consumers.outcomes import resolve_outcomes
from consumers.served_models import PredictorModels
from consumers.service import InferenceService
from storage.db import create_engine, create_session_factory
from storage.migrate import upgrade_async
from storage.tables import Bar, SignalRow
from tests.support.consumer import (
    alerts_for,
    publish_champions,
    sample_bars,
    seed_bars,
    signal_rows,
)
from tests.support.postgres import both_stores

pytestmark = both_stores

BARS = sample_bars("SPX")
STORED = 600


def refs(alerts: Sequence[Alert], first_offset: int = 0) -> list[RecordRef]:
    return [
        RecordRef(a.model_dump_json().encode(), "t.alerts", 0, first_offset + i)
        for i, a in enumerate(alerts)
    ]


def service(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> InferenceService:
    models = PredictorModels.from_settings(settings)
    return InferenceService(
        session_factory=sessions,
        champion_specs=models.specs,
        predict=models.predict_windows,
        lookback=settings.lookback,
        bounds=settings.bar_bounds,
        revision_window=settings.revision_window_bars,
    )


def expected(predictor: Predictor, history: pd.DataFrame) -> dict[str, float]:
    """Every champion on `history` through the predictor's own path (no consumer code)."""
    return {p.model_key: p.prediction for p in predictor.predict_bars("SPX", history)}


def by_alert(signals: Sequence[Signal]) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    for s in signals:
        found.setdefault(s.alert_id, {})[s.model_key] = s.prediction
    return found


@pytest.fixture
async def stored(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> Predictor:
    """Three SPX champions and the first STORED sample bars in the database."""
    publish_champions(settings, "SPX")
    await seed_bars(session_factory, "SPX", BARS.iloc[:STORED])
    return Predictor(PredictorModels.from_settings(settings).predictor.registry)


async def test_an_alert_for_the_latest_stored_bar_yields_its_signals(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession], stored: Predictor
) -> None:
    latest = alerts_for("SPX", BARS.iloc[STORED - 1 : STORED])
    result = await service(settings, session_factory).process(refs(latest))
    assert result.dead_letters == []
    assert by_alert(result.signals) == {
        latest[0].alert_id: pytest.approx(expected(stored, BARS.iloc[:STORED]), rel=1e-9)
    }
    assert len(await signal_rows(session_factory)) == 3


async def test_live_compiled_signals_equal_the_batch_scikit_learn_scores(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession], stored: Predictor
) -> None:
    """Parity through the compiled path: the consumer (compiled, no unpickling) gives the scores
    and actions that the unpickled pipelines give in one batch over the same history."""
    from bot.core import build_features, predict_scores, to_windows

    replay = alerts_for("SPX", BARS.iloc[STORED - 40 : STORED])
    result = await service(settings, session_factory).process(refs(replay))
    assert result.dead_letters == []
    assert settings.serving_runtime == "compiled"
    registry = stored.registry
    reference = Predictor(registry, "sklearn")
    features = build_features(BARS.iloc[:STORED]).to_numpy(dtype=float)
    for key in stored.champion_keys("SPX"):
        bundle = registry.load(key)  # the batch side: the pipeline itself
        windows = to_windows(features, bundle.lookback)[-len(replay) :]
        batch = predict_scores(bundle.pipeline, windows, bundle.target)
        live = {s.alert_id: s for s in result.signals if s.model_key == key}
        scores = [live[alert.alert_id].score for alert in replay]
        np.testing.assert_allclose(scores, batch, rtol=0, atol=1e-9)
        actions = [p.action for p in reference.predict_windows(key, windows)]
        assert [live[alert.alert_id].action for alert in replay] == actions


async def test_replayed_old_bars_are_predicted_on_their_own_history_only(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession], stored: Predictor
) -> None:
    consumer = service(settings, session_factory)
    replay = alerts_for("SPX", BARS.iloc[200:260])
    far = alerts_for("SPX", BARS.iloc[140:141])  # far before the window, alone in its batch
    signals = []
    for offset, batch in ((0, replay[:30]), (30, far), (31, replay[30:])):
        result = await consumer.process(refs(batch, offset))
        assert result.dead_letters == []
        signals += result.signals
    predicted = by_alert(signals)
    assert len(predicted) == len(replay) + 1
    for alert in (*replay, *far):
        position = int(BARS.index.searchsorted(pd.Timestamp(alert.bar_time)))
        truncated = expected(stored, BARS.iloc[: position + 1])
        assert predicted[alert.alert_id] == pytest.approx(truncated, rel=1e-9), alert.bar_time
        # the check can fail: with the next bar, at least one model predicts otherwise
        later = expected(stored, BARS.iloc[: position + 2])
        assert predicted[alert.alert_id] != pytest.approx(later, rel=1e-9)


@pytest.mark.usefixtures("stored")
async def test_a_replayed_bar_yields_what_it_yields_with_every_later_bar_deleted(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    alert = alerts_for("SPX", BARS.iloc[230:231])
    full = await service(settings, session_factory).process(refs(alert))
    url = f"sqlite+aiosqlite:///{tmp_path / 'truncated.db'}"
    await upgrade_async(url)
    engine = create_engine(url)
    try:
        truncated_sessions = create_session_factory(engine)
        await seed_bars(truncated_sessions, "SPX", BARS.iloc[:231])  # nothing after the bar
        truncated = await service(settings, truncated_sessions).process(refs(alert))
    finally:
        await engine.dispose()
    assert len(full.signals) == 3
    assert by_alert(full.signals) == by_alert(truncated.signals)


@pytest.mark.usefixtures("stored")
async def test_a_redelivered_alert_gets_its_stored_signals_not_a_second_one(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    consumer = service(settings, session_factory)
    batch = refs(alerts_for("SPX", BARS.iloc[STORED - 5 : STORED + 5]))
    first = await consumer.process(batch)
    again = await service(settings, session_factory).process(batch)  # after a restart too
    assert len(first.signals) == 30
    assert first.redelivered == []
    assert again.signals == []
    assert sorted(s.signal_id for s in again.redelivered) == sorted(
        s.signal_id for s in first.signals
    )
    assert {s.signal_id: s for s in again.redelivered} == {s.signal_id: s for s in first.signals}
    async with session_factory() as session:
        count = (await session.execute(select(func.count()).select_from(SignalRow))).scalar_one()
        bars = (await session.execute(select(func.count()).select_from(Bar))).scalar_one()
    assert count == 30
    assert bars == STORED + 5


async def test_a_revision_in_a_batch_is_seen_only_by_the_alerts_after_it(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession], stored: Predictor
) -> None:
    before, revised_bar, after = (
        alerts_for("SPX", BARS.iloc[249:251])[1],
        *alerts_for("SPX", BARS.iloc[249:251], prefix="rev"),
    )
    revised_bar = revised_bar.model_copy(
        update={"close": revised_bar.close * 1.03, "high": revised_bar.high * 1.03}
    )
    # a bar 351 bars back: revisable only with a window that reaches it (the point-in-time
    # semantics are tested here; the history policy in test_history.py)
    reaching = settings.model_copy(update={"revision_window_bars": 400})
    result = await service(reaching, session_factory).process(refs([before, revised_bar, after]))
    predicted = by_alert(result.signals)
    history = BARS.iloc[:251].copy()
    assert predicted[before.alert_id] == pytest.approx(expected(stored, history), rel=1e-9)
    history.loc[pd.Timestamp(revised_bar.bar_time), ["close", "high"]] *= 1.03
    assert predicted[after.alert_id] == pytest.approx(expected(stored, history), rel=1e-9)
    assert predicted[revised_bar.alert_id] == pytest.approx(
        expected(stored, history.iloc[:-1]), rel=1e-9
    )
    assert predicted[after.alert_id] != pytest.approx(predicted[before.alert_id], rel=1e-9)


@pytest.mark.usefixtures("stored")
async def test_signals_of_historical_bars_get_their_outcomes_right_after_storing(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    consumer = service(settings, session_factory)
    marked: list[set[str]] = []
    consumer.on_stored = lambda symbols: marked.append(set(symbols))
    replay = alerts_for("SPX", BARS.iloc[STORED - 40 : STORED])
    result = await consumer.process(refs(replay))
    assert marked == [{"SPX"}]
    resolved = await resolve_outcomes(session_factory=session_factory, symbols=marked[0])
    assert len(result.signals) == 120
    assert resolved == 39 * 3  # the last stored bar's next bar is not known yet
