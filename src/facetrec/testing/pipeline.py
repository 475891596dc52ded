"""The pipeline round trip every registered model must pass: train, save, load, recommend, serve.

A model gets these checks by registering (``facetrec.scoring.registry.register``) and writing a
few lines::

    from facetrec.testing import PipelineConformance

    class TestMyModel(PipelineConformance):
        kind = "my-model"
        params = {"epochs": 2}

The checks train on :func:`small_synthetic` data, save a bundle, load it, and compare the list
``Recommender.recommend`` makes with what evaluation ranks, what ``facetrec recommend --json``
prints and what the HTTP service returns: one request path, so all four must be equal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from facetrec.data.dataset import Dataset
from facetrec.evaluation.evalset import EvalSet
from facetrec.recommender import Recommender, fit_recommender
from facetrec.testing.fixtures import small_synthetic
from facetrec.types import Query

FAST_PARAMS: dict[str, dict[str, Any]] = {
    "sasrec": {"epochs": 2, "hidden": 16, "max_len": 20, "progress": False},
    "sasrec-text": {"epochs": 2, "hidden": 16, "max_len": 20, "encoder": "lexical", "progress": False},
    "facet": {"epochs": 2, "hidden": 16, "max_len": 20, "encoder": "lexical", "progress": False},
    "content": {"encoder": "lexical"},
    "als": {"iterations": 3},
    "bpr": {"iterations": 3},
}
"""Settings that keep the built-in models' round trip to seconds (unknown kinds use their defaults)."""


class PipelineConformance:
    """Set ``kind`` (a registered model) and optionally ``params``; inherit the checks."""

    kind: ClassVar[str]
    params: ClassVar[dict[str, Any] | None] = None

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls) -> tuple[str, dict[str, Any]]:
        """(kind, params) under test; a subclass may override it (e.g. parametrised over kinds)."""
        return cls.kind, dict(FAST_PARAMS.get(cls.kind, {}) if cls.params is None else cls.params)

    @pytest.fixture(scope="class")
    @classmethod
    def dataset(cls) -> Dataset:
        return small_synthetic().dataset

    @pytest.fixture(scope="class")
    @classmethod
    def bundle(cls, model: tuple[str, dict[str, Any]], dataset: Dataset, tmp_path_factory: Any) -> Path:
        kind, params = model
        path = tmp_path_factory.mktemp(f"bundle-{kind}")
        fit_recommender(dataset, kind, params, seed=0).save(path)
        return path

    @staticmethod
    def user(dataset: Dataset) -> str:
        return str(dataset.interactions.users.id_of(3))

    def test_bundle_loads_and_recommends_what_was_trained(self, model, dataset: Dataset, bundle: Path) -> None:
        kind, params = model
        fresh = fit_recommender(dataset, kind, params, seed=0)
        loaded = Recommender.load(bundle)
        query = Query(user_id=self.user(dataset), n=10)
        first, second = fresh.recommend(query), loaded.recommend(query)
        assert first.ids.tolist() == second.ids.tolist(), "a saved and loaded bundle ranks differently"
        np.testing.assert_allclose(first.scores, second.scores, rtol=1e-5, atol=1e-6)
        manifest = json.loads((bundle / "manifest.json").read_text())
        assert manifest["kind"] == kind
        assert not list(bundle.rglob("*.pkl")) and not list(bundle.rglob("*.pickle")), "bundles never pickle"

    def test_evaluation_cli_and_http_return_the_same_list(self, dataset: Dataset, bundle: Path, tmp_path: Path) -> None:
        from fastapi.testclient import TestClient
        from typer.testing import CliRunner

        from facetrec.cli import app
        from facetrec.evaluation.protocol import EvalConfig, rank
        from facetrec.serving.server import build

        user = self.user(dataset)
        recommender = Recommender.load(bundle)
        served = recommender.recommend(Query(user_id=user, n=10)).ids.tolist()
        assert len(served) == 10 and len(set(served)) == 10

        history = recommender.history
        u = history.users.index(user)
        target = history.take(np.flatnonzero(history.user_idx == u)[:1])
        _, ranked = rank(recommender, EvalSet(history, target), 10, EvalConfig(bootstrap=0))
        assert recommender.items.id_of(ranked[0]).tolist() == served, "evaluation ranks a different list"

        result = CliRunner().invoke(app, ["recommend", "--bundle", str(bundle), "--user", user, "--json"])
        assert result.exit_code == 0, result.output
        assert [row["item"] for row in json.loads(result.stdout)["items"]] == served

        with TestClient(build(bundle, tmp_path / "events.sqlite", api_key="k")) as client:
            response = client.get(f"/users/{user}/recommendations", params={"k": 10})
            assert response.status_code == 200, response.text
            assert [row["item"] for row in response.json()["items"]] == served

    def test_new_user_and_unknown_input(self, dataset: Dataset, bundle: Path) -> None:
        from facetrec.errors import UnknownIdError

        recommender = Recommender.load(bundle)
        history = tuple(str(i) for i in dataset.catalog.items.ids[:3])
        found = recommender.recommend(Query(history=history, n=5))
        assert len(found) == 5 and not set(history) & set(found.ids.tolist())
        with pytest.raises(UnknownIdError, match="nobody"):
            recommender.recommend(Query(user_id="nobody", n=5))
        with pytest.raises(UnknownIdError, match="no-such-item"):
            recommender.recommend(Query(history=("no-such-item",), n=5))

    def test_listed_by_facetrec_models(self, model) -> None:
        from facetrec.scoring.registry import describe

        kind, _ = model
        row = next(r for r in describe() if r["kind"] == kind)
        assert {"known_users", "raw_history"} <= set(row["can"]), "every model serves known and new users"
