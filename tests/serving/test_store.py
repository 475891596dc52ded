"""The event stores (SQLite and PostgreSQL, through the same tests), bundle watermarks, and the
Service without HTTP over each store (workers in process).

The PostgreSQL tests use a throwaway server (facetrec.testing.postgres) and skip, saying why,
when none can be started."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

from facetrec.errors import ConfigError, DataError, UnknownIdError
from facetrec.history import EventRecord
from facetrec.recommender import Recommender
from facetrec.serving import postgres
from facetrec.serving.bundle import read_watermark, write_watermark
from facetrec.serving.service import Service
from facetrec.serving.store import _COLUMNS, ServiceStore, SQLiteHistoryStore, StoreUnavailable, open_store
from facetrec.testing.postgres import postgres_url_fixture  # noqa: F401 (the postgres_url fixture)
from facetrec.types import Query

WRITER = """
import sys
from facetrec.history import EventRecord
from facetrec.serving.store import open_store
store = open_store(sys.argv[1])
name = sys.argv[2]
for k in range(int(sys.argv[3])):
    added, last = store.write([EventRecord(name, "i", k, id=f"{name}-{k}"), EventRecord(name, "j", k)])
    print(last, flush=True)  # acknowledged: committed
store.close()
"""
"""A client process: writes batches of two events and prints each batch's number once it is committed."""


