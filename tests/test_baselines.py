import numpy as np
import pytest

from seqrec import PAD
from seqrec.baselines import ALS, BASELINES, ItemKNN, Popular, Relisten, SegmentPopular, Transitions, make_baseline
from seqrec.config import BaselineConfig

# implicit's CosineRecommender converts its own normalised matrix and warns about it; not our input.
pytestmark = pytest.mark.filterwarnings("ignore:Method expects CSR input")

# Small ALS so the tiny fits take milliseconds; everything else as configured by default.
CFG = BaselineConfig(als_factors=4, als_iterations=5)
END = "2025-08-31"


def check_lists(items: np.ndarray, scores: np.ndarray, n: int, k: int, valid: np.ndarray) -> None:
    """Exactly k distinct valid items per row, never PAD; scores best first."""
    assert items.shape == scores.shape == (n, k)
    assert (items != PAD).all()
    assert valid[items].all(), f"invalid items recommended: {items[~valid[items]]}"
    for row in items:
        assert len(set(row.tolist())) == k, row
    assert (scores[:, 1:] <= scores[:, :-1]).all()


@pytest.fixture
def world(make_dataset):
    """Six users over twelve items; item 12 has no known length and is what everyone plays most."""
    events = []
    for u in range(5):
        events += [(u, 12, f"2025-08-{10 + d:02d} 10:00:00", 1.0) for d in range(4)]
    events += [
        (0, 1, "2025-08-20 10:00:00", 1.0), (0, 1, "2025-08-21 10:00:00", 1.0), (0, 1, "2025-08-22 10:00:00", 1.0),
        (0, 2, "2025-08-20 10:03:00", 0.2), (0, 3, "2025-06-01 10:00:00", 1.0),
        (1, 1, "2025-08-25 10:00:00", 1.0), (1, 4, "2025-08-25 10:04:00", 1.0), (1, 5, "2025-08-25 10:08:00", 0.5),
        (1, 12, "2025-08-25 10:12:00", 1.0),  # a transition to an invalid item
        (2, 6, "2025-08-02 10:00:00", 1.0), (2, 7, "2025-08-02 10:03:00", 1.0),
        (3, 8, "2025-07-01 10:00:00", 1.0), (3, 9, "2025-08-29 22:00:00", 1.0),
        (4, 10, "2025-08-30 10:00:00", 0.9), (4, 11, "2025-08-30 10:03:00", 0.0),
    ]
    segments = [("18_29", "M"), ("18_29", "M"), ("45_60", "F"), ("45_60", "F"), (None, "F"), ("18_29", "M")]
    return make_dataset(events, n_items=12, n_users=6, invalid=(12,), segments=segments, end=END,
                        test_users=[0, 1, 2, 3, 4, 5])


@pytest.mark.parametrize("name", list(BASELINES))
def test_every_baseline_gives_k_distinct_valid_items_with_and_without_history(world, name):
    model = make_baseline(name, CFG, seed=0).fit(world)
    users = np.array([0, 1, 2, 3, 4, 5])  # user 5 has no history
    valid = world.items["valid"].to_numpy()
    for k in (1, 4, 5):
        items, scores = model.recommend(users, k)
        check_lists(items, scores, len(users), k, valid)


def test_make_baseline_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown model 'sasrec'"):
        make_baseline("sasrec", CFG)


def test_popular_ranks_by_distinct_recent_listeners(make_dataset):
    events = [
        # item 3: three recent listeners
        (0, 3, "2025-08-20 10:00:00", 1.0), (1, 3, "2025-08-20 10:00:00", 1.0), (2, 3, "2025-08-20 10:00:00", 1.0),
        # item 4: one listener, ten plays
        *[(0, 4, f"2025-08-{10 + d:02d} 10:00:00", 1.0) for d in range(10)],
        # item 5: two recent listeners
        (0, 5, "2025-08-21 10:00:00", 1.0), (1, 5, "2025-08-21 10:00:00", 1.0),
        # item 6: four listeners, but more than 30 days ago; item 7: one, also old
        *[(u, 6, "2025-07-01 10:00:00", 1.0) for u in range(4)], (3, 7, "2025-06-01 10:00:00", 1.0),
        # item 12 (invalid): the most listeners
        *[(u, 12, "2025-08-25 10:00:00", 1.0) for u in range(4)],
    ]
    ds = make_dataset(events, n_items=12, n_users=5, invalid=(12,), end=END)
    model = Popular(CFG).fit(ds)
    # Recent listeners first, older plays only break ties, then never-played items in catalog order.
    np.testing.assert_array_equal(model.order, [3, 5, 4, 6, 7, 1, 2, 8, 9, 10, 11])
    items, scores = model.recommend(np.array([4, 0]), 4)
    np.testing.assert_array_equal(items, [[3, 5, 4, 6], [3, 5, 4, 6]])
    np.testing.assert_array_equal(scores, [[0, -1, -2, -3], [0, -1, -2, -3]])


