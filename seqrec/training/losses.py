"""Listen-weighted next-track losses: the exact full-catalog cross-entropy in chunks of positions, and a
sampled softmax; both score through `SASRec.logits`."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from seqrec import PAD
from seqrec.models.sasrec import Repeat, SASRec


def weighted_ce(net: SASRec, h: torch.Tensor, target: torch.Tensor, w: torch.Tensor, chunk: int = 2048,
                rep: Repeat | None = None) -> torch.Tensor:
    """sum(w * CE) / sum(w) over the whole catalog; only one (chunk, V) logits block is alive at a time.

    h: (N, D) states, target: (N,) items, w: (N,) weights, rep: the rows' re-listen windows. Positions with
    w == 0 (PAD, skipped or unknown targets) are dropped before any logits are made.
    """
    keep = w > 0
    h, target, w = h[keep], target[keep], w[keep]
    rep = rep.select(keep) if rep is not None else None

    def chunk_loss(h_c: torch.Tensor, t_c: torch.Tensor, w_c: torch.Tensor, *window: torch.Tensor) -> torch.Tensor:
        logits = net.logits(h_c, Repeat(*window) if window else None)
        return (w_c * F.cross_entropy(logits, t_c, reduction="none")).sum()

    total = (h.sum() * 0.0).float()  # a zero kept in the graph: a batch whose targets all weigh 0 still backprops
    for i in range(0, len(h), chunk):
        sl = slice(i, i + chunk)
        window = (rep.items[sl], rep.bias[sl], rep.latest[sl]) if rep is not None else ()
        # checkpoint: backward recomputes this chunk's logits instead of keeping them all
        total = total + checkpoint(chunk_loss, h[sl], target[sl], w[sl], *window, use_reentrant=False)
    return total / w.sum().clamp_min(1e-8)


def sampled_logits(net: SASRec, h: torch.Tensor, item: torch.Tensor, target: torch.Tensor, negatives: torch.Tensor,
                   log_q: torch.Tensor, rep: Repeat | None = None, keep: torch.Tensor | None = None) -> torch.Tensor:
    """(N, 1 + [T] + M) logits of the sampled softmax, the target in column 0: the target, each distinct item of
    the row's window (with `rep`) and the shared negatives, all scored by `net.logits`.

    h: (B, T, D) states of windows `item` (B, T), flattened to B * T rows like target; `keep` selects the N rows
    wanted (default: all). negatives: (M,) items drawn from q; log_q: (n_items + 1,) log q. Subtracting
    log(M q) from sampled scores makes the sampled softmax an unbiased stand-in for the full one; window items
    are always present, so they stay uncorrected. A negative equal to the target, or already among the row's
    window, is masked out.
    """
    flat = h.flatten(0, 1)  # (B * T, D)
    keep = torch.ones(len(flat), dtype=torch.bool, device=h.device) if keep is None else keep
    window = net.logits(h, rep, item).flatten(0, 1)[keep] if rep is not None else None  # (N, T), one batched product
    flat, target = flat[keep], target[keep]
    rep = rep.select(keep) if rep is not None else None
    log_m = math.log(len(negatives))
    pos = net.logits(flat, rep, target[:, None])[:, 0]  # (N,) with the target's re-listen bias
    neg = net.logits(flat, None, negatives) - log_q[negatives][None, :] - log_m  # (N, M)
    neg = neg.masked_fill(negatives[None, :] == target[:, None], float("-inf"))
    parts = []
    if rep is None:
        pos = pos - log_q[target] - log_m
    else:
        in_window = (rep.latest & (rep.items == target[:, None])).any(1)
        pos = pos - torch.where(in_window, 0.0, log_q[target] + log_m)
        parts.append(window.masked_fill(~rep.latest | (rep.items == target[:, None]), float("-inf")))
        played = torch.sort(rep.items.where(rep.latest, PAD), dim=1).values  # (N, T)
        at = torch.searchsorted(played, negatives[None, :].expand(len(flat), -1).contiguous())
        seen = torch.gather(played, 1, at.clamp(max=played.shape[1] - 1)) == negatives[None, :]  # (N, M)
        neg = neg.masked_fill(seen, float("-inf"))
    return torch.cat([pos[:, None], *parts, neg], dim=1)


def sampled_ce(net: SASRec, h: torch.Tensor, item: torch.Tensor, target: torch.Tensor, w: torch.Tensor,
               negatives: torch.Tensor, log_q: torch.Tensor, rep: Repeat | None = None) -> torch.Tensor:
    """Weighted sampled softmax (see `sampled_logits`): sum(w * CE) / sum(w) over positions with w > 0."""
    keep = w > 0
    logits = sampled_logits(net, h, item, target, negatives, log_q, rep, keep)
    ce = torch.logsumexp(logits, dim=1) - logits[:, 0]
    return (w[keep] * ce).sum() / w[keep].sum().clamp_min(1e-8)
