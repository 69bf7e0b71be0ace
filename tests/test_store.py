"""The training store: the whole log's per-event arrays, memory-mapped from the cleaned cache, train a split's history
exactly as the history's own arrays built in memory do, and nothing of the window leaks into a draw."""

import json

import numpy as np
import pytest
import torch

from seqrec.config import load_config
from seqrec.data.dataset import load_dataset
from seqrec.data.split import make_split
from seqrec.training.datamodule import SeqDataModule
from seqrec.training.store import event_store


def config(tiny_synth, tmp_path, *extra):
    return load_config([f"data.dir={tiny_synth}", f"data.cache_dir={tmp_path / 'cache'}", "preset=tiny", *extra])


@pytest.mark.parametrize("objective", ["next_discover_window", "window", "discover"])
def test_a_split_trained_from_the_whole_logs_store_gets_the_batches_of_its_own_history(tiny_synth, tmp_path,
                                                                                       objective):
    cfg = config(tiny_synth, tmp_path, f"train.objective={objective}")
    ds = load_dataset(cfg.data, cfg.clean)
    split = make_split(ds, cfg.split, cfg.seed, cfg.metric)
    assert len(split.history.events) < len(ds.events)  # the window's events are in the store, not in the history
    store = event_store(ds, cfg)
    assert isinstance(store.feats.item, np.memmap) and store.n_events == len(ds.events)
    mapped, memory = SeqDataModule(split, cfg, store), SeqDataModule(split, cfg)
    assert len(mapped.train_set) == len(memory.train_set) > 0
    n = len(memory.train_set)
    for epoch in range(2):  # every window, with the draws of two epochs
        ids = list(range(epoch * n, (epoch + 1) * n))
        got, want = mapped.train_set[ids], memory.train_set[ids]
        assert set(got) == set(want)
        for name in want:
            torch.testing.assert_close(got[name], want[name], rtol=0, atol=0, msg=f"{objective}: {name}")
    np.testing.assert_array_equal(mapped.item_counts, memory.item_counts)
    users = split.users
    for name, x in memory.val_dataloader().dataset[list(range(len(users)))].items():
        torch.testing.assert_close(mapped.val_dataloader().dataset[list(range(len(users)))][name], x, rtol=0, atol=0)


def test_the_store_is_written_once_into_the_cache_and_rebuilt_when_damaged(tiny_synth, tmp_path):
    cfg = config(tiny_synth, tmp_path)
    ds = load_dataset(cfg.data, cfg.clean)
    store = event_store(ds, cfg)
    [folder] = (tmp_path / "cache").glob("*/store-*")
    stamp = (folder / "item.npy").stat().st_mtime_ns
    again = event_store(ds, cfg)  # read back, not rebuilt
    assert (folder / "item.npy").stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.first_at, store.first_at)
    other = event_store(ds, config(tiny_synth, tmp_path, "train.objective=next"))  # no horizon: another store
    assert other.horizon_end is None and len(list((tmp_path / "cache").glob("*/store-*"))) == 2
    (folder / "meta.json").write_text("{")  # damaged: rebuilt
    np.testing.assert_array_equal(event_store(ds, cfg).horizon_end, store.horizon_end)
    assert json.loads((folder / "meta.json").read_text())["events"] == len(ds.events)
    abandoned = folder.parent / ".tmp-999999999-x"  # a build whose process died
    abandoned.mkdir()
    (folder / "meta.json").unlink()
    event_store(ds, cfg)
    assert not abandoned.exists() and not list(folder.parent.glob(".tmp-*"))


def test_a_history_that_is_not_a_prefix_of_the_store_is_refused(tiny_synth, tmp_path):
    cfg = config(tiny_synth, tmp_path)
    ds = load_dataset(cfg.data, cfg.clean)
    store = event_store(ds, cfg)
    counts = np.diff(store.feats.offsets)
    counts[0] += 1
    with pytest.raises(ValueError, match="cannot be a prefix"):
        store.until(counts)
    with pytest.raises(ValueError, match="cannot be a prefix"):
        store.until(counts[1:])
