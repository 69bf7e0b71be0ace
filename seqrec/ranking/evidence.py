"""What the ranking stage knows before any candidate is made: the whole log's tables (which track follows which,
each track's item-level features, genres, artists), built once per process, and the evidence of a shard of users
(their plays of each track, their user- and pair-level features), built per shard against those tables.

The evidence of one user (the service), of a split's history or of a shard reads the same log-wide tables, so a
user is described the same way wherever they are decoded.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from seqrec.config import RankConfig
from seqrec.data.dataset import Dataset
from seqrec.data.genres import parse_genres
from seqrec.logstats import age_days, decayed_plays, listeners, recent_context, transition_matrix
from seqrec.metrics import quarter
from seqrec.ranking.features import FEATURE, FULL, RECENT_DAYS, SKIP, Catalog, Played, UserLog, compute


@dataclass
class LogTables:
    """What every user's evidence reads from the whole log rather than from their own events."""

    trans: sp.csr_matrix
    """(V, V) row-stochastic: which track follows which."""
    item: dict[str, np.ndarray]
    """The item-level features, (V,) each."""
    genres: np.ndarray
    """Sorted keys item * n_genres + genre of each track's genres."""
    genre_ids: dict[str, int]
    artist_tracks: sp.csr_matrix
    """(n_artists + 1, V) each valid track of an artist, weighted by 1 + log1p(its last-14-day listeners)
    (row 0: unknown artist, empty)."""

    @classmethod
    def build(cls, ds: Dataset, cfg: RankConfig) -> LogTables:
        cells = ds.items["track_genres_list"] if "track_genres_list" in ds.items else pd.Series(np.nan, ds.items.index)
        codes, uniq = pd.factorize(cells)
        parsed = [parse_genres(c) for c in uniq]
        ids = {g: i for i, g in enumerate(sorted({g for gs in parsed for g in gs}))}
        cell_items = pd.Series(np.arange(len(codes))).groupby(codes)
        keys = [item * max(len(ids), 1) + ids[g] for code, items in cell_items if code >= 0
                for g in parsed[code] for item in items.to_numpy()]
        artist = ds.items["artist"].to_numpy(np.int64) + 1
        valid = np.flatnonzero(ds.items["valid"].to_numpy() & (artist > 0))
        l14 = listeners(ds, 14).astype(np.float64)
        tracks = sp.coo_matrix(((1 + np.log1p(l14[valid])).astype(np.float32), (artist[valid], valid)),
                               shape=(artist.max() + 1, ds.n_items + 1)).tocsr()
        return cls(transition_matrix(ds, cfg.transitions_max_gap_min, cfg.relisten_quality_floor),
                   compute("item", Catalog(ds, cfg)), np.unique(np.asarray(keys, np.int64)), ids, tracks)


