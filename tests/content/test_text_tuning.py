"""Tuning the item text encoder with peft adapters under the facet model's loss.

Tiny random models are built from their configs (a BERT encoder, GPT-2 and LLaMA-style
decoders) with a word-level tokenizer in a temporary directory: nothing is downloaded.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest
import torch

from facetrec.content.encoders import SentenceTransformerEncoder
from facetrec.content.item_encoder import centre
from facetrec.content.tuning import TextTuner, adapter_config, load_text_model, wrap
from facetrec.data.dataset import Dataset
from facetrec.data.filters import first_occurrences
from facetrec.data.split import leave_one_out
from facetrec.errors import ConfigError
from facetrec.ids import Vocabulary
from facetrec.recommender import Recommender, fit_recommender
from facetrec.scoring.facet import FacetConfig, FacetScorer, SASRecTextScorer
from facetrec.testing import small_synthetic
from facetrec.types import ItemCatalog

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "</s>"]
EXTRA_WORDS = "user history candidate will choose next answer yes no title categories description"


def catalogue_words() -> list[str]:
    """The lowercased words of the small synthetic catalogue's texts, and a few prompt words."""
    text = " ".join(" ".join(map(str, v)) for v in small_synthetic().dataset.catalog.text.values())
    return sorted(set(re.findall(r"\w+", f"{text} {EXTRA_WORDS}".lower())))


def make_tiny_model(directory: Path, kind: str, words: list[str]) -> Path:
    """A random 2-layer, 32-wide ``kind`` ("bert", "gpt2" or "llama") built from its config, saved
    with a lowercasing word-level tokenizer over ``words``; decoders are saved with their LM head
    (a re-ranker's yes/no head reads it) and their tokenizer has no pad token, as GPT-2's has none."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import (
        BertConfig,
        BertModel,
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    directory.mkdir(parents=True, exist_ok=True)
    vocab = {w: i for i, w in enumerate(dict.fromkeys([*SPECIALS, *words]))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    special: dict[str, str] = {"unk_token": "[UNK]", "eos_token": "</s>"}
    if kind == "bert":
        core.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
        )
        special.update(pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]")
    PreTrainedTokenizerFast(tokenizer_object=core, model_input_names=["input_ids", "attention_mask"],
                            **special).save_pretrained(str(directory))  # fmt: skip
    torch.manual_seed(0)
    size = {"vocab_size": len(vocab)}
    if kind == "bert":
        config = BertConfig(**size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=128)  # fmt: skip
        model = BertModel(config)
    elif kind == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(**size, n_embd=32, n_layer=2, n_head=2, n_positions=128, eos_token_id=4))
    else:
        config = LlamaConfig(**size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                             eos_token_id=4)  # fmt: skip
        model = LlamaForCausalLM(config)
    model.eval().save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    words = catalogue_words()
    return {kind: make_tiny_model(tmp_path_factory.mktemp(f"tiny-{kind}"), kind, words)
            for kind in ("bert", "gpt2", "llama")}  # fmt: skip


@pytest.fixture(scope="module")
def data():
    syn = small_synthetic()
    return syn.dataset.catalog, leave_one_out(first_occurrences(syn.dataset.interactions))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Merged encoders are cached under the home directory: give the tests their own."""
    monkeypatch.setenv("HOME", str(tmp_path_factory.getbasetemp() / "home"))


TEXTS = ["rugged backpack", "breathable backpack with bivvy popular for camping fans", "", "unbeaten penalty"]
TINY = {"hidden": 16, "max_len": 20, "epochs": 2, "batch_size": 64, "max_tokens": 16, "reviews": False,
        "progress": False, "text_items": 32}  # fmt: skip


def _base_state(tuner: TextTuner) -> dict[str, torch.Tensor]:
    own = {id(p) for p in tuner.adapter}
    return {n: p.detach().clone() for n, p in tuner.peft.named_parameters() if id(p) not in own}


