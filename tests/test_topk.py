import numpy as np
import pytest
import scipy.sparse as sp
import torch

from seqrec import PAD
from seqrec.topk import count_above, estimate_above, fill, sparse_at, sparse_topk

INF = np.inf


def csr(rows: list[dict[int, float]], n_cols: int = 8) -> sp.csr_matrix:
    """A CSR matrix from one {column: value} dict per row; stored entries exactly as given (zeros too)."""
    indptr = np.cumsum([0] + [len(r) for r in rows])
    indices = np.array([c for r in rows for c in r], dtype=np.int32)
    data = np.array([v for r in rows for v in r.values()], dtype=np.float64)
    return sp.csr_matrix((data, indices, indptr), shape=(len(rows), n_cols))


def test_sparse_topk_exact_rows_with_empty_row_ties_and_short_rows():
    scores = csr([
        {1: 0.5, 2: 2.0, 4: 0.5, 5: 1.0, 7: 0.25},  # tie 1/4: the smaller item first
        {},  # no scores at all: all padding
        {1: 0.0, 3: -1.0, 6: 3.0},  # a stored zero is no score; a negative one is
        {7: 1.0, 2: 1.0, 3: 1.0},  # a three-way tie stored out of item order
    ])
    before = scores.copy()
    items, vals = sparse_topk(scores, 3)
    np.testing.assert_array_equal(items, [[2, 5, 1], [PAD, PAD, PAD], [6, 3, PAD], [2, 3, 7]])
    np.testing.assert_array_equal(vals, np.array([[2.0, 1.0, 0.5], [-INF] * 3, [3.0, -1.0, -INF], [1.0] * 3],
                                                 dtype=np.float32))
    assert items.dtype == np.int64 and vals.dtype == np.float32 and items.shape == vals.shape == (4, 3)
    # The caller's matrix is left as it was (no zeros eliminated, no re-sorting).
    np.testing.assert_array_equal(scores.indices, before.indices)
    np.testing.assert_array_equal(scores.data, before.data)


def test_sparse_topk_sums_repeated_entries_instead_of_listing_an_item_twice():
    # A non-canonical CSR (as built from raw (data, indices, indptr)) may store (row, item) twice.
    scores = sp.csr_matrix((np.array([0.4, 0.5, 0.3]), np.array([3, 5, 3]), np.array([0, 3, 3])), shape=(2, 8))
    items, vals = sparse_topk(scores, 3)
    np.testing.assert_array_equal(items, [[3, 5, PAD], [PAD, PAD, PAD]])
    np.testing.assert_allclose(vals, [[0.7, 0.5, -INF], [-INF] * 3], rtol=1e-6)


def test_sparse_topk_k_larger_than_every_row():
    items, vals = sparse_topk(csr([{4: 1.0}, {2: 2.0, 3: 3.0}]), 4)
    np.testing.assert_array_equal(items, [[4, PAD, PAD, PAD], [3, 2, PAD, PAD]])
    np.testing.assert_array_equal(vals, [[1.0, -INF, -INF, -INF], [3.0, 2.0, -INF, -INF]])


def test_fill_from_1d_fallback_keeps_items_and_never_duplicates():
    items = np.array([[5, 2, PAD, PAD], [PAD, PAD, PAD, PAD], [1, 2, 3, 4], [7, 2, 5, PAD]])
    scores = np.array([[3.0, 2.0, -INF, -INF], [-INF] * 4, [4.0, 3.0, 2.0, 1.0], [9.0, 8.0, 7.0, -INF]],
                      dtype=np.float32)
    fallback = np.array([2, 7, 5, 8, 1, 9, 3, 6])  # exactly 2k
    out, out_scores = fill(items, scores, fallback)
    np.testing.assert_array_equal(out, [[5, 2, 7, 8], [2, 7, 5, 8], [1, 2, 3, 4], [7, 2, 5, 8]])
    np.testing.assert_array_equal(out_scores, np.array(
        [[3.0, 2.0, -INF, -INF], [-INF] * 4, [4.0, 3.0, 2.0, 1.0], [9.0, 8.0, 7.0, -INF]], dtype=np.float32))
    for row in out:
        assert len(set(row.tolist())) == 4 and PAD not in row
    # Inputs are not modified.
    assert (items[0] == [5, 2, PAD, PAD]).all() and (items[1] == PAD).all()


def test_fill_skips_a_long_run_of_fallback_items_the_row_already_has():
    items = np.array([[4, 3, 2, PAD]])
    scores = np.array([[3.0, 2.0, 1.0, -INF]], dtype=np.float32)
    out, _ = fill(items, scores, np.array([2, 3, 4, 9, 1, 5, 6, 7]))
    np.testing.assert_array_equal(out, [[4, 3, 2, 9]])