def writer(location: str, name: str, batches: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, location, name, str(batches)], stdout=subprocess.PIPE, text=True
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path) -> str:
    """Where a test's events live: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def opened(location) -> Iterator[Callable[[], ServiceStore]]:
    """Opens stores on ``location`` (each one a worker's own) and closes them after the test."""
    stores: list[ServiceStore] = []

    def open_() -> ServiceStore:
        stores.append(open_store(location))
        return stores[-1]

    yield open_
    for store in stores:
        store.close()


@pytest.fixture
def store(opened) -> ServiceStore:
    return opened()


# ---------------------------------------------------------------------- every store


def test_writes_are_numbered_in_arrival_order_and_repeated_ids_skipped(store, opened):
    assert store.last_seq() == 0 and store.count() == 0
    assert store.write([EventRecord("u", "i1", 10), EventRecord("u", "i2", 11, "purchase", 4.5, "good", "k")]) == (2, 2)
    assert store.write([EventRecord("v", "i1", 12)]) == (1, 3)
    assert store.write([EventRecord("w", "i9", 13, id="k")]) == (0, 2)  # a retry answers with the first's number
    assert store.write([EventRecord("w", "i9", 13, id="m"), EventRecord("w", "i8", 14, id="m")]) == (1, 4)
    events = store.since(1)
    assert [e.seq for e in events] == [2, 3, 4]
    assert events[0] == EventRecord("u", "i2", 11, "purchase", 4.5, "good", "k", 2)
    assert [e.seq for e in store.since(0, limit=2)] == [1, 2] and [e.seq for e in store.events(after=2)] == [3, 4]
    again = opened()  # another connection (a worker, a restart) sees every committed event
    assert again.count() == 4 and again.last_seq() == 4 and "w" in again and "x" not in again
    reopened = open_store(store.location)  # the location opens the same store (bundles record it)
    try:
        assert reopened.location == store.location and reopened.since() == store.since()
    finally:
        reopened.close()


def test_a_reader_following_the_log_sees_every_event_once_in_order(location, store):
    writers = [writer(location, f"w{n}", 150) for n in range(3)]
    seen: list[int] = []
    while True:
        done = all(w.poll() is not None for w in writers)  # before reading: then a last read gets everything
        batch = store.since(seen[-1] if seen else 0)
        # numbers become visible in order: a reader never finds a gap it would skip forever
        assert [e.seq for e in batch] == list(range(len(seen) + 1, len(seen) + 1 + len(batch)))
        seen += [e.seq for e in batch]
        if done and not batch:
            break
    assert [w.returncode for w in writers] == [0, 0, 0]
    acknowledged = sorted(int(line) for w in writers for line in w.stdout.read().split())
    assert len(acknowledged) == 450 and len(seen) == 900 and set(acknowledged) <= set(seen)


def test_concurrent_writes_get_consecutive_numbers(store):
    lasts = []

    def write(t):
        for n in range(20):
            lasts.append((store.write([EventRecord(f"u{t}", "i", n)] * 3)[1], t))

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = {e.seq: e for e in store.since()}
    assert len(events) == 240
    for last, t in lasts:  # each batch is the three numbers ending at the one it was acknowledged with
        assert {events[i].user_id for i in (last - 2, last - 1, last)} == {f"u{t}"}


def test_concurrent_retries_store_a_batch_once(opened):
    workers = [opened() for _ in range(4)]  # each retry reaches another worker
    batch = [EventRecord("u", f"i{n}", n, id=f"order-{n}") for n in range(10)]
    start, answers = threading.Barrier(len(workers)), []

    def retry(store):
        start.wait()
        answers.append(store.write(batch))

    threads = [threading.Thread(target=retry, args=(store,)) for store in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [(0, 10), (0, 10), (0, 10), (10, 10)]
    assert [e.id for e in workers[0].since()] == [e.id for e in batch]


def test_an_acknowledged_write_survives_a_killed_client(location, store):
    client = writer(location, "k", 1_000_000)
    acknowledged = [int(client.stdout.readline()) for _ in range(30)]
    client.send_signal(signal.SIGKILL)  # no cleanup: only what was committed survives
    client.wait(30)
    stored = {e.seq: e for e in store.since()}
    for last in acknowledged:
        assert stored[last].item_id == "j" and stored[last - 1].id == f"k-{(last - 1) // 2}"


def test_added_items_are_numbered_and_stored_once(store):
    assert store.add_items([("x", {"title": "first"}), ("y", {}), ("x", {"title": "second"})]) == 2
    assert store.add_items([("x", {}), ("z", {"tags": ["a"]})]) == 1
    stored = store.items_since()
    assert [(item, fields) for _, item, fields in stored] == [
        ("x", {"title": "first"}),
        ("y", {}),
        ("z", {"tags": ["a"]}),
    ]
    numbers = [n for n, _, _ in stored]
    assert numbers == sorted(set(numbers)) and store.items_since(numbers[1]) == stored[2:]


def test_the_published_bundle_and_its_generation(store, tmp_path):
    assert store.published() == (0, None) and store.generation() == 0
    assert store.publish(tmp_path / "v1") == 1 and store.publish(tmp_path / "v2") == 2
    assert store.published() == (2, (tmp_path / "v2").resolve()) and store.generation() == 2


def test_watermark_names_the_store(bundle, store, tmp_path):
    assert read_watermark(bundle, store) == 0
    copy = tmp_path / "bundle"
    Recommender.load(bundle).save(copy)
    write_watermark(copy, store, 7)
    assert read_watermark(copy, store) == 7
    assert read_watermark(copy, SQLiteHistoryStore(tmp_path / "b.sqlite")) == 0  # another store: replay all


def test_a_nul_character_is_refused_before_storing(store):
    with pytest.raises(DataError, match=r"events\[1\]\.review: contains a NUL character"):
        store.write([EventRecord("u", "i", 1), EventRecord("u", "i", 2, review="a\x00b")])
    assert store.count() == 0


# ---------------------------------------------------------------------- where a store is


def test_open_store_reads_urls_and_paths(tmp_path):
    path = tmp_path / "events.sqlite"
    for location in (f"sqlite:///{path}", str(path), path):
        store = open_store(location)
        assert isinstance(store, SQLiteHistoryStore) and store.location == f"sqlite:///{path}"
        assert open_store(store.location).location == store.location
    for bad in ("mysql://host/db", "sqlite://", "sqlite:relative.db"):
        with pytest.raises(ConfigError, match="use postgresql://user@host/db, sqlite:///path or a file path"):
            open_store(bad)


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("postgresql://reader:s3cret@127.0.0.1:1/events", "postgresql://reader@127.0.0.1:1/events"),
        ("postgres://reader:s3cret@127.0.0.1:port/events", "postgresql://reader@127.0.0.1:port/events"),
        ("postgresql://reader:s3cret@127.0.0.1:1/events?sslmode=bogus", "sslmode=bogus"),
    ],
)
def test_a_bad_or_unreachable_postgres_url_is_one_line_without_the_password(url, named):
    with pytest.raises(ConfigError) as error:
        open_store(url)
    message = str(error.value)
    assert "cannot open the PostgreSQL event store" in message and named in message
    assert "s3cret" not in message and "\n" not in message


def test_an_unusable_sqlite_file_is_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("not a database, but long enough to look like a header" * 100)
    with pytest.raises(ConfigError, match=r"notes.txt: cannot open the SQLite event store: file is not a database"):
        open_store(tmp_path / "notes.txt")


# ---------------------------------------------------------------------- SQLite


def test_sqlite_store_writes_durably_in_wal_mode(tmp_path):
    store = SQLiteHistoryStore(tmp_path / "events.sqlite")
    store.write([EventRecord("u", "i1", 10)])
    other = sqlite3.connect(tmp_path / "events.sqlite")  # a second connection sees committed rows
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert other.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteHistoryStore(tmp_path / "x.sqlite", synchronous="OFF")


