"""The facet network, top to bottom: item tower, sequence encoder, interests, routing, loss.

```
item text / reviews (frozen) --MoE adapter--+
item ID embedding (seen items) -------------+-- fusion --> item vector e_i        ItemTower
history e_i1..e_iT + position, gap, event, signals --causal Transformer--> states  MultiInterestEncoder
states --last state + self-attentive heads--> K interests u_k;  --gate--> pi_k     MultiInterestEncoder
score(item) = log sum_k pi_k softmax_k(u_k . e)  ("soft"), or max_k u_k . e ("hard")
loss = routed next-item NLL (+ a longer-horizon target) + distinctness penalty      FacetNet.loss
```

The network knows nothing of text encoders, scorers or config files: :mod:`facetrec.scoring.facet`
turns item text into the frozen content matrices and a :class:`FacetNetConfig`, hands the
network and its training rows to the shared loop (:func:`facetrec.training.fit_loop`), and
scores users with :meth:`FacetNet.forward`. The Transformer block is shared with SASRec+
(:mod:`facetrec.interests.transformer`); the per-event inputs come from
:mod:`facetrec.interests.features`. When the text encoder is tuned with the network, the scorer
passes it in as a module that the item tower calls for its text matrix (``ItemTower.text``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from facetrec.interests.features import GAP_BUCKETS, SIGNALS
from facetrec.interests.softmax import draw_negatives, log_q_logits, popularity_distribution
from facetrec.interests.transformer import Block, causal_allowed, init_weights
from facetrec.types import Event

FUSIONS = ("gated", "weighted", "gate", "attention", "concat")
POOLINGS = ("hybrid", "attention", "last")
ROUTINGS = ("soft", "hard")


@dataclass(frozen=True)
class FacetNetConfig:
    """The network's shape and objective. :class:`facetrec.scoring.facet.FacetConfig` documents
    and validates each field; this is the part of it the network reads."""

    hidden: int
    max_len: int
    layers: int
    heads: int
    dropout: float
    interests: int
    pooling: str
    interest_values: str
    routing: str
    time_features: bool
    event_features: bool
    signal_features: bool
    use_id: bool
    id_dropout: float
    fusion: str
    fusion_weights: tuple[float, ...] | None
    interest_fusion: bool
    experts: int
    distinct_weight: float
    full_softmax_max_items: int
    negatives: int
    future_window: int
    future_weight: float


# --------------------------------------------------------------------------- item tower


class MoEAdapter(nn.Module):
    """Frozen ``d_in``-d language-model vectors -> ``d_out``-d model space.

    Sentence-encoder vectors are wide and anisotropic: most of their variance says "this is
    English text", not "this item is liked by the same people". UniSRec (Hou et al., KDD 2022)
    adapts them with a mixture of parametric whitening experts ``(x - b_e) W_e`` under a softmax
    gate; the language model stays frozen, so the adapter is small and an item nobody has
    interacted with is still placed by what it is.
    """

    def __init__(self, d_in: int, d_out: int, experts: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(experts, d_in))
        self.proj = nn.Parameter(torch.empty(experts, d_in, d_out))
        nn.init.normal_(self.proj, std=d_in**-0.5)
        self.gate = nn.Linear(d_in, experts, bias=False)
        nn.init.zeros_(self.gate.weight)  # start as the plain mean of the experts
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(x)
        whitened = torch.einsum("ned,edh->neh", x[:, None, :] - self.bias, self.proj)  # [n, experts, d_out]
        gate = torch.softmax(self.gate(x), dim=-1)
        return (gate.unsqueeze(-1) * whitened).sum(1)


class ModalityFusion(nn.Module):
    """One item vector from several modality vectors (ID, text, reviews, image, audio), some missing.

    Every rule is a sum of per-modality components (``components``), so an item's score under an
    interest splits exactly into what each modality contributed: that is how an explanation says
    which modality made an item match. A missing modality contributes nothing and the present
    ones share its weight (masked, never zero-filled as if it were data); an item with none is the
    zero vector.

    - ``gated``: a sigmoid gate per item and dimension over the concatenated modalities (an item
      can lean on its ID when popular and on its content when rare).
    - ``weighted``: one weight per modality, a learned softmax, or ``fixed`` weights.
    - ``gate``: cosine-similarity gating: a modality weighs by how well it agrees (cosine) with the
      item's mean modality vector, sharpened by a learned temperature, so a modality that
      contradicts the others (a generic thumbnail, a silent clip) counts less for that item.
    - ``attention``: a learned query scores each present modality through a key projection.
    - ``concat``: concatenation and one linear projection (the ablation: no weights to read), the
      present modalities rescaled to stand in for the missing ones.
    """

    def __init__(self, modalities: int, hidden: int, kind: str = "gated", fixed: list[float] | None = None) -> None:
        super().__init__()
        if kind not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {kind!r}")
        if fixed is not None and (kind != "weighted" or len(fixed) != modalities or min(fixed) < 0 or not sum(fixed)):
            raise ValueError(f"fixed weights need fusion 'weighted' and {modalities} non-negative values, not all 0")
        self.kind, self.modalities = kind, modalities
        if kind == "weighted":
            if fixed is None:
                self.logits = nn.Parameter(torch.zeros(modalities))
            else:
                self.register_buffer("logits", torch.tensor(fixed, dtype=torch.float32).log(), persistent=False)
        elif kind == "gated":
            self.gate = nn.Linear(modalities * hidden, modalities * hidden)
            nn.init.zeros_(self.gate.weight)
            nn.init.zeros_(self.gate.bias)
        elif kind == "gate":
            self.log_temperature = nn.Parameter(torch.zeros(()))
        elif kind == "attention":
            self.key = nn.Linear(hidden, hidden)
            self.query = nn.Parameter(torch.zeros(hidden))
        else:
            self.project = nn.Parameter(torch.empty(modalities, hidden, hidden))
            nn.init.normal_(self.project, std=(modalities * hidden) ** -0.5)

    def components(self, vectors: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """``vectors`` [n, M, hidden], ``present`` [n, M] bool -> [n, M, hidden], each modality's
        part of the fused vector (their sum over M)."""
        n, modalities, hidden = vectors.shape
        vectors = vectors * present.unsqueeze(-1)
        if self.kind == "weighted":
            weights = self._masked_softmax(self.logits.expand(n, modalities), present).unsqueeze(-1)
        elif self.kind == "gated":
            gates = torch.sigmoid(self.gate(vectors.reshape(n, modalities * hidden))).view(n, modalities, hidden)
            gates = gates * present.unsqueeze(-1)
            weights = gates / gates.sum(1, keepdim=True).clamp_min(1e-6)
        elif self.kind == "gate":
            count = present.sum(1, keepdim=True).clamp_min(1)
            consensus = vectors.sum(1, keepdim=True) / count.unsqueeze(-1)
            agreement = nn.functional.cosine_similarity(vectors, consensus, dim=-1)
            weights = self._masked_softmax(agreement * self.log_temperature.exp(), present).unsqueeze(-1)
        elif self.kind == "attention":
            scores = torch.tanh(self.key(vectors)) @ self.query
            weights = self._masked_softmax(scores, present).unsqueeze(-1)
        else:
            scale = modalities / present.sum(1).clamp_min(1)
            return torch.einsum("nmh,mhd->nmd", vectors, self.project) * scale[:, None, None]
        return weights * vectors

    def forward(self, vectors: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """``vectors`` [n, M, hidden], ``present`` [n, M] bool -> [n, hidden]."""
        return self.components(vectors, present).sum(1)

    @staticmethod
    def _masked_softmax(logits: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(logits.masked_fill(~present, -torch.inf), dim=-1)
        return torch.nan_to_num(weights, nan=0.0)  # a row with nothing present gets no weight at all


class ItemTower(nn.Module):
    """Every item's vector, from frozen content modalities and an optional ID embedding.

    Content matrices (rows aligned with the item vocabulary) are frozen buffers; an all-zero
    row means the modality is missing for that item. Only items seen in training have an ID
    vector, and training drops each ID with probability ``id_dropout`` so that the content path
    learns to stand alone: that is what places a cold item among the items it resembles.
    ``text``: a language model tuned with the network (:class:`facetrec.content.tuning.TextTuner`),
    which reads the first content matrix as its bank and re-encodes a step's items with gradients.
    """

    def __init__(
        self,
        content: list[torch.Tensor],
        id_known: torch.Tensor,
        hidden: int,
        use_id: bool = True,
        fusion: str = "gated",
        experts: int = 4,
        id_dropout: float = 0.1,
        dropout: float = 0.1,
        fixed_weights: list[float] | None = None,
        text: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if not content and not use_id:
            raise ValueError("an item tower needs the ID embedding or at least one content modality")
        if text is not None and not content:
            raise ValueError("a tuned text encoder needs the text matrix as its bank (the first content matrix)")
        self.text = text
        n_items = len(id_known)
        self.n_items, self.use_id, self.id_dropout = n_items, use_id, id_dropout
        for m, matrix in enumerate(content):
            self.register_buffer(f"content_{m}", matrix.float(), persistent=False)
        self.register_buffer("id_known", id_known.bool(), persistent=False)
        self.adapters = nn.ModuleList(MoEAdapter(m.shape[1], hidden, experts, dropout) for m in content)
        self.item = nn.Embedding(n_items, hidden) if use_id else None
        if self.item is not None:  # small, like the other sequence models' item tables (torch's default is N(0, 1))
            nn.init.normal_(self.item.weight, std=0.02)
        modalities = len(content) + int(use_id)
        self.fusion = ModalityFusion(modalities, hidden, fusion, fixed_weights) if modalities > 1 else None

    def _content(self, live: torch.Tensor | None = None) -> list[torch.Tensor]:
        matrices = [getattr(self, f"content_{m}") for m in range(len(self.adapters))]
        if self.text is not None:  # the text with the ``live`` items encoded afresh (training)
            matrices[0] = self.text(matrices[0], live)
        return matrices

    def forward(self) -> torch.Tensor:
        """[n_items, hidden] item vectors (ID dropout applies in training mode only)."""
        return self.components().sum(1)

    def components(self, live: torch.Tensor | None = None) -> torch.Tensor:
        """[n_items, M, hidden]: each modality's part of every item vector (content modalities in
        order, then the ID), whose sum is the item vector. ``live``: the items whose text a tuned
        encoder encodes with gradients in this training step."""
        vectors, present = [], []
        for matrix, adapter in zip(self._content(live), self.adapters, strict=True):
            vectors.append(adapter(matrix))
            present.append(matrix.abs().sum(1) > 0)
        if self.item is not None:
            known = self.id_known
            if self.training and self.id_dropout > 0 and len(self.adapters):  # ID-only: nothing to fall back on
                known = known & (torch.rand(self.n_items, device=known.device) >= self.id_dropout)
            vectors.append(self.item.weight)
            present.append(known)
        if self.fusion is None:
            return (vectors[0] * present[0].unsqueeze(-1)).unsqueeze(1)
        return self.fusion.components(torch.stack(vectors, 1), torch.stack(present, 1))


# --------------------------------------------------------------------------- sequence encoder and interests


class MultiInterestEncoder(nn.Module):
    """A causal Transformer over the history, then K interests at every position.

    The Transformer reads item vectors plus position, time-gap, event-type and signal
    embeddings. Self-attentive pooling (ComiRec-SA, Cen et al., KDD 2020) then forms each
    interest as a different attention-weighted mean of the history up to t: head k learns to
    attend to one kind of item, so a user who watches horror and cooking gets a vector near each
    rather than one between them. ``"last"`` keeps only the last state (SASRec's user vector);
    ``"hybrid"`` (the default) keeps both: interest 0 is the last state, the recent intent that
    carries the sequential signal a mean loses, and interests 1..K-1 are attention heads.

    Why not dynamic routing (MIND, ComiRec-DR): self-attentive pooling is one batched einsum at
    every position, so every next-item pair trains as in SASRec+, and its attention weights say
    which history items formed each interest, which is what explanations are made of.
    """

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

        The attention is computed from the contextual ``states`` and averages ``values`` (the
        states themselves, or the history's raw item vectors; ``FacetConfig.interest_values``).

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


# --------------------------------------------------------------------------- routing


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


def routed_loss(
    logits: torch.Tensor,
    log_weights: torch.Tensor,
    target: torch.Tensor,
    routing: str,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Next-item loss with target-aware routing over logits [P, K, C] and target columns [P].

    Hard: only the interest whose dot product with the target is highest is trained on it (a
    cross-entropy for that interest alone). Soft: the mixture's negative log-likelihood, whose
    gradient reaches each interest in proportion to its posterior responsibility for the target,
    so interests specialise instead of all chasing every item.
    With ``target`` [P, T] (T targets per row sharing these logits) it returns one mean loss per
    target column [T], computing the soft normalisers once. ``weights`` (shaped as ``target``)
    weigh each target's loss in the mean (inverse-propensity training).
    """
    columns = target.unsqueeze(-1) if target.dim() == 1 else target
    scale = None if weights is None else (weights.unsqueeze(-1) if weights.dim() == 1 else weights)
    picked = logits.gather(2, columns.unsqueeze(1).expand(-1, logits.shape[1], -1))  # [P, K, T]
    if routing == "hard":
        rows = torch.arange(len(columns), device=columns.device)
        choice = picked.argmax(1)  # [P, T]
        if scale is None:
            losses = [
                nn.functional.cross_entropy(logits[rows, choice[:, t]], columns[:, t]) for t in range(columns.shape[1])
            ]
        else:
            losses = [
                (
                    nn.functional.cross_entropy(logits[rows, choice[:, t]], columns[:, t], reduction="none")
                    * scale[:, t]
                ).mean()
                for t in range(columns.shape[1])
            ]
        loss = torch.stack(losses)
    else:  # the targets' terms under each interest, without a second [P, K, C] tensor
        terms = picked + interest_offsets(logits, log_weights, routing).unsqueeze(-1)
        loss = -torch.logsumexp(terms, 1).mean(0) if scale is None else -(torch.logsumexp(terms, 1) * scale).mean(0)
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


def step_items(batch: dict[str, torch.Tensor], limit: int) -> torch.Tensor:
    """The items (0-based) whose text a training step encodes afresh: its targets, then its
    history items, each group in a random order (torch's seeded generator), at most ``limit``.
    They are also one another's negatives in the step's softmax, so the encoder learns to tell
    apart exactly the items it reads with gradients."""
    targets = batch["target"][batch["target"] > 0].unique() - 1
    history = batch["items"][batch["items"] > 0].unique() - 1
    history = history[~torch.isin(history, targets)]
    picked = torch.cat([targets[torch.randperm(len(targets), device=targets.device)],
                        history[torch.randperm(len(history), device=history.device)]])  # fmt: skip
    return picked[:limit]


def future_targets(targets: torch.Tensor, window: int) -> torch.Tensor:
    """For each column of left-padded target rows [batch, width], the target of a column drawn
    uniformly from it and the ``window - 1`` after it, stopping at the row's last column: one
    event among the next ``window`` instead of the next one. Right alignment keeps every drawn
    column of a real target real."""
    width = targets.shape[1]
    ahead = torch.randint(0, window, targets.shape, device=targets.device)
    column = (torch.arange(width, device=targets.device) + ahead).clamp_max(width - 1)
    return targets.gather(1, column)


# --------------------------------------------------------------------------- the network


class FacetNet(nn.Module):
    """Item tower + multi-interest encoder; item ``i`` is row ``i`` of :meth:`item_vectors`.

    ``content``: the frozen content matrices, [n_items, d] each (width-0 ones are skipped);
    ``id_known``: the items with training events (only they have an ID vector and enter the
    training softmax); ``counts``: training events per item, from which the sampled softmax
    draws its negatives; ``target_weights``: each item's inverse-propensity weight as a target
    (training only: an inference network is built without either). ``text``: a text encoder
    tuned with the network (training only), which reads ``content[0]`` as its bank and encodes
    at most ``text_items`` of a step's items (:func:`step_items`) with gradients.
    """

    def __init__(
        self,
        content: list[np.ndarray],
        id_known: np.ndarray,
        config: FacetNetConfig,
        counts: np.ndarray | None = None,
        target_weights: np.ndarray | None = None,
        text: nn.Module | None = None,
        text_items: int = 0,
    ) -> None:
        super().__init__()
        cfg = self.config = config
        matrices = [torch.from_numpy(np.asarray(m, np.float32)) for m in content if m.shape[1]]
        known = np.asarray(id_known, bool)
        self.tower = ItemTower(
            matrices,
            torch.from_numpy(known),
            cfg.hidden,
            use_id=cfg.use_id,
            fusion=cfg.fusion,
            experts=cfg.experts,
            id_dropout=cfg.id_dropout,
            dropout=cfg.dropout / 4,
            fixed_weights=None if cfg.fusion_weights is None else list(cfg.fusion_weights),
            text=text,
        )
        self.text_items = text_items
        self.encoder = MultiInterestEncoder(
            cfg.hidden,
            cfg.max_len,
            cfg.layers,
            cfg.heads,
            cfg.dropout,
            cfg.interests,
            cfg.pooling,
            cfg.time_features,
            cfg.event_features,
            cfg.signal_features,
        )
        # The training softmax: its columns are the items with training events (see loss).
        seen = torch.from_numpy(np.flatnonzero(known))
        column = torch.full((len(known),), -1, dtype=torch.long)
        column[seen] = torch.arange(len(seen))
        self.register_buffer("seen", seen, persistent=False)
        self.register_buffer("column", column, persistent=False)  # item -> softmax column
        self.sampled = len(seen) > cfg.full_softmax_max_items
        q = None if counts is None else popularity_distribution(counts)
        self.register_buffer("q", q, persistent=False)
        weights = None if target_weights is None else torch.from_numpy(np.asarray(target_weights, np.float32))
        self.register_buffer("target_weights", weights, persistent=False)
        self.modalities = len(matrices) + int(cfg.use_id)
        fuse = cfg.interest_fusion and self.modalities > 1
        self.interest_gate = nn.Linear(cfg.hidden, self.modalities) if fuse else None
        if self.interest_gate is not None:  # start as the item's own fusion, the same for every interest
            nn.init.zeros_(self.interest_gate.weight)
            nn.init.zeros_(self.interest_gate.bias)

    def item_tables(self, live: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inputs [n_items, hidden], outputs [n_items, D], parts [n_items, M, hidden]): the vector
        the Transformer reads for each item, the one interests score it by, and the modality parts
        both are made of (:meth:`ItemTower.components`; ``live``: the items a tuned text encoder
        encodes with gradients). Inputs and outputs are the same fused vector, except with
        ``interest_fusion``, where the outputs are the parts side by side (D = M x hidden) so that
        each interest can weigh them its own way (:meth:`expand`)."""
        parts = self.tower.components(live)
        inputs = parts.sum(1)
        return inputs, (parts.flatten(1) if self.interest_gate is not None else inputs), parts

    def item_vectors(self) -> torch.Tensor:
        """[n_items, D]: every item's vector as interests score it."""
        return self.item_tables()[1]

    def expand(self, interests: torch.Tensor) -> torch.Tensor:
        """Interests [..., hidden] as they score the output item vectors: unchanged, or with
        ``interest_fusion`` [..., M x hidden], the interest once per modality, scaled by that
        interest's own attention over the modalities (M x a softmax, so that equal weights
        reproduce the item's own fusion). The score stays one dot product, so retrieval by
        nearest neighbours and the per-modality split of explanations hold as they are."""
        if self.interest_gate is None:
            return interests
        weights = self.modalities * torch.softmax(self.interest_gate(interests), -1)
        return (weights.unsqueeze(-1) * interests.unsqueeze(-2)).flatten(-2)

    def forward(self, batch: dict[str, torch.Tensor], items: torch.Tensor, last_only: bool = False):
        """(interests, log gate weights, attention) for a batch of windows, given the input table
        ``items`` [n_items, hidden] (:meth:`item_tables`, computed once per step: rows share it).

        Shapes: [batch, width, K, D], [batch, width, K] and [batch, K, width, width] at every
        position, or with ``last_only`` [batch, K, D], [batch, K] and [batch, K, width] at the
        most recent one (scoring a user); D is the output item vectors' width.
        """
        padding = (batch["items"] == 0).unsqueeze(-1)  # item i is row i - 1; padding reads zeros
        vectors = items[(batch["items"] - 1).clamp_min(0)].masked_fill(padding, 0.0)  # no copy of the table
        states = self.encoder.states(vectors, batch)
        values = vectors if self.config.interest_values == "items" else states
        interests, attention = self.encoder.interests(states, values, batch["items"] == 0, last_only)
        return self.expand(interests), self.encoder.log_weights(states, last_only), attention

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The next-item loss at every position with a real ``batch["target"]``, routed over the
        K interests, plus (``future_window`` > 1) a longer-horizon target and the distinctness
        penalty.

        Only items with training events enter the softmax. An item without any would only ever
        be a negative, and the model would learn that content it has not seen is bad: exactly
        the items cold start is about. Up to ``full_softmax_max_items`` such items the softmax is
        full; beyond, ``negatives`` shared negatives per step are drawn by training popularity,
        log-Q corrected (K full softmaxes cost K times one).
        """
        cfg = self.config
        target = batch["target"]
        text = self.tower.text
        inputs, items, _ = self.item_tables(None if text is None else step_items(batch, self.text_items))
        interests, log_weights, _ = self(batch, inputs)
        real = target > 0
        chosen = interests[real]  # [P, K, hidden]
        wanted = [target[real] - 1]
        if cfg.future_window > 1:
            wanted.append(future_targets(target, cfg.future_window)[real] - 1)
        if self.sampled:
            if self.q is None:
                raise RuntimeError("FacetNet.loss: a sampled softmax needs the training counts (counts=...)")
            negatives = draw_negatives(self.q, cfg.negatives)
            losses = torch.stack(
                [
                    routed_loss(
                        log_q_logits(chosen, items, want, negatives, self.q),
                        log_weights[real],
                        torch.zeros_like(want),
                        cfg.routing,
                        None if self.target_weights is None else self.target_weights[want],
                    )
                    for want in wanted
                ]
            )
        else:  # every target shares one full softmax
            logits = torch.einsum("pkh,nh->pkn", chosen, items[self.seen])
            columns = torch.stack([self.column[want] for want in wanted], 1)
            weights = None if self.target_weights is None else torch.stack([self.target_weights[w] for w in wanted], 1)
            losses = routed_loss(logits, log_weights[real], columns, cfg.routing, weights)
        loss = losses[0] + cfg.future_weight * losses[1:].sum()
        if cfg.distinct_weight and chosen.shape[1] > 1:
            # Only where the prefix holds at least K events can K interests differ at all.
            enough = batch["items"].gt(0).cumsum(1)[real] >= chosen.shape[1]
            loss = loss + cfg.distinct_weight * distinctness_penalty(chosen[enough])
        return loss if text is None else loss + text.penalty()
