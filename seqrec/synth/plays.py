"""Plays before they are timed, and what brought each about; per-group helpers for flat arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEEDED, CONTINUED, FOLLOWED, CHART, SCENE, RELEASE, RUN, REPLAY, RADIO = range(9)
KINDS = ("seeded", "continued", "followed", "chart", "scene", "release", "run", "replay", "radio")
"""What brought each play about (for a start: where it came from); kept in `simulate`'s output, not exported."""


@dataclass
class Plays:
    """Plays before timing: who, in which session, where in it (`key` orders a session), what, why, how much."""

    session: np.ndarray
    key: np.ndarray
    item: np.ndarray
    kind: np.ndarray
    frac: np.ndarray
    """Listened fraction of the track."""

    @staticmethod
    def concat(parts: list[Plays]) -> Plays:
        return Plays(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("session", "key", "item", "kind",
                                                                                   "frac")))

    def take(self, rows: np.ndarray) -> Plays:
        return Plays(self.session[rows], self.key[rows], self.item[rows], self.kind[rows], self.frac[rows])



def cumsum_by(x: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Cumulative sum of x restarting at every new value of the sorted `group`."""
    if not len(x):
        return x
    total = np.cumsum(x)
    first = np.r_[True, group[1:] != group[:-1]]
    return total - (total - x)[first][np.cumsum(first) - 1]



def rank_by(group: np.ndarray, value: np.ndarray) -> np.ndarray:
    """0-based rank of each value within its group."""
    order = np.lexsort((value, group))
    rank = np.empty(len(group), np.int64)
    g = group[order]
    first = np.r_[True, g[1:] != g[:-1]] if len(g) else np.zeros(0, bool)
    idx = np.arange(len(g))
    rank[order] = idx - np.maximum.accumulate(np.where(first, idx, 0))
    return rank
