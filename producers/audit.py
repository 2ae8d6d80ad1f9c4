"""The alert audit log: one JSON line per webhook request in
`ITFF_REPORT_DIR/live/tradingview/YYYY-MM-DD.jsonl` (UTC day of the request).

Recording never blocks or fails a request: a line goes into a bounded queue (a full queue drops
it and counts it in `itff_audit_lines_dropped_total`), and a writer thread of its own appends it.
The record is built from what the receiver validated (never the body, the passphrase or a
signature), so a hostile body can only ever show up as its status and error code.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["AuditLog", "AuditRecord", "audit_path"]

import orjson

from bot.contracts import Alert
from bot.core import audit_path
from bot.runtime import get_logger

log = get_logger(__name__)

BUFFER_LINES = 10_000


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What is kept of one request: only validated fields, ids and the answer."""

    time: datetime
    source: str
    status: int
    latency_ms: float
    error: str | None = None
    outcome: str | None = None
    alert: Alert | None = None

    def line(self) -> bytes:
        alert = self.alert
        document: dict[str, Any] = {
            "time": self.time.isoformat(),
            "source": self.source,
            "alert_id": alert.alert_id if alert else None,
            "symbol": alert.symbol if alert else None,
            "interval": alert.interval if alert else None,
            "bar_time": alert.bar_time.isoformat() if alert else None,
            "status": self.status,
            "error": self.error,
            "outcome": self.outcome,
            "latency_ms": round(self.latency_ms, 3),
        }
        return orjson.dumps(document) + b"\n"


class AuditLog:
    """A bounded queue of records and the thread that appends them to the day's file."""

    def __init__(
        self,
        report_dir: Path,
        *,
        on_drop: Callable[[], None],
        capacity: int = BUFFER_LINES,
    ) -> None:
        self.report_dir = report_dir
        self._on_drop = on_drop
        self._queue: queue.Queue[AuditRecord | None] = queue.Queue(maxsize=capacity)
        self._thread: threading.Thread | None = None

    def record(self, entry: AuditRecord) -> None:
        """Queue a line; when the writer is behind by `capacity` lines, drop it and count it."""
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self._on_drop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="itff-audit-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then end the thread (blocking: call it from a worker thread)."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join()
        self._thread = None

    def _run(self) -> None:
        while (entry := self._queue.get()) is not None:
            batch = [entry]
            while len(batch) < BUFFER_LINES:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._write(batch)
                    return
                batch.append(more)
            self._write(batch)

    def _write(self, batch: list[AuditRecord]) -> None:
        by_day: dict[str, list[bytes]] = {}
        for entry in batch:
            by_day.setdefault(entry.time.astimezone(UTC).date().isoformat(), []).append(
                entry.line()
            )
        for day, lines in by_day.items():
            path = audit_path(self.report_dir, day)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("ab") as file:
                    file.write(b"".join(lines))
            except OSError as exc:
                log.warning("audit lines lost", path=str(path), lines=len(lines), error=str(exc))
                for _ in lines:
                    self._on_drop()
