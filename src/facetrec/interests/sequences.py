"""Behaviour sequences as fixed-width tensors, the training rows the shared loop batches, and
the next-item validation both sequence models use.

Sequences are left-padded and right-aligned: the last column is always the most recent event,
and column values are shifted by one so that 0 means padding. A history longer than the width
is cut into several training rows, so every (event, next event) pair is trained on once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from facetrec.errors import ConfigError
from facetrec.evaluation.evalset import EvalSet
from facetrec.scoring.propensity import check_power
from facetrec.training import TrainConfig

EVAL_BATCH = 256
"""Users encoded at once when scoring and validating."""


@dataclass(frozen=True)
class SequenceModelConfig:
    """Settings every Transformer sequence model shares (SASRec+, sasrec-text, the facet model)."""

    max_len: int = 200
    """Most recent events the model reads when scoring (and the length of a training row)."""
    hidden: int = 64
    """Width of item vectors and Transformer states."""
    layers: int = 2
    """Transformer blocks."""
    heads: int = 1
    """Attention heads per block; must divide ``hidden``."""
    dropout: float = 0.4
    """Dropout on the inputs and on each attention and feed-forward output."""
    lr: float = 1e-3
    """Adam learning rate."""
    batch_size: int = 128
    """Training rows (windows of a user's history) per optimiser step."""
    epochs: int = 200
    """Most passes over the training rows."""
    patience: int | None = 10
    """With a validation set: stop after this many epochs without a better NDCG@10 (None: never)."""
    seed: int = 0
    """Seeds weight initialisation, batch order and any training-time sampling."""
    device: str = "auto"
    """"auto" (CUDA when present, else CPU), "cpu", "cuda", "cuda:N" or "mps"."""
    checkpoint_dir: str | None = None
    """Checkpoint every epoch here and resume from it (None: no checkpoints)."""
    progress: bool = True
    """Report training progress on stderr (a bar on a terminal, else a line per epoch)."""
    precision: str = "fp32"
    """"fp32"; "bf16" (mixed precision on CPU or CUDA); "fp16" (mixed precision, CUDA only)."""
    max_minutes: float | None = None
    """Training budget in minutes: no epoch starts after it (None: no limit); the best epoch is kept."""
    full_softmax_max_items: int = 100_000
    """Above this many items with training events, train with a sampled softmax (log-Q corrected,
    :mod:`facetrec.interests.softmax`). On a CPU the full softmax is most of a step from a few
    thousand items on (the facet model pays it once per interest); 0: always sampled."""
    negatives: int = 1024
    """Shared negatives per step for the sampled softmax, drawn by training popularity."""
    shuffle_order: bool = False
    """For data whose order is not real (TikTok's clicks have no times): every training step reads
    each row's events in a fresh random order, so the model learns which items go together rather
    than an order that is not there, and sees new prefixes every epoch."""

    ipw_power: float = 0.0
    """Popularity debiasing (:mod:`facetrec.scoring.propensity`): each training target's loss is
    weighted by its item's training events ** -ipw_power, normalised to mean 1 (0: off)."""

    def __post_init__(self) -> None:
        name = type(self).__name__
        for field in ("max_len", "hidden", "layers", "heads", "batch_size", "negatives"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}.{field}: must be an integer >= 1, got {value!r}")
        if self.hidden % self.heads:
            raise ConfigError(f"{name}.heads: must divide hidden ({self.hidden}), got {self.heads}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"{name}.dropout: must be in [0, 1), got {self.dropout}")
        if not self.lr > 0:
            raise ConfigError(f"{name}.lr: must be > 0, got {self.lr}")
        check_power(name, self.ipw_power)
        limit = self.full_softmax_max_items
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ConfigError(f"{name}.full_softmax_max_items: must be an integer >= 0, got {limit!r}")
        self.train_config()  # validates the shared training fields

    def train_config(self) -> TrainConfig:
        """The settings the shared training loop reads."""
        return TrainConfig(
            epochs=self.epochs,
            patience=self.patience,
            seed=self.seed,
            device=self.device,
            checkpoint_dir=self.checkpoint_dir,
            progress=self.progress,
            batch_size=self.batch_size,
            lr=self.lr,
            precision=self.precision,
            max_minutes=self.max_minutes,
        )


def window_positions(start: np.ndarray, end: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row r reads positions ``end[r] - width .. end[r] - 1`` clipped at ``start[r]``: (source, real)."""
    length = np.clip(end - start, 0, width)
    source = end[:, None] - width + np.arange(width)
    real = np.arange(width) >= width - length[:, None]
    return np.where(real, source, 0), real


def windows(values: np.ndarray, start: np.ndarray, end: np.ndarray, width: int) -> np.ndarray:
    """Row r: the last ``width`` of ``values[start[r]:end[r]]``, shifted by 1, right-aligned, 0-padded."""
    source, real = window_positions(start, end, width)
    out = np.zeros(source.shape, dtype=np.int32)
    out[real] = values[source[real]] + 1
    return out


def training_rows(offsets: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) of each training row's *input* events; its targets are the events one later.

    A user with more than ``width`` (event, next event) pairs gets several rows, the most recent
    first, so a long history is not truncated to its last ``width`` events.
    """
    pairs = np.maximum(np.diff(offsets) - 1, 0)
    rows = -(-pairs // width)
    user = np.repeat(np.arange(len(pairs)), rows)
    back = np.arange(len(user)) - np.repeat(np.cumsum(rows) - rows, rows)  # 0: the user's most recent row
    start, end = offsets[user], offsets[user + 1] - back * width
    return start, end - 1


def trim(seq: torch.Tensor) -> slice:
    """The columns of a left-padded batch that hold at least one item (saves attention work)."""
    width = int((seq > 0).sum(1).max())
    return slice(seq.shape[1] - max(width, 1), None)


def trimmed(windows: Mapping[str, np.ndarray], rows: np.ndarray | slice) -> dict[str, torch.Tensor]:
    """Rows of right-aligned windows (``windows["items"]`` and anything aligned with it) as
    tensors, cut to the columns where some row has an event."""
    cols = trim(torch.from_numpy(windows["items"][rows]))
    return {k: torch.from_numpy(v[rows][:, cols]) for k, v in windows.items()}


class TrainingWindows:
    """A next-item model's training rows, as the shared loop batches them (a ``Batches``).

    ``windows`` holds ``items`` [rows, width] (and any per-event inputs aligned with it) and
    ``target``, the events one later; :func:`training_rows` says which events each row reads.
    With ``shuffle``, each batch permutes every row's events (and their inputs) at random and
    predicts each from the ones before it in that order; a row's last target stays its own.
    """

    def __init__(self, windows: Mapping[str, np.ndarray], shuffle: bool = False) -> None:
        self.windows, self.shuffle = dict(windows), shuffle

    def __len__(self) -> int:
        return len(self.windows["target"])

    def batch(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        batch = trimmed(self.windows, rows.numpy())
        return shuffled(batch) if self.shuffle else batch

    @staticmethod
    def weight(batch: Mapping[str, torch.Tensor]) -> int:
        """Predictions in a batch: the positions with a real target, which its loss averages over."""
        return int((batch["target"] > 0).sum())


def shuffled(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``batch`` with each row's real events in a random order (torch's seeded generator); padding
    stays on the left, every per-event input moves with its event, and the targets follow the new
    order (the last column keeps the row's own next event)."""
    items = batch["items"]
    order = torch.rand(items.shape).masked_fill(items == 0, -1.0).argsort(1)  # padding sorts first

    def reordered(values: torch.Tensor) -> torch.Tensor:  # per-event inputs may carry trailing axes
        return values.gather(1, order.view(*order.shape, *[1] * (values.dim() - 2)).expand_as(values))

    out = {k: reordered(v) for k, v in batch.items() if k != "target"}
    following = torch.cat([out["items"][:, 1:], batch["target"][:, -1:]], 1)
    out["target"] = following.masked_fill(out["items"] == 0, 0)
    return out


def ndcg_at_10(scores: torch.Tensor, seen: torch.Tensor, rows: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """NDCG@10 per target under full ranking, with one relevant item per target.

    ``scores`` [users, items]; ``seen`` marks history items, which are never ranked; target t
    is item ``items[t]`` of user row ``rows[t]``. With one relevant item NDCG is
    1 / log2(rank + 2) when its 0-based rank is below 10, else 0. Ties rank the target last, so
    a constant score earns nothing.
    """
    scores = scores.masked_fill(seen, -math.inf)
    target = scores[rows, items]
    rank = (scores[rows] >= target[:, None]).sum(1) - 1
    return torch.where(rank < 10, 1.0 / torch.log2(rank + 2.0), 0.0)


class NextItemValidation:
    """Full-ranking NDCG@10 of a validation set, history excluded: the early-stopping signal.

    ``score_users(history, users)`` returns a torch tensor [len(users), n_items] for users of
    ``valid.history``; it is called in batches of :data:`EVAL_BATCH`.
    """

    def __init__(self, valid: EvalSet) -> None:
        self.history = valid.history.sorted()
        self.users = np.unique(valid.targets.user_idx)
        self.seen = self.history.matrix("ones")[self.users].tocsr()
        self.rows = np.searchsorted(self.users, valid.targets.user_idx)
        self.items = valid.targets.item_idx.astype(np.int64)

    def __call__(self, score_users: Callable[[object, np.ndarray], torch.Tensor]) -> float:
        total = 0.0
        for start in range(0, len(self.users), EVAL_BATCH):
            stop = start + EVAL_BATCH
            scores = score_users(self.history, self.users[start:stop])
            seen = torch.from_numpy(self.seen[start:stop].toarray() > 0).to(scores.device)
            mine = (self.rows >= start) & (self.rows < stop)
            rows = torch.from_numpy(self.rows[mine] - start).to(scores.device)
            items = torch.from_numpy(self.items[mine]).to(scores.device)
            total += float(ndcg_at_10(scores, seen, rows, items).sum())
        return total / max(len(self.rows), 1)
