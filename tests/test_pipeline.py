"""Every registered model trains, saves, loads, recommends from the CLI and serves over HTTP,
and evaluation ranks exactly the list a user receives (facetrec.testing.PipelineConformance)."""

from __future__ import annotations

from typing import Any

import pytest

from facetrec.scoring.registry import SCORERS
from facetrec.testing import FAST_PARAMS, PipelineConformance

SEQUENCE_MODELS = {"sasrec", "sasrec-text", "facet"}


def _marked(kind: str) -> Any:
    return pytest.param(kind, marks=pytest.mark.slow) if kind in SEQUENCE_MODELS else kind


BUILT_IN = [kind for kind, path in SCORERS.items() if path.startswith("facetrec.")]
"""The kinds facetrec ships (a test module may register more; they are tested where registered)."""


class TestEveryRegisteredModel(PipelineConformance):
    @pytest.fixture(scope="class", params=[_marked(kind) for kind in BUILT_IN])
    @classmethod
    def model(cls, request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
        return request.param, dict(FAST_PARAMS.get(request.param, {}))


def test_every_registered_kind_is_covered():
    shipped = {"pop", "bias", "itemknn", "ease", "als", "bpr", "content", "sasrec", "sasrec-text", "facet"}
    assert set(BUILT_IN) == shipped