def test_reading_a_user_new_events_and_ids_searches_an_index(tmp_path):
    store = SQLiteHistoryStore(tmp_path / "events.sqlite")
    for sql in (
        f"SELECT {_COLUMNS} FROM events WHERE user_id = 'u' ORDER BY timestamp DESC, id DESC LIMIT 5",  # recent
        f"SELECT {_COLUMNS} FROM events WHERE id > 7 ORDER BY id",  # since
        "SELECT id FROM events WHERE event_id = 'x'",  # a retried event
    ):
        plan = " ".join(row[-1] for row in store._db.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert plan.startswith("SEARCH events USING") and "TEMP B-TREE" not in plan, plan


def test_sqlite_migrations_upgrade_a_store_written_before_event_ids_once(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # the first store's only table, no version
        db.execute(
            "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, item_id TEXT NOT NULL, "
            "timestamp INTEGER NOT NULL, event TEXT NOT NULL, rating REAL, review TEXT)"
        )
        db.execute("INSERT INTO events (user_id, item_id, timestamp, event) VALUES ('u', 'i', 1, 'click')")
    store = SQLiteHistoryStore(path)
    assert store.since() == [EventRecord("u", "i", 1, seq=1)]
    assert store.write([EventRecord("u", "j", 2, id="a"), EventRecord("u", "j", 2, id="a")]) == (1, 2)
    assert store.publish(tmp_path) == 1 and store.add_items([("x", {})]) == 1  # the later tables exist
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == 2
    store.close()
    assert SQLiteHistoryStore(path).count() == 2  # opening again changes nothing


def test_sqlite_a_store_without_a_version_but_with_event_ids_is_current(tmp_path):
    store = SQLiteHistoryStore(tmp_path / "events.sqlite")
    store.write([EventRecord("u", "i", 1, id="a")])
    store._db.execute("PRAGMA user_version = 0")  # as the store was written before numbered migrations
    store.close()
    reopened = SQLiteHistoryStore(tmp_path / "events.sqlite")
    assert reopened._db.execute("PRAGMA user_version").fetchone()[0] == 2
    assert reopened.write([EventRecord("u", "i", 1, id="a")]) == (0, 1)


def test_sqlite_a_newer_schema_is_refused(tmp_path):
    with sqlite3.connect(tmp_path / "events.sqlite") as db:
        db.execute("PRAGMA user_version = 9")
    with pytest.raises(ConfigError, match="schema version 9 is newer than this facetrec knows"):
        SQLiteHistoryStore(tmp_path / "events.sqlite")


# ---------------------------------------------------------------------- PostgreSQL


def test_postgres_commits_synchronously_and_reads_through_indexes(postgres_url):
    store = postgres.PostgresHistoryStore(postgres_url)
    try:
        store.write([EventRecord("u", f"i{n}", n, id=f"e{n}") for n in range(50)])
        with store._pool.connection() as conn:
            assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"
            for plan in ("seqscan", "bitmapscan", "sort"):  # a tiny table: ask whether an index *can* answer in order
                conn.execute(f"SET enable_{plan} = off")
            for sql in (
                f"SELECT {postgres._COLUMNS} FROM events WHERE user_id = 'u' ORDER BY timestamp DESC, seq DESC LIMIT 5",
                f"SELECT {postgres._COLUMNS} FROM events WHERE seq > 7 ORDER BY seq",
                "SELECT event_id, seq FROM events WHERE event_id = ANY('{x,y}')",
            ):
                plan = " ".join(row[0] for row in conn.execute(f"EXPLAIN {sql}"))
                assert "Index" in plan and "Sort" not in plan and "Seq Scan" not in plan, plan
    finally:
        store.close()


def test_postgres_migrations_run_once_and_upgrade_a_version_1_store(postgres_url):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert postgres.migrate(conn, postgres.MIGRATIONS[:1]) == [1]
        conn.execute("INSERT INTO events VALUES (1, 'u', 'i', 5, 'click', NULL, NULL)")
    store = postgres.PostgresHistoryStore(postgres_url)
    try:
        assert store.since() == [EventRecord("u", "i", 5, seq=1)]
        assert store.write([EventRecord("u", "j", 6, id="a"), EventRecord("u", "j", 6, id="a")]) == (1, 2)
    finally:
        store.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert postgres.migrate(conn) == []  # opening again changes nothing
        assert [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")] == [1, 2]
        conn.execute("INSERT INTO schema_migrations (version) VALUES (9)")
    with pytest.raises(ConfigError, match="schema version 9 is newer than this facetrec knows"):
        postgres.PostgresHistoryStore(postgres_url)


def test_postgres_workers_starting_at_once_migrate_once(postgres_url):
    start, opened, failed = threading.Barrier(4), [], []

    def open_():
        start.wait()
        try:
            opened.append(postgres.PostgresHistoryStore(postgres_url))
        except Exception as exc:  # collected: the assertion below names it
            failed.append(exc)

    threads = [threading.Thread(target=open_) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for store in opened:
        store.close()
    assert failed == [] and len(opened) == 4
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(postgres.MIGRATIONS)


def test_postgres_a_lost_connection_is_store_unavailable_once_then_the_store_recovers(postgres_url):
    store = postgres.PostgresHistoryStore(postgres_url, pool_size=1)
    try:
        store.write([EventRecord("u", "i", 1)])
        with psycopg.connect(postgres_url, autocommit=True) as admin:  # as when the server restarts
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        with pytest.raises(StoreUnavailable, match=r"facetrec_test_\w+: the event store cannot be reached: "):
            store.since()
        assert store.write([EventRecord("u", "j", 2)]) == (1, 2) and store.count() == 2
    finally:
        store.close()


# ---------------------------------------------------------------------- the Service over a store


@pytest.fixture
def workers(bundle, opened):
    """Two Services on one store: two workers, in this process."""
    first = Service.open(bundle, opened(), warm_users=20)
    second = Service.open(bundle, opened(), warm_users=20)
    return first, second


def ids(answer) -> list[str]:
    return [row["item"] for row in answer.rows]


def test_answers_are_the_recommenders_and_events_reach_every_worker(bundle, workers):
    first, second = workers
    reference = Recommender.load(bundle)
    user = str(reference.history.users.id_of(7))
    before = ids(second.recommend(Query(user_id=user, n=10)))
    assert before == list(reference.recommend(Query(user_id=user, n=10)).ids)
    events = [EventRecord(user, item, 2_000_000_000 + k, "cart", id=f"e{k}") for k, item in enumerate(before[:3])]
    assert first.add(events) == (3, 3)
    assert first.add(events) == (0, 3)  # a retried batch counts once
    reference.append(events)
    for service in (first, second):  # the other worker answers with the event too
        for ranking in ({}, {"diversity": "mmr", "lam": 0.4}):
            answer = service.recommend(Query(user_id=user, n=10), explain=True, **ranking)
            expected = reference.recommend(Query(user_id=user, n=10), explain=True, **ranking)
            assert ids(answer) == list(expected.ids) and not set(before[:3]) & set(ids(answer))
            assert [r["explanation"] for r in answer.rows] == list(expected.fields["explanation"])
            found = reference.interests(Query(user_id=user))
            assert answer.labels == (found[1] if found else [])
        history = service.history(user, 3)
        assert [e["item"] for e in history] == before[:3] and {e["event"] for e in history} == {"cart"}
        assert service.applied == 3 and len(service.recommender.histories) == len(reference.histories)


def test_a_new_user_exists_on_every_worker_from_their_first_event(workers):
    first, second = workers
    item = str(first.recommender.items.id_of(1))
    with pytest.raises(UnknownIdError, match="'newcomer'"):
        second.recommend(Query(user_id="newcomer", n=5))
    first.add([EventRecord("newcomer", item, 5)])
    assert item not in ids(second.recommend(Query(user_id="newcomer", n=5)))
    assert "newcomer" in second.users(1000) and second.counts()["users"] == first.counts()["users"]


def test_bad_events_are_rejected_before_storing(workers):
    service = workers[0]
    item = str(service.recommender.items.id_of(0))
    with pytest.raises(UnknownIdError, match=r"events\[1\].item: unknown item id 'zz'"):
        service.add([EventRecord("u", item, 1), EventRecord("u", "zz", 2)])
    with pytest.raises(DataError, match="unknown event type 'like'"):
        service.add([EventRecord("u", item, 1, "like")])
    assert service.store.count() == 0


def test_a_reload_on_one_worker_moves_the_others(bundle, workers, tmp_path):
    first, second = workers
    copy = tmp_path / "v2"
    Recommender.load(bundle).save(copy)
    user = str(first.recommender.history.users.id_of(3))
    item = str(first.recommender.items.id_of(2))
    first.add([EventRecord(user, item, 2_000_000_000)])
    assert first.reload(copy) == copy and first.bundle == copy
    old = second.recommender
    second.counts()  # the next request notices the new generation and loads it in the background
    for _ in range(600):
        if second.recommender is not old:
            break
        time.sleep(0.05)
    assert second.bundle == copy.resolve() and second.recommender is not old
    for service in workers:  # the event stored before the reload is in the new bundle's histories, once
        assert [e["item"] for e in service.history(user, 1)] == [item]
        assert service.counts()["events"] == len(Recommender.load(bundle).histories) + 1
