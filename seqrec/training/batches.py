"""Training windows from flat sequences: (B, T) inputs and, per position, its target: the next event (`next`), an
event drawn from the following `horizon_days` (`window`), or either with even odds (`both`); and, for the
`discover` objectives, a first play: the next event when it is the user's first play of the track, or one drawn
among the first plays of the following `horizon_days` (`*discover_window`)."""

from __future__ import annotations

import numpy as np
import torch

from seqrec import PAD
from seqrec.hashing import GOLDEN, mix64, unit
from seqrec.models.features import EventFeatures, gather


def train_windows(offsets: np.ndarray, T: int, users: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) of every training window: the last T+1 events of each user, then the T before, ..."""
    users = np.arange(len(offsets) - 1) if users is None else users
    start, stop = offsets[users], offsets[users + 1]
    n_win = np.maximum(0, -(-(stop - start - 1) // T))  # ceil((len - 1) / T): targets need a predecessor
    u = np.repeat(np.arange(len(users)), n_win)
    k = np.arange(n_win.sum()) - np.repeat(np.cumsum(n_win) - n_win, n_win)
    return start[u], stop[u] - k * T


def event_users(offsets: np.ndarray) -> np.ndarray:
    """(E,) the user of each event of flat sequences."""
    return np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))


CHUNK_EVENTS = 1 << 22
"""Events per block of whole users for the per-event tables below: their sort keys and temporaries follow the
block, not the log (at 24.5M events the whole-log keys lifted a training process's peak by 1.3 GiB)."""


def user_blocks(offsets: np.ndarray, events: int = CHUNK_EVENTS) -> list[tuple[int, int]]:
    """(first user, one past the last) of consecutive blocks of whole users covering every user, each cut where
    a multiple of `events` events falls (so at most about twice `events`, or one user's events)."""
    starts = np.searchsorted(offsets, np.arange(0, offsets[-1], max(1, events)), side="right") - 1
    bounds = [0, *np.unique(starts[1:]).tolist(), len(offsets) - 1]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def first_plays(offsets: np.ndarray, item: np.ndarray, block_events: int = CHUNK_EVENTS) -> np.ndarray:
    """(E,) bool: the event is its user's first play of the track."""
    out = np.zeros(len(item), dtype=bool)
    width = int(item.max(initial=0)) + 1
    for u0, u1 in user_blocks(offsets, block_events):
        a, b = offsets[u0], offsets[u1]
        key = event_users(offsets[u0:u1 + 1] - a) * width + item[a:b]
        _, first = np.unique(key, return_index=True)  # the first of each (user, track) pair
        out[a + first] = True
    return out


def horizon_ends(offsets: np.ndarray, ts: np.ndarray, seconds: float,
                 block_events: int = CHUNK_EVENTS) -> np.ndarray:
    """(E,) for each event, one past the last event of the same user at most `seconds` after it."""
    out = np.empty(len(ts), dtype=np.int64)
    for u0, u1 in user_blocks(offsets, block_events):
        a, b = offsets[u0], offsets[u1]
        key = event_users(offsets[u0:u1 + 1] - a) * (1 << 40) + ts[a:b].astype(np.int64)  # sorted: by user, time
        out[a:b] = a + np.searchsorted(key, key + int(seconds), side="right")
    return out


def uniform(seed: int, keys: np.ndarray) -> np.ndarray:
    """Floats in [0, 1), one per key, a function of (seed, key) only: a draw belongs to its window, position and
    epoch, not to the batch it came in, so a DDP rank draws what one process draws."""
    return unit(mix64(keys.astype(np.uint64) + np.uint64(seed * GOLDEN % (1 << 64))))


class TrainWindows(torch.utils.data.Dataset):
    """Indexed by a list of window ids (batched fetch): inputs are events [end-1-T, end-1); the target of the
    position before event j is j itself (`next`), or, with `horizon_end`, one of the user's events in j ..
    horizon_end[j-1] drawn uniformly: over draws, every event of the following days is a target of the position in
    turn (a multi-positive softmax over the window, each event weighted by its listen). `p_window`: the share of
    positions that draw from the window (1: `window`, 0.5: `both`). Ids at or past len(self) are window id + epoch
    x len(self) (`WindowBatches` sends them so): the draws are a function of `seed`, the window, the position and
    the epoch, not of any global random state nor of the batch: the same window gets the same targets in a worker
    process, in the main one, on any DDP rank and after a resume. With `first`, batches carry the discover loss's
    `discover_target` and `discover_weight` (0 where there is none): the next event if it is a first play, or, with
    `first_horizon`, a listened first play among the events of the following window (up to `horizon_end`) drawn
    uniformly."""

    def __init__(self, feats: EventFeatures, T: int, users: np.ndarray | None = None,
                 horizon_end: np.ndarray | None = None, p_window: float = 1.0, seed: int = 0, first: bool = False,
                 first_horizon: bool = False):
        if first_horizon and horizon_end is None:
            raise ValueError("first_horizon draws first plays from the horizon: horizon_end is required")
        self.f, self.T = feats, T
        self.start, self.end = train_windows(feats.offsets, T, users)
        self.horizon_end, self.p_window, self.seed = horizon_end, p_window, seed
        flags = first_plays(feats.offsets, feats.item) if first or first_horizon else None
        self.first = None if first_horizon else flags
        # the events a horizon draw picks from: first plays that were listened (a skip would be a target of weight 0)
        self.first_at = np.flatnonzero(flags & (feats.weight > 0)) if first_horizon else None

    def __len__(self) -> int:
        return len(self.start)

    def __getitem__(self, ids: list[int]) -> dict[str, torch.Tensor]:
        draw_ids = np.asarray(ids, dtype=np.int64)
        ids = draw_ids % len(self)
        start, end = self.start[ids], self.end[ids]
        batch = gather(self.f, start, end - 1, self.T)
        tidx = end[:, None] - self.T + np.arange(self.T)[None, :]  # (B, T) target positions
        ok = tidx >= start[:, None] + 1
        tidx = nidx = np.where(ok, tidx, 0)  # nidx: the next event
        key = (draw_ids[:, None] * self.T + np.arange(self.T)[None, :]) * 3  # streams 0, 1, 2 per position
        if self.horizon_end is not None:
            hi = np.maximum(self.horizon_end[np.maximum(tidx - 1, 0)], tidx + 1)  # at least the next event
            if self.p_window > 0:
                draw = tidx + (uniform(self.seed, key) * (hi - tidx)).astype(np.int64)
                tidx = np.where(ok & (uniform(self.seed, key + 1) < self.p_window), draw, tidx)
        batch["target"], batch["weight"] = self._targets(tidx, ok)
        if self.first_at is not None:  # a first play among those in [next, hi)
            lo, up = np.searchsorted(self.first_at, nidx), np.searchsorted(self.first_at, hi)
            pick = lo + (uniform(self.seed, key + 2) * (up - lo)).astype(np.int64)
            has = ok & (up > lo)
            at = self.first_at[np.minimum(pick, len(self.first_at) - 1)] if len(self.first_at) else pick
            batch["discover_target"], batch["discover_weight"] = self._targets(np.where(has, at, 0), has)
        elif self.first is not None:
            batch["discover_target"], batch["discover_weight"] = self._targets(nidx, ok & self.first[nidx])
        return batch

    def _targets(self, idx: np.ndarray, ok: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The tracks of events `idx` and their listen weights, PAD and 0 where not `ok`."""
        return (torch.from_numpy(np.where(ok, self.f.item[idx], PAD).astype(np.int64)),
                torch.from_numpy(np.where(ok, self.f.weight[idx], 0.0).astype(np.float32)))
