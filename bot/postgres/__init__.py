"""PostgreSQL: a local server from Debian's binaries (`itff postgres start`)."""

from bot.postgres.local import (
    LocalPostgres,
    ServerStatus,
    StartResult,
    find_bin_dir,
    last_log_lines,
    start,
    status,
    stop,
)

__all__ = [
    "LocalPostgres",
    "ServerStatus",
    "StartResult",
    "find_bin_dir",
    "last_log_lines",
    "start",
    "status",
    "stop",
]
