"""Candidate sources, one named entry each: the tracks a source lists for a batch of users, best first.

A source reads the users' evidence (their plays and the log-wide tables) and, for `model`, what the scorer says
of the catalog. Its size is a field of RankConfig named by the entry (0 switches it off). Adding a source is one
entry in SOURCES and its size field; the candidates, their `rank_in_<source>` feature and the benchmarks follow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch

from seqrec import PAD
from seqrec.config import RankConfig
from seqrec.logstats import row_normalise, transition_scores
from seqrec.topk import sparse_topk

if TYPE_CHECKING:
    from seqrec.ranking.evidence import Evidence


@dataclass
class Scores:
    """What a scorer (the network, or any other) says of the whole catalog for a batch of users."""

    logp: torch.Tensor
    """(B, V) log-probabilities; -inf for a track that may not be recommended to the user."""
    state: torch.Tensor | None = None
    """(B, D) the network's state of each user, for the candidates' cosine to it; None for another scorer."""
    item_vectors: torch.Tensor | None = None
    """(V, D) the network's output vector of each track."""


@dataclass
class UserBatch:
    """A batch of users as the sources see them: their evidence and the scorer's view of the catalog."""

    users: np.ndarray
    """(B,) user indices of the evidence."""
    evidence: Evidence
    scores: Scores

    @cached_property
    def transitions(self) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(B, V) re-listen plus what follows the last plays, and what usually follows the user's favourites."""
        ev, trans = self.evidence, self.evidence.tables.trans
        history = ev.history[self.users]
        nxt = row_normalise(transition_scores(history, ev.context[self.users], trans, ev.cfg.transitions_weight))
        return nxt.tocsr(), row_normalise(row_normalise(history) @ trans).tocsr()


def _model(b: UserBatch, n: int) -> np.ndarray:
    n = min(n, b.scores.logp.shape[1])  # a catalog may be smaller
    return torch.topk(b.scores.logp, n, dim=-1).indices.cpu().numpy()


def _explore(b: UserBatch, n: int) -> np.ndarray:
    ev = b.evidence
    lo, hi = ev.runs(b.users)
    rows = np.repeat(np.arange(len(b.users)), hi - lo)
    pairs = np.arange(len(rows)) + np.repeat(lo - (np.cumsum(hi - lo) - (hi - lo)), hi - lo)  # each user's run
    logp = b.scores.logp
    played = (torch.as_tensor(rows, device=logp.device),
              torch.as_tensor(ev.keys[pairs] % ev.stride, device=logp.device))
    kept = logp[played]
    logp[played] = float("-inf")  # in place and put back: a copy of (B, V) scores would double decoding's memory
    top = torch.topk(logp, min(n, logp.shape[1]), dim=-1)
    logp[played] = kept
    return torch.where(torch.isfinite(top.values), top.indices, PAD).cpu().numpy()  # never a played track


def _history(b: UserBatch, n: int) -> np.ndarray:
    ev = b.evidence
    lo, hi = ev.runs(b.users)
    idx = lo[:, None] + np.arange(n)[None, :]  # (B, n) positions in `ranked`; keys and ranked share user runs
    ok = idx < hi[:, None]
    if not ok.any():  # no user of the batch has a usable play (and `ranked` may be empty)
        return np.full(idx.shape, PAD, dtype=np.int64)
    pairs = ev.ranked[np.where(ok, idx, 0)]
    return np.where(ok, ev.keys[pairs] % ev.stride, PAD)


def _favourites(b: UserBatch, n: int) -> np.ndarray:
    return sparse_topk(b.transitions[1], n, unique=True)[0]  # products and their sums: one entry per track


def _next(b: UserBatch, n: int) -> np.ndarray:
    return sparse_topk((b.evidence.context[b.users] @ b.evidence.tables.trans).tocsr(), n, unique=True)[0]


def _artists(b: UserBatch, n: int) -> np.ndarray:
    ev = b.evidence
    return sparse_topk((ev.artist_plays[b.users] @ ev.tables.artist_tracks).tocsr(), n, unique=True)[0]


@dataclass(frozen=True)
class Source:
    """One candidate source: its name, the RankConfig field of its size, and (users, n) -> (B, n) tracks, best
    first, PAD where it has fewer."""

    name: str
    size: str
    top: Callable[[UserBatch, int], np.ndarray]
    doc: str
    at_least_k: bool = False
    """It can always list k tracks, so it lists at least the list length (a list can be made of it alone)."""

    def n(self, cfg: RankConfig, k: int = 0) -> int:
        """How many tracks it lists under `cfg` for lists of length k."""
        n = getattr(cfg, self.size)
        return max(n, k) if self.at_least_k else n


SOURCES = (
    Source("model", "n_model_candidates", _model, "the scorer's best tracks (the network's)", at_least_k=True),
    Source("explore", "n_explore_candidates", _explore, "the scorer's best tracks among those the user never played"),
    Source("history", "n_history_candidates", _history, "the user's own tracks by re-listen score"),
    Source("favourites", "n_favourites_candidates", _favourites, "what usually follows the user's favourites"),
    Source("next", "n_next_candidates", _next, "what usually follows the user's last plays"),
    Source("artists", "n_artist_candidates", _artists,
           "tracks of the user's artists, by their share of the user's plays and the track's recent listeners"),
)
SOURCE = {s.name: s for s in SOURCES}
