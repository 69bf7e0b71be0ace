"""The ranking stage's features, one named entry each: its name, its level, how it is computed, what it means.

Each level has the view its entries read, and is computed where that view is whole:
- `item`: one value per track from the whole log (Catalog); once per process, with the log-wide tables;
- `user`: one value per user (UserLog); once per shard of users, with their evidence;
- `pair`: one value per (user, track) the user played (Played), once per shard; a track the user never played
  gets the entry's `missing`;
- `candidate`: one value per candidate of a batch (Batch), when the candidates are made: the scorer's view of it,
  what follows the user's plays, the user's artists and genre, the sources that listed it.
Values end as float32; NaN is missing (a GBDT reads it as such). Adding a feature is one entry in ENTRIES (and
its test); FEATURES, the candidates' columns and the ranker's inputs follow from the entries.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from seqrec.config import RankConfig
from seqrec.data.dataset import Dataset
from seqrec.logstats import listeners
from seqrec.ranking.sources import SOURCES, UserBatch
from seqrec.topk import count_above, estimate_above, sparse_at

if TYPE_CHECKING:
    from seqrec.ranking.evidence import Evidence

FULL, SKIP = 0.75, 0.25
"""A play of at least FULL of the track counts as full, one under SKIP as a skip."""
RECENT_DAYS = (3, 7, 15, 30, 60)
"""Windows of the `plays_Nd` counts."""
HALF_LIVES = (7.0, 21.0, 60.0)
"""Half-lives (days) of the `hlN` decayed play sums."""
AGE_BINS, GENDERS = ("18_29", "30_44", "45_60", "61_inf"), ("M", "F")
NO_HISTORY_DAYS = 365.0
"""'Days since the last play' of a track never played."""
MIN_LOGP = -30.0
"""The scorer's log-probability is floored here: a track the scorer all but rules out is still a candidate."""
LEVELS = ("item", "user", "pair", "candidate")


@dataclass
class Catalog:
    """What item-level entries read: the whole log's plays and listeners of each track, and the catalog."""

    ds: Dataset
    cfg: RankConfig
    _listeners: dict = field(default_factory=dict, repr=False)

    def listeners(self, days: int | None) -> np.ndarray:
        """(V,) float64 distinct listeners of each track in the last `days` days (all: None)."""
        if days not in self._listeners:
            self._listeners[days] = listeners(self.ds, days).astype(np.float64)
        return self._listeners[days]

    @cached_property
    def plays(self) -> np.ndarray:
        """(V,) plays of each track."""
        return np.bincount(self.ds.events["item"], minlength=self.ds.n_items + 1)

    def log_meta(self, column: str) -> np.ndarray:
        """(V,) log1p of a count column of item_metadata.csv; NaN where the catalog has no such column."""
        items = self.ds.items
        return np.log1p(items[column].to_numpy(np.float64)) if column in items else np.full(len(items), np.nan)


@dataclass
class UserLog:
    """What user-level entries read: each user's plays of valid tracks, and the users' metadata."""

    users: pd.DataFrame
    """user_metadata.csv's rows, indexed by user."""
    user: np.ndarray
    """(plays,) the user of each play of a valid track."""
    age: np.ndarray
    """(plays,) days from the play to the end of the log."""
    n_plays: np.ndarray
    """(n_users,) plays of valid tracks."""
    distinct: np.ndarray
    """(n_users,) distinct valid tracks played."""

    def code(self, column: str, values: tuple[str, ...]) -> np.ndarray:
        """(n_users,) the position of each user's `column` among `values`; NaN when unknown."""
        if column not in self.users:
            return np.full(len(self.users), np.nan)
        c = pd.Categorical(self.users[column], categories=list(values)).codes.astype(np.float64)
        return np.where(c >= 0, c, np.nan)

    def number(self, column: str) -> np.ndarray:
        """(n_users,) a numeric column of user_metadata.csv; NaN when unknown."""
        users = self.users
        return users[column].to_numpy(np.float64) if column in users else np.full(len(users), np.nan)


@dataclass
class Played:
    """What pair-level entries read: one row per (user, track) the user played, in (user, track) order."""

    plays: np.ndarray
    last: np.ndarray
    """Days since the last play."""
    first: np.ndarray
    """Days since the first play."""
    best: np.ndarray
    """The best listened quarter."""
    full: np.ndarray
    """Share of plays of at least FULL of the track."""
    skip: np.ndarray
    """Share of plays under SKIP of the track."""
    days: np.ndarray
    """Distinct days with a play."""
    gap: np.ndarray
    """Median days between consecutive plays; NaN for a track played once."""
    recent: dict[int, np.ndarray]
    """Plays in the last d days, for d in RECENT_DAYS."""
    relisten: np.ndarray
    """The re-listen score (rank.relisten_half_life_days), scaled so each user's best track is 1."""
    relisten_short: np.ndarray
    """The same at rank.short_half_life_days."""
    decayed: Callable[[float], np.ndarray]
    """half-life (days) -> quality-weighted play sum decayed at that half-life."""


