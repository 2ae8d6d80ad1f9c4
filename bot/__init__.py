"""ITFF: Intelligent Trading Forecast Framework."""

__version__ = "0.1.0"
