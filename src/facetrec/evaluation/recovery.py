"""Does a multi-interest model find the interests planted in synthetic data?

A topic's direction in the model's item space is the normalised mean of its items' vectors.
Each learned interest "matches" the topic whose direction is most cosine-similar to it; a true
interest of a user is recovered when at least one of that user's learned interests matches it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facetrec.errors import DataError
from facetrec.types import UserState


def topic_directions(item_vectors: np.ndarray, item_topic: np.ndarray) -> np.ndarray:
    """[n_topics, d] unit vectors: the mean item vector of each topic (topic -1 = none, ignored)."""
    item_topic = np.asarray(item_topic)
    if len(item_topic) != len(item_vectors):
        raise DataError(f"item_topic has {len(item_topic)} entries for {len(item_vectors)} item vectors")
    n_topics = int(item_topic.max()) + 1
    sums = np.zeros((n_topics, item_vectors.shape[1]))
    has = item_topic >= 0
    np.add.at(sums, item_topic[has], item_vectors[has])
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return np.divide(sums, norms, out=np.zeros_like(sums), where=norms > 0)


def interest_recovery(
    states: Sequence[UserState],
    item_vectors: np.ndarray,
    item_topic: np.ndarray,
    true_topics: Sequence[np.ndarray],
    min_interests: int = 2,
) -> np.ndarray:
    """Per user, the share of their true topics that some learned interest matches best.

    NaN for users with fewer than ``min_interests`` true topics (a single interest is no test of
    a multi-interest model). ``states[u]`` and ``true_topics[u]`` describe the same user.
    """
    if len(states) != len(true_topics):
        raise DataError(f"{len(states)} user states but {len(true_topics)} true-topic lists")
    directions = topic_directions(np.asarray(item_vectors, np.float64), item_topic)
    out = np.full(len(states), np.nan)
    for u, (state, truth) in enumerate(zip(states, true_topics, strict=True)):
        truth = np.unique(np.asarray(truth))
        if len(truth) < min_interests:
            continue
        matched = np.unique((state.interests @ directions.T).argmax(1))
        out[u] = np.isin(truth, matched).mean()
    return out
