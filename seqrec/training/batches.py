"""Training windows from flat sequences: (B, T) inputs and, per position, its target: the next event (`next`), an
event drawn from the following `horizon_days` (`window`), or either with even odds (`both`); and whether the
target is the user's first play of the track (for the `discover` objectives)."""

from __future__ import annotations

import numpy as np
import torch

from seqrec import PAD
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


def first_plays(offsets: np.ndarray, item: np.ndarray) -> np.ndarray:
    """(E,) bool: the event is its user's first play of the track."""
    user = event_users(offsets)
    _, first = np.unique(user * (int(item.max(initial=0)) + 1) + item, return_index=True)  # the first of each pair
    out = np.zeros(len(item), dtype=bool)
    out[first] = True
    return out


def horizon_ends(offsets: np.ndarray, ts: np.ndarray, seconds: float) -> np.ndarray:
    """(E,) for each event, one past the last event of the same user at most `seconds` after it."""
    key = event_users(offsets) * (1 << 40) + ts.astype(np.int64)  # sorted: events are by user, then time
    return np.searchsorted(key, key + int(seconds), side="right")


class TrainWindows(torch.utils.data.Dataset):
    """Indexed by a list of window ids (batched fetch): inputs are events [end-1-T, end-1); the target of the
    position before event j is j itself (`next`), or, with `horizon_end`, one of the user's events in j ..
    horizon_end[j-1] drawn uniformly: over draws, every event of the following days is a target of the position in
    turn (a multi-positive softmax over the window, each event weighted by its listen). `p_window`: the share of
    positions that draw from the window (1: `window`, 0.5: `both`). The draws are a function of `seed` and the
    batch's window ids, not of any global random state: the same batch gets the same targets in a worker process,
    in the main one, and after a resume. With `first`, batches carry `first`: the target is a first play."""

    def __init__(self, feats: EventFeatures, T: int, users: np.ndarray | None = None,
                 horizon_end: np.ndarray | None = None, p_window: float = 1.0, seed: int = 0, first: bool = False):
        self.f, self.T = feats, T
        self.start, self.end = train_windows(feats.offsets, T, users)
        self.horizon_end, self.p_window, self.seed = horizon_end, p_window, seed
        self.first = first_plays(feats.offsets, feats.item) if first else None

    def __len__(self) -> int:
        return len(self.start)

    def __getitem__(self, ids: list[int]) -> dict[str, torch.Tensor]:
        ids = np.asarray(ids)
        start, end = self.start[ids], self.end[ids]
        batch = gather(self.f, start, end - 1, self.T)
        tidx = end[:, None] - self.T + np.arange(self.T)[None, :]  # (B, T) target positions
        ok = tidx >= start[:, None] + 1
        tidx = np.where(ok, tidx, 0)
        if self.horizon_end is not None:
            hi = np.maximum(self.horizon_end[np.maximum(tidx - 1, 0)], tidx + 1)  # at least the next event
            rng = np.random.default_rng([self.seed, *ids.tolist()])
            draw = tidx + (rng.random(tidx.shape) * (hi - tidx)).astype(np.int64)
            tidx = np.where(ok & (rng.random(tidx.shape) < self.p_window), draw, tidx)
        batch["target"] = torch.from_numpy(np.where(ok, self.f.item[tidx], PAD).astype(np.int64))
        batch["weight"] = torch.from_numpy(np.where(ok, self.f.weight[tidx], 0.0).astype(np.float32))
        if self.first is not None:
            batch["first"] = torch.from_numpy(ok & self.first[tidx])
        return batch
