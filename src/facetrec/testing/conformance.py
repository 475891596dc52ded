"""Conformance mixins: the checks every component and every scorer must pass.

Each check is a pytest test method; a subclass sets ``component`` (the class) and optionally
``params`` (config overrides that keep the test fast) and inherits them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from facetrec.component import Component
from facetrec.config import from_dict, to_dict
from facetrec.data.dataset import Dataset
from facetrec.errors import ConfigError, NotFittedError
from facetrec.ids import Vocabulary
from facetrec.testing.fixtures import small_synthetic
from facetrec.types import Interactions


class ComponentConformance:
    """Estimator contract: config in the constructor, state after fit, save/load, determinism."""

    component: ClassVar[type[Component]]
    params: ClassVar[dict[str, Any]] = {}

    def make(self, **overrides: Any) -> Component:
        return self.component(**{**self.params, **overrides})

    @pytest.fixture
    def dataset(self) -> Dataset:
        return small_synthetic().dataset

    def fit(self, component: Component, dataset: Dataset) -> Component:
        return component.fit(dataset.interactions, dataset.catalog)  # type: ignore[attr-defined]

    def use(self, component: Component, dataset: Dataset) -> np.ndarray:
        """The output compared across fits and save/load; subclasses define it."""
        raise NotImplementedError

    def test_constructs_with_defaults(self) -> None:
        component = self.component()
        assert isinstance(component.config, self.component.config_class)

    def test_constructor_does_no_work(self) -> None:
        component = self.make()
        assert component.fitted_attributes == [], "the constructor set fitted (trailing _) attributes"
        assert not component.is_fitted

    def test_config_round_trips(self) -> None:
        component = self.make()
        rebuilt = self.component(from_dict(self.component.config_class, to_dict(component.config)))
        assert rebuilt.config == component.config

    def test_unknown_config_key_is_an_error(self) -> None:
        with pytest.raises(ConfigError, match="unknown key 'no_such_setting'"):
            self.make(no_such_setting=1)

    def test_use_before_fit_raises_not_fitted(self, dataset: Dataset) -> None:
        with pytest.raises(NotFittedError, match=r"call \.fit\("):
            self.use(self.make(), dataset)

    def test_fit_returns_self_and_sets_only_trailing_underscore_state(self, dataset: Dataset) -> None:
        component = self.make()
        before = set(vars(component))
        assert self.fit(component, dataset) is component
        added = set(vars(component)) - before
        assert added, "fit learned nothing"
        assert all(name.endswith("_") for name in added), f"fit set non-underscore attributes {sorted(added)}"

    def test_deterministic_under_seed(self, dataset: Dataset) -> None:
        first = self.use(self.fit(self.make(), dataset), dataset)
        second = self.use(self.fit(self.make(), dataset), dataset)
        np.testing.assert_array_equal(first, second)

    def test_save_load_gives_identical_output(self, dataset: Dataset, tmp_path: Path) -> None:
        component = self.fit(self.make(), dataset)
        component.save(tmp_path / "saved")
        loaded = self.component.load(tmp_path / "saved")
        assert type(loaded) is type(component) and loaded.config == component.config
        np.testing.assert_array_equal(self.use(loaded, dataset), self.use(component, dataset))


class ScorerConformance(ComponentConformance):
    """Adds the scorer contract: shape, dtype and finiteness, and history-only users."""

    def use(self, component: Component, dataset: Dataset) -> np.ndarray:
        users = np.arange(min(25, dataset.interactions.n_users))
        return component.score(dataset.interactions, users)  # type: ignore[attr-defined]

    def test_scores_every_item_for_every_user(self, dataset: Dataset) -> None:
        scores = self.use(self.fit(self.make(), dataset), dataset)
        assert scores.shape == (min(25, dataset.interactions.n_users), dataset.interactions.n_items)
        assert scores.dtype == np.float32
        assert np.isfinite(scores).all()

    def test_scores_a_new_user_from_a_raw_history(self, dataset: Dataset) -> None:
        scorer = self.fit(self.make(), dataset)
        data = dataset.interactions
        items = data.item_idx[:3]
        newcomer = Interactions(
            np.zeros(3, np.int32), items, np.arange(3), Vocabulary(["newcomer"], "user"), data.items
        )
        scores = scorer.score(newcomer, np.array([0]))  # type: ignore[attr-defined]
        assert scores.shape == (1, data.n_items) and np.isfinite(scores).all()
