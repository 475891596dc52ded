"""Per-event inputs of the facet model: which item, when, what kind of event, and how it felt.

Every event of a sorted :class:`Interactions` becomes
- a time-gap bucket: log2 of the seconds since the user's previous event (1..``GAP_BUCKETS``;
  the first event of a history is bucket 1), so "binged in one evening" and "came back after a
  month" are different signals;
- an event code (click, view, cart, purchase, rate, review), shifted by one;
- signals: the event weight (which carries review sentiment when the data was weighted with
  :func:`facetrec.content.sentiment.with_sentiment_weights`), the rating centred on the
  middle of the scale (0 when absent) and a has-rating flag.
Windows of these line up with the item windows of :mod:`facetrec.interests.sequences`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facetrec.interests.sequences import window_positions
from facetrec.types import Interactions

GAP_BUCKETS = 32
SIGNALS = 3


@dataclass(frozen=True, eq=False)
class EventFeatures:
    """Per-event features of a sorted :class:`Interactions`, one row per event."""

    item: np.ndarray  # int32 item index
    gap: np.ndarray  # int64 gap bucket in 1..GAP_BUCKETS
    event: np.ndarray  # int64 event code + 1
    signals: np.ndarray  # float32 [n, SIGNALS]

    @classmethod
    def of(cls, data: Interactions, rating_mid: float = 3.0, rating_half_range: float = 2.0) -> EventFeatures:
        """``data`` must be sorted by user, then time (see :meth:`Interactions.sorted`)."""
        gap = np.diff(data.timestamp, prepend=data.timestamp[:1]).astype(np.float64)
        first = np.r_[True, data.user_idx[1:] != data.user_idx[:-1]] if len(data) else np.zeros(0, bool)
        gap[first] = 0
        bucket = 1 + np.minimum(np.log2(1 + np.maximum(gap, 0)).astype(np.int64), GAP_BUCKETS - 1)
        rated = np.isfinite(data.rating)
        rating = np.where(rated, (np.nan_to_num(data.rating) - rating_mid) / rating_half_range, 0.0)
        signals = np.stack([np.clip(data.weight, -5, 5), rating, rated], axis=1).astype(np.float32)
        return cls(data.item_idx, bucket, data.event.astype(np.int64) + 1, signals)

    def windows(self, start: np.ndarray, end: np.ndarray, width: int) -> dict[str, np.ndarray]:
        """Right-aligned windows over events ``start[r]:end[r]``: items (shifted by 1, 0 = padding),
        gaps and events (0 = padding) [rows, width], signals [rows, width, SIGNALS]."""
        source, real = window_positions(start, end, width)
        if not len(self.item):  # no events at all: every window is padding
            source = np.zeros_like(source)
            return {
                "items": np.zeros(source.shape, np.int64),
                "gaps": np.zeros(source.shape, np.int64),
                "events": np.zeros(source.shape, np.int64),
                "signals": np.zeros((*source.shape, SIGNALS), np.float32),
            }
        out = {
            "items": np.where(real, self.item[source] + 1, 0).astype(np.int64),
            "gaps": np.where(real, self.gap[source], 0),
            "events": np.where(real, self.event[source], 0),
            "signals": np.where(real[..., None], self.signals[source], 0).astype(np.float32),
        }
        return out
