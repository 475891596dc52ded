"""Side-by-side experiments, reports and the registry."""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
import pytest

from facetrec.errors import ConfigError
from facetrec.evaluation.experiment import default_metrics, run_experiment
from facetrec.evaluation.protocol import EvalConfig
from facetrec.evaluation.report import write_report
from facetrec.scoring.popularity import PopularityScorer
from facetrec.scoring.registry import SCORERS, make_scorer, scorer_class
from facetrec.testing import small_synthetic


def test_registry_builds_validated_scorers():
    assert scorer_class("pop") is PopularityScorer
    assert make_scorer("pop", {"window_days": 7.0}).config.window_days == 7.0
    with pytest.raises(ConfigError, match="unknown model kind 'popular'; choose from pop"):
        make_scorer("popular")
    with pytest.raises(ConfigError, match="model 'pop': unknown key 'window'"):
        make_scorer("pop", {"window": 3})
    assert set(SCORERS) >= {"pop", "itemknn", "ease", "als", "bpr", "sasrec"}


def test_experiment_evaluates_every_model_on_one_split_and_tunes_on_validation(tmp_path):
    synthetic = small_synthetic()
    interests = (synthetic.item_topic, synthetic.interest_matrix())
    experiment = run_experiment(synthetic.dataset, ["pop"], tune=True, interests=interests, seed=1)
    run = experiment.runs[0]
    assert len(run.tuning) == 2 and run.params == max(run.tuning, key=lambda t: t[1])[0]
    summary = run.test.summary
    assert set(summary) == set(default_metrics(True, True))
    assert 0 < summary["interest_coverage@10"] <= 1
    # the test users are exactly the users with a test target
    assert np.array_equal(run.test.users, np.unique(experiment.split.test.targets.user_idx))

    paths = write_report(experiment, tmp_path)
    names = {p.name for p in paths}
    assert {"results.json", "report.md", "per_user.parquet", "metrics.png", "accuracy_diversity.png"} <= names
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["protocol"] == "loo" and results["settings"]["exclude_history"] is True
    assert results["models"][0]["metrics"]["ndcg@10"] == pytest.approx(summary["ndcg@10"], abs=1e-6)
    report = (tmp_path / "report.md").read_text()
    assert "history items excluded" in report and "| pop |" in report


def test_experiment_respects_an_explicit_config():
    data = small_synthetic().dataset
    config = EvalConfig(metrics=("ndcg@5",), exclude_history=False, bootstrap=0)
    experiment = run_experiment(data, ["pop"], config=config, protocol="multi-target")
    result = experiment.runs[0].test
    assert list(result.summary) == ["ndcg@5"] and result.settings["exclude_history"] is False
    assert experiment.split.protocol == "multi-target"


class SpyScorer(PopularityScorer):
    """Popularity that remembers what it was trained on."""

    seen: ClassVar[list] = []

    def fit(self, train, catalog=None, valid=None):
        SpyScorer.seen.append(train)
        return super().fit(train, catalog, valid)


@pytest.mark.parametrize("protocol", ["loo", "temporal", "ratio", "multi-target"])
def test_no_test_event_is_visible_in_training(monkeypatch, protocol):
    monkeypatch.setitem(SCORERS, "spy", f"{__name__}:SpyScorer")
    SpyScorer.seen.clear()
    data = small_synthetic().dataset
    experiment = run_experiment(data, ["spy"], protocol=protocol, config=EvalConfig(metrics=("hr@5",), bootstrap=0))
    (train,) = SpyScorer.seen
    targets = experiment.split.test.targets

    def events(part):
        return set(zip(part.user_idx.tolist(), part.item_idx.tolist(), part.timestamp.tolist(), strict=True))

    assert not events(targets) & events(train)
    last_train = np.full(train.n_users, np.iinfo(np.int64).min)
    np.maximum.at(last_train, train.user_idx, train.timestamp)
    assert (last_train[targets.user_idx] <= targets.timestamp).all()


def test_cold_items_and_rating_prediction_are_reported(tmp_path):
    synthetic = small_synthetic()
    experiment = run_experiment(
        synthetic.dataset,
        ["pop", "bias"],
        protocol="temporal",
        config=EvalConfig(metrics=("hr@10", "recall@10"), bootstrap=0),
    )
    pop, bias = experiment.runs
    assert pop.cold is not None and pop.cold.settings["targets"] > 0
    assert pop.cold.summary["recall@10"] == 0  # popularity cannot recommend an item nobody has seen
    assert pop.warm.summary["recall@10"] > 0
    assert set(bias.other) >= {"rmse", "mae"} and "rmse" not in pop.other
    assert "auc" not in pop.other  # views are engagement here, not negatives, unless asked
    write_report(experiment, tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "## Cold-start items" in report and "rmse = " in report
