import logging
import os

import numpy as np
import pandas as pd
import pytest

from seqrec import PAD
from seqrec.config import CleanConfig, DataConfig
from seqrec.data.dataset import build_dataset, load_dataset

H = "user_id,item_id,listened_duration,listened_datetime"
NO_PERIOD = CleanConfig(start=None, end=None)
# Report keys whose counts are rows removed from the log.
DROP_KEYS = ("negative_duration_dropped", "overlong_dropped")


def rows(events: pd.DataFrame) -> list[tuple]:
    """(user, item, ts as text, duration) per event, in frame order."""
    return [
        (int(u), int(i), str(t), float(d))
        for u, i, t, d in zip(events["user"], events["item"], events["ts"], events["duration"], strict=True)
    ]


def dropped(report: dict) -> int:
    return sum(v for k, v in report.items() if k.startswith("dropped_") or k in DROP_KEYS)


def test_exact_duplicates_dropped_and_counted_near_duplicates_kept(hear_me):
    folder = hear_me([
        H,
        "42,300,50,2025-03-01 10:00:00",
        "42,300,60,2025-03-01 10:00:00",  # same but for the duration: a different listen
        "7,300,50,2025-03-01 10:00:00",  # same but for the user
        "42,300,50,2025-03-01 10:00:00.000001",  # same but for the time
        "42,300,50,2025-03-01 10:00:00",  # duplicate, not adjacent to the first in the file
        "42,300,50,2025-03-01 10:00:00",
    ])
    ds = build_dataset(folder, CleanConfig())
    assert ds.report["interactions"]["dropped_exact_duplicates"] == 2
    assert rows(ds.events) == [
        (0, 1, "2025-03-01 10:00:00", 50.0),
        (1, 1, "2025-03-01 10:00:00", 50.0),
        (1, 1, "2025-03-01 10:00:00", 60.0),
        (1, 1, "2025-03-01 10:00:00.000001", 50.0),
    ]


@pytest.mark.parametrize(
    ("negative", "key", "durations", "fracs"),
    [("drop", "negative_duration_dropped", [30.0], [0.3]),
     ("zero", "negative_duration_zeroed", [0.0, 30.0, 0.0], [0.0, 0.3, 0.0])],
)
def test_negative_durations(hear_me, negative, key, durations, fracs):
    folder = hear_me([
        H,
        "42,300,-5,2025-03-01 10:00:00",
        "42,300,30,2025-03-01 10:01:00",
        "42,300,-0.5,2025-03-01 10:02:00",
    ])
    ds = build_dataset(folder, CleanConfig(negative=negative))
    assert ds.report["interactions"][key] == 2
    assert ds.events["duration"].tolist() == durations
    np.testing.assert_array_equal(ds.events["frac"].to_numpy(), np.array(fracs, dtype=np.float32))
    assert ds.report["interactions"]["zero_duration_events"] == durations.count(0.0)


@pytest.mark.parametrize(
    ("overlong", "key", "durations"),
    [("clip", "overlong_clipped", [200.0, 100.0, 100.0, 10_000.0, 7.0]),
     ("drop", "overlong_dropped", [200.0, 10_000.0, 7.0])],
)
def test_overlong_listens(hear_me, overlong, key, durations):
    folder = hear_me(
        [
            H,
            "42,300,200,2025-03-01 10:00:00",  # exactly 2 x 100 s: not an outlier
            "42,300,200.5,2025-03-01 10:01:00",
            "42,300,1000,2025-03-01 10:02:00",
            "42,700,10000,2025-03-01 10:03:00",  # unknown track length: not judged
            "42,500,7,2025-03-01 10:04:00",
        ],
        items=["item_id,track_duration", "300,100", "500,200", "700,"],
    )
    ds = build_dataset(folder, CleanConfig(max_duration_ratio=2, overlong=overlong))
    assert ds.report["interactions"][key] == 2
    assert ds.events["duration"].tolist() == durations


def test_items_missing_from_metadata_kept_counted_with_nan_frac(hear_me):
    folder = hear_me([
        H,
        "42,800,50,2025-03-01 10:00:00",
        "42,300,50,2025-03-01 10:01:00",
        "7,800,80000,2025-03-01 10:02:00",  # no track length: never clipped by the ratio (22 h < 24 h)
        "7,900,1,2025-03-01 10:03:00",
    ])
    ds = build_dataset(folder, CleanConfig())
    assert ds.items["item_id"].tolist() == [-1, 300, 500, 800, 900]
    assert ds.items["known"].tolist() == [False, True, True, False, False]
    assert ds.report["items_only_in_log"] == 2
    assert ds.report["items_with_metadata"] == 2
    rep = ds.report["interactions"]
    assert rep["events_on_items_without_metadata"] == 3
    assert rep["items_without_metadata_in_log"] == 2
    assert rep["rows_out"] == 4
    assert rows(ds.events) == [
        (0, 3, "2025-03-01 10:02:00", 80000.0),
        (0, 4, "2025-03-01 10:03:00", 1.0),
        (1, 3, "2025-03-01 10:00:00", 50.0),
        (1, 1, "2025-03-01 10:01:00", 50.0),
    ]
    assert np.isnan(ds.events["frac"].to_numpy()).tolist() == [True, True, True, False]


