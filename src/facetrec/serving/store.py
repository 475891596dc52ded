"""The service's durable event log: where it lives (:func:`open_store`), what it offers
(:class:`ServiceStore`), and the embedded default, :class:`SQLiteHistoryStore`.

Every event the service acknowledges is committed to the store before the response. Two stores
implement :class:`ServiceStore`: SQLite here (one file, for one machine; the default) and
PostgreSQL (:mod:`facetrec.serving.postgres`, for workers that share a database server).
:func:`open_store` picks one from a location (``sqlite:///path``, a plain path, or
``postgresql://...``), and a store's ``location`` opens it again, which is how a bundle names the
store it was built from (serving.json).

The SQLite store is one file in WAL mode (readers never block the writer) with
``synchronous=FULL``: each commit fsyncs the write-ahead log, so an acknowledged event survives a
killed process *and* a power cut. ``NORMAL`` would survive a killed process only (the WAL reaches
the OS but may not reach the disk) and saves one fsync per request; POST /events takes batches,
so the fsync is paid once per batch.

Each event gets an arrival number (``EventRecord.seq``, the table's ``id``), assigned under
SQLite's write lock, so numbers become visible in order: a reader that has seen every event up
to ``seq`` finds all later ones with :meth:`SQLiteHistoryStore.since`, an index range scan.
That is how the service's worker processes stay current. An event with a client id
(``EventRecord.id``, unique in the store) is stored once; a retried one gets the first
one's number back. Catalogue items added while serving are stored the same way (:meth:`add_items`,
read back in order with :meth:`items_since`), so every worker adds them. The store also records
which bundle the service runs (:meth:`publish`), so a reload reaching one worker moves every worker.

The schema is built by numbered migrations (:data:`MIGRATIONS`), each applied once, in order,
under the write lock; the file's ``user_version`` says how many it holds, so a store written by
an older facetrec is upgraded when it is opened.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from facetrec.errors import ConfigError, FacetrecError
from facetrec.history import EventRecord, HistoryStore, check_events

SYNCHRONOUS = ("FULL", "NORMAL", "EXTRA")
CHUNK = 10_000
"""Events read per query when iterating the log."""

SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")


class StoreUnavailable(FacetrecError, RuntimeError):
    """The event store cannot be reached now (its server is down or the connection was lost):
    the request may be retried later, so the service answers 503, not 500."""


class ServiceStore(HistoryStore, Protocol):
    """What the service, bundle loading and retraining need from the durable event log: a
    :class:`~facetrec.history.HistoryStore` whose events carry arrival numbers, plus the items
    added while serving and the published bundle. Implemented by :class:`SQLiteHistoryStore` and
    :class:`~facetrec.serving.postgres.PostgresHistoryStore`."""

    location: str
    """Where the events live, in the form :func:`open_store` reads (never with a password)."""

    def write(self, events: Sequence[EventRecord]) -> tuple[int, int]:
        """Store ``events`` in one transaction, durable when this returns; an event whose ``id``
        is already stored is skipped. Returns (how many were added, the arrival number of the
        batch's last event: its own, or the stored one's for a repeated id)."""
        ...

    def events(self, after: int = 0) -> Iterator[EventRecord]:
        """Every event with arrival number above ``after``, in arrival order (read in chunks)."""
        ...

    def since(self, after: int = 0, limit: int | None = None) -> list[EventRecord]:
        """Up to ``limit`` events with arrival number above ``after``, in arrival order. Numbers
        become visible in order, so a reader that follows this never skips one."""
        ...

    def count(self) -> int: ...

    def last_seq(self) -> int:
        """The newest event's arrival number (0 when empty)."""
        ...

    def add_items(self, items: Sequence[tuple[str, dict]]) -> int:
        """Store new catalogue items ``(item id, fields)`` in one transaction; ids already stored
        are skipped (a retried request). Returns how many were added."""
        ...

    def items_since(self, after: int = 0) -> list[tuple[int, str, dict]]:
        """Stored items with arrival number above ``after``: (number, item id, fields), in order."""
        ...

    def publish(self, bundle: str | Path) -> int:
        """Record ``bundle`` as the one every worker serves; returns its generation (1, 2, ...)."""
        ...

    def published(self) -> tuple[int, Path | None]:
        """(generation, bundle) of the newest :meth:`publish`; (0, None) before any."""
        ...

    def generation(self) -> int:
        """The newest published generation (0: none); one cheap query, made before each request."""
        ...

    def close(self) -> None: ...


