"""From a behaviour sequence to K interest vectors.

A causal Transformer reads the history (item vectors plus position, time-gap, event-type and
signal embeddings). Self-attentive multi-head pooling (ComiRec-SA, Cen et al., KDD 2020) then
forms interests at every position t, each a different attention-weighted mean of the history
up to t: head k learns to attend to one kind of item, so a user who watches both horror and
cooking gets one vector near each instead of one vector between them. ``pooling="last"``
instead keeps the last state as the single interest (SASRec's user vector); ``"hybrid"``
(the default) keeps both: interest 0 is the last state (the most recent intent, which carries
the sequential signal a mean of the history loses) and interests 1..K-1 are attention heads.

Why self-attentive pooling over dynamic routing (MIND/ComiRec-DR): it is one batched einsum at
every position (so every next-item pair trains, as in SASRec+) and its attention weights say
which history items formed each interest, which is what explanations are made of.
"""

from __future__ import annotations

import torch
from torch import nn

from facetrec.interests.features import GAP_BUCKETS, SIGNALS
from facetrec.interests.transformer import Block, causal_allowed, init_weights
from facetrec.types import Event

POOLINGS = ("hybrid", "attention", "last")
ROUTINGS = ("soft", "hard")


class MultiInterestEncoder(nn.Module):
    def __init__(
        self,
        hidden: int,
        max_len: int,
        layers: int,
        heads: int,
        dropout: float,
        interests: int,
        pooling: str = "attention",
        time_features: bool = True,
        event_features: bool = True,
        signal_features: bool = True,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if pooling == "last" and interests != 1:
            raise ValueError("pooling='last' gives exactly one interest; set interests=1")
        self.max_len, self.k, self.pooling = max_len, interests, pooling
        self.position = nn.Embedding(max_len, hidden)
        self.gap = nn.Embedding(GAP_BUCKETS + 1, hidden, padding_idx=0) if time_features else None
        self.event = nn.Embedding(len(Event) + 1, hidden, padding_idx=0) if event_features else None
        self.signal = nn.Linear(SIGNALS, hidden) if signal_features else None
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(hidden, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden)
        self.heads = interests - 1 if pooling == "hybrid" else interests if pooling == "attention" else 0
        if self.heads:
            self.pool = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.Tanh(), nn.Linear(4 * hidden, self.heads))
        self.gate = nn.Linear(hidden, interests) if interests > 1 else None
        self.apply(init_weights)

    def states(self, item_vectors: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[batch, width, hidden] causal states; row padding (item 0) stays exactly zero."""
        items = batch["items"]
        width = items.shape[1]
        padding = items == 0
        real = (~padding).unsqueeze(-1).to(item_vectors.dtype)
        positions = torch.arange(self.max_len - width, self.max_len, device=items.device)
        x = item_vectors + self.position(positions)
        if self.gap is not None:
            x = x + self.gap(batch["gaps"])
        if self.event is not None:
            x = x + self.event(batch["events"])
        if self.signal is not None:
            x = x + self.signal(batch["signals"])
        x = self.dropout(x) * real
        allowed = causal_allowed(padding)
        for block in self.blocks:
            x = block(x, allowed) * real
        return self.norm(x) * real

    def interests(self, states: torch.Tensor, values: torch.Tensor, padding: torch.Tensor, last_only: bool = False):
        """Interests and the attention that formed them.

        The attention is computed from the contextual ``states`` but averages ``values``, the
        history's own item vectors, so that an interest stays a mixture of the items a user
        chose (and lies among them in item space) rather than of contextualised states.

        Returns ``(interests, attention)``: [batch, width, K, hidden] and [batch, K, width, width]
        (query position, key position), or with ``last_only`` [batch, K, hidden] and
        [batch, K, width] for the most recent position.
        """
        batch, width, _ = states.shape
        eye = torch.eye(width, device=states.device).expand(batch, 1, width, width)
        recent = (states[:, -1:, :], eye[:, :, -1, :]) if last_only else (states.unsqueeze(2), eye)
        if not self.heads:  # "last", or "hybrid" with K = 1
            return recent
        allowed = causal_allowed(padding)  # [batch, 1, query, key]
        if last_only:
            allowed = allowed[:, :, -1:, :]
        logits = self.pool(states).transpose(1, 2).unsqueeze(2)  # [batch, heads, 1, key]
        attention = torch.softmax(logits.masked_fill(~allowed, -torch.inf), dim=-1)  # [batch, heads, query, key]
        if last_only:
            attention = attention[:, :, 0, :]
            pooled = torch.einsum("bkj,bjh->bkh", attention, values)
            dim = 1
        else:
            pooled = torch.einsum("bktj,bjh->btkh", attention, values)
            dim = 2
        if self.pooling == "attention":
            return pooled, attention
        return torch.cat([recent[0], pooled], dim), torch.cat([recent[1], attention], 1)

    def log_weights(self, states: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """log pi: how likely each interest is to produce the next item, read from the state at each
        position ([batch, width, K], or [batch, K] with ``last_only``); zeros when K = 1."""
        states = states[:, -1] if last_only else states
        if self.gate is None:
            return states.new_zeros(*states.shape[:-1], 1)
        return torch.log_softmax(self.gate(states), -1)


def interest_offsets(logits: torch.Tensor, log_weights: torch.Tensor, routing: str) -> torch.Tensor:
    """[..., K]: what each interest adds to its dot products ``logits`` [..., K, C] to give its terms.

    Soft: log pi_k - log Z_k (the gate's weight and the interest's softmax normaliser over the C
    columns), so that logsumexp over K of the terms is the log-likelihood of a mixture of K
    softmaxes. Hard: 0, the raw dot products, as in ComiRec, where an item scores by its single
    best interest.
    """
    if routing == "hard":
        return torch.zeros_like(log_weights)
    return log_weights - torch.logsumexp(logits, -1)


def interest_log_probs(logits: torch.Tensor, log_weights: torch.Tensor, routing: str) -> torch.Tensor:
    """Per-interest terms [..., K, C] whose max ("hard") or logsumexp ("soft") over K is an item's score."""
    return logits + interest_offsets(logits, log_weights, routing).unsqueeze(-1)


def routed_loss(logits: torch.Tensor, log_weights: torch.Tensor, target: torch.Tensor, routing: str) -> torch.Tensor:
    """Next-item loss with target-aware routing over logits [P, K, C] and target columns [P].

    Hard: only the interest whose dot product with the target is highest is trained on it (a
    cross-entropy for that interest alone). Soft: the mixture's negative log-likelihood, whose
    gradient reaches each interest in proportion to its posterior responsibility for the target.
    With ``target`` [P, T] (T targets per row sharing these logits) it returns one mean loss per
    target column [T], computing the soft normalisers once.
    """
    columns = target.unsqueeze(-1) if target.dim() == 1 else target
    picked = logits.gather(2, columns.unsqueeze(1).expand(-1, logits.shape[1], -1))  # [P, K, T]
    if routing == "hard":
        rows = torch.arange(len(columns), device=columns.device)
        choice = picked.argmax(1)  # [P, T]
        losses = [
            nn.functional.cross_entropy(logits[rows, choice[:, t]], columns[:, t]) for t in range(columns.shape[1])
        ]
        loss = torch.stack(losses)
    else:  # the targets' terms under each interest, without a second [P, K, C] tensor
        terms = picked + interest_offsets(logits, log_weights, routing).unsqueeze(-1)
        loss = -torch.logsumexp(terms, 1).mean(0)
    return loss if target.dim() == 2 else loss[0]


def distinctness_penalty(interests: torch.Tensor) -> torch.Tensor:
    """Mean squared cosine between different interests of the same row [P, K, hidden]: 0 when
    they are orthogonal, 1 when all are the same vector (a collapsed multi-interest model)."""
    k = interests.shape[1]
    if k < 2 or not len(interests):
        return interests.new_zeros(())
    unit = nn.functional.normalize(interests, dim=-1)
    gram = unit @ unit.transpose(1, 2)
    off = ~torch.eye(k, dtype=torch.bool, device=interests.device)
    return gram[:, off].pow(2).mean()
