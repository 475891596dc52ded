"""Item encoders: one component per modality that turns the catalogue into :class:`ItemEmbeddings`.

The text encoder builds each item's text from the catalogue (content/text.py templates) and
encodes it with a language model (``minilm``, its ONNX int8 path, or any sentence-transformers
model by local path or hub name) or the lexical TF-IDF + LSA encoder (no model needed). Models
that read text (content-kNN, sasrec-text, the facet model) and the bundle share one encoding per
process (a memo keyed by the settings and the texts) and, with ``store_dir``, one on-disk cache
keyed by content hash, so nothing is encoded twice.

A bundle stores the embeddings (``embeddings/text.safetensors`` plus ``text.json``: the encoder
settings, its id and the item ids' digest) so the service loads them instead of re-encoding,
encodes only a free-text query, and encodes only the new items when the catalogue grows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from facetrec import __version__
from facetrec.component import read_json
from facetrec.config import from_dict, to_dict
from facetrec.content.base import l2_normalize
from facetrec.errors import ConfigError, DataError
from facetrec.ids import Vocabulary
from facetrec.types import Interactions, ItemCatalog, ItemEmbeddings

LANGUAGE_MODELS = ("minilm", "minilm-onnx-int8")
"""Encoder names with a meaning of their own; anything else but "lexical" is a model path or name."""
_MEMO_SIZE = 4


@dataclass(frozen=True)
class TextEncoderConfig:
    """How item texts are built and encoded."""

    encoder: str = "minilm"
    """"minilm" (bundled all-MiniLM-L6-v2), "minilm-onnx-int8" (its fast CPU path), "lexical"
    (TF-IDF + LSA, no model needed), or a sentence-transformers model by local path or hub name."""
    template: str = "default"
    """Item-text template (content/text.py TEMPLATES): "default", "amazon", "goodbooks", "ml" or "mind"."""
    max_tokens: int = 128
    """Item texts are truncated to this many tokens before encoding (language models only)."""
    batch_size: int = 64
    store_dir: str | None = None
    """Embedding cache directory: texts already encoded there are not encoded again."""

    def __post_init__(self) -> None:
        from facetrec.content.text import TEMPLATES

        if not isinstance(self.encoder, str) or not self.encoder:
            raise ConfigError(f"TextEncoderConfig.encoder: must be a non-empty name or path, got {self.encoder!r}")
        if self.template not in TEMPLATES:
            raise ConfigError(f"TextEncoderConfig.template: must be one of {list(TEMPLATES)}, got {self.template!r}")
        if self.max_tokens < 8 or self.batch_size < 1:
            raise ConfigError("TextEncoderConfig: max_tokens >= 8 and batch_size >= 1 required")


class TextItemEncoder:
    """The text :class:`ItemEncoder`: catalogue -> text ItemEmbeddings, and free text -> a vector.

    ``encode(catalog)`` returns raw (unit-norm for language models) vectors, row i for item i;
    ``encode_texts(texts)`` puts other texts (a free-text query, new items) in the same space.
    The lexical encoder is fitted on the item texts of the catalogue it first encodes.
    """

    modality: ClassVar[str] = "text"

    def __init__(self, config: TextEncoderConfig | None = None, **overrides: Any) -> None:
        base = config or TextEncoderConfig()
        self.config = (
            from_dict(TextEncoderConfig, {**to_dict(base), **overrides}, "text encoder") if overrides else base
        )
        self._lexical: Any = None
        self._lm: Any = None
        self.fitted_items: int | None = None
        """How many leading catalogue items the lexical encoder was fitted on (it is refitted on
        exactly those after loading; items added later are encoded, never fitted on)."""

    @classmethod
    def from_settings(cls, settings: Any) -> TextItemEncoder:
        """The encoder a model's config describes: its ``encoder``, ``max_tokens``, ``store_dir``
        and (content-kNN) ``template``; the model's own batch size is a training setting, not this."""
        fields = {name: getattr(settings, name) for name in ("encoder", "template", "max_tokens", "store_dir")
                  if hasattr(settings, name)}  # fmt: skip
        return cls(from_dict(TextEncoderConfig, fields, f"{type(settings).__name__} text encoder"))

    def __repr__(self) -> str:
        return f"TextItemEncoder({self.config!r})"

    @property
    def is_lexical(self) -> bool:
        return self.config.encoder == "lexical"

    def texts(self, catalog: ItemCatalog) -> list[str]:
        """One text per item, cut to the model's token budget."""
        from facetrec.content.text import TEMPLATES, item_texts

        template = TEMPLATES[self.config.template]
        if self.is_lexical:
            return item_texts(catalog, template)
        return item_texts(
            catalog, template, tokenizer=self.language_model().model_path, max_tokens=self.config.max_tokens
        )

    def encode(self, catalog: ItemCatalog, *, progress: bool = False) -> ItemEmbeddings:
        """Text embeddings of every catalogue item (memoised per process for equal settings and texts)."""
        texts = self.texts(catalog)
        c = self.config  # batch size and cache folder do not change the vectors
        key = (f"{c.encoder}|{c.template}|{c.max_tokens}", _digest(texts), _digest(catalog.items.ids.tolist()))
        if self.is_lexical:
            self.fitted_items = len(texts)
        if key in _MEMO:
            found, fitted = _MEMO[key]
            self._lexical = self._lexical or fitted
            return found
        if self.is_lexical:
            self._lexical = self.fit_lexical(texts)
            embeddings = self._lexical.item_embeddings(texts, catalog.items)
        else:
            from facetrec.content.store import EmbeddingStore, embed_items

            store = EmbeddingStore(self.config.store_dir) if self.config.store_dir else None
            embeddings = embed_items(
                self.language_model(), texts, catalog.items, store, batch_size=self.config.batch_size, progress=progress
            )
        _remember(key, (embeddings, self._lexical))
        return embeddings

    def encode_reviews(self, catalog: ItemCatalog, reviews: Interactions) -> ItemEmbeddings | None:
        """Per-item review embeddings from the review text in ``reviews`` (None when there is none)."""
        from facetrec.content.reviews import review_embeddings, review_texts

        if self.is_lexical:
            from facetrec.content.lexical import LexicalTextEncoder

            corpus = [t for t in review_texts(reviews) if t]
            if not corpus:
                return None
            encoder = LexicalTextEncoder(self.fit_lexical(corpus))  # reviews get their own LSA space
            return review_embeddings(reviews, encoder, batch_size=self.config.batch_size)
        from facetrec.content.store import EmbeddingStore

        store = EmbeddingStore(self.config.store_dir) if self.config.store_dir else None
        return review_embeddings(reviews, self.language_model(), store=store, batch_size=self.config.batch_size)

    def encode_texts(self, texts: list[str], catalog: ItemCatalog | None = None) -> np.ndarray:
        """Vectors [len(texts), d] in the item space. After loading, the lexical encoder is refitted
        on the first ``fitted_items`` items of ``catalog`` (the ones it was fitted on)."""
        if self.is_lexical:
            if self._lexical is None:
                if catalog is None or self.fitted_items is None:
                    raise ConfigError("the lexical encoder must see the catalogue it was fitted on: pass catalog=")
                self._lexical = self.fit_lexical(self.texts(catalog)[: self.fitted_items])
            return np.asarray(self._lexical.encode_dense(texts), np.float32)
        return self.language_model().encode(texts, batch_size=self.config.batch_size)

    def language_model(self) -> Any:
        """The sentence encoder (loaded once)."""
        if self.is_lexical:
            raise ConfigError("the lexical text encoder has no language model")
        if self._lm is None:
            from facetrec.content.encoders import SentenceTransformerEncoder

            onnx = self.config.encoder == "minilm-onnx-int8"
            model = None if self.config.encoder in LANGUAGE_MODELS else self.config.encoder
            self._lm = SentenceTransformerEncoder(
                model, backend="onnx" if onnx else "torch", quantize=onnx, max_length=self.config.max_tokens
            )
        return self._lm

    @staticmethod
    def fit_lexical(texts: list[str]) -> Any:
        """The lexical encoder fitted on ``texts`` (batch jobs fit it once and apply it per block)."""
        from facetrec.content.lexical import LexicalEncoder

        return LexicalEncoder(svd_dim=max(1, min(128, len(texts) - 1))).fit(texts)  # LSA cannot exceed it


