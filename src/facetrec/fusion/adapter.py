"""Adapting frozen language-model vectors to the recommendation task.

Sentence-encoder vectors are wide (384-1024 d) and anisotropic: most of their variance says
"this is English text", not "this item is liked by the same people". UniSRec (Hou et al., KDD
2022) adapts them with a mixture of *parametric whitening* experts, ``(x - b_e) W_e``, mixed by
a softmax gate over the input; the language model itself stays frozen, so the adapter is small
and an item nobody has interacted with is still placed by what it is.
"""

from __future__ import annotations

import torch
from torch import nn


class MoEAdapter(nn.Module):
    """``d_in``-d frozen vectors -> ``d_out``-d model space through ``experts`` whitening experts."""

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