def test_relisten_exact_scores_from_quality_and_half_life(make_dataset):
    # end 08-31; half-life 30 days; skips count 0.1 of a full listen.
    events = [
        (0, 1, "2025-08-01 00:00:00", 1.0),  # 30 days old, full: 0.5
        (0, 2, "2025-07-02 00:00:00", 0.0),  # 60 days old, skipped: 0.1 * 0.25 = 0.025
        (0, 3, "2025-07-02 00:00:00", 0.5),  # 60 days old, half, twice: 2 * 0.5 * 0.25 = 0.25
        (0, 3, "2025-07-02 00:00:00", 0.5),
        (0, 4, "2025-06-02 00:00:00", 1.5),  # 90 days old, more than full counts as full: 0.125
        (0, 5, "2025-08-01 00:00:00", 0.02),  # recent skip below an older full listen: 0.1 * 0.5 = 0.05
        (0, 12, "2025-08-30 00:00:00", 1.0),  # invalid item: never recommended
        (1, 6, "2025-08-30 00:00:00", 1.0),
    ]
    ds = make_dataset(events, n_items=13, n_users=3, invalid=(12,), end=END)  # 12 valid items: k <= 6
    model = Relisten(CFG).fit(ds)
    items, scores = model.recommend(np.array([0]), 5)
    np.testing.assert_array_equal(items, [[1, 3, 4, 5, 2]])
    np.testing.assert_allclose(scores, [[0.5, 0.25, 0.125, 0.05, 0.025]], rtol=1e-6)
    # A longer list is filled from popularity after the personal items, with no repeats.
    items, scores = model.recommend(np.array([0, 2]), 6)
    np.testing.assert_array_equal(items[0, :5], [1, 3, 4, 5, 2])
    assert items[0, 5] == 6 and scores[0, 5] == -np.inf  # the only other recently played valid item
    # A user without history gets the popular list.
    np.testing.assert_array_equal(items[1], Popular(CFG).fit(ds).recommend(np.array([2]), 6)[0][0])


def test_relisten_half_life_is_a_parameter(make_dataset):
    events = [(0, 1, "2025-08-21 00:00:00", 1.0), (0, 2, "2025-08-30 00:00:00", 0.5)]
    ds = make_dataset(events, n_items=6, n_users=1, end=END)
    _, scores = Relisten(BaselineConfig(relisten_half_life_days=10.0)).fit(ds).recommend(np.array([0]), 2)
    np.testing.assert_allclose(scores[0], [0.5, 0.5 * 2 ** -0.1], rtol=1e-6)
    items, _ = Relisten(BaselineConfig(relisten_half_life_days=1.0)).fit(ds).recommend(np.array([0]), 2)
    np.testing.assert_array_equal(items[0], [2, 1])  # with fast decay the recent half listen wins


@pytest.fixture
def transitions_world(make_dataset):
    """Others play A (1) then mostly B (2); user 0 played C (3) long before A; items 6..9 are popular."""
    events = [
        (1, 3, "2025-08-19 10:00:00", 1.0),  # right after user 0's last play (A) in event order: not a pair
        (1, 1, "2025-08-20 10:00:00", 1.0), (1, 2, "2025-08-20 10:04:00", 1.0),
        (1, 10, "2025-08-20 10:08:00", 1.0),  # to an invalid item: no transition
        (2, 1, "2025-08-21 10:00:00", 1.0), (2, 2, "2025-08-21 10:04:00", 1.0),
        (3, 1, "2025-08-22 10:00:00", 1.0), (3, 5, "2025-08-22 10:04:00", 1.0),
        (4, 1, "2025-08-23 10:00:00", 1.0), (4, 2, "2025-08-23 11:00:00", 1.0),  # 60 min apart: no transition
        *[(u, i, "2025-08-25 10:00:00", 1.0) for u in range(4, 9) for i in (6, 7, 8, 9)],
        (9, 3, "2025-08-24 10:00:00", 1.0), (9, 4, "2025-08-24 10:04:00", 1.0),  # C is followed by D (4)
        (0, 3, "2025-08-01 00:00:00", 1.0),  # 30 days before the end
        (0, 1, "2025-08-30 00:00:00", 1.0),  # A, the user's last play, 1 day before the end
    ]
    return make_dataset(events, n_items=11, n_users=10, invalid=(10,), end=END)


def test_transitions_recommend_what_usually_follows_the_last_play(transitions_world):
    ds = transitions_world
    items, scores = Transitions(CFG).fit(ds).recommend(np.array([0]), 5)
    # Re-listen part, normalised to the user's best: A 1, C 0.5 / 2^(-1/30); C -> A is 29 days apart: no pair.
    # Next-track part from the context A (weight 1, last) and C (weight 1/2): after A come B twice and E once,
    # after C comes D -> B 2/3, E 1/3, D 1/2; normalised B 1, D 0.75, E 0.5; times transitions_weight 0.1.
    np.testing.assert_array_equal(items, [[1, 3, 2, 4, 5]])
    np.testing.assert_allclose(scores, [[1.0, 2 ** (-29 / 30), 0.1, 0.075, 0.05]], rtol=1e-6)
    # Re-listen alone never finds B: the user did not play it and it is not popular enough.
    rel_items, _ = Relisten(CFG).fit(ds).recommend(np.array([0]), 4)
    np.testing.assert_array_equal(rel_items, [[1, 3, 6, 7]])


