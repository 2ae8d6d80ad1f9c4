"""Bars in: CSV/Parquet files or folders and the Binance klines source, validated."""
