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
from seqrec.inference.rerank import parse_genres
from seqrec.metrics import quarter
from seqrec.models.ranker import Candidates

BLEND_FEATURES = ("model_logp", "relisten", "relisten_short", "log_plays", "log_days_since", "in_history",
                  "best_listen", "next", "favourites_next", "log_popularity")
"""The features the MLP blend reads (it needs finite, dense columns)."""
PAIR_STATS = ("relisten", "relisten_short", "log_plays", "log_days_since", "best_listen", "hl7", "hl21", "hl60",
              "plays_3d", "plays_7d", "plays_15d", "plays_30d", "plays_60d", "full_share", "skip_share",
              "log_first_age", "distinct_days", "gap_median", "due")
"""Per (user, track) history statistics; 0 for a track the user never played, but the rhythm columns (NaN)."""
RECENT_DAYS = (3, 7, 15, 30, 60)
"""Windows of the `plays_Nd` counts."""
FEATURES = ("model_logp", "model_rank", "model_cos", "in_history", *PAIR_STATS, "next", "favourites_next",
            "log_popularity", "listeners_7d", "trend_7d", "stickiness", "likes", "downloads", "dislikes",
            "artist_share", "genre_match", "activity_30d", "repeat_rate", "age_bin", "gender", "children")
"""The candidates' named features, in the order `Evidence.candidates` builds them. NaN is missing (a GBDT reads it
as such): the network's cosine without a network state, the rhythm of a track played once, absent metadata."""
FULL, SKIP = 0.75, 0.25
"""A play of at least FULL of the track counts as full, one under SKIP as a skip."""
AGE_BINS, GENDERS = ("18_29", "30_44", "45_60", "61_inf"), ("M", "F")
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
    item_stats: np.ndarray
    """(n_items + 1, 6) listeners_7d, trend_7d, stickiness, likes, downloads, dislikes (log1p; NaN unknown)."""
    genres: np.ndarray
    """Sorted keys item * n_genres + genre of each track's genres."""
    genre_ids: dict[str, int]
    artist_tracks: sp.csr_matrix
    """(n_artists + 1, n_items + 1) each valid track of an artist, weighted by 1 + log1p(its last-14-day listeners)
    (row 0: unknown artist, empty)."""

    @classmethod
    def build(cls, ds: Dataset, cfg: Config) -> LogTables:
        l7, l14, l_all = (ds.listeners(d).astype(np.float64) for d in (7, 14, None))
        plays = np.bincount(ds.events["item"], minlength=ds.n_items + 1)
        meta = [np.log1p(ds.items[c].to_numpy(np.float64)) if c in ds.items else np.full(ds.n_items + 1, np.nan)
                for c in ("track_like_count", "track_download_count", "track_dislike_count")]
        item_stats = np.stack([np.log1p(l7), np.log((l7 + 1) / (l14 - l7 + 1)),  # last week over the one before
                               np.where(l_all > 0, plays / np.maximum(l_all, 1), np.nan), *meta], axis=1)
        cells = ds.items["track_genres_list"] if "track_genres_list" in ds.items else pd.Series(np.nan, ds.items.index)
        codes, uniq = pd.factorize(cells)
        parsed = [parse_genres(c) for c in uniq]
        ids = {g: i for i, g in enumerate(sorted({g for gs in parsed for g in gs}))}
        cell_items = pd.Series(np.arange(len(codes))).groupby(codes)
        keys = [item * max(len(ids), 1) + ids[g] for code, items in cell_items if code >= 0
                for g in parsed[code] for item in items.to_numpy()]
        artist = ds.items["artist"].to_numpy(np.int64) + 1
        valid = np.flatnonzero(ds.items["valid"].to_numpy() & (artist > 0))
        tracks = sp.coo_matrix(((1 + np.log1p(l14[valid])).astype(np.float32), (artist[valid], valid)),
                               shape=(artist.max() + 1, ds.n_items + 1)).tocsr()
        return cls(transition_matrix(ds, cfg.baselines),
                   np.log1p(ds.listeners(cfg.baselines.popular_days)).astype(np.float32),
                   item_stats.astype(np.float32), np.unique(np.asarray(keys, np.int64)), ids, tracks)