def test_items_with_nan_or_zero_duration_are_invalid(hear_me):
    folder = hear_me(
        [H, "42,300,50,2025-03-01 10:00:00", "42,500,50,2025-03-01 10:01:00",
         "42,700,50,2025-03-01 10:02:00"],
        items=["item_id,track_duration,artist_name", "300,100,A", "500,,B", "700,0,A", "900,-3,C"],
    )
    ds = build_dataset(folder, CleanConfig())
    assert ds.items["item_id"].tolist() == [-1, 300, 500, 700, 900]
    assert ds.items["known"].tolist() == [False, True, True, True, True]
    assert ds.items["valid"].tolist() == [False, True, False, False, False]
    nan = np.nan
    np.testing.assert_array_equal(ds.items["track_duration"].to_numpy(), [nan, 100.0, nan, nan, nan])
    assert ds.items["artist"].tolist() == [-1, 0, 1, 0, 2]
    assert ds.report["items_without_valid_duration"] == 3
    assert ds.report["interactions"]["events_on_items_without_metadata"] == 0
    np.testing.assert_array_equal(ds.events["frac"].to_numpy(), np.array([0.5, np.nan, np.nan], np.float32))


def test_items_metadata_without_optional_columns_or_with_empty_id(hear_me):
    folder = hear_me([H, "42,300,50,2025-03-01 10:00:00"],
                     items=["item_id,track_duration", "300,100", ",50", "300,80"])
    ds = build_dataset(folder, CleanConfig())
    assert ds.items["item_id"].tolist() == [-1, 300]
    assert ds.items["track_duration"].tolist()[1:] == [100.0]  # the first of duplicated ids wins
    assert ds.items["artist"].tolist() == [-1, -1]
    assert ds.report["item_metadata_missing_ids"] == 1
    assert ds.report["item_metadata_duplicate_ids"] == 1


def test_events_outside_period_dropped_and_counted(hear_me):
    log = [
        H,
        "42,300,50,2025-02-27 23:59:59.999999",
        "42,300,51,2025-02-28 00:00:00",
        "42,300,52,2025-08-30 23:59:59.999999",
        "42,300,53,2025-08-31 00:00:00",
        "42,300,54,1970-01-01 00:00:00",
    ]
    ds = build_dataset(hear_me(log), CleanConfig(start="2025-02-28", end="2025-08-31"))
    assert ds.report["interactions"]["dropped_outside_period"] == 3
    assert ds.events["duration"].tolist() == [51.0, 52.0]
    assert ds.end == pd.Timestamp("2025-08-31")
    ds = build_dataset(hear_me(log), NO_PERIOD)
    assert ds.report["interactions"]["dropped_outside_period"] == 0
    assert ds.events["duration"].tolist() == [54.0, 50.0, 51.0, 52.0, 53.0]


def test_rows_with_empty_ids_time_or_duration_dropped_and_counted(hear_me):
    folder = hear_me([
        H,
        ",300,50,2025-03-01 10:00:00",
        "42,,50,2025-03-01 10:00:00",
        "42,300,50,",
        ",,,",
        "42,300,,2025-03-01 10:00:00",
        "42,300,50,2025-03-01 10:00:00",
    ])
    ds = build_dataset(folder, CleanConfig())
    rep = ds.report["interactions"]
    assert rep["dropped_missing_ids_or_time"] == 4
    assert rep["dropped_missing_duration"] == 1
    assert rep["rows_out"] == 1
    # A null id must not turn into a user or track with id 0.
    assert ds.users["user_id"].tolist() == [42]
    assert ds.items["item_id"].tolist() == [-1, 300, 500]
    assert rows(ds.events) == [(0, 1, "2025-03-01 10:00:00", 50.0)]


