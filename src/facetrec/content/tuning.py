"""Fine-tuning a language model under the recommendation loss, with peft adapters.

The facet model reads item text through a frozen encoder by default: the encoder never learns
what users do. With ``text_tuning`` set, a peft adapter (LoRA, AdaLoRA or IA3) is trained
inside the encoder by the model's own next-item loss. Encoding the whole catalogue at every
step would cost a full pass of the language model per step, so a step encodes only the items
it reads (its histories and targets, at most ``text_items``) with gradients; every other item
comes from a bank of vectors, the whole catalogue encoded without gradients, refreshed once per
epoch (and before evaluation whenever the adapter has changed since).

Any Hugging Face encoder or decoder works, by local path or Hub name: a sentence-transformers
directory (its pooling is read from its ``modules.json``) or a plain model, pooled by the mean
of its tokens (encoders) or its last token (decoder-only LMs). peft picks the layers to adapt
for the architecture unless ``targets`` names them. :class:`AdapterModule` keeps the frozen base
model out of the module tree (see there); :func:`export_merged` merges the adapter into the
base weights and writes a sentence-transformers directory, which the ordinary encoders, the
ONNX path included, read like any other model.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facetrec.content.encoders import POOLINGS, pool, tokenize
from facetrec.content.models import model_fingerprint, resolve_model
from facetrec.errors import ConfigError

TUNINGS = ("frozen", "lora", "adalora", "ia3")
"""Values of ``text_tuning``: no adapter, or the peft method trained under the recommendation loss."""
ADAPTERS = TUNINGS[1:]
_ST_POOLING = {"mean": "pooling_mode_mean_tokens", "cls": "pooling_mode_cls_token", "last": "pooling_mode_lasttoken"}
_ENCODE_BATCH = 64


def check_method(method: str, where: str) -> str:
    """``method`` if it names a peft adapter, else a ConfigError naming the choices."""
    if method not in ADAPTERS:
        raise ConfigError(f"{where}: must be one of {ADAPTERS}, got {method!r}")
    return method


def adapter_config(
    method: str,
    *,
    rank: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.05,
    targets: str = "",
    total_steps: int = 1,
    task_type: str | None = None,
    keep: list[str] | None = None,
) -> Any:
    """The peft config of ``method``: "lora" (rank ``rank``, scale ``alpha / rank``), "adalora"
    (starts at 1.5 x ``rank`` per layer and prunes to ``rank`` on average over ``total_steps``,
    the first tenth without pruning) or "ia3" (learned per-channel scales). ``targets``: module
    names joined by commas, or "" for peft's default layers of the architecture; ``keep``:
    modules trained whole beside the adapter (a new classification head)."""
    from peft import AdaLoraConfig, IA3Config, LoraConfig

    check_method(method, "text_tuning")
    names = [t.strip() for t in targets.split(",") if t.strip()] or None
    if method == "lora":
        return LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=names,
                          task_type=task_type, modules_to_save=keep)  # fmt: skip
    if method == "adalora":
        steps = max(int(total_steps), 1)
        return AdaLoraConfig(init_r=math.ceil(1.5 * rank), target_r=rank, lora_alpha=alpha, lora_dropout=dropout,
                             target_modules=names, total_step=steps, tinit=steps // 10, task_type=task_type,
                             modules_to_save=keep)  # fmt: skip
    return IA3Config(target_modules=names, feedforward_modules=[] if names else None, task_type=task_type,
                     modules_to_save=keep)  # fmt: skip


def wrap(model: nn.Module, config: Any) -> Any:
    """``model`` with the adapter of ``config`` (peft), or a ConfigError saying which setting to change."""
    from peft import get_peft_model

    if getattr(model.config, "model_type", "") == "gpt2" and hasattr(config, "fan_in_fan_out"):
        config.fan_in_fan_out = True  # GPT-2's Conv1D layers store their weights transposed
    try:
        return get_peft_model(model, config)
    except (ValueError, KeyError) as exc:
        kind = getattr(model.config, "model_type", type(model).__name__)
        raise ConfigError(
            f"cannot add a {config.peft_type.value} adapter to this {kind!r} model ({exc}); name the layers to "
            "adapt with the targets setting (e.g. 'query,value' for BERT, 'q_proj,v_proj' for Llama/Qwen)"
        ) from None


class AdapterModule(nn.Module):
    """A peft model whose frozen base stays out of the module tree: only the adapter's parameters
    are registered (``adapter``), so the training loop's optimiser, its copy of the best weights
    and its checkpoints hold the adapter alone, not a copy of the language model per improvement.
    ``train``/``eval`` and device moves reach the hidden model too."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.__dict__["peft"] = model  # deliberately not a registered submodule (see the class docstring)
        self.adapter = nn.ParameterList([p for p in model.parameters() if p.requires_grad])
        self.steps = 0

    def train(self, mode: bool = True) -> AdapterModule:
        super().train(mode)
        self.peft.train(mode)
        return self

    def _apply(self, fn: Any, recurse: bool = True) -> AdapterModule:
        super()._apply(fn, recurse)
        self.peft._apply(fn, recurse)  # the adapter's parameters are shared, so they move once
        return self

    def begin_step(self) -> None:
        """Call at the start of every training step: AdaLoRA re-allocates its ranks from the
        previous step's gradients, which the loop clears only after the next loss is computed."""
        if self.peft.peft_type.value == "ADALORA" and self.steps:
            self.peft.base_model.update_and_allocate(self.steps)
        self.steps += 1

    def penalty(self) -> torch.Tensor:
        """AdaLoRA's orthogonality regulariser on its singular vectors (Zhang et al., ICLR 2023;
        peft adds it only to a loss the wrapped model computes itself); 0 for other adapters."""
        first = self.adapter[0]
        if self.peft.peft_type.value != "ADALORA":
            return first.new_zeros(())
        terms = []
        for name, p in self.peft.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                gram = p @ p.T if "lora_A" in name else p.T @ p
                terms.append(torch.linalg.matrix_norm(gram - torch.eye(len(gram), device=gram.device)))
        return self.peft.peft_config["default"].orth_reg_weight * torch.stack(terms).mean()

    @property
    def trainable_params(self) -> int:
        return sum(p.numel() for p in self.adapter)

    @property
    def base_params(self) -> int:
        """Parameters of the language model without the adapter."""
        return sum(p.numel() for p in self.peft.parameters()) - self.trainable_params

    def adapter_vector(self) -> np.ndarray:
        """The adapter's parameters as one float32 vector (the form components save weights in)."""
        return nn.utils.parameters_to_vector(list(self.adapter)).detach().float().cpu().numpy()

    def load_adapter_vector(self, vector: np.ndarray, owner: str) -> None:
        """Set the adapter from :meth:`adapter_vector`'s output, or a ConfigError when sizes differ."""
        vector = np.asarray(vector, np.float32)
        if vector.shape != (self.trainable_params,):
            raise ConfigError(
                f"{owner}: the saved adapter holds {vector.size} values but this model and adapter setting need "
                f"{self.trainable_params}; the adapter and its config do not belong together"
            )
        first = self.adapter[0]
        with torch.no_grad():
            nn.utils.vector_to_parameters(torch.from_numpy(vector).to(first.device, first.dtype), list(self.adapter))


