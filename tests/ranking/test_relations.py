import json

import numpy as np
import pytest

from facetrec.errors import ConfigError
from facetrec.ids import Vocabulary
from facetrec.ranking.explain import with_relation
from facetrec.ranking.relations import ItemGraph, Relation
from facetrec.types import ItemCatalog, object_array


def catalog(rows: list[tuple[tuple[str, ...], str, tuple[str, ...]]], start: int = 0) -> ItemCatalog:
    """Items named i{start}.. with (categories, brand, tags) per row."""
    ids = [f"i{start + i}" for i in range(len(rows))]
    return ItemCatalog(
        Vocabulary(ids, "item"),
        text={"brand": object_array([b for _, b, _ in rows])},
        categories=object_array([c for c, _, _ in rows]),
        tags=object_array([t for _, _, t in rows]),
    )


ROWS = [
    (("Sci-Fi", "Thriller"), "Scott", ("space",)),  # 0
    (("Sci-Fi", "Drama"), "", ()),  # 1
    (("Drama",), "Scott", ("sci-fi",)),  # 2: the tag repeats a category name
    (("Comedy", "Drama"), "", ()),  # 3
    (("Sci-Fi", "Thriller", "Drama"), "Scott", ()),  # 4
    ((), "", ()),  # 5: no attributes
]


def test_attributes_from_categories_brands_and_tags_one_column_per_name():
    graph = ItemGraph.from_catalog(catalog(ROWS))
    assert graph.names == ("Sci-Fi", "Thriller", "Scott", "space", "Drama", "Comedy")
    assert graph.kinds == ("category", "category", "brand", "tag", "category", "category")
    assert graph.links.shape == (6, 6)
    assert set(graph.links[2].indices) == {graph.names.index("Drama"), 2, 0}  # 'sci-fi' is 'Sci-Fi'
    assert graph.links[5].nnz == 0
    drama, comedy = graph.idf[graph.names.index("Drama")], graph.idf[graph.names.index("Comedy")]
    assert comedy > drama  # one item has Comedy, four have Drama


def test_relation_is_the_history_item_sharing_most_weight_with_its_strongest_attributes():
    graph = ItemGraph.from_catalog(catalog(ROWS))
    found = graph.relations(np.array([4, 3, 5]), np.array([1, 0, 3]))
    assert found[0] == Relation(("Thriller", "Scott"), 0)  # 0 shares Sci-Fi, Thriller and Scott with 4
    assert found[1] == Relation(("Comedy", "Drama"), 3)
    assert found[2] is None  # item 5 has no attribute
    assert graph.relations(np.array([4]), np.array([], np.int64)) == [None]


def test_ties_go_to_the_latest_history_item():
    graph = ItemGraph.from_catalog(catalog([(("A",), "", ())] * 3))
    assert graph.relations(np.array([2]), np.array([0, 1]))[0] == Relation(("A",), 1)
    assert graph.relations(np.array([2]), np.array([1, 0]))[0] == Relation(("A",), 0)


def test_cold_scores_are_the_cosine_with_the_history_profile():
    graph = ItemGraph.from_catalog(catalog(ROWS))
    scores = graph.cold_scores(np.array([0]), np.array([0, 4, 1, 3, 5]))
    assert scores[0] == pytest.approx(1.0)
    assert 0 < scores[2] < scores[1] < 1  # 4 shares three attributes with 0, 1 shares one
    assert scores[3] == scores[4] == 0.0  # nothing shared; no attributes at all


def test_extend_keeps_columns_and_adds_new_attributes():
    graph = ItemGraph.from_catalog(catalog(ROWS))
    more = graph.extend(catalog([(("Horror", "Sci-Fi"), "Scott", ())], start=6))
    assert more.names[: len(graph.names)] == graph.names and more.names[-1] == "Horror"
    assert more.links.shape == (7, 7)
    assert (more.links[:6, :6] != graph.links).nnz == 0
    assert set(more.links[6].indices) == {0, 2, 6}
    assert more.relations(np.array([6]), np.array([3, 0]))[0].with_idx == 0


def test_save_load_round_trip_and_damage(tmp_path):
    graph = ItemGraph.from_catalog(catalog(ROWS))
    graph.save(tmp_path / "g")
    back = ItemGraph.load(tmp_path / "g", 6)
    assert back.names == graph.names and back.kinds == graph.kinds
    assert (back.links != graph.links).nnz == 0
    np.testing.assert_allclose(back.idf, graph.idf)
    with pytest.raises(ConfigError, match="expected 7 items"):
        ItemGraph.load(tmp_path / "g", 7)
    meta = json.loads((tmp_path / "g" / "graph.json").read_text())
    (tmp_path / "g" / "graph.json").write_text(json.dumps({**meta, "names": meta["names"][:2]}))
    with pytest.raises(ConfigError, match="damaged item graph"):
        ItemGraph.load(tmp_path / "g", 6)
    (tmp_path / "g" / "graph.safetensors").write_bytes(b"\x00" * 3)
    with pytest.raises(ConfigError, match="graph.safetensors"):
        ItemGraph.load(tmp_path / "g", 6)


def test_relation_sentence():
    assert with_relation("Because you liked Alien", ("Sci-Fi", "Thriller"), "Alien") == (
        "Because you liked Alien; shares 'Sci-Fi' and 'Thriller' with Alien"
    )
    assert with_relation("", ("Sci-Fi",), "Alien") == "Shares 'Sci-Fi' with Alien, which you liked"
