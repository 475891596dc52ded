"""The item tower: every item's vector, from frozen content modalities and an optional ID embedding.

Content matrices (one per modality, rows aligned with the item vocabulary) are frozen buffers;
an all-zero row means the modality is missing for that item. The ID embedding exists only for
items seen in training. During training each item's ID is dropped with probability
``id_dropout``, so the content path learns to stand on its own: that is what places an item
nobody has interacted with yet (cold start) among the items it resembles.
"""

from __future__ import annotations

import torch
from torch import nn

from facetrec.fusion.adapter import MoEAdapter
from facetrec.fusion.modality import ModalityFusion


class ItemTower(nn.Module):
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
    ) -> None:
        super().__init__()
        if not content and not use_id:
            raise ValueError("an item tower needs the ID embedding or at least one content modality")
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
        self.fusion = ModalityFusion(modalities, hidden, fusion) if modalities > 1 else None

    def _content(self) -> list[torch.Tensor]:
        return [getattr(self, f"content_{m}") for m in range(len(self.adapters))]

    def forward(self) -> torch.Tensor:
        """[n_items, hidden] item vectors (ID dropout applies in training mode only)."""
        vectors, present = [], []
        for matrix, adapter in zip(self._content(), self.adapters, strict=True):
            vectors.append(adapter(matrix))
            present.append(matrix.abs().sum(1) > 0)
        if self.item is not None:
            known = self.id_known
            if self.training and self.id_dropout > 0 and len(self.adapters):  # ID-only: nothing to fall back on
                known = known & (torch.rand(self.n_items, device=known.device) >= self.id_dropout)
            vectors.append(self.item.weight)
            present.append(known)
        if self.fusion is None:
            return vectors[0] * present[0].unsqueeze(-1)
        return self.fusion(torch.stack(vectors, 1), torch.stack(present, 1))
