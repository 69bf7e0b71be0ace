import math

import numpy as np
import pytest

from seqrec.metrics import (
    Truth,
    artist_diversity,
    at_cutoffs,
    build_truth,
    competition_score,
    coverage,
    ndcg_at_k,
    novelty,
    quarter,
    recall_at_k,
    repeat_share,
    user_scores,
)

# Item:           0(pad) 1    2    3       4    5     6
DURATION = np.array([np.nan, 100, 200, np.nan, 0.0, 50.0, 100.0])


@pytest.fixture
def truth() -> Truth:
    """Three users; events shuffled so build_truth has to sort them."""
    events = [  # (user, item, listened seconds)
        (1, 6, 60.0),  # 0.6 -> 0.5
        (0, 1, 40.0),  # replay below: max 40 of 100 -> 0.25
        (2, 1, 100.0),  # exactly 1
        (0, 2, 300.0),  # 1.5 of the track -> clipped to 1
        (1, 4, 10.0),  # duration 0 -> unknown -> 0
        (0, 5, 37.5),  # 0.75
        (0, 3, 100.0),  # duration NaN -> 0
        (1, 2, -5.0),  # negative -> 0
        (0, 1, 40.0),
    ]
    u, i, s = (np.array(c) for c in zip(*events, strict=True))
    return build_truth(u, i, s, DURATION)


def test_quarter_floors_and_clips():
    got = quarter(np.array([0.24, 0.25, 0.99, 1.7, np.nan, -0.3, 0.5, 1.0, 0.0]))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, [0, 0.25, 0.75, 1, 0, 0, 0.5, 1, 0])


def test_build_truth_rows(truth):
    np.testing.assert_array_equal(truth.users, [0, 0, 0, 0, 1, 1, 1, 2])
    np.testing.assert_array_equal(truth.items, [1, 2, 3, 5, 2, 4, 6, 1])
    np.testing.assert_array_equal(truth.gain, [0.25, 1, 0, 0.75, 0, 0, 0.5, 1])
    assert truth.gain.dtype == np.float32
    assert truth.n_users == 3


def test_replays_take_max_not_sum():
    t = build_truth(np.array([0, 0]), np.array([1, 1]), np.array([40.0, 40.0]), DURATION)
    np.testing.assert_array_equal(t.gain, [0.25])  # a sum (80 s) would give 0.75
    t = build_truth(np.array([0, 0]), np.array([1, 1]), np.array([30.0, 55.0]), DURATION)
    np.testing.assert_array_equal(t.gain, [0.5])  # the longer listen wins, not the first or last


def test_fraction_over_one_clipped_and_unknown_duration_zero():
    t = build_truth(np.array([0, 0, 0]), np.array([2, 3, 4]), np.array([500.0, 50.0, 50.0]), DURATION)
    np.testing.assert_array_equal(t.gain, [1, 0, 0])


def test_build_truth_rejects_padding_and_out_of_range_items():
    with pytest.raises(ValueError, match="1..6"):
        build_truth(np.array([0]), np.array([0]), np.array([1.0]), DURATION)
    with pytest.raises(ValueError, match="1..6"):
        build_truth(np.array([0]), np.array([7]), np.array([1.0]), DURATION)


def test_truth_rejects_unsorted_rows():
    with pytest.raises(ValueError, match="sorted"):
        Truth(users=np.array([1, 0]), items=np.array([1, 1]), gain=np.array([1.0, 1.0]))


def test_lookup(truth):
    got = truth.lookup(np.array([0, 1, 2]), np.array([[2, 1, 13], [6, 2, 0], [1, 6, 0]]))
    assert got.dtype == np.float32
    # Item 13 is past every truth item (stride 7): user 0 * 7 + 13 must not alias user 1's item 6.
    np.testing.assert_array_equal(got, [[1, 0.25, 0], [0.5, 0, 0], [1, 0, 0]])


def test_user_with_truth_but_nothing_recommended_scores_zero(truth):
    np.testing.assert_array_equal(user_scores(np.array([[2, 5, 6]]), np.array([2]), truth), [0.0])


def test_user_scores_and_competition_score(truth):
    recs = np.array([[5, 1, 4], [6, 3, 0]])
    users = np.array([0, 1])
    # user 0: (0.75 + 0.25 + 0) / 3; user 1: 0.5 / 3 (k counts padded slots too).
    np.testing.assert_allclose(user_scores(recs, users, truth), [1 / 3, 1 / 6], rtol=1e-6)
    assert competition_score(recs, users, truth) == pytest.approx(0.25)


def test_ndcg_with_ideal_from_full_truth(truth):
    recs = np.array([[5, 4], [2, 6], [1, 2]])
    users = np.array([0, 1, 3])  # user 3 has no truth: scores 0 and still counts
    # user 0 truth gains 1, .75, .25, 0: ideal top-2 is 1 + .75/log2(3); the list finds .75 at rank 0.
    u0 = 0.75 / (1 + 0.75 / math.log2(3))
    # user 1: the only relevant item (.5) sits at rank 1 instead of 0.
    u1 = (0.5 / math.log2(3)) / 0.5
    assert ndcg_at_k(recs, users, truth) == pytest.approx((u0 + u1 + 0) / 3)


