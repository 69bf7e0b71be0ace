"""Baselines: popularity, segment popularity, re-listen, transitions, ALS and item-kNN.

Each has `fit(ds)` and `recommend(users, k) -> (items, scores)`, both (n, k), best first, exactly k
distinct valid items per row (short lists are filled from recent popularity).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from seqrec.config import BaselineConfig
from seqrec.data.dataset import Dataset
from seqrec.logstats import (
    decayed_plays,
    listen_quality,
    listeners,
    recent_context,
    transition_matrix,
    transition_scores,
    user_item_matrix,
)
from seqrec.topk import fill, sparse_topk


def popular_order(ds: Dataset, days: int, events: pd.DataFrame | None = None) -> np.ndarray:
    """Valid items by distinct recent listeners, most popular first; every valid item appears once."""
    events = ds.events if events is None else events
    all_counts = np.bincount(events["item"], minlength=ds.n_items + 1).astype(np.float64)
    score = listeners(ds, days, events) + all_counts / (all_counts.max() + 1)  # older plays only break ties
    valid = ds.items["valid"].to_numpy()
    order = np.argsort(-score, kind="stable")
    return order[valid[order]]


class Popular:
    """The same recently popular list for everyone."""

    def __init__(self, cfg: BaselineConfig):
        self.cfg = cfg

    def fit(self, ds: Dataset) -> Popular:
        self.order = popular_order(ds, self.cfg.popular_days)
        return self

    def recommend(self, users: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        items = np.broadcast_to(self.order[:k], (len(users), k)).copy()
        scores = np.broadcast_to(-np.arange(k, dtype=np.float32), (len(users), k)).copy()
        return items, scores


class SegmentPopular(Popular):
    """Recent popularity within the user's (age_bin, gender) segment; global where unknown."""

    def fit(self, ds: Dataset) -> SegmentPopular:
        super().fit(ds)
        users = ds.users
        cols = [c for c in ("age_bin", "gender") if c in users]
        # ngroup gives -1 to users with a missing field: they get the global list
        no_segment = np.full(len(users), -1)
        self.segment = users.groupby(cols, dropna=True).ngroup().to_numpy() if cols else no_segment
        self.lists: dict[int, np.ndarray] = {}
        seg_of_event = self.segment[ds.events["user"].to_numpy()]
        for s in np.unique(self.segment[self.segment >= 0]):
            seg_events = ds.events[seg_of_event == s]
            order = popular_order(ds, self.cfg.popular_days, seg_events)
            # Only what the segment played; recommend fills the rest from global popularity, not catalog order.
            self.lists[s] = order[np.isin(order, seg_events["item"].unique())]
        self.ds = ds
        return self

    def recommend(self, users: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        items, scores = super().recommend(users, k)
        seg = self.segment[users]
        for s, order in self.lists.items():
            rows = np.flatnonzero(seg == s)
            head = order[:k]
            items[rows, : len(head)] = head
            items[rows, len(head):] = 0
        return fill(items, scores, self.order)


class Relisten:
    """Personal history weighted by listen quality and recency; the repeat signal that dominates here."""

    def __init__(self, cfg: BaselineConfig):
        self.cfg = cfg

    def fit(self, ds: Dataset) -> Relisten:
        self.fallback = popular_order(ds, self.cfg.popular_days)
        self.history = decayed_plays(ds, self.cfg.relisten_half_life_days, self.cfg.relisten_quality_floor)
        return self

    def user_scores(self, users: np.ndarray) -> sp.csr_matrix:
        return self.history[users]

    def recommend(self, users: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        items, scores = sparse_topk(self.user_scores(users), k)
        return fill(items, scores, self.fallback)


class Transitions(Relisten):
    """Re-listen scores plus the tracks that usually follow the user's recent plays."""

    def fit(self, ds: Dataset) -> Transitions:
        super().fit(ds)
        self.trans = transition_matrix(ds, self.cfg.transitions_max_gap_min, self.cfg.relisten_quality_floor)
        self.context = recent_context(ds, self.cfg.transitions_last_n)
        return self

    def user_scores(self, users: np.ndarray) -> sp.csr_matrix:
        return transition_scores(self.history[users], self.context[users], self.trans, self.cfg.transitions_weight)


class ALS:
    """implicit's ALS with confidence from listen quality; the user's own tracks may be recommended."""

    def __init__(self, cfg: BaselineConfig, seed: int = 0):
        self.cfg, self.seed = cfg, seed

    def fit(self, ds: Dataset) -> ALS:
        from implicit.cpu.als import AlternatingLeastSquares

        w = listen_quality(ds.events["frac"].to_numpy(), self.cfg.relisten_quality_floor)
        self.user_items = (user_item_matrix(ds, w) * self.cfg.als_alpha).astype(np.float32).tocsr()
        with threadpool_limits(1, "blas"):  # implicit parallelises itself; nested BLAS threads slow it
            self.model = AlternatingLeastSquares(
                factors=self.cfg.als_factors,
                iterations=self.cfg.als_iterations,
                regularization=self.cfg.als_regularization,
                random_state=self.seed,
            )
            self.model.fit(self.user_items, show_progress=False)
        self.invalid = np.flatnonzero(~ds.items["valid"].to_numpy())
        return self

    def recommend(self, users: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        items, scores = self.model.recommend(
            users, self.user_items[users], N=k, filter_already_liked_items=False, filter_items=self.invalid
        )
        return items.astype(np.int64), scores.astype(np.float32)


class ItemKNN(ALS):
    """implicit's item-item cosine neighbours over the quality-weighted user-item matrix."""

    def fit(self, ds: Dataset) -> ItemKNN:
        from implicit.nearest_neighbours import CosineRecommender

        w = listen_quality(ds.events["frac"].to_numpy(), self.cfg.relisten_quality_floor)
        self.user_items = user_item_matrix(ds, w).astype(np.float32)
        self.model = CosineRecommender(K=self.cfg.knn_neighbours)
        self.model.fit(self.user_items, show_progress=False)
        self.invalid = np.flatnonzero(~ds.items["valid"].to_numpy())
        self.fallback = popular_order(ds, self.cfg.popular_days)
        return self

    def recommend(self, users: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        items, scores = super().recommend(users, k)
        # implicit pads short lists with item 0 / score 0 or -inf: turn those into our PAD and fill
        bad = ~np.isfinite(scores) | (scores <= 0)
        items = np.where(bad, 0, items)
        order = np.argsort(bad, axis=1, kind="stable")
        items, scores = np.take_along_axis(items, order, 1), np.take_along_axis(scores, order, 1)
        return fill(items, np.where(items == 0, -np.inf, scores).astype(np.float32), self.fallback)


BASELINES = {
    "popular": Popular,
    "segment_popular": SegmentPopular,
    "relisten": Relisten,
    "transitions": Transitions,
    "als": ALS,
    "itemknn": ItemKNN,
}


def make_baseline(name: str, cfg: BaselineConfig, seed: int = 0):
    """A baseline by name."""
    if name not in BASELINES:
        raise ValueError(f"unknown model {name!r}; baselines: {', '.join(BASELINES)}")
    cls = BASELINES[name]
    return cls(cfg, seed) if issubclass(cls, ALS) else cls(cfg)
