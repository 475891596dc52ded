"""Lexical encoder: stemmed bag of words weighted by TF-IDF or BM25, optionally reduced by LSA.

It is both a baseline (does a language model beat word overlap?) and the fallback that works
with no model on disk. Words are lower-cased regex tokens of two or more characters, English
stop words are removed (scikit-learn's list) and the rest stemmed with Snowball (PyStemmer), so
"runners" and "running" meet. Weights, with ``tf`` a term's count in a document, ``df`` the number
of fitted documents holding it, ``n`` their number and ``dl``/``avgdl`` a document's (mean) count
of in-vocabulary tokens:

* ``tfidf``: ``(1 + ln tf) * (ln((1 + n) / (1 + df)) + 1)``, scikit-learn's smoothed idf with
  sublinear tf, so a word said ten times is not ten times as telling;
* ``bm25``: ``ln(1 + (n - df + 0.5) / (df + 0.5)) * tf (k1 + 1) / (tf + k1 (1 - b + b dl / avgdl))``,
  Lucene's always-positive idf; tf saturates (``k1``) and long texts are discounted (``b``).

Rows are L2-normalised, so a dot product is a cosine. :meth:`LexicalEncoder.encode_dense` projects
onto the leading ``dim`` components of a seeded truncated SVD of the fitted corpus (LSA) for the
places that need dense vectors.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np
import scipy.sparse as sp

from facetrec.component import Component
from facetrec.content.base import TextEncoder
from facetrec.errors import ConfigError, DataError, DataWarning
from facetrec.ids import Vocabulary
from facetrec.types import ItemEmbeddings

KINDS = ("tfidf", "bm25")
_TOKEN = re.compile(r"(?u)\b\w\w+\b")


class Analyzer:
    """Text -> list of terms: regex words, lower-cased, stop words dropped, Snowball-stemmed."""

    def __init__(self, *, stem: bool = True, stop_words: bool = True) -> None:
        import Stemmer
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        self._stop = frozenset(ENGLISH_STOP_WORDS) if stop_words else frozenset()
        # PyStemmer caches recent words itself, so repeated vocabulary costs a dict lookup.
        self._stemmer = Stemmer.Stemmer("english", 100_000) if stem else None

    def __call__(self, text: str) -> list[str]:
        words = _TOKEN.findall(text.lower())
        if self._stop:
            words = [w for w in words if w not in self._stop]
        return self._stemmer.stemWords(words) if self._stemmer is not None else words


@dataclass(frozen=True)
class LexicalConfig:
    kind: str = "tfidf"
    """Term weighting: "tfidf" (sublinear tf, smoothed idf) or "bm25"."""
    min_df: int = 1
    """Keep terms found in at least this many fitted documents (2-5 drops typos and ids)."""
    max_df: float = 1.0
    """Drop terms found in more than this fraction of documents (corpus-specific stop words)."""
    max_features: int | None = None
    """Keep only this many most frequent terms (None: all); bounds memory on large catalogues."""
    k1: float = 1.2
    """BM25 term-frequency saturation: 0 counts presence only, larger trusts repetition more."""
    b: float = 0.75
    """BM25 length normalisation: 0 ignores document length, 1 divides by it fully."""
    stem: bool = True
    """Snowball-stem English words (PyStemmer)."""
    stop_words: bool = True
    """Remove scikit-learn's English stop words."""
    svd_dim: int = 128
    """Components of the LSA projection fitted with the vocabulary (0: none, no encode_dense)."""
    seed: int = 0
    """Seed of the randomized SVD, so dense vectors are reproducible."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"LexicalConfig.kind: must be one of {list(KINDS)}, got {self.kind!r}")
        if isinstance(self.min_df, bool) or self.min_df < 1:
            raise ConfigError(f"LexicalConfig.min_df: must be an integer >= 1, got {self.min_df!r}")
        if not 0.0 < self.max_df <= 1.0:
            raise ConfigError(f"LexicalConfig.max_df: must be in (0, 1], got {self.max_df!r}")
        if self.max_features is not None and self.max_features < 1:
            raise ConfigError(f"LexicalConfig.max_features: must be >= 1 or None, got {self.max_features!r}")
        if not self.k1 >= 0 or not 0.0 <= self.b <= 1.0:
            raise ConfigError(f"LexicalConfig: need k1 >= 0 and 0 <= b <= 1, got k1={self.k1!r}, b={self.b!r}")
        if self.svd_dim < 0:
            raise ConfigError(f"LexicalConfig.svd_dim: must be >= 0 (0 disables LSA), got {self.svd_dim!r}")


def idf_weights(df: np.ndarray, n: int, kind: str) -> np.ndarray:
    """Inverse document frequency of terms found in ``df`` of ``n`` documents (formulas above)."""
    if kind == "tfidf":
        return np.log((1.0 + n) / (1.0 + df)) + 1.0
    return np.log1p((n - df + 0.5) / (df + 0.5))


def tfidf_weights(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    """``(1 + ln tf) * idf`` on the stored entries of a document x term count matrix."""
    out = counts.astype(np.float64, copy=True)
    out.data = (1.0 + np.log(out.data)) * idf[out.indices]
    return out


def bm25_weights(counts: sp.csr_matrix, idf: np.ndarray, avgdl: float, k1: float, b: float) -> sp.csr_matrix:
    """BM25 term weights (see the module docstring) on a document x term count matrix."""
    out = counts.astype(np.float64, copy=True)
    dl = np.asarray(out.sum(axis=1)).ravel()
    row_dl = np.repeat(dl, np.diff(out.indptr))
    tf = out.data
    norm = k1 * (1.0 - b + b * row_dl / max(avgdl, 1e-12))
    out.data = idf[out.indices] * tf * (k1 + 1.0) / (tf + norm)
    return out


def l2_normalize_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to unit L2 norm; empty rows stay empty."""
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(scale) @ matrix)


