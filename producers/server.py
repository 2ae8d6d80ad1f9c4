"""Serving the receiver: the event loop, the garbage collector and the access log.

`itff webhook` and `bench/ingest.py` both go through `serve()`, so the benchmark measures what
runs in production. Measured on the per-request path (see docs/webhook.md, Benchmark):

- uvloop instead of the default selector loop: less time in the loop and the transports.
- The objects built at start-up (imports, settings, the app, the Kafka client) are frozen out of
  the collector and its youngest generation runs less often (`bot.runtime.heap`): an unfrozen
  full collection walked them all again, a pause of ~0.4 s that alone blew the p99 of a run.
- No access log: every alert already has its structured line (with `alert_id`) and every request
  is in `itff_api_request_latency_seconds`; refused alerts are logged by the handlers.
"""

from __future__ import annotations

import uvloop
from aiohttp import web

from bot.runtime import freeze_startup_objects

SHUTDOWN_GRACE_S = 5.0


def serve(app: web.Application, *, host: str, port: int) -> None:
    """Run `app` until SIGINT/SIGTERM (graceful shutdown: cleanup contexts are awaited)."""
    app.on_startup.append(_freeze_startup_objects)
    web.run_app(
        app,
        host=host,
        port=port,
        print=None,
        access_log=None,
        shutdown_timeout=SHUTDOWN_GRACE_S,
        handle_signals=True,
        loop=uvloop.new_event_loop(),
    )


async def _freeze_startup_objects(_app: web.Application) -> None:
    """Runs after the app's own start-up (Kafka connected, drainer started)."""
    freeze_startup_objects()