def open_store(location: str | Path) -> ServiceStore:
    """The store at ``location``: ``postgresql://`` or ``postgres://`` URLs open a
    :class:`~facetrec.serving.postgres.PostgresHistoryStore`, ``sqlite:///path`` or a plain file
    path a :class:`SQLiteHistoryStore`; anything else is a ConfigError saying which forms work."""
    text = str(location)
    if text.startswith(POSTGRES_PREFIXES):
        from facetrec.serving.postgres import PostgresHistoryStore  # psycopg only when asked for

        return PostgresHistoryStore(text)
    if text.startswith(SQLITE_PREFIX) and len(text) > len(SQLITE_PREFIX):
        return SQLiteHistoryStore(text[len(SQLITE_PREFIX) :])
    if "://" in text or text.startswith("sqlite:"):
        scheme = text.split(":", 1)[0]
        raise ConfigError(
            f"event store {scheme}:...: unknown kind; use postgresql://user@host/db, sqlite:///path or a file path"
        )
    return SQLiteHistoryStore(text)


_COLUMNS = "user_id, item_id, timestamp, event, rating, review, event_id, id"
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: the event log, catalogue items added while serving, the published bundles. IF NOT
        # EXISTS: a store written before numbered migrations may hold some of these tables.
        """CREATE TABLE IF NOT EXISTS events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            user_id TEXT NOT NULL,
            item_id TEXT NOT NULL,
            timestamp INTEGER NOT NULL,
            event TEXT NOT NULL,
            rating REAL,
            review TEXT
        )""",
        "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY AUTOINCREMENT, item_id TEXT NOT NULL UNIQUE, "
        "fields TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS bundles (generation INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, "
        "published INTEGER NOT NULL)",
    ),
    (  # 2: the client's event id, unique across the store; a user's events by time
        "ALTER TABLE events ADD COLUMN event_id TEXT",
        "CREATE UNIQUE INDEX events_event_id ON events (event_id) WHERE event_id IS NOT NULL",
        "CREATE INDEX IF NOT EXISTS events_user ON events (user_id, timestamp, id)",
    ),
)
"""The SQLite schema, one tuple of statements per version; append, never edit."""


class ChunkedLog:
    """:meth:`ServiceStore.events` written once, over a store's own ``since``."""

    def since(self, after: int = 0, limit: int | None = None) -> list[EventRecord]:
        raise NotImplementedError

    def events(self, after: int = 0) -> Iterator[EventRecord]:
        """Every event with arrival number above ``after``, in arrival order (read in chunks)."""
        while batch := self.since(after, CHUNK):
            yield from batch
            after = batch[-1].seq


