"""Small known-answer data for component tests: quick to make, identical on every run."""

from __future__ import annotations

from functools import cache

from facetrec.data.synthetic import SynthConfig, SyntheticData, generate


@cache
def small_synthetic(seed: int = 0) -> SyntheticData:
    """120 users x 80 items over 6 planted topics (about 2,400 events); cached per seed."""
    return generate(
        SynthConfig(n_users=120, n_items=80, n_topics=6, max_interests=3, mean_events_per_user=20, seed=seed)
    )
