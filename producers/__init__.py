"""The webhook receiver: TradingView and signed webhooks -> Kafka (with a durable outbox)."""

from producers.app import create_app

__all__ = ["create_app"]