_MEMO: dict[tuple[str, str, str], tuple[ItemEmbeddings, Any]] = {}


def _remember(key: tuple[str, str, str], value: tuple[ItemEmbeddings, Any]) -> None:
    if len(_MEMO) >= _MEMO_SIZE:
        _MEMO.pop(next(iter(_MEMO)))
    _MEMO[key] = value


def _digest(values: list[str]) -> str:
    return hashlib.sha256("\x1f".join(values).encode()).hexdigest()


def encode_items(
    catalog: ItemCatalog, settings: Any, reviews: Interactions | None = None
) -> tuple[ItemEmbeddings, ItemEmbeddings | None]:
    """(text, review) item embeddings for a model's text settings; review ones only for
    ``reviews`` (the training interactions). Items without reviews get all-zero review rows."""
    encoder = TextItemEncoder.from_settings(settings)
    text = encoder.encode(catalog)
    return text, (None if reviews is None else encoder.encode_reviews(catalog, reviews))


# ---------------------------------------------------------------------- in a bundle


def save_embeddings(directory: str | Path, encoder: TextItemEncoder, embeddings: ItemEmbeddings) -> Path:
    """Write ``{modality}.safetensors`` and ``{modality}.json`` (settings, id, digest) into ``directory``."""
    from safetensors.numpy import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    save_file({"vectors": np.ascontiguousarray(embeddings.vectors)}, str(out / f"{embeddings.modality}.safetensors"))
    meta = {
        "modality": embeddings.modality,
        "encoder": to_dict(encoder.config),
        "encoder_id": embeddings.encoder_id,
        "normalized": embeddings.normalized,
        "items": len(embeddings.items),
        "fitted_items": encoder.fitted_items,
        "items_sha256": _digest(embeddings.items.ids.tolist()),
        "facetrec_version": __version__,
    }
    path = out / f"{embeddings.modality}.json"
    path.write_text(json.dumps(meta, indent=2) + "\n")
    return path


