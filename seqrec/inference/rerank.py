"""Optional re-ranking of top-k lists for artist diversity and novelty: greedy MMR with a per-artist cap.

Off by default (`rerank.enabled`): the contest metric rewards exact repeats, so any diversity costs score
there. Each of the k slots takes the candidate with the best

    lambda * relevance + novelty_weight * novelty - (1 - lambda) * max similarity to the tracks already picked

where two tracks are similar 1 if they share the artist, `genre_similarity` if they share a genre, else 0,
skipping candidates whose artist already fills `artist_cap` slots (or whose song, its versions and duplicate
uploads, fills `song_cap`) while others remain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from seqrec import PAD
from seqrec.config import RerankConfig
from seqrec.data.dataset import Dataset
from seqrec.data.genres import parse_genres
from seqrec.logstats import listeners

_WORD = 64  # genres per uint64 word of a genre bit set


@dataclass(frozen=True, eq=False)
class ItemTraits:
    """What the re-ranker knows of each item, indexed 0..n_items (row 0 is PAD)."""

    artist: np.ndarray
    """int64 (V,) artist code, -1 unknown (an unknown artist is similar to nothing)."""
    genres: np.ndarray
    """uint64 (V, W) bit set of the item's genres (W = 0 when the catalog names none)."""
    novelty: np.ndarray
    """float32 (V,) -log2 share of users who played the item over log2(n_users + 1): 0 (everyone) .. 1 (no one)."""
    song: np.ndarray | None = None
    """int64 (V,) song group (seqrec.data.canon): versions and duplicate uploads of one song share it."""

    @classmethod
    def from_dataset(cls, ds: Dataset) -> ItemTraits:
        """Artists and genres from the catalog, popularity from the history in `ds`."""
        genres = ds.items["track_genres_list"] if "track_genres_list" in ds.items else \
            pd.Series(np.nan, index=ds.items.index)
        return cls(ds.items["artist"].to_numpy(np.int64), genre_bits(genres), item_novelty(ds), ds.song_group)


