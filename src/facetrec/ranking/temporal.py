"""Temporal dynamics: decay of old history events, freshness of new items, trending items.

All three are pure functions of timestamps (epoch seconds) and a reference time ``now``:

- :func:`decay_weights` weighs history events by age with a half-life, for user models that
  build a :class:`~facetrec.types.UserState` (recent behaviour counts more);
- :func:`freshness` is 1 for an item created at ``now`` and halves every half-life (0 when the
  creation time is unknown);
- :class:`TrendingCounter` counts each item's events in a window before ``now``, and
  :func:`trending` turns counts into a score in [0, 1].

The ranker adds ``freshness_weight * freshness + trending_weight * trending`` to relevance,
scaled by the candidate pool's score range so that a weight is unitless (0.1 = up to a tenth
of the pool's spread).
"""

from __future__ import annotations

import numpy as np

from facetrec.errors import DataError

DAY = 86_400.0


def _half_life(half_life_days: float) -> float:
    if isinstance(half_life_days, bool) or not half_life_days > 0 or not np.isfinite(half_life_days):
        raise DataError(f"half_life_days: must be a positive number of days, got {half_life_days!r}")
    return float(half_life_days) * DAY


def decay_weights(timestamps: np.ndarray, now: float | np.ndarray, half_life_days: float) -> np.ndarray:
    """Weights ``0.5 ** (age / half_life)`` of events at ``timestamps`` seen from ``now`` (float64).

    An event ``half_life_days`` old weighs 1/2, twice that 1/4; events at or after ``now``
    weigh 1 (clock skew never makes an event count more than a fresh one). ``now`` may be an
    array aligned with ``timestamps`` (e.g. each event's user's request time).
    """
    t = np.asarray(timestamps, dtype=np.float64)
    now_arr = np.asarray(now, dtype=np.float64)
    if not np.isfinite(t).all() or not np.isfinite(now_arr).all():
        raise DataError("decay_weights: timestamps and now must be finite epoch seconds")
    age = np.maximum(now_arr - t, 0.0)
    return np.exp2(-age / _half_life(half_life_days))


def freshness(created_at: np.ndarray, now: float, half_life_days: float) -> np.ndarray:
    """Freshness in [0, 1] of items created at ``created_at``: ``0.5 ** (age / half_life)``.

    Items created at or after ``now`` score 1; unknown creation times (NaN) score 0.
    """
    t = np.asarray(created_at, dtype=np.float64)
    age = np.maximum(float(now) - np.nan_to_num(t, nan=-np.inf), 0.0)
    fresh = np.exp2(-age / _half_life(half_life_days))
    return np.where(np.isnan(t), 0.0, fresh)


def trending(counts: np.ndarray) -> np.ndarray:
    """Trending score in [0, 1]: ``log1p(count) / log1p(max count)`` (all 0 without events).

    The log keeps one blockbuster from flattening every other item's score to zero.
    """
    c = np.asarray(counts, dtype=np.float64)
    top = c.max() if c.size else 0.0
    return np.log1p(c) / np.log1p(top) if top > 0 else np.zeros_like(c)


class TrendingCounter:
    """Per-item event counts in a window ``(now - window, now]``, from events sorted once by time.

    Each query is a binary search plus a count over the events inside the window; the last
    window is cached, so requests with the same ``now`` cost one lookup.
    """

    def __init__(self, item_idx: np.ndarray, timestamps: np.ndarray, n_items: int) -> None:
        order = np.argsort(np.asarray(timestamps), kind="stable")
        self.times = np.asarray(timestamps, dtype=np.float64)[order]
        self.items = np.asarray(item_idx, dtype=np.int64)[order]
        self.n_items = int(n_items)
        self._key: tuple[int, int] | None = None
        self._scores = np.zeros(self.n_items)

    @property
    def latest(self) -> float | None:
        """Time of the last event, or None without events."""
        return float(self.times[-1]) if self.times.size else None

    def counts(self, now: float, window_days: float) -> np.ndarray:
        """Events per item with ``now - window < time <= now`` (int64 [n_items])."""
        if not window_days > 0:
            raise DataError(f"window_days: must be > 0, got {window_days!r}")
        lo = int(np.searchsorted(self.times, float(now) - window_days * DAY, side="right"))
        hi = int(np.searchsorted(self.times, float(now), side="right"))
        return np.bincount(self.items[lo:hi], minlength=self.n_items)

    def scores(self, now: float, window_days: float) -> np.ndarray:
        """:func:`trending` of :meth:`counts` (float64 [n_items], cached for the last window)."""
        lo = int(np.searchsorted(self.times, float(now) - window_days * DAY, side="right"))
        hi = int(np.searchsorted(self.times, float(now), side="right"))
        if self._key != (lo, hi):
            self._scores = trending(np.bincount(self.items[lo:hi], minlength=self.n_items))
            self._key = (lo, hi)
        return self._scores
