"""Conformance checks shipped with facetrec, so that a new component's test is a few lines.

    from facetrec.testing import ScorerConformance

    class TestMyScorer(ScorerConformance):
        component = MyScorer
        params = {"epochs": 1}

    class TestMyModelPipeline(PipelineConformance):   # after registry.register("my-model", MyScorer)
        kind = "my-model"

Importing this package requires pytest.
"""

from facetrec.testing.conformance import ComponentConformance, ScorerConformance
from facetrec.testing.fixtures import small_synthetic
from facetrec.testing.pipeline import FAST_PARAMS, PipelineConformance

__all__ = ["FAST_PARAMS", "ComponentConformance", "PipelineConformance", "ScorerConformance", "small_synthetic"]
