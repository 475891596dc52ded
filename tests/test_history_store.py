"""The HistoryStore contract, run against every store: the in-memory one a Recommender reads and
the SQLite and PostgreSQL ones the service keeps durably (the PostgreSQL runs skip, saying why,
when no server can be started). A new store adds itself to STORES."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from facetrec.errors import DataError, UnknownIdError
from facetrec.history import EventRecord, HistoryStore, MemoryHistoryStore
from facetrec.ids import Vocabulary
from facetrec.serving.postgres import PostgresHistoryStore
from facetrec.serving.store import SQLiteHistoryStore
from facetrec.testing.postgres import postgres_url_fixture  # noqa: F401 (the postgres_url fixture)
from facetrec.types import Event, Interactions

ITEMS = Vocabulary(["a", "b", "c", "d"], "item")


def memory(request) -> MemoryHistoryStore:
    empty = np.zeros(0, np.int32)
    return MemoryHistoryStore(Interactions(empty, empty, empty.astype(np.int64), Vocabulary([], "user"), ITEMS))


def sqlite(request) -> SQLiteHistoryStore:
    return SQLiteHistoryStore(request.getfixturevalue("tmp_path") / "events.sqlite")


def postgresql(request) -> PostgresHistoryStore:
    store = PostgresHistoryStore(request.getfixturevalue("postgres_url"))  # an empty database of its own
    request.addfinalizer(store.close)
    return store


STORES = {"memory": memory, "sqlite": sqlite, "postgresql": postgresql}


@pytest.fixture(params=sorted(STORES))
def store(request) -> HistoryStore:
    return STORES[request.param](request)


def plain(events: list[EventRecord]) -> list[EventRecord]:
    """Events without the arrival number a durable store adds."""
    return [replace(e, seq=0) for e in events]


def test_appended_events_come_back_oldest_first_with_every_field(store):
    events = [
        EventRecord("u", "b", 20, "purchase", 4.5, "good", "e2"),
        EventRecord("u", "a", 10),
        EventRecord("v", "c", 15, "rate", 3.0),
    ]
    assert store.append(events) == 3
    assert plain(store.recent("u")) == [events[1], events[0]]
    assert plain(store.recent("u", limit=1)) == [events[0]]  # the newest
    assert plain(store.recent("v")) == [events[2]]
    assert "u" in store and "v" in store and "w" not in store
    assert store.recent("w") == []


def test_equal_times_keep_arrival_order(store):
    store.append([EventRecord("u", "c", 5), EventRecord("u", "a", 5)])
    store.append([EventRecord("u", "b", 5), EventRecord("u", "d", 4)])
    assert [e.item_id for e in store.recent("u")] == ["d", "c", "a", "b"]


def test_appending_is_idempotent_by_event_id(store):
    batch = [EventRecord("u", "a", 1, id="k1"), EventRecord("u", "b", 2, id="k2"), EventRecord("u", "c", 3)]
    assert store.append(batch) == 3
    assert store.append(batch) == 1  # a retry: only the event without an id counts again
    assert store.append([EventRecord("u", "d", 4, id="k3"), EventRecord("u", "d", 4, id="k3")]) == 1
    assert store.append([EventRecord("v", "d", 9, id="k1")]) == 0  # ids are unique across users
    assert [e.item_id for e in store.recent("u")] == ["a", "b", "c", "c", "d"]
    assert "v" not in store


def test_a_bad_event_adds_nothing(store):
    with pytest.raises(DataError, match=r"events\[1\]\.event: unknown event type 'like'"):
        store.append([EventRecord("u", "a", 1), EventRecord("u", "b", 2, "like")])
    with pytest.raises(DataError, match=r"events\[0\]\.id"):
        store.append([EventRecord("u", "a", 1, id="")])
    with pytest.raises(DataError, match=r"events\[0\]\.user_id: contains a NUL character"):
        store.append([EventRecord("u\x00", "a", 1)])
    assert store.recent("u") == [] and "u" not in store


def test_every_event_in_arrival_order_for_retraining(store):
    first = [EventRecord("v", "b", 50, id="x"), EventRecord("u", "a", 60)]
    second = [EventRecord("u", "c", 10, "cart"), EventRecord("v", "d", 70, "review", None, "meh")]
    store.append(first)
    store.append(second)
    assert plain(list(store.events())) == first + second


def test_the_memory_store_knows_the_catalogue_and_its_base_log():
    base = Interactions(
        np.array([0, 0, 1], np.int32), np.array([1, 0, 2], np.int32), np.array([7, 3, 5], np.int64),
        Vocabulary(["u", "v"], "user"), ITEMS, np.array([Event.CLICK, Event.VIEW, Event.PURCHASE], np.int8),
    )  # fmt: skip
    store = MemoryHistoryStore(base)
    with pytest.raises(UnknownIdError, match=r"events\[0\]\.item: unknown item id 'zz'"):
        store.append([EventRecord("u", "zz", 1)])
    store.append([EventRecord("u", "d", 7, "cart"), EventRecord("w", "c", 1)])
    assert [(e.item_id, e.event) for e in store.recent("u")] == [("a", "view"), ("b", "click"), ("d", "cart")]
    one = store.user_events("u")
    assert list(one.item_idx) == [0, 1, 3] and list(one.timestamp) == [3, 7, 7]
    assert len(store) == 5 and store.n_users == 3 and store.user_ids() == ["u", "v", "w"]
    everything = store.interactions()
    assert len(everything) == 5 and list(everything.users.ids) == ["u", "v", "w"]
    assert [(e.user_id, e.item_id) for e in store.events()] == [
        ("u", "a"),
        ("u", "b"),
        ("v", "c"),
        ("u", "d"),
        ("w", "c"),
    ]