def test_ids_map_to_contiguous_indices_and_back(hear_me):
    log = [  # (user_id, item_id, duration, time), shuffled
        ("9000000001", "500", 10, "2025-03-02 00:00:00"),
        ("42", "800", 20, "2025-03-05 00:00:00"),
        ("7", "300", 30, "2025-03-03 00:00:00"),
        ("42", "300", 40, "2025-03-01 00:00:00"),
        ("9000000001", "300", 50, "2025-03-01 00:00:00"),
        ("7", "500", 60, "2025-03-01 12:00:00"),
    ]
    folder = hear_me(
        [H] + [",".join(map(str, r)) for r in log],
        items=["item_id,track_duration", "500,200", "300,100", "600,50"],
        users=["user_id,gender", "9000000001,M", "42,F", "123,M"],
    )
    ds = build_dataset(folder, NO_PERIOD)
    assert ds.items["item_id"].tolist() == [-1, 300, 500, 600, 800]
    assert ds.items.index[PAD] == 0 and ds.items["item_id"][PAD] == -1
    assert ds.n_items == 4
    assert ds.users["user_id"].tolist() == [7, 42, 9000000001]
    assert ds.users["gender"].tolist()[1:] == ["F", "M"] and pd.isna(ds.users["gender"][0])
    assert ds.users.index.tolist() == [0, 1, 2]
    # Sorted by (user, ts).
    assert rows(ds.events) == [
        (0, 2, "2025-03-01 12:00:00", 60.0),
        (0, 1, "2025-03-03 00:00:00", 30.0),
        (1, 1, "2025-03-01 00:00:00", 40.0),
        (1, 4, "2025-03-05 00:00:00", 20.0),
        (2, 1, "2025-03-01 00:00:00", 50.0),
        (2, 2, "2025-03-02 00:00:00", 10.0),
    ]
    assert ds.events["user"].dtype == np.int32 and ds.events["item"].dtype == np.int32
    back = pd.DataFrame({
        "user_id": ds.users["user_id"].to_numpy()[ds.events["user"]],
        "item_id": ds.items["item_id"].to_numpy()[ds.events["item"]],
        "duration": ds.events["duration"].to_numpy(),
        "ts": ds.events["ts"].astype(str),
    })
    original = {(int(u), int(i), float(d), t) for u, i, d, t in log}
    assert set(back.itertuples(index=False, name=None)) == original


def test_frac_is_duration_over_track_duration(hear_me):
    folder = hear_me(
        [H, "42,300,37,2025-03-01 10:00:00", "42,500,1,2025-03-01 10:01:00",
         "42,600,359.5,2025-03-01 10:02:00"],
        items=["item_id,track_duration", "300,120", "500,3", "600,359.5"],
    )
    ds = build_dataset(folder, CleanConfig())
    expected = np.array([37 / 120, 1 / 3, 1.0], dtype=np.float32)
    np.testing.assert_array_equal(ds.events["frac"].to_numpy(), expected)
    assert ds.events["frac"].dtype == np.float32


MESSY = [
    H,
    "42,300,50,2025-03-01 10:00:00",
    "42,300,50,2025-03-01 10:00:00",  # duplicate
    "42,300,-5,2025-03-01 11:00:00",  # negative
    "42,300,600,2025-03-01 12:00:00",  # overlong (ratio 5, track 100)
    "42,800,600,2025-03-01 13:00:00",  # no metadata: kept
    "7,500,20,2025-01-01 10:00:00",  # before start
    "7,500,20,2025-09-01 10:00:00",  # after end
    ",500,20,2025-03-01 10:00:00",  # empty user
    "7,500,,2025-03-01 10:00:00",  # empty duration
    "7,500,20,2025-03-02 10:00:00",
    "7,500,-1,2025-03-02 10:00:00",  # negative
    "7,500,20,2025-03-02 10:00:00",  # duplicate
]


@pytest.mark.parametrize(
    ("negative", "overlong", "rows_out"),
    [("drop", "clip", 4), ("drop", "drop", 3), ("zero", "clip", 6), ("zero", "drop", 5)],
)
def test_report_balances(hear_me, negative, overlong, rows_out):
    ds = build_dataset(hear_me(MESSY), CleanConfig(negative=negative, overlong=overlong))
    rep = ds.report["interactions"]
    assert rep["rows_in"] == 12
    assert rep["dropped_missing_ids_or_time"] == 1
    assert rep["dropped_missing_duration"] == 1
    assert rep["dropped_outside_period"] == 2
    assert rep["dropped_exact_duplicates"] == 2
    assert rep["events_on_items_without_metadata"] == 1
    assert rep["rows_out"] == rows_out == len(ds.events)
    assert rep["rows_in"] - dropped(rep) == rep["rows_out"]


# --- dataset: cache, test users, future.csv -------------------------------------------------------

