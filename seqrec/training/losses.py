"""Listen-weighted full-catalog cross-entropy, computed in chunks of positions."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from seqrec import PAD

WEIGHT_MODES = ("none", "binary", "quarter", "raw")


def target_weights(frac: np.ndarray, mode: str) -> np.ndarray:
    """How much a target counts: the metric's quarter, the raw fraction, >= half, or 1; unknown length -> 0."""
    known = ~np.isnan(frac)
    f = np.clip(np.nan_to_num(frac), 0.0, 1.0)
    if mode == "quarter":
        w = np.floor(f * 4) / 4
    elif mode == "raw":
        w = f
    elif mode == "binary":
        w = (f >= 0.5).astype(np.float32)
    elif mode == "none":
        w = np.ones_like(f)
    else:
        raise ValueError(f"train.weight_mode must be one of {WEIGHT_MODES}, got {mode!r}")
    return np.where(known, w, 0.0).astype(np.float32)


def _chunk_loss(h: torch.Tensor, emb: torch.Tensor, target: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    logits = (h @ emb.T).float()  # (C, V)
    logits[:, PAD] = float("-inf")
    return (w * F.cross_entropy(logits, target, reduction="none")).sum()


def weighted_ce(h: torch.Tensor, emb: torch.Tensor, target: torch.Tensor, w: torch.Tensor,
                chunk: int = 2048) -> torch.Tensor:
    """sum(w * CE) / sum(w) over positions; only one (chunk, V) logits block is alive at a time.

    h: (N, D) states, emb: (V, D) item embeddings, target: (N,) items, w: (N,) weights.
    Positions with w == 0 (PAD, skipped or unknown targets) are dropped before any logits are built.
    """
    keep = w > 0
    h, target, w = h[keep], target[keep], w[keep]
    total = (h.sum() * 0.0).float()  # a zero kept in the graph: a batch whose targets all weigh 0 still backprops
    for i in range(0, len(h), chunk):
        # checkpoint: backward recomputes this chunk's logits instead of keeping them all
        total = total + checkpoint(_chunk_loss, h[i:i + chunk], emb, target[i:i + chunk], w[i:i + chunk],
                                   use_reentrant=False)
    return total / w.sum().clamp_min(1e-8)


def sampled_ce(h: torch.Tensor, emb: torch.Tensor, target: torch.Tensor, w: torch.Tensor, negatives: torch.Tensor,
               log_q: torch.Tensor) -> torch.Tensor:
    """Weighted softmax over the target and shared negatives, with logQ correction; sum(w * CE) / sum(w).

    negatives: (M,) items drawn from q (with replacement); log_q: (n_items + 1,) log-probabilities of q.
    Subtracting log(M q) makes the sampled softmax an unbiased stand-in for the full one; a negative equal
    to the row's own target is masked out.
    """
    keep = w > 0
    h, target, w = h[keep], target[keep], w[keep]
    pos = (h * emb[target]).sum(-1, keepdim=True).float() - log_q[target][:, None] - math.log(len(negatives))
    neg = (h @ emb[negatives].T).float() - log_q[negatives][None, :] - math.log(len(negatives))  # (N, M)
    neg = neg.masked_fill(negatives[None, :] == target[:, None], float("-inf"))
    logits = torch.cat([pos, neg], dim=1)  # (N, 1 + M): the target is column 0
    ce = torch.logsumexp(logits, dim=1) - logits[:, 0]
    return (w * ce).sum() / w.sum().clamp_min(1e-8)
