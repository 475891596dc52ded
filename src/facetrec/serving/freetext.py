"""Free text ("sci-fi and cooking") as a session history: the nearest items by text.

The facet model's item tower adapts *frozen* text vectors, so free text can be placed where
the items are without the model: encode it with the text encoder the scorer was fitted with
(``scorer.config.encoder``), centre it exactly as the scorer centred its item vectors
(:func:`facetrec.scoring.facet.centred`: subtract the catalogue mean, renormalise), and take the
items with the highest cosine. Those items then serve as an anonymous session's history.

The scorer keeps only the centred vectors, from which the catalogue mean cannot be recovered,
so the item vectors are encoded again here (once, on the first free-text request; the
language-model path reads the embedding cache the scorer filled, the lexical path refits the
same seeded TF-IDF + LSA on the same texts) and checked against ``scorer.content_``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from facetrec.errors import ConfigError
from facetrec.types import ItemCatalog

log = logging.getLogger(__name__)


class TextNotSupported(ConfigError):
    """The bundle's scorer has no text encoder to place free text with."""


class TextPlacer:
    """Encodes free text with a scorer's own item-text encoder and finds the nearest items."""

    def __init__(self, encode: Any, item_vectors: np.ndarray, mean: np.ndarray) -> None:
        self._encode, self.item_vectors, self.mean = encode, item_vectors, mean

    @classmethod
    def for_scorer(cls, scorer: Any, catalog: ItemCatalog) -> TextPlacer:
        """Rebuild the scorer's text encoder; TextNotSupported when it has none."""
        encoder = getattr(getattr(scorer, "config", None), "encoder", None)
        if not isinstance(encoder, str) or encoder == "none":
            what = f"encoder {encoder!r}" if isinstance(encoder, str) else f"scorer {type(scorer).__name__}"
            raise TextNotSupported(
                f"this bundle's {what} cannot embed free text; train with a text encoder (e.g. encoder = "
                "'lexical' or 'minilm') or send a list of item ids instead"
            )
        if encoder == "lexical":
            raw, encode = _lexical(catalog)
        else:
            raw, encode = _language_model(catalog, scorer.config)
        placer = cls(encode, *_centre(raw))
        content = getattr(scorer, "content_", None)
        if content is not None and content.shape == placer.item_vectors.shape:
            gap = float(np.abs(content - placer.item_vectors).max(initial=0.0))
            if gap > 1e-3:
                log.warning("free text: re-encoded item vectors differ from the scorer's by up to %.3g", gap)
        return placer

    def nearest(self, text: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(item indices, cosines) of the ``n`` items nearest to ``text``, best first; empty when
        the text shares nothing with the catalogue's vocabulary (a zero vector)."""
        vector = np.asarray(self._encode([text]), np.float32)[0]
        if not np.abs(vector).sum():
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        query = vector / max(float(np.linalg.norm(vector)), 1e-12) - self.mean
        query /= max(float(np.linalg.norm(query)), 1e-12)
        scores = self.item_vectors @ query
        top = np.argpartition(-scores, min(n, len(scores) - 1))[:n]
        top = top[np.lexsort((top, -scores[top]))]
        return top, scores[top]


def _centre(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(centred unit item vectors, the mean subtracted): facet.centred, keeping the mean."""
    norms = np.linalg.norm(raw, axis=1, keepdims=True)
    unit = np.divide(raw, norms, out=np.zeros_like(raw), where=norms > 0)
    present = np.abs(unit).sum(1) > 0
    mean = unit[present].mean(0) if present.any() else np.zeros(unit.shape[1], np.float32)
    out = np.where(present[:, None], unit - mean, 0.0)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    centred = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0).astype(np.float32)
    return centred, mean.astype(np.float32)


def _lexical(catalog: ItemCatalog) -> tuple[np.ndarray, Any]:
    """The seeded TF-IDF + LSA space content_knn.encode_items fits on the item texts."""
    from facetrec.content.lexical import LexicalEncoder
    from facetrec.content.text import TEMPLATES, item_texts

    texts = item_texts(catalog, TEMPLATES["default"])
    lexical = LexicalEncoder(svd_dim=max(1, min(128, len(texts) - 1))).fit(texts)
    return lexical.encode_dense(texts), lexical.encode_dense


def _language_model(catalog: ItemCatalog, config: Any) -> tuple[np.ndarray, Any]:
    """The sentence encoder content_knn.encode_items uses (items come from its embedding cache)."""
    from facetrec.content.encoders import SentenceTransformerEncoder
    from facetrec.scoring.content_knn import ContentKNNConfig, encode_catalog

    settings = ContentKNNConfig(encoder=config.encoder, max_tokens=config.max_tokens, store_dir=config.store_dir)
    onnx = config.encoder == "minilm-onnx-int8"
    model = None if config.encoder in ("minilm", "minilm-onnx-int8") else config.encoder
    lm = SentenceTransformerEncoder(
        model, backend="onnx" if onnx else "torch", quantize=onnx, max_length=config.max_tokens
    )
    return encode_catalog(catalog, settings).vectors, lm.encode