def test_fill_from_2d_fallback_uses_each_rows_own_order():
    items = np.array([[3, PAD, PAD], [PAD, PAD, PAD]])
    scores = np.array([[1.0, 0.0, 0.0], [0.0] * 3], dtype=np.float32)  # filled slots score -inf whatever was there
    fallback = np.array([
        [3, 9, 8, 7, 6, 5],
        [1, 2, 3, 4, 5, 6],
    ])
    out, out_scores = fill(items, scores, fallback)
    np.testing.assert_array_equal(out, [[3, 9, 8], [1, 2, 3]])
    np.testing.assert_array_equal(out_scores, [[1.0, -INF, -INF], [-INF] * 3])


def test_fill_uses_only_the_first_2k_fallback_items_in_order():
    items = np.array([[PAD, PAD]])
    out, _ = fill(items, np.full((1, 2), -INF, np.float32), np.array([6, 5, 4, 3, 2, 1]))
    np.testing.assert_array_equal(out, [[6, 5]])


@pytest.mark.parametrize("fallback", [np.arange(1, 8), np.arange(1, 8)[None, :].repeat(2, 0)])
def test_fill_raises_on_too_short_fallback(fallback):
    items = np.full((2, 4), PAD)
    with pytest.raises(ValueError, match="at least 8 items"):
        fill(items, np.full((2, 4), -INF, np.float32), fallback)


def brute_above(scores: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    return (scores[:, None, :] > values[:, :, None]).sum(-1)


def test_count_above_is_exact_with_ties_and_masked_tracks():
    g = torch.Generator().manual_seed(0)
    scores = torch.round(torch.randn(37, 3000, generator=g) * 4) / 4  # many ties
    scores[:, :200] = float("-inf")  # tracks the scorer rules out
    cols = torch.randint(0, 3000, (37, 25), generator=g)
    values = torch.gather(scores, 1, cols)
    values[:, 0] = values[:, 1]  # a candidate tied with another
    want = brute_above(scores, values)
    assert torch.equal(count_above(scores, values, rows=8), want)
    sort = torch.sort(scores, dim=1, descending=True).values  # the sort and search the count replaces
    assert torch.equal(torch.searchsorted(-sort, -values.contiguous()), want)


def test_estimate_above_is_exact_at_the_top_and_close_below():
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(16, 40_000, generator=g)
    cols = torch.randint(0, 40_000, (16, 200), generator=g)
    values = torch.gather(scores, 1, cols)
    exact = brute_above(scores, values)
    sample = torch.as_tensor(np.random.default_rng(0).choice(40_000, 4000, replace=False))
    guess = estimate_above(scores, values, 500, sample)
    top = exact < 500
    assert top.any() and torch.equal(guess[top], exact[top])  # among the best 500: counted
    deep = exact >= 2000
    assert (guess[~top] >= 500).all()
    rel = (guess[deep].float() - exact[deep].float()).abs() / exact[deep].float()
    assert rel.median() < 0.05 and rel.max() < 0.35  # binomial noise of a 10 % sample


def test_sparse_topk_of_long_rows_keeps_ties_at_the_cut_in_item_order():
    rng = np.random.default_rng(3)
    dense = np.round(rng.random((6, 400)) * 8) / 8 * (rng.random((6, 400)) < 0.5)  # ties everywhere, rows > k
    items, vals = sparse_topk(sp.csr_matrix(dense), 20)
    for r in range(6):
        order = np.lexsort((np.arange(400), -dense[r]))[:20]  # best first, ties by the lower item
        order = order[dense[r, order] != 0]
        assert items[r, :len(order)].tolist() == order.tolist()
        np.testing.assert_array_equal(vals[r, :len(order)], dense[r, order].astype(np.float32))


def test_sparse_at_reads_unsorted_and_duplicate_entries():
    m = sp.csr_matrix((np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([5, 1, 5, 3, 0]), np.array([0, 3, 3, 5])),
                      shape=(3, 8))  # row 0 holds column 5 twice (summed) and is unsorted; row 1 is empty
    assert not m.has_sorted_indices
    cols = np.array([[5, 1, 2], [0, 5, 7], [3, 0, 6]])
    got = sparse_at(m, np.array([0, 1, 2]), cols)
    np.testing.assert_array_equal(got, [[4.0, 2.0, 0.0], [0.0, 0.0, 0.0], [4.0, 5.0, 0.0]])
    np.testing.assert_array_equal(sparse_at(m, np.array([2, 0]), cols[:2]), [[0.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    assert m.indices.tolist() == [5, 1, 5, 3, 0]  # the caller's matrix is left as it was
