from typing import Any, ClassVar

import numpy as np
import pytest

from facetrec.errors import ConfigError, DataError
from facetrec.ids import Vocabulary
from facetrec.scoring.popularity import PopularityScorer
from facetrec.testing import ScorerConformance
from facetrec.types import Interactions


class TestPopularityConformance(ScorerConformance):
    component = PopularityScorer


class TestWindowedPopularityConformance(ScorerConformance):
    component = PopularityScorer
    params: ClassVar[dict[str, Any]] = {"window_days": 30.0, "distinct_users": False}


USERS = Vocabulary(["u0", "u1", "u2"], "user")
ITEMS = Vocabulary(["a", "b", "c"], "item")
DAY = 86_400


def log(users, items, days):
    return Interactions(users, items, np.array(days) * DAY, USERS, ITEMS)


def test_counts_distinct_users_by_default():
    # u0 clicks 'a' five times; u1 and u2 click 'b' once each
    data = log([0, 0, 0, 0, 0, 1, 2], [0, 0, 0, 0, 0, 1, 1], [0, 1, 2, 3, 4, 5, 6])
    by_users = PopularityScorer().fit(data).score(data, np.array([0]))[0]
    by_events = PopularityScorer(distinct_users=False).fit(data).score(data, np.array([0]))[0]
    np.testing.assert_allclose(by_users, [0.5, 1.0, 0.0])
    np.testing.assert_allclose(by_events, [1.0, 0.4, 0.0])


def test_window_counts_only_recent_events():
    data = log([0, 1, 2, 0], [0, 0, 0, 2], [0, 1, 2, 100])
    recent = PopularityScorer(window_days=10.0).fit(data).score(data, np.array([1]))[0]
    np.testing.assert_allclose(recent, [0.0, 0.0, 1.0])


def test_invalid_config_and_input():
    with pytest.raises(ConfigError, match="window_days must be > 0"):
        PopularityScorer(window_days=0.0)
    scorer = PopularityScorer().fit(log([0], [0], [0]))
    with pytest.raises(DataError, match="user indices must be in 0..2"):
        scorer.score(log([0], [0], [0]), np.array([3]))
    other = Interactions([0], [0], [0], USERS, Vocabulary(["a", "b"], "item"))
    with pytest.raises(DataError, match="history has 2 items but the scorer was fitted on 3"):
        scorer.score(other, np.array([0]))
