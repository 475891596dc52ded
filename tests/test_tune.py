"""`facetrec tune`: Optuna search on validation targets, pruning per epoch, seeds, and the best
setting's TOML read back by `train --config` and `evaluate --config`.

Assertions read return values, files or the --json document, never the table.
"""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest
from typer.testing import CliRunner

from facetrec import tuning
from facetrec.cli import app
from facetrec.data.split import Split, make_split
from facetrec.data.synthetic import SynthConfig, generate
from facetrec.errors import ConfigError
from facetrec.recommender import Recommender
from facetrec.scoring import registry
from facetrec.scoring.ease import EASEScorer
from facetrec.scoring.sasrec import SASRecScorer
from facetrec.training import on_epoch

runner = CliRunner()
SASREC = {"epochs": 2, "max_len": 20, "hidden": 16, "progress": False}


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("tune") / "synth"
    generate(SynthConfig(n_users=200, n_items=100, seed=0)).dataset.save(out)
    return out


@pytest.fixture(scope="module")
def data(synth):
    from facetrec.data.dataset import Dataset

    return Dataset.load(synth)


def tune_cli(*args: str):
    result = runner.invoke(app, ["tune", *args, "--json", "--no-track"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


class _Untouchable:
    """Stands in for the test targets: any use of them fails the test."""

    def __getattr__(self, name: str):
        raise AssertionError(f"the search read the test targets ({name})")


def test_the_search_scores_validation_targets_only(data, monkeypatch):
    real = make_split(data.interactions, "loo", 0)
    guarded = Split(real.protocol, real.train, real.valid, _Untouchable(), real.notes)  # type: ignore[arg-type]
    monkeypatch.setattr(tuning, "make_split", lambda interactions, protocol, seed: guarded)
    scored, fitted = [], []
    evaluate, fit = tuning.evaluate, EASEScorer.fit
    monkeypatch.setattr(tuning, "evaluate", lambda scorer, evalset, *a, **k: scored.append(evalset) or evaluate(
        scorer, evalset, *a, **k))  # fmt: skip
    monkeypatch.setattr(EASEScorer, "fit", lambda self, train, catalog=None, valid=None: fitted.append(
        (train, valid)) or fit(self, train, catalog, valid))  # fmt: skip

    result = tuning.tune(data, "ease", trials=2, seed=0)

    assert [t.state for t in result.trials] == ["COMPLETE", "COMPLETE"]
    assert len(scored) == 2 and all(evalset is real.valid for evalset in scored)
    assert all(train is real.train and valid is real.valid for train, valid in fitted)
    assert result.split is guarded
    best = result.best
    assert best is not None and best.score == max(t.score for t in result.trials)


def test_the_same_seed_tries_the_same_settings(data):
    def tried(seed: int) -> list[dict]:
        return [t.params for t in tuning.tune(data, "itemknn", trials=2, seed=seed).trials]

    first = tried(3)
    assert first == tried(3)
    assert first != tried(4)
    assert all(set(params) == {"k", "shrinkage"} for params in first)


def test_fixed_settings_are_not_searched(data):
    result = tuning.tune(data, "als", trials=2, seed=0, fixed={"factors": 8, "iterations": 2})
    assert [t.params["factors"] for t in result.trials] == [8, 8]
    assert len({t.params["regularization"] for t in result.trials}) == 2
    assert set(result.space) == {"regularization", "alpha"}


def test_on_epoch_sees_every_epoch_and_may_stop_training(data):
    split = make_split(data.interactions, "loo", 0)
    seen = []
    with on_epoch(lambda epoch, score: seen.append((epoch, score))):
        SASRecScorer(**SASREC).fit(split.train, data.catalog, split.valid)
    assert [epoch for epoch, _ in seen] == [0, 1]
    assert all(isinstance(score, float) and 0 <= score <= 1 for _, score in seen)

    class Stop(Exception):
        pass

    def stop(epoch, score):
        seen.append(epoch)
        raise Stop

    seen.clear()
    with pytest.raises(Stop), on_epoch(stop):
        SASRecScorer(**SASREC).fit(split.train, data.catalog, split.valid)
    assert seen == [0]


def test_sequence_models_report_each_epoch_and_can_be_pruned(data):
    completed = tuning.tune(data, "sasrec", trials=2, seed=0, fixed=SASREC)
    assert [t.state for t in completed.trials] == ["COMPLETE", "COMPLETE"]
    assert all(len(t.epochs) == 2 for t in completed.trials)  # one validation score per epoch

    pruned = tuning.tune(data, "sasrec", trials=2, seed=0, fixed=SASREC, pruner=optuna.pruners.ThresholdPruner(1.0))
    assert [t.state for t in pruned.trials] == ["PRUNED", "PRUNED"]
    assert all(len(t.epochs) == 1 and t.score is None for t in pruned.trials)  # stopped after its first epoch
    assert pruned.best is None
    with pytest.raises(ConfigError, match="no trial completed"):
        tuning.best_config_toml(pruned)


def test_best_ease_setting_round_trips_through_train_and_evaluate(synth, tmp_path):
    out = tmp_path / "best.toml"
    document = tune_cli("--model", "ease", "--dataset", str(synth), "--trials", "2", "--out", str(out))
    best = document["best"]
    assert document["model"] == "ease" and document["metric"] == "ndcg@10" and document["config"] == str(out)
    assert [t["state"] for t in document["trials"]] == ["COMPLETE", "COMPLETE"]
    assert best["score"] == max(t["score"] for t in document["trials"])
    assert set(best["params"]) == {"l2"} and 1 <= best["params"]["l2"] <= 1e4
    assert document["validation"]["users"] > 0 and document["tracking"] is None

    bundle = tmp_path / "bundle"
    trained = runner.invoke(app, ["train", "--config", str(out), "--dataset", str(synth), "--out", str(bundle)])
    assert trained.exit_code == 0, trained.output
    assert Recommender.load(bundle).scorer.config.l2 == best["params"]["l2"]

    evaluated = runner.invoke(
        app, ["evaluate", "--config", str(out), "--dataset", str(synth), "--json", "--no-track"], catch_exceptions=False
    )
    assert evaluated.exit_code == 0, evaluated.output
    [model] = json.loads(evaluated.stdout)["models"]
    assert model["model"] == "ease" and model["params"] == best["params"]


def test_best_sasrec_setting_round_trips_with_its_fixed_settings(synth, tmp_path):
    out = tmp_path / "sasrec.toml"
    fixed = ["--param", "sasrec.epochs=2", "--param", "sasrec.hidden=16", "--param", "sasrec.max_len=20"]
    document = tune_cli("--model", "sasrec", "--dataset", str(synth), "--trials", "2", "--out", str(out), *fixed)
    assert document["fixed"] == {"epochs": 2, "hidden": 16, "max_len": 20}
    assert set(document["space"]) == {"lr", "dropout", "batch_size"}
    assert all(len(t["epoch_scores"]) == 2 for t in document["trials"])
    params = document["best"]["params"]
    assert params["epochs"] == 2 and 1e-4 <= params["lr"] <= 3e-3 and 0.1 <= params["dropout"] <= 0.6

    evaluated = runner.invoke(
        app, ["evaluate", "--config", str(out), "--dataset", str(synth), "--json", "--no-track"], catch_exceptions=False
    )
    assert evaluated.exit_code == 0, evaluated.output
    [model] = json.loads(evaluated.stdout)["models"]
    assert model["model"] == "sasrec" and model["params"] == params
    bundle = tmp_path / "bundle"
    trained = runner.invoke(app, ["train", "--config", str(out), "--dataset", str(synth), "--out", str(bundle)])
    assert trained.exit_code == 0, trained.output
    config = Recommender.load(bundle).scorer.config
    assert (config.epochs, config.lr, config.dropout) == (2, params["lr"], params["dropout"])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", "popular"], ["unknown model kind 'popular'", "ease"]),
        (["--model", "pop"], ["model 'pop' has no search space", "register_space"]),
        (["--model", "ease", "--trials", "0"], ["--trials", "at least 1"]),
        (["--model", "ease", "--budget-minutes", "-1"], ["--budget-minutes", "more than 0"]),
        (["--model", "ease", "--param", "ease.l3=2"], ["unknown key 'l3'", "valid keys: l2"]),
        (["--model", "ease", "--param", "sasrec.lr=0.1"], ["names model 'sasrec'", "--model is 'ease'"]),
        (["--model", "ease", "--param", "ease.l2=5"], ["(l2) is fixed; nothing to tune"]),
        (["--model", "ease", "--metric", "ndcg"], ["unknown metric 'ndcg'"]),
        (["--model", "ease", "--protocol", "random"], ["unknown protocol 'random'"]),
    ],
)
def test_mistakes_are_errors_that_name_the_problem(synth, tmp_path, args, expected):
    out = tmp_path / "never.toml"
    result = runner.invoke(app, ["tune", "--dataset", str(synth), "--out", str(out), "--no-track", *args])
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    for fragment in expected:
        assert fragment in message
    assert not out.exists()


