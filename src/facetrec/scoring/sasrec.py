"""SASRec+: a causal Transformer over each user's items, trained with a full softmax.

SASRec (Kang & McAuley, ICDM 2018) reads a user's items oldest first and predicts the next item
at every position. Klenitskiy & Vasilev (RecSys 2023) showed that replacing its sampled binary
loss with cross-entropy over the whole catalogue ("SASRec+") makes it beat BERT4Rec; that is the
loss here. Items are shifted by one so that 0 is padding; sequences are left-padded, so the last
column is always the most recent event and position embeddings count back from it. Every
(item, next item) pair of the training data is used once per epoch: a history longer than
``max_len`` is cut into several training rows rather than truncated. Above
``full_softmax_max_items`` items the softmax is sampled, log-Q corrected
(:mod:`facetrec.interests.softmax`), which makes a CPU epoch several times cheaper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facetrec.errors import DataError
from facetrec.evaluation.evalset import EvalSet
from facetrec.interests.sequences import (
    EVAL_BATCH,
    NextItemValidation,
    SequenceModelConfig,
    TrainingWindows,
    training_rows,
    trim,
    windows,
)
from facetrec.interests.softmax import draw_negatives, log_q_logits, popularity_distribution
from facetrec.interests.transformer import Block, causal_allowed, init_weights
from facetrec.scoring.base import Capabilities, Scorer
from facetrec.scoring.propensity import ipw_weights
from facetrec.training import fit_loop, load_flat_weights, seed_everything
from facetrec.types import Interactions, ItemCatalog


@dataclass(frozen=True)
class SASRecConfig(SequenceModelConfig):
    """SASRec+ has no settings beyond those every sequence model shares."""


# --------------------------------------------------------------------------- the model


class SASRec(nn.Module):
    """Item and position embeddings, causal Transformer blocks, a final layer norm.

    ``forward`` maps shifted item ids [batch, width] (0 = padding on the left, width <=
    ``max_len``) to one state per position [batch, width, hidden]; the state at position t has
    read items 0..t only, and padding is never attended to. ``logits`` scores every item from a
    state with the item embedding itself (tied weights), so item ``i`` is column ``i``.
    """

    def __init__(
        self,
        n_items: int,
        max_len: int,
        hidden: int,
        layers: int,
        heads: int,
        dropout: float,
        counts: np.ndarray | None = None,
        negatives: int = 0,
        target_weights: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.max_len = max_len
        self.negatives = negatives
        # Training popularity for the sampled softmax (None: full softmax, or an inference network).
        self.register_buffer("q", None if counts is None else popularity_distribution(counts), persistent=False)
        # Inverse-propensity weight of each target item (None: every target counts once).
        weights = None if target_weights is None else torch.from_numpy(np.asarray(target_weights, np.float32))
        self.register_buffer("target_weights", weights, persistent=False)
        self.item = nn.Embedding(n_items + 1, hidden, padding_idx=0)
        self.position = nn.Embedding(max_len, hidden)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(hidden, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden)
        self.apply(init_weights)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        width = seq.shape[1]
        padding = seq == 0
        real = (~padding).unsqueeze(-1).to(self.item.weight.dtype)
        # Right-aligned positions: the most recent item is always position max_len - 1.
        positions = torch.arange(self.max_len - width, self.max_len, device=seq.device)
        x = self.dropout(self.item(seq) + self.position(positions)) * real
        allowed = causal_allowed(padding)
        for block in self.blocks:
            x = block(x, allowed) * real  # padded states stay exactly zero
        return self.norm(x) * real

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        return states @ self.item.weight[1:].T

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy over the whole catalogue (the "+" of SASRec+) at every position of
        ``batch["items"]`` whose ``batch["target"]`` (the next item, 0 = none) is real; with
        training counts and ``negatives``, the log-Q corrected sampled softmax instead. With
        ``target_weights`` each position's loss is weighted by its target's weight."""
        target = batch["target"]
        real = target > 0
        states, want = self(batch["items"])[real], target[real] - 1
        if self.q is None or not self.negatives:
            logits, column = self.logits(states), want
        else:
            negatives = draw_negatives(self.q, self.negatives)
            logits = log_q_logits(states, self.item.weight[1:], want, negatives, self.q)
            column = torch.zeros_like(want)
        if self.target_weights is None:
            return F.cross_entropy(logits, column)
        return (F.cross_entropy(logits, column, reduction="none") * self.target_weights[want]).mean()


