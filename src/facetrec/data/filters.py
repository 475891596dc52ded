"""Interaction filters that operate on index arrays (pure functions, no pandas)."""

from __future__ import annotations

import numpy as np

from facetrec.types import Interactions


def k_core(user_idx: np.ndarray, item_idx: np.ndarray, min_user: int, min_item: int) -> np.ndarray:
    """Boolean mask of the rows in the (min_user, min_item)-core of the interaction graph.

    Removing a sparse item can push a user below the minimum and vice versa, so the two
    filters are applied alternately until neither removes anything.
    """
    keep = np.ones(len(user_idx), dtype=bool)
    n_users = int(user_idx.max()) + 1 if len(user_idx) else 0
    n_items = int(item_idx.max()) + 1 if len(item_idx) else 0
    while True:
        user_counts = np.bincount(user_idx[keep], minlength=n_users)
        item_counts = np.bincount(item_idx[keep], minlength=n_items)
        next_keep = keep & (user_counts[user_idx] >= min_user) & (item_counts[item_idx] >= min_item)
        if (next_keep == keep).all():
            return keep
        keep = next_keep


def first_occurrences(data: Interactions) -> Interactions:
    """Each user's first event on each item (in time order, ties in file order).

    Sequential recommendation papers evaluate on this view: with repeats kept, a user who
    viewed, carted and bought one item contributes a test target that history exclusion makes
    impossible to hit.
    """
    data = data.sorted()
    pair = data.user_idx.astype(np.int64) * data.n_items + data.item_idx
    _, first = np.unique(pair, return_index=True)
    keep = np.zeros(len(data), dtype=bool)
    keep[first] = True
    return data.take(keep)
