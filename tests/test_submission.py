import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqrec import PAD
from seqrec.config import CleanConfig
from seqrec.data.dataset import build_dataset
from seqrec.inference.submission import COLUMNS, check, write_submission
from seqrec.io import atomic_output, write_atomic

K = 3
# Items 1..5 have ids 1001..1005 (item 4 has no track length but is in the metadata); users 0..2 have
# ids 100..102; test users are 0 and 2.
EVENTS = [
    (0, 1, "2025-08-01 10:00:00", 1.0),
    (1, 2, "2025-08-02 10:00:00", 1.0),
    (2, 3, "2025-08-03 10:00:00", 1.0),
]
# (user_id, item_id, rank) of a valid submission for k = 3.
VALID = [
    (100, 1003, 1), (100, 1001, 2), (100, 1002, 3),
    (102, 1005, 1), (102, 1004, 2), (102, 1001, 3),
]
HEADER = "id,user_id,item_id,rank\n"


@pytest.fixture
def ds(make_dataset):
    return make_dataset(EVENTS, n_items=5, n_users=3, invalid=(4,), test_users=[0, 2])


@pytest.fixture
def umask():
    """Sets the process umask for one test and restores it."""
    before = os.umask(0o022)
    yield os.umask
    os.umask(before)


def frame(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    """Submission rows with ids 0..n-1."""
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "rank"])
    df.insert(0, "id", np.arange(len(df)))
    return df


def files(folder: Path) -> list[str]:
    """Every name in the folder, hidden temp files included."""
    return sorted(p.name for p in folder.iterdir())


# ---- check ----

def test_valid_submission_has_no_problems(ds):
    assert check(frame(VALID), ds, K) == []


def test_item_without_track_length_is_still_a_known_track(ds):
    assert not ds.items["valid"][4] and ds.items["known"][4]
    assert check(frame(VALID), ds, K) == []  # 1004 is recommended in VALID


@pytest.mark.parametrize("cols", [
    ["user_id", "id", "item_id", "rank"],  # misordered
    ["id", "user_id", "item_id"],  # missing
    ["id", "user_id", "item_id", "rank", "score"],  # extra
])
def test_wrong_columns(ds, cols):
    df = frame(VALID).assign(score=0.5)[cols]
    assert check(df, ds, K) == [f"columns are {cols}, expected exactly {COLUMNS}"]


def test_non_integer_columns_are_each_named(ds):
    df = frame(VALID)
    df["rank"] = df["rank"].astype(float)
    df["item_id"] = df["item_id"].astype(object)  # e.g. a text value somewhere in the column
    assert check(df, ds, K) == [
        "column 'item_id' must hold integers, found object",
        "column 'rank' must hold integers, found float64",
    ]


@pytest.mark.parametrize("ids, row, found", [
    ([0, 1, 2, 3, 7, 5], 4, 7),
    ([1, 2, 3, 4, 5, 6], 0, 1),  # starts at 1
    ([0, 1, 3, 2, 4, 5], 2, 3),  # all there, out of order
])
def test_ids_must_run_0_to_n_minus_1_and_name_the_row(ds, ids, row, found):
    df = frame(VALID).assign(id=ids)
    assert check(df, ds, K) == [f"id must run 0..5 in order; row {row} has id {found}"]


def test_missing_test_user(ds):
    assert check(frame(VALID[:3]), ds, K) == ["1 test user(s) missing, e.g. user_id 102"]


def test_user_not_in_test_csv(ds):
    extra = [(101, 1001, 1), (101, 1002, 2), (101, 1003, 3)]
    assert check(frame(VALID + extra), ds, K) == ["1 user(s) not in test.csv, e.g. user_id 101"]


@pytest.mark.parametrize("rows, user, n", [
    (VALID[:5], 102, 2),  # last row dropped
    (VALID[:3] + [(100, 1004, 4)] + VALID[3:], 100, 4),  # one row too many
])
def test_user_without_exactly_k_rows(ds, rows, user, n):
    assert check(frame(rows), ds, K) == [f"1 user(s) without exactly 3 rows, e.g. user_id {user} has {n}"]


def test_repeated_user_item_pair(ds):
    rows = VALID[:2] + [(100, 1001, 3)] + VALID[3:]
    assert check(frame(rows), ds, K) == ["1 repeated (user, item) pair(s), e.g. user_id 100 item_id 1001"]