FUTURE = [
    H,
    "42,500,150,2025-09-03 10:00:00",  # after clean.end: the future window is not cut to the log period
    "7,300,30,2025-09-01 09:00:00",
    "7,300,30,2025-09-01 09:00:00",  # duplicate
    "7,300,-4,2025-09-02 09:00:00",  # negative
    "42,999,30,2025-09-02 09:00:00",  # unknown track
    "555,300,30,2025-09-02 09:00:00",  # unknown user
    "42,800,30,2025-09-04 09:00:00",  # track known from the log only
]
LOG = [H, "42,300,50,2025-03-01 10:00:00", "7,500,20,2025-03-02 11:00:00", "42,800,5,2025-03-03 00:00:00"]


def test_future_is_cleaned_in_the_same_index_space(hear_me):
    ds = build_dataset(hear_me(LOG, future=FUTURE), CleanConfig())
    assert ds.items["item_id"].tolist() == [-1, 300, 500, 800]
    assert ds.users["user_id"].tolist() == [7, 42]
    assert rows(ds.future) == [
        (0, 1, "2025-09-01 09:00:00", 30.0),
        (1, 2, "2025-09-03 10:00:00", 150.0),
        (1, 3, "2025-09-04 09:00:00", 30.0),
    ]
    np.testing.assert_array_equal(ds.future["frac"].to_numpy(), np.array([0.3, 0.75, np.nan], np.float32))
    fut = ds.report["future"]
    assert fut["rows_in"] == 7
    assert fut["dropped_outside_period"] == 0
    assert fut["dropped_exact_duplicates"] == 1
    assert fut["negative_duration_dropped"] == 1
    assert fut["dropped_unknown_item_id"] == 1
    assert fut["dropped_unknown_user"] == 1
    assert fut["rows_out"] == 3 == fut["rows_in"] - dropped(fut)
    assert ds.report["interactions"]["rows_in"] == 3
    assert ds.end == pd.Timestamp("2025-03-04")
    assert build_dataset(hear_me(LOG, name="no_future"), CleanConfig()).future is None


def test_test_users_map_test_ids_to_user_indices(hear_me):
    folder = hear_me(LOG, test=["user_id", "42", "7", "42", "5"])  # 5: no history, still gets an index
    ds = build_dataset(folder, CleanConfig())
    assert ds.users["user_id"].tolist() == [5, 7, 42]
    assert ds.test_users.tolist() == [0, 1, 2]
    assert ds.report["test_users"] == 3
    assert ds.report["test_users_without_history"] == 1
    ds = build_dataset(hear_me(LOG, test=["user_id", "42"], name="one"), CleanConfig())
    assert ds.test_users.tolist() == [1]


def assert_same(a, b) -> None:
    for name in ("events", "items", "users"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert (a.future is None) == (b.future is None)
    if a.future is not None:
        pd.testing.assert_frame_equal(a.future, b.future)
    np.testing.assert_array_equal(a.test_users, b.test_users)
    assert a.report == b.report and a.end == b.end


def test_cache_is_reused_then_rebuilt_when_the_log_changes(hear_me, tmp_path, caplog):
    folder = hear_me(LOG, future=FUTURE)
    cfg = DataConfig(dir=str(folder), cache_dir=str(tmp_path / "cache"))
    first = load_dataset(cfg, CleanConfig())
    (entry,) = (tmp_path / "cache").iterdir()
    inode = (entry / "events.parquet").stat().st_ino
    with caplog.at_level(logging.INFO, logger="seqrec.data.dataset"):
        second = load_dataset(cfg, CleanConfig())
    assert "using cleaned cache" in caplog.text
    assert list((tmp_path / "cache").iterdir()) == [entry]
    assert (entry / "events.parquet").stat().st_ino == inode  # read, not rewritten
    assert_same(first, second)
    assert second.future is not None and len(second.future) == 3
    assert_same(first, build_dataset(folder, CleanConfig()))

    log = folder / "interactions.csv"
    mtime = log.stat().st_mtime_ns
    log.write_text(log.read_text().replace("42,300,50,", "42,300,99,"))  # same size, new content
    os.utime(log, ns=(mtime + 10**9, mtime + 10**9))
    third = load_dataset(cfg, CleanConfig())
    assert len(list((tmp_path / "cache").iterdir())) == 2
    assert third.events["duration"].tolist() == [20.0, 99.0, 5.0]
    assert first.events["duration"].tolist() == [20.0, 50.0, 5.0]

    load_dataset(cfg, CleanConfig(negative="zero"))  # other cleaning rules: another entry
    assert len(list((tmp_path / "cache").iterdir())) == 3


def test_cache_defaults_to_the_data_folder(hear_me):
    folder = hear_me(LOG)
    ds = load_dataset(DataConfig(dir=str(folder)), CleanConfig())
    assert len(list((folder / ".seqrec_cache").iterdir())) == 1
    assert ds.future is None
    assert_same(ds, load_dataset(DataConfig(dir=str(folder)), CleanConfig()))
