import numpy as np
import pandas as pd
import pytest

from seqrec.data.sequences import UNKNOWN_BUCKET, build_sequences, event_blocks

T0 = 1_740_787_200  # 2025-03-01 00:00:00 UTC in epoch seconds
NAN = np.nan


def log(rows: list[tuple[int, int, str, float]]) -> pd.DataFrame:
    """Cleaned-event frame from (user, item, time, frac) rows, kept in the given order."""
    u, i, t, f = zip(*rows, strict=True) if rows else ((), (), (), ())
    return pd.DataFrame({
        "user": np.array(u, dtype=np.int32),
        "item": np.array(i, dtype=np.int32),
        "ts": np.array(t, dtype="datetime64[us]"),
        "duration": np.array(f, dtype=np.float32) * 100,
        "frac": np.array(f, dtype=np.float32),
    })


EVENTS = log([
    (0, 5, "2025-03-01 10:00:00", 0.24),
    (0, 6, "2025-03-01 10:03:20", 0.25),  # 200 s later
    (0, 5, "2025-03-01 10:33:20", 0.75),  # exactly 30 min later: same session
    (0, 7, "2025-03-01 11:03:21", 1.0),  # 30 min 1 s later: new session
    (0, 8, "2025-03-01 11:04:00", 1.7),  # more than the track: bucket 4
    # user 1 has no events
    (2, 3, "2025-03-01 09:00:00", NAN),  # earlier than user 0's events: a new user starts a session anyway
    (2, 4, "2025-03-01 09:10:00.900000", 0.0),  # fraction of a second is dropped from ts
    (3, 9, "2025-04-01 00:00:00", 0.5),
])


def test_offsets_and_per_event_arrays():
    s = build_sequences(EVENTS, n_users=5, session_gap_min=30.0)
    np.testing.assert_array_equal(s.offsets, [0, 5, 5, 7, 8, 8])
    np.testing.assert_array_equal(np.diff(s.offsets), [5, 0, 2, 1, 0])
    assert s.n_users == 5
    np.testing.assert_array_equal(s.item, [5, 6, 5, 7, 8, 3, 4, 9])
    h = 3600
    np.testing.assert_array_equal(
        s.ts, T0 + np.array([10 * h, 10 * h + 200, 10 * h + 2000, 11 * h + 201, 11 * h + 240, 9 * h, 9 * h + 600,
                             31 * 86400])
    )
    np.testing.assert_array_equal(s.gap, [NAN, 200, 1800, 1801, 39, NAN, 600, NAN])
    np.testing.assert_array_equal(s.session, [0, 0, 0, 1, 1, 2, 2, 3])
    np.testing.assert_array_equal(s.pos, [0, 1, 2, 0, 1, 0, 1, 0])
    np.testing.assert_array_equal(s.bucket, [0, 1, 3, 4, 4, UNKNOWN_BUCKET, 0, 2])
    np.testing.assert_array_equal(s.frac, np.array([0.24, 0.25, 0.75, 1.0, 1.7, NAN, 0.0, 0.5], np.float32))
    dtypes = {k: getattr(s, k).dtype for k in ("offsets", "item", "ts", "frac", "bucket", "gap", "session", "pos")}
    assert dtypes == {"offsets": np.int64, "item": np.int32, "ts": np.int64, "frac": np.float32,
                      "bucket": np.int8, "gap": np.float32, "session": np.int64, "pos": np.int32}


def test_session_threshold_is_a_parameter():
    s = build_sequences(EVENTS, n_users=4, session_gap_min=3.0)  # 200 s > 180 s now breaks a session
    np.testing.assert_array_equal(s.session, [0, 1, 2, 3, 3, 4, 5, 6])
    np.testing.assert_array_equal(s.pos, [0, 0, 0, 0, 1, 0, 0, 0])


def test_buckets_floor_to_quarters():
    fracs = [-0.3, 0.0, 0.249, 0.25, 0.5, 0.74, 0.75, 0.99, 1.0, 1.01, 5.0, NAN]
    ev = log([(0, 1, f"2025-03-01 10:{m:02d}:00", f) for m, f in enumerate(fracs)])
    s = build_sequences(ev, n_users=1, session_gap_min=30.0)
    np.testing.assert_array_equal(s.bucket, [0, 0, 0, 1, 2, 2, 3, 3, 4, 4, 4, -1])
    np.testing.assert_array_equal(s.session, np.zeros(12))
    np.testing.assert_array_equal(s.pos, np.arange(12))


def test_empty_log():
    s = build_sequences(log([]), n_users=2, session_gap_min=30.0)
    np.testing.assert_array_equal(s.offsets, [0, 0, 0])
    assert len(s.item) == len(s.session) == len(s.pos) == len(s.gap) == 0


@pytest.mark.parametrize("rows", [
    [(1, 1, "2025-03-01 10:00:00", 1.0), (0, 2, "2025-03-01 11:00:00", 1.0)],  # users out of order
    [(0, 1, "2025-03-01 10:00:00", 1.0), (0, 2, "2025-03-01 09:00:00", 1.0)],  # time goes back within a user
    [(0, 1, "2025-03-01 10:00:00.5", 1.0), (0, 2, "2025-03-01 10:00:00.1", 1.0)],  # ... within one second
])
def test_unsorted_input_raises(rows):
    with pytest.raises(ValueError, match=r"sorted by \(user, ts\)"):
        build_sequences(log(rows), n_users=2, session_gap_min=30.0)


def test_event_blocks_cut_user_sorted_events_between_users():
    user = np.array([0, 0, 0, 2, 2, 3, 5, 5, 5, 5, 5, 6])
    # each multiple of 4 events moves back to the first event of its user: 4 -> 3 (user 2), 8 -> 6 (user 5)
    assert event_blocks(user, 4) == [(0, 3), (3, 6), (6, 12)]
    assert event_blocks(user, 100) == [(0, 12)]
    assert event_blocks(user, 1) == [(0, 3), (3, 5), (5, 6), (6, 11), (11, 12)]  # one user a block
    assert event_blocks(user[:0]) == []
    with pytest.raises(ValueError, match="sorted by user"):
        event_blocks(user[::-1])


def test_log_tables_counted_in_blocks_equal_one_pass(tiny_synth):
    from seqrec.config import CleanConfig
    from seqrec.data.dataset import build_dataset
    from seqrec.logstats import listeners, transition_matrix

    ds = build_dataset(tiny_synth, CleanConfig())
    ev = ds.events
    for days in (None, 7):
        recent = ev if days is None else ev[ev["ts"] >= ds.end - pd.Timedelta(days=days)]
        want = np.bincount(recent.drop_duplicates(["user", "item"])["item"], minlength=ds.n_items + 1)
        for block in (1, 50, 1 << 22):
            np.testing.assert_array_equal(listeners(ds, days, block_events=block), want)
    whole = transition_matrix(ds, 30.0, 0.1, block_events=1 << 30)
    assert whole.nnz > 100
    for block in (1, 97):
        part = transition_matrix(ds, 30.0, 0.1, block_events=block)
        assert (part != whole).nnz == 0 or abs(part - whole).max() < 1e-6
        np.testing.assert_array_equal(part.indptr, whole.indptr)
