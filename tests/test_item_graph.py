"""The item-attribute graph through the Recommender: relation paths, cold items, bundles, the CLI."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from facetrec.cli import app
from facetrec.errors import ConfigError, FacetrecError
from facetrec.ids import Vocabulary
from facetrec.recommender import Recommender, fit_recommender, list_rows
from facetrec.serving.bundle import check_bundle
from facetrec.serving.retrain import retrain
from facetrec.serving.store import SQLiteHistoryStore
from facetrec.testing import small_synthetic
from facetrec.types import ItemCatalog, Query, object_array

USER = 3


@pytest.fixture(scope="module")
def data():
    return small_synthetic().dataset


@pytest.fixture(scope="module")
def fitted(data):
    return fit_recommender(data, "itemknn", encoder="lexical")


def user_id(data) -> str:
    return str(data.interactions.users.id_of(USER))


def new_items(data) -> ItemCatalog:
    """'cold-match' carries the user's most frequent category and tags; 'cold-other' an attribute nobody has."""
    history = data.interactions.item_idx[data.interactions.user_idx == USER]
    top = int(np.bincount(history).argmax())
    return ItemCatalog(
        Vocabulary(["cold-match", "cold-other"], "item"),
        text={"title": object_array(["A new match", "A new stranger"])},
        categories=object_array([data.catalog.categories[top], ("Knitting",)]),
        tags=object_array([data.catalog.tags[top], ("yarn",)]),
    )


def with_cold(data, fitted, cold_items: int) -> Recommender:
    rec = Recommender(fitted.scorer, fitted.catalog, fitted.history, fitted.ranking, cold_items=cold_items)
    rec.add_items(new_items(data))
    return rec


def test_explained_items_carry_a_relation_path(data, fitted):
    found = fitted.recommend(Query(user_id=user_id(data), n=10), explain=True)
    history = set(data.interactions.item_idx[data.interactions.user_idx == USER].tolist())
    rows = list_rows(fitted, found, [])
    assert all(row["relation"] is not None for row in rows)
    for idx, rel, row in zip(found.idx, found.fields["relation"], rows, strict=True):
        assert rel.with_idx in history and rel.shared
        names = {n.casefold() for n in (*data.catalog.categories[idx], *data.catalog.tags[idx])}
        other = {n.casefold() for n in (*data.catalog.categories[rel.with_idx], *data.catalog.tags[rel.with_idx])}
        assert {s.casefold() for s in rel.shared} <= names & other  # really shared by both
        title = data.catalog.title(rel.with_idx)
        assert row["explanation"].endswith(f"with {title}") and f"'{rel.shared[0]}'" in row["explanation"]
        assert row["relation"] == {"shared": list(rel.shared), "with": str(data.catalog.items.id_of(rel.with_idx))}
    plain = fitted.recommend(Query(user_id=user_id(data), n=10))
    assert "relation" not in plain.fields and list(plain.idx) == list(found.idx)


def test_add_items_extends_the_graph(data, fitted):
    rec = with_cold(data, fitted, 0)
    assert rec.graph.n_items == len(data.catalog) + 2
    assert rec.graph.names[: len(fitted.graph.names)] == fitted.graph.names
    assert {"Knitting", "yarn"} <= set(rec.graph.names)
    old = rec.graph.links[: len(data.catalog), : len(fitted.graph.names)]
    assert (old != fitted.graph.links).nnz == 0 and rec.graph.links[
        : len(data.catalog), len(fitted.graph.names) :
    ].nnz == 0
    other = rec.graph.links[len(data.catalog) + 1].indices
    assert {rec.graph.names[a] for a in other} == {"Knitting", "yarn"}


def test_cold_item_reached_through_the_graph_only_when_on(data, fitted):
    off = with_cold(data, fitted, 0)
    users = np.arange(data.interactions.n_users)
    for listing in off.recommend_batch(off.history, users, 10):
        assert not {"cold-match", "cold-other"} & set(listing.ids)  # the model cannot score them
    on = with_cold(data, fitted, 1)
    found = on.recommend(Query(user_id=user_id(data), n=10), explain=True)
    before = off.recommend(Query(user_id=user_id(data), n=10))
    assert len(found) == 10 and found.ids[-1] == "cold-match" and "cold-other" not in found.ids
    assert list(found.ids[:9]) == list(before.ids[:9])  # the model's list keeps its first places
    assert found.fields["interest"][-1] == -1 and found.fields["because"][-1] == ()
    assert (
        found.fields["explanation"][-1].startswith("Shares '") and "which you liked" in found.fields["explanation"][-1]
    )
    assert found.fields["relation"][-1] is not None
    batch = on.recommend_batch(on.history, np.array([USER]), 10)[0]
    assert batch.ids[-1] == "cold-match"  # evaluation ranks through the same path
    assert "cold-match" not in on.recommend(Query(user_id=user_id(data), n=10, exclude=("cold-match",))).ids


def test_graph_and_setting_round_trip_through_a_bundle(data, fitted, tmp_path):
    rec = with_cold(data, fitted, 2)
    rec.save(tmp_path / "b")
    assert (tmp_path / "b" / "relations" / "graph.safetensors").is_file()
    back = Recommender.load(tmp_path / "b")
    assert back.cold_items == 2 and back.graph.names == rec.graph.names
    assert (back.graph.links != rec.graph.links).nnz == 0
    query = Query(user_id=user_id(data), n=10)
    assert list(back.recommend(query).ids) == list(rec.recommend(query).ids)
    retrained, _ = retrain(tmp_path / "b", SQLiteHistoryStore(tmp_path / "events.sqlite"), tmp_path / "b2")
    assert Recommender.load(retrained.parent).cold_items == 2  # retraining keeps the setting
    (tmp_path / "b" / "relations" / "graph.safetensors").write_bytes(b"\x01")
    with pytest.raises(ConfigError, match="damaged item graph"):
        Recommender.load(tmp_path / "b")
    with pytest.raises(FacetrecError, match="graph.safetensors"):
        check_bundle(tmp_path / "b")  # refused before a server starts or a reload swaps


def test_cold_items_must_be_a_count(fitted):
    with pytest.raises(ConfigError, match="cold_items: must be an integer >= 0"):
        Recommender(fitted.scorer, fitted.catalog, fitted.history, cold_items=-1)


def test_cli_json_rows_carry_the_relation(data, fitted, tmp_path):
    fitted.save(tmp_path / "b")
    args = ["recommend", "--bundle", str(tmp_path / "b"), "--user", user_id(data), "--explain", "--json"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["items"]
    assert rows and all(row["relation"]["shared"] and row["relation"]["with"] for row in rows)


def test_train_cli_sets_the_cold_places(data, tmp_path):
    data.save(tmp_path / "data")
    args = ["train", "--dataset", str(tmp_path / "data"), "--model", "itemknn", "--out", str(tmp_path / "b")]
    result = CliRunner().invoke(app, [*args, "--encoder", "lexical", "--cold-items", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert Recommender.load(tmp_path / "b").cold_items == 2