class LexicalEncoder(Component[LexicalConfig]):
    """Fit a vocabulary (and LSA) on item texts; encode texts as sparse or dense vectors.

    ``LexicalEncoder(kind="bm25", min_df=2).fit(texts).encode(texts)`` gives a CSR matrix with
    unit rows; :meth:`encode_dense` gives float32 ``[n, dim]``. Save/load keep the vocabulary,
    idf and SVD components as arrays (no pickle).
    """

    config_class = LexicalConfig

    terms_utf8_: np.ndarray
    idf_: np.ndarray
    avgdl_: float
    n_docs_: int
    components_: np.ndarray
    fingerprint_: str

    def fit(self, texts: Iterable[str]) -> Self:
        """Learn the vocabulary, idf, mean length and (with ``svd_dim``) the LSA projection."""
        from sklearn.feature_extraction.text import CountVectorizer

        docs = _as_texts(texts, "fit")
        if not docs:
            raise DataError("LexicalEncoder.fit: got no texts; pass one text per item")
        cfg = self.config
        counter = CountVectorizer(
            analyzer=self._analyzer(),
            min_df=cfg.min_df,
            max_df=cfg.max_df,
            max_features=cfg.max_features,
            dtype=np.float64,
        )
        try:
            counts = sp.csr_matrix(counter.fit_transform(docs))
        except ValueError as exc:  # sklearn: "empty vocabulary" or "max_df corresponds to < documents than min_df"
            raise ConfigError(
                f"LexicalEncoder.fit: no terms survive on {len(docs)} texts (min_df={cfg.min_df}, "
                f"max_df={cfg.max_df}, stop words and stemming applied): {exc}"
            ) from None
        terms = [str(t) for t in counter.get_feature_names_out()]
        n = counts.shape[0]
        df = np.bincount(counts.indices, minlength=len(terms)).astype(np.float64)
        idf = idf_weights(df, n, cfg.kind)
        self.terms_utf8_ = np.frombuffer("\n".join(terms).encode(), dtype=np.uint8).copy()
        self.idf_ = idf
        self.avgdl_ = float(counts.sum() / n)
        self.n_docs_ = n
        self._vocab = {t: i for i, t in enumerate(terms)}
        self.components_ = self._fit_svd(self._weigh(counts)) if cfg.svd_dim else np.zeros((0, len(terms)), np.float32)
        digest = hashlib.sha256(repr(cfg).encode())  # settings (k1, b, stemming) change the vectors too
        digest.update(self.terms_utf8_.tobytes())
        digest.update(self.idf_.tobytes())
        digest.update(self.components_.tobytes())
        self.fingerprint_ = digest.hexdigest()[:12]
        return self

    def encode(self, texts: Iterable[str]) -> sp.csr_matrix:
        """Sparse ``[n_texts, n_terms]`` weights with unit-norm rows (all-zero for texts with no known term)."""
        self._require_fitted("encode")
        return self._weigh(self._count(_as_texts(texts, "encode")))

    def encode_dense(self, texts: Iterable[str], dim: int | None = None) -> np.ndarray:
        """LSA vectors: float32 ``[n_texts, dim]`` with unit-norm rows (zero rows for unknown words).

        ``dim`` (default ``svd_dim``) takes the leading components, which rank by singular value;
        a corpus with fewer components than ``dim`` pads with zero columns (fit warned about it).
        """
        self._require_fitted("encode_dense")
        dim = self._dense_dim(dim)
        comps = self.components_[:dim]
        dense = np.asarray(self.encode(texts) @ comps.T, dtype=np.float32)
        if dense.shape[1] < dim:
            dense = np.pad(dense, ((0, 0), (0, dim - dense.shape[1])))
        norms = np.linalg.norm(dense, axis=1, keepdims=True)
        return np.divide(dense, norms, out=np.zeros_like(dense), where=norms > 0)

    def encoder_id(self, dim: int | None = None) -> str:
        """Names the vectors, e.g. ``lexical-tfidf-svd128@<fingerprint>`` (sparse: ``dim=0``).

        The fingerprint hashes the fitted vocabulary, idf and components: LSA spaces fitted on
        different corpora are not comparable, so their cached vectors must not be mixed.
        """
        self._require_fitted("encoder_id")
        name = f"lexical-{self.config.kind}"
        if dim != 0 and not (dim is None and self.config.svd_dim == 0):
            name += f"-svd{self._dense_dim(dim)}"
        return f"{name}@{self.fingerprint_}"

    def item_embeddings(self, texts: Sequence[str], items: Vocabulary, dim: int | None = None) -> ItemEmbeddings:
        """Dense LSA vectors for ``texts`` aligned with ``items`` (e.g. ``item_texts(catalog)``)."""
        vectors = self.encode_dense(texts, dim)
        return ItemEmbeddings(vectors, items, self.encoder_id(vectors.shape[1]), "text", normalized=True)

    @property
    def terms(self) -> list[str]:
        """The vocabulary (stemmed terms) in column order."""
        self._require_fitted("terms")
        return list(self._vocabulary())

    # -- internals ---------------------------------------------------------------------------

    def _analyzer(self) -> Analyzer:
        return Analyzer(stem=self.config.stem, stop_words=self.config.stop_words)

    def _vocabulary(self) -> dict[str, int]:
        if getattr(self, "_vocab", None) is None:  # after load(): rebuilt from the saved bytes
            text = self.terms_utf8_.tobytes().decode()
            self._vocab = {t: i for i, t in enumerate(text.split("\n"))} if text else {}
        return self._vocab

    def _count(self, docs: list[str]) -> sp.csr_matrix:
        """Document x term counts over the fitted vocabulary (unknown terms are skipped)."""
        vocab, analyze = self._vocabulary(), self._analyzer()
        indices: list[int] = []
        indptr = [0]
        for doc in docs:
            indices.extend(j for j in map(vocab.get, analyze(doc)) if j is not None)
            indptr.append(len(indices))
        ones = np.ones(len(indices), dtype=np.float64)
        counts = sp.csr_matrix(
            (ones, np.asarray(indices, dtype=np.int64), np.asarray(indptr, dtype=np.int64)),
            shape=(len(docs), len(vocab)),
        )
        counts.sum_duplicates()  # repeated terms become one entry holding their count
        return counts

    def _weigh(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        cfg = self.config
        if cfg.kind == "tfidf":
            weighted = tfidf_weights(counts, self.idf_)
        else:
            weighted = bm25_weights(counts, self.idf_, self.avgdl_, cfg.k1, cfg.b)
        return l2_normalize_rows(weighted)

    def _fit_svd(self, weighted: sp.csr_matrix) -> np.ndarray:
        from sklearn.decomposition import TruncatedSVD

        n_docs, n_terms = weighted.shape
        k = min(self.config.svd_dim, n_docs, n_terms)
        if k < self.config.svd_dim:
            warnings.warn(
                f"LexicalEncoder: {n_docs} texts with {n_terms} terms support only {k} LSA components, "
                f"not svd_dim={self.config.svd_dim}; dense vectors are padded with zeros. Fit on more "
                "texts or lower svd_dim.",
                DataWarning,
                stacklevel=3,
            )
        svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=5, random_state=self.config.seed)
        svd.fit(weighted.astype(np.float32))  # float32 halves the time; LSA needs no more precision
        return _fix_signs(svd.components_).astype(np.float32)

    def _dense_dim(self, dim: int | None) -> int:
        if not self.config.svd_dim:
            raise ConfigError("LexicalEncoder: fitted with svd_dim=0, so no dense vectors; refit with svd_dim > 0")
        dim = self.config.svd_dim if dim is None else dim
        if isinstance(dim, bool) or not 1 <= dim <= self.config.svd_dim:
            raise ConfigError(
                f"LexicalEncoder: dim must be from 1 to svd_dim={self.config.svd_dim}, got {dim!r}; "
                "refit with a larger svd_dim for more dimensions"
            )
        return int(dim)