@dataclass
class Evidence:
    """Per (user, valid item) history statistics as sorted keys user * stride + item with aligned columns."""

    keys: np.ndarray
    stats: np.ndarray
    """(pairs, len(PAIR_STATS)) the PAIR_STATS columns."""
    user_stats: np.ndarray
    """(n_users, 5) activity_30d, repeat_rate, age_bin, gender, children (NaN unknown)."""
    artist_plays: sp.csr_matrix
    """(n_users, n_artists + 1) share of each user's plays by artist (column 0: unknown artist)."""
    top_genre: np.ndarray
    """(n_users,) the user's top genre as an id of `tables.genre_ids`, -1 unknown."""
    artist: np.ndarray
    """(n_items + 1,) artist code + 1 (0 unknown)."""
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
        decayed = {hl: decayed_plays(ds, hl, b.relisten_quality_floor).data
                   for hl in (cfg.decode.short_half_life_days, 7.0, 21.0, 60.0)}
        ev = ds.events[ds.items["valid"].to_numpy()[ds.events["item"].to_numpy()]]
        user, item = ev["user"].to_numpy(np.int64), ev["item"].to_numpy(np.int64)
        age = (ds.end - ev["ts"]).dt.total_seconds().to_numpy() / 86400
        frac = np.nan_to_num(ev["frac"].to_numpy(), nan=0.0)
        cols = {"plays": np.ones(len(ev), np.float32), "age": age, "first": age, "best": quarter(frac),
                "full": (frac >= FULL).astype(np.float32), "skip": (frac < SKIP).astype(np.float32),
                "day": np.floor(age)}
        cols.update({f"p{d}": (age < d).astype(np.float32) for d in RECENT_DAYS})
        g = pd.DataFrame({"user": user, "item": item, **cols}).groupby(["user", "item"], sort=True).agg(
            plays=("plays", "sum"), age=("age", "min"), first=("first", "max"), best=("best", "max"),
            full=("full", "mean"), skip=("skip", "mean"), days=("day", "nunique"),
            **{f"p{d}": (f"p{d}", "sum") for d in RECENT_DAYS})
        users = g.index.get_level_values(0).to_numpy(np.int64)
        items = g.index.get_level_values(1).to_numpy(np.int64)
        stride = ds.n_items + 1
        coo = history.tocoo()  # the same pairs, in the same (user, item) order
        if len(coo.data) != len(g) or not (np.array_equal(coo.row, users) and np.array_equal(coo.col, items)):
            raise AssertionError("re-listen sums and per-pair statistics must cover the same (user, item) pairs")
        gap = _median_gap(user * stride + item, age, len(g))
        days_since = g["age"].to_numpy()
        # re-listen columns are scaled so each user's best track is 1, as in the baselines
        rel = _per_user_max_scale(users, history.data)
        columns = {
            "relisten": rel, "relisten_short": _per_user_max_scale(users, decayed[cfg.decode.short_half_life_days]),
            "log_plays": np.log1p(g["plays"].to_numpy()), "log_days_since": np.log1p(days_since),
            "best_listen": g["best"].to_numpy(),
            **{f"hl{int(hl)}": np.log1p(decayed[hl]) for hl in (7.0, 21.0, 60.0)},
            **{f"plays_{d}d": g[f"p{d}"].to_numpy() for d in RECENT_DAYS},
            "full_share": g["full"].to_numpy(), "skip_share": g["skip"].to_numpy(),
            "log_first_age": np.log1p(g["first"].to_numpy()), "distinct_days": g["days"].to_numpy(),
            "gap_median": gap, "due": days_since / np.maximum(gap, 1e-3),
        }
        stats = np.stack([columns[n] for n in PAIR_STATS], axis=1).astype(np.float32)
        artist = ds.items["artist"].to_numpy(np.int64) + 1
        n_plays = np.bincount(user, minlength=ds.n_users).astype(np.float64)
        share = sp.coo_matrix((1.0 / n_plays[user], (user, artist[item])), shape=(ds.n_users, artist.max() + 1))
        return cls(users * stride + items, stats, _user_stats(ds, user, age, np.bincount(users, minlength=ds.n_users),
                                                                n_plays),
                   share.tocsr(), _top_genre(ds, tables.genre_ids), artist, stride, np.lexsort((-rel, users)),
                   history, recent_context(ds, b.transitions_last_n), tables, b.transitions_weight)

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

    def recent_next(self, users: np.ndarray) -> sp.csr_matrix:
        """(B, V) what follows the users' recent plays in the log (the transitions candidate source)."""
        return (self.context[users] @ self.tables.trans).tocsr()

    def artists_tracks(self, users: np.ndarray) -> sp.csr_matrix:
        """(B, V) the tracks of the artists each user plays, by the user's share of plays of the artist times the
        track's recent listeners (the artist candidate source: deeper cuts and new releases of their artists)."""
        return (self.artist_plays[users] @ self.tables.artist_tracks).tocsr()

    def candidates(self, users: np.ndarray, items: np.ndarray, mask: np.ndarray, logp: np.ndarray,
                   nxt: sp.csr_matrix, fav: sp.csr_matrix, model: dict[str, np.ndarray] | None = None) -> Candidates:
        """The candidates `items` (B, C) with their FEATURES, given the model's log-probabilities of them and,
        optionally, `model_rank` and `model_cos` (B, C)."""
        key = users[:, None] * self.stride + items  # (B, C)
        pos = np.clip(np.searchsorted(self.keys, key), 0, len(self.keys) - 1)
        hit = self.keys[pos] == key
        stats = np.where(hit[..., None], self.stats[pos], 0.0)  # (B, C, S)
        stats[..., [PAIR_STATS.index("gap_median"), PAIR_STATS.index("due")]] = np.where(
            hit[..., None], stats[..., [PAIR_STATS.index("gap_median"), PAIR_STATS.index("due")]], np.nan)
        rows = np.repeat(np.arange(len(users)), items.shape[1])
        flat = items.ravel()
        n_genres = max(len(self.tables.genre_ids), 1)
        top = self.top_genre[users][:, None]  # (B, 1)
        gkey = items * n_genres + np.maximum(top, 0)
        gpos = np.clip(np.searchsorted(self.tables.genres, gkey), 0, max(len(self.tables.genres) - 1, 0))
        genre_hit = self.tables.genres[gpos] == gkey if len(self.tables.genres) else np.zeros(items.shape, bool)
        nan = np.full(items.shape, np.nan, np.float32)
        model = model or {}
        columns = {
            "model_logp": np.maximum(logp, MIN_LOGP), "model_rank": model.get("model_rank", nan),
            "model_cos": model.get("model_cos", nan), "in_history": hit.astype(np.float32),
            **{n: stats[..., i] for i, n in enumerate(PAIR_STATS)},
            "log_days_since": np.where(hit, stats[..., PAIR_STATS.index("log_days_since")], np.log1p(NO_HISTORY_DAYS)),
            "next": np.asarray(nxt[rows, flat]).reshape(items.shape),
            "favourites_next": np.asarray(fav[rows, flat]).reshape(items.shape),
            "log_popularity": self.tables.log_pop[items],
            **{n: self.tables.item_stats[items, i] for i, n in enumerate(ITEM_STATS)},
            "artist_share": np.asarray(self.artist_plays[users[rows], self.artist[flat]]).reshape(items.shape),
            "genre_match": np.where(top >= 0, genre_hit, np.nan),
            **{n: np.broadcast_to(self.user_stats[users, i][:, None], items.shape) for i, n in enumerate(USER_STATS)},
        }
        return Candidates(items, mask, np.stack([columns[n] for n in FEATURES], axis=-1).astype(np.float32), FEATURES)


