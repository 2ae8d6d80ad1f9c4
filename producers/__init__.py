"""The webhook receiver: TradingView and signed webhooks -> Kafka (with a durable outbox)."""

from producers.app import create_app, create_metrics_app, metrics_listener

__all__ = ["create_app", "create_metrics_app", "metrics_listener"]
