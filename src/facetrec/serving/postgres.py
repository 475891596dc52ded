"""The service's event log in PostgreSQL: :class:`PostgresHistoryStore`, a
:class:`~facetrec.serving.store.ServiceStore` that worker processes on several machines can share.

It keeps the SQLite store's semantics, so the service cannot tell them apart:

- **Arrival numbers become visible in order.** Workers follow the log with ``since(after)``. With
  a sequence, a transaction that took number 7 could commit after one that took 8, and a reader
  that saw 8 would never read 7. So every write takes one transaction-scoped advisory lock
  (``pg_advisory_xact_lock``) first, then numbers its rows after the highest stored one. Writers
  run one at a time, and the lock is released only once the commit is visible, so the next
  writer's numbers are higher and become visible later. No number is skipped, even after a
  rolled-back write (the numbers are not taken from a sequence).
- **Idempotent event ids.** Under that lock a batch looks up its ids; an id already stored, or
  repeated earlier in the batch, is skipped and answered with the first one's number. A retry
  sent while the first attempt is still committing waits for the lock, then finds the id. The
  column is UNIQUE as well, so no write path can store an id twice.
- **Durable.** ``synchronous_commit`` stays on (PostgreSQL's default; a connection that turned it
  off would acknowledge events a server crash could lose): a write returns after its commit
  record is flushed to disk, so an acknowledged event survives a killed client or server.
- **Migrations.** The schema is built by numbered migrations (:data:`MIGRATIONS`), recorded in
  ``schema_migrations`` and applied once, in order, in one transaction under an advisory lock, so
  workers starting at once do not race.

Connections come from a ``psycopg_pool.ConnectionPool`` (a worker's request threads share it).
A server that cannot be reached, or a connection lost mid-call, raises
:class:`~facetrec.serving.store.StoreUnavailable` (a 503 for the service, not a 500); nothing is
retried here, since only the caller knows whether a write is safe to repeat (one with event ids is).
The URL may carry a password; the store's ``location`` (what bundles record) never does: give the
password in ``PGPASSWORD`` or ``~/.pgpass`` (libpq reads both) to open a store from a location.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg_pool import ConnectionPool

from facetrec.errors import ConfigError
from facetrec.history import EventRecord, check_events
from facetrec.serving.store import ChunkedLog, StoreUnavailable

WRITE_LOCK = 0x6661_6365_7472_6563
"""Advisory lock key held by every write to the log (events and items): "facetrec" in ASCII."""
MIGRATE_LOCK = WRITE_LOCK + 1
"""Advisory lock key held while migrating the schema."""
CONNECT_TIMEOUT = 10
"""Seconds to wait for the server when opening the store."""
POOL_TIMEOUT = 10.0
"""Seconds a request waits for a pooled connection before failing."""

_FIELDS = "user_id, item_id, timestamp, event, rating, review, event_id"
_COLUMNS = f"{_FIELDS}, seq"
MIGRATIONS: tuple[str, ...] = (
    # 1: the event log, catalogue items added while serving, the published bundles
    """
    CREATE TABLE events (
        seq BIGINT PRIMARY KEY,
        user_id TEXT NOT NULL,
        item_id TEXT NOT NULL,
        timestamp BIGINT NOT NULL,
        event TEXT NOT NULL,
        rating DOUBLE PRECISION,
        review TEXT
    );
    CREATE INDEX events_user ON events (user_id, timestamp, seq);
    CREATE TABLE items (seq BIGINT PRIMARY KEY, item_id TEXT NOT NULL UNIQUE, fields TEXT NOT NULL);
    CREATE TABLE bundles (
        generation BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        path TEXT NOT NULL,
        published TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    """,
    # 2: the client's event id, unique across the store
    "ALTER TABLE events ADD COLUMN event_id TEXT UNIQUE",
)
"""The PostgreSQL schema, one script per version (the SQLite store's versions); append, never edit."""


def redact(url: str) -> str:
    """``url`` as ``postgresql://`` without its password: safe to print and to record in a bundle."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        netloc = f"{user.split(':', 1)[0]}@{host}"
    return urlunsplit(("postgresql", netloc, parts.path, parts.query, parts.fragment))


def one_line(exc: BaseException) -> str:
    """A database error's message on one line (libpq's span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def migrate(conn: psycopg.Connection, migrations: Sequence[str] = MIGRATIONS) -> list[int]:
    """Apply the ``migrations`` the database lacks, in order, each once, in one transaction
    under :data:`MIGRATE_LOCK`; returns the versions applied (empty: already current)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, applied TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        done = {int(row[0]) for row in conn.execute("SELECT version FROM schema_migrations")}
        if max(done, default=0) > len(migrations):
            raise ConfigError(
                f"event store schema version {max(done)} is newer than this facetrec knows "
                f"({len(migrations)}); upgrade facetrec"
            )
        applied = []
        for version, script in enumerate(migrations, 1):
            if version not in done:
                conn.execute(script)  # several statements: allowed without parameters
                conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                applied.append(version)
    return applied


class PostgresHistoryStore(ChunkedLog):
    """Events in a PostgreSQL database (module docstring); safe to share between threads (a
    connection pool) and between processes and machines (each opens its own store)."""

    def __init__(self, url: str, pool_size: int = 8) -> None:
        self.location = redact(url)
        """Where the events live, without a password; a bundle built from the store names it."""
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
                migrate(conn)
        except psycopg.Error as exc:
            raise ConfigError(f"{self.location}: cannot open the PostgreSQL event store: {one_line(exc)}") from None
        except ConfigError as exc:
            raise ConfigError(f"{self.location}: {exc}") from None
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            timeout=POOL_TIMEOUT,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
            name="facetrec-events",
            open=True,
        )

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection; a lost or unreachable server is StoreUnavailable (the pool
        replaces the broken connection, so the next call tries afresh)."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.OperationalError as exc:  # also the pool's timeout
            raise StoreUnavailable(f"{self.location}: the event store cannot be reached: {one_line(exc)}") from exc

    # ------------------------------------------------------------------ HistoryStore

    def append(self, events: Sequence[EventRecord]) -> int:
        return self.write(events)[0]

    def write(self, events: Sequence[EventRecord]) -> tuple[int, int]:
        """Store ``events`` in one transaction, durable when this returns; an event whose ``id``
        is already stored (or earlier in the batch) is skipped. Returns (how many were added, the
        arrival number of the batch's last event: its own, or the stored one's for a repeated id)."""
        check_events(events)
        ids = [e.id for e in events if e.id is not None]
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            # the statements below start after the lock, so they see every earlier write
            top = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
            known: dict[str, int] = {}
            if ids:
                known = dict(conn.execute("SELECT event_id, seq FROM events WHERE event_id = ANY(%s)", (ids,)))
            rows, last = [], 0
            for e in events:
                if e.id is not None and e.id in known:
                    last = known[e.id]
                    continue
                top = last = top + 1
                if e.id is not None:
                    known[e.id] = last
                rows.append((last, e.user_id, e.item_id, int(e.timestamp), e.event, e.rating, e.review, e.id))
            with conn.cursor().copy(f"COPY events (seq, {_FIELDS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return len(rows), last

    def recent(self, user_id: str, limit: int | None = None) -> list[EventRecord]:
        with self._connection() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM events WHERE user_id = %s ORDER BY timestamp DESC, seq DESC LIMIT %s",
                (str(user_id), limit),
            ).fetchall()
        return [_record(row) for row in reversed(rows)]

    def __contains__(self, user_id: object) -> bool:
        with self._connection() as conn:
            row = conn.execute("SELECT EXISTS (SELECT 1 FROM events WHERE user_id = %s)", (str(user_id),)).fetchone()
        return bool(row[0])

    # ------------------------------------------------------------------ the log

    def since(self, after: int = 0, limit: int | None = None) -> list[EventRecord]:
        """Up to ``limit`` events with arrival number above ``after``, in arrival order."""
        with self._connection() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM events WHERE seq > %s ORDER BY seq LIMIT %s", (int(after), limit)
            ).fetchall()
        return [_record(row) for row in rows]

    def count(self) -> int:
        with self._connection() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def last_seq(self) -> int:
        """The newest event's arrival number (0 when empty)."""
        with self._connection() as conn:
            return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])

    # ------------------------------------------------------------------ catalogue items added

    def add_items(self, items: Sequence[tuple[str, dict]]) -> int:
        """Store new catalogue items ``(item id, fields)`` in one transaction, numbered in order
        under the write lock like events; ids already stored are skipped (a retried request), and
        so is an id repeated in ``items``. Returns how many were added."""
        fresh: dict[str, str] = {}
        for item_id, fields in items:
            fresh.setdefault(str(item_id), json.dumps(fields))  # the first of a repeated id wins
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            top = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM items").fetchone()[0])
            for (known,) in conn.execute("SELECT item_id FROM items WHERE item_id = ANY(%s)", (list(fresh),)):
                del fresh[known]
            with conn.cursor().copy("COPY items (seq, item_id, fields) FROM STDIN") as copy:
                for n, (item_id, fields) in enumerate(fresh.items(), top + 1):
                    copy.write_row((n, item_id, fields))
        return len(fresh)

    def items_since(self, after: int = 0) -> list[tuple[int, str, dict]]:
        """Stored items with arrival number above ``after``: (number, item id, fields), in order."""
        with self._connection() as conn:
            rows = conn.execute("SELECT seq, item_id, fields FROM items WHERE seq > %s ORDER BY seq", (int(after),))
            return [(int(seq), item_id, json.loads(fields)) for seq, item_id, fields in rows.fetchall()]

    # ------------------------------------------------------------------ which bundle is served

    def publish(self, bundle: str | Path) -> int:
        """Record ``bundle`` as the one every worker serves; returns its generation (1, 2, ...)."""
        with self._connection() as conn:
            row = conn.execute(
                "INSERT INTO bundles (path) VALUES (%s) RETURNING generation", (str(Path(bundle).resolve()),)
            ).fetchone()
        return int(row[0])

    def published(self) -> tuple[int, Path | None]:
        """(generation, bundle) of the newest :meth:`publish`; (0, None) before any."""
        with self._connection() as conn:
            row = conn.execute("SELECT generation, path FROM bundles ORDER BY generation DESC LIMIT 1").fetchone()
        return (0, None) if row is None else (int(row[0]), Path(row[1]))

    def generation(self) -> int:
        """The newest published generation (0: none); one cheap query, made before each request."""
        with self._connection() as conn:
            return int(conn.execute("SELECT COALESCE(MAX(generation), 0) FROM bundles").fetchone()[0])

    def close(self) -> None:
        self._pool.close()


def _record(row: tuple) -> EventRecord:
    user, item, timestamp, event, rating, review, event_id, seq = row
    return EventRecord(user, item, int(timestamp), event, rating, review, event_id, int(seq))
