"""Listen-weighted next-track losses: the exact full-catalog cross-entropy in chunks of positions, and a
sampled softmax; both score the network's states through `SASRec.score`. With `explore`, the tracks a position
has already seen leave its softmax (the `discover` objectives: what comes next that the history cannot offer)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from seqrec import PAD
from seqrec.models.sasrec import Repeat, SASRec, States


def window_items(item: torch.Tensor) -> torch.Tensor:
    """(B * T, T) for each position of (B, T) windows, the tracks it has seen (its own event and the earlier ones),
    PAD elsewhere."""
    B, T = item.shape
    pos = torch.arange(T, device=item.device)
    seen = pos[None, :] <= pos[:, None]  # (T, T): query t, key j
    return item[:, None, :].expand(B, T, T).where(seen[None], PAD).reshape(B * T, T)


def weighted_ce(net: SASRec, states: States, target: torch.Tensor, w: torch.Tensor,
                chunk: int = 2048, exclude: torch.Tensor | None = None,
                norm: torch.Tensor | None = None) -> torch.Tensor:
    """sum(w * CE) / sum(w) over the whole catalog; only one (chunk, V) logits block is alive at a time.

    states: (N, D) rows with their re-listen windows, target: (N,) items, w: (N,) weights. Positions with
    w == 0 (PAD, skipped or unknown targets) are dropped before any logits are made. `exclude` (N, T): tracks
    each row's softmax leaves out (explore: the row's window, `window_items`), the re-listen bias then unused.
    `norm`: the divisor instead of sum(w) (DDP: the ranks' mean sum, so averaged gradients are the whole batch's).
    """
    keep = w > 0
    states, target, w = states.select(keep), target[keep], w[keep]
    h, rep = states.h, states.repeat
    if exclude is not None:
        rep, exclude = None, exclude[keep]

    def chunk_loss(weights: torch.Tensor, h_c: torch.Tensor, t_c: torch.Tensor, w_c: torch.Tensor,
                   *window: torch.Tensor) -> torch.Tensor:
        if exclude is not None:
            logits = net.score(States(h_c, None), weights=weights).scatter(1, window[0], float("-inf"))
        else:
            logits = net.score(States(h_c, Repeat(*window) if window else None), weights=weights)
        return (w_c * F.cross_entropy(logits, t_c, reduction="none")).sum()

    total = (h.sum() * 0.0).float()  # a zero kept in the graph: a batch whose targets all weigh 0 still backprops
    weights = net.item_weights()  # once per step: with side information every track's vector is a sum
    for i in range(0, len(h), chunk):
        sl = slice(i, i + chunk)
        if exclude is not None:
            window = (exclude[sl],)
        else:
            window = (rep.items[sl], rep.bias[sl], rep.latest[sl]) if rep is not None else ()
        # checkpoint: backward recomputes this chunk's logits instead of keeping them all
        total = total + checkpoint(chunk_loss, weights, h[sl], target[sl], w[sl], *window, use_reentrant=False)
    return total / (w.sum() if norm is None else norm).clamp_min(1e-8)


def in_rows(rows: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """(N, M) bool: items[m] is among rows[n] (N, T), PAD never. Each row's tracks are located among the sorted
    items (N * T searches, not N * M) and mark their ranges of equal items through a cumulative sum."""
    vals, order = torch.sort(items)
    n, m = len(rows), len(items)
    real = rows != PAD
    lo = torch.searchsorted(vals, rows).where(real, m)  # PAD marks the spare column m only
    hi = torch.searchsorted(vals, rows, right=True).where(real, m)
    ones = torch.ones_like(lo, dtype=torch.int32)
    diff = torch.zeros(n, m + 1, dtype=torch.int32, device=rows.device)
    diff.scatter_add_(1, lo, ones).scatter_add_(1, hi, -ones)
    hit = torch.empty(n, m, dtype=torch.bool, device=rows.device)
    hit[:, order] = diff.cumsum(1)[:, :m] > 0
    return hit & (items != PAD)


def sampled_logits(net: SASRec, states: States, item: torch.Tensor, target: torch.Tensor, negatives: torch.Tensor,
                   log_q: torch.Tensor, keep: torch.Tensor | None = None, explore: bool = False) -> torch.Tensor:
    """(N, 1 + [T] + M) logits of the sampled softmax, the target in column 0: the target, each distinct item of
    the row's window (with re-listen windows) and the shared negatives, all scored by `net.score`.

    states: (B, T, D) states of windows `item` (B, T) with their B * T re-listen windows, flattened to B * T rows
    like target; `keep` selects the N rows wanted (default: all). negatives: (M,) items drawn from q; log_q:
    (n_items + 1,) log q. Subtracting log(M q) from sampled scores makes the sampled softmax an unbiased stand-in
    for the full one; window items are always present, so they stay uncorrected. A negative equal to the target,
    or already among the row's window, is masked out. `explore`: the window's items are not competitors at all
    (nor is the re-listen bias read): the target against the corrected negatives only.
    """
    flat = states.flatten()  # (B * T, D)
    keep = torch.ones(len(flat.h), dtype=torch.bool, device=flat.h.device) if keep is None else keep
    rep = None if explore else states.repeat
    window = net.score(states, item).flatten(0, 1)[keep] if rep is not None else None  # (N, T), one batched product
    flat, target = (States(flat.h, None) if explore else flat).select(keep), target[keep]
    log_m = math.log(len(negatives))
    pos = net.score(flat, target[:, None])[:, 0]  # (N,) with the target's re-listen bias
    neg = net.score(States(flat.h, None), negatives) - log_q[negatives][None, :] - log_m  # (N, M)
    neg = neg.masked_fill(negatives[None, :] == target[:, None], float("-inf"))
    parts = []
    if rep is None:
        pos = pos - log_q[target] - log_m
    else:
        rep = flat.repeat
        in_window = (rep.latest & (rep.items == target[:, None])).any(1)
        pos = pos - torch.where(in_window, 0.0, log_q[target] + log_m)
        parts.append(window.masked_fill(~rep.latest | (rep.items == target[:, None]), float("-inf")))
    if explore or rep is not None:
        seen = window_items(item)[keep] if explore else rep.items.where(rep.latest, PAD)  # (N, T)
        neg = neg.masked_fill(in_rows(seen, negatives), float("-inf"))
    return torch.cat([pos[:, None], *parts, neg], dim=1)


def sampled_ce(net: SASRec, states: States, item: torch.Tensor, target: torch.Tensor, w: torch.Tensor,
               negatives: torch.Tensor, log_q: torch.Tensor, explore: bool = False,
               norm: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted sampled softmax (see `sampled_logits`): sum(w * CE) / sum(w) over positions with w > 0 (`norm`
    instead of sum(w) as weighted_ce's)."""
    keep = w > 0
    logits = sampled_logits(net, states, item, target, negatives, log_q, keep, explore)
    ce = torch.logsumexp(logits, dim=1) - logits[:, 0]
    return (w[keep] * ce).sum() / (w[keep].sum() if norm is None else norm).clamp_min(1e-8)
