"""Language-model text encoders: texts in, one float32 vector per text out, L2-normalised by default.

Two encoders share one contract (:class:`TextEncoder`): :class:`SentenceTransformerEncoder` runs
any sentence-transformers model exactly as the library would, and :class:`HFEncoder` pools the
hidden states of a plain Hugging Face encoder or decoder (BGE, E5, Qwen-class models). Either can
run on torch or, on CPUs, on an exported ONNX graph with optional int8 weights (onnx_backend.py);
batching, order, norms and progress are the base class's (base.py). ``encoder_id``
names the model (with a content fingerprint), pooling, maximum length and backend, so vectors
from different encoders are never mixed in a cache or an :class:`~facetrec.types.ItemEmbeddings`.
Finding a model's files (local path, bundled MiniLM, Hub name) is models.py's job.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from abc import abstractmethod
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from facetrec.content.base import TextEncoder
from facetrec.content.models import DEFAULT_MODEL, bundled_minilm, model_fingerprint, model_name, resolve_model
from facetrec.content.onnx_backend import (
    INT8_RECIPE,
    OnnxTextModel,
    default_cache_dir,
    ensure_bundle,
)
from facetrec.errors import ConfigError, DataError

POOLINGS = ("mean", "last", "cls")
BACKENDS = ("torch", "onnx")
_EXAMPLE = ["a short example", "a somewhat longer example text, used only to trace the model for export"]


def pool(hidden: Any, mask: Any, mode: str) -> Any:
    """Pool token states [b, s, d] to [b, d] over the attention mask; works for left or right padding.

    "mean" averages attended tokens; "cls" takes the first attended token, "last" the last one.
    """
    import torch

    keep = mask.bool()
    if mode == "mean":
        summed = torch.where(keep.unsqueeze(-1), hidden, hidden.new_zeros(())).sum(1)
        return summed / mask.sum(1, keepdim=True).clamp(min=1).to(hidden.dtype)
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    if mode == "cls":
        index = torch.where(keep, positions, mask.shape[1] - 1).amin(1)
    else:
        index = torch.where(keep, positions, 0).amax(1)
    return hidden.gather(1, index[:, None, None].expand(-1, 1, hidden.shape[-1])).squeeze(1)


def tokenize(tokenizer: Any, texts: list[str], max_length: int, names: Sequence[str]) -> dict[str, np.ndarray]:
    """int64 arrays ``names`` for ``texts``; a text with no tokens at all becomes a single special token."""
    kwargs = {"padding": True, "truncation": "longest_first", "max_length": max_length, "return_tensors": "np"}
    enc = tokenizer(texts, **kwargs)
    empty = np.asarray(enc["attention_mask"]).sum(1) == 0
    if empty.any():
        stand_in = tokenizer.eos_token or tokenizer.bos_token or tokenizer.unk_token or tokenizer.pad_token
        if stand_in is None:
            raise DataError("texts: an empty text gives no tokens and the tokenizer has no special token to use")
        enc = tokenizer([stand_in if e else t for t, e in zip(texts, empty, strict=True)], **kwargs)
    return {name: np.asarray(enc[name], dtype=np.int64) for name in names if name in enc}


class _LanguageModelEncoder(TextEncoder):
    """What both language-model encoders share: settings, backend choice and the ONNX bundle."""

    kind = "lm"

    def __init__(
        self,
        model: str | Path,
        *,
        device: str,
        max_length: int,
        normalize: bool,
        backend: str,
        quantize: bool,
        cache_dir: str | Path | None,
        threads: int | None,
        sentence_transformers: bool,
    ) -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"backend: must be one of {list(BACKENDS)}, got {backend!r}")
        if quantize and backend != "onnx":
            raise ConfigError("quantize=True needs backend='onnx' (int8 weights run in onnxruntime)")
        if backend == "onnx" and device != "cpu":
            raise ConfigError(f"backend='onnx' runs on the CPU; use backend='torch' for device={device!r}")
        if max_length < 2:
            raise ConfigError(f"max_length: must be at least 2 tokens, got {max_length}")
        self.model_path = resolve_model(model, sentence_transformers=sentence_transformers)
        self.fingerprint = model_fingerprint(self.model_path)
        self.device, self.max_length, self.normalize = device, max_length, normalize
        self.backend, self.quantize, self.threads = backend, quantize, threads
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._onnx: OnnxTextModel | None = None

    @abstractmethod
    def _settings(self) -> str:
        """The pooling (and other graph-affecting settings) for ``encoder_id``."""

    @abstractmethod
    def _graph(self) -> tuple[Any, dict[str, Any], Any]:
        """(torch module from token ids to pooled vectors, example inputs, tokenizer) for export."""

    @abstractmethod
    def _encode_torch(self, texts: list[str]) -> np.ndarray: ...

    @abstractmethod
    def _unload(self) -> None:
        """Drop the torch model (after an export, when the ONNX graph does the work)."""

    @property
    def backend_label(self) -> str:
        if self.backend == "torch":
            return "torch"
        return f"onnx-int8-{INT8_RECIPE}" if self.quantize else "onnx-fp32"

    @property
    def model_name(self) -> str:
        """A readable model name: the Hub id of a Hub snapshot, else the directory name."""
        return model_name(self.model_path)

    @property
    def encoder_id(self) -> str:
        return (
            f"{self.kind}:{self.model_name}@{self.fingerprint}|{self._settings()}|len={self.max_length}"
            f"|norm={int(self.normalize)}|{self.backend_label}"
        )

    def onnx_model(self) -> OnnxTextModel:
        """The cached ONNX bundle, exported on first use (the slow step: seconds to minutes)."""
        if self._onnx is None:
            key = {
                "encoder": self.kind,
                "model": self.fingerprint,
                "settings": self._settings(),
                "torch": version("torch"),
                "transformers": version("transformers"),
            }
            digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
            slug = re.sub(r"[^A-Za-z0-9._-]+", "-", self.model_name)[:40]
            directory = self.cache_dir / f"{self.kind}-{slug}-{digest}"
            ensure_bundle(directory, self._graph)
            self._onnx = OnnxTextModel(directory, quantize=self.quantize, threads=self.threads)
            if self.backend == "onnx":
                self._unload()
        return self._onnx

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        if self.backend == "torch":
            return self._encode_torch(texts)
        onnx = self.onnx_model()
        return onnx.run(tokenize(onnx.tokenizer, texts, self.max_length, onnx.input_names))


class SentenceTransformerEncoder(_LanguageModelEncoder):
    """Any sentence-transformers model (hub name or local path), with its own pooling and normalisation.

    On torch, batches go through ``SentenceTransformer.encode`` unchanged; on ONNX, the model's
    own modules (transformer, pooling, dense, normalize from modules.json) are exported together,
    so both backends reproduce the library's vectors. ``quantize`` stores int8 weights (ONNX only).
    """

    kind = "st"

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str = "cpu",
        max_length: int = 256,
        normalize: bool = True,
        backend: str = "torch",
        quantize: bool = False,
        cache_dir: str | Path | None = None,
        threads: int | None = None,
    ) -> None:
        model = model if model is not None else (bundled_minilm() or DEFAULT_MODEL)
        super().__init__(
            model,
            device=device,
            max_length=max_length,
            normalize=normalize,
            backend=backend,
            quantize=quantize,
            cache_dir=cache_dir,
            threads=threads,
            sentence_transformers=True,
        )
        self._st: Any = None

    def _settings(self) -> str:
        """The pooling named in the model's 1_Pooling config (modules.json says where it is)."""
        modules = self.model_path / "modules.json"
        if not modules.is_file():
            return "pool=mean"  # sentence-transformers wraps plain models with mean pooling
        for module in json.loads(modules.read_text()):
            config = self.model_path / module.get("path", "") / "config.json"
            if module.get("type", "").endswith("Pooling") and config.is_file():
                settings = json.loads(config.read_text())
                if isinstance(settings.get("pooling_mode"), str):
                    return f"pool={settings['pooling_mode']}"
                modes = [k for k, v in settings.items() if k.startswith("pooling_mode_") and v is True]
                return "pool=" + "+".join(re.sub(r"^pooling_mode_|_tokens?$", "", m) for m in modes)
        return "pool=model"

    def sentence_transformer(self) -> Any:
        """The loaded ``SentenceTransformer`` (loaded on first use)."""
        if self._st is None:
            from sentence_transformers import SentenceTransformer

            self._st = SentenceTransformer(str(self.model_path), device=self.device)
            self._st.max_seq_length = self.max_length
        return self._st

    def _unload(self) -> None:
        self._st = None

    @property
    def dim(self) -> int:
        if self.backend == "onnx":
            return self.onnx_model().dim
        st = self.sentence_transformer()
        getter = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
        return int(getter())

    def _encode_torch(self, texts: list[str]) -> np.ndarray:
        vectors = self.sentence_transformer().encode(
            texts, batch_size=len(texts), convert_to_numpy=True, normalize_embeddings=False, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)

    def _graph(self) -> tuple[Any, dict[str, Any], Any]:
        import torch

        st = self.sentence_transformer()
        first = st[0]
        tokenizer = getattr(first, "tokenizer", None)
        if not hasattr(first, "auto_model") or tokenizer is None:
            raise ConfigError(f"{self.model_path}: the ONNX backend needs a text Transformer module first")
        if getattr(st, "default_prompt_name", None):
            raise ConfigError(f"{self.model_path}: uses a default prompt; use backend='torch' for it")

        class Graph(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.st = st

            def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
                features = {"input_ids": input_ids, "attention_mask": attention_mask, "modality": "text"}
                if token_type_ids is not None:
                    features["token_type_ids"] = token_type_ids
                for module in self.st:
                    features = module(features)
                return features["sentence_embedding"]

        names = ("input_ids", "attention_mask", "token_type_ids")
        example = tokenize(tokenizer, _EXAMPLE, self.max_length, names)
        return Graph().to("cpu"), {k: torch.from_numpy(v) for k, v in example.items()}, tokenizer


class HFEncoder(_LanguageModelEncoder):
    """A plain Hugging Face encoder or decoder (AutoModel) with mean, first-token or last-token pooling.

    For BGE/E5-style encoders use "cls" or "mean" and the model's ``prefix`` ("passage: "); for
    decoder embedders (Qwen3-Embedding, E5-Mistral) use "last", usually with ``padding_side="left"``.
    A tokenizer without a pad token pads with its end-of-text token.
    """

    kind = "hf"

    def __init__(
        self,
        model_path: str | Path,
        *,
        pooling: str = "mean",
        max_length: int = 512,
        device: str = "cpu",
        normalize: bool = True,
        backend: str = "torch",
        quantize: bool = False,
        cache_dir: str | Path | None = None,
        threads: int | None = None,
        dtype: str = "float32",
        prefix: str = "",
        padding_side: str | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling: must be one of {list(POOLINGS)}, got {pooling!r}")
        if dtype not in ("float32", "float16", "bfloat16"):
            raise ConfigError(f"dtype: must be float32, float16 or bfloat16, got {dtype!r}")
        if backend == "onnx" and dtype != "float32":
            raise ConfigError("backend='onnx' exports float32 graphs; use dtype='float32'")
        if padding_side not in (None, "left", "right"):
            raise ConfigError(f"padding_side: must be 'left', 'right' or None, got {padding_side!r}")
        super().__init__(
            model_path,
            device=device,
            max_length=max_length,
            normalize=normalize,
            backend=backend,
            quantize=quantize,
            cache_dir=cache_dir,
            threads=threads,
            sentence_transformers=False,
        )
        self.pooling, self.dtype, self.prefix = pooling, dtype, prefix
        self.padding_side, self.trust_remote_code = padding_side, trust_remote_code
        self._model: Any = None
        self._tokenizer: Any = None
        self._pooled: Any = None
        self._inputs: list[str] = []

    def _settings(self) -> str:
        settings = f"pool={self.pooling}|pad={self.padding_side or 'model'}"
        if self.dtype != "float32":
            settings += f"|dtype={self.dtype}"
        return settings + (f"|prefix={self.prefix!r}" if self.prefix else "")

    def load(self) -> tuple[Any, Any]:
        """(model, tokenizer), loaded on first use."""
        if self._model is None:
            import torch
            from transformers import AutoModel, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(self.model_path), trust_remote_code=self.trust_remote_code)
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
            if tokenizer.pad_token is None:
                raise ConfigError(f"{self.model_path}: the tokenizer has no pad, end-of-text or unknown token")
            if self.padding_side is not None:
                tokenizer.padding_side = self.padding_side
            model = AutoModel.from_pretrained(
                str(self.model_path), dtype=getattr(torch, self.dtype), trust_remote_code=self.trust_remote_code
            )
            model.config.use_cache = False
            accepted = inspect.signature(model.forward).parameters
            self._inputs = [n for n in tokenizer.model_input_names if n in accepted]
            self._inputs = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in self._inputs]
            self._model, self._tokenizer = model.to(self.device).eval(), tokenizer
        return self._model, self._tokenizer

    def _unload(self) -> None:
        self._model = self._tokenizer = self._pooled = None

    @property
    def dim(self) -> int:
        if self.backend == "onnx":
            return self.onnx_model().dim
        return int(self.load()[0].config.hidden_size)

    def _module(self) -> Any:
        """The model followed by pooling, as one torch module (what the ONNX graph holds)."""
        if self._pooled is not None:
            return self._pooled
        import torch

        model, pooling = self.load()[0], self.pooling

        class Graph(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
                extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
                hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
                return pool(hidden, attention_mask, pooling)

        self._pooled = Graph()
        return self._pooled

    def _graph(self) -> tuple[Any, dict[str, Any], Any]:
        import torch

        _, tokenizer = self.load()
        example = tokenize(tokenizer, _EXAMPLE, self.max_length, self._inputs)
        return self._module().to("cpu"), {k: torch.from_numpy(v) for k, v in example.items()}, tokenizer

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        return super()._encode_batch([self.prefix + t for t in texts] if self.prefix else texts)

    def _encode_torch(self, texts: list[str]) -> np.ndarray:
        import torch

        _, tokenizer = self.load()
        features = tokenize(tokenizer, texts, self.max_length, self._inputs)
        with torch.inference_mode():
            pooled = self._module()(**{k: torch.from_numpy(v).to(self.device) for k, v in features.items()})
        return pooled.float().cpu().numpy()
