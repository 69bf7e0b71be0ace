import numpy as np
import pandas as pd
import pytest

from seqrec.config import SplitConfig
from seqrec.data.split import make_split

T = pd.Timestamp
CUT = T("2025-08-16")
WINDOW_END = pd.Timestamp("2025-08-31")  # cut + 15 days
TEMPORAL = SplitConfig(mode="temporal", cut="2025-08-16", window_days=15, min_window_events=2, max_users=None)

# Items 1..6 last 100 s; item 6 has no known length. Rows: (user, item, time, listened fraction).
EVENTS = [
    # user 0: history and three window plays -> evaluated
    (0, 1, "2025-08-01 10:00:00", 1.0),
    (0, 1, "2025-08-16 00:00:00", 0.5),  # exactly at the cut: window, not history
    (0, 1, "2025-08-20 10:00:00", 0.8),  # replay: the longer listen counts -> 0.75
    (0, 2, "2025-08-30 23:59:59.999999", 1.3),  # more than the track -> 1
    (0, 6, "2025-08-21 10:00:00", 1.0),  # no track length -> gain 0
    (0, 3, "2025-08-31 00:00:00", 1.0),  # cut + window: in neither
    # user 1: history, one window play: too few
    (1, 2, "2025-08-02 10:00:00", 1.0),
    (1, 2, "2025-08-17 10:00:00", 1.0),
    # user 2: window plays only (no history)
    (2, 4, "2025-08-17 10:00:00", 1.0),
    (2, 4, "2025-08-18 10:00:00", 1.0),
    (2, 4, "2025-08-19 10:00:00", 1.0),
    # user 3: history only, the last play just before the cut
    (3, 5, "2025-08-15 23:59:59.999999", 1.0),
    # user 4: history and exactly min_window_events plays
    (4, 3, "2025-03-01 10:00:00", 1.0),
    (4, 4, "2025-08-25 10:00:00", 0.3),  # 0.25
    (4, 5, "2025-08-26 10:00:00", 0.2),  # 0
]


def rows(df: pd.DataFrame, *cols: str) -> list[tuple]:
    """The frame's rows as sorted tuples of the given columns."""
    return sorted(df[list(cols)].itertuples(index=False, name=None))


@pytest.fixture
def ds(make_dataset):
    return make_dataset(EVENTS, n_items=6, n_users=5, invalid=(6,), end="2025-09-01")


def test_temporal_split_has_no_leakage_and_the_right_users(ds):
    split = make_split(ds, TEMPORAL, seed=0)
    np.testing.assert_array_equal(split.users, [0, 4])
    h = split.history
    assert h.end == CUT
    assert (h.events["ts"] < CUT).all()
    # Every event before the cut is kept, of every user (evaluated or not).
    assert rows(h.events, "user", "item") == [(0, 1), (1, 2), (3, 5), (4, 3)]
    np.testing.assert_array_equal(h.test_users, [0, 4])
    w = split.window
    assert ((w["ts"] >= CUT) & (w["ts"] < WINDOW_END)).all()
    assert rows(w, "user", "item", "ts") == [
        (0, 1, T("2025-08-16 00:00:00")),
        (0, 1, T("2025-08-20 10:00:00")),
        (0, 2, T("2025-08-30 23:59:59.999999")),
        (0, 6, T("2025-08-21 10:00:00")),
        (4, 4, T("2025-08-25 10:00:00")),
        (4, 5, T("2025-08-26 10:00:00")),
    ]
    assert h.future is w
    # The catalog and users are shared, not rebuilt.
    assert h.items is ds.items and h.users is ds.users


def test_temporal_truth_gains(ds):
    truth = make_split(ds, TEMPORAL, seed=0).truth
    np.testing.assert_array_equal(truth.users, [0, 0, 0, 4, 4])
    np.testing.assert_array_equal(truth.items, [1, 2, 6, 4, 5])
    np.testing.assert_array_equal(truth.gain, np.array([0.75, 1.0, 0.0, 0.25, 0.0], np.float32))


