"""What the ranking stage knows of a user's history: re-listen statistics per (user, track), what follows their
recent plays and favourites, and popularity; each a named feature of the candidates.

Re-listening dominates this task, so a user's history competes with the model's new tracks on equal terms.
The whole log's tables (which track follows which, recent popularity) are built once and passed in, so the
evidence of one user (the service) or of a split's history reads the same tables as the run was fitted on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from seqrec import PAD
from seqrec.baselines import decayed_plays, recent_context, row_normalise, transition_matrix, transition_scores
from seqrec.config import Config
from seqrec.data.dataset import Dataset
from seqrec.metrics import quarter
from seqrec.models.ranker import Candidates

FEATURES = ("model_logp", "relisten", "relisten_short", "log_plays", "log_days_since", "in_history",
            "best_listen", "next", "favourites_next", "log_popularity")
"""The candidates' named features, in the order `Evidence.candidates` builds them."""
NO_HISTORY_DAYS = 365.0
"""'Days since the last play' of a track never played."""
MIN_LOGP = -30.0
"""The model's log-probability is floored here: a track the model all but rules out is still a candidate."""


@dataclass
class LogTables:
    """What every user's evidence reads from the whole log rather than from their own events."""

    trans: sp.csr_matrix
    """(n_items + 1, n_items + 1) row-stochastic: which track follows which."""
    log_pop: np.ndarray
    """(n_items + 1,) log1p of each track's distinct listeners in the last `baselines.popular_days`."""

    @classmethod
    def build(cls, ds: Dataset, cfg: Config) -> LogTables:
        return cls(transition_matrix(ds, cfg.baselines),
                   np.log1p(ds.listeners(cfg.baselines.popular_days)).astype(np.float32))


@dataclass
class Evidence:
    """Per (user, valid item) history statistics as sorted keys user * stride + item with aligned columns."""

    keys: np.ndarray
    stats: np.ndarray
    """(pairs, 5): relisten, relisten_short, log_plays, log_days_since, best_listen."""
    stride: int
    ranked: np.ndarray
    """Pair indices ordered by user, then re-listen score (best first)."""
    history: sp.csr_matrix
    """(n_users, n_items + 1) re-listen scores."""
    context: sp.csr_matrix
    """(n_users, n_items + 1) the recent plays that transitions are read from."""
    tables: LogTables
    transitions_weight: float

    @classmethod
    def build(cls, ds: Dataset, cfg: Config, tables: LogTables) -> Evidence:
        b = cfg.baselines
        history = decayed_plays(ds, b.relisten_half_life_days, b.relisten_quality_floor)
        short = decayed_plays(ds, cfg.decode.short_half_life_days, b.relisten_quality_floor)
        ev = ds.events[ds.items["valid"].to_numpy()[ds.events["item"].to_numpy()]]
        g = pd.DataFrame({
            "user": ev["user"].to_numpy(), "item": ev["item"].to_numpy(), "plays": np.ones(len(ev), np.float32),
            "age": (ds.end - ev["ts"]).dt.total_seconds().to_numpy() / 86400, "best": quarter(ev["frac"].to_numpy()),
        }).groupby(["user", "item"], sort=True).agg(plays=("plays", "sum"), age=("age", "min"), best=("best", "max"))
        users = g.index.get_level_values(0).to_numpy(np.int64)
        items = g.index.get_level_values(1).to_numpy(np.int64)
        stride = ds.n_items + 1
        coo = history.tocoo()  # the same pairs, in the same (user, item) order
        if len(coo.data) != len(g) or not (np.array_equal(coo.row, users) and np.array_equal(coo.col, items)):
            raise AssertionError("re-listen sums and per-pair statistics must cover the same (user, item) pairs")
        # re-listen columns are scaled so each user's best track is 1, as in the baselines
        rel = _per_user_max_scale(users, history.data)
        rel_short = _per_user_max_scale(users, short.data)
        stats = np.stack([rel, rel_short, np.log1p(g["plays"].to_numpy()), np.log1p(g["age"].to_numpy()),
                          g["best"].to_numpy()], axis=1).astype(np.float32)
        return cls(users * stride + items, stats, stride, np.lexsort((-rel, users)), history,
                   recent_context(ds, b.transitions_last_n), tables, b.transitions_weight)

    def history_items(self, users: np.ndarray, n: int) -> np.ndarray:
        """(B, n) each user's top tracks by re-listen score, PAD-padded."""
        lo = np.searchsorted(self.keys, users * self.stride)
        hi = np.searchsorted(self.keys, (users + 1) * self.stride)
        idx = lo[:, None] + np.arange(n)[None, :]  # (B, n) positions in `ranked`; keys and ranked share user runs
        ok = idx < hi[:, None]
        pairs = self.ranked[np.where(ok, idx, 0)]
        return np.where(ok, self.keys[pairs] % self.stride, PAD)

    def transition_scores(self, users: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(B, V) re-listen + next-after-last-plays scores, and what usually follows the user's favourites."""
        trans = self.tables.trans
        nxt = row_normalise(transition_scores(self.history[users], self.context[users], trans,
                                              self.transitions_weight)).tocsr()
        fav = row_normalise(row_normalise(self.history[users]) @ trans).tocsr()
        return nxt, fav

    def candidates(self, users: np.ndarray, items: np.ndarray, mask: np.ndarray, logp: np.ndarray,
                   nxt: sp.csr_matrix, fav: sp.csr_matrix) -> Candidates:
        """The candidates `items` (B, C) with their FEATURES, given the model's log-probabilities of them."""
        key = users[:, None] * self.stride + items  # (B, C)
        pos = np.clip(np.searchsorted(self.keys, key), 0, len(self.keys) - 1)
        hit = self.keys[pos] == key
        stats = np.where(hit[..., None], self.stats[pos], 0.0)  # (B, C, 5)
        rows = np.repeat(np.arange(len(users)), items.shape[1])
        columns = {
            "model_logp": np.maximum(logp, MIN_LOGP),
            "relisten": stats[..., 0], "relisten_short": stats[..., 1], "log_plays": stats[..., 2],
            "log_days_since": np.where(hit, stats[..., 3], np.log1p(NO_HISTORY_DAYS)),
            "in_history": hit.astype(np.float32), "best_listen": stats[..., 4],
            "next": np.asarray(nxt[rows, items.ravel()]).reshape(items.shape),
            "favourites_next": np.asarray(fav[rows, items.ravel()]).reshape(items.shape),
            "log_popularity": self.tables.log_pop[items],
        }
        return Candidates(items, mask, np.stack([columns[n] for n in FEATURES], axis=-1).astype(np.float32), FEATURES)


def _per_user_max_scale(users: np.ndarray, values: np.ndarray) -> np.ndarray:
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    top = np.maximum.reduceat(values, starts) if len(values) else values
    return values / np.repeat(np.where(top > 0, top, 1.0), np.diff(np.r_[starts, len(values)]))
