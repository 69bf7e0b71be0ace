"""The faults a sweep of corrupted hear-me files found: each is a clear error naming the file, line and column, or a
cleaning rule counted in the report."""

import os

import pandas as pd
import pytest

from seqrec import cli
from seqrec.config import CleanConfig, DataConfig
from seqrec.data.dataset import build_dataset, cache_dir, load_dataset
from seqrec.data.ingest import DataError, read_csv
from seqrec.predict import COMMAND, main

H = "user_id,item_id,listened_duration,listened_datetime"
LOG = [H, "42,300,50,2025-03-01 10:00:00", "42,500,20,2025-03-02 11:00:00", "7,300,30,2025-03-03 12:00:00"]


def test_bytes_that_are_not_utf8_name_the_line(hear_me):
    folder = hear_me(LOG)
    path = folder / "interactions.csv"
    path.write_bytes(path.read_bytes().replace(b"42,500", b"42,5\xff0"))
    with pytest.raises(DataError, match=r"interactions\.csv: line 3 is not UTF-8 text \(byte 0xff at column 5\)"):
        read_csv(path)
    path.write_bytes(b"user_id\xfe,item_id\n")
    with pytest.raises(DataError, match=r"interactions\.csv: line 1 is not UTF-8 text"):
        read_csv(path)


def test_a_timestamp_with_a_zone_names_row_and_value(hear_me):
    folder = hear_me([*LOG, "7,500,30,2025-03-04T12:00:00Z"])
    with pytest.raises(DataError) as err:
        read_csv(folder / "interactions.csv")
    assert str(err.value) == (f"{folder / 'interactions.csv'}: column 'listened_datetime', line 5: got "
                              "'2025-03-04T12:00:00Z', expected a datetime like 2025-03-01 12:34:56.123456, without "
                              "a time zone")


def test_rows_with_the_wrong_number_of_fields_are_skipped_and_counted(hear_me):
    folder = hear_me([*LOG, "7,500,30,2025-03-04 12:00:00,extra", "7,500,30,2025-03-05 12:00:00", "7,5"])
    path = folder / "interactions.csv"
    path.write_bytes(path.read_bytes().rstrip(b"\n"))  # a truncated last line, no newline
    ds = build_dataset(folder, CleanConfig())
    assert ds.report["malformed_rows_skipped"]["interactions.csv"] == 2
    assert ds.report["interactions"]["rows_in"] == 4


def test_a_quote_left_open_is_named(hear_me):
    folder = hear_me([*LOG, '7,500,30,"2025-03-04 12:00:00', "7,500,30,2025-03-05 12:00:00"])
    with pytest.raises(DataError, match=r"line 5 opens a quote that is not closed on that line"):
        read_csv(folder / "interactions.csv")


def test_a_very_long_field_is_read(hear_me):
    long_name = "x" * (5 << 20)  # 5 MB: longer than pyarrow's default block
    folder = hear_me(LOG, items=["item_id,track_duration,track_name", "300,100,a", f'500,200,"{long_name}"'])
    table = read_csv(folder / "item_metadata.csv")
    assert table.column("track_name").to_pylist() == ["a", long_name]


def test_spaces_and_quotes_around_header_names_are_ignored_and_extra_columns_counted(hear_me):
    folder = hear_me([' user_id , "item_id",listened_duration ,listened_datetime,source',
                      *(f"{line},radio" for line in LOG[1:])])
    assert read_csv(folder / "interactions.csv").column("item_id").to_pylist() == [300, 500, 300]
    assert build_dataset(folder, CleanConfig()).report["ignored_columns"] == {"interactions.csv": ["source"]}


def test_a_header_only_test_csv_is_an_error_not_an_empty_submission(hear_me, tmp_path, capsys):
    folder = hear_me(LOG, test=["user_id"], future=LOG[:2])
    out = tmp_path / "sub.csv"
    assert cli.run(COMMAND, main, [f"data.dir={folder}", "model=popular", f"submission={out}"]) == 2
    assert capsys.readouterr().err == (f"error: {folder / 'test.csv'}: no user_id under the header; expected the "
                                       "users to recommend for, one per line\n")
    assert not out.exists()


def test_durations_not_finite_or_over_a_day_are_dropped_and_counted(hear_me):
    folder = hear_me([*LOG, "7,900,inf,2025-03-04 12:00:00", "7,900,1e300,2025-03-05 12:00:00",
                      "7,900,90000,2025-03-06 12:00:00", "7,900,600,2025-03-07 12:00:00"])
    ds = build_dataset(folder, CleanConfig())
    assert ds.report["interactions"]["dropped_nonfinite_or_over_max_listen"] == 3
    assert ds.events["duration"].max() == 600
    assert build_dataset(folder, CleanConfig(max_listen_hours=30)).report["interactions"][
        "dropped_nonfinite_or_over_max_listen"] == 2


def test_a_duplicated_item_id_keeps_the_copy_with_a_usable_length(hear_me):
    folder = hear_me(LOG, items=["item_id,track_duration", "300,0", "500,200", "300,100"])
    ds = build_dataset(folder, CleanConfig())
    assert ds.report["item_metadata_duplicate_ids"] == 1
    assert ds.items.set_index("item_id").loc[300, "track_duration"] == 100
    assert ds.report["interactions"]["overlong_clipped"] == 0


