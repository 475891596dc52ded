"""Side-by-side experiments, reports and the registry."""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
import pytest

from facetrec.errors import ConfigError
from facetrec.evaluation.experiment import (
    ModelRun,
    RatioCI,
    best_models,
    check_params,
    default_metrics,
    higher_is_better,
    paired_ratio,
    run_experiment,
)
from facetrec.evaluation.protocol import EvalConfig, EvalResult
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


# ---- best model per metric, ratio to the best with a paired bootstrap interval ------------------


def test_paired_ratio_on_a_hand_computed_example():
    values = np.array([1.0, 0.0, 1.0, 0.0, np.nan])
    reference = np.array([1.0, 1.0, 1.0, 0.0, 1.0])  # the NaN user is left out of both means
    plain = paired_ratio(values, reference, resamples=0)
    assert plain.ratio == pytest.approx((2 / 4) / (3 / 4)) and plain.n_users == 4
    assert np.isnan(plain.low) and np.isnan(plain.high)
    # a model exactly twice as good on every user has ratio 2 in every resample
    doubled = paired_ratio(2 * np.array([0.1, 0.5, 0.3]), np.array([0.1, 0.5, 0.3]), resamples=200, seed=1)
    assert (doubled.ratio, doubled.low, doubled.high) == pytest.approx((2.0, 2.0, 2.0))
    # two users, one draw each way: resamples are {a,a}, {a,b}, {b,a}, {b,b} with ratios 0/1, 1/2, 1/2, 1/1
    many = paired_ratio(np.array([0.0, 1.0]), np.array([1.0, 1.0]), resamples=4000, seed=2)
    assert many.ratio == 0.5 and many.low == 0.0 and many.high == 1.0
    nothing = paired_ratio(np.array([np.nan]), np.array([1.0]))
    assert nothing.n_users == 0 and np.isnan(nothing.ratio)
    zero = paired_ratio(np.array([0.0, 1.0]), np.array([0.0, 0.0]), resamples=10)
    assert np.isnan(zero.ratio)
    with pytest.raises(ValueError, match="equal-length"):
        paired_ratio(np.zeros(3), np.zeros(4))


def test_paired_ratio_matches_scipys_paired_bootstrap():
    from scipy.stats import bootstrap

    rng = np.random.default_rng(7)
    reference = rng.binomial(1, 0.3, 400) * rng.uniform(0.3, 1, 400)
    values = np.where(rng.uniform(size=400) < 0.8, reference, rng.binomial(1, 0.2, 400) * 0.5)
    ours = paired_ratio(values, reference, resamples=6000, seed=3)
    theirs = bootstrap(
        (values, reference),
        lambda x, y, axis=-1: x.mean(axis=axis) / y.mean(axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=6000,
        method="percentile",
        random_state=np.random.default_rng(4),
    ).confidence_interval
    assert ours.ratio == pytest.approx(values.mean() / reference.mean())
    assert ours.low == pytest.approx(theirs.low, abs=0.02)
    assert ours.high == pytest.approx(theirs.high, abs=0.02)
    # a paired interval is narrower than one that resamples the two models independently
    unpaired = [
        values[rng.integers(0, 400, 400)].mean() / reference[rng.integers(0, 400, 400)].mean() for _ in range(2000)
    ]
    assert ours.high - ours.low < np.subtract(*np.percentile(unpaired, [97.5, 2.5]))


def test_best_models_respect_the_direction_of_each_metric():
    def run(kind, **summary):
        result = EvalResult(kind, np.arange(1), {}, summary, {})
        return ModelRun(kind, {}, result, 0.0)

    runs = [
        run("a", **{"ndcg@10": 0.2, "calibration_kl@10": 1.0, "hr@10": 0.5, "novelty@10": np.nan}),
        run("b", **{"ndcg@10": 0.3, "calibration_kl@10": 2.0, "hr@10": 0.5, "novelty@10": np.nan}),
    ]
    best = best_models(runs)
    assert best["ndcg@10"] == ("b",) and best["calibration_kl@10"] == ("a",)
    assert best["hr@10"] == ("a", "b") and best["novelty@10"] == ()
    assert higher_is_better("ndcg@10") and not higher_is_better("popularity@20")


def test_experiment_ratios_are_paired_over_users_and_one_for_the_best():
    data = small_synthetic().dataset
    config = EvalConfig(metrics=("ndcg@10", "hr@10"), bootstrap=300)
    experiment = run_experiment(data, ["pop", "itemknn"], config=config, seed=5)
    assert experiment.main_metric == "ndcg@10"
    best = experiment.best()["ndcg@10"]
    assert len(best) == 1 and experiment.ratios[best[0]] == RatioCI(
        1.0, 1.0, 1.0, len(experiment.result(best[0]).users)
    )
    other = next(r for r in experiment.runs if r.kind not in best)
    ratio = experiment.ratios[other.kind]
    expected = np.nanmean(other.test.per_user["ndcg@10"]) / np.nanmean(experiment.result(best[0]).per_user["ndcg@10"])
    assert ratio.ratio == pytest.approx(expected) and ratio.ratio < 1
    assert ratio.low <= ratio.ratio <= ratio.high


def test_parameters_are_checked_before_any_work():
    data = small_synthetic().dataset
    with pytest.raises(ConfigError, match=r"model 'ease': unknown key 'l3'.*valid keys: l2"):
        run_experiment(data, ["ease"], params={"ease": {"l3": 1.0}})
    with pytest.raises(ConfigError, match="'ease', which is not in the run; models in the run: pop"):
        run_experiment(data, ["pop"], params={"ease": {"l2": 1.0}})
    with pytest.raises(ConfigError, match="listed more than once"):
        run_experiment(data, ["pop", "pop"])
    assert check_params(["ease"], {"ease": {"l2": 5}}) == {"ease": {"l2": 5}}


def test_tuning_varies_only_what_the_given_parameters_leave_free():
    data = small_synthetic().dataset
    events: list[str] = []
    config = EvalConfig(metrics=("ndcg@10",), bootstrap=0)
    experiment = run_experiment(
        data, ["itemknn", "ease"], config=config, params={"itemknn": {"k": 10}, "ease": {"l2": 9.0}}, tune=True,
        on_event=events.append,
    )  # fmt: skip
    itemknn, ease = experiment.runs
    assert [p for p, _ in itemknn.tuning] == [{"k": 10, "shrinkage": 0.0}, {"k": 10, "shrinkage": 10.0}]
    assert ease.tuning == [] and ease.params == {"l2": 9.0}
    assert any("[2/2] ease: the given parameters (l2)" in e and "nothing to tune" in e for e in events)
    assert "[1/2] fitting itemknn ..." in events and "[2/2] fitting ease ..." in events
    done = [e for e in events if " done in " in e]
    assert done[0].startswith("[1/2] itemknn done in ") and "left" in done[0]
    assert done[1].startswith("[2/2] ease done in ") and "all done in" in done[1]
