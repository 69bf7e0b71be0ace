"""Training windows from flat sequences: (B, T) inputs and the next event of each position as its target."""

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


class TrainWindows(torch.utils.data.Dataset):
    """Indexed by a list of window ids (batched fetch): inputs are events [end-1-T, end-1), targets one later."""

    def __init__(self, feats: EventFeatures, T: int, users: np.ndarray | None = None):
        self.f, self.T = feats, T
        self.start, self.end = train_windows(feats.offsets, T, users)

    def __len__(self) -> int:
        return len(self.start)

    def __getitem__(self, ids: list[int]) -> dict[str, torch.Tensor]:
        ids = np.asarray(ids)
        start, end = self.start[ids], self.end[ids]
        batch = gather(self.f, start, end - 1, self.T)
        tidx = end[:, None] - self.T + np.arange(self.T)[None, :]  # (B, T) target positions
        ok = tidx >= start[:, None] + 1
        tidx = np.where(ok, tidx, 0)
        batch["target"] = torch.from_numpy(np.where(ok, self.f.item[tidx], PAD))
        batch["weight"] = torch.from_numpy(np.where(ok, self.f.weight[tidx], 0.0).astype(np.float32))
        return batch
