"""The notifier (`itff notifier`): signals from `itff.signals` to HTTP webhooks, Telegram and
Discord, in its own consumer group (`itff-notifier`), so that it never holds inference back."""

from consumers.notifier.delivery import Deliverer, Result
from consumers.notifier.destinations import destinations, http_session
from consumers.notifier.runner import notifier_group, run, running_notifier

__all__ = [
    "Deliverer",
    "Result",
    "destinations",
    "http_session",
    "notifier_group",
    "run",
    "running_notifier",
]
