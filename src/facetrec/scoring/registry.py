"""The one explicit dict of model kinds: name -> class, imported on first use.

Configs and the CLI name a ``kind`` from here; a misspelt kind is an error listing the valid
ones. A model registered here (in this dict, or at run time with :func:`register`) trains,
saves into a bundle, loads, recommends and serves through the same pipeline, and
``facetrec.testing.PipelineConformance`` checks that round trip for it. What each model needs
and can do is declared on its class (``Scorer.capabilities``) and listed by ``facetrec models``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
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
"""Small validation grids for ``facetrec evaluate --tune``; each entry overrides the scorer's defaults.
``facetrec tune`` searches the Optuna spaces of :data:`facetrec.tuning.SPACES` instead."""


ENTRY_POINTS = "facetrec.models"
"""Entry-point group through which other packages register models (``name = "module:Class"``)."""


def load_entry_points() -> list[str]:
    """Register the models other installed packages declare under :data:`ENTRY_POINTS` (kinds
    already registered keep their class); returns the kinds added."""
    from importlib.metadata import entry_points

    added = []
    for point in entry_points(group=ENTRY_POINTS):
        if point.name not in SCORERS:
            SCORERS[point.name] = point.value
            SEARCH_SPACES[point.name] = [{}]
            added.append(point.name)
    return added


def register(
    kind: str,
    path: str | type[Scorer],
    search_space: list[dict[str, Any]] | None = None,
    tuning_space: Mapping[str, Any] | None = None,
) -> None:
    """Add a model kind: ``path`` is ``"package.module:Class"`` (imported on first use) or the class.

    ``search_space`` is the small grid of ``facetrec evaluate --tune``; ``tuning_space`` maps config
    keys to Optuna distributions for ``facetrec tune`` (:func:`facetrec.tuning.register_space`).
    """
    if not isinstance(kind, str) or not kind or kind != kind.strip():
        raise ConfigError(f"register: the kind must be a non-empty name without spaces, got {kind!r}")
    if isinstance(path, type):
        if not issubclass(path, Scorer):
            raise ConfigError(f"register: {path.__name__} is not a facetrec Scorer")
        path = f"{path.__module__}:{path.__qualname__}"
    SCORERS[kind] = path
    SEARCH_SPACES[kind] = list(search_space or [{}])
    if tuning_space is not None:
        from facetrec.tuning import register_space  # imports Optuna: only for a model that brings a space

        register_space(kind, tuning_space)


def kind_of(scorer: Scorer) -> str:
    """The registered kind of ``scorer``'s class (e.g. "facet")."""
    target = f"{type(scorer).__module__}:{type(scorer).__qualname__}"
    for kind, path in SCORERS.items():
        if path == target:
            return kind
    raise ConfigError(f"{type(scorer).__name__} is not registered; add it with facetrec.scoring.registry.register")


def describe() -> list[dict[str, Any]]:
    """One row per registered kind: its class, what it needs and what it can do (imports every class)."""
    rows = []
    for kind, path in SCORERS.items():
        cls = scorer_class(kind)
        rows.append(
            {
                "kind": kind,
                "class": path.replace(":", "."),
                "needs": sorted(cls.capabilities.needs),
                "can": sorted(cls.capabilities.can),
                "summary": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
            }
        )
    return rows


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


load_entry_points()
