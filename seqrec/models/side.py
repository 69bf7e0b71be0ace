"""What is known of each track besides its id, defined once: with `model.use_side` the network sums an embedding
of each entry with the track's id embedding, on the input and on the output side, so a new or rarely played track
scores through its artist, genres, length and popularity. Adding one is one entry in SIDES (and its test).

Every entry turns the catalog (and the play counts of the log trained on) into a (n_items + 1, width) table of
ids, 0 meaning unknown or none; a track's vector is the id embedding plus, per entry, the mean of its ids'
embeddings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from seqrec import PAD
from seqrec.config import ModelConfig
from seqrec.data.genres import parse_genres
from seqrec.errors import UserError
from seqrec.models.sasrec import SASRec

DURATION_EDGES = np.array([60, 120, 150, 180, 210, 240, 300, 420, 600], dtype=np.float64)
"""Track length in seconds: the buckets of a short edit .. a long mix."""
POPULARITY_BUCKETS = 20
"""Plays in the log trained on, as floor(log2(plays + 1)): 0, 1-2, 3-6, 7-14, ... (the last bucket shared)."""
MAX_GENRES = 4
"""A track's first genres read; the synthetic and the real catalog list at most 3."""


@dataclass(frozen=True)
class SideInput:
    """One kind of side information: its name, and (catalog, play counts (n_items + 1,)) -> (n_items + 1, width)
    int64 ids, PAD where unknown."""

    name: str
    ids: Callable[[pd.DataFrame, np.ndarray], np.ndarray]
    doc: str


def _artist(items: pd.DataFrame, counts: np.ndarray) -> np.ndarray:
    return (items["artist"].to_numpy(np.int64) + 1)[:, None]  # unknown artist (-1) -> PAD


def _canonical_artists(items: pd.DataFrame, counts: np.ndarray) -> np.ndarray:
    """The canonical artist and a collaborator's (seqrec.data.canon): a track of "A feat. B" reads both."""
    if "canon_artist" not in items:
        return _artist(items, counts)
    return np.stack([items["canon_artist"].to_numpy(np.int64), items["canon_partner"].to_numpy(np.int64)], 1) + 1


def _genres(items: pd.DataFrame, counts: np.ndarray) -> np.ndarray:
    cells = items["track_genres_list"] if "track_genres_list" in items else pd.Series(np.nan, items.index)
    codes, uniq = pd.factorize(cells)
    parsed = [parse_genres(c)[:MAX_GENRES] for c in uniq]
    vocab = {g: i + 1 for i, g in enumerate(sorted({g for gs in parsed for g in gs}))}
    per_cell = np.zeros((len(uniq) + 1, MAX_GENRES), np.int64)  # last row: a missing cell (code -1)
    for c, gs in enumerate(parsed):
        per_cell[c, :len(gs)] = [vocab[g] for g in gs]
    return per_cell[codes]


def _duration(items: pd.DataFrame, counts: np.ndarray) -> np.ndarray:
    d = items["track_duration"].to_numpy(np.float64)
    known = np.isfinite(d) & (d > 0)
    return np.where(known, np.searchsorted(DURATION_EDGES, np.nan_to_num(d)) + 1, PAD)[:, None]


def _popularity(items: pd.DataFrame, counts: np.ndarray) -> np.ndarray:
    bucket = np.floor(np.log2(np.asarray(counts, np.float64) + 1)).astype(np.int64)
    return (np.minimum(bucket, POPULARITY_BUCKETS - 1) + 1)[:, None]


SIDES = (
    SideInput("artist", _artist, "the track's artist as the catalog names it"),
    SideInput("canonical_artists", _canonical_artists, "its canonical artists, a collaborator's too (mean)"),
    SideInput("genres", _genres, "its genres (the mean of their embeddings)"),
    SideInput("duration", _duration, "its length, bucketed"),
    SideInput("popularity", _popularity, "its plays in the log trained on, by powers of two"),
)


def side_tables(items: pd.DataFrame, counts: np.ndarray, names: tuple[str, ...] | None = None
                ) -> dict[str, np.ndarray]:
    """The (n_items + 1, width) id table of the catalog `items` (row 0 is PAD) and play counts of every entry in
    `names` (ModelConfig.side; all by default)."""
    if len(counts) != len(items):
        raise ValueError(f"play counts for {len(counts)} items, the catalog has {len(items)} rows")
    unknown = sorted(set(names or ()) - {s.name for s in SIDES})
    if unknown:
        raise UserError(f"model.side: unknown side information {unknown}; known: {[s.name for s in SIDES]}")
    tables = {s.name: s.ids(items, counts) for s in SIDES if names is None or s.name in names}
    for t in tables.values():
        t[PAD] = PAD
    return tables


def side_shapes(tables: dict[str, np.ndarray]) -> dict[str, list[int]]:
    """{name: [vocabulary, width]} of each table: what the network needs to be built before its weights load."""
    return {name: [int(t.max()) + 1, int(t.shape[1])] for name, t in tables.items()}


def catalog_network(cfg: ModelConfig, items: pd.DataFrame, counts: np.ndarray) -> SASRec:
    """An untrained network for the catalog `items`: with `model.use_side`, its side tables (popularity from the
    play counts `counts`) set."""
    tables = side_tables(items, counts, tuple(cfg.side)) if cfg.use_side else None
    net = SASRec(cfg, len(items) - 1, side_shapes(tables) if tables else None)
    if tables:
        net.set_side(tables)
    return net
