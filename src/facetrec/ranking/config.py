"""RankConfig: every setting of the ranking stage, validated on construction."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from facetrec.errors import ConfigError
from facetrec.ranking.calibration import CalibrationReranker
from facetrec.ranking.dpp import DPPReranker
from facetrec.ranking.explain import check_template
from facetrec.ranking.exposure import EXPOSURE_GROUPS, XQuADReranker
from facetrec.ranking.mmr import MMRReranker
from facetrec.ranking.quotas import QuotaReranker
from facetrec.ranking.retrieval import INDEX_KINDS

DIVERSITY = ("none", "mmr", "dpp", "quotas", "calibration", "xquad")
"""Values of ``RankConfig.diversity``."""


def _number(name: str, value: Any, low: float, high: float = math.inf, integer: bool = False) -> None:
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        what = "an integer" if integer else "a number"
        bound = f"in [{low}, {high}]" if high != math.inf else f">= {low}"
        raise ConfigError(f"RankConfig.{name}: must be {what} {bound}, got {value!r}")


@dataclass(frozen=True)
class RankConfig:
    """How candidates are retrieved, filtered, boosted, diversified and explained."""

    diversity: str = "none"
    """Re-ranking: "none" (relevance), "mmr", "dpp", "quotas" (slots by interest weight),
    "calibration" (category mix of the user's history) or "xquad" (exposure of the item groups
    ``exposure_groups`` names, towards a target share of each)."""
    lam: float = 0.8
    """Relevance-diversity trade-off in [0, 1]: 1 = pure relevance, 0 = pure diversity."""
    candidates: int = 200
    """Items each interest retrieves, and the size of the pool that is re-ranked."""
    interest_merge: str = "auto"
    """How an item's per-interest terms become one score (``merge_interests``): "logsumexp"
    (the soft-routed facet model's mixture likelihood), "max" (the best single interest), or
    "auto": the model's own rule in a Recommender (the facet model: "logsumexp" for soft routing,
    chosen on validation NDCG@10 in docs/facet.md, "max" for hard routing), "max" in a bare Ranker."""
    retrieval: str = "auto"
    """faiss index: "flat" (exact inner product), "ivf", "hnsw", "ivfpq", or "auto" (flat up to
    ``flat_max_items`` items, HNSW up to ``hnsw_max_items``, IVF-PQ above)."""
    flat_max_items: int = 50_000
    """Largest catalogue "auto" searches exactly (an exact scan of 100k items x 64 dims takes
    several ms per request on a busy CPU; HNSW about 1, at 0.99 recall of the top 200)."""
    hnsw_max_items: int = 20_000_000
    """Largest catalogue "auto" gives HNSW (its vectors and links take about 0.5 GB per million
    64-d items); IVF-PQ above, at 16 bytes an item plus the vectors it re-scores from. IVF-PQ's
    recall of a trained model's top 100 was poor at a million items (docs/scaling.md), so HNSW
    keeps catalogues as long as its memory is affordable."""
    ivf_nlist: int = 0
    """IVF cells (0: 4 sqrt(n_items), at most n_items / 39)."""
    ivf_nprobe: int = 16
    """IVF cells searched per query."""
    ivfpq_m: int = 0
    """IVF-PQ sub-quantizers, dividing the vector dimension (0: one per 4 dimensions)."""
    ivfpq_refine: int = 4
    """IVF-PQ fetches this many times the asked-for items by approximate score and re-scores them exactly."""
    hnsw_m: int = 32
    """HNSW links per node."""
    hnsw_ef_search: int = 128
    """HNSW search breadth (higher: better recall, slower)."""
    freshness_weight: float = 0.0
    """Boost of a brand-new item, as a share of the pool's score range (0: off)."""
    freshness_half_life_days: float | None = 30.0
    """Days after which an item's freshness halves (None: off)."""
    trending_weight: float = 0.0
    """Boost of the most-trending item, as a share of the pool's score range (0: off)."""
    trending_window_days: float | None = 7.0
    """Days of recent events that count towards trending (None: off)."""
    calibration_alpha: float = 0.01
    """Smoothing of the list distribution in calibration: q~ = (1 - alpha) q + alpha p."""
    rerank_model: str = ""
    """A language-model re-ranker saved by ``LMReranker.save`` (its directory): it re-orders each
    list's best candidates by reading the history and their text, before diversity re-ranking
    (``ranking/lm_rerank.py``; "": off)."""
    exposure_groups: str = "popularity"
    """Item groups "xquad" spreads exposure over: "popularity" (the head, the most popular items
    holding 20 % of the users per item in the events the ranker was fitted with, and the long
    tail, aimed at their shares of the catalogue) or "category" (aimed at the history's mix)."""
    explain_items: int = 2
    """History items named in each explanation."""
    label_terms: int = 2
    """Terms in an interest label."""
    explain_template: str = "Because you liked {items} ({label})"
    """Explanation text; ``{items}`` are the history titles, ``{label}`` the interest label."""
    seed: int = 0
    """Seed of the IVF k-means."""

    def __post_init__(self) -> None:
        from facetrec.ranking.retrieval import MERGES

        if self.interest_merge not in (*MERGES, "auto"):
            raise ConfigError(f"RankConfig.interest_merge: must be 'auto' or one of {', '.join(map(repr, MERGES))}, "
                              f"got {self.interest_merge!r}")  # fmt: skip
        if self.diversity not in DIVERSITY:
            raise ConfigError(f"RankConfig.diversity: must be one of {', '.join(map(repr, DIVERSITY))}, "
                              f"got {self.diversity!r}")  # fmt: skip
        if self.exposure_groups not in EXPOSURE_GROUPS:
            raise ConfigError(f"RankConfig.exposure_groups: must be one of {', '.join(map(repr, EXPOSURE_GROUPS))}, "
                              f"got {self.exposure_groups!r}")  # fmt: skip
        if self.retrieval not in INDEX_KINDS:
            raise ConfigError(f"RankConfig.retrieval: must be one of {', '.join(map(repr, INDEX_KINDS))}, "
                              f"got {self.retrieval!r}")  # fmt: skip
        _number("lam", self.lam, 0.0, 1.0)
        for name in ("candidates", "flat_max_items", "hnsw_max_items", "ivf_nprobe", "ivfpq_refine", "hnsw_m",
                     "hnsw_ef_search", "label_terms"):  # fmt: skip
            _number(name, getattr(self, name), 1, integer=True)
        for name in ("ivf_nlist", "ivfpq_m", "explain_items", "seed"):
            _number(name, getattr(self, name), 0, integer=True)
        for name in ("freshness_weight", "trending_weight"):
            _number(name, getattr(self, name), 0.0, 1e6)
        for name in ("freshness_half_life_days", "trending_window_days"):
            value = getattr(self, name)
            if value is not None:
                _number(name, value, 1e-9, 1e6)
        _number("calibration_alpha", self.calibration_alpha, 1e-9, 1.0)
        if not isinstance(self.rerank_model, str):
            raise ConfigError(
                f"RankConfig.rerank_model: must be a directory path or '' (off), got {self.rerank_model!r}"
            )
        if not isinstance(self.explain_template, str):
            raise ConfigError(f"RankConfig.explain_template: must be a str, got {self.explain_template!r}")
        check_template(self.explain_template)

    @property
    def uses_freshness(self) -> bool:
        return self.freshness_weight > 0 and self.freshness_half_life_days is not None

    @property
    def uses_trending(self) -> bool:
        return self.trending_weight > 0 and self.trending_window_days is not None


def make_reranker(config: RankConfig) -> Any:
    """The re-ranking component ``config.diversity`` names (None for "none")."""
    return {
        "none": lambda: None,
        "mmr": lambda: MMRReranker(config.lam),
        "dpp": lambda: DPPReranker(config.lam),
        "quotas": lambda: QuotaReranker(config.lam),
        "calibration": lambda: CalibrationReranker(config.lam, config.calibration_alpha),
        "xquad": lambda: XQuADReranker(config.lam),
    }[config.diversity]()
