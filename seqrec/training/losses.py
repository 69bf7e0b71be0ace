"""Listen-weighted full-catalog cross-entropy, computed in chunks of positions."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from seqrec import PAD
from seqrec.models.sasrec import Repeat, add_repeat

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


def _chunk_loss(h: torch.Tensor, emb: torch.Tensor, target: torch.Tensor, w: torch.Tensor,
                *rep_fields: torch.Tensor) -> torch.Tensor:
    logits = (h @ emb.T).float()  # (C, V)
    if rep_fields:
        add_repeat(logits, Repeat(*rep_fields))
    logits[:, PAD] = float("-inf")
    return (w * F.cross_entropy(logits, target, reduction="none")).sum()


def weighted_ce(h: torch.Tensor, emb: torch.Tensor, target: torch.Tensor, w: torch.Tensor,
                chunk: int = 2048, rep: Repeat | None = None) -> torch.Tensor:
    """sum(w * CE) / sum(w) over positions; only one (chunk, V) logits block is alive at a time.

    h: (N, D) states, emb: (V, D) item embeddings, target: (N,) items, w: (N,) weights, rep: the rows'
    re-listen bias. Positions with w == 0 (PAD, skipped or unknown targets) are dropped before any logits.
    """
    keep = w > 0
    h, target, w = h[keep], target[keep], w[keep]
    rep = rep.select(keep) if rep is not None else None
    total = (h.sum() * 0.0).float()  # a zero kept in the graph: a batch whose targets all weigh 0 still backprops
    for i in range(0, len(h), chunk):
        sl = slice(i, i + chunk)
        fields = (rep.items[sl], rep.bias[sl], rep.latest[sl]) if rep is not None else ()
        # checkpoint: backward recomputes this chunk's logits instead of keeping them all
        total = total + checkpoint(_chunk_loss, h[sl], emb, target[sl], w[sl], *fields, use_reentrant=False)
    return total / w.sum().clamp_min(1e-8)


def sampled_ce(h: torch.Tensor, emb: torch.Tensor, target: torch.Tensor, w: torch.Tensor, negatives: torch.Tensor,
               log_q: torch.Tensor, rep: Repeat | None = None, window_dot: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted softmax over the target, the row's window items and shared negatives; sum(w * CE) / sum(w).

    negatives: (M,) items drawn from q (with replacement); log_q: (n_items + 1,) log-probabilities of q.
    Subtracting log(M q) from sampled scores makes the sampled softmax an unbiased stand-in for the full one.
    With `rep`, every distinct item of the row's window is a candidate too (always present, so uncorrected),
    scored h . e + its re-listen bias; window_dot: (N, T) the h . e of the window's items.
    A negative equal to the target, or already among the window's candidates, is masked out.
    """
    keep = w > 0
    h, target, w = h[keep], target[keep], w[keep]
    log_m = math.log(len(negatives))
    pos = (h * emb[target]).sum(-1).float()  # (N,)
    neg = (h @ emb[negatives].T).float() - log_q[negatives][None, :] - log_m  # (N, M)
    neg = neg.masked_fill(negatives[None, :] == target[:, None], float("-inf"))
    parts = []
    if rep is None:
        pos = pos - log_q[target] - log_m
    else:
        rep, dot = rep.select(keep), window_dot[keep].float()
        hit = rep.latest & (rep.items == target[:, None])  # (N, T): the target's own play in the window
        in_window = hit.any(1)
        pos = pos + (rep.bias * hit).sum(1) - torch.where(in_window, 0.0, log_q[target] + log_m)
        parts.append((dot + rep.bias).masked_fill(~rep.latest | (rep.items == target[:, None]), float("-inf")))
        window = torch.sort(rep.items.where(rep.latest, PAD), dim=1).values  # (N, T)
        at = torch.searchsorted(window, negatives[None, :].expand(len(h), -1).contiguous())
        seen = torch.gather(window, 1, at.clamp(max=window.shape[1] - 1)) == negatives[None, :]  # (N, M)
        neg = neg.masked_fill(seen, float("-inf"))
    logits = torch.cat([pos[:, None], *parts, neg], dim=1)  # the target is column 0
    ce = torch.logsumexp(logits, dim=1) - logits[:, 0]
    return (w * ce).sum() / w.sum().clamp_min(1e-8)
