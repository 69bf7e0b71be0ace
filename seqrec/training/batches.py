"""Training windows from flat sequences: (B, T) inputs and, per position, its target: the next event (`next`), an
event drawn from the following `horizon_days` (`window`), or either with even odds (`both`); and, for the
`discover` objectives, a first play: the next event when it is the user's first play of the track, or one drawn
among the first plays of the following `horizon_days` (`*discover_window`)."""

from __future__ import annotations

import numpy as np
import torch

from seqrec import PAD
from seqrec.data.sequences import CHUNK_EVENTS, user_blocks
from seqrec.hashing import GOLDEN, mix64, unit
from seqrec.models.features import EventFeatures, gather


def train_windows(start: np.ndarray, stop: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, end, stop) of every training window of users whose events are start:stop: the last T+1 events of
    each user, then the T before, ...; `stop` is the window's user's."""
    n_win = np.maximum(0, -(-(stop - start - 1) // T))  # ceil((len - 1) / T): targets need a predecessor
    u = np.repeat(np.arange(len(start)), n_win)
    k = np.arange(n_win.sum()) - np.repeat(np.cumsum(n_win) - n_win, n_win)
    return start[u], stop[u] - k * T, stop[u]


def event_users(offsets: np.ndarray) -> np.ndarray:
    """(E,) the user of each event of flat sequences."""
    return np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))


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


def listened_first_plays(flags: np.ndarray, weight: np.ndarray, offset: int = 0) -> np.ndarray:
    """Positions (+ `offset`) of the first plays that were listened: what a horizon draw picks from (a skip would be
    a target of weight 0)."""
    return np.flatnonzero(flags & (weight > 0)) + offset


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
    uniformly. Windows end at each user's last event in use (`feats.ends`), and no draw reaches past it. The
    per-event tables (`horizon_end`, `first_flags`, `first_at`) may come precomputed over a longer log
    (seqrec.training.store); `first_flags` and `first_at` are computed here when not given."""

    def __init__(self, feats: EventFeatures, T: int, users: np.ndarray | None = None,
                 horizon_end: np.ndarray | None = None, p_window: float = 1.0, seed: int = 0, first: bool = False,
                 first_horizon: bool = False, first_flags: np.ndarray | None = None,
                 first_at: np.ndarray | None = None):
        if first_horizon and horizon_end is None:
            raise ValueError("first_horizon draws first plays from the horizon: horizon_end is required")
        self.f, self.T = feats, T
        users = np.arange(len(feats.offsets) - 1) if users is None else users
        self.start, self.end, self.stop = train_windows(*feats.span(users), T)
        self.horizon_end, self.p_window, self.seed = horizon_end, p_window, seed
        if (first or first_horizon) and first_flags is None:
            first_flags = first_plays(feats.offsets, feats.item)
        self.first = first_flags if first and not first_horizon else None
        if first_horizon and first_at is None:
            first_at = listened_first_plays(first_flags, feats.weight)
        self.first_at = first_at if first_horizon else None

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
            # at least the next event, at most the user's last in use (`feats.ends`: nothing past a split's cut)
            hi = np.minimum(np.maximum(self.horizon_end[np.maximum(tidx - 1, 0)], tidx + 1), self.stop[ids, None])
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
