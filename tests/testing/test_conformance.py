"""The conformance mixins must fail on components that break the contract."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from facetrec.component import Component
from facetrec.errors import ConfigError
from facetrec.scoring.popularity import PopularityConfig, PopularityScorer
from facetrec.testing import ScorerConformance, small_synthetic


class WorksInConstructor(PopularityScorer):
    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.popularity_ = np.zeros(1)


class NoisyScorer(PopularityScorer):
    def _score(self, history, users):
        return super()._score(history, users) + np.random.default_rng().random()


class SetsPlainAttribute(PopularityScorer):
    def fit(self, train, catalog=None):
        self.cache = 1
        return super().fit(train, catalog)


class ForgetsOnSave(PopularityScorer):
    def save(self, directory):
        real = self.popularity_
        self.popularity_ = np.zeros_like(real)
        try:
            return super().save(directory)
        finally:
            self.popularity_ = real


def check(component_class: type, method: str, *args) -> None:
    suite = type("Suite", (ScorerConformance,), {"component": component_class})()
    getattr(suite, method)(*args)


@pytest.mark.parametrize(
    ("broken", "method", "needs"),
    [
        (WorksInConstructor, "test_constructor_does_no_work", ()),
        (NoisyScorer, "test_deterministic_under_seed", ("dataset",)),
        (SetsPlainAttribute, "test_fit_returns_self_and_sets_only_trailing_underscore_state", ("dataset",)),
        (ForgetsOnSave, "test_save_load_gives_identical_output", ("dataset", "tmp_path")),
    ],
)
def test_broken_components_fail_the_matching_check(broken, method, needs, tmp_path):
    values = {"dataset": small_synthetic().dataset, "tmp_path": tmp_path}
    with pytest.raises(AssertionError):
        check(broken, method, *(values[n] for n in needs))
    check(PopularityScorer, method, *(values[n] for n in needs))  # the real one passes


def test_load_refuses_another_class_and_a_foreign_directory(tmp_path):
    data = small_synthetic().dataset.interactions
    PopularityScorer().fit(data).save(tmp_path / "pop")

    @dataclass(frozen=True)
    class OtherConfig:
        pass

    class Other(Component[OtherConfig]):
        config_class = OtherConfig

    with pytest.raises(ConfigError, match="holds a facetrec.scoring.popularity.PopularityScorer, not a"):
        Other.load(tmp_path / "pop")
    with pytest.raises(ConfigError, match="no manifest.json"):
        PopularityScorer.load(tmp_path)
    assert Component.load(tmp_path / "pop").config == PopularityConfig()


def test_wrong_config_type_is_rejected():
    with pytest.raises(ConfigError, match="config must be a PopularityConfig"):
        PopularityScorer(config={"window_days": 3})
