"""The ranking stage's named features on a hand log, and that none of them reads the scored window."""

import numpy as np
import pytest

from seqrec.config import SplitConfig, load_config
from seqrec.data.split import make_split
from seqrec.inference.evidence import FEATURES, Evidence, LogTables

# end of the log: 2025-08-31 00:00; ages in days. Item i's artist is i (the fixture's catalog).
HAND = [
    (0, 1, "2025-08-21 00:00:00", 1.0),  # age 10
    (0, 1, "2025-08-25 00:00:00", 1.0),  # age 6
    (0, 2, "2025-08-30 00:00:00", 0.5),  # age 1, item 2's only play
    (0, 1, "2025-08-29 00:00:00", 0.1),  # age 2, a skip
    (1, 3, "2025-08-26 00:00:00", 1.0),  # age 5
]


@pytest.fixture
def features(make_dataset):
    ds = make_dataset(HAND, n_items=3, n_users=2, segments=[("30_44", "F"), (None, None)], end="2025-08-31")
    ds.items["track_genres_list"] = [np.nan, "['Pop', 'Rock']", "['Jazz']", np.nan]
    ds.users["top_genre"] = ["POP", None]
    cfg = load_config([])
    ev = Evidence.build(ds, cfg, LogTables.build(ds, cfg))
    users, items = np.array([0, 1]), np.array([[1, 2, 3], [1, 2, 3]])
    c = ev.candidates(users, items, np.ones(items.shape, bool), np.zeros(items.shape, np.float32),
                      *ev.transition_scores(users))
    assert c.names == FEATURES
    return lambda name: c.columns((name,))[..., 0]


def test_replay_rhythm_and_recency_of_a_pair(features):
    f = features
    np.testing.assert_allclose(f("gap_median")[0], [4.0, np.nan, np.nan])  # gaps of 4 and 4 days; one play: none
    np.testing.assert_allclose(f("due")[0], [0.5, np.nan, np.nan])  # 2 days since the last / a 4-day rhythm
    np.testing.assert_array_equal(f("plays_3d")[0], [1, 1, 0])
    np.testing.assert_array_equal(f("plays_7d")[0], [2, 1, 0])
    np.testing.assert_array_equal(f("plays_15d")[0], [3, 1, 0])
    np.testing.assert_array_equal(f("distinct_days")[0], [3, 1, 0])
    np.testing.assert_allclose(f("log_first_age")[0], [np.log1p(10), np.log1p(1), 0], rtol=1e-6)
    np.testing.assert_allclose(f("full_share")[0], [2 / 3, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(f("skip_share")[0], [1 / 3, 0, 0], rtol=1e-6)
    np.testing.assert_array_equal(f("in_history"), [[1, 1, 0], [0, 0, 1]])


def test_user_artist_genre_and_track_features(features):
    f = features
    np.testing.assert_allclose(f("artist_share"), [[0.75, 0.25, 0], [0, 0, 1]])
    np.testing.assert_array_equal(f("genre_match")[0], [1, 0, 0])  # 'POP' matches 'Pop', case-folded
    assert np.isnan(f("genre_match")[1]).all()  # no top genre: missing, not a mismatch
    np.testing.assert_allclose(f("repeat_rate")[:, 0], [0.5, 0.0])  # 2 distinct of 4 plays; 1 of 1
    np.testing.assert_allclose(f("activity_30d")[:, 0], np.log1p([4, 1]), rtol=1e-6)
    np.testing.assert_array_equal(f("age_bin")[0], [1, 1, 1])
    np.testing.assert_array_equal(f("gender")[0], [1, 1, 1])
    assert np.isnan(f("age_bin")[1]).all() and np.isnan(f("likes")).all()  # unknown stays unknown
    np.testing.assert_allclose(f("stickiness")[0], [3, 1, 1])  # plays per listener
    np.testing.assert_allclose(f("listeners_7d")[0], np.log1p([1, 1, 1]), rtol=1e-6)
    np.testing.assert_allclose(f("trend_7d")[0], np.log([2, 2, 2]), rtol=1e-6)  # nobody the week before
    assert np.isnan(f("model_cos")).all()  # no network state given


def test_no_feature_reads_the_scored_window(make_dataset):
    """Two logs that differ only after the cut: the same features for the same candidates, other labels."""
    before = [(0, 1, "2025-08-01 10:00:00", 1.0), (0, 2, "2025-08-03 10:00:00", 0.5),
              (1, 2, "2025-08-02 10:00:00", 1.0), (1, 3, "2025-08-04 10:00:00", 1.0)]
    window_a = [(0, 1, "2025-08-20 10:00:00", 1.0), (0, 3, "2025-08-21 10:00:00", 1.0),
                (1, 3, "2025-08-20 10:00:00", 1.0), (1, 1, "2025-08-22 10:00:00", 1.0)]
    window_b = [(0, 2, "2025-08-20 10:00:00", 0.3), (1, 2, "2025-08-25 10:00:00", 0.6)]
    split_cfg = SplitConfig(mode="temporal", cut="2025-08-15", window_days=15, min_window_events=1, max_users=None)
    cfg = load_config([])
    out = []
    for window in (window_a, window_b):
        ds = make_dataset(before + window, n_items=3, n_users=2, end="2025-08-31")
        split = make_split(ds, split_cfg, 0)
        ev = Evidence.build(split.history, cfg, LogTables.build(split.history, cfg))
        items = np.array([[1, 2, 3], [1, 2, 3]])
        c = ev.candidates(split.users, items, np.ones(items.shape, bool), np.zeros(items.shape, np.float32),
                          *ev.transition_scores(split.users))
        out.append((c.x, split.truth.lookup(split.users, items)))
    np.testing.assert_array_equal(out[0][0], out[1][0])  # NaN in the same places, the rest equal
    assert not np.array_equal(out[0][1], out[1][1])

