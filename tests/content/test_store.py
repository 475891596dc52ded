"""EmbeddingStore: cache hits, resumable chunked encoding, encoder ids kept apart, ItemEmbeddings."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from facetrec.content.base import TextEncoder
from facetrec.content.store import EmbeddingStore, embed_items, encode_cached, text_keys
from facetrec.errors import DataError
from facetrec.ids import Vocabulary
from facetrec.types import ItemEmbeddings

TEXTS = [f"item number {i} with a description" for i in range(23)] + ["item number 3 with a description", ""]


class CountingEncoder(TextEncoder):
    """Vectors derived from a hash of (seed, text); counts what it was asked to encode."""

    def __init__(self, seed: int = 0, dim: int = 8, fail_after: int | None = None) -> None:
        self.seed, self._dim, self.fail_after = seed, dim, fail_after
        self.encoded: list[str] = []
        self.calls = 0

    @property
    def encoder_id(self) -> str:
        return f"counting:seed={self.seed}|dim={self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: Sequence[str], *, batch_size: int = 32, progress: object = False) -> np.ndarray:
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        return super().encode(texts, batch_size=batch_size, progress=progress)  # type: ignore[arg-type]

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        self.encoded.extend(texts)
        return np.stack([self.vector(t) for t in texts])

    def vector(self, text: str) -> np.ndarray:
        digest = hashlib.sha256(f"{self.seed}:{text}".encode()).digest()
        return np.frombuffer(digest[: self._dim], np.uint8).astype(np.float32) - 127.5


def expected(encoder: CountingEncoder, texts: list[str]) -> np.ndarray:
    raw = np.stack([encoder.vector(t) for t in texts])
    return raw / np.linalg.norm(raw, axis=1, keepdims=True)


def test_second_call_encodes_nothing_and_duplicates_are_encoded_once(tmp_path: Path) -> None:
    store = EmbeddingStore(tmp_path / "store")
    encoder = CountingEncoder()
    first = encode_cached(encoder, TEXTS, store, chunk_size=10)
    assert sorted(encoder.encoded) == sorted(set(TEXTS))
    np.testing.assert_allclose(first, expected(encoder, TEXTS), rtol=1e-6)
    assert store.count(encoder.encoder_id) == len(set(TEXTS))

    again = CountingEncoder()
    second = encode_cached(again, TEXTS[::-1], EmbeddingStore(tmp_path / "store"), chunk_size=10)
    assert again.encoded == [] and again.calls == 0
    np.testing.assert_array_equal(second, first[::-1])


def test_only_new_texts_are_encoded(tmp_path: Path) -> None:
    store = EmbeddingStore(tmp_path)
    encode_cached(CountingEncoder(), TEXTS[:10], store)
    encoder = CountingEncoder()
    out = encode_cached(encoder, TEXTS, store, chunk_size=4)
    assert sorted(encoder.encoded) == sorted(set(TEXTS) - set(TEXTS[:10]))
    np.testing.assert_allclose(out, expected(encoder, TEXTS), rtol=1e-6)


def test_an_interrupted_run_keeps_finished_chunks_and_resumes(tmp_path: Path) -> None:
    store = EmbeddingStore(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        encode_cached(CountingEncoder(fail_after=1), TEXTS, store, chunk_size=8)
    assert store.count(CountingEncoder().encoder_id) == 8
    resumed = CountingEncoder()
    out = encode_cached(resumed, TEXTS, EmbeddingStore(tmp_path), chunk_size=8)
    unique_in_order = list(dict.fromkeys(TEXTS))
    assert resumed.encoded and set(resumed.encoded) == set(unique_in_order[8:])
    np.testing.assert_allclose(out, expected(resumed, TEXTS), rtol=1e-6)


def test_different_encoder_ids_never_mix(tmp_path: Path) -> None:
    store = EmbeddingStore(tmp_path)
    a, b = CountingEncoder(seed=1), CountingEncoder(seed=2)
    va = encode_cached(a, TEXTS, store)
    vb = encode_cached(b, TEXTS, store)
    assert len(b.encoded) == len(set(TEXTS)), "b must not reuse a's vectors"
    np.testing.assert_allclose(vb, expected(b, TEXTS), rtol=1e-6)
    assert not np.allclose(va, vb)
    assert store.encoder_ids() == sorted([a.encoder_id, b.encoder_id])
    wide = CountingEncoder(seed=1, dim=16)
    assert encode_cached(wide, TEXTS[:3], store).shape == (3, 16)


def test_chunks_are_plain_npy_files_read_through_memory_maps(tmp_path: Path) -> None:
    store = EmbeddingStore(tmp_path)
    encoder = CountingEncoder()
    encode_cached(encoder, TEXTS, store, chunk_size=10)
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    keys = sorted(folder.glob("*.keys.npy"))
    assert len(keys) == 3 and (folder / "encoder.json").is_file()
    vectors = np.load(str(keys[0]).replace(".keys.npy", ".npy"), allow_pickle=False)
    assert vectors.dtype == np.float32 and vectors.shape == (10, 8)
    assert np.load(keys[0], allow_pickle=False).dtype == np.dtype("S32")
    (folder / ".half-written.npy.tmp-1234").write_bytes(b"junk")  # a crash's leftover is ignored
    (folder / "orphan.npy").write_bytes(b"junk")  # vectors whose keys file never landed
    assert EmbeddingStore(tmp_path).count(encoder.encoder_id) == len(set(TEXTS))


def test_store_rejects_bad_vectors_and_reports_missing_keys(tmp_path: Path) -> None:
    store = EmbeddingStore(tmp_path)
    keys = text_keys(["a", "b"])
    with pytest.raises(DataError, match="shape"):
        store.add("enc", keys, np.zeros((3, 4)))
    with pytest.raises(DataError, match="NaN"):
        store.add("enc", keys, np.full((2, 4), np.nan))
    store.add("enc", keys, np.ones((2, 4)))
    with pytest.raises(DataError, match="dimension"):
        store.add("enc", text_keys(["c"]), np.ones((1, 5)))
    with pytest.raises(DataError, match="1 of 2 keys"):
        store.get("enc", text_keys(["a", "zzz"]))
    assert store.contains("enc", text_keys(["b", "zzz"])).tolist() == [True, False]
    assert encode_cached(CountingEncoder(), [], store).shape == (0, 8)


def test_embed_items_returns_item_embeddings_aligned_with_the_vocabulary(tmp_path: Path) -> None:
    items = Vocabulary([f"i{k}" for k in range(len(TEXTS))], "items")
    encoder = CountingEncoder()
    direct = embed_items(encoder, TEXTS, items)
    cached = embed_items(encoder, TEXTS, items, EmbeddingStore(tmp_path))
    for emb in (direct, cached):
        assert isinstance(emb, ItemEmbeddings)
        assert emb.items == items and emb.encoder_id == encoder.encoder_id
        assert emb.modality == "text" and emb.normalized
        np.testing.assert_allclose(emb.vectors, expected(encoder, TEXTS), rtol=1e-6)
    with pytest.raises(DataError, match="one text per item"):
        embed_items(encoder, TEXTS[:-1], items)