def load_embeddings(
    directory: str | Path, catalog: ItemCatalog, modality: str = "text"
) -> tuple[TextItemEncoder, ItemEmbeddings]:
    """(encoder, embeddings) as :func:`save_embeddings` wrote them, checked against the catalogue."""
    from safetensors.numpy import load_file

    root = Path(directory)
    meta_path = root / f"{modality}.json"
    if not meta_path.is_file():
        raise ConfigError(f"{root}: no {modality} embeddings in this bundle")
    meta = read_json(meta_path)
    items = catalog.items
    if meta.get("items_sha256") != _digest(items.ids.tolist()):
        raise DataError(f"{meta_path}: the embeddings were made for other items than the bundle's catalogue")
    vectors = load_file(str(root / f"{modality}.safetensors"))["vectors"]
    encoder = TextItemEncoder(from_dict(TextEncoderConfig, meta["encoder"], str(meta_path)))
    encoder.fitted_items = meta.get("fitted_items")
    embeddings = ItemEmbeddings(vectors, items, meta["encoder_id"], meta["modality"], meta["normalized"])
    return encoder, embeddings


def extend(embeddings: ItemEmbeddings, items: Vocabulary, vectors: np.ndarray) -> ItemEmbeddings:
    """``embeddings`` with rows for the items of ``items`` beyond its own (their ``vectors``)."""
    added = len(items) - len(embeddings.items)
    if added < 0 or np.asarray(vectors).shape != (added, embeddings.dim):
        raise DataError(f"extend: expected {max(added, 0)} new vectors of dimension {embeddings.dim}")
    stacked = np.vstack([embeddings.vectors, np.asarray(vectors, np.float32)])
    return replace(embeddings, vectors=stacked, items=items)


def centre(vectors: np.ndarray, mean: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(unit rows with ``mean`` removed, ``mean``); zero rows (missing text) stay zero.

    Sentence-encoder vectors share one large common direction, so every item looks alike to a
    model reading them, and every free-text query finds the same generic items; removing the
    catalogue's mean direction is the usual remedy. ``mean`` defaults to the mean of the present
    rows; pass the catalogue's to centre rows added later (new items, a query) alike.
    """
    present = np.abs(vectors).sum(1) > 0
    if mean is None:
        mean = vectors[present].mean(0) if present.any() else np.zeros(vectors.shape[1], np.float32)
    return l2_normalize(np.where(present[:, None], vectors - mean, 0.0)), np.asarray(mean, np.float32)


class NearestText:
    """Free text ("sci-fi and cooking") -> the catalogue items nearest to it, encoding only the text;
    items and query are compared after :func:`centre` (as the facet model centres its text input)."""

    def __init__(self, encoder: TextItemEncoder, embeddings: ItemEmbeddings, catalog: ItemCatalog) -> None:
        self.encoder, self.catalog = encoder, catalog
        self.item_vectors, self.mean = centre(embeddings.normalize().vectors)

    def nearest(self, text: str, n: int) -> np.ndarray:
        """Indices of up to ``n`` items, best first; empty when the text shares nothing with the
        encoder's vocabulary (a zero vector)."""
        vector = np.asarray(self.encoder.encode_texts([text], self.catalog), np.float32)
        if not np.abs(vector).sum():
            return np.zeros(0, np.int64)
        query = centre(l2_normalize(vector), self.mean)[0][0]
        scores = self.item_vectors @ query
        n = min(n, len(scores))
        top = np.argpartition(-scores, n - 1)[:n]
        return top[np.lexsort((top, -scores[top]))].astype(np.int64)
