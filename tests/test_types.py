import numpy as np
import pytest

from facetrec.errors import DataError
from facetrec.ids import Vocabulary
from facetrec.types import MAX_LIST_LENGTH, Event, Interactions, ItemCatalog, ItemList, Query, UserState

USERS = Vocabulary(["u0", "u1"], "user")
ITEMS = Vocabulary(["a", "b", "c"], "item")


def make(**overrides):
    values = {
        "user_idx": [1, 0, 1, 0],
        "item_idx": [0, 1, 2, 0],
        "timestamp": [5, 2, 3, 9],
        "users": USERS,
        "items": ITEMS,
    }
    return Interactions(**{**values, **overrides})


def test_defaults_and_dtypes():
    data = make()
    assert data.user_idx.dtype == np.int32 and data.timestamp.dtype == np.int64
    assert data.event.tolist() == [Event.CLICK] * 4
    assert np.isnan(data.rating).all() and data.weight.tolist() == [1, 1, 1, 1]
    assert data.review is None


def test_sorted_orders_by_user_then_time_and_offsets_index_users():
    data = make().sorted()
    assert data.user_idx.tolist() == [0, 0, 1, 1]
    assert data.timestamp.tolist() == [2, 9, 3, 5]
    assert data.user_offsets().tolist() == [0, 2, 4]


def test_matrix_rows_are_users_and_sums_repeats():
    data = make(weight=[1, 2, 3, 4])
    m = data.matrix().toarray()
    assert m.shape == (2, 3)
    assert m.tolist() == [[4, 2, 0], [1, 0, 3]]
    with pytest.raises(DataError, match="values must be one of"):
        data.matrix("counts")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"item_idx": [0, 1, 3, 0]}, "item_idx: value 3 at position 2 is outside the item vocabulary"),
        ({"user_idx": [-1, 0, 1, 0]}, "user_idx: value -1 at position 0"),
        ({"timestamp": [1, 2, 3]}, "timestamp: length 3 does not match the 4 rows"),
        ({"weight": [1, np.nan, 1, 1]}, "weight: contains NaN"),
        ({"event": [0, 1, 9, 0]}, "event: codes must be in 0..5"),
        ({"item_idx": [0.5, 1, 2, 0]}, "item_idx: expected integers"),
        ({"user_idx": [[0, 1]]}, "expected a 1-d array"),
    ],
)
def test_interactions_validation_names_the_field(overrides, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make(**overrides)


def test_catalog_defaults_and_validation():
    catalog = ItemCatalog(ITEMS, text={"title": ["A", "", "C"]}, categories=[("x",), (), ("y", "z")])
    assert catalog.tags.tolist() == [(), (), ()]
    assert catalog.image.tolist() == [None, None, None]
    assert np.isnan(catalog.created_at).all()
    assert catalog.title(0) == "A" and catalog.title(1) == "b"  # falls back to the id
    with pytest.raises(DataError, match=r"text\['title'\]: length 2"):
        ItemCatalog(ITEMS, text={"title": ["A", "B"]})
    with pytest.raises(DataError, match="every value must be a str"):
        ItemCatalog(ITEMS, text={"title": ["A", None, "C"]})
    with pytest.raises(DataError, match="categories: every value must be a tuple"):
        ItemCatalog(ITEMS, categories=["x", "y", "z"])


def test_query_validation():
    query = Query(user_id=7, history=[1, 2], exclude=["3"])
    assert query.user_id == "7" and query.history == ("1", "2") and query.exclude == ("3",)
    for bad in (0, -1, MAX_LIST_LENGTH + 1, 2.5, True):
        with pytest.raises(DataError, match="Query.n: must be an integer from 1"):
            Query(user_id="u", n=bad)


def test_item_list_from_idx_and_duplicates():
    items = ItemList.from_idx(np.array([2, 0]), np.array([0.9, 0.1]), ITEMS, interest=np.array([1, 0]))
    assert items.ids.tolist() == ["c", "a"] and items.scores.dtype == np.float32
    assert items.fields["interest"].tolist() == [1, 0]
    with pytest.raises(DataError, match="appears more than once"):
        ItemList.from_idx(np.array([1, 1]), np.array([0.5, 0.4]), ITEMS)
    with pytest.raises(DataError, match=r"fields\['x'\]: length 1"):
        ItemList.from_idx(np.array([1, 2]), np.array([0.5, 0.4]), ITEMS, x=np.array([1]))


def test_item_embeddings_validation_and_normalize():
    from facetrec.types import ItemEmbeddings

    emb = ItemEmbeddings(np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]]), ITEMS, "test")
    assert emb.vectors.dtype == np.float32 and emb.dim == 2 and len(emb) == 3
    unit = emb.normalize()
    np.testing.assert_allclose(unit.vectors, [[0.6, 0.8], [0, 0], [1, 0]])
    assert unit.normalized and unit.encoder_id == "test"
    with pytest.raises(DataError, match=r"expected shape \(3, d\) for 3 items, got \(2, 2\)"):
        ItemEmbeddings(np.zeros((2, 2)), ITEMS, "x")
    with pytest.raises(DataError, match="NaN"):
        ItemEmbeddings(np.full((3, 2), np.nan), ITEMS, "x")


def test_user_state_validation():
    state = UserState(np.eye(2, 3), [0.25, 0.75], [4, 7, 9], np.full((2, 3), 1 / 3))
    assert state.k == 2 and state.interests.dtype == np.float32 and state.history_idx.dtype == np.int32
    with pytest.raises(DataError, match="sum to 1"):
        UserState(np.eye(2, 3), [0.5, 0.6], [4], np.ones((2, 1)))
    with pytest.raises(DataError, match=r"attention: expected shape \(2, 3\)"):
        UserState(np.eye(2, 3), [0.5, 0.5], [4, 7, 9], np.ones((2, 2)))
    with pytest.raises(DataError, match="interests: expected shape"):
        UserState(np.ones(3), [1.0], [], np.ones((1, 0)))
    with pytest.raises(DataError, match="NaN"):
        UserState(np.full((1, 3), np.nan), [1.0], [], np.ones((1, 0)))
    with pytest.raises(DataError, match="offsets"):
        UserState(np.eye(2, 3), [0.5, 0.5], [], np.ones((2, 0)), offsets=[0.0])
    with pytest.raises(DataError, match="offsets: must be finite"):
        UserState(np.eye(2, 3), [0.5, 0.5], [], np.ones((2, 0)), offsets=[0.0, -np.inf])


def test_user_state_interest_scores():
    dots = np.array([[2.0, -1.0], [0.5, 1.0]])
    weighted = UserState(np.eye(2, 3), [0.25, 0.75], [], np.ones((2, 0)))
    np.testing.assert_allclose(weighted.interest_scores(dots), [[0.5, -0.25], [0.375, 0.75]])
    shifted = UserState(np.eye(2, 3), [0.25, 0.75], [], np.ones((2, 0)), offsets=[-1.0, 2.0])
    np.testing.assert_allclose(shifted.interest_scores(dots), [[1.0, -2.0], [2.5, 3.0]])