def test_a_registered_model_brings_its_own_search_space(data, monkeypatch):
    monkeypatch.setitem(registry.SCORERS, "my-ease", "")
    monkeypatch.setitem(registry.SEARCH_SPACES, "my-ease", [{}])
    monkeypatch.setitem(tuning.SPACES, "my-ease", {})
    registry.register("my-ease", EASEScorer, tuning_space={"l2": optuna.distributions.FloatDistribution(5.0, 6.0)})
    result = tuning.tune(data, "my-ease", trials=2, seed=0)
    assert all(5 <= t.params["l2"] <= 6 for t in result.trials)
    with pytest.raises(ConfigError, match="must be an Optuna distribution"):
        tuning.register_space("my-ease", {"l2": (1, 2)})  # type: ignore[dict-item]


def test_a_minimised_metric_is_searched_downwards(data):
    result = tuning.tune(data, "ease", trials=3, seed=0, metric="popularity@10")
    assert result.direction == "minimize"
    scores = [t.score for t in result.trials]
    assert result.best is not None and result.best.score == min(scores) and np.isfinite(scores).all()


def test_the_time_budget_stops_starting_trials(data):
    result = tuning.tune(data, "ease", trials=10_000, timeout=1.0, seed=0)
    assert 1 <= len(result.trials) < 10_000
    with pytest.raises(ConfigError, match="time budget must be > 0"):
        tuning.tune(data, "ease", timeout=-1.0)
    with pytest.raises(ConfigError, match="trials must be a whole number >= 1"):
        tuning.tune(data, "ease", trials=0)