def _training_sequences(items: np.ndarray, offsets: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and next-item targets [rows, width] that use every (item, next item) pair once."""
    start, end = training_rows(offsets, width)
    # The input at column c is the event just before the target at column c.
    return windows(items, start, end, width), windows(items, start + 1, end + 1, width)


def _last_windows(history: Interactions, users: np.ndarray, width: int) -> np.ndarray:
    """Each user's last ``width`` items [len(users), width] from a sorted ``history``."""
    offsets = history.user_offsets()
    return windows(history.item_idx, offsets[users], offsets[users + 1], width)


@torch.no_grad()
def _next_item_scores(model: SASRec, seq: np.ndarray, popularity: np.ndarray) -> torch.Tensor:
    """Scores [len(seq), n_items]: logits from each sequence's last state; ``popularity`` for an
    empty sequence, whose state is meaningless (all padding)."""
    model.eval()
    device = next(model.parameters()).device
    fallback = torch.from_numpy(popularity).to(device)
    out = [fallback.new_zeros(0, len(popularity))]
    for chunk in torch.from_numpy(seq).split(EVAL_BATCH):
        chunk = chunk[:, trim(chunk)].to(device, torch.long)
        logits = model.logits(model(chunk)[:, -1])
        out.append(torch.where((chunk[:, -1] == 0)[:, None], fallback, logits))
    return torch.cat(out)


# --------------------------------------------------------------------------- the scorer


class SASRecScorer(Scorer[SASRecConfig]):
    """Scores every item as the next one a user will pick, from their last ``max_len`` events.

    A user without events gets the training popularity of each item: a fresh session has
    nothing else to go on. The fitted weights are one flat float32 array, ``weights_``, in the
    parameter order of a :class:`SASRec` built from the config, so save/load needs no pickle.
    """

    config_class = SASRecConfig
    capabilities = Capabilities(needs=frozenset({"ids", "time", "events"}))

    weights_: np.ndarray
    popularity_: np.ndarray
    losses_: np.ndarray
    valid_scores_: np.ndarray
    best_epoch_: int | None
    fit_seconds_: float

    def __init__(self, config: SASRecConfig | None = None, **overrides: object) -> None:
        super().__init__(config, **overrides)
        self._net: tuple[np.ndarray, SASRec] | None = None  # the model built from weights_, cached

    def fit(self, train: Interactions, catalog: ItemCatalog | None = None, valid: EvalSet | None = None) -> Self:
        cfg = self.config
        if valid is not None and valid.history.n_items != train.n_items:
            raise DataError(
                f"SASRecScorer.fit: valid.history has {valid.history.n_items} items but train has {train.n_items}; "
                "both must use the training item vocabulary"
            )
        train = train.sorted()
        offsets = train.user_offsets()
        inputs, targets = _training_sequences(train.item_idx, offsets, cfg.max_len)
        if not len(inputs):
            raise DataError("SASRecScorer.fit: no user has 2 or more events; a next-item model needs pairs")
        counts = np.bincount(train.item_idx, minlength=train.n_items).astype(np.float32)
        popularity = counts / max(1.0, float(counts.max()))
        seed_everything(cfg.seed)
        sampled = int((counts > 0).sum()) > cfg.full_softmax_max_items
        model = SASRec(
            train.n_items,
            cfg.max_len,
            cfg.hidden,
            cfg.layers,
            cfg.heads,
            cfg.dropout,
            counts=counts if sampled else None,
            negatives=cfg.negatives if sampled else 0,
            target_weights=ipw_weights(counts, cfg.ipw_power) if cfg.ipw_power > 0 else None,
        )
        validate = None
        if valid is not None:
            validation = NextItemValidation(valid)

            def scores(history: Interactions, users: np.ndarray) -> torch.Tensor:
                return _next_item_scores(model, _last_windows(history, users, cfg.max_len), popularity)

            def validate() -> float:
                return validation(scores)

        windows = {"items": inputs.astype(np.int64), "target": targets.astype(np.int64)}
        data = TrainingWindows(windows, shuffle=cfg.shuffle_order)
        history = fit_loop(model, cfg.train_config(), data=data, validate=validate, description="SASRec")
        model.eval()

        self.popularity_ = popularity
        self.weights_ = nn.utils.parameters_to_vector(model.parameters()).detach().cpu().numpy()
        self.losses_ = np.asarray(history.losses, dtype=np.float32)
        self.valid_scores_ = np.asarray(history.scores, dtype=np.float32)
        self.best_epoch_ = history.best_epoch
        self.fit_seconds_ = history.seconds
        self.n_items_ = train.n_items
        self._net = (self.weights_, model)
        return self

    def _model(self) -> SASRec:
        """The network for ``weights_``, rebuilt once after load (or a change of weights)."""
        if self._net is not None and self._net[0] is self.weights_:
            return self._net[1]
        cfg = self.config
        model = SASRec(self.n_items_, cfg.max_len, cfg.hidden, cfg.layers, cfg.heads, cfg.dropout)
        model = load_flat_weights(model, self.weights_, type(self).__name__, cfg.device)
        self._net = (self.weights_, model)
        return model

    def _score(self, history: Interactions, users: np.ndarray) -> np.ndarray:
        seq = _last_windows(history.sorted(), users, self.config.max_len)
        return _next_item_scores(self._model(), seq, self.popularity_).cpu().numpy()
