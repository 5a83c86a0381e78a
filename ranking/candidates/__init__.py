"""Candidate generation: a few hundred plausible movies per user for the ranker to order.

Generators (each `fit` on interactions strictly before the training cut-off, which the caller
filters; each raises `LeakageError` when given a cut-off the data reaches):
`PopularityGenerator` (recency-decayed plays, also the fallback list), `ALSGenerator`
(implicit ALS on minutes watched) and `ItemItemGenerator` (co-watch similarity).
`merge_candidates` unions their frames with per-source rank features; `recall_at_k` says
how many held-out plays the candidate set still contains.
"""

from ranking.candidates.als import ALSConfig, ALSGenerator
from ranking.candidates.base import (
    CANDIDATE_COLUMNS,
    Exclusions,
    LeakageError,
    check_before,
    seen_items,
    sessions_to_interactions,
)
from ranking.candidates.item_item import ItemItemConfig, ItemItemGenerator
from ranking.candidates.merge import MISSING_RANK, RRF_K, merge_candidates, recall_at_k
from ranking.candidates.popularity import PopularityConfig, PopularityGenerator

__all__ = [
    "CANDIDATE_COLUMNS",
    "MISSING_RANK",
    "RRF_K",
    "ALSConfig",
    "ALSGenerator",
    "Exclusions",
    "ItemItemConfig",
    "ItemItemGenerator",
    "LeakageError",
    "PopularityConfig",
    "PopularityGenerator",
    "check_before",
    "merge_candidates",
    "recall_at_k",
    "seen_items",
    "sessions_to_interactions",
]