@dataclass
class Batch:
    """What candidate-level entries read: the candidates (B, C) of a batch of users."""

    users: UserBatch
    items: np.ndarray
    """(B, C) candidate tracks."""
    logp: np.ndarray
    """(B, C) the scorer's log-probability of each."""
    found: dict[str, np.ndarray]
    """Source name -> (B, C) the candidate's rank in that source's list (0: its best), NaN where not listed."""

    @property
    def evidence(self) -> Evidence:
        return self.users.evidence

    def at(self, m: sp.csr_matrix, columns: np.ndarray | None = None) -> np.ndarray:
        """(B, C) the entries of a sparse matrix at the candidates: of its rows for this batch (B, V) at the
        candidates' tracks, or of its rows for every user (n_users, X) at `columns` (B, C)."""
        rows = np.arange(len(self.items)) if columns is None else self.users.users
        return sparse_at(m, rows, self.items if columns is None else columns)


@dataclass(frozen=True)
class Feature:
    """One named feature: its level (LEVELS), how it is computed from that level's view, and what it means."""

    name: str
    level: str
    compute: Callable[[Catalog | UserLog | Played | Batch], np.ndarray]
    doc: str
    missing: float = 0.0
    """`pair` level: the value for a track the user never played."""

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"feature {self.name}: level must be one of {LEVELS}, got {self.level!r}")


def _due(p: Played) -> np.ndarray:
    return p.last / np.maximum(p.gap, 1e-3)


def _model_rank(b: Batch) -> np.ndarray:
    logp, cfg = b.users.scores.logp, b.evidence.cfg
    lp = torch.gather(logp, 1, torch.as_tensor(b.items, device=logp.device))  # (B, C)
    if cfg.model_rank_sample == 0:
        above = count_above(logp, lp)
    else:
        sample = _rank_sample(logp.shape[1], cfg.model_rank_sample, cfg.seed).to(logp.device)
        above = estimate_above(logp, lp, cfg.model_rank_top, sample)
    return torch.log1p(above.float()).cpu().numpy()


@functools.cache
def _rank_sample(n_items: int, size: int, seed: int) -> torch.Tensor:
    """The columns `model_rank` is estimated from: `size` of n_items drawn once per process, seeded."""
    return torch.as_tensor(np.random.default_rng(seed).choice(n_items, min(size, n_items), replace=False))


def _model_cos(b: Batch) -> np.ndarray:
    s = b.users.scores
    if s.state is None:
        return np.full(b.items.shape, np.nan)
    idx = torch.as_tensor(b.items, device=s.state.device)
    cos = F.normalize(s.state.float(), dim=-1)[:, None, :] * F.normalize(s.item_vectors[idx].float(), dim=-1)
    return cos.sum(-1).cpu().numpy()  # (B, C)


def _artist_share(b: Batch) -> np.ndarray:
    ev = b.evidence
    return b.at(ev.artist_plays, ev.artist[b.items])


def _genre_match(b: Batch) -> np.ndarray:
    t = b.evidence.tables
    top = b.evidence.top_genre[b.users.users][:, None]  # (B, 1)
    key = b.items * max(len(t.genre_ids), 1) + np.maximum(top, 0)
    pos = np.clip(np.searchsorted(t.genres, key), 0, max(len(t.genres) - 1, 0))
    hit = t.genres[pos] == key if len(t.genres) else np.zeros(b.items.shape, bool)
    return np.where(top >= 0, hit, np.nan)


