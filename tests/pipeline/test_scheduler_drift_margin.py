"""The scheduler exports its ITFF_DRIFT_MARGIN: the drift alert compares with it."""

from __future__ import annotations

from prometheus_client import REGISTRY

from bot.pipeline import ItffScheduler
from storage.db import create_engine, create_session_factory
from storage.migrate import upgrade_async
from tests.support.postgres import both_stores

pytestmark = both_stores


async def test_the_scheduler_exports_the_configured_drift_margin(
    settings, make_scheduler_on
) -> None:
    configured = settings.model_copy(update={"drift_margin": 0.12})
    await upgrade_async(configured.database_url)
    engine = create_engine(configured.database_url)
    scheduler: ItffScheduler = make_scheduler_on(configured, create_session_factory(engine))
    await scheduler.start()
    try:
        assert REGISTRY.get_sample_value("itff_drift_margin") == 0.12
    finally:
        await scheduler.shutdown()
        await engine.dispose()
