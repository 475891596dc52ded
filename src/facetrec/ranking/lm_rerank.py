"""A language-model re-ranking stage: the retriever's best candidates re-scored by reading text.

The retriever (the facet model, or any scorer) places items by vectors learned from events.
This stage reads what the vectors compress away: the user's recent history as text and each
candidate's text, together, as one input. It re-scores the ``top`` candidates of a request
with either

- a **cross-encoder** (an encoder such as MiniLM or BERT with a one-logit head over the pair
  "history [SEP] candidate"), or
- a **decoder LM** answering "Will the user choose the candidate next? Answer:" with the
  difference of its " yes" and " no" logits,

fine-tuned with a peft adapter (:mod:`facetrec.content.tuning`) on the training sequences: for
each (history, next item) pair, a listwise softmax over the next item and ``negatives`` hard
negatives, items the retriever itself ranks among its ``top`` for that history. The re-ranked
order blends the model's score with the retriever's (both standardised over the candidates), the
blend weight chosen on the validation targets. The ``top`` candidates keep the relevance values
of the places they take, so boosts and diversity re-rankers downstream see the usual scale.

Served through :class:`~facetrec.ranking.RankConfig` ``rerank_model`` (a directory written by
:meth:`LMReranker.save`); the adapter is merged into the weights when loaded.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from torch import nn

from facetrec.component import Component
from facetrec.content.tuning import ADAPTERS, AdapterModule, adapter_config, sentence_transformer_layout, wrap
from facetrec.errors import ConfigError, DataError
from facetrec.evaluation.evalset import EvalSet
from facetrec.ranking.retrieval import CandidatePool
from facetrec.types import Interactions, ItemCatalog

HEADS = ("auto", "score", "yesno")
BLENDS = (0.0, 0.25, 0.5, 0.75)
"""Weights of the retriever's score tried on validation (1 would be the retriever's own order)."""
QUESTION = "Will the user choose the candidate next? Answer:"


@dataclass(frozen=True)
class LMRerankConfig:
    """What the re-ranker reads, its model and adapter, and how it is trained."""

    model: str = "minilm"
    """Base model: "minilm" (the bundled all-MiniLM-L6-v2) or a local path or Hub name."""
    head: str = "auto"
    """"score" (a cross-encoder: a one-logit head over the pair), "yesno" (a decoder LM's " yes"
    minus " no" logits) or "auto": "score" for encoders, "yesno" for decoder-only LMs."""
    top: int = 20
    """Candidates re-scored per request (the retriever's best)."""
    history_items: int = 5
    """Most recent history items in the history text."""
    item_tokens: int = 32
    """Each item's text is cut to this many tokens."""
    template: str = "default"
    """Item-text template (content/text.py TEMPLATES)."""
    tuning: str = "lora"
    """The peft adapter trained: "lora", "adalora" or "ia3"."""
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    targets: str = ""
    """Layers to adapt (module names joined by commas); "" takes peft's default for the architecture."""
    negatives: int = 7
    """Hard negatives per training pair, drawn from the retriever's ``top`` for its history."""
    examples: int = 2000
    """Most training pairs (drawn from every (history, next event) pair of the training events)."""
    valid_users: int = 500
    """Most validation users that early stopping and the blend weight are judged on."""
    blend: float | None = None
    """Weight of the retriever's standardised score next to the model's; None: chosen on validation."""
    epochs: int = 3
    patience: int | None = 1
    """Stop after this many epochs without a better validation NDCG@10 (None: train every epoch,
    and read the validation set once, for the blend)."""
    lr: float = 3e-4
    batch_size: int = 8
    """Training pairs (each with its negatives) per optimiser step."""
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    max_minutes: float | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        name = type(self).__name__
        if self.head not in HEADS:
            raise ConfigError(f"{name}.head: must be one of {HEADS}, got {self.head!r}")
        if self.tuning not in ADAPTERS:
            raise ConfigError(f"{name}.tuning: must be one of {ADAPTERS}, got {self.tuning!r}")
        for field in ("top", "history_items", "item_tokens", "rank", "negatives", "examples", "valid_users"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}.{field}: must be an integer >= 1, got {value!r}")
        if self.blend is not None and not 0 <= self.blend <= 1:
            raise ConfigError(f"{name}.blend: must be in [0, 1] or None (chosen on validation), got {self.blend}")
        self.train_config()  # validates the training fields

    def train_config(self) -> Any:
        from facetrec.training import TrainConfig

        return TrainConfig(epochs=self.epochs, patience=self.patience, seed=self.seed, device=self.device,
                           progress=self.progress, batch_size=self.batch_size, lr=self.lr, precision=self.precision,
                           max_minutes=self.max_minutes)  # fmt: skip


def model_root(config: LMRerankConfig) -> Path:
    """The directory of the base model's transformer weights and tokenizer."""
    from facetrec.content.models import bundled_minilm, resolve_model

    source = (bundled_minilm() or "all-MiniLM-L6-v2") if config.model == "minilm" else config.model
    return sentence_transformer_layout(resolve_model(source, sentence_transformers=True))[0]


def load_tokenizer(config: LMRerankConfig) -> Any:
    """The base model's tokenizer, padding on the right (with its end-of-text token if it has no pad)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_root(config)))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right"
    return tokenizer


class PairScorer(AdapterModule):
    """The model with its adapter: tokenised (history, candidate) inputs -> one score per pair."""

    def __init__(self, config: LMRerankConfig, total_steps: int = 1) -> None:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification
        from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

        root = model_root(config)
        kind = AutoConfig.from_pretrained(str(root)).model_type
        head = (
            config.head if config.head != "auto" else "score" if kind in MODEL_FOR_MASKED_LM_MAPPING_NAMES else "yesno"
        )
        tokenizer = load_tokenizer(config)
        if head == "score":
            model = AutoModelForSequenceClassification.from_pretrained(str(root), num_labels=1, dtype=torch.float32)
            model.config.pad_token_id = tokenizer.pad_token_id
            task = "SEQ_CLS"  # peft trains the new head whole beside the adapter
        else:
            model = AutoModelForCausalLM.from_pretrained(str(root), dtype=torch.float32)
            task = "CAUSAL_LM"
        if hasattr(model.config, "use_cache"):
            model.config.use_cache = False
        settings = adapter_config(config.tuning, rank=config.rank, alpha=config.alpha, dropout=config.dropout,
                                  targets=config.targets, total_steps=total_steps, task_type=task)  # fmt: skip
        super().__init__(wrap(model, settings))
        self.head, self.tokenizer = head, tokenizer
        self.answers = _answer_tokens(tokenizer) if head == "yesno" else None
        if head == "yesno":
            tokenizer.truncation_side = "left"  # a long prompt loses its oldest history, never the question

    def encode(self, queries: list[str], candidates: list[str], max_tokens: int) -> dict[str, torch.Tensor]:
        """Token tensors [pairs, length] for (history text, candidate text) pairs."""
        if self.head == "score":
            enc = self.tokenizer(queries, candidates, truncation="longest_first", max_length=max_tokens,
                                 padding=True, return_tensors="pt")  # fmt: skip
        else:
            prompts = [f"{q}\nCandidate: {c}\n{QUESTION}" for q, c in zip(queries, candidates, strict=True)]
            enc = self.tokenizer(prompts, truncation=True, max_length=max_tokens, padding=True, return_tensors="pt")
        return {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """One score per pair (higher: more likely the user's next item)."""
        out = self.__dict__.get("merged", self.peft)(**inputs)
        if self.head == "score":
            return out.logits[:, 0].float()
        last = inputs["attention_mask"].sum(1) - 1  # right padding: the last real token answers
        logits = out.logits[torch.arange(len(last), device=last.device), last].float()
        return logits[:, self.answers[0]] - logits[:, self.answers[1]]

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Listwise softmax: each group's first pair (the true next item) against its negatives."""
        groups, size, width = batch["input_ids"].shape
        inputs = {k: v.reshape(groups * size, width) for k, v in batch.items()}
        self.begin_step()
        scores = self(inputs).view(groups, size)
        return nn.functional.cross_entropy(scores, scores.new_zeros(groups, dtype=torch.long)) + self.penalty()

    def merge(self) -> None:
        """Serve from the merged weights (the adapter folded into the base layers: no extra matmuls)."""
        self.__dict__["merged"] = self.peft.merge_and_unload().eval()


def _answer_tokens(tokenizer: Any) -> tuple[int, int]:
    """The token ids of " yes" and " no" (their last token each), or a ConfigError."""
    ids = [tokenizer(word, add_special_tokens=False)["input_ids"] for word in (" yes", " no")]
    unknown = tokenizer.unk_token_id
    if not all(ids) or ids[0][-1] == ids[1][-1] or unknown in (ids[0][-1], ids[1][-1]):
        raise ConfigError("LMRerankConfig.head 'yesno': the tokenizer has no distinct tokens for ' yes' and ' no'")
    return ids[0][-1], ids[1][-1]


class PairGroups:
    """Training groups for the shared loop (a ``Batches``): pair ``0`` of each group is the next
    item, the rest its hard negatives; tokenised once, cut to the batch's longest pair."""

    def __init__(self, inputs: dict[str, torch.Tensor], group: int) -> None:
        self.inputs = {k: v.view(-1, group, v.shape[-1]) for k, v in inputs.items()}

    def __len__(self) -> int:
        return len(self.inputs["input_ids"])

    def batch(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        width = int(self.inputs["attention_mask"][rows].sum(-1).max())
        return {k: v[rows, :, :width] for k, v in self.inputs.items()}


class LMReranker(Component[LMRerankConfig]):
    """Re-scores a request's best candidates with a tuned language model (see the module docstring).

    ``fit(train, catalog, retriever, valid)`` trains the adapter; ``bind(catalog)`` readies a fitted
    (or loaded) re-ranker to serve a catalogue; ``rescore(pool, history)`` is the ranking step.
    Fitted state: ``adapter_`` (the adapter, and a cross-encoder's head, as one float32 vector),
    ``blend_`` (the retriever's weight), ``trainable_params_`` and ``base_params_``.
    """

    config_class = LMRerankConfig

    adapter_: np.ndarray
    blend_: float
    trainable_params_: int
    base_params_: int
    valid_ndcg_: float
    epochs_: int
    fit_seconds_: float

    def __init__(self, config: LMRerankConfig | None = None, **overrides: object) -> None:
        super().__init__(config, **overrides)
        self._model: PairScorer | None = None
        self._texts: list[str] | None = None

    # ------------------------------------------------------------------ fitting

    def fit(self, train: Interactions, catalog: ItemCatalog, retriever: Any, valid: EvalSet | None = None) -> Self:
        """Train on (history, next event) pairs of ``train`` with hard negatives from ``retriever``
        (a fitted scorer over the same items); ``valid`` stops training early and picks the blend."""
        from facetrec.training import fit_loop, seed_everything

        cfg = self.config
        if valid is None and cfg.blend is None:
            raise DataError("LMReranker.fit: pass valid= (the blend weight is chosen on it) or set blend")
        started = time.perf_counter()
        self._model = None
        self._texts = self._item_texts(catalog)
        history, targets = _pairs(train.sorted(), cfg.examples, cfg.seed)
        if not len(targets):
            raise DataError("LMReranker.fit: no user has 2 or more training events; nothing to learn from")
        candidates = _top_candidates(retriever, history, cfg.top)
        offsets = history.user_offsets()
        rng = np.random.default_rng(cfg.seed)
        groups, queries = [], []
        for row, target in enumerate(targets):
            others = candidates[row][candidates[row] != target]
            negatives = rng.choice(others, min(cfg.negatives, len(others)), replace=False)
            if len(negatives) < cfg.negatives:  # the retriever found too few: fill from the catalogue
                negatives = np.r_[negatives, rng.integers(0, len(self._texts), cfg.negatives - len(negatives))]
            groups.append(np.r_[target, negatives])
            queries.append(self._query(history.item_idx[offsets[row] : offsets[row + 1]]))
        seed_everything(cfg.seed)
        model = PairScorer(cfg, total_steps=cfg.epochs * -(-len(groups) // cfg.batch_size))
        pairs = model.encode(list(np.repeat(queries, cfg.negatives + 1)),
                             [self._texts[i] for i in np.concatenate(groups)], self._max_tokens)  # fmt: skip
        self._model = model
        check = _Validation(self, retriever, valid) if valid is not None else None

        def validate() -> float:  # the model's own order
            return check.ndcg(check.model_scores(), 0.0)

        stopping = check is not None and cfg.patience is not None  # else validation only picks the blend
        run = fit_loop(model, cfg.train_config(), data=PairGroups(pairs, cfg.negatives + 1),
                       validate=validate if stopping else None, description="LMReranker")  # fmt: skip
        model.eval()
        self.adapter_ = model.adapter_vector()
        self.trainable_params_, self.base_params_ = model.trainable_params, model.base_params
        if check is None:
            self.blend_, self.valid_ndcg_ = float(cfg.blend), math.nan
        else:
            scores = check.model_scores()
            tried = {w: check.ndcg(scores, w) for w in (BLENDS if cfg.blend is None else (cfg.blend,))}
            self.blend_ = max(tried, key=lambda w: (tried[w], -w))
            self.valid_ndcg_ = tried[self.blend_]
        self.epochs_ = len(run.losses)
        self.fit_seconds_ = time.perf_counter() - started
        return self

    # ------------------------------------------------------------------ serving

    def bind(self, catalog: ItemCatalog | None) -> Self:
        """Read the item texts of ``catalog`` (the ranker's) and load the model, adapter merged."""
        self._require_fitted("bind")
        self._texts = self._item_texts(catalog)
        self._loaded()
        return self

    def _loaded(self) -> PairScorer:
        if self._model is None:
            from facetrec.training import resolve_device

            model = PairScorer(self.config)
            model.load_adapter_vector(self.adapter_, f"{type(self).__name__}.adapter_")
            model.eval().merge()
            self._model = model.to(resolve_device(self.config.device))
        return self._model

    def scores(self, history: np.ndarray, items: np.ndarray) -> np.ndarray:
        """float32 [len(items)]: the model's score for each of ``items`` as the next item after
        ``history`` (item indices, oldest first)."""
        return self.pair_scores([np.asarray(history)] * len(items), items)

    @torch.no_grad()
    def pair_scores(self, histories: list[np.ndarray], items: np.ndarray, batch: int = 64) -> np.ndarray:
        """float32 [len(items)]: the score of ``items[r]`` after ``histories[r]``, ``batch`` pairs per pass."""
        if self._texts is None:
            raise ConfigError("LMReranker: call bind(catalog) (or fit) before scoring: it reads item texts")
        model = self._loaded()
        device = model.adapter[0].device
        out = []
        for start in range(0, len(items), batch):
            queries = [self._query(h) for h in histories[start : start + batch]]
            texts = [self._texts[int(i)] for i in items[start : start + batch]]
            inputs = model.encode(queries, texts, self._max_tokens)
            out.append(model({k: v.to(device) for k, v in inputs.items()}).cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)

    def rescore(self, pool: CandidatePool, history: np.ndarray) -> CandidatePool:
        """``pool`` with its ``top`` most relevant candidates re-ordered by :meth:`order`; they keep
        the relevance values of the places they take, the others are untouched."""
        if not len(pool.idx):
            return pool
        head = np.lexsort((pool.idx, -pool.relevance))[: self.config.top]
        order = self.order(history, pool.idx[head], pool.relevance[head])
        relevance = np.array(pool.relevance, dtype=np.float64)
        relevance[head[order]] = np.sort(relevance[head])[::-1]
        return replace(pool, relevance=relevance)

    def order(self, history: np.ndarray, items: np.ndarray, base: np.ndarray) -> np.ndarray:
        """Positions of ``items`` (the retriever's best, with its scores ``base``) best first by
        :func:`blended` with the fitted weight."""
        return blended(self.scores(history, items), base, self.blend_)

    # ------------------------------------------------------------------ text

    @property
    def _max_tokens(self) -> int:
        return (self.config.history_items + 1) * (self.config.item_tokens + 2) + 24

    def _item_texts(self, catalog: ItemCatalog | None) -> list[str]:
        from facetrec.content.text import TEMPLATES, item_texts

        if catalog is None or not any(any(str(v).strip() for v in values) for values in catalog.text.values()):
            raise ConfigError("LMReranker reads item text, and this catalogue has none")
        tokenizer = self._model.tokenizer if self._model is not None else load_tokenizer(self.config)
        return item_texts(catalog, TEMPLATES[self.config.template], tokenizer=tokenizer,
                          max_tokens=self.config.item_tokens)  # fmt: skip

    def _query(self, history: np.ndarray) -> str:
        recent = history[-self.config.history_items :]
        return "User history: " + " | ".join(self._texts[int(i)] for i in recent)


def blended(model: np.ndarray, base: np.ndarray, blend: float) -> np.ndarray:
    """Positions best first by ``(1 - blend) z(model) + blend z(base)``, z standardising over the
    candidates (the two scores have unrelated scales); ties keep the retriever's order."""
    mixed = (1 - blend) * _z(model) + blend * _z(base)
    return np.lexsort((np.arange(len(mixed)), -mixed))


def _z(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, np.float64)
    spread = values.std()
    return (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)


def _pairs(train: Interactions, limit: int, seed: int) -> tuple[Interactions, np.ndarray]:
    """Up to ``limit`` (history, next event) pairs drawn from ``train`` (sorted by user and time):
    the histories, one pseudo-user per pair holding the events before it, and the next items."""
    from facetrec.ids import Vocabulary

    offsets = train.user_offsets()
    first = offsets[train.user_idx]
    positions = np.flatnonzero(np.arange(len(train)) > first)  # every event with one before it
    chosen = np.sort(np.random.default_rng(seed).choice(positions, min(limit, len(positions)), replace=False))
    rows = [np.arange(first[p], p) for p in chosen]
    events = train.take(np.concatenate(rows) if rows else np.zeros(0, np.int64))
    pseudo = np.repeat(np.arange(len(chosen)), [len(r) for r in rows]).astype(np.int32)
    users = Vocabulary(map(str, range(len(chosen))), "user")
    history = Interactions(pseudo, events.item_idx, events.timestamp, users, train.items, events.event,
                           events.rating, events.weight)  # fmt: skip
    return history, train.item_idx[chosen]


def _top_candidates(retriever: Any, history: Interactions, top: int, block: int = 512) -> list[np.ndarray]:
    """Each pseudo-user's ``top`` items by ``retriever``'s scores, history items excluded."""
    out: list[np.ndarray] = []
    seen = history.matrix("ones").tocsr()
    for start in range(0, history.n_users, block):
        users = np.arange(start, min(start + block, history.n_users))
        scores = np.asarray(retriever.score(history, users), np.float64)
        scores[seen[users].nonzero()] = -np.inf
        best = np.argpartition(-scores, min(top, scores.shape[1] - 1), axis=1)[:, :top]
        for row, items in zip(scores, best, strict=True):
            out.append(items[np.lexsort((items, -row[items]))])
    return out


class _Validation:
    """NDCG@10 of the re-ranked ``top`` on (at most ``valid_users``) validation targets: a target
    outside the retriever's ``top`` scores 0, as it would in the served list."""

    def __init__(self, reranker: LMReranker, retriever: Any, valid: EvalSet) -> None:
        cfg = reranker.config
        history = valid.history.sorted()
        users = np.unique(valid.targets.user_idx)
        users = users[np.diff(history.user_offsets())[users] > 0]
        users = np.sort(np.random.default_rng(cfg.seed).permutation(users)[: cfg.valid_users])
        offsets = history.user_offsets()
        self.reranker = reranker
        self.histories = [history.item_idx[offsets[u] : offsets[u + 1]] for u in users]
        scores = np.asarray(retriever.score(history, users), np.float64)
        self.candidates, self.base, self.targets = [], [], []
        targets = valid.targets
        for row, u in enumerate(users):
            s = scores[row].copy()
            s[self.histories[row]] = -np.inf
            best = np.argpartition(-s, cfg.top)[: cfg.top]
            best = best[np.lexsort((best, -s[best]))]
            self.candidates.append(best)
            self.base.append(s[best])
            self.targets.append(set(targets.item_idx[targets.user_idx == u].tolist()))

    def model_scores(self) -> list[np.ndarray]:
        """The model's scores of each user's candidates, in evaluation mode."""
        model = self.reranker._model
        was = model.training
        model.eval()
        histories = [h for h, items in zip(self.histories, self.candidates, strict=True) for _ in items]
        flat = self.reranker.pair_scores(histories, np.concatenate(self.candidates))
        model.train(was)
        return np.split(flat, np.cumsum([len(c) for c in self.candidates])[:-1])

    def ndcg(self, scores: list[np.ndarray], blend: float) -> float:
        """Mean NDCG@10 of the candidates ordered by :func:`blended` (one target per user: 1/log2(rank + 2))."""
        total = 0.0
        for model, items, base, wanted in zip(scores, self.candidates, self.base, self.targets, strict=True):
            ranked = items[blended(model, base, blend)][:10]
            total += sum(1 / math.log2(r + 2) for r, i in enumerate(ranked) if int(i) in wanted)
        return total / max(len(scores), 1)


def load_reranker(path: str | Path, catalog: ItemCatalog | None) -> LMReranker:
    """A saved re-ranker ready to serve ``catalog`` (RankConfig ``rerank_model``)."""
    return LMReranker.load(path).bind(catalog)
