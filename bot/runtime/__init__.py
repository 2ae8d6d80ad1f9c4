"""Runtime: how processes run. Logs and the metrics endpoint, native thread pools, the
supervisor."""

from bot.runtime.heap import freeze_startup_objects
from bot.runtime.observability import (
    configure_logging,
    get_logger,
    mask_url_passwords,
    serve_metrics,
)
from bot.runtime.supervisor import RestartPolicy, ServiceSpec, Supervisor, supervise
from bot.runtime.threads import single_native_thread

__all__ = [
    "RestartPolicy",
    "ServiceSpec",
    "Supervisor",
    "configure_logging",
    "freeze_startup_objects",
    "get_logger",
    "mask_url_passwords",
    "serve_metrics",
    "single_native_thread",
    "supervise",
]
