"""Per-event inputs of the network, defined once: the batch gathering and the network's embeddings both read
INPUTS, so adding an input is one entry here (and its test).

Every input is an id per event: 0 is PAD, the rest come from bucketing one column of the flat sequences.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from seqrec import PAD
from seqrec.config import WEIGHT_MODES
from seqrec.data.sequences import Sequences
from seqrec.metrics import quarter

GAP_EDGES = np.array([60, 300, 1800, 7200, 43200, 86400, 259200, 604800, 2592000], dtype=np.float64)
"""Seconds since the previous event: within a session .. a month."""
SESSION_POSITIONS = 17
"""Positions 0..15 of a session get their own id; the rest share the last."""


@dataclass(frozen=True)
class EventInput:
    """One per-event input: its name in batches, its vocabulary (ids 0..vocab-1, 0 = PAD), how events become
    ids, and the ModelConfig flag that switches its embedding on."""

    name: str
    vocab: int
    ids: Callable[[Sequences], np.ndarray]
    flag: str


def _frac_ids(s: Sequences) -> np.ndarray:
    return s.bucket.astype(np.int64) + 2  # unknown length (-1) -> 1, quarters 0..4 -> 2..6


def _gap_ids(s: Sequences) -> np.ndarray:
    # the user's first event -> 1, the gap buckets -> 2..
    return np.where(np.isnan(s.gap), 1, np.searchsorted(GAP_EDGES, np.nan_to_num(s.gap)) + 2).astype(np.int64)


def _session_ids(s: Sequences) -> np.ndarray:
    return np.minimum(s.pos, SESSION_POSITIONS - 1).astype(np.int64) + 1


INPUTS = (
    EventInput("frac", 7, _frac_ids, "use_frac"),  # the listened-fraction bucket: a skip is not a like
    EventInput("gap", len(GAP_EDGES) + 3, _gap_ids, "use_gap"),
    EventInput("session", SESSION_POSITIONS + 1, _session_ids, "use_session"),
)
INPUT = {inp.name: inp for inp in INPUTS}
assert all(inp.vocab <= np.iinfo(np.int8).max for inp in INPUTS), "input ids are stored as int8"


def target_weights(frac: np.ndarray, mode: str) -> np.ndarray:
    """How much a target counts (WEIGHT_MODES): the metric's quarter, the raw fraction, 1 from half on, or 1;
    a track of unknown length counts 0."""
    known = ~np.isnan(frac)
    f = np.clip(np.nan_to_num(frac), 0.0, 1.0)
    if mode == "quarter":
        w = quarter(f)
    elif mode == "raw":
        w = f
    elif mode == "binary":
        w = (f >= 0.5).astype(np.float32)
    elif mode == "none":
        w = np.ones_like(f)
    else:
        raise ValueError(f"train.weight_mode must be one of {WEIGHT_MODES}, got {mode!r}")
    return np.where(known, w, 0.0).astype(np.float32)


@dataclass
class EventFeatures:
    """Every event's ids (item and each of INPUTS) and target weight, aligned with the Sequences arrays; stored
    compact (int32 items, int8 input ids: 29 bytes an event with the weight), widened to int64 per batch."""

    offsets: np.ndarray
    item: np.ndarray
    inputs: dict[str, np.ndarray]
    weight: np.ndarray
    ends: np.ndarray | None = None
    """(n_users,) one past each user's last event in use (a split's cut in a log's arrays); offsets[1:] if None."""

    def span(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each user's first event and one past the last in use."""
        return self.offsets[users], (self.offsets[users + 1] if self.ends is None else self.ends[users])


def event_features(seqs: Sequences, weight_mode: str) -> EventFeatures:
    """Bucket every event once, vectorised, so batches are pure gathers."""
    return EventFeatures(seqs.offsets, seqs.item.astype(np.int32, copy=False),
                         {inp.name: inp.ids(seqs).astype(np.int8) for inp in INPUTS},
                         target_weights(seqs.frac, weight_mode))


def gather(f: EventFeatures, start: np.ndarray, end: np.ndarray, T: int) -> dict[str, torch.Tensor]:
    """Ids of events [end - T, end) of each row, left-padded with PAD where that reaches before `start`."""
    idx = end[:, None] - T + np.arange(T)[None, :]  # (B, T)
    ok = idx >= start[:, None]
    idx = np.where(ok, idx, 0)
    columns = {"item": f.item, **f.inputs}
    return {name: torch.from_numpy(np.where(ok, col[idx], PAD).astype(np.int64)) for name, col in columns.items()}


def history_inputs(f: EventFeatures, users: np.ndarray, T: int) -> dict[str, torch.Tensor]:
    """Each user's last T events, for encoding their current state."""
    return gather(f, *f.span(users), T)
