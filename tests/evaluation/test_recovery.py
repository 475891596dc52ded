import numpy as np
import pytest

from facetrec.errors import DataError
from facetrec.evaluation.recovery import interest_recovery, topic_directions
from facetrec.types import UserState

# Items 0-1 are topic 0 (along x), items 2-3 topic 1 (along y), item 4 topic 2 (along z).
ITEMS = np.array([[1, 0.1, 0], [1, -0.1, 0], [0, 1, 0.1], [0, 1, -0.1], [0, 0, 1]], float)
TOPIC = np.array([0, 0, 1, 1, 2])


def state(*interests):
    k = len(interests)
    return UserState(np.array(interests, float), np.full(k, 1 / k), [0], np.ones((k, 1)))


def test_topic_directions_are_unit_means():
    directions = topic_directions(ITEMS, TOPIC)
    np.testing.assert_allclose(directions, np.eye(3), atol=1e-12)
    with pytest.raises(DataError, match="5 item vectors"):
        topic_directions(ITEMS, TOPIC[:3])


def test_recovery_counts_true_topics_some_interest_matches():
    states = [
        state([2, 0.3, 0], [0.1, 1, 0]),  # finds both of its topics 0 and 1
        state([1, 0, 0], [0.9, 0.2, 0]),  # two interests, both on topic 0: only half of {0, 2}
        state([0, 0, 1]),  # one true topic: not a multi-interest user
    ]
    got = interest_recovery(states, ITEMS, TOPIC, [np.array([0, 1]), np.array([0, 2]), np.array([2])])
    np.testing.assert_allclose(got, [1.0, 0.5, np.nan])
