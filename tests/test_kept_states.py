"""A known user's request is answered from their kept state, and events update it exactly.

The reference is the path every list took before states were kept: encode the user's whole
history and rank it (``recommend_batch``, which encodes from the log it is given).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facetrec.arrays import map_safetensors
from facetrec.history import EventRecord
from facetrec.ranking import RankConfig
from facetrec.recommender import Recommender, fit_recommender
from facetrec.testing import small_synthetic
from facetrec.types import ItemList, Query

MAX_LEN = 6  # shorter than every user's history, so the kept state reads only a tail of it
PARAMS = {"encoder": "none", "hidden": 16, "epochs": 2, "max_len": MAX_LEN, "progress": False}
RANKING = {"diversity": "mmr", "lam": 0.7}


@pytest.fixture(scope="module")
def data():
    return small_synthetic().dataset


@pytest.fixture(scope="module")
def trained(data) -> Recommender:
    return fit_recommender(data, "facet", PARAMS, RankConfig(candidates=30))


def fresh(trained: Recommender) -> Recommender:
    """A Recommender of its own (own histories and states) over the trained model."""
    return Recommender(trained.scorer, trained.catalog, trained.history, trained.ranking)


def reference(rec: Recommender, user: str, explain: bool = False) -> ItemList:
    """The list from the user's whole history, encoded afresh."""
    history = rec.history
    u = int(history.users.index(user))
    if explain:
        return rec._lists(history, np.array([u]), 10, [np.zeros(0, np.int32)], None, True, rec.ranker(**RANKING))[0]
    return rec.recommend_batch(history, np.array([u]), 10, **RANKING)[0]


def assert_same(a: ItemList, b: ItemList) -> None:
    """The same items in the same order with the same interests; scores equal to float32 rounding
    (a state warmed in a batch of users is computed with padding, a single one without)."""
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)
    np.testing.assert_array_equal(a.fields["interest"], b.fields["interest"])


def test_kept_states_give_the_lists_of_the_whole_history(data, trained) -> None:
    rec = fresh(trained)
    users = [str(u) for u in data.interactions.users.ids[:20]]
    assert rec.warm(10) == 10  # some users warmed in batches, the others encoded on their first request
    for user in users:
        assert_same(rec.recommend(Query(user_id=user, n=10), **RANKING), reference(rec, user))
        assert_same(rec.recommend(Query(user_id=user, n=10), **RANKING), reference(rec, user))  # now cached
    user = users[0]
    found = rec.recommend(Query(user_id=user, n=10), explain=True, **RANKING)
    expected = reference(rec, user, explain=True)
    assert_same(found, expected)
    assert list(found.fields["explanation"]) == list(expected.fields["explanation"])


def test_events_update_the_kept_state_to_exactly_the_whole_history_one(data, trained) -> None:
    rec = fresh(trained)
    user = str(data.interactions.users.ids[7])
    before = rec.recommend(Query(user_id=user, n=10), **RANKING)
    last = int(rec.histories.user_events(user).timestamp.max())
    clicked = [str(i) for i in before.ids[:3]]
    gaps = [5, 3_600, 86_400 * 30]  # different time-gap buckets: the window's first gap must be the real one
    events = [EventRecord(user, item, last + sum(gaps[: i + 1])) for i, item in enumerate(clicked)]
    rec.append(events)
    after = rec.recommend(Query(user_id=user, n=10), **RANKING)
    assert_same(after, reference(rec, user))
    assert not set(clicked) & set(after.ids)  # the new items count as seen
    state = rec.interests(Query(user_id=user))[0]
    newest = rec.histories.user_events(user).item_idx[-MAX_LEN:]
    np.testing.assert_array_equal(state.history_idx, newest)
    rec.append([EventRecord(user, clicked[0], last + 10**8)])  # again: one more re-encode, still exact
    assert_same(rec.recommend(Query(user_id=user, n=10), **RANKING), reference(rec, user))


def test_exclusions_and_new_users_still_take_the_history_path(data, trained) -> None:
    rec = fresh(trained)
    user = str(data.interactions.users.ids[3])
    top = rec.recommend(Query(user_id=user, n=10))
    again = rec.recommend(Query(user_id=user, n=10, exclude=tuple(top.ids[:2])))
    assert not set(top.ids[:2]) & set(again.ids)
    np.testing.assert_array_equal(again.ids[:8], top.ids[2:])  # pure relevance: the rest moves up
    rec.append([EventRecord("newcomer", str(top.ids[0]), 10**9)])
    found = rec.recommend(Query(user_id="newcomer", n=5))
    assert len(found) == 5 and str(top.ids[0]) not in set(found.ids)


@pytest.mark.parametrize("kind", ["facet", "pop", "bias", "itemknn", "ease", "als", "bpr", "content"])
def test_models_answer_from_read_only_mapped_state(data, tmp_path: Path, kind: str) -> None:
    """Several worker processes share a bundle's arrays as read-only maps: no model writes to them."""
    params = PARAMS if kind == "facet" else None
    rec = fit_recommender(data, kind, params)
    rec.save(tmp_path / kind)
    loaded = Recommender.load(tmp_path / kind)
    for name, value in map_safetensors(tmp_path / kind / "scorer" / "state.safetensors").items():
        setattr(loaded.scorer, name, value)
    users = [str(u) for u in data.interactions.users.ids[:5]]
    for user in users:
        assert_same(loaded.recommend(Query(user_id=user, n=10)), rec.recommend(Query(user_id=user, n=10)))
    loaded.append([EventRecord(users[0], str(data.catalog.items.ids[0]), 10**10)])
    assert len(loaded.recommend(Query(user_id=users[0], n=10), **RANKING)) == 10
