"""Top-k lists from sparse per-user scores, filled up to exactly k distinct items from a fallback order."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from seqrec import PAD


def sparse_topk(scores: sp.csr_matrix, k: int, unique: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Best k stored entries per row, (n, k) items and scores, ties by the lower item; PAD / -inf where a row has
    fewer. `unique`: the caller knows each (row, item) is stored once at most (a matrix product's output), so
    repeated entries need not be summed first (a sort of every row)."""
    scores = scores.tocsr(copy=True)  # the caller's matrix is not ours to change
    if not unique:
        scores.sum_duplicates()  # a repeated (row, item) entry must not list the item twice
    scores.eliminate_zeros()
    n = scores.shape[0]
    counts = np.diff(scores.indptr)
    keep = np.ones(scores.nnz, dtype=bool)
    for r in np.flatnonzero(counts > k):  # a long row keeps what ties or beats its k-th best: a partition, no sort
        a, b = scores.indptr[r], scores.indptr[r + 1]
        v = scores.data[a:b]
        keep[a:b] = v >= np.partition(v, len(v) - k)[len(v) - k]
    rows, data, indices = np.repeat(np.arange(n), counts)[keep], scores.data[keep], scores.indices[keep]
    order = np.lexsort((indices, -data, rows))  # by row, best first, ties by item
    start = np.searchsorted(rows, np.arange(n))
    rank = np.arange(len(order)) - start[rows[order]]
    top = rank < k
    sel, c = order[top], rank[top]
    items = np.full((n, k), PAD, dtype=np.int64)
    vals = np.full((n, k), -np.inf, dtype=np.float32)
    r = rows[sel]
    items[r, c] = indices[sel]
    vals[r, c] = data[sel]
    return items, vals


def sparse_at(m: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(B, C) the entries of `m` at rows (B,) x cols (B, C) (repeated entries summed), 0 where none is stored. The
    stored entries are searched among the sorted queries, so a row's indices need no sorting (scipy's indexing
    scans a row whose indices are unsorted, as a product leaves them)."""
    sub = m if len(rows) == m.shape[0] and np.array_equal(rows, np.arange(m.shape[0])) else m[rows]
    width = np.int64(m.shape[1])
    keys = np.repeat(np.arange(len(rows), dtype=np.int64), np.diff(sub.indptr)) * width + sub.indices
    queries, back = np.unique(np.arange(len(rows), dtype=np.int64)[:, None] * width + cols, return_inverse=True)
    pos = np.minimum(np.searchsorted(queries, keys), len(queries) - 1)
    hit = queries[pos] == keys
    found = np.bincount(pos[hit], weights=sub.data[hit], minlength=len(queries))
    return found[back.reshape(cols.shape)].astype(sub.dtype, copy=False)


def fill(items: np.ndarray, scores: np.ndarray, fallback: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replace PAD slots with the first fallback items not already in the row.

    items, scores: (n, k) best first with PAD at the end; fallback: (F,) or (n, F) ordered items with
    F >= 2k distinct entries, so that enough survive removing the row's own items.
    """
    n, k = items.shape
    fb = np.broadcast_to(fallback if fallback.ndim == 2 else fallback[None, :], (n, fallback.shape[-1]))
    if fb.shape[1] < 2 * k:
        raise ValueError(f"fallback needs at least {2 * k} items per row, got {fb.shape[1]}")
    fb = fb[:, : 2 * k]
    # A fallback item is usable if it is not already among the row's items.
    srt = np.sort(items, axis=1)  # (n, k)
    pos = np.clip(_row_searchsorted(srt, fb), 0, k - 1)
    dup = np.take_along_axis(srt, pos, axis=1) == fb  # (n, 2k)
    usable = ~dup
    need = (items == PAD).sum(1)  # PAD slots are at the end
    slot = np.cumsum(usable, axis=1) - 1  # (n, 2k): which PAD slot each usable fallback fills
    take = usable & (slot < need[:, None])
    r, c = np.nonzero(take)
    dest = k - need[r] + slot[r, c]
    items = items.copy()
    scores = scores.copy()
    items[r, dest] = fb[r, c]
    scores[r, dest] = -np.inf
    return items, scores


def _row_searchsorted(sorted_rows: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """searchsorted per row, vectorised by offsetting each row into its own value band."""
    n = sorted_rows.shape[0]
    span = int(max(sorted_rows.max(initial=0), queries.max(initial=0))) + 1
    off = (np.arange(n, dtype=np.int64) * span)[:, None]
    flat = (sorted_rows + off).ravel()
    pos = np.searchsorted(flat, (queries + off).ravel()).reshape(queries.shape)
    return pos - np.arange(n)[:, None] * sorted_rows.shape[1]


def count_above(scores: torch.Tensor, values: torch.Tensor, rows: int = 32) -> torch.Tensor:
    """(B, C) how many of each row's scores (B, V) are strictly above each of its values (B, C): exact, as a
    descending sort and a search would count, in O(V log C) per row and `rows` rows at a time (a sort is
    O(V log V) and 7 times slower at 349K tracks)."""
    b, c = values.shape
    out = torch.empty(b, c, dtype=torch.int64, device=values.device)
    for a in range(0, b, rows):
        x, v = scores[a:a + rows].float(), values[a:a + rows].float()
        srt, order = torch.sort(v, dim=1)
        below = torch.searchsorted(srt, x.contiguous(), out_int32=True)  # (r, V): how many values each score exceeds
        band = torch.arange(len(x), device=x.device)[:, None] * (c + 1)
        hist = torch.bincount((below + band).view(-1), minlength=len(x) * (c + 1)).view(len(x), c + 1)
        out[a:a + rows].scatter_(1, order, x.shape[1] - hist.cumsum(1)[:, :c])  # scores above srt[i]: bins > i
    return out


def estimate_above(scores: torch.Tensor, values: torch.Tensor, top: int, sample: torch.Tensor) -> torch.Tensor:
    """(B, C) count_above, exact for a value among each row's `top` best scores and estimated below them from the
    scores of `sample` (S,) columns drawn uniformly, scaled to the row's length (at least `top`)."""
    n = min(top, scores.shape[1])
    best = torch.topk(scores, n, dim=1).values.float()  # descending
    values = values.float().contiguous()
    exact = torch.searchsorted(-best, -values)  # best scores strictly above each value
    drawn = torch.sort(scores[:, sample].float(), dim=1).values
    seen = drawn.shape[1] - torch.searchsorted(drawn, values, right=True)  # sample scores above each value
    guess = torch.clamp(torch.round(seen * (scores.shape[1] / max(len(sample), 1))).long(), min=n)
    return torch.where(values >= best[:, -1:], exact, guess)