def test_ndcg_rank_matters(truth):
    first = ndcg_at_k(np.array([[2, 5]]), np.array([0]), truth)
    swapped = ndcg_at_k(np.array([[5, 2]]), np.array([0]), truth)
    assert first == pytest.approx(1.0)
    assert swapped == pytest.approx((0.75 + 1 / math.log2(3)) / (1 + 0.75 / math.log2(3)))


def test_recall(truth):
    recs = np.array([[5, 1], [2, 4], [1, 3], [1, 2]])
    users = np.array([0, 1, 2, 3])
    # user 0: 2 of 3 relevant; user 1: its listens to 2 and 4 have gain 0, so 0 found of 1 relevant;
    # user 2: 1 of 1; user 3 has no truth and is left out.
    assert recall_at_k(recs, users, truth) == pytest.approx((2 / 3 + 0 + 1) / 3)


def test_repeat_share():
    history_users = np.array([0, 0, 1, 1, 0])
    history_items = np.array([1, 2, 2, 3, 1])
    recs = np.array([[1, 3, 0], [3, 4, 5], [1, 2, 6]])
    # 8 real pairs; hits: (0, 1) and (1, 3). User 2 never played item 1 even though user 0 did.
    assert repeat_share(recs, np.array([0, 1, 2]), history_users, history_items) == pytest.approx(2 / 8)


def test_coverage():
    recs = np.array([[1, 2, 0], [2, 3, 0]])
    assert coverage(recs, n_items=6) == pytest.approx(3 / 6)  # padding is not an item
    with pytest.raises(ValueError, match="n_items=2"):
        coverage(recs, n_items=2)


def test_novelty():
    item_users = np.array([0, 4, 2, 0, 1])
    recs = np.array([[1, 2], [3, 0]])
    # item 1: p = 1 -> 0 bits; item 2: p = .5 -> 1 bit; item 3 unplayed: p = 1/5; padding skipped.
    assert novelty(recs, item_users, n_users=4) == pytest.approx((0 + 1 + math.log2(5)) / 3)


def test_artist_diversity_with_unknown_artist():
    # Item:          0   1  2  3   4   5  6
    artist = np.array([-1, 0, 0, 1, -1, -1, 0])
    recs = np.array(
        [
            [1, 2, 3, 0],  # artists 0 0 1: 1 equal pair of 3 -> 2/3
            [4, 5, 1, 0],  # unknown, unknown, 0: unknowns differ from each other too -> 1
            [1, 2, 6, 0],  # all artist 0: 3 equal of 3 -> 0 (padding adds no pairs)
            [1, 2, 3, 6],  # 0 0 1 0: 3 equal of 6 -> 1/2
            [3, 0, 0, 0],  # one item, no pairs: left out
        ]
    )
    assert artist_diversity(recs, artist) == pytest.approx((2 / 3 + 1 + 0 + 1 / 2) / 4)


def test_shape_errors_name_the_shapes(truth):
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3,\)"):
        competition_score(np.zeros((2, 3), np.int64), np.array([0, 1, 2]), truth)
    with pytest.raises(ValueError, match=r"2-D.*\(3,\)"):
        ndcg_at_k(np.array([1, 2, 3]), np.array([0]), truth)


def test_repeated_item_in_a_list_is_refused(truth):
    with pytest.raises(ValueError, match="row 1 lists item 2"):
        competition_score(np.array([[1, 0, 0], [2, 5, 2]]), np.array([0, 1]), truth)


def test_every_reading_of_the_contest_text_on_a_hand_case():
    # user 0 plays track 1 (100 s) twice: 30 s and 40 s; track 2 (200 s) once: 130 s; track 3 once: 10 s
    users, items = np.array([0, 0, 0, 0]), np.array([1, 1, 2, 3])
    listened, duration = np.array([30.0, 40.0, 130.0, 10.0]), np.array([np.nan, 100.0, 200.0, 100.0])
    recs = np.array([[1, 2, 4, 5]])  # k = 4; the user played 3 distinct tracks in the window

    def score(fraction, rounding, normalise):
        t = build_truth(users, items, listened, duration, fraction, rounding, normalise)
        return competition_score(recs, np.array([0]), t)

    # longest: track 1 0.4 -> 0.25 (floor) / 0.5 (round); track 2 0.65 -> 0.5 / 0.75
    assert score("longest", "floor", "k") == pytest.approx((0.25 + 0.5) / 4)
    assert score("longest", "round", "k") == pytest.approx((0.5 + 0.75) / 4)
    # sum: track 1 0.7 -> 0.5 (floor) / 0.75 (round)
    assert score("sum", "floor", "k") == pytest.approx((0.5 + 0.5) / 4)
    assert score("sum", "round", "k") == pytest.approx((0.75 + 0.75) / 4)
    # / min(k, 3 distinct window tracks)
    assert score("longest", "floor", "window") == pytest.approx((0.25 + 0.5) / 3)
    with pytest.raises(ValueError, match="fraction in"):
        build_truth(users, items, listened, duration, "mean")