@pytest.mark.parametrize(
    ("kind", "method"), [("bert", "lora"), ("bert", "adalora"), ("bert", "ia3"), ("gpt2", "lora"), ("llama", "lora")]
)
def test_training_changes_only_the_adapter(tiny_models: dict[str, Path], kind: str, method: str) -> None:
    torch.manual_seed(0)
    tuner = TextTuner(tiny_models[kind], TEXTS, method, max_tokens=16, total_steps=20)
    base = _base_state(tuner)
    adapter = [p.detach().clone() for p in tuner.adapter]
    assert {id(p) for p in tuner.parameters()} == {id(p) for p in tuner.adapter}  # the base is not registered
    bank = tuner.table()
    goal = torch.nn.functional.normalize(torch.randn_like(bank), dim=-1)
    optimizer = torch.optim.Adam(tuner.parameters(), lr=1e-2)
    tuner.train()
    live = torch.tensor([0, 1, 3])
    for _ in range(3):
        table = tuner(bank, live)
        loss = -(table[live] * goal[live]).sum() + tuner.penalty()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert all(torch.equal(p, base[n]) for n, p in _base_state(tuner).items())
    assert any(not torch.equal(p, q) for p, q in zip(tuner.adapter, adapter, strict=True))
    assert 0 < tuner.trainable_params < 0.2 * tuner.base_params


def test_an_untrained_adapter_reproduces_the_frozen_encoder(tiny_models: dict[str, Path]) -> None:
    """LoRA starts at zero and IA3 at one: before training the table is the frozen encoder's
    vectors, centred as the facet model centres them."""
    frozen = centre(SentenceTransformerEncoder(tiny_models["bert"], max_length=16).encode(TEXTS))[0]
    for method in ("lora", "ia3"):
        table = TextTuner(tiny_models["bert"], TEXTS, method, max_tokens=16).table().numpy()
        np.testing.assert_allclose(table, frozen, atol=1e-5)


def test_the_bank_is_refreshed_once_the_adapter_changed(tiny_models: dict[str, Path]) -> None:
    torch.manual_seed(0)
    tuner = TextTuner(tiny_models["bert"], TEXTS, "lora", max_tokens=16, steps_per_epoch=2)
    bank = tuner.table()
    before = bank.clone()
    tuner.train()
    table = tuner(bank, torch.tensor([1]))
    assert torch.equal(table[[0, 2, 3]], before[[0, 2, 3]])  # other items read the bank
    with torch.no_grad():
        for p in tuner.adapter:
            p.add_(0.5)
    tuner.eval()
    assert torch.equal(tuner(bank, None), bank) and not torch.equal(bank, before)  # refreshed in place


def test_fit_save_load_and_the_merged_encoder_reproduce_scores(tiny_models, data, tmp_path: Path) -> None:
    catalog, split = data
    scorer = FacetScorer(encoder=str(tiny_models["bert"]), text_tuning="lora", seed=0, **TINY)
    scorer.fit(split.train, catalog, split.valid)
    users = np.arange(20)
    scores = scorer.score(split.test.history, users)
    frozen = FacetScorer(encoder=str(tiny_models["bert"]), seed=0, **TINY).fit(split.train, catalog, split.valid)
    assert not np.allclose(scorer.content_, frozen.content_, atol=1e-4)  # the encoder learned
    assert np.abs(scorer.text_adapter_).sum() > 0

    scorer.save(tmp_path / "scorer")
    loaded = FacetScorer.load(tmp_path / "scorer")
    np.testing.assert_array_equal(loaded.score(split.test.history, users), scores)
    np.testing.assert_array_equal(loaded.text_adapter_, scorer.text_adapter_)

    # The adapter merged into the weights gives the vectors (and so the scores) the model trained with.
    encoder = loaded.tuned_item_encoder()
    vectors = encoder.encode(catalog).normalize().vectors
    merged, _ = centre(vectors, loaded.text_mean_)
    np.testing.assert_allclose(merged, scorer.content_, atol=2e-5)
    loaded.content_ = merged
    loaded._net = None
    np.testing.assert_allclose(loaded.score(split.test.history, users), scores, rtol=1e-4, atol=1e-4)


