"""Inverse-propensity weights: popularity-debiased training.

Clicks are observed mostly on items the system already showed, so a loss that counts every
training event once learns to predict popularity as much as taste. Weighting each event by the
inverse of its item's observation propensity, estimated as ``popularity ** power`` (Schnabel et
al., ICML 2016; Saito et al., WSDM 2020), makes a tail item's event count as much as a head
item's. ``power`` is the one knob: 0 leaves training exactly as it was, 1 is full inverse
popularity. Weights are normalised to mean 1 over the training events, so the loss keeps its
scale and the learning rate its meaning; the ratio between the largest and the smallest weight
is capped at :data:`MAX_RATIO`, since a few items seen once would otherwise dominate the
gradient (the usual variance cost of inverse-propensity estimates).
"""

from __future__ import annotations

import numpy as np

from facetrec.errors import ConfigError, DataError

MAX_RATIO = 100.0
"""Most an item's weight may exceed the most popular item's."""


def check_power(owner: str, power: float) -> None:
    """A ConfigError naming ``owner.ipw_power`` unless it is a number in [0, 1]."""
    if isinstance(power, bool) or not isinstance(power, int | float) or not 0 <= power <= 1:
        raise ConfigError(f"{owner}.ipw_power: must be a number in [0, 1] (0: off), got {power!r}")


def ipw_weights(counts: np.ndarray, power: float) -> np.ndarray:
    """Weights [n_items] float32 of an event with each item: ``max(count, floor) ** -power``,
    mean 1 over the ``counts.sum()`` training events. ``floor`` caps the largest weight at
    :data:`MAX_RATIO` times the most popular item's; an item without events weighs as the floor."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or not np.isfinite(counts).all() or (counts < 0).any():
        raise DataError(f"counts: expected finite non-negative event counts per item, got shape {counts.shape}")
    if power == 0 or counts.sum() <= 0:
        return np.ones(len(counts), np.float32)
    floor = max(counts.max() / MAX_RATIO ** (1.0 / power), np.finfo(np.float64).tiny)
    w = np.maximum(counts, floor) ** -power
    return (w * counts.sum() / (counts @ w)).astype(np.float32)