@dataclass
class Evidence:
    """A shard of users' history: pair-level features as sorted keys user * stride + item with aligned columns,
    user-level features, and the sparse tables the sources and candidate-level features read."""

    cfg: RankConfig
    tables: LogTables
    keys: np.ndarray
    """(pairs,) user * stride + item of every (user, valid track) played, sorted."""
    stride: int
    pair: dict[str, np.ndarray]
    """The pair-level features, (pairs,) each, aligned with `keys`."""
    user: dict[str, np.ndarray]
    """The user-level features, (n_users,) each."""
    ranked: np.ndarray
    """Pair indices ordered by user, then re-listen score (best first)."""
    history: sp.csr_matrix
    """(n_users, V) re-listen scores."""
    context: sp.csr_matrix
    """(n_users, V) the recent plays that transitions are read from."""
    artist_plays: sp.csr_matrix
    """(n_users, n_artists + 1) share of each user's plays by artist (column 0: unknown artist)."""
    artist: np.ndarray
    """(V,) artist code + 1 (0 unknown)."""
    song_plays: sp.csr_matrix
    """(n_users, n_song_groups) each user's plays of each song, under any of its ids."""
    song: np.ndarray
    """(V,) song group."""
    canon_plays: sp.csr_matrix
    """(n_users, n_canonical_artists + 1) share of each user's plays with each canonical artist among the track's
    artists (a collaboration counts for both; column 0: unknown)."""
    canon: np.ndarray
    """(V,) primary canonical artist + 1 (0 unknown)."""
    top_genre: np.ndarray
    """(n_users,) the user's top genre as an id of `tables.genre_ids`, -1 unknown."""

    @classmethod
    def build(cls, ds: Dataset, cfg: RankConfig, tables: LogTables) -> Evidence:
        history = decayed_plays(ds, cfg.relisten_half_life_days, cfg.relisten_quality_floor)
        valid = ds.usable_events()
        ev = ds.events[valid]
        user, item = ev["user"].to_numpy(np.int64), ev["item"].to_numpy(np.int64)
        age = age_days(ds)[valid]
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
        rel = _per_user_max_scale(users, history.data)  # each user's best track is 1, as in the baselines

        @functools.cache
        def decayed(half_life: float) -> np.ndarray:
            return decayed_plays(ds, half_life, cfg.relisten_quality_floor).data

        played = Played(
            plays=g["plays"].to_numpy(), last=g["age"].to_numpy(), first=g["first"].to_numpy(),
            best=g["best"].to_numpy(), full=g["full"].to_numpy(), skip=g["skip"].to_numpy(),
            days=g["days"].to_numpy(), gap=_median_gap(user * stride + item, age, len(g)),
            recent={d: g[f"p{d}"].to_numpy() for d in RECENT_DAYS}, relisten=rel,
            relisten_short=_per_user_max_scale(users, decayed(cfg.short_half_life_days)), decayed=decayed)
        artist = ds.items["artist"].to_numpy(np.int64) + 1
        n_plays = np.bincount(user, minlength=ds.n_users).astype(np.float64)
        share = sp.coo_matrix((1.0 / n_plays[user], (user, artist[item])), shape=(ds.n_users, artist.max() + 1))
        log = UserLog(ds.users, user, age, n_plays, np.bincount(users, minlength=ds.n_users))
        song = ds.song_group
        song_plays = sp.coo_matrix((np.ones(len(user), np.float32), (user, song[item])),
                                   shape=(ds.n_users, song.max() + 1)).tocsr()
        canon, partner = (a + 1 for a in ds.canonical_artists)
        both = partner[item] > 0
        canon_plays = sp.coo_matrix((np.r_[1.0 / n_plays[user], 1.0 / n_plays[user[both]]],
                                     (np.r_[user, user[both]], np.r_[canon[item], partner[item][both]])),
                                    shape=(ds.n_users, max(canon.max(), partner.max()) + 1))
        return cls(cfg, tables, users * stride + items, stride, compute("pair", played), compute("user", log),
                   np.lexsort((-rel, users)), history, recent_context(ds, cfg.transitions_last_n), share.tocsr(),
                   artist, song_plays, song, canon_plays.tocsr(), canon, _top_genre(ds, tables.genre_ids))

    def runs(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B,) start and end of each user's run of pairs in `keys` (and in `ranked`)."""
        return np.searchsorted(self.keys, users * self.stride), np.searchsorted(self.keys, (users + 1) * self.stride)

    def lookup(self, users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Position in `keys` of each (user, item) of users (B,) x items (B, C), and whether the user played it."""
        key = users[:, None] * self.stride + items  # (B, C)
        pos = np.clip(np.searchsorted(self.keys, key), 0, max(len(self.keys) - 1, 0))
        hit = self.keys[pos] == key if len(self.keys) else np.zeros(items.shape, bool)
        return pos, hit

    def pair_features(self, users: np.ndarray, items: np.ndarray) -> dict[str, np.ndarray]:
        """Every pair-level feature of users (B,) x items (B, C); a pair never played gets the entry's `missing`."""
        pos, hit = self.lookup(users, items)
        return {name: np.where(hit, col[pos], FEATURE[name].missing) if len(col) else
                np.full(items.shape, FEATURE[name].missing) for name, col in self.pair.items()}


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
