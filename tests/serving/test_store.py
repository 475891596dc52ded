"""The SQLite event store, bundle watermarks, and the Service without HTTP (workers in process)."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from facetrec.errors import DataError, UnknownIdError
from facetrec.history import EventRecord
from facetrec.recommender import Recommender
from facetrec.serving.bundle import read_watermark, write_watermark
from facetrec.serving.service import Service
from facetrec.serving.store import _COLUMNS, SQLiteHistoryStore
from facetrec.types import Query


def test_sqlite_store_writes_durably_in_wal_mode(tmp_path):
    store = SQLiteHistoryStore(tmp_path / "events.sqlite")
    assert store.last_seq() == 0 and store.count() == 0
    assert store.write([EventRecord("u", "i1", 10), EventRecord("u", "i2", 11, "purchase", 4.5, "good", "k")]) == (2, 2)
    assert store.write([EventRecord("v", "i1", 12)]) == (1, 3)
    assert store.write([EventRecord("w", "i9", 13, id="k")]) == (0, 2)  # a retry answers with the first's number
    events = store.since(1)
    assert [e.seq for e in events] == [2, 3]
    assert events[0] == EventRecord("u", "i2", 11, "purchase", 4.5, "good", "k", 2)
    assert [e.seq for e in store.since(0, limit=2)] == [1, 2] and [e.seq for e in store.events(after=2)] == [3]
    other = sqlite3.connect(tmp_path / "events.sqlite")  # a second connection sees committed rows
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert other.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 3
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()
    assert SQLiteHistoryStore(tmp_path / "events.sqlite").count() == 3
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


def test_a_store_written_before_event_ids_is_upgraded(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, item_id TEXT NOT NULL, "
            "timestamp INTEGER NOT NULL, event TEXT NOT NULL, rating REAL, review TEXT)"
        )
        db.execute("INSERT INTO events (user_id, item_id, timestamp, event) VALUES ('u', 'i', 1, 'click')")
    store = SQLiteHistoryStore(path)
    assert store.since() == [EventRecord("u", "i", 1, seq=1)]
    assert store.write([EventRecord("u", "j", 2, id="a"), EventRecord("u", "j", 2, id="a")]) == (1, 2)


def test_concurrent_writes_get_consecutive_numbers(tmp_path):
    store = SQLiteHistoryStore(tmp_path / "events.sqlite")
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


def test_the_published_bundle_and_its_generation(tmp_path):
    store = SQLiteHistoryStore(tmp_path / "events.sqlite")
    assert store.published() == (0, None) and store.generation() == 0
    assert store.publish(tmp_path / "v1") == 1 and store.publish(tmp_path / "v2") == 2
    assert store.published() == (2, (tmp_path / "v2").resolve()) and store.generation() == 2


def test_watermark_names_the_store(bundle, tmp_path):
    store = SQLiteHistoryStore(tmp_path / "a.sqlite")
    assert read_watermark(bundle, store) == 0
    copy = tmp_path / "bundle"
    Recommender.load(bundle).save(copy)
    write_watermark(copy, store, 7)
    assert read_watermark(copy, store) == 7
    assert read_watermark(copy, SQLiteHistoryStore(tmp_path / "b.sqlite")) == 0  # another store: replay all


@pytest.fixture
def workers(bundle, tmp_path):
    """Two Services on one store: two workers, in this process."""
    store = tmp_path / "events.sqlite"
    first = Service.open(bundle, SQLiteHistoryStore(store), warm_users=20)
    second = Service.open(bundle, SQLiteHistoryStore(store), warm_users=20)
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
