"""Stage 6, ranking: faiss candidate retrieval per interest, filters, temporal boosts, diversity
re-ranking (MMR, DPP, interest quotas, calibration, xQuAD exposure) and explanations.

The entry point is :class:`Ranker` configured by :class:`RankConfig`; each algorithm is also a
pure function (``mmr``, ``dpp``, ``quotas``, ``calibrate``, ``decay_weights``, ...) beside the
thin component that wires it in.
"""

from facetrec.ranking.calibration import CalibrationReranker, calibrate, category_distribution
from facetrec.ranking.config import DIVERSITY, RankConfig, make_reranker
from facetrec.ranking.dpp import DPPReranker, dpp, dpp_greedy, dpp_kernel
from facetrec.ranking.explain import TermIndex, contributors, interest_labels
from facetrec.ranking.exposure import XQuADReranker, xquad
from facetrec.ranking.filters import CatalogFilter, Rules, allowed_mask
from facetrec.ranking.mmr import MMRReranker, mmr
from facetrec.ranking.quotas import QuotaReranker, largest_remainder, quotas
from facetrec.ranking.ranker import Ranker
from facetrec.ranking.retrieval import CandidatePool, VectorIndex, choose_index_kind, merge_interests
from facetrec.ranking.temporal import TrendingCounter, decay_weights, freshness, trending

__all__ = [
    "DIVERSITY",
    "CalibrationReranker",
    "CandidatePool",
    "CatalogFilter",
    "DPPReranker",
    "MMRReranker",
    "QuotaReranker",
    "RankConfig",
    "Ranker",
    "Rules",
    "TermIndex",
    "TrendingCounter",
    "VectorIndex",
    "XQuADReranker",
    "allowed_mask",
    "calibrate",
    "category_distribution",
    "choose_index_kind",
    "contributors",
    "decay_weights",
    "dpp",
    "dpp_greedy",
    "dpp_kernel",
    "freshness",
    "interest_labels",
    "largest_remainder",
    "make_reranker",
    "merge_interests",
    "mmr",
    "quotas",
    "trending",
    "xquad",
]