def test_an_edit_that_keeps_size_and_mtime_invalidates_the_cache(hear_me, tmp_path):
    folder = hear_me(LOG, test=["user_id", "42"])
    data = DataConfig(dir=str(folder), cache_dir=str(tmp_path / "cache"))
    first = load_dataset(data, CleanConfig())
    test = folder / "test.csv"
    st = test.stat()
    test.write_text("user_id\n7\n")  # as many bytes as "user_id\n42\n" minus one: pad to the same size
    test.write_text("user_id\n07\n")
    os.utime(test, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert test.stat().st_size == st.st_size and test.stat().st_mtime_ns == st.st_mtime_ns
    second = load_dataset(data, CleanConfig())
    assert first.users["user_id"].iloc[first.test_users].tolist() == [42]
    assert second.users["user_id"].iloc[second.test_users].tolist() == [7]


@pytest.mark.parametrize("engine", ["memory", "duckdb"])
def test_swapped_id_columns_are_refused_before_anything_is_written(hear_me, tmp_path, capsys, engine):
    swapped = ["item_id,user_id,listened_duration,listened_datetime", *LOG[1:]]  # the data stays user, item
    folder = hear_me(swapped, test=["user_id", "42", "7"], users=["user_id,gender", "42,F", "7,M"], future=LOG[:2])
    out = tmp_path / "sub.csv"
    argv = [f"data.dir={folder}", "model=popular", f"submission={out}", f"data.engine={engine}",
            f"data.cache_dir={tmp_path / 'cache'}"]
    assert cli.run(COMMAND, main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {folder / 'interactions.csv'}: 3 of 3 events (100%) are on item ids that ")
    assert "are user_id and item_id swapped" in err and err.count("\n") == 1
    assert not out.exists()
    assert cli.run(COMMAND, main, [*argv, "data.max_unknown_item_share=1"]) == 2  # then the test users say it
    assert "2 of 2 test users (100%) have no usable history" in capsys.readouterr().err
    argv += ["data.max_unknown_item_share=1", "data.max_test_users_without_history=1"]  # the thresholds are settings
    assert cli.run(COMMAND, main, argv) == 2 and not out.exists()  # and then the lists cannot be made
    assert "eval.k=50: the catalogue has only 2 tracks with a valid length" in capsys.readouterr().err


def test_a_same_size_edit_in_the_middle_of_a_large_file_invalidates_the_cache(hear_me, tmp_path):
    rows = [f"{42 if i % 2 else 7},{300 if i % 3 else 500},{i % 90 + 5},2025-03-{i % 28 + 1:02d} 10:{i % 60:02d}:00"
            for i in range(100_000)]  # ~3 MB
    folder = hear_me([LOG[0], *rows], test=["user_id", "42"])
    data = DataConfig(dir=str(folder), cache_dir=str(tmp_path / "cache"))
    first = load_dataset(data, CleanConfig())
    path = folder / "interactions.csv"
    st, raw = path.stat(), bytearray(path.read_bytes())
    middle = raw.index(b"\n7,300,", len(raw) // 2) + 1
    raw[middle] = ord("8")  # user 7 -> 8 on one row in the middle
    path.write_bytes(bytes(raw))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    second = load_dataset(data, CleanConfig())
    assert 8 not in first.users["user_id"].tolist() and 8 in second.users["user_id"].tolist()


def test_a_damaged_cache_is_rebuilt_with_a_warning_and_abandoned_writes_are_removed(hear_me, tmp_path):
    folder = hear_me(LOG, test=["user_id", "42"])
    data = DataConfig(dir=str(folder), cache_dir=str(tmp_path / "cache"))
    first = load_dataset(data, CleanConfig())
    cache = cache_dir(data, CleanConfig())
    for damage in (lambda: (cache / "report.json").write_text(""),
                   lambda: (cache / "events.parquet").write_bytes((cache / "events.parquet").read_bytes()[:50])):
        damage()
        with pytest.warns(UserWarning, match="damaged cleaned cache .*rebuilding it"):
            again = load_dataset(data, CleanConfig())
        pd.testing.assert_frame_equal(again.events, first.events)
        assert load_dataset(data, CleanConfig()).report == first.report  # rebuilt, read without a warning
    abandoned = cache.parent / ".tmp-999999999-x"  # no such pid
    abandoned.mkdir()
    (cache / "report.json").write_text("")
    with pytest.warns(UserWarning):
        load_dataset(data, CleanConfig())
    assert not abandoned.exists()


def test_a_catalogue_without_a_single_valid_length_is_refused(hear_me, tmp_path, capsys):
    folder = hear_me(LOG, items=["item_id,track_duration", "300,0", "500,"], test=["user_id", "42", "7"])
    out = tmp_path / "sub.csv"
    assert cli.run(COMMAND, main, [f"data.dir={folder}", "model=popular", f"submission={out}"]) == 2
    assert capsys.readouterr().err == (f"error: {folder / 'item_metadata.csv'}: no track has a valid track_duration "
                                       "(all 2 are missing, zero or negative): listened fractions and the metric "
                                       "need the tracks' lengths\n")
    assert not out.exists()
