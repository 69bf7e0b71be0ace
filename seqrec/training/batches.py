"""From flat sequences to (B, T) tensors: per-event model inputs, training windows, inference histories."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from seqrec import PAD
from seqrec.data.sequences import Sequences
from seqrec.models.sasrec import N_GAP, N_SESSION_POS
from seqrec.training.losses import target_weights

# Gap buckets (seconds): within a session .. a month; id 1 = first event of the user, 0 = PAD.
GAP_EDGES = np.array([60, 300, 1800, 7200, 43200, 86400, 259200, 604800, 2592000], dtype=np.float64)
assert len(GAP_EDGES) + 3 == N_GAP


@dataclass
class EventFeatures:
    """Per-event model inputs (ids, 0 = PAD) and target weights, aligned with the Sequences arrays."""

    offsets: np.ndarray
    item: np.ndarray
    frac: np.ndarray
    gap: np.ndarray
    session: np.ndarray
    weight: np.ndarray


def event_features(seqs: Sequences, weight_mode: str) -> EventFeatures:
    """Bucket every event once, vectorised, so batches are pure gathers."""
    gap = np.where(np.isnan(seqs.gap), 1, np.searchsorted(GAP_EDGES, np.nan_to_num(seqs.gap)) + 2)
    return EventFeatures(
        offsets=seqs.offsets,
        item=seqs.item.astype(np.int64),
        frac=(seqs.bucket.astype(np.int64) + 2),  # unknown (-1) -> 1, quarters 0..4 -> 2..6
        gap=gap.astype(np.int64),
        session=np.minimum(seqs.pos, N_SESSION_POS - 2).astype(np.int64) + 1,
        weight=target_weights(seqs.frac, weight_mode),
    )


def gather(f: EventFeatures, start: np.ndarray, end: np.ndarray, T: int) -> dict[str, torch.Tensor]:
    """Inputs for events [end - T, end) of each row, left-padded where that reaches before `start`."""
    idx = end[:, None] - T + np.arange(T)[None, :]  # (B, T)
    ok = idx >= start[:, None]
    idx = np.where(ok, idx, 0)
    return {
        name: torch.from_numpy(np.where(ok, getattr(f, name)[idx], PAD))
        for name in ("item", "frac", "gap", "session")
    }


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


def history_inputs(f: EventFeatures, users: np.ndarray, T: int) -> dict[str, torch.Tensor]:
    """Each user's last T events, for encoding their current state."""
    return gather(f, f.offsets[users], f.offsets[users + 1], T)
