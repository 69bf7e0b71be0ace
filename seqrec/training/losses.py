"""Listen-weighted next-track losses: the exact full-catalog cross-entropy in chunks of positions, and a
sampled softmax; both score the network's states through `SASRec.score`."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from seqrec import PAD
from seqrec.models.sasrec import Repeat, SASRec, States


def weighted_ce(net: SASRec, states: States, target: torch.Tensor, w: torch.Tensor,
                chunk: int = 2048) -> torch.Tensor:
    """sum(w * CE) / sum(w) over the whole catalog; only one (chunk, V) logits block is alive at a time.

    states: (N, D) rows with their re-listen windows, target: (N,) items, w: (N,) weights. Positions with
    w == 0 (PAD, skipped or unknown targets) are dropped before any logits are made.
    """
    keep = w > 0
    states, target, w = states.select(keep), target[keep], w[keep]
    h, rep = states.h, states.repeat

    def chunk_loss(h_c: torch.Tensor, t_c: torch.Tensor, w_c: torch.Tensor, *window: torch.Tensor) -> torch.Tensor:
        logits = net.score(States(h_c, Repeat(*window) if window else None))
        return (w_c * F.cross_entropy(logits, t_c, reduction="none")).sum()

    total = (h.sum() * 0.0).float()  # a zero kept in the graph: a batch whose targets all weigh 0 still backprops
    for i in range(0, len(h), chunk):
        sl = slice(i, i + chunk)
        window = (rep.items[sl], rep.bias[sl], rep.latest[sl]) if rep is not None else ()
        # checkpoint: backward recomputes this chunk's logits instead of keeping them all
        total = total + checkpoint(chunk_loss, h[sl], target[sl], w[sl], *window, use_reentrant=False)
    return total / w.sum().clamp_min(1e-8)


def sampled_logits(net: SASRec, states: States, item: torch.Tensor, target: torch.Tensor, negatives: torch.Tensor,
                   log_q: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """(N, 1 + [T] + M) logits of the sampled softmax, the target in column 0: the target, each distinct item of
    the row's window (with re-listen windows) and the shared negatives, all scored by `net.score`.

    states: (B, T, D) states of windows `item` (B, T) with their B * T re-listen windows, flattened to B * T rows
    like target; `keep` selects the N rows wanted (default: all). negatives: (M,) items drawn from q; log_q:
    (n_items + 1,) log q. Subtracting log(M q) from sampled scores makes the sampled softmax an unbiased stand-in
    for the full one; window items are always present, so they stay uncorrected. A negative equal to the target,
    or already among the row's window, is masked out.
    """
    flat = states.flatten()  # (B * T, D)
    keep = torch.ones(len(flat.h), dtype=torch.bool, device=flat.h.device) if keep is None else keep
    rep = states.repeat
    window = net.score(states, item).flatten(0, 1)[keep] if rep is not None else None  # (N, T), one batched product
    flat, target = flat.select(keep), target[keep]
    rep = flat.repeat
    log_m = math.log(len(negatives))
    pos = net.score(flat, target[:, None])[:, 0]  # (N,) with the target's re-listen bias
    neg = net.score(States(flat.h, None), negatives) - log_q[negatives][None, :] - log_m  # (N, M)
    neg = neg.masked_fill(negatives[None, :] == target[:, None], float("-inf"))
    parts = []
    if rep is None:
        pos = pos - log_q[target] - log_m
    else:
        in_window = (rep.latest & (rep.items == target[:, None])).any(1)
        pos = pos - torch.where(in_window, 0.0, log_q[target] + log_m)
        parts.append(window.masked_fill(~rep.latest | (rep.items == target[:, None]), float("-inf")))
        played = torch.sort(rep.items.where(rep.latest, PAD), dim=1).values  # (N, T)
        at = torch.searchsorted(played, negatives[None, :].expand(len(flat.h), -1).contiguous())
        seen = torch.gather(played, 1, at.clamp(max=played.shape[1] - 1)) == negatives[None, :]  # (N, M)
        neg = neg.masked_fill(seen, float("-inf"))
    return torch.cat([pos[:, None], *parts, neg], dim=1)


def sampled_ce(net: SASRec, states: States, item: torch.Tensor, target: torch.Tensor, w: torch.Tensor,
               negatives: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Weighted sampled softmax (see `sampled_logits`): sum(w * CE) / sum(w) over positions with w > 0."""
    keep = w > 0
    logits = sampled_logits(net, states, item, target, negatives, log_q, keep)
    ce = torch.logsumexp(logits, dim=1) - logits[:, 0]
    return (w[keep] * ce).sum() / w[keep].sum().clamp_min(1e-8)