# --------------------------------------------------------------------------- the text encoder


def load_text_model(model: str | Path, pooling: str = "auto") -> tuple[nn.Module, Any, str]:
    """(Hugging Face model, tokenizer padding on the right, pooling) for a model path or Hub name.

    ``pooling`` "auto": the sentence-transformers pooling of an ST directory, else "mean" for
    encoders (architectures with a masked-LM head) and "last" for decoder-only LMs. An ST
    directory whose modules are not Transformer, Pooling (mean, CLS, last token) and Normalize
    is refused: the tuned encoder would not reproduce its vectors.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    if pooling not in ("auto", *POOLINGS):
        raise ConfigError(f"text_pooling: must be 'auto' or one of {list(POOLINGS)}, got {pooling!r}")
    path = resolve_model(model, sentence_transformers=True)
    root, st_pooling = sentence_transformer_layout(path)
    config = AutoConfig.from_pretrained(str(root))
    if pooling == "auto":
        pooling = st_pooling or ("mean" if config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES else "last")
    tokenizer = AutoTokenizer.from_pretrained(str(root))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if tokenizer.pad_token is None:
        raise ConfigError(f"{path}: the tokenizer has no pad, end-of-text or unknown token to pad with")
    tokenizer.padding_side = "right"  # rows are trimmed to their longest text; positions stay as encoded
    net = AutoModel.from_pretrained(str(root), dtype=torch.float32)
    if hasattr(net.config, "use_cache"):
        net.config.use_cache = False
    return net, tokenizer, pooling


def sentence_transformer_layout(path: Path) -> tuple[Path, str | None]:
    """(directory of the transformer weights, the ST pooling or None) of a model directory."""
    modules = path / "modules.json"
    if not modules.is_file():
        return path, None
    root, found = path, None
    for module in json.loads(modules.read_text()):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        where = path / module.get("path", "")
        if kind == "Transformer":
            root = where
        elif kind == "Pooling":
            settings = json.loads((where / "config.json").read_text())
            modes = [m for m, key in _ST_POOLING.items() if settings.get(key)]
            mode = settings.get("pooling_mode")
            modes = modes or ([{"lasttoken": "last"}.get(mode, mode)] if isinstance(mode, str) else [])
            if len(modes) != 1 or modes[0] not in POOLINGS:
                raise ConfigError(f"{where}: pooling {settings} cannot be tuned; mean, CLS or last-token pooling can")
            found = modes[0]
        elif kind != "Normalize":
            raise ConfigError(
                f"{path}: its {kind} module cannot be tuned (only Transformer, Pooling and Normalize); "
                "tune the plain transformer instead or keep text_tuning = 'frozen'"
            )
    return root, found


class TextTuner(AdapterModule):
    """A language model with an adapter that encodes item texts (row i of ``texts`` is item i).

    Called by the item tower as ``tuner(bank, live)``: in training, the text table with the rows of
    ``live`` (item indices) encoded afresh, with gradients; in evaluation, the bank. ``bank`` is
    the tower's text matrix, refreshed here in place: at the first step of every epoch, and before
    evaluation when a training step changed the adapter since. Vectors are unit length and
    centred on the catalogue's mean (as the frozen text is, see ``item_encoder.centre``): the mean
    is taken at each refresh and kept until the next.
    """

    def __init__(
        self,
        model: str | Path,
        texts: list[str],
        method: str,
        *,
        rank: int = 8,
        alpha: float = 16.0,
        dropout: float = 0.05,
        targets: str = "",
        pooling: str = "auto",
        max_tokens: int = 128,
        checkpointing: bool = False,
        total_steps: int = 1,
        steps_per_epoch: int = 1,
    ) -> None:
        net, tokenizer, chosen = load_text_model(model, pooling)
        if checkpointing:
            if hasattr(net, "activation_checkpointing_enable"):
                net.activation_checkpointing_enable({"use_reentrant": False})
            else:  # transformers 4
                net.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        config = adapter_config(method, rank=rank, alpha=alpha, dropout=dropout, targets=targets,
                                total_steps=total_steps)  # fmt: skip
        super().__init__(wrap(net, config))
        self.method, self.pooling, self.tokenizer = method, chosen, tokenizer
        self.steps_per_epoch = max(int(steps_per_epoch), 1)
        self.stale = False
        names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]
        self.inputs = names
        for name, values in tokenize(tokenizer, texts, max_tokens, names).items():
            self.register_buffer(name, torch.from_numpy(values), persistent=False)
        self.register_buffer("mean", torch.zeros(int(net.config.hidden_size)), persistent=False)

    def encode(self, rows: torch.Tensor) -> torch.Tensor:
        """Unit vectors [len(rows), d] of items ``rows`` (with gradients when enabled), not centred."""
        mask = self.attention_mask[rows]
        width = int(mask.sum(1).max())  # right padding: the columns every row needs
        inputs = {name: getattr(self, name)[rows, :width] for name in self.inputs}
        hidden = self.peft(**inputs).last_hidden_state
        return nn.functional.normalize(pool(hidden, inputs["attention_mask"], self.pooling).float(), dim=-1)

    def centred(self, vectors: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(vectors - self.mean, dim=-1)

    @torch.no_grad()
    def table(self) -> torch.Tensor:
        """[n_items, d] every item's centred vector, encoded without gradients in evaluation mode
        (so the same adapter always gives the same table); sets the mean it is centred by."""
        was_training = self.training
        self.eval()
        lengths = self.attention_mask.sum(1)
        order = torch.argsort(-lengths, stable=True)  # similar lengths together: less padding
        out = torch.empty(len(order), len(self.mean), device=self.mean.device)
        for start in range(0, len(order), _ENCODE_BATCH):
            rows = order[start : start + _ENCODE_BATCH]
            out[rows] = self.encode(rows)
        self.train(was_training)
        self.mean = out.mean(0)
        self.stale = False
        return self.centred(out)

    def forward(self, bank: torch.Tensor, live: torch.Tensor | None = None) -> torch.Tensor:
        if live is None or not self.training:
            if self.stale:
                bank.copy_(self.table())
            return bank
        if self.steps % self.steps_per_epoch == 0 and self.stale:
            bank.copy_(self.table())
        self.begin_step()
        self.stale = True
        return bank.index_copy(0, live, self.centred(self.encode(live)).to(bank.dtype))


# --------------------------------------------------------------------------- merged, for serving


def export_merged(tuner: TextTuner, directory: str | Path, max_tokens: int) -> Path:
    """Merge the adapter into the base weights and write a sentence-transformers directory (model
    and tokenizer as safetensors and JSON, its pooling, normalisation and ``max_tokens``), which
    ``SentenceTransformerEncoder`` and ``HFEncoder`` read, on torch or through ONNX, like any other
    model. The tuner's adapter is merged in place, so it cannot train afterwards."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    merged = tuner.peft.merge_and_unload()
    merged.save_pretrained(str(out))
    tuner.tokenizer.save_pretrained(str(out))
    dim = int(merged.config.hidden_size)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (out / "modules.json").write_text(json.dumps(modules, indent=2) + "\n")
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_tokens}) + "\n")
    (out / "1_Pooling").mkdir(exist_ok=True)
    pooling = {"word_embedding_dimension": dim, **{key: mode == tuner.pooling for mode, key in _ST_POOLING.items()}}
    (out / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2) + "\n")
    (out / "2_Normalize").mkdir(exist_ok=True)
    return out


def merged_directory(base: str | Path, adapter: np.ndarray, settings: dict[str, Any], build: Any) -> Path:
    """The cached merged model of a base model and an adapter, written once by ``build(directory)``
    under ``~/.cache/facetrec/tuned``, keyed by the base model's files, ``settings`` and the
    adapter's values, so a bundle's encoder is materialised once per machine."""
    from facetrec.content.onnx_backend import _fresh_tmp, _publish

    key = json.dumps({"base": model_fingerprint(resolve_model(base, sentence_transformers=True)), **settings},
                     sort_keys=True).encode() + np.ascontiguousarray(adapter, np.float32).tobytes()  # fmt: skip
    target = Path.home() / ".cache" / "facetrec" / "tuned" / hashlib.sha256(key).hexdigest()[:16]
    if not (target / "modules.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _fresh_tmp(target)
        try:
            build(tmp)
            _publish(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target