def test_same_item_for_two_users_is_fine(ds):
    assert (100, 1001, 2) in VALID and (102, 1001, 3) in VALID
    assert check(frame(VALID), ds, K) == []


@pytest.mark.parametrize("ranks", [[1, 2, 2], [0, 1, 2], [2, 3, 4], [1, 2, 4]])
def test_ranks_must_be_1_to_k(ds, ranks):
    rows = VALID[:3] + [(u, i, r) for (u, i, _), r in zip(VALID[3:], ranks, strict=True)]
    assert check(frame(rows), ds, K) == ["1 user(s) whose ranks are not 1..3, e.g. user_id 102"]


def test_ranks_may_come_in_any_row_order(ds):
    rows = [VALID[2], VALID[0], VALID[1]] + VALID[3:]
    assert check(frame(rows), ds, K) == []


@pytest.mark.parametrize("item_id", [1009, -1, 0])  # unknown, PAD's id, PAD's index
def test_item_not_in_metadata_is_named(ds, item_id):
    rows = VALID[:4] + [(102, item_id, 2)] + VALID[5:]
    assert check(frame(rows), ds, K) == [f"1 item_id(s) not in item_metadata, e.g. {item_id} (row 4)"]


def test_item_seen_only_in_the_log_is_not_known(hear_me):
    folder = hear_me(["user_id,item_id,listened_duration,listened_datetime",
                      "42,300,50,2025-03-01 10:00:00", "42,700,50,2025-03-01 10:01:00"])
    ds = build_dataset(folder, CleanConfig())
    assert ds.items["item_id"].tolist() == [-1, 300, 500, 700]
    assert check(frame([(42, 300, 1), (42, 500, 2)]), ds, 2) == []
    assert check(frame([(42, 700, 1), (42, 500, 2)]), ds, 2) == [
        "1 item_id(s) not in item_metadata, e.g. 700 (row 0)"
    ]


def test_every_violation_is_reported_at_once(ds):
    rows = [(100, 1001, 1), (100, 1001, 2), (100, 1009, 2), (100, 1002, 4), (101, 1003, 1)]
    df = frame(rows).assign(id=[0, 1, 2, 5, 4])
    assert check(df, ds, K) == [
        "id must run 0..4 in order; row 3 has id 5",
        "1 test user(s) missing, e.g. user_id 102",
        "1 user(s) not in test.csv, e.g. user_id 101",
        "2 user(s) without exactly 3 rows, e.g. user_id 100 has 4",
        "1 repeated (user, item) pair(s), e.g. user_id 100 item_id 1001",
        "1 user(s) whose ranks are not 1..3, e.g. user_id 100",
        "1 item_id(s) not in item_metadata, e.g. 1009 (row 2)",
    ]


# ---- write_submission ----

def test_write_submission_uses_original_ids_and_rank_1_first(ds, tmp_path):
    path = tmp_path / "sub.csv"
    write_submission(path, ds, np.array([0, 2]), np.array([[3, 1, 2], [5, 4, 1]]), K)
    assert path.read_text() == HEADER + (
        "0,100,1003,1\n1,100,1001,2\n2,100,1002,3\n3,102,1005,1\n4,102,1004,2\n5,102,1001,3\n"
    )
    assert check(pd.read_csv(path), ds, K) == []
    assert files(tmp_path) == ["sub.csv"]


def test_write_submission_replaces_an_old_file_and_creates_folders(ds, tmp_path):
    path = tmp_path / "out" / "sub.csv"
    write_submission(path, ds, np.array([0, 2]), np.array([[3, 1, 2], [5, 4, 1]]), K)
    write_submission(path, ds, np.array([0, 2]), np.array([[1, 2, 3], [1, 2, 3]]), K)
    assert path.read_text() == HEADER + (
        "0,100,1001,1\n1,100,1002,2\n2,100,1003,3\n3,102,1001,1\n4,102,1002,2\n5,102,1003,3\n"
    )
    assert files(path.parent) == ["sub.csv"]


