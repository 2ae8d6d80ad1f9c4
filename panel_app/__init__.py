"""The Panel dashboard: live performance next to the backtest, signals, models, runs, latency.

`panel_app.queries` reads the database (read-only, cached, bounded); `panel_app.views` turns the
frames into Panel components; `panel_app.server` serves them behind basic auth with `/health`;
`panel_app.snapshot` renders the key charts to a PNG for the daily report.
"""
