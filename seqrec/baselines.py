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
from seqrec.topk import fill, sparse_topk


def listen_quality(frac: np.ndarray, floor: float) -> np.ndarray:
    """How much a play says the user likes the track: the listened fraction, at least `floor`."""
    return np.clip(np.nan_to_num(frac, nan=0.0), floor, 1.0).astype(np.float32)


def popular_order(ds: Dataset, days: int, events: pd.DataFrame | None = None) -> np.ndarray:
    """Valid items by distinct recent listeners, most popular first; every valid item appears once."""
    events = ds.events if events is None else events
    all_counts = np.bincount(events["item"], minlength=ds.n_items + 1).astype(np.float64)
    score = ds.listeners(days, events) + all_counts / (all_counts.max() + 1)  # older plays only break ties
    valid = ds.items["valid"].to_numpy()
    order = np.argsort(-score, kind="stable")
    return order[valid[order]]


def user_item_matrix(ds: Dataset, weights: np.ndarray, valid_only: bool = True) -> sp.csr_matrix:
    """(n_users, n_items + 1) sum of per-event weights; invalid items are left out."""
    ev = ds.events
    keep = ds.items["valid"].to_numpy()[ev["item"].to_numpy()] if valid_only else slice(None)
    m = sp.coo_matrix(
        (weights[keep], (ev["user"].to_numpy()[keep], ev["item"].to_numpy()[keep])),
        shape=(ds.n_users, ds.n_items + 1),
    )
    return m.tocsr()


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


def decayed_plays(ds: Dataset, half_life_days: float, quality_floor: float) -> sp.csr_matrix:
    """(n_users, n_items + 1) per (user, valid item): the sum over its plays of listen quality x 2^(-age / half-life),
    age in days before `ds.end`. The re-listen evidence of the baselines and of the decoder alike."""
    ev = ds.events
    age_days = (ds.end - ev["ts"]).dt.total_seconds().to_numpy() / 86400
    w = listen_quality(ev["frac"].to_numpy(), quality_floor) * np.exp2(-age_days / half_life_days)
    m = user_item_matrix(ds, w.astype(np.float32))
    m.sort_indices()
    return m


def transition_matrix(ds: Dataset, cfg: BaselineConfig) -> sp.csr_matrix:
    """(n_items + 1, n_items + 1) row-stochastic: which valid track follows which within a session, weighted by
    how well the follower was listened to."""
    ev = ds.events
    user, item, ts = ev["user"].to_numpy(), ev["item"].to_numpy(), ev["ts"].to_numpy()
    gap_ok = (ts[1:] - ts[:-1]) <= np.timedelta64(int(cfg.transitions_max_gap_min * 60e6), "us")
    pair = (user[1:] == user[:-1]) & (item[1:] != item[:-1]) & gap_ok
    q = listen_quality(ev["frac"].to_numpy()[1:], cfg.relisten_quality_floor)
    pair &= ds.items["valid"].to_numpy()[item[1:]]
    n = ds.n_items + 1
    t = sp.coo_matrix((q[pair], (item[:-1][pair], item[1:][pair])), shape=(n, n)).tocsr()
    out = np.asarray(t.sum(1)).ravel()
    return (sp.diags(1.0 / np.maximum(out, 1e-9)) @ t).tocsr()


def recent_context(ds: Dataset, last_n: int) -> sp.csr_matrix:
    """(n_users, n_items + 1) each user's last `last_n` plays, the latest weighing most (1, 1/2, 1/3, ...)."""
    ev = ds.events
    rank_from_end = ev.groupby("user").cumcount(ascending=False).to_numpy()
    recent = rank_from_end < last_n
    w = (1.0 / (1 + rank_from_end[recent])).astype(np.float32)
    return sp.coo_matrix((w, (ev["user"].to_numpy()[recent], ev["item"].to_numpy()[recent])),
                         shape=(ds.n_users, ds.n_items + 1)).tocsr()


def transition_scores(history: sp.csr_matrix, context: sp.csr_matrix, trans: sp.csr_matrix,
                      weight: float) -> sp.csr_matrix:
    """Re-listen scores (each row's best 1) plus `weight` x what follows the recent plays (each row's best 1)."""
    return row_normalise(history) + weight * row_normalise(context @ trans)


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
        self.trans = transition_matrix(ds, self.cfg)
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


def row_normalise(m: sp.csr_matrix) -> sp.csr_matrix:
    """Scale each row so its largest entry is 1 (rows of zeros stay zero)."""
    top = np.asarray(m.max(axis=1).todense()).ravel()
    return sp.diags(1.0 / np.where(top > 0, top, 1.0)) @ m


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
