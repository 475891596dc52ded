"""The one explicit dict of scorer kinds: name -> class, imported on first use.

Configs name a ``kind`` from here; a misspelt kind is an error listing the valid ones.
"""

from __future__ import annotations

import importlib
from typing import Any

from facetrec.config import from_dict
from facetrec.errors import ConfigError
from facetrec.scoring.base import Scorer

SCORERS: dict[str, str] = {
    "pop": "facetrec.scoring.popularity:PopularityScorer",
    "bias": "facetrec.scoring.bias:BiasScorer",
    "itemknn": "facetrec.scoring.itemknn:ItemKNNScorer",
    "ease": "facetrec.scoring.ease:EASEScorer",
    "als": "facetrec.scoring.matrix_factorization:ALSScorer",
    "bpr": "facetrec.scoring.matrix_factorization:BPRScorer",
    "sasrec": "facetrec.scoring.sasrec:SASRecScorer",
    "content": "facetrec.scoring.content_knn:ContentKNNScorer",
    "sasrec-text": "facetrec.scoring.facet:SASRecTextScorer",
    "facet": "facetrec.scoring.facet:FacetScorer",
}

SEARCH_SPACES: dict[str, list[dict[str, Any]]] = {
    "pop": [{"distinct_users": True}, {"window_days": 30.0}],
    "bias": [{"user_l2": u, "item_l2": i} for u in (3.0, 10.0) for i in (10.0, 25.0)],
    "itemknn": [{"k": k, "shrinkage": s} for k in (10, 100) for s in (0.0, 10.0)],
    "ease": [{"l2": v} for v in (50.0, 100.0, 500.0)],
    "als": [{"factors": f, "regularization": r} for f in (64, 256) for r in (1.0, 10.0)],
    "bpr": [{"factors": f, "learning_rate": lr} for f in (32, 64) for lr in (0.01, 0.05)],
    "sasrec": [{}],
    "content": [{"history_length": n} for n in (10, 50)],
    "sasrec-text": [{}],
    "facet": [{"interests": k} for k in (2, 4)],
}
"""Small validation grids for ``--tune``; each entry overrides the scorer's defaults."""


def scorer_class(kind: str) -> type[Scorer]:
    if kind not in SCORERS:
        raise ConfigError(f"unknown model kind {kind!r}; choose from {', '.join(SCORERS)}")
    module, _, name = SCORERS[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def make_scorer(kind: str, params: dict[str, Any] | None = None, seed: int | None = None) -> Scorer:
    """A scorer of ``kind`` configured from ``params`` (validated; unknown keys are errors).

    ``seed`` is applied when the scorer's config has a ``seed`` field.
    """
    cls = scorer_class(kind)
    values = dict(params or {})
    if seed is not None and "seed" in cls.config_class.__dataclass_fields__:
        values.setdefault("seed", seed)
    return cls(from_dict(cls.config_class, values, f"model {kind!r}"))
