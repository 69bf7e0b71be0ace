"""Top-k lists from sparse per-user scores, filled up to exactly k distinct items from a fallback order."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from seqrec import PAD


def sparse_topk(scores: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best k stored entries per row, (n, k) items and scores; PAD / -inf where a row has fewer."""
    scores = scores.tocsr(copy=True)  # the caller's matrix is not ours to change
    scores.sum_duplicates()  # a repeated (row, item) entry must not list the item twice; sorts ties by item
    scores.eliminate_zeros()
    n = scores.shape[0]
    counts = np.diff(scores.indptr)
    rows = np.repeat(np.arange(n), counts)
    order = np.lexsort((-scores.data, rows))  # by row, best first
    rank = np.arange(len(order)) - scores.indptr[rows[order]]
    top = rank < k
    keep, c = order[top], rank[top]
    items = np.full((n, k), PAD, dtype=np.int64)
    vals = np.full((n, k), -np.inf, dtype=np.float32)
    r = rows[keep]
    items[r, c] = scores.indices[keep]
    vals[r, c] = scores.data[keep]
    return items, vals


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