def genre_bits(genres: pd.Series) -> np.ndarray:
    """(len(genres), W) uint64 genre bit sets; each distinct cell is parsed once."""
    codes, cells = pd.factorize(genres)  # NaN -> -1
    parsed = [parse_genres(c) for c in cells]
    vocab = {g: i for i, g in enumerate(sorted({g for gs in parsed for g in gs}))}
    bits = np.zeros((len(cells) + 1, -(-len(vocab) // _WORD)), dtype=np.uint64)  # last row: no genre (code -1)
    for row, gs in enumerate(parsed):
        for g in gs:
            bits[row, vocab[g] // _WORD] |= np.uint64(1) << np.uint64(vocab[g] % _WORD)
    return bits[codes]


def item_novelty(ds: Dataset) -> np.ndarray:
    """metrics.novelty's -log2 share of users who played each item, over log2(n_users + 1): 0..1."""
    played = listeners(ds).astype(np.float64)
    p = np.where(played > 0, played / ds.n_users, 1.0 / (ds.n_users + 1))
    return (-np.log2(p) / np.log2(ds.n_users + 1)).astype(np.float32)


def relevance(candidates: np.ndarray, scores: np.ndarray | None) -> np.ndarray:
    """(n, C) relevance in [0, 1]: scores min-max scaled per row (non-finite: 0), or 1 - rank / C without scores."""
    n, c = candidates.shape
    if scores is None:
        return np.broadcast_to(1.0 - np.arange(c, dtype=np.float32) / c, (n, c))
    s = np.asarray(scores, dtype=np.float64)
    ok = np.isfinite(s) & (candidates != PAD)
    s = np.where(ok, s, 0.0)
    lo = np.where(ok, s, np.inf).min(1, keepdims=True)
    hi = np.where(ok, s, -np.inf).max(1, keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    rel = np.where(hi > lo, (s - lo) / span, 1.0)  # a row of equal scores keeps its order by argmax's ties
    return np.where(ok, rel, 0.0).astype(np.float32)


def rerank(candidates: np.ndarray, traits: ItemTraits, cfg: RerankConfig, k: int,
           scores: np.ndarray | None = None) -> np.ndarray:
    """(n, C) candidates, best first, C >= k (scores optional, same shape) -> (n, k) re-ranked lists.

    Rows hold k distinct items; PAD fills the end of a row with fewer than k distinct real candidates.
    """
    cand = np.asarray(candidates)
    if cand.ndim != 2 or cand.dtype.kind not in "iu":
        raise ValueError(f"candidates must be a 2-D integer array (n_users, C), got {cand.dtype} {cand.shape}")
    if not 1 <= k <= cand.shape[1]:
        raise ValueError(f"need 1 <= k <= C candidates per user; got k = {k}, C = {cand.shape[1]}")
    if scores is not None and np.shape(scores) != cand.shape:
        raise ValueError(f"scores must have the candidates' shape {cand.shape}, got {np.shape(scores)}")
    if cand.size and (cand.min() < 0 or cand.max() >= len(traits.artist)):
        raise ValueError(f"candidates hold item indices {cand.min()}..{cand.max()} but the catalog has "
                         f"0..{len(traits.artist) - 1}")
    cand = cand.astype(np.int64, copy=False)
    rel = relevance(cand, scores)
    out = np.full((len(cand), k), PAD, dtype=np.int64)
    for start in range(0, len(cand), cfg.batch_users):
        rows = slice(start, start + cfg.batch_users)
        out[rows] = _greedy(cand[rows], rel[rows], traits, cfg, k)
    return out


def _greedy(cand: np.ndarray, rel: np.ndarray, traits: ItemTraits, cfg: RerankConfig, k: int) -> np.ndarray:
    """Fill k slots one at a time for all rows at once (see the module docstring)."""
    n = len(cand)
    r = np.arange(n)
    lam = cfg.mmr_lambda
    base = lam * rel + cfg.novelty_weight * traits.novelty[cand]  # (n, C)
    artist = traits.artist[cand]  # (n, C)
    genres = traits.genres[cand]  # (n, C, W)
    use_genres = cfg.genre_similarity > 0 and genres.shape[-1] > 0
    taken = cand == PAD
    max_sim = np.zeros(cand.shape, dtype=np.float32)
    same_artist_picked = np.zeros(cand.shape, dtype=np.int64)  # picked tracks by each candidate's artist
    cap = cfg.artist_cap if cfg.artist_cap is not None else k
    song = traits.song[cand] if cfg.song_cap is not None and traits.song is not None else None
    same_song_picked = np.zeros(cand.shape, dtype=np.int64)  # picked versions of each candidate's song
    out = np.full((n, k), PAD, dtype=np.int64)
    for slot in range(k):
        gain = np.where(taken, -np.inf, base - (1 - lam) * max_sim)
        capped = (same_artist_picked >= cap) & (artist >= 0)
        if song is not None:
            capped |= same_song_picked >= cfg.song_cap
        free = np.where(capped, -np.inf, gain)
        # The cap yields only when every remaining candidate is capped: a row always gets k items if it can.
        pick = np.where(np.isfinite(free.max(1)), free.argmax(1), gain.argmax(1))  # (n,)
        ok = np.isfinite(gain[r, pick])
        item = np.where(ok, cand[r, pick], PAD)
        out[:, slot] = item
        taken |= (cand == item[:, None]) & ok[:, None]  # a duplicated candidate goes with its first copy
        a = artist[r, pick][:, None]  # (n, 1)
        same = (artist == a) & (a >= 0) & ok[:, None]
        sim = same.astype(np.float32)
        if use_genres:
            shared = (genres & genres[r, pick][:, None, :]).any(-1) & ok[:, None]  # (n, C)
            sim = np.maximum(sim, np.where(shared, np.float32(cfg.genre_similarity), np.float32(0)))
        max_sim = np.maximum(max_sim, sim)
        same_artist_picked += same
        if song is not None:
            same_song_picked += (song == song[r, pick][:, None]) & ok[:, None]
    return out


def rerank_dataset(candidates: np.ndarray, ds: Dataset, cfg: RerankConfig, k: int,
                   scores: np.ndarray | None = None) -> np.ndarray:
    """`rerank` with the traits of `ds` (its catalog and the popularity of its history)."""
    return rerank(candidates, ItemTraits.from_dataset(ds), cfg, k, scores)
