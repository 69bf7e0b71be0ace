"""Validation's list metrics as torchmetrics, so each process adds its own users and the values are reduced across
processes: NDCG, recall, precision, MAP and hit rate through torchmetrics' retrieval metrics, the contest score
(seqrec.metrics.user_scores: torchmetrics has no graded quarter-credit metric) and the share of repeats as means.

The retrieval metrics see every window track of a user, listed or not (unlisted ones score -inf, so they are never
retrieved), so the ideal DCG and the recall's denominator count the whole window, as seqrec.metrics does. Their
MAP is torchmetrics' (precision at each hit over the hits in the top c); seqrec.evaluate's map@c divides by
min(c, the user's relevant tracks) instead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torchmetrics import MeanMetric
from torchmetrics.retrieval import (
    RetrievalHitRate,
    RetrievalMAP,
    RetrievalNormalizedDCG,
    RetrievalPrecision,
    RetrievalRecall,
)

from seqrec import PAD, metrics
from seqrec.metrics import Truth


def retrieval_inputs(recs: np.ndarray, users: np.ndarray, truth: Truth) -> tuple[torch.Tensor, ...]:
    """(preds, gain, indexes) for torchmetrics' retrieval metrics: each user's k slots scored k .. 1 (a PAD slot
    gains nothing), then the user's window tracks not in the list, scored -inf; `indexes` is the user, so users
    added by several updates or processes stay apart."""
    n, k = recs.shape
    theirs = pd.Index(users).get_indexer(truth.users) >= 0  # the window tracks of these users
    stride = int(max(recs.max(initial=0), truth.items.max(initial=0))) + 1
    listed = np.isin(truth.users * stride + truth.items, (users[:, None] * stride + recs)[recs != PAD])
    extra = theirs & ~listed
    preds = np.r_[np.tile(np.arange(k, 0, -1, dtype=np.float32), n), np.full(extra.sum(), -np.inf, np.float32)]
    gain = np.r_[truth.lookup(users, recs).ravel(), truth.gain[extra]].astype(np.float32)
    return (torch.from_numpy(preds), torch.from_numpy(gain),
            torch.from_numpy(np.r_[np.repeat(users, k), truth.users[extra]].astype(np.int64)))


class ListMetrics(torch.nn.Module):
    """The validation metrics of top-k lists; `update` with a process's users, `compute` reduces over processes."""

    def __init__(self, k: int, cutoffs: list[int]):
        super().__init__()
        cuts = sorted({*cutoffs, k})
        self.graded = torch.nn.ModuleDict({f"ndcg@{k}": RetrievalNormalizedDCG(top_k=k)})
        self.binary = torch.nn.ModuleDict({
            f"recall@{k}": RetrievalRecall(top_k=k, empty_target_action="skip"),
            **{f"{name}@{c}": cls(top_k=c) for c in cuts
               for name, cls in (("precision", RetrievalPrecision), ("map", RetrievalMAP), ("hit", RetrievalHitRate))},
        })
        self.means = torch.nn.ModuleDict({name: MeanMetric().set_dtype(torch.float64)
                                          for name in ("score", "score_model_only", "repeat")})

    def update(self, recs: np.ndarray, users: np.ndarray, truth: Truth, history: tuple[np.ndarray, np.ndarray],
               model_only: np.ndarray) -> None:
        """Lists `recs` (n, k) of distinct `users` (n,), the (users, items) of their history, and the network's
        own lists `model_only` (n, k)."""
        device = self.means["score"].device
        preds, gain, idx = (t.to(device) for t in retrieval_inputs(recs, users, truth))
        for m in self.graded.values():
            m.update(preds, gain, indexes=idx)
        for m in self.binary.values():
            m.update(preds, gain > 0, indexes=idx)
        mean = {"score": metrics.user_scores(recs, users, truth),
                "score_model_only": metrics.user_scores(model_only, users, truth),
                "repeat": metrics.played(recs, users, *history)[recs != PAD]}
        for name, values in mean.items():
            self.means[name].update(torch.as_tensor(np.asarray(values, np.float64), device=device))

    def compute(self) -> dict[str, float]:
        """Every metric over all processes' users; the state is then cleared."""
        out = {name: float(m.compute()) for group in (self.means, self.graded, self.binary)
               for name, m in group.items()}
        for group in (self.means, self.graded, self.binary):
            for m in group.values():
                m.reset()
        return out
