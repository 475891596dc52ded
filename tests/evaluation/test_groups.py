"""Item groups (exposure by category, brand and popularity bucket) and user groups (accuracy by
activity and attribute, with bootstrap intervals), alone and in an experiment's report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facetrec.data.dataset import Dataset
from facetrec.data.synthetic import SynthConfig, generate
from facetrec.errors import DataError
from facetrec.evaluation.experiment import run_experiment
from facetrec.evaluation.groups import (
    activity_groups,
    exposure_by_group,
    group_scores,
    item_groupings,
    user_groups,
)
from facetrec.evaluation.protocol import EvalConfig
from facetrec.evaluation.report import results_document, write_report
from facetrec.ids import Vocabulary
from facetrec.types import ItemCatalog, object_array


def catalog() -> ItemCatalog:
    return ItemCatalog(
        Vocabulary(np.array(["a", "b", "c", "d"]), "item"),
        text={"brand": object_array(["X", "X", "", "Y"])},
        categories=object_array([("sci-fi",), ("sci-fi", "drama"), ("drama",), ()]),
    )


def test_item_groupings_and_exposure_hand_computed() -> None:
    groupings = {g.name: g for g in item_groupings(catalog(), np.array([10, 5, 3, 2]))}
    assert list(groupings) == ["category", "brand", "popularity"]
    assert groupings["category"].labels == ("drama", "sci-fi") and groupings["brand"].labels == ("X", "Y")
    ranked = np.array([[0, 1], [1, 3], [2, -1]])  # slots: a, b, b, d, c
    shares = {s.group: s for s in exposure_by_group(ranked, 2, groupings["category"])}
    # b splits 1/2-1/2: sci-fi gets a + 2 x 1/2 = 2 of 5 slots, drama 2 x 1/2 + c = 2; d has none
    assert shares["sci-fi"].exposure == pytest.approx(2 / 5) and shares["drama"].exposure == pytest.approx(2 / 5)
    assert shares["sci-fi"].catalogue == pytest.approx(1.5 / 4)
    brand = [(s.group, s.exposure, s.catalogue) for s in exposure_by_group(ranked, 2, groupings["brand"])]
    assert brand == [("X", pytest.approx(3 / 5), 0.5), ("Y", pytest.approx(1 / 5), 0.25)]
    buckets = [(s.group, s.exposure) for s in exposure_by_group(ranked, 2, groupings["popularity"])]
    # head: a (10 >= 20 % of 20); tail: d, c (2 + 3 >= 4); middle: b
    assert sorted(buckets) == [("head", pytest.approx(1 / 5)), ("middle", 0.4), ("tail", pytest.approx(2 / 5))]


def test_activity_groups() -> None:
    labels = activity_groups(np.array([1, 2, 3, 4, 5, 6, 7, 8]), quantiles=2)
    # edges 1, 4.5 -> 4 (rounded half to even), 8: [1, 4) and [4, 8]
    assert labels.tolist() == ["history 1-3 events"] * 3 + ["history 4+ events"] * 5
    assert set(activity_groups(np.array([5, 5, 5]))) == {"history 5 events"}
    with pytest.raises(DataError, match="quantiles: must be >= 1"):
        activity_groups(np.array([1]), 0)


def test_group_scores_and_gap() -> None:
    values = np.array([1.0, 0.0, 1.0, 1.0, 0.5, np.nan, 0.2])
    labels = np.array(["F", "F", "M", "M", "M", "M", ""], dtype=object)
    scores, gap = group_scores(values, labels, resamples=500, seed=1)
    assert [(s.group, s.mean, s.users) for s in scores] == [("F", 0.5, 2), ("M", pytest.approx(2.5 / 3), 3)]
    for s in scores:
        assert s.ci_low <= s.mean <= s.ci_high
    assert scores[0].ci_low == 0.0 and scores[0].ci_high == 1.0  # two users: resamples are 0, 0.5 or 1
    assert (gap.best, gap.worst) == ("M", "F") and gap.gap == pytest.approx(2.5 / 3 - 0.5)
    assert gap.ci_low <= gap.gap <= gap.ci_high
    again = group_scores(values, labels, resamples=500, seed=1)
    assert again[1] == gap  # seeded: the same intervals
    _, none = group_scores(values[:2], labels[:2], resamples=10)
    assert none is None
    with pytest.raises(DataError, match="must be equal-length"):
        group_scores(values, labels[:3])


def test_user_groups_names() -> None:
    groups = user_groups({"gender": np.array(["F", "M"], dtype=object)}, np.array([3, 9]), None)
    assert list(groups) == ["activity", "gender"]
    with pytest.raises(
        DataError, match="user groups 'age' are not known for this dataset; available: activity, gender"
    ):
        user_groups({"gender": np.array(["F", "M"], dtype=object)}, np.array([3, 9]), ("age",))


def test_experiment_reports_groups(tmp_path: Path) -> None:
    data = generate(SynthConfig(n_users=300, n_items=120, seed=0)).dataset
    gender = np.where(np.arange(data.interactions.n_users) % 3 == 0, "F", "M").astype(object)
    data = Dataset(data.name, data.interactions, data.catalog, user_attributes={"gender": gender})
    config = EvalConfig(metrics=("ndcg@10", "arp@10", "long_tail_share@10", "exposure_gini@10"), bootstrap=100)
    experiment = run_experiment(data, ["pop", "itemknn"], config=config)
    document = json.loads(json.dumps(results_document(experiment)))
    rows = {row["model"]: row for row in document["models"]}
    assert set(rows["pop"]["user_groups"]) == {"activity", "gender"}
    women = rows["itemknn"]["user_groups"]["gender"]["groups"][0]
    run = experiment.runs[1]
    users = experiment.split.test.history.users.ids[run.test.users]
    mine = np.isin(users, data.interactions.users.ids[gender == "F"])
    assert women["group"] == "F" and women["users"] == int(mine.sum())
    assert women["mean"] == pytest.approx(np.nanmean(run.test.per_user["ndcg@10"][mine]), abs=1e-6)
    assert women["ci95"][0] <= women["mean"] <= women["ci95"][1]
    # popularity ranking piles exposure on the head: more than item-kNN does, and a higher Gini
    head = {model: rows[model]["exposure_by_group"]["popularity"] for model in rows}
    share = {model: next(s["exposure"] for s in head[model] if s["group"] == "head") for model in rows}
    assert share["pop"] > share["itemknn"]
    assert rows["pop"]["metrics"]["exposure_gini@10"] > rows["itemknn"]["metrics"]["exposure_gini@10"]
    assert rows["pop"]["metrics"]["long_tail_share@10"] < rows["itemknn"]["metrics"]["long_tail_share@10"]
    assert document["higher_is_better"]["arp@10"] is False and document["higher_is_better"]["long_tail_share@10"]
    report = (Path(write_report(experiment, tmp_path)[1])).read_text()
    assert "## ndcg@10 by user group: gender" in report and "Exposure share by popularity bucket" in report
    only = run_experiment(data, ["pop"], config=config, groups=("gender",))
    assert list(only.runs[0].user_groups) == ["gender"]
    with pytest.raises(DataError, match="user groups 'age' are not known"):
        run_experiment(data, ["pop"], config=config, groups=("age",))