ITEM_STATS = ("listeners_7d", "trend_7d", "stickiness", "likes", "downloads", "dislikes")
USER_STATS = ("activity_30d", "repeat_rate", "age_bin", "gender", "children")


def _median_gap(pair_key: np.ndarray, age: np.ndarray, n_pairs: int) -> np.ndarray:
    """(n_pairs,) median days between consecutive plays of each (user, item) pair, pairs in key order; NaN for a
    pair played once."""
    order = np.lexsort((-age, pair_key))  # by pair, oldest play first
    k, a = pair_key[order], age[order]
    same = k[1:] == k[:-1]
    gaps = pd.Series(a[:-1][same] - a[1:][same])
    pair_of_gap = np.cumsum(np.r_[True, k[1:] != k[:-1]])[1:][same] - 1  # pair number of each gap
    out = np.full(n_pairs, np.nan)
    med = gaps.groupby(pair_of_gap).median()
    out[med.index.to_numpy()] = med.to_numpy()
    return out


def _user_stats(ds: Dataset, user: np.ndarray, age: np.ndarray, distinct: np.ndarray,
                n_plays: np.ndarray) -> np.ndarray:
    """(n_users, len(USER_STATS)): plays in the last 30 days (log1p), share of plays that repeat a track, and the
    demographics as codes (NaN unknown)."""
    recent = np.bincount(user[age < 30], minlength=ds.n_users)
    repeat = np.where(n_plays > 0, 1 - distinct / np.maximum(n_plays, 1), np.nan)

    def code(col: str, values: tuple) -> np.ndarray:
        if col not in ds.users:
            return np.full(ds.n_users, np.nan)
        c = pd.Categorical(ds.users[col], categories=list(values)).codes.astype(np.float64)
        return np.where(c >= 0, c, np.nan)

    children = ds.users["children"].to_numpy(np.float64) if "children" in ds.users else np.full(ds.n_users, np.nan)
    return np.stack([np.log1p(recent), repeat, code("age_bin", AGE_BINS), code("gender", GENDERS), children],
                    axis=1).astype(np.float32)


def _top_genre(ds: Dataset, ids: dict[str, int]) -> np.ndarray:
    """(n_users,) id of each user's top_genre among the catalog's genres, -1 unknown."""
    if "top_genre" not in ds.users:
        return np.full(ds.n_users, -1, np.int64)
    names = ds.users["top_genre"].map(lambda g: g.strip().casefold() if isinstance(g, str) else None)
    return names.map(lambda g: ids.get(g, -1) if g else -1).to_numpy(np.int64)


def _per_user_max_scale(users: np.ndarray, values: np.ndarray) -> np.ndarray:
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    top = np.maximum.reduceat(values, starts) if len(values) else values
    return values / np.repeat(np.where(top > 0, top, 1.0), np.diff(np.r_[starts, len(values)]))