ENTRIES = (
    Feature("model_logp", "candidate", lambda b: np.maximum(b.logp, MIN_LOGP),
            "the scorer's log-probability of the track, floored at MIN_LOGP"),
    Feature("model_rank", "candidate", _model_rank, "log1p of the tracks the scorer puts above it"),
    Feature("model_cos", "candidate", _model_cos, "cosine of the track's vector to the user's state (NaN without one)"),
    Feature("in_history", "pair", lambda p: np.ones(len(p.plays)), "1 if the user played the track before"),
    Feature("relisten", "pair", lambda p: p.relisten, "re-listen score (each user's best track 1)"),
    Feature("relisten_short", "pair", lambda p: p.relisten_short, "re-listen score at the short half-life"),
    Feature("log_plays", "pair", lambda p: np.log1p(p.plays), "log1p of the user's plays of the track"),
    Feature("log_days_since", "pair", lambda p: np.log1p(p.last), "log1p of the days since the last play",
            missing=float(np.log1p(NO_HISTORY_DAYS))),
    Feature("best_listen", "pair", lambda p: p.best, "the best listened quarter"),
    *(Feature(f"hl{int(hl)}", "pair", lambda p, hl=hl: np.log1p(p.decayed(hl)),
              f"log1p of the plays decayed at a {int(hl)}-day half-life") for hl in HALF_LIVES),
    *(Feature(f"plays_{d}d", "pair", lambda p, d=d: p.recent[d], f"plays in the last {d} days")
      for d in RECENT_DAYS),
    Feature("full_share", "pair", lambda p: p.full, f"share of plays of at least {FULL:.0%} of the track"),
    Feature("skip_share", "pair", lambda p: p.skip, f"share of plays under {SKIP:.0%} of the track"),
    Feature("log_first_age", "pair", lambda p: np.log1p(p.first), "log1p of the days since the first play"),
    Feature("distinct_days", "pair", lambda p: p.days, "days with a play of the track"),
    Feature("gap_median", "pair", lambda p: p.gap, "the user's median days between plays of the track",
            missing=np.nan),
    Feature("due", "pair", _due, "days since the last play over that median gap (1: due now)", missing=np.nan),
    Feature("next", "candidate", lambda b: b.at(b.users.transitions[0]),
            "re-listen score plus what follows the user's last plays"),
    Feature("favourites_next", "candidate", lambda b: b.at(b.users.transitions[1]),
            "what usually follows the user's favourites"),
    Feature("log_popularity", "item", lambda c: np.log1p(c.listeners(c.cfg.popular_days)),
            "log1p of the track's listeners in the last rank.popular_days"),
    Feature("listeners_7d", "item", lambda c: np.log1p(c.listeners(7)), "log1p of the track's last-week listeners"),
    Feature("trend_7d", "item", lambda c: np.log((c.listeners(7) + 1) / (c.listeners(14) - c.listeners(7) + 1)),
            "log of last week's listeners over the week before's"),
    Feature("stickiness", "item",
            lambda c: np.where(c.listeners(None) > 0, c.plays / np.maximum(c.listeners(None), 1), np.nan),
            "plays per listener"),
    Feature("likes", "item", lambda c: c.log_meta("track_like_count"), "log1p of the track's likes"),
    Feature("downloads", "item", lambda c: c.log_meta("track_download_count"), "log1p of its downloads"),
    Feature("dislikes", "item", lambda c: c.log_meta("track_dislike_count"), "log1p of its dislikes"),
    Feature("artist_share", "candidate", _artist_share, "the user's share of plays by the track's artist"),
    Feature("genre_match", "candidate", _genre_match, "1 if the track has the user's top genre, NaN if unknown"),
    Feature("song_plays", "candidate", lambda b: np.log1p(b.at(b.evidence.song_plays, b.evidence.song[b.items])),
            "log1p of the user's plays of the track's song under any of its ids (seqrec.data.canon)"),
    Feature("canon_artist_share", "candidate", lambda b: b.at(b.evidence.canon_plays, b.evidence.canon[b.items]),
            "the user's share of plays with the track's canonical artist, collaborations included"),
    Feature("activity_30d", "user", lambda u: np.log1p(np.bincount(u.user[u.age < 30], minlength=len(u.n_plays))),
            "log1p of the user's plays in the last 30 days"),
    Feature("repeat_rate", "user",
            lambda u: np.where(u.n_plays > 0, 1 - u.distinct / np.maximum(u.n_plays, 1), np.nan),
            "share of the user's plays that repeat a track"),
    Feature("age_bin", "user", lambda u: u.code("age_bin", AGE_BINS), f"the user's age bin, coded {AGE_BINS}"),
    Feature("gender", "user", lambda u: u.code("gender", GENDERS), f"the user's gender, coded {GENDERS}"),
    Feature("children", "user", lambda u: u.number("children"), "the user's children"),
    *(Feature(f"rank_in_{s.name}", "candidate", lambda b, s=s.name: b.found[s],
              f"the track's rank in the `{s.name}` source (0: its best), NaN if it did not list it")
      for s in SOURCES),
)
FEATURES = tuple(f.name for f in ENTRIES)
"""Every feature's name, in the order of the candidates' columns."""
FEATURE = {f.name: f for f in ENTRIES}
SOURCE_FEATURES = tuple(f"rank_in_{s.name}" for s in SOURCES)
"""The features saying which sources listed a candidate (read by the ranker with rank.source_features)."""


def compute(level: str, view: Catalog | UserLog | Played | Batch) -> dict[str, np.ndarray]:
    """Every feature of one level from its view, as float32."""
    return {f.name: np.asarray(f.compute(view)).astype(np.float32) for f in ENTRIES if f.level == level}


def features_of(b: Batch) -> np.ndarray:
    """(B, C, len(FEATURES)) every feature of a batch's candidates, in FEATURES' order: the item- and user-level
    ones looked up, the pair-level ones looked up per (user, track), the candidate-level ones computed."""
    ev, users, items = b.evidence, b.users.users, b.items
    columns = {**{name: col[items] for name, col in ev.tables.item.items()},
               **{name: np.broadcast_to(col[users][:, None], items.shape) for name, col in ev.user.items()},
               **ev.pair_features(users, items), **compute("candidate", b)}
    return np.stack([columns[name] for name in FEATURES], axis=-1).astype(np.float32)
