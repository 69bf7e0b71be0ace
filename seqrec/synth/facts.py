"""Facts about a log's 15-day window that public analyses of the real log report, measured on any split.

They say how much of the window repeats can reach, how binary the repeat target is and how much the
user's own replay rhythm tells; `seqrec.synth.calibrate` compares them with the real log's values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from seqrec.data.split import Split

RECENCY_EDGES = (0, 2, 4, 8, 16, 32, 64, 10_000)
"""Days-since-last-play buckets inside which due and early tracks are compared ("at the same recency")."""


@dataclass
class PoolCredit:
    """Window credit per evaluated user (mean over users) by whether the user played the track before."""

    played: float
    never_played: float
    replay_quarter: float
    """Mean listened quarter of a played-before track the user plays again in the window."""


def _pair_keys(users: np.ndarray, items: np.ndarray, stride: int) -> np.ndarray:
    return users.astype(np.int64) * stride + items.astype(np.int64)


def _member(events: pd.DataFrame, users: np.ndarray, items: np.ndarray, stride: int) -> np.ndarray:
    """Whether each (user, item) appears in `events`."""
    seen = np.unique(_pair_keys(events["user"].to_numpy(), events["item"].to_numpy(), stride))
    keys = _pair_keys(users, items, stride)
    if not len(seen):
        return np.zeros(len(keys), bool)
    return seen[np.minimum(np.searchsorted(seen, keys), len(seen) - 1)] == keys


def played_before(split: Split, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Whether each (user, item) appears in the split's history."""
    return _member(split.history.events, users, items, split.history.n_items + 1)


def pool_credit(split: Split) -> PoolCredit:
    """Sum of listened quarters over each user's distinct window tracks, split by the played / never-played pool."""
    t = split.truth
    old = played_before(split, t.users, t.items)
    n = len(split.users)
    return PoolCredit(
        played=float(t.gain[old].sum() / n),
        never_played=float(t.gain[~old].sum() / n),
        replay_quarter=float(t.gain[old].mean()) if old.any() else float("nan"),
    )


def captured(split: Split, recs: np.ndarray) -> tuple[float, float]:
    """Share of the played and of the never-played window credit that the lists (n_users, k) contain."""
    t = split.truth
    old = played_before(split, t.users, t.items)
    gain = t.lookup(split.users, recs)  # (n, k)
    in_hist = played_before(split, np.repeat(split.users, recs.shape[1]), recs.ravel()).reshape(recs.shape)
    return (float(gain[in_hist].sum() / max(t.gain[old].sum(), 1e-9)),
            float(gain[~in_hist].sum() / max(t.gain[~old].sum(), 1e-9)))


@dataclass
class Cadence:
    """Return rate in the window of history tracks that are due by the user's own rhythm vs replayed early."""

    due: float
    """Share of due tracks (by the median gap between its play days, the next play falls before the window
    ends) played in the window, averaged over recency buckets with the weights of all pairs, so that due and
    early share one recency mix."""
    early: float
    """The same for tracks whose next play by that rhythm falls after the window."""
    pairs: int

    @property
    def gap(self) -> float:
        """Due minus early at the same recency."""
        return self.due - self.early


def cadence(split: Split, window_days: int = 15, min_days: int = 3) -> Cadence:
    """Due vs early return rates over (user, track) pairs of evaluated users played on >= `min_days` days."""
    ev = split.history.events
    ev = ev[ev["user"].isin(split.users)]
    day = ((ev["ts"] - split.history.end).dt.total_seconds().to_numpy() // 86_400).astype(np.int64)  # < 0
    days = pd.DataFrame({"user": ev["user"].to_numpy(), "item": ev["item"].to_numpy(), "day": day})
    days = days.drop_duplicates().sort_values(["user", "item", "day"], kind="stable")
    key = _pair_keys(days["user"].to_numpy(), days["item"].to_numpy(), split.history.n_items + 1)
    d = days["day"].to_numpy()
    same = np.r_[False, key[1:] == key[:-1]]
    gap = np.where(same, d - np.r_[0, d[:-1]], np.nan)
    g = pd.DataFrame({"key": key, "gap": gap, "day": d}).groupby("key", sort=True)
    stats = pd.DataFrame({"n": g["day"].size(), "last": g["day"].max(), "median_gap": g["gap"].median()})
    stats = stats[stats["n"] >= min_days]
    since = -stats["last"].to_numpy()  # whole days between the last play day and the cut
    due = since + window_days >= stats["median_gap"].to_numpy()
    users, items = np.divmod(stats.index.to_numpy(), split.history.n_items + 1)
    back = _member(split.window, users, items, split.history.n_items + 1)
    bucket = np.searchsorted(np.asarray(RECENCY_EDGES), since, side="right")
    rates = []  # (due rate, early rate, pairs) of every recency bucket holding both kinds
    for b in np.unique(bucket):
        m = bucket == b
        if (m & due).any() and (m & ~due).any():
            rates.append((back[m & due].mean(), back[m & ~due].mean(), m.sum()))
    r = np.array(rates, dtype=np.float64).reshape(-1, 3)
    w = r[:, 2] / r[:, 2].sum() if len(r) else r[:, 2]
    return Cadence(
        due=float(w @ r[:, 0]) if len(r) else float("nan"),
        early=float(w @ r[:, 1]) if len(r) else float("nan"),
        pairs=int(len(stats)),
    )

