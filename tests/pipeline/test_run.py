"""Real pipeline runs on sample bars: refresh, train in workers, publish, promote, record."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from bot.artifacts import ArtifactRegistry
from bot.contracts import BadInput, ModelEvent
from bot.kafka import ModelEventPublisher
from bot.pipeline import RunSummary, run_pipeline
from storage import model_versions as model_repo
from storage import runs as run_repo
from storage.tables import BacktestEquity, Bar
from tests.support.kafka import topic_reader
from tests.support.pipeline import write_sample_slice
from tests.support.postgres import both_stores

pytestmark = [pytest.mark.kafka, both_stores]
DIRECTION = "SPX-direction-logreg"
RETURN = "SPX-return-ridge"


@pytest.fixture
def small(kafka_settings, tmp_path):
    folder = write_sample_slice(tmp_path / "bars", {"SPX": "SPX"}, bars=1400)
    return kafka_settings.model_copy(
        update={
            "symbols": ["SPX"], "targets": ["direction", "return"],
            "model_types": ["logreg", "ridge"], "data_source": f"csv:{folder}",
            "pipeline_workers": 2,
        }
    )  # fmt: skip


async def _run(settings, session_factory, *, holdout_bars: int = 0) -> RunSummary:
    async with ModelEventPublisher(settings) as events:
        return await run_pipeline(
            settings, session_factory=session_factory,
            registry=ArtifactRegistry(settings.artifact_dir), events=events, trigger="test",
            holdout_bars=holdout_bars,
        )  # fmt: skip


async def _events(settings) -> list[ModelEvent]:
    consumer = topic_reader(settings.bootstrap, settings.topics.models)
    await consumer.start()
    try:
        found: list[ModelEvent] = []
        while records := await consumer.getmany(timeout_ms=5_000):
            found += [ModelEvent.model_validate_json(r.value) for p in records.values() for r in p]
        return found
    finally:
        await consumer.stop()


async def _set_champion_metrics(session_factory, key: str, metrics: dict) -> None:
    async with session_factory() as session:
        champion = await model_repo.champion_row(session=session, key=key)
        assert champion is not None
        champion.metrics = metrics
        await session.commit()


async def test_runs_promote_first_models_then_only_better_challengers(
    small, session_factory
) -> None:
    first = await _run(small, session_factory)
    assert first.status == "succeeded", first.error
    assert first.counts["trained"] == 3
    assert first.counts["promoted"] == 3
    assert first.decisions["SPX-return-logreg"]["decision"] == "skipped"
    registry = ArtifactRegistry(small.artifact_dir)
    champions = registry.champions()
    assert set(champions) == {DIRECTION, RETURN, "SPX-direction-ridge"}

    # Same data again: an equal challenger is no improvement, so nothing changes.
    same = await _run(small, session_factory)
    assert same.status == "succeeded", same.error
    assert same.counts.get("promoted", 0) == 0
    assert same.counts["rejected"] == 3
    assert same.counts["bars_inserted"] == 0  # incremental refresh: nothing new in the source
    assert registry.champions() == champions

    # A champion that looked unbeatable keeps its place; a weak one is replaced.
    await _set_champion_metrics(session_factory, DIRECTION, {"recent_accuracy": 0.99})
    await _set_champion_metrics(session_factory, RETURN, {"recent_mae": 1.0, "recent_sharpe": -9})
    third = await _run(small, session_factory)
    assert third.decisions[DIRECTION]["decision"] == "rejected"
    assert third.decisions[RETURN]["decision"] == "promoted"
    assert registry.champion(DIRECTION) == champions[DIRECTION]
    assert registry.champion(RETURN) == third.decisions[RETURN]["version"] != champions[RETURN]

    events = await _events(small)
    assert [(e.model_key, e.event) for e in events].count((RETURN, "promoted")) == 2
    assert [(e.model_key, e.event) for e in events].count((DIRECTION, "promoted")) == 1
    assert events[-1].version == registry.champion(RETURN)
    async with session_factory() as session:
        versions = await model_repo.list_versions(session=session, key=RETURN)
        history = await model_repo.list_events(session=session, key=RETURN)
    assert [v.status for v in versions].count("champion") == 1
    assert {v.status for v in versions} == {"champion", "challenger", "retired"}
    assert history[0].previous_version == champions[RETURN]


async def test_run_records_bars_equity_log_and_metrics(small, session_factory) -> None:
    summary = await _run(small, session_factory)
    assert summary.status == "succeeded", summary.error
    async with session_factory() as session:
        run = await run_repo.get_run(session=session, run_id=summary.run_id)
        bars = await session.scalar(select(func.count()).select_from(Bar))
        equity = await model_repo.equity_curve(
            session=session, key=DIRECTION, version=summary.decisions[DIRECTION]["version"]
        )
    assert run is not None
    assert (run.status, run.trigger) == ("succeeded", "test")
    assert run.duration_s is not None
    assert run.duration_s > 0
    assert bars == 1400
    assert "SPX" in run.anomalies
    assert "recent_accuracy" in run.metrics[DIRECTION]
    assert len(equity) > 100
    text = Path(summary.log_path).read_text(encoding="utf-8")  # noqa: ASYNC240
    lines = [json.loads(line) for line in text.splitlines()]
    assert {line["event"] for line in lines if line["run_id"] == summary.run_id} >= {
        "pipeline_started", "bars_refreshed", "model_judged", "pipeline_finished",
    }  # fmt: skip
    last_success = REGISTRY.get_sample_value("itff_pipeline_last_success_timestamp_seconds")
    assert last_success == pytest.approx(run.finished_at.timestamp())


async def test_failing_source_fails_the_run_and_champion_keeps_serving(
    small, session_factory, tmp_path
) -> None:
    good = await _run(small, session_factory)
    assert good.status == "succeeded", good.error
    registry = ArtifactRegistry(small.artifact_dir)
    champion = registry.champion(DIRECTION)
    failed_before = (
        REGISTRY.get_sample_value(
            "itff_pipeline_runs_total", {"status": "failed", "trigger": "test"}
        )
        or 0.0
    )

    broken = small.model_copy(update={"data_source": f"csv:{tmp_path / 'gone'}"})
    bad = await _run(broken, session_factory)

    assert bad.status == "failed"
    assert "gone" in (bad.error or "")
    assert registry.champion(DIRECTION) == champion
    assert registry.load(DIRECTION).version == champion  # still verified and loadable
    assert REGISTRY.get_sample_value("itff_pipeline_last_run_failed") == 1
    assert (
        REGISTRY.get_sample_value(
            "itff_pipeline_runs_total", {"status": "failed", "trigger": "test"}
        )
        == failed_before + 1
    )
    async with session_factory() as session:
        row = await run_repo.get_run(session=session, run_id=bad.run_id)
        equity_rows = await session.scalar(select(func.count()).select_from(BacktestEquity))
    assert row is not None
    assert row.status == "failed"
    assert row.error == bad.error
    assert equity_rows  # the good run's curves are untouched


async def test_unreachable_broker_fails_the_run_before_anything_changes(
    settings, session_factory, tmp_path
) -> None:
    from tests.support.kafka import free_port

    folder = write_sample_slice(tmp_path / "bars", {"SPX": "SPX"}, bars=1400)
    offline = settings.model_copy(
        update={"kafka_bootstrap": f"127.0.0.1:{free_port()}", "data_source": f"csv:{folder}"}
    )
    summary = await _run(offline, session_factory)
    assert summary.status == "failed"
    assert "not reachable" in (summary.error or "")
    assert summary.counts == {}
    assert ArtifactRegistry(offline.artifact_dir).champions() == {}
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(Bar)) == 0


async def test_holdout_bars_are_stored_but_not_learned(small, session_factory, tmp_path) -> None:
    held_out = 200
    one_model = small.model_copy(update={"targets": ["direction"], "model_types": ["logreg"]})
    summary = await _run(one_model, session_factory, holdout_bars=held_out)
    assert summary.status == "succeeded", summary.error
    source = pd.read_csv(tmp_path / "bars" / "SPX_1d.csv", parse_dates=["time"])
    bundle = ArtifactRegistry(one_model.artifact_dir).load(DIRECTION)
    assert bundle.train_end == source["time"].iloc[-held_out - 1].to_pydatetime()
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(Bar)) == len(source)
    log = Path(summary.log_path).read_text(encoding="utf-8")  # noqa: ASYNC240
    assert '"event": "bars_held_out"' in log


async def test_a_negative_holdout_is_refused(small, session_factory) -> None:
    with pytest.raises(BadInput, match="holdout_bars"):
        await _run(small, session_factory, holdout_bars=-1)


async def test_holding_out_every_bar_fails_the_run_with_the_reason(small, session_factory) -> None:
    summary = await _run(small, session_factory, holdout_bars=1400)
    assert summary.status == "failed"
    expected = "--holdout-bars 1400 leaves no bar of SPX to train on (1400 stored)"
    assert expected in str(summary.error)
