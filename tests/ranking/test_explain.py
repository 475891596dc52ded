import numpy as np

from facetrec.ids import Vocabulary
from facetrec.ranking import Ranker, TermIndex, contributors, interest_labels
from facetrec.types import ItemCatalog, UserState, object_array


def test_labels_name_the_characteristic_categories():
    items = Vocabulary(list("abcdef"), "item")
    catalog = ItemCatalog(
        items=items,
        categories=object_array(
            [("Sci-Fi", "Drama"), ("Horror", "Drama"), ("Sci-Fi", "Horror"), ("Comedy", "Drama"), ("Jazz",), ("Drama",)]
        ),
    )
    terms = TermIndex.from_catalog(catalog, 6)
    assert terms.source == "categories"
    attention = np.array([[0.4, 0.2, 0.4, 0.0], [0.0, 0.0, 0.0, 1.0]])
    labels = interest_labels(attention, np.array([0, 1, 2, 4]), terms)
    # Drama is on 4 of 6 items, so despite its mass it loses to the rarer Sci-Fi and Horror
    assert labels == ["sci-fi, horror", "jazz"]


def test_labels_fall_back_to_title_words_then_to_numbers():
    items = Vocabulary(list("abc"), "item")
    titles = np.array(["Alien Resurrection", "Alien Nation", "Jazz Night"], dtype=object)
    terms = TermIndex.from_catalog(ItemCatalog(items=items, text={"title": titles}), 3)
    assert terms.source == "title"
    assert interest_labels(np.array([[0.5, 0.5]]), np.array([0, 1]), terms, n_terms=1) == ["alien"]
    assert interest_labels(np.ones((2, 0)), np.zeros(0, np.int64), terms) == ["interest 1", "interest 2"]


def test_contributors_rank_history_by_similarity_within_the_interest():
    history = np.eye(3)
    items = np.array([[0.8, 0.6, 0.0], [0.0, 0.0, -1.0]])
    attention = np.array([[0.5, 0.5, 0.0], [0.2, 0.8, 0.0]])
    top = contributors(items, history, attention, n=2)
    assert top[0].tolist() == [0, 1]
    assert top[1].tolist() == [1, -1]  # nothing similar: the most attended history item stands in


def test_explanations_name_real_history_items_of_the_serving_interest(planted):
    ranker = Ranker(diversity="quotas", lam=0.0).fit(planted.vectors, planted.catalog)
    history = np.array([0, 1, 2, 25, 26, 60])  # cluster 0, cluster 1, one comedy
    state = planted.state([0, 1], [0.5, 0.5], history)
    out = ranker.rank(state, 6, explain=True)
    assert set(out.fields) == {"interest", "explanation", "because"}
    assert ranker.label_interests(state) == ["sci-fi", "horror"]
    for item, j, because, text in zip(out.idx, out.fields["interest"], out.fields["because"], out.fields["explanation"],
                                      strict=True):  # fmt: skip
        assert planted.cluster[item] == [0, 1][j]
        assert 1 <= len(because) <= 2
        assert set(because) <= set(history.tolist())
        assert all(planted.cluster[h] == planted.cluster[item] for h in because)
        label = ["sci-fi", "horror"][j]
        titles = " and ".join(planted.catalog.title(h) for h in because)
        assert text == f"Because you liked {titles} ({label})"


def test_explanations_from_a_single_score_vector(planted):
    ranker = Ranker(explain_template="Since you watched {items}", explain_items=1).fit(planted.vectors, planted.catalog)
    history = np.array([0, 80])
    out = ranker.rank_scores(planted.vectors @ planted.centres[3], 3, history_idx=history, explain=True)
    assert all(b == (80,) for b in out.fields["because"])
    assert out.fields["explanation"][0] == f"Since you watched {planted.catalog.title(80)}"
    assert out.fields["interest"].tolist() == [0, 0, 0]
    assert "explanation" not in ranker.rank_scores(np.ones(100), 3).fields
    state = UserState(planted.centres[[0, 3]], [0.5, 0.5], history, np.array([[1.0, 0.0], [0.0, 1.0]]))
    with_state = ranker.rank_scores(planted.vectors @ planted.centres[3], 3, state=state, explain=True)
    assert with_state.fields["interest"].tolist() == [1, 1, 1]


def test_no_history_gives_empty_explanations_and_numbered_labels(planted):
    ranker = Ranker().fit(planted.vectors, planted.catalog)
    state = planted.state([0, 2], [0.5, 0.5])
    out = ranker.rank(state, 4, explain=True)
    assert out.fields["because"].tolist() == [()] * 4
    assert out.fields["explanation"].tolist() == [""] * 4
    assert ranker.label_interests(state) == ["interest 1", "interest 2"]
