"""The event store: every event the service acknowledges, durable before the response.

:class:`EventStore` is the small interface the service needs (append, read back in arrival
order, count), so a PostgreSQL store can sit beside :class:`SQLiteEventStore`, the embedded
default. SQLite runs in WAL mode (readers never block the writer) with ``synchronous=FULL``:
each commit fsyncs the write-ahead log, so an acknowledged event survives a killed process
*and* a power cut. ``NORMAL`` would survive a killed process only (the WAL reaches the OS but
may not reach the disk) and saves one fsync per request; POST /events takes batches, so the
fsync is paid once per batch, and the load benchmark measures what it costs.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

SYNCHRONOUS = ("FULL", "NORMAL", "EXTRA")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    event TEXT NOT NULL,
    rating REAL,
    review TEXT
)
"""


@dataclass(frozen=True)
class EventRecord:
    """One event as the API received it; ``id`` is the store's arrival number (0 before storing)."""

    user_id: str
    item_id: str
    timestamp: int
    event: str = "click"
    rating: float | None = None
    review: str | None = None
    id: int = 0


class EventStore(Protocol):
    """What the service needs from an event store."""

    location: str
    """Where the events live (e.g. ``sqlite:///abs/path.sqlite``); bundles built from the store name it."""

    def append(self, events: Sequence[EventRecord]) -> int:
        """Store ``events`` atomically; durable when this returns. Returns the id of the last one."""
        ...

    def since(self, after_id: int = 0) -> list[EventRecord]:
        """Events with ``id > after_id``, in arrival order."""
        ...

    def count(self) -> int: ...

    def last_id(self) -> int:
        """The id of the newest event (0 when empty)."""
        ...

    def close(self) -> None: ...


class SQLiteEventStore:
    """Events in one SQLite file (WAL mode); safe to share between threads (one lock)."""

    def __init__(self, path: str | Path, synchronous: str = "FULL") -> None:
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous: must be one of {SYNCHRONOUS}, got {synchronous!r}")
        self.path = Path(path).resolve()
        self.location = f"sqlite:///{self.path}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute(_SCHEMA)

    def append(self, events: Sequence[EventRecord]) -> int:
        rows = [(e.user_id, e.item_id, int(e.timestamp), e.event, e.rating, e.review) for e in events]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO events (user_id, item_id, timestamp, event, rating, review) VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return self._last_id()

    def since(self, after_id: int = 0) -> list[EventRecord]:
        with self._lock:
            cursor = self._db.execute(
                "SELECT user_id, item_id, timestamp, event, rating, review, id FROM events WHERE id > ? ORDER BY id",
                (int(after_id),),
            )
            return [EventRecord(*row) for row in cursor]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def last_id(self) -> int:
        with self._lock:
            return self._last_id()

    def _last_id(self) -> int:
        return int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
