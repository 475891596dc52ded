"""One item vector from several modality vectors, some of which may be missing.

Each modality (an ID embedding, adapted text, adapted review text; images and audio later)
arrives as ``[n, M, hidden]`` with a ``present`` mask ``[n, M]``. Missing modalities get no
weight; an item with none present is the zero vector. Three ways to weigh them:

- ``mean``: one learned weight per modality, shared by all items;
- ``gated``: a learned sigmoid gate per item and dimension from all present modalities
  (the item decides, e.g. lean on the ID for popular items and on text for rare ones);
- ``attention``: a learned query scores each modality vector, softmax over the present ones.
"""

from __future__ import annotations

import torch
from torch import nn

FUSIONS = ("mean", "gated", "attention")


class ModalityFusion(nn.Module):
    def __init__(self, modalities: int, hidden: int, kind: str = "gated") -> None:
        super().__init__()
        if kind not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {kind!r}")
        self.kind = kind
        if kind == "mean":
            self.logits = nn.Parameter(torch.zeros(modalities))
        elif kind == "gated":
            self.gate = nn.Linear(modalities * hidden, modalities * hidden)
            nn.init.zeros_(self.gate.weight)
            nn.init.zeros_(self.gate.bias)
        else:
            self.key = nn.Linear(hidden, hidden)
            self.query = nn.Parameter(torch.zeros(hidden))

    def forward(self, vectors: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """``vectors`` [n, M, hidden], ``present`` [n, M] bool -> [n, hidden]."""
        n, modalities, hidden = vectors.shape
        vectors = vectors * present.unsqueeze(-1)
        if self.kind == "mean":
            weights = self._masked_softmax(self.logits.expand(n, modalities), present).unsqueeze(-1)
        elif self.kind == "gated":
            gates = torch.sigmoid(self.gate(vectors.reshape(n, modalities * hidden))).view(n, modalities, hidden)
            gates = gates * present.unsqueeze(-1)
            weights = gates / gates.sum(1, keepdim=True).clamp_min(1e-6)
        else:
            scores = torch.tanh(self.key(vectors)) @ self.query
            weights = self._masked_softmax(scores, present).unsqueeze(-1)
        return (weights * vectors).sum(1)

    @staticmethod
    def _masked_softmax(logits: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(logits.masked_fill(~present, -torch.inf), dim=-1)
        return torch.nan_to_num(weights, nan=0.0)  # a row with nothing present gets no weight at all