def _fix_signs(components: np.ndarray) -> np.ndarray:
    """Flip each component so its largest-magnitude entry is positive: SVD signs are arbitrary."""
    pivot = np.argmax(np.abs(components), axis=1)
    signs = np.sign(components[np.arange(len(components)), pivot])
    return components * np.where(signs == 0, 1.0, signs)[:, None]


def _as_texts(texts: Iterable[str], method: str) -> list[str]:
    if isinstance(texts, str):
        raise DataError(f"LexicalEncoder.{method}: expected a list of texts, got a single str; wrap it in a list")
    return ["" if t is None else str(t) for t in texts]


class LexicalTextEncoder(TextEncoder):
    """A fitted :class:`LexicalEncoder`'s dense LSA vectors behind the :class:`TextEncoder` contract.

    So code written for language-model encoders (the embedding cache, review embeddings) runs on
    the lexical baseline too. The encoder id carries the fitted corpus's fingerprint, so vectors
    from LSA spaces fitted on different texts never share a cache entry.
    """

    def __init__(self, lexical: LexicalEncoder, dim: int | None = None) -> None:
        lexical._require_fitted("LexicalTextEncoder")
        self.lexical, self._dim = lexical, lexical._dense_dim(dim)

    @property
    def encoder_id(self) -> str:
        return self.lexical.encoder_id(self._dim)

    @property
    def dim(self) -> int:
        return self._dim

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        return self.lexical.encode_dense(texts, self._dim)
