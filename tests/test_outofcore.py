"""The out-of-core cleaning (DuckDB over the CSV, parquet in user shards) gives the in-memory path's events and
counts."""

from dataclasses import fields

import numpy as np
import pandas as pd
import pytest

from seqrec.config import CleanConfig
from seqrec.data import outofcore
from seqrec.data.dataset import build_dataset
from seqrec.data.ingest import DataError, scan_ids
from seqrec.data.outofcore import clean_to_parquet, connect, read_events
from seqrec.data.sequences import Sequences, build_sequences, build_sequences_memmap

H = "user_id,item_id,listened_duration,listened_datetime"


def both(folder, cfg, tmp_path):
    ds = build_dataset(folder, cfg)
    user_ids = ds.users["user_id"].to_numpy(np.int64)
    report: dict = {}
    clean_to_parquet(connect(), folder / "interactions.csv", ds.items, user_ids, cfg, report,
                     tmp_path / "events")
    return ds, read_events(tmp_path / "events"), report


def test_the_tiny_preset_cleans_the_same_both_ways(tiny_synth, tmp_path):
    ds, events, report = both(tiny_synth, CleanConfig(), tmp_path)
    assert report == ds.report["interactions"]
    pd.testing.assert_frame_equal(events, ds.events.reset_index(drop=True), check_dtype=True)
    scan = scan_ids(tiny_synth / "interactions.csv")
    assert np.array_equal(scan.ids["item_id"], np.unique(pd.read_csv(tiny_synth / "interactions.csv")["item_id"]))
    assert scan.rows == report["rows_in"] and scan.malformed == 0


@pytest.mark.parametrize("cfg", [CleanConfig(), CleanConfig(negative="zero", overlong="drop")])
def test_every_rule_counts_the_same_both_ways(hear_me, tmp_path, cfg):
    folder = hear_me([H, "42,300,50,2025-03-01 10:00:00", "42,300,50,2025-03-01 10:00:00",  # duplicate
                      "42,500,2000,2025-03-01 11:00:00",  # overlong (track 200 s)
                      "42,500,-5,2025-03-01 12:00:00", "7,900,inf,2025-03-01 12:00:00",  # negative, not finite
                      "7,900,30,2025-01-01 12:00:00", "7,900,,2025-03-02 12:00:00", ",900,3,2025-03-02 12:00:00",
                      "7,900,0,2025-03-03 12:00:00", "7,800,60,2025-03-04 12:00:00"], test=["user_id", "42", "7"])
    ds, events, report = both(folder, cfg, tmp_path)
    assert report == ds.report["interactions"]
    pd.testing.assert_frame_equal(events, ds.events.reset_index(drop=True))


def test_the_duckdb_engine_builds_the_same_dataset(tiny_synth):
    memory, streamed = build_dataset(tiny_synth, CleanConfig()), build_dataset(tiny_synth, CleanConfig(), "duckdb")
    assert streamed.report == memory.report
    pd.testing.assert_frame_equal(streamed.events, memory.events)
    pd.testing.assert_frame_equal(streamed.items, memory.items)
    np.testing.assert_array_equal(streamed.test_users, memory.test_users)


def test_a_row_duckdb_reads_otherwise_than_the_hear_me_reader_is_an_error(hear_me, tmp_path):
    folder = hear_me([H, "42,300,50,2025-03-01 10:00:00", "42,300,50,2025-03-01 11:00:00"])
    ds = build_dataset(folder, CleanConfig())
    with pytest.raises(DataError, match=r"interactions\.csv: DuckDB read 2 rows where the hear-me reader read 3"):
        clean_to_parquet(connect(), folder / "interactions.csv", ds.items, ds.users["user_id"].to_numpy(np.int64),
                         CleanConfig(), {}, tmp_path / "events", rows=3)


def test_sequences_built_shard_by_shard_into_memmaps_equal_the_in_memory_ones(tiny_synth, tmp_path, monkeypatch):
    monkeypatch.setattr(outofcore, "SHARD_USERS", 64)  # the tiny preset's 300 users in several shards
    ds = build_dataset(tiny_synth, CleanConfig())
    report: dict = {}
    clean_to_parquet(connect(), tiny_synth / "interactions.csv", ds.items, ds.users["user_id"].to_numpy(np.int64),
                     CleanConfig(), report, tmp_path / "events")
    assert len(list((tmp_path / "events").glob("shard=*"))) >= 4
    n = outofcore.count_events(tmp_path / "events")
    got = build_sequences_memmap(outofcore.read_shards(tmp_path / "events"), ds.n_users, n, 30.0, tmp_path / "seq")
    want = build_sequences(ds.events, ds.n_users, 30.0)
    for f in fields(Sequences):
        np.testing.assert_array_equal(getattr(got, f.name), getattr(want, f.name), err_msg=f.name)
    assert isinstance(got.item, np.memmap) and np.load(tmp_path / "seq" / "session.npy", mmap_mode="r")[-1] == \
        want.session[-1]
    with pytest.raises(ValueError, match="user order"):
        build_sequences_memmap([ds.events.iloc[100:], ds.events.iloc[:100]], ds.n_users, n, 30.0, tmp_path / "x")