def test_items_added_while_serving_are_encoded_by_the_tuned_encoder(tiny_models, data, tmp_path: Path) -> None:
    catalog, split = data
    params = {"encoder": str(tiny_models["bert"]), "text_tuning": "ia3", **TINY}
    recommender = fit_recommender(Dataset("syn", split.train, catalog), "facet", params, seed=0)
    tuned = recommender.scorer.tuned_item_encoder()
    assert recommender.encoder.config == tuned.config
    recommender.save(tmp_path / "bundle")
    loaded = Recommender.load(tmp_path / "bundle")
    assert loaded.encoder.config == tuned.config
    copies = ItemCatalog(
        Vocabulary(["new-0", "new-1"], "item"),
        text={k: v[:2] for k, v in catalog.text.items()},
        categories=None if catalog.categories is None else catalog.categories[:2],
        tags=None if catalog.tags is None else catalog.tags[:2],
    )
    loaded.add_items(copies)
    vectors = loaded.scorer.content_
    np.testing.assert_allclose(vectors[-2:], vectors[:2], atol=2e-5)  # the same text lands in the same place


def test_a_decoder_is_tuned_and_exported_with_last_token_pooling(tiny_models, data, tmp_path: Path) -> None:
    catalog, split = data
    scorer = SASRecTextScorer(encoder=str(tiny_models["llama"]), text_tuning="lora", seed=0, **TINY)
    scorer.fit(split.train, catalog)
    directory = scorer.export_text_encoder(tmp_path / "merged")
    encoder = SentenceTransformerEncoder(directory, max_length=TINY["max_tokens"])
    assert "pool=last" in encoder.encoder_id
    texts = scorer._base_encoder().texts(catalog)
    merged, _ = centre(encoder.encode(texts), scorer.text_mean_)
    np.testing.assert_allclose(merged, scorer.content_, atol=2e-5)


def test_the_merged_encoder_exports_to_onnx(tiny_models, tmp_path: Path) -> None:
    from facetrec.content.tuning import export_merged

    torch.manual_seed(0)
    tuner = TextTuner(tiny_models["bert"], TEXTS, "lora", max_tokens=16)
    with torch.no_grad():
        for p in tuner.adapter:
            p.normal_(0, 0.2)
    tuned = tuner.table()
    directory = export_merged(tuner, tmp_path / "merged", max_tokens=16)
    onnx = SentenceTransformerEncoder(directory, max_length=16, backend="onnx", cache_dir=tmp_path / "onnx")
    np.testing.assert_allclose(centre(onnx.encode(TEXTS), tuner.mean.numpy())[0], tuned.numpy(), atol=1e-4)


def test_settings_that_cannot_work_are_config_errors(tiny_models: dict[str, Path], data, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="text_tuning: must be one of"):
        FacetConfig(text_tuning="prefix")
    with pytest.raises(ConfigError, match="encoder 'lexical'"):
        FacetConfig(text_tuning="lora", encoder="lexical")
    with pytest.raises(ConfigError, match="text_rank"):
        FacetConfig(text_tuning="lora", text_rank=0)
    with pytest.raises(ConfigError, match="text_pooling"):
        FacetConfig(text_pooling="max")
    with pytest.raises(ConfigError, match="does not exist"):
        TextTuner(tmp_path / "no-such-model", TEXTS, "lora")
    with pytest.raises(ConfigError, match="text_tuning: must be one of"):
        adapter_config("prefix")
    with pytest.raises(ConfigError, match="targets setting"):
        TextTuner(tiny_models["bert"], TEXTS, "lora", targets="no_such_layer")
    model, _, pooling = load_text_model(tiny_models["gpt2"])
    assert pooling == "last"
    with pytest.raises(ConfigError, match="targets setting"):
        wrap(model, adapter_config("lora", targets="q_proj"))
    catalog, split = data
    frozen = FacetScorer(encoder="lexical", **TINY).fit(split.train, catalog)
    with pytest.raises(ConfigError, match="frozen"):
        frozen.export_text_encoder(tmp_path / "nothing")
    assert frozen.tuned_item_encoder() is None


def test_gradient_checkpointing_gives_the_same_gradients(tiny_models: dict[str, Path]) -> None:
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        tuner = TextTuner(tiny_models["bert"], TEXTS, "lora", dropout=0.0, checkpointing=checkpointing)
        with torch.no_grad():
            for p in tuner.adapter:
                p.normal_(0, 0.1)
        bank = tuner.table()
        tuner.train()
        tuner(bank, torch.tensor([0, 1, 3])).sum().backward()
        grads.append([p.grad.clone() for p in tuner.adapter])
    for plain, checkpointed in zip(*grads, strict=True):
        torch.testing.assert_close(checkpointed, plain)