def test_transitions_weight_scales_the_next_track_part(transitions_world):
    cfg = BaselineConfig(transitions_weight=2.0)
    items, scores = Transitions(cfg).fit(transitions_world).recommend(np.array([0]), 5)
    np.testing.assert_array_equal(items[0, :2], [2, 4])  # B 2.0, D 1.5, then A 1.0 and E 1.0, C last
    assert set(items[0, 2:4]) == {1, 5} and items[0, 4] == 3
    np.testing.assert_allclose(scores, [[2.0, 1.5, 1.0, 1.0, 2 ** (-29 / 30)]], rtol=1e-6)


@pytest.fixture
def segment_world(make_dataset):
    events = [
        # segment (18_29, M): users 0, 1 play 1 and 2; user 0 also 5
        (0, 1, "2025-08-20 10:00:00", 1.0), (0, 2, "2025-08-20 10:04:00", 1.0), (0, 5, "2025-08-20 10:08:00", 1.0),
        (1, 1, "2025-08-21 10:00:00", 1.0), (1, 2, "2025-08-21 10:04:00", 1.0),
        # segment (45_60, F): users 2, 3 play 3 and 4; user 3 also 6
        (2, 3, "2025-08-20 10:00:00", 1.0), (2, 4, "2025-08-20 10:04:00", 1.0),
        (3, 3, "2025-08-21 10:00:00", 1.0), (3, 4, "2025-08-21 10:04:00", 1.0), (3, 6, "2025-08-21 10:08:00", 1.0),
        # unknown segment: users 4 (gender only), 6, 7 (no demographics) make 7 and 8 the global top
        *[(u, i, "2025-08-22 10:00:00", 1.0) for u in (4, 6, 7) for i in (7, 8)],
    ]
    segments = [("18_29", "M"), ("18_29", "M"), ("45_60", "F"), ("45_60", "F"), (None, "F"), ("18_29", "M"),
                (None, None), (None, None)]
    return make_dataset(events, n_items=11, n_users=8, segments=segments, end=END)


def test_segment_popular_lists_per_segment_and_global_when_unknown(segment_world):
    model = SegmentPopular(CFG).fit(segment_world)
    users = np.array([0, 1, 5, 2, 3, 4, 6])  # user 5 has no history but a known segment
    items, scores = model.recommend(users, 4)
    # A segment's own plays first; the rest of the list is global popularity, not catalog order.
    np.testing.assert_array_equal(items, [
        [1, 2, 5, 7], [1, 2, 5, 7], [1, 2, 5, 7],
        [3, 4, 6, 7], [3, 4, 6, 7],
        [7, 8, 1, 2], [7, 8, 1, 2],
    ])
    np.testing.assert_array_equal(model.order[:4], [7, 8, 1, 2])
    assert (scores[:, 0] == 0).all() and np.isneginf(scores[:5, 3]).all()


def test_segment_popular_without_demographics_is_popular(make_dataset):
    events = [(0, 3, "2025-08-20 10:00:00", 1.0), (1, 3, "2025-08-20 10:00:00", 1.0),
              (1, 2, "2025-08-20 10:00:00", 1.0)]
    ds = make_dataset(events, n_items=8, n_users=3, end=END)  # no age_bin / gender columns
    users = np.arange(3)
    seg, _ = SegmentPopular(CFG).fit(ds).recommend(users, 3)
    pop, _ = Popular(CFG).fit(ds).recommend(users, 3)
    np.testing.assert_array_equal(seg, pop)
    np.testing.assert_array_equal(seg[0], [3, 2, 1])


@pytest.mark.parametrize("cls", [ALS, ItemKNN])
def test_matrix_models_recommend_a_heavily_played_item(make_dataset, cls):
    events = [(0, 3, f"2025-08-{d:02d} 10:00:00", 1.0) for d in range(1, 21)]  # user 0 loves item 3
    events += [(0, 1, "2025-08-01 11:00:00", 0.1)]
    for u in range(1, 6):  # others share taste in pairs
        a, b = (4, 5) if u % 2 else (6, 7)
        events += [(u, a, "2025-08-10 10:00:00", 1.0), (u, b, "2025-08-10 10:04:00", 1.0),
                   (u, 3, "2025-08-11 10:00:00", 0.3)]
    ds = make_dataset(events, n_items=10, n_users=6, end=END)
    cfg = BaselineConfig(als_factors=4, als_iterations=10, knn_neighbours=5)
    items, scores = cls(cfg, seed=0).fit(ds).recommend(np.array([0, 1]), 3)
    check_lists(items, scores, 2, 3, ds.items["valid"].to_numpy())
    assert items[0, 0] == 3
    again, again_scores = cls(cfg, seed=0).fit(ds).recommend(np.array([0, 1]), 3)
    np.testing.assert_array_equal(again, items)  # seeded: the same fit twice
    np.testing.assert_allclose(again_scores, scores, rtol=1e-5)