@pytest.mark.parametrize("recs, problem", [
    ([[3, 1, 3], [5, 4, 1]], "1 repeated (user, item) pair(s), e.g. user_id 100 item_id 1003"),
    ([[3, 1, 2], [5, PAD, 1]], "1 item_id(s) not in item_metadata, e.g. -1 (row 4)"),
    ([[3, 1, 2], [5, 4, 6]], "item indices must lie in 0..5, found 1..6"),
    ([[3, 1, 2], [5, -1, 1]], "item indices must lie in 0..5, found -1..5"),  # would wrap to the last item
    ([[3, 1], [5, 4]], "2 user(s) without exactly 3 rows, e.g. user_id 100 has 2"),
])
def test_write_submission_refuses_bad_lists_and_keeps_the_old_file(ds, tmp_path, recs, problem):
    path = tmp_path / "sub.csv"
    path.write_text("old\n")
    with pytest.raises(ValueError) as err:
        write_submission(path, ds, np.array([0, 2]), np.array(recs), K)
    assert str(err.value) == f"refusing to write {path}: {problem}"
    assert path.read_text() == "old\n"
    assert files(tmp_path) == ["sub.csv"]


def test_write_submission_refuses_items_missing_from_metadata(hear_me, tmp_path):
    folder = hear_me(["user_id,item_id,listened_duration,listened_datetime",
                      "42,300,50,2025-03-01 10:00:00", "42,700,50,2025-03-01 10:01:00"])
    ds = build_dataset(folder, CleanConfig())
    path = tmp_path / "sub.csv"
    with pytest.raises(ValueError) as err:
        write_submission(path, ds, ds.test_users, np.array([[3, 1]]), 2)  # item 3 is id 700
    assert str(err.value) == f"refusing to write {path}: 1 item_id(s) not in item_metadata, e.g. 700 (row 0)"
    assert not path.exists()
    assert "sub.csv" not in files(tmp_path) and not any(n.startswith(".sub.csv") for n in files(tmp_path))


def test_write_submission_failing_midway_keeps_the_old_file(ds, tmp_path, monkeypatch):
    def half_written(self, path, **kwargs):
        Path(path).write_text(HEADER + "0,100,")
        raise OSError("disk full")

    path = tmp_path / "sub.csv"
    path.write_text("old\n")
    monkeypatch.setattr(pd.DataFrame, "to_csv", half_written)
    with pytest.raises(OSError, match="disk full"):
        write_submission(path, ds, np.array([0, 2]), np.array([[3, 1, 2], [5, 4, 1]]), K)
    assert path.read_text() == "old\n"
    assert files(tmp_path) == ["sub.csv"]


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_follow_the_umask_not_mkstemp(ds, tmp_path, umask, mask, mode):
    umask(mask)
    path = tmp_path / "sub.csv"
    write_submission(path, ds, np.array([0, 2]), np.array([[3, 1, 2], [5, 4, 1]]), K)
    write_atomic(tmp_path / "table.md", "x\n")
    assert path.stat().st_mode & 0o777 == mode
    assert (tmp_path / "table.md").stat().st_mode & 0o777 == mode


# ---- seqrec.io ----

def test_write_atomic_writes_and_replaces(tmp_path):
    path = tmp_path / "a" / "b.txt"
    write_atomic(path, "first\n")
    write_atomic(path, "второй\n")
    assert path.read_text(encoding="utf-8") == "второй\n"
    assert files(path.parent) == ["b.txt"]


def test_exception_inside_atomic_output_keeps_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "b.txt"
    path.write_text("old\n")
    with pytest.raises(RuntimeError, match="boom"), atomic_output(path) as tmp:
        assert tmp.parent == tmp_path and tmp != path
        tmp.write_text("new\n")
        raise RuntimeError("boom")
    assert path.read_text() == "old\n"
    assert files(tmp_path) == ["b.txt"]


def test_exception_inside_atomic_output_creates_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_output(tmp_path / "b.txt") as tmp:
        tmp.write_text("new\n")
        raise KeyboardInterrupt
    assert files(tmp_path) == []


def test_write_atomic_failing_keeps_the_old_file(tmp_path):
    path = tmp_path / "b.txt"
    path.write_text("old\n")
    with pytest.raises(TypeError):
        write_atomic(path, b"bytes are not text")  # type: ignore[arg-type]
    assert path.read_text() == "old\n"
    assert files(tmp_path) == ["b.txt"]