def test_precision_map_and_hit_rate_at_cutoffs():
    # relevant (gain > 0): user 0 tracks 1, 3 and 7 (7 never recommended); user 1 nothing
    truth = build_truth(np.array([0, 0, 0, 1]), np.array([1, 3, 7, 2]), np.array([100.0, 50.0, 30.0, 10.0]),
                        np.full(8, 100.0))
    recs = np.array([[1, 2, 3, 4], [2, 5, 6, 4]])
    out = at_cutoffs(recs, np.array([0, 1]), truth, [1, 3])
    assert out["precision@1"] == pytest.approx((1 + 0) / 2)
    assert out["precision@3"] == pytest.approx((2 / 3 + 0) / 2)
    assert out["hit@3"] == pytest.approx(0.5)
    # user 0: hits at 1 and 3 -> (1/1 + 2/3) / min(3, 3 relevant); user 1 has no relevant track: 0
    assert out["map@3"] == pytest.approx((1 + 2 / 3) / 3 / 2)
    assert out["map@1"] == pytest.approx((1 / 1) / 2)


def _random_lists(seed: int = 0, n_users: int = 40, n_items: int = 60, k: int = 10):
    """Users with window tracks of graded gains (some with none), their lists of k distinct tracks (some short,
    ending in PAD) and a history."""
    rng = np.random.default_rng(seed)
    users = rng.permutation(np.arange(100, 100 + n_users))  # not 0..n-1, not sorted
    rows = [(u, i, rng.uniform(0, 1.2) * 100) for u in users[:-3]
            for i in rng.choice(np.arange(1, n_items + 1), rng.integers(1, 25), replace=False)]
    u, i, listened = (np.array(c) for c in zip(*rows, strict=True))
    truth = build_truth(u, i, listened, np.full(n_items + 1, 100.0))  # the last 3 users have no window
    recs = np.stack([rng.choice(np.arange(1, n_items + 1), k, replace=False) for _ in users])
    recs[:2, -3:] = 0  # short lists: PAD slots gain nothing
    history = (rng.choice(users, 300), rng.integers(1, n_items + 1, 300))
    return recs, users, truth, history


def test_torchmetrics_validation_agrees_with_the_hand_written_metrics():
    from seqrec.training.listmetrics import ListMetrics

    recs, users, truth, history = _random_lists()
    k, cutoffs = recs.shape[1], [3, 5]
    m = ListMetrics(k, cutoffs)
    m.update(recs[:25], users[:25], truth, history, recs[:25])  # two updates, as two validation batches
    m.update(recs[25:], users[25:], truth, history, recs[25:])
    got = m.compute()
    at = at_cutoffs(recs, users, truth, [3, 5, k])
    assert got["score"] == pytest.approx(competition_score(recs, users, truth), abs=1e-12)
    assert got["score_model_only"] == got["score"]
    assert got["repeat"] == pytest.approx(repeat_share(recs, users, *history), abs=1e-12)
    assert got[f"ndcg@{k}"] == pytest.approx(ndcg_at_k(recs, users, truth), abs=1e-6)
    assert got[f"recall@{k}"] == pytest.approx(recall_at_k(recs, users, truth), abs=1e-6)
    for c in (3, 5, k):
        assert got[f"precision@{c}"] == pytest.approx(at[f"precision@{c}"], abs=1e-6)
        assert got[f"hit@{c}"] == pytest.approx(at[f"hit@{c}"], abs=1e-6)
    assert 0 < got[f"ndcg@{k}"] < 1 and 0 < got["hit@3"] < 1  # the lists are neither perfect nor empty


def test_torchmetrics_map_divides_by_the_hits_ours_by_the_relevant_tracks():
    from seqrec.training.listmetrics import ListMetrics

    # one user, relevant tracks 1, 2, 3 (gain > 0), listed at positions 1 and 3 of three
    truth = build_truth(np.array([7, 7, 7]), np.array([1, 2, 3]), np.array([100.0, 100.0, 60.0]), np.full(10, 100.0))
    recs, users = np.array([[1, 9, 2]]), np.array([7])
    m = ListMetrics(3, [])
    m.update(recs, users, truth, (np.zeros(0, np.int64), np.zeros(0, np.int64)), recs)
    precision_at_hits = [1 / 1, 2 / 3]
    assert m.compute()["map@3"] == pytest.approx(np.mean(precision_at_hits))  # over the 2 hits
    assert at_cutoffs(recs, users, truth, [3])["map@3"] == pytest.approx(sum(precision_at_hits) / 3)  # over 3