def test_min_window_events_filters_users(ds):
    cfg = SplitConfig(mode="temporal", cut="2025-08-16", window_days=15, min_window_events=3, max_users=None)
    split = make_split(ds, cfg, seed=0)
    np.testing.assert_array_equal(split.users, [0])
    assert set(split.window["user"]) == {0} and set(split.truth.users) == {0}


def test_default_cut_is_window_days_before_the_end(ds):
    cfg = SplitConfig(mode="temporal", cut=None, window_days=15, min_window_events=2, max_users=None)
    split = make_split(ds, cfg, seed=0)  # end 09-01 -> cut 08-17, window up to the end
    assert split.history.end == pd.Timestamp("2025-08-17")
    np.testing.assert_array_equal(split.users, [0, 4])
    assert sorted(split.history.events["ts"]) == [
        T("2025-03-01 10:00:00"), T("2025-08-01 10:00:00"), T("2025-08-02 10:00:00"),
        T("2025-08-15 23:59:59.999999"), T("2025-08-16 00:00:00"),
    ]
    # user 0's play at 08-31 00:00 is now inside the window
    assert sorted(split.window.loc[split.window["user"] == 0, "item"]) == [1, 2, 3, 6]


def test_no_evaluable_user_raises(ds):
    cfg = SplitConfig(mode="temporal", cut="2025-08-16", window_days=15, min_window_events=10, max_users=None)
    with pytest.raises(ValueError, match="no user is active"):
        make_split(ds, cfg, seed=0)


def test_max_users_sampling_is_seeded(make_dataset):
    events = []
    for u in range(12):
        events += [(u, 1, "2025-08-01 10:00:00", 1.0), (u, 2, "2025-08-20 10:00:00", 1.0),
                   (u, 3, "2025-08-21 10:00:00", 0.5)]
    ds = make_dataset(events, n_items=3, n_users=12, end="2025-09-01")
    cfg = SplitConfig(mode="temporal", cut="2025-08-16", window_days=15, min_window_events=2, max_users=4)
    samples = [make_split(ds, cfg, seed=s).users for s in range(8)]
    for users in samples:
        assert len(users) == 4 and len(np.unique(users)) == 4
        assert (np.diff(users) > 0).all() and np.isin(users, np.arange(12)).all()
    np.testing.assert_array_equal(make_split(ds, cfg, seed=3).users, samples[3])  # same seed, same users
    assert len({tuple(u) for u in samples}) > 1  # the seed matters
    split = make_split(ds, cfg, seed=5)
    assert set(split.window["user"]) == set(split.truth.users) == set(split.users)
    np.testing.assert_array_equal(split.history.test_users, split.users)


def test_future_mode_scores_future_csv_for_test_users_with_history(make_dataset):
    future = [
        (0, 2, "2025-09-02 10:00:00", 0.6),  # 0.5
        (1, 3, "2025-09-03 10:00:00", 1.0),  # user 1 is not a test user
        (2, 1, "2025-09-04 10:00:00", 1.0),
        (2, 1, "2025-09-05 10:00:00", 0.1),  # the longer listen counts
        (3, 1, "2025-09-04 10:00:00", 1.0),  # test user without history
    ]
    events = [(0, 1, "2025-08-01 10:00:00", 1.0), (1, 1, "2025-08-02 10:00:00", 1.0),
              (2, 2, "2025-08-30 10:00:00", 1.0)]
    ds = make_dataset(events, n_items=3, n_users=4, future=future, test_users=[0, 2, 3])
    cfg = SplitConfig(mode="future", min_window_events=30, max_users=1)  # neither applies to future mode
    split = make_split(ds, cfg, seed=0)
    np.testing.assert_array_equal(split.users, [0, 2])
    assert split.history.end == ds.end == pd.Timestamp("2025-08-31")
    assert split.history.events.equals(ds.events)
    assert rows(split.window, "user", "item") == [(0, 2), (2, 1), (2, 1)]
    np.testing.assert_array_equal(split.truth.users, [0, 2])
    np.testing.assert_array_equal(split.truth.items, [2, 1])
    np.testing.assert_array_equal(split.truth.gain, [0.5, 1.0])


def test_future_mode_without_future_csv_raises(ds):
    with pytest.raises(ValueError, match="future.csv"):
        make_split(ds, SplitConfig(mode="future"), seed=0)
