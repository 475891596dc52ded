"""The event store, folding events into histories, and the Service without HTTP."""

from __future__ import annotations

import sqlite3
import threading

import numpy as np
import pytest

from facetrec.errors import DataError, UnknownIdError
from facetrec.recommender import Recommender
from facetrec.serving.history import fold_events, read_watermark, warm_states, write_watermark
from facetrec.serving.service import Service
from facetrec.serving.store import EventRecord, SQLiteEventStore
from facetrec.types import Event, Query


def test_sqlite_store_appends_durably_in_wal_mode(tmp_path):
    store = SQLiteEventStore(tmp_path / "events.sqlite")
    assert store.last_id() == 0 and store.count() == 0
    last = store.append([EventRecord("u", "i1", 10), EventRecord("u", "i2", 11, "purchase", 4.5, "good")])
    assert last == 2 and store.append([EventRecord("v", "i1", 12)]) == 3
    events = store.since(1)
    assert [e.id for e in events] == [2, 3] and events[0] == EventRecord("u", "i2", 11, "purchase", 4.5, "good", 2)
    other = sqlite3.connect(tmp_path / "events.sqlite")  # a second connection sees committed rows
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert other.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 3
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()
    assert SQLiteEventStore(tmp_path / "events.sqlite").count() == 3
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteEventStore(tmp_path / "x.sqlite", synchronous="OFF")


def test_concurrent_appends_get_consecutive_ids(tmp_path):
    store = SQLiteEventStore(tmp_path / "events.sqlite")
    lasts = []

    def write(t):
        for n in range(20):
            lasts.append((store.append([EventRecord(f"u{t}", "i", n)] * 3), t))

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = {e.id: e for e in store.since()}
    assert len(events) == 240
    for last, t in lasts:  # each batch is the three ids ending at the id it was acknowledged with
        assert {events[i].user_id for i in (last - 2, last - 1, last)} == {f"u{t}"}


def test_fold_events_keeps_types_ratings_reviews_and_skips_unknown_items(data, caplog):
    history = data.interactions
    item = str(history.items.id_of(4))
    events = [
        EventRecord("brand-new", item, 10**10, "purchase", 5.0, "loved it", 1),
        EventRecord(str(history.users.id_of(0)), item, 10**10 + 1, "view", None, None, 2),
        EventRecord("brand-new", "not-an-item", 10**10 + 2, "click", None, None, 3),
    ]
    folded = fold_events(history, events)
    assert len(folded) == len(history) + 2 and "not-an-item" in caplog.text
    new = folded.users.index("brand-new")
    row = int(np.flatnonzero(folded.user_idx == new)[0])
    assert folded.event[row] == Event.PURCHASE and folded.rating[row] == 5.0 and folded.review[row] == "loved it"
    assert folded.item_idx[row] == 4 and folded.timestamp[row] == 10**10
    assert fold_events(history, []) is history


def test_watermark_names_the_store(bundle, tmp_path):
    store = SQLiteEventStore(tmp_path / "a.sqlite")
    assert read_watermark(bundle, store) == 0
    copy = tmp_path / "bundle"
    Recommender.load(bundle).save(copy)
    write_watermark(copy, store, 7)
    assert read_watermark(copy, store) == 7
    assert read_watermark(copy, SQLiteEventStore(tmp_path / "b.sqlite")) == 0  # another store: fold all


def test_warm_states_are_the_most_recent_users_and_match_single_encoding(bundle):
    rec = Recommender.load(bundle)
    cache = warm_states(rec, 5)
    h = rec.history
    latest = {str(h.users.id_of(u)): h.timestamp[h.user_idx == u].max() for u in range(h.n_users)}
    assert list(cache) == sorted(latest, key=lambda u: latest[u])[-5:]
    for user, (state, seen) in cache.items():
        single = rec.interests(Query(user_id=user))[0]
        np.testing.assert_allclose(state.interests, single.interests, rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(seen, np.unique(rec.user_history(Query(user_id=user)).item_idx))


@pytest.fixture(scope="module")
def service(bundle, tmp_path_factory):
    return Service.open(bundle, SQLiteEventStore(tmp_path_factory.mktemp("svc") / "events.sqlite"), fold_every=4)


def test_cached_states_answer_exactly_like_the_recommender(service):
    rec = service.recommender
    for user in rec.history.users.ids[:6]:
        for ranking in ({}, {"diversity": "mmr", "lam": 0.4}, {"diversity": "quotas"}):
            ours = service.recommend_user(user, 10, True, **ranking)
            theirs = rec.recommend(Query(user_id=user, n=10), explain=True, **ranking)
            assert [r["item"] for r in ours.rows] == list(theirs.ids)
            assert [r["explanation"] for r in ours.rows] == list(theirs.fields["explanation"])
        state, labels = service.interests(user)
        expected = rec.interests(Query(user_id=user))
        np.testing.assert_allclose(state.interests, expected[0].interests, rtol=1e-4, atol=1e-6)
        assert labels == expected[1]


def test_events_are_visible_at_once_and_folded_in_the_background(service):
    rec = service.recommender
    user = str(rec.history.users.id_of(7))
    before = [r["item"] for r in service.recommend_user(user, 10).rows]
    n_history = len(rec.history)
    service.add([EventRecord(user, i, 2_000_000_000 + k, "click", None, None) for k, i in enumerate(before[:3])])
    after = [r["item"] for r in service.recommend_user(user, 10).rows]
    assert not set(before[:3]) & set(after)
    assert service.pending == 3 and len(rec.history) == n_history
    service.add([EventRecord(user, before[3], 2_000_000_010, "cart")])  # the 4th event triggers a fold
    for _ in range(100):
        if service.pending == 0:
            break
        threading.Event().wait(0.05)
    assert service.pending == 0 and len(service.recommender.history) == n_history + 4
    events = service.history(user, 4)
    assert [e["item"] for e in events] == before[:4] and events[-1]["event"] == "cart"
    folded = [r["item"] for r in service.recommend_user(user, 10).rows]
    assert not set(before[:4]) & set(folded)


def test_bad_events_are_rejected_before_storing(service):
    count = service.store.count()
    with pytest.raises(UnknownIdError, match=r"events\[1\].item: unknown item id 'zz'"):
        service.add([EventRecord("u", str(service.recommender.items.id_of(0)), 1), EventRecord("u", "zz", 2)])
    with pytest.raises(DataError, match="unknown event type 'like'"):
        service.add([EventRecord("u", str(service.recommender.items.id_of(0)), 1, "like")])
    assert service.store.count() == count
