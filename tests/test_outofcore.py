"""The out-of-core cleaning (DuckDB over the CSV, parquet in user shards) gives the in-memory path's events and
counts."""

import numpy as np
import pandas as pd
import pytest

from seqrec.config import CleanConfig
from seqrec.data import outofcore
from seqrec.data.dataset import build_dataset
from seqrec.data.ingest import DataError, scan_ids
from seqrec.data.outofcore import clean_to_parquet, connect, read_events
from seqrec.data.sequences import build_sequences
from seqrec.models.features import event_features
from seqrec.training.batches import first_plays, horizon_ends
from seqrec.training.store import build_store, event_chunks, load_store

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


def test_training_arrays_built_shard_by_shard_into_memmaps_equal_the_whole_log_ones(tiny_synth, tmp_path,
                                                                                    monkeypatch):
    monkeypatch.setattr(outofcore, "SHARD_USERS", 64)  # the tiny preset's 300 users in several shards
    ds = build_dataset(tiny_synth, CleanConfig())
    clean_to_parquet(connect(), tiny_synth / "interactions.csv", ds.items, ds.users["user_id"].to_numpy(np.int64),
                     CleanConfig(), {}, tmp_path / "events")
    assert len(list((tmp_path / "events").glob("shard=*"))) >= 4
    n, day = outofcore.count_events(tmp_path / "events"), 86400.0
    got = build_store(outofcore.read_shards(tmp_path / "events"), ds.n_users, n, 30.0, "quarter", day,
                      tmp_path / "store")
    seqs = build_sequences(ds.events, ds.n_users, 30.0)  # the whole log at once
    want = event_features(seqs, "quarter")
    np.testing.assert_array_equal(got.feats.offsets, want.offsets)
    for name in ("item", "weight"):
        np.testing.assert_array_equal(getattr(got.feats, name), getattr(want, name), err_msg=name)
    for name, ids in want.inputs.items():
        np.testing.assert_array_equal(got.feats.inputs[name], ids, err_msg=name)
    flags = first_plays(want.offsets, want.item)
    np.testing.assert_array_equal(got.first_flags, flags)
    np.testing.assert_array_equal(got.first_at, np.flatnonzero(flags & (want.weight > 0)))
    np.testing.assert_array_equal(got.horizon_end, horizon_ends(want.offsets, seqs.ts, day))
    loaded = load_store(tmp_path / "store")
    assert isinstance(loaded.feats.item, np.memmap) and isinstance(loaded.horizon_end, np.memmap)
    np.testing.assert_array_equal(loaded.first_at, got.first_at)
    in_memory = build_store(event_chunks(ds.events, block_events=97), ds.n_users, n, 30.0, "quarter",
                            None)  # small blocks, no horizon
    np.testing.assert_array_equal(in_memory.first_at, got.first_at)
    assert in_memory.horizon_end is None and not isinstance(in_memory.feats.item, np.memmap)
    with pytest.raises(ValueError, match="user order"):
        build_store([ds.events.iloc[100:], ds.events.iloc[:100]], ds.n_users, n, 30.0, "quarter", None)
    with pytest.raises(ValueError, match="were announced"):
        build_store([ds.events.iloc[:100]], ds.n_users, n, 30.0, "quarter", None)
