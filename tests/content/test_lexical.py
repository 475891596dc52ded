"""Lexical encoder: analysis, TF-IDF and BM25 against hand-computed values, LSA, save/load."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from facetrec.content.lexical import Analyzer, LexicalEncoder, bm25_weights
from facetrec.errors import ConfigError, DataError, DataWarning, NotFittedError
from facetrec.ids import Vocabulary
from facetrec.types import ItemEmbeddings

# Words that are their own Snowball stems, so hand computation needs no stemmer.
CORPUS = ["cat cat dog", "dog fish", "fish fish fish bird"]

TOPICS = [
    "camera lens tripod photography shutter aperture",
    "lens aperture zoom camera sensor photography",
    "tripod shutter camera sensor zoom lens",
    "guitar chords melody piano rhythm music",
    "piano melody drums rhythm music concert",
    "drums guitar concert chords music melody",
]


def test_analyzer_lowercases_removes_stop_words_and_stems() -> None:
    analyze = Analyzer()
    assert analyze("Running runners ran") == ["run", "runner", "ran"]
    assert analyze("The cat and THE dog") == ["cat", "dog"]
    assert analyze("a I x 42 e-mail") == ["42", "mail"]  # one-letter tokens are dropped
    assert Analyzer(stem=False)("Running runners") == ["running", "runners"]
    assert Analyzer(stop_words=False)("the cat") == ["the", "cat"]


def test_tfidf_matches_hand_computed_values() -> None:
    encoder = LexicalEncoder(kind="tfidf", svd_dim=0).fit(CORPUS)
    assert encoder.terms == ["bird", "cat", "dog", "fish"]
    n = 3
    idf_cat = math.log((1 + n) / (1 + 1)) + 1  # cat in 1 document
    idf_dog = math.log((1 + n) / (1 + 2)) + 1  # dog in 2 documents
    w_cat = (1 + math.log(2)) * idf_cat  # tf 2, sublinear
    w_dog = 1.0 * idf_dog
    norm = math.hypot(w_cat, w_dog)
    row = encoder.encode(["cat cat dog"]).toarray()[0]
    np.testing.assert_allclose(row, [0.0, w_cat / norm, w_dog / norm, 0.0], rtol=1e-12)


def test_tfidf_agrees_with_scikit_learn() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [*TOPICS, "The runners were running; a runner ran!"]
    ours = LexicalEncoder(kind="tfidf", svd_dim=0).fit(texts).encode(texts)
    reference = TfidfVectorizer(analyzer=Analyzer(), sublinear_tf=True).fit_transform(texts)
    np.testing.assert_allclose(ours.toarray(), reference.toarray(), atol=1e-12)


def test_bm25_matches_hand_computed_values() -> None:
    k1, b = 1.2, 0.75
    encoder = LexicalEncoder(kind="bm25", k1=k1, b=b, svd_dim=0).fit(CORPUS)
    n, avgdl = 3, (3 + 2 + 4) / 3
    idf_cat = math.log(1 + (n - 1 + 0.5) / (1 + 0.5))
    idf_dog = math.log(1 + (n - 2 + 0.5) / (2 + 0.5))
    dl = 3

    def weight(idf: float, tf: int) -> float:
        return idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))

    w_cat, w_dog = weight(idf_cat, 2), weight(idf_dog, 1)
    assert w_cat == pytest.approx(1.3486, abs=1e-4)
    np.testing.assert_allclose(encoder.idf_, [idf_cat, idf_cat, idf_dog, idf_dog], rtol=1e-12)  # bird, cat, ...
    counts = sp.csr_matrix(np.array([[0, 2, 1, 0]], dtype=np.float64))
    raw = bm25_weights(counts, encoder.idf_, encoder.avgdl_, k1, b).toarray()[0]
    np.testing.assert_allclose(raw, [0.0, w_cat, w_dog, 0.0], rtol=1e-12)
    norm = math.hypot(w_cat, w_dog)
    np.testing.assert_allclose(encoder.encode(["cat cat dog"]).toarray()[0], [0, w_cat / norm, w_dog / norm, 0])


def test_bm25_saturates_repetition_and_discounts_long_documents() -> None:
    encoder = LexicalEncoder(kind="bm25", svd_dim=0).fit(CORPUS)
    counts = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 10, 0, 0], [0, 1, 0, 30]], dtype=np.float64))
    w = bm25_weights(counts, encoder.idf_, encoder.avgdl_, 1.2, 0.75).toarray()[:, 1]
    assert w[1] < 2.2 * encoder.idf_[1] and w[1] < 10 * w[0]  # tf saturates below (k1 + 1) * idf
    assert w[2] < w[0]  # the same single "cat" counts less in a long document


def test_vocabulary_options_and_unit_rows() -> None:
    encoder = LexicalEncoder(min_df=2, svd_dim=0).fit(CORPUS)
    assert encoder.terms == ["dog", "fish"]
    assert LexicalEncoder(max_features=1, svd_dim=0).fit(CORPUS).terms == ["fish"]
    matrix = encoder.encode([*CORPUS, "unknown words only"])
    assert isinstance(matrix, sp.csr_matrix) and matrix.shape == (4, 2)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    np.testing.assert_allclose(norms, [1, 1, 1, 0])


def test_encode_before_fit_says_what_to_call() -> None:
    encoder = LexicalEncoder()
    for method in (encoder.encode, encoder.encode_dense):
        with pytest.raises(NotFittedError, match=r"call \.fit"):
            method(["text"])


def test_bad_configs_and_inputs_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="kind"):
        LexicalEncoder(kind="word2vec")
    with pytest.raises(ConfigError, match="unknown key 'min_dff'"):
        LexicalEncoder(min_dff=2)
    with pytest.raises(ConfigError, match="no terms survive"):
        LexicalEncoder().fit(["the and of", "a an"])
    with pytest.raises(DataError, match="single str"):
        LexicalEncoder().fit("one text")


def test_lsa_vectors_have_the_right_shape_and_are_deterministic() -> None:
    first = LexicalEncoder(svd_dim=3, seed=7).fit(TOPICS)
    second = LexicalEncoder(svd_dim=3, seed=7).fit(TOPICS)
    dense = first.encode_dense(TOPICS)
    assert dense.shape == (6, 3) and dense.dtype == np.float32
    np.testing.assert_array_equal(dense, second.encode_dense(TOPICS))
    np.testing.assert_allclose(np.linalg.norm(dense, axis=1), 1.0, rtol=1e-5)
    assert first.encode_dense(TOPICS, dim=2).shape == (6, 2)
    np.testing.assert_array_equal(first.encode_dense(["nothing known here"]), np.zeros((1, 3), np.float32))


def test_lsa_groups_documents_by_topic() -> None:
    dense = LexicalEncoder(svd_dim=2).fit(TOPICS).encode_dense(TOPICS)
    sim = dense @ dense.T
    within = min(sim[:3, :3].min(), sim[3:, 3:].min())
    assert within > sim[:3, 3:].max()


def test_lsa_limits_are_explicit() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LexicalEncoder(svd_dim=3).fit(TOPICS)  # enough texts and terms: no warning
    with pytest.warns(DataWarning, match="only 3 LSA components"):
        small = LexicalEncoder(svd_dim=8).fit(CORPUS)
    padded = small.encode_dense(CORPUS)
    assert padded.shape == (3, 8) and not padded[:, 3:].any()
    with pytest.raises(ConfigError, match="dim must be from 1 to svd_dim=8"):
        small.encode_dense(CORPUS, dim=9)
    with pytest.raises(ConfigError, match="svd_dim=0"):
        LexicalEncoder(svd_dim=0).fit(CORPUS).encode_dense(CORPUS)


def test_item_embeddings_and_encoder_id() -> None:
    encoder = LexicalEncoder(svd_dim=4).fit(TOPICS)
    embeddings = encoder.item_embeddings(TOPICS, Vocabulary([f"i{k}" for k in range(6)], "item"))
    assert isinstance(embeddings, ItemEmbeddings) and embeddings.normalized and embeddings.dim == 4
    assert embeddings.encoder_id == f"lexical-tfidf-svd4@{encoder.fingerprint_}"
    assert encoder.encoder_id(dim=0) == f"lexical-tfidf@{encoder.fingerprint_}"
    other = LexicalEncoder(svd_dim=4).fit(TOPICS[:5])
    assert other.encoder_id() != encoder.encoder_id()  # a different corpus is a different space


def test_save_and_load_reproduce_the_encoder(tmp_path) -> None:
    encoder = LexicalEncoder(kind="bm25", svd_dim=3).fit(TOPICS)
    encoder.save(tmp_path / "lexical")
    loaded = LexicalEncoder.load(tmp_path / "lexical")
    assert loaded.config == encoder.config and loaded.terms == encoder.terms
    queries = ["camera lens zoom", "music melody", "unrelated"]
    np.testing.assert_array_equal(loaded.encode(queries).toarray(), encoder.encode(queries).toarray())
    np.testing.assert_array_equal(loaded.encode_dense(queries), encoder.encode_dense(queries))
    assert loaded.encoder_id() == encoder.encoder_id()


def test_lexical_text_encoder_follows_the_text_encoder_contract() -> None:
    from facetrec.content.lexical import LexicalTextEncoder
    from facetrec.errors import NotFittedError

    lexical = LexicalEncoder(svd_dim=3).fit(TOPICS)
    encoder = LexicalTextEncoder(lexical, dim=2)
    assert encoder.dim == 2 and encoder.encoder_id == lexical.encoder_id(2)
    np.testing.assert_allclose(encoder.encode(TOPICS, batch_size=4), lexical.encode_dense(TOPICS, 2), atol=1e-6)
    with pytest.raises(NotFittedError):
        LexicalTextEncoder(LexicalEncoder())
