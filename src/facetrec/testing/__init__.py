"""Conformance checks shipped with facetrec, so that a new component's test is a few lines.

    from facetrec.testing import ScorerConformance

    class TestMyScorer(ScorerConformance):
        component = MyScorer
        params = {"epochs": 1}

Importing this package requires pytest.
"""

from facetrec.testing.conformance import ComponentConformance, ScorerConformance
from facetrec.testing.fixtures import small_synthetic

__all__ = ["ComponentConformance", "ScorerConformance", "small_synthetic"]
