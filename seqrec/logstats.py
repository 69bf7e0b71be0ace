"""Statistics of the listening log that the baselines and the ranking stage both read: listeners per track, listen
quality, decayed re-listen sums, which track follows which, each user's recent plays.

Plain functions of a Dataset and numbers: each caller passes its own settings (`baselines.*` or `rank.*`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from seqrec.data.dataset import Dataset
from seqrec.data.sequences import CHUNK_EVENTS, event_blocks


def listeners(ds: Dataset, days: int | None = None, events: pd.DataFrame | None = None,
              block_events: int = CHUNK_EVENTS) -> np.ndarray:
    """(n_items + 1,) distinct users who played each item, in the last `days` days before `ds.end` (all: None),
    among `events` (default: the whole log), counted in blocks of whole users of about `block_events` events."""
    ev = ds.events if events is None else events
    if days is not None:
        ev = ev[ev["ts"] >= ds.end - pd.Timedelta(days=days)]
    user, item, n = ev["user"].to_numpy(), ev["item"].to_numpy(), ds.n_items + 1
    out = np.zeros(n, dtype=np.int64)
    for a, b in event_blocks(user, block_events):  # distinct (user, item) pairs, block by block of whole users
        out += np.bincount(pd.unique(user[a:b].astype(np.int64) * n + item[a:b]) % n, minlength=n)
    return out


def listen_quality(frac: np.ndarray, floor: float) -> np.ndarray:
    """How much a play says the user likes the track: the listened fraction, at least `floor`."""
    return np.clip(np.nan_to_num(frac, nan=0.0), floor, 1.0).astype(np.float32)


def age_days(ds: Dataset) -> np.ndarray:
    """(events,) days from each play to `ds.end`."""
    return (ds.end - ds.events["ts"]).dt.total_seconds().to_numpy() / 86400


def user_item_matrix(ds: Dataset, weights: np.ndarray, valid_only: bool = True) -> sp.csr_matrix:
    """(n_users, n_items + 1) sum of per-event weights; invalid items are left out."""
    ev = ds.events
    keep = ds.usable_events() if valid_only else slice(None)
    m = sp.coo_matrix(
        (weights[keep], (ev["user"].to_numpy()[keep], ev["item"].to_numpy()[keep])),
        shape=(ds.n_users, ds.n_items + 1),
    )
    return m.tocsr()


def decayed_plays(ds: Dataset, half_life_days: float, quality_floor: float) -> sp.csr_matrix:
    """(n_users, n_items + 1) per (user, valid item): the sum over its plays of listen quality x 2^(-age / half-life),
    age in days before `ds.end`. The re-listen evidence of the baselines and of the ranking stage alike."""
    w = listen_quality(ds.events["frac"].to_numpy(), quality_floor) * np.exp2(-age_days(ds) / half_life_days)
    m = user_item_matrix(ds, w.astype(np.float32))
    m.sort_indices()
    return m


def transition_matrix(ds: Dataset, max_gap_min: float, quality_floor: float,
                      block_events: int = CHUNK_EVENTS) -> sp.csr_matrix:
    """(n_items + 1, n_items + 1) row-stochastic: which valid track follows which within `max_gap_min` minutes,
    weighted by how well the follower was listened to; counted in blocks of whole users of about `block_events`
    events (the sums of float32 weights then differ from one pass's by rounding only)."""
    ev = ds.events
    users, items, times, fracs = (ev[c].to_numpy() for c in ("user", "item", "ts", "frac"))
    valid, n = ds.items["valid"].to_numpy(), ds.n_items + 1
    parts = [sp.csr_matrix((n, n), dtype=np.float32)]
    for a, b in event_blocks(users, block_events):  # pairs never cross users: block by block of whole users
        user, item, ts = users[a:b], items[a:b], times[a:b]
        gap_ok = (ts[1:] - ts[:-1]) <= np.timedelta64(int(max_gap_min * 60e6), "us")
        pair = (user[1:] == user[:-1]) & (item[1:] != item[:-1]) & gap_ok & valid[item[1:]]
        q = listen_quality(fracs[a + 1:b], quality_floor)
        parts.append(sp.coo_matrix((q[pair], (item[:-1][pair], item[1:][pair])), shape=(n, n)).tocsr())
    while len(parts) > 1:  # summed pairwise: each entry is added log2(blocks) times, not once per block
        parts = [parts[i] + parts[i + 1] if i + 1 < len(parts) else parts[i] for i in range(0, len(parts), 2)]
    t = parts[0]
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


def row_normalise(m: sp.csr_matrix) -> sp.csr_matrix:
    """Scale each row so its largest entry is 1 (rows of zeros stay zero). `m` holds non-negative entries, one per
    (row, column) at most, as play sums and their products do: a row's largest is its largest stored value, found
    without the sort scipy's max(axis=1) does first."""
    m = m.tocsr()
    counts = np.diff(m.indptr)
    top = np.zeros(m.shape[0], dtype=m.dtype)
    filled = counts > 0
    if filled.any():
        top[filled] = np.maximum.reduceat(m.data, m.indptr[:-1][filled])
    inv = 1.0 / np.where(top > 0, top, 1.0)
    out = m.astype(np.result_type(inv, m.dtype), copy=True)
    out.data *= np.repeat(inv, counts)  # what a diagonal matrix product computes, entry by entry
    return out
