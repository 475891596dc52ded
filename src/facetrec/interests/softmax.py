"""Sampled softmax with log-Q correction: the next-item loss when a full softmax costs too much.

A full softmax scores every item at every training position; on a 2-core CPU that product, not
the Transformer, is most of a step once the catalogue has a few thousand items. Drawing a few
hundred negatives per step by training popularity ``q`` and subtracting ``log q`` from every
logit (Bengio & Senecal 2008; Yi et al., RecSys 2019) keeps the estimate of the full softmax's
gradient unbiased in expectation, so the model ranks all items at the end as if trained on all.
"""

from __future__ import annotations

import numpy as np
import torch


def popularity_distribution(counts: np.ndarray) -> torch.Tensor:
    """Training events per item as sampling probabilities (float32, sums to 1)."""
    q = torch.from_numpy(np.asarray(counts, np.float64))
    return (q / q.sum()).float()


def draw_negatives(q: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` item indices drawn with replacement by ``q``; one draw serves the whole step."""
    return torch.multinomial(q, n, replacement=True)


def log_q_logits(
    states: torch.Tensor, items: torch.Tensor, want: torch.Tensor, negatives: torch.Tensor, q: torch.Tensor
) -> torch.Tensor:
    """Logits [P, ..., 1 + n] whose column 0 is the target: the corrected sampled-softmax input.

    ``states`` [P, ..., hidden] (any number of middle axes, e.g. K interests) score the target
    ``want[p]`` and the shared ``negatives`` [n]; ``items`` [n_items, hidden] are the item
    vectors, ``q`` their sampling probabilities. A negative that happens to be the row's own
    target is masked out (an accidental hit would push the target against itself).
    """
    log_q = q.clamp_min(torch.finfo(q.dtype).tiny).log()
    middle = (1,) * (states.dim() - 2)
    target = items[want].view(len(want), *middle, -1)
    positive = (states * target).sum(-1) - log_q[want].view(len(want), *middle)
    negative = states @ items[negatives].T - log_q[negatives]
    hit = (negatives[None, :] == want[:, None]).view(len(want), *middle, len(negatives))
    return torch.cat([positive.unsqueeze(-1), negative.masked_fill(hit, -torch.inf)], -1)
