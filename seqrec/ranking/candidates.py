"""A batch of users' candidates: every source's tracks merged into distinct candidates, with their named features.

The scorer's masks hold for every source: a track the scorer rules out (-inf: no known length, skipped again and
again) is no candidate, the user's own history included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from seqrec import PAD
from seqrec.config import RankConfig
from seqrec.ranking.evidence import Evidence
from seqrec.ranking.features import FEATURES, Batch, features_of
from seqrec.ranking.sources import SOURCES, Scores, UserBatch


@dataclass
class Candidates:
    """Per user (a group): candidate items (B, C), which are real (B, C), and named features (B, C, F)."""

    items: np.ndarray
    mask: np.ndarray
    x: np.ndarray
    names: tuple[str, ...]

    def columns(self, names: tuple[str, ...]) -> np.ndarray:
        """(B, C, len(names)) the named features, in that order."""
        missing = sorted(set(names) - set(self.names))
        if missing:
            raise ValueError(f"candidates lack feature(s) {missing}; they have {list(self.names)}")
        return self.x[..., [self.names.index(n) for n in names]]

    def rows(self, keep: np.ndarray) -> Candidates:
        """The candidates of the users selected by `keep` (a mask or indices)."""
        return Candidates(self.items[keep], self.mask[keep], self.x[keep], self.names)

    @staticmethod
    def concat(parts: list[Candidates]) -> Candidates:
        """The users of `parts` (of one width), one after another."""
        if not parts:
            return Candidates(np.zeros((0, 0), np.int64), np.zeros((0, 0), bool),
                              np.zeros((0, 0, len(FEATURES)), np.float32), FEATURES)
        return Candidates(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("items", "mask", "x")),
                          parts[0].names)


def make_candidates(evidence: Evidence, users: np.ndarray, scores: Scores, cfg: RankConfig,
                    k: int = 0) -> Candidates:
    """The candidates of `users` (rows of the evidence) given the scorer's view of the catalog: every source of
    SOURCES at its configured size (`model` at least k), merged, with every feature of FEATURES."""
    batch = UserBatch(users, evidence, scores)
    lists = {s.name: s.top(batch, n) for s in SOURCES if (n := s.n(cfg, k))}
    items, mask = merge_candidates(*lists.values()) if lists else (np.zeros((len(users), 0), np.int64),
                                                                   np.zeros((len(users), 0), bool))
    lp = torch.gather(scores.logp, 1, torch.as_tensor(items, device=scores.logp.device)).float().cpu().numpy()
    mask &= np.isfinite(lp)  # what the scorer rules out stays out, history included
    nowhere = np.full(items.shape, np.nan)
    found = {s.name: rank_in(lists[s.name], items) if s.name in lists else nowhere for s in SOURCES}
    return Candidates(items, mask, features_of(Batch(batch, items, lp, found)), FEATURES)


def merge_candidates(*parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, n_i) candidate lists -> (B, sum n_i) candidates and a mask of the distinct real ones."""
    items = np.concatenate(parts, axis=1)
    order = np.argsort(items, axis=1, kind="stable")
    srt = np.take_along_axis(items, order, 1)
    dup_sorted = np.zeros_like(srt, dtype=bool)
    dup_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
    dup = np.empty_like(dup_sorted)
    np.put_along_axis(dup, order, dup_sorted, 1)
    return items, (items != PAD) & ~dup


def rank_in(lists: np.ndarray, items: np.ndarray) -> np.ndarray:
    """(B, C) each item's position in its row of `lists` (B, n) of distinct tracks, NaN where the row lacks it."""
    if lists.shape[1] == 0:
        return np.full(items.shape, np.nan)
    stride = int(max(lists.max(), items.max(initial=0))) + 1
    off = np.arange(len(lists), dtype=np.int64)[:, None] * stride  # each row in its own band: one sorted array
    order = np.argsort(lists, axis=1, kind="stable")
    flat = (np.take_along_axis(lists, order, 1) + off).ravel()
    at = np.clip(np.searchsorted(flat, items + off), 0, flat.size - 1)
    hit = (flat[at] == items + off) & (items != PAD)
    return np.where(hit, order.ravel()[at], np.nan)
