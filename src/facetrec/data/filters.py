"""Interaction filters that operate on index arrays (pure functions, no pandas)."""

from __future__ import annotations

import numpy as np


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
