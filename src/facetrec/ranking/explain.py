"""Explanations: which interest an item serves, a short label for it, and the history behind it.

- An interest's **label** is made of its most characteristic terms: each history item's terms
  (catalogue categories; else tags; else title words) weighted by the interest's attention on
  that item, times the term's inverse document frequency in the catalogue, so that a term
  every item carries ("Drama") loses to one that sets the interest apart ("Sci-Fi").
- An item's **because** list holds the history items that most contributed: those the
  interest attends to, ranked by cosine similarity to the item times their attention (relative
  to the interest's largest).
- The **explanation** fills a template, e.g. "Because you liked Alien and The Thing (sci-fi, horror)",
  and names the item's relation path when it has one (:mod:`~facetrec.ranking.relations`):
  "...; shares 'Sci-Fi' and 'Thriller' with Alien".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from facetrec.errors import ConfigError
from facetrec.types import ItemCatalog

_STOP_WORDS = (
    "the and for with from that this your you are was were have has had not but all its into out our "
    "their them they his her she him who what when where which while about after before over under "
    "new one two three edition vol volume part"
)
_STOP = frozenset(_STOP_WORDS.split())
_WORD = re.compile(r"[^\W\d_][\w'-]{2,}")


@dataclass(frozen=True, eq=False)
class TermIndex:
    """Items x terms (binary CSR) with each term's name and inverse document frequency."""

    matrix: sp.csr_matrix
    names: tuple[str, ...]
    idf: np.ndarray
    source: str
    """Where the terms came from: "categories", "tags", "title" or "none"."""

    @classmethod
    def from_catalog(cls, catalog: ItemCatalog | None, n_items: int) -> TermIndex:
        """Terms from ``catalog``: categories if any item has one, else tags, else title words."""
        if catalog is not None:
            for source in ("categories", "tags"):
                values = getattr(catalog, source)
                if any(len(v) for v in values):
                    return cls._build([list(v) for v in values], n_items, source)
            titles = catalog.text.get("title")
            if titles is not None and any(titles):
                words = [sorted({w.lower() for w in _WORD.findall(t)} - _STOP) for t in titles]
                return cls._build(words, n_items, "title")
        return cls(sp.csr_matrix((n_items, 0)), (), np.zeros(0), "none")

    @classmethod
    def _build(cls, terms: list[list[str]], n_items: int, source: str) -> TermIndex:
        names = sorted({t for row in terms for t in row})
        lookup = {t: i for i, t in enumerate(names)}
        indptr = np.concatenate([[0], np.cumsum([len(row) for row in terms])]).astype(np.int64)
        cols = np.fromiter((lookup[t] for row in terms for t in row), dtype=np.int64, count=int(indptr[-1]))
        matrix = sp.csr_matrix((np.ones(len(cols)), cols, indptr), shape=(n_items, len(names)))
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        df = np.bincount(matrix.indices, minlength=len(names))
        idf = np.log((1.0 + n_items) / (1.0 + df)) + 1.0
        return cls(matrix, tuple(names), idf, source)


def interest_labels(
    attention: np.ndarray, history_idx: np.ndarray, terms: TermIndex, n_terms: int = 2, min_share: float = 0.1
) -> list[str]:
    """One label per interest (row of ``attention`` [k, len(history_idx)]): up to ``n_terms``
    terms, lower-cased and comma-separated, best first.

    A term's weight is its attention-weighted share among the interest's history terms times
    its idf; terms below ``min_share`` of the best one are left out. An interest whose history
    carries no term is labelled "interest j" (1-based).
    """
    k = attention.shape[0]
    fallback = [f"interest {j + 1}" for j in range(k)]
    if not terms.names or not len(history_idx):
        return fallback
    rows = terms.matrix[np.asarray(history_idx, dtype=np.int64)]
    counts = np.asarray(rows.sum(axis=1)).ravel()
    split = sp.diags(np.divide(1.0, counts, out=np.zeros(len(counts)), where=counts > 0)) @ rows
    weight = np.asarray(split.T @ np.asarray(attention, dtype=np.float64).T).T * terms.idf  # [k, T]
    labels = []
    for j in range(k):
        row = weight[j]
        top = np.lexsort((np.arange(len(row)), -row))[:n_terms]
        top = top[(row[top] > 0) & (row[top] >= min_share * row[top[0]])] if row[top[0]] > 0 else top[:0]
        labels.append(", ".join(terms.names[t].lower() for t in top) if top.size else fallback[j])
    return labels


def contributors(
    item_vectors: np.ndarray, history_vectors: np.ndarray, attention: np.ndarray, n: int = 2
) -> np.ndarray:
    """Positions into the history [len(items), <= n] of each item's top contributors, -1 padded.

    ``item_vectors`` [r, d] and ``history_vectors`` [h, d] are unit-norm; ``attention`` [r, h]
    is each item's interest's attention over the history. A history item contributes
    ``cosine * attention / max(attention)``; only positive contributions count, and when none
    is positive the most attended history item stands in.
    """
    r, h = attention.shape
    if h == 0:
        return np.full((r, 0), -1, dtype=np.int64)
    top_att = attention.max(axis=1, keepdims=True)
    rel_att = np.divide(attention, top_att, out=np.zeros_like(attention, dtype=np.float64), where=top_att > 0)
    contrib = (np.asarray(item_vectors, np.float64) @ np.asarray(history_vectors, np.float64).T) * rel_att
    order = np.argsort(-contrib, axis=1, kind="stable")[:, :n]
    best = np.take_along_axis(contrib, order, axis=1)
    out = np.where(best > 0, order, -1)
    none = (out < 0).all(axis=1)
    out[none, 0] = np.argmax(attention[none], axis=1)
    return out


def check_template(template: str) -> str:
    """``template`` if it formats with ``{items}`` and ``{label}``, else a ConfigError."""
    try:
        template.format(items="A", label="b")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"explain_template: {template!r} does not format ({exc}); use the fields {{items}} and {{label}}"
        ) from None
    if "{items}" not in template:
        raise ConfigError(f"explain_template: {template!r} must contain {{items}}")
    return template


def join_titles(titles: list[str]) -> str:
    """'A', 'A and B', 'A, B and C'."""
    if len(titles) <= 1:
        return "".join(titles)
    return ", ".join(titles[:-1]) + " and " + titles[-1]


def explanation(template: str, titles: list[str], label: str) -> str:
    """The template filled with the contributors' titles and the interest label."""
    return template.format(items=join_titles(titles), label=label)


def with_relation(text: str, shared: tuple[str, ...], title: str) -> str:
    """``text`` naming the attributes an item shares with the history item ``title``; an item
    without other evidence (``text`` empty) gets the relation alone, as its whole reason."""
    names = join_titles([f"'{name}'" for name in shared])
    return f"{text}; shares {names} with {title}" if text else f"Shares {names} with {title}, which you liked"
