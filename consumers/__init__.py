"""The FastStream consumers: alerts -> signals, dead letters, outcomes, model hot reload."""
