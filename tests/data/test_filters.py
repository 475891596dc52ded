import numpy as np

from facetrec.data.filters import first_occurrences, k_core
from facetrec.ids import Vocabulary
from facetrec.types import Event, Interactions


def test_k_core_iterates_until_stable():
    # user 2 has 2 events; removing it leaves item 2 with 1 event, which then goes too
    users = np.array([0, 0, 0, 1, 1, 1, 2, 2, 0])
    items = np.array([0, 1, 2, 0, 1, 3, 2, 3, 3])
    keep = k_core(users, items, min_user=3, min_item=2)
    assert keep.tolist() == [True, True, False, True, True, True, False, False, True]
    assert k_core(users, items, 0, 0).all()


def test_first_occurrences_keeps_the_earliest_event_per_user_item():
    users, items = Vocabulary(["a", "b"], "user"), Vocabulary(["x", "y"], "item")
    data = Interactions(
        [0, 0, 0, 1, 1],
        [0, 0, 1, 0, 0],
        [3, 1, 2, 5, 5],
        users,
        items,
        event=[Event.PURCHASE, Event.VIEW, Event.CLICK, Event.VIEW, Event.CART],
    )
    first = first_occurrences(data)
    assert first.item_idx.tolist() == [0, 1, 0]
    assert first.event.tolist() == [Event.VIEW, Event.CLICK, Event.VIEW]  # tie at t=5: file order
    assert first.timestamp.tolist() == [1, 2, 5]
