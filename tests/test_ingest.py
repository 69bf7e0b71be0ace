import datetime as dt

import pyarrow as pa
import pytest

from seqrec.config import CleanConfig
from seqrec.data.dataset import build_dataset
from seqrec.data.ingest import DataError, read_csv, read_dir

LOG_HEADER = "user_id,item_id,listened_duration,listened_datetime"
LOG = [LOG_HEADER, "42,300,50,2025-03-01 10:00:00", "7,500,20,2025-03-02 11:00:00"]


@pytest.mark.parametrize(
    ("file", "lines", "missing"),
    [
        # `listened_at` is not `listened_datetime`: a renamed column counts as missing.
        ("interactions.csv", ["user_id,item_id,listened_duration,listened_at", "42,300,50,x"],
         "listened_datetime"),
        ("interactions.csv", ["user_id,item_id,listened_datetime", "42,300,2025-03-01"], "listened_duration"),
        ("item_metadata.csv", ["item_id,track_name", "300,a"], "track_duration"),
        ("test.csv", ["uid", "42"], "user_id"),
    ],
)
def test_missing_column_names_file_and_column(hear_me, file, lines, missing):
    folder = hear_me(LOG)
    (folder / file).write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        read_dir(folder)
    msg = str(err.value)
    assert str(folder / file) in msg
    assert f"missing column(s) [{missing!r}]" in msg


def test_missing_file_and_empty_file(hear_me):
    folder = hear_me(LOG, test=None)
    with pytest.raises(DataError, match=r"test\.csv: file not found"):
        read_dir(folder)
    (folder / "test.csv").write_text("")
    with pytest.raises(DataError, match=r"test\.csv: empty file"):
        read_dir(folder)


@pytest.mark.parametrize("file", ["interactions.csv", "future.csv"])
@pytest.mark.parametrize(
    ("col", "bad", "row"),
    [("user_id", "u17", 3), ("item_id", "abc", 2), ("item_id", "12.5", 3), ("user_id", "1e", 1)],
)
def test_non_numeric_id_names_file_column_row_and_value(hear_me, file, col, bad, row):
    rows = [{"user_id": "42", "item_id": "300"} for _ in range(3)]
    rows[row - 1][col] = bad
    lines = [LOG_HEADER] + [f"{r['user_id']},{r['item_id']},50,2025-03-01 10:00:00" for r in rows]
    folder = hear_me(LOG, future=LOG)
    (folder / file).write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        read_csv(folder / file)
    assert str(err.value) == (
        f"{folder / file}: column {col!r}, line {row + 1}: "
        f"got {bad!r}, expected an integer id"
    )


@pytest.mark.parametrize("bad", ["2025-02-30 10:00:00", "yesterday", "2025-03-01 25:00:00"])
def test_unparsable_datetime_names_file_column_row_and_value(hear_me, bad):
    folder = hear_me([LOG_HEADER, "42,300,50,2025-03-01 10:00:00", "42,300,50,2025-03-01 10:00:00.5",
                      f"42,300,50,{bad}", "7,300,50,also bad"])
    with pytest.raises(DataError) as err:
        read_dir(folder)
    assert str(err.value) == (
        f"{folder / 'interactions.csv'}: column 'listened_datetime', line 4: "
        f"got {bad!r}, expected a datetime like 2025-03-01 12:34:56.123456, without a time zone"
    )


def test_missing_user_metadata_warns_and_keeps_every_log_user(hear_me):
    folder = hear_me(LOG + ["9000000001,300,5,2025-03-03 00:00:00"], users=None)
    with pytest.warns(UserWarning, match=r"user_metadata\.csv not found"):
        ds = build_dataset(folder, CleanConfig())
    assert list(ds.users.columns) == ["user_id"]
    assert ds.users["user_id"].tolist() == [7, 42, 9000000001]


def test_extra_unknown_columns_are_ignored(hear_me):
    folder = hear_me(
        ["platform,user_id,item_id,comment,listened_duration,listened_datetime",
         'izi,42,300,"has, comma",50,2025-03-01 10:00:00',
         "hitter,7,500,,20.0,2025-03-02 11:00:00"],
        items=["item_id,colour,track_duration,artist_name", "300,red,100,A", "500,,200,"],
    )
    tables = read_dir(folder)
    inter = tables["interactions.csv"]
    assert inter.column_names == ["user_id", "item_id", "listened_duration", "listened_datetime"]
    assert inter.column("user_id").to_pylist() == [42, 7]
    assert inter.column("item_id").to_pylist() == [300, 500]
    assert inter.column("listened_duration").to_pylist() == [50.0, 20.0]
    items = tables["item_metadata.csv"]
    assert items.column_names == ["item_id", "artist_name", "track_duration"]  # schema order, `colour` gone
    assert items.column("artist_name").to_pylist() == ["A", None]
    assert items.column("track_duration").to_pylist() == [100.0, 200.0]


def test_timestamps_with_and_without_microseconds(hear_me):
    folder = hear_me([
        LOG_HEADER,
        "42,300,50,2025-03-01 10:00:00",
        "42,300,50,2025-03-01 10:00:00.123456",
        "42,300,50,2025-08-30 23:59:59.000001",
        "42,300,50,2025-03-01 10:00:00.5",
    ])
    table = read_csv(folder / "interactions.csv")
    assert table.schema.field("listened_datetime").type == pa.timestamp("us")
    assert table.column("listened_datetime").to_pylist() == [
        dt.datetime(2025, 3, 1, 10, 0, 0),
        dt.datetime(2025, 3, 1, 10, 0, 0, 123456),
        dt.datetime(2025, 8, 30, 23, 59, 59, 1),
        dt.datetime(2025, 3, 1, 10, 0, 0, 500000),
    ]