class SQLiteHistoryStore(ChunkedLog):
    """Events in one SQLite file (WAL mode); safe to share between threads (one lock) and
    between processes (SQLite's file locks; each process opens its own store)."""

    def __init__(self, path: str | Path, synchronous: str = "FULL") -> None:
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous: must be one of {SYNCHRONOUS}, got {synchronous!r}")
        self.path = Path(path).resolve()
        self.location = f"{SQLITE_PREFIX}{self.path}"
        """Where the events live; a bundle built from the store names it (serving.json)."""
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # timeout: how long a writer waits for another process's write lock (commits take milliseconds)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._migrate()
        except (OSError, sqlite3.DatabaseError) as exc:
            raise ConfigError(f"{self.path}: cannot open the SQLite event store: {exc}") from None

    def _migrate(self) -> None:
        """Apply the migrations the file lacks, under the write lock (workers may start at once)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            version = stored = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if version == 0:  # a store written before numbered migrations: event ids mean version 2
                columns = {row[1] for row in self._db.execute("PRAGMA table_info(events)")}
                version = 2 if "event_id" in columns else 0
            if version > len(MIGRATIONS):
                raise ConfigError(
                    f"{self.path}: event store schema version {version} is newer than this facetrec "
                    f"knows ({len(MIGRATIONS)}); upgrade facetrec"
                )
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    self._db.execute(statement)
            if stored != len(MIGRATIONS):
                self._db.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------ HistoryStore

    def append(self, events: Sequence[EventRecord]) -> int:
        return self.write(events)[0]

    def write(self, events: Sequence[EventRecord]) -> tuple[int, int]:
        """Store ``events`` in one transaction, durable when this returns; an event whose ``id``
        is already stored is skipped. Returns (how many were added, the arrival number of the
        batch's last event: its own, or the stored one's for a repeated id)."""
        check_events(events)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                added, last = 0, 0
                for e in events:
                    if e.id is not None:
                        found = self._db.execute("SELECT id FROM events WHERE event_id = ?", (e.id,)).fetchone()
                        if found is not None:
                            last = int(found[0])
                            continue
                    cursor = self._db.execute(
                        "INSERT INTO events (user_id, item_id, timestamp, event, rating, review, event_id) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (str(e.user_id), str(e.item_id), int(e.timestamp), e.event, e.rating, e.review, e.id),
                    )
                    last, added = int(cursor.lastrowid or 0), added + 1
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return added, last

    def recent(self, user_id: str, limit: int | None = None) -> list[EventRecord]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM events WHERE user_id = ? ORDER BY timestamp DESC, id DESC LIMIT ?",
                (str(user_id), -1 if limit is None else int(limit)),
            ).fetchall()
        return [_record(row) for row in reversed(rows)]

    def __contains__(self, user_id: object) -> bool:
        with self._lock:
            return (
                self._db.execute("SELECT 1 FROM events WHERE user_id = ? LIMIT 1", (str(user_id),)).fetchone()
                is not None
            )

    # ------------------------------------------------------------------ the log

    def since(self, after: int = 0, limit: int | None = None) -> list[EventRecord]:
        """Up to ``limit`` events with arrival number above ``after``, in arrival order."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM events WHERE id > ? ORDER BY id LIMIT ?",
                (int(after), -1 if limit is None else int(limit)),
            ).fetchall()
        return [_record(row) for row in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def last_seq(self) -> int:
        """The newest event's arrival number (0 when empty)."""
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])

    # ------------------------------------------------------------------ catalogue items added

    def add_items(self, items: Sequence[tuple[str, dict]]) -> int:
        """Store new catalogue items ``(item id, fields)`` in one transaction; ids already stored
        are skipped (a retried request). Returns how many were added."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                before = self._db.total_changes
                self._db.executemany(
                    "INSERT OR IGNORE INTO items (item_id, fields) VALUES (?, ?)",
                    [(str(item_id), json.dumps(fields)) for item_id, fields in items],
                )
                added = self._db.total_changes - before
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return added

    def items_since(self, after: int = 0) -> list[tuple[int, str, dict]]:
        """Stored items with arrival number above ``after``: (number, item id, fields), in order."""
        with self._lock:
            rows = self._db.execute("SELECT id, item_id, fields FROM items WHERE id > ? ORDER BY id", (int(after),))
            return [(int(seq), item_id, json.loads(fields)) for seq, item_id, fields in rows.fetchall()]

    # ------------------------------------------------------------------ which bundle is served

    def publish(self, bundle: str | Path) -> int:
        """Record ``bundle`` as the one every worker serves; returns its generation (1, 2, ...)."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO bundles (path, published) VALUES (?, ?)", (str(Path(bundle).resolve()), int(time.time()))
            )
            return int(cursor.lastrowid or 0)

    def published(self) -> tuple[int, Path | None]:
        """(generation, bundle) of the newest :meth:`publish`; (0, None) before any."""
        with self._lock:
            row = self._db.execute("SELECT generation, path FROM bundles ORDER BY generation DESC LIMIT 1").fetchone()
        return (0, None) if row is None else (int(row[0]), Path(row[1]))

    def generation(self) -> int:
        """The newest published generation (0: none); one cheap query, made before each request."""
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(generation), 0) FROM bundles").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _record(row: tuple) -> EventRecord:
    user, item, timestamp, event, rating, review, event_id, seq = row
    return EventRecord(user, item, int(timestamp), event, rating, review, event_id, int(seq))
