import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqrec.config import load_config
from seqrec.data.dataset import load_dataset
from seqrec.inference.shards import decode_shards, split_users
from seqrec.predict_ddp import decode_ddp
from seqrec.run import Run

ROOT = Path(__file__).resolve().parent.parent


def test_a_shard_holds_exactly_its_users_events_in_log_order(make_dataset):
    ds = make_dataset([(0, 1, "2025-03-01 10:00:00", 1.0), (0, 2, "2025-03-01 10:05:00", 0.5),
                       (1, 1, "2025-03-02 09:00:00", 0.2), (2, 3, "2025-03-03 08:00:00", 1.0),
                       (2, 1, "2025-03-03 08:04:00", 0.9), (3, 2, "2025-03-04 07:00:00", 1.0)], n_items=3, n_users=5)
    shard = ds.shard(np.array([2, 0, 4]))
    want = ds.events[ds.events["user"].isin([0, 2])].reset_index(drop=True)
    assert shard.events.equals(want)
    assert shard.test_users.tolist() == [0, 2, 4] and shard.n_users == ds.n_users and shard.n_items == ds.n_items
    assert shard.end == ds.end and shard.future is None
    assert ds.shard(np.array([4])).events.empty


def test_split_users_keeps_order_and_sizes():
    parts = split_users(np.array([9, 3, 7, 1, 5]), 2)
    assert [p.tolist() for p in parts] == [[9, 3], [7, 1], [5]]
    assert split_users(np.array([], np.int64), 2) == []


def test_shards_in_worker_processes_come_back_in_the_users_order():
    users = np.arange(23)[::-1]
    out = decode_shards(lambda u: np.stack([u, u * 2], axis=1), users, size=4, workers=2)
    assert out[:, 0].tolist() == users.tolist() and out[:, 1].tolist() == (users * 2).tolist()
    with pytest.raises(ValueError, match="no users"):
        decode_shards(lambda u: u, np.array([], np.int64), size=4)


@pytest.mark.parametrize("workers", [1, 2])
def test_decoding_in_shards_gives_the_whole_log_decoders_lists(tiny_synth, tiny_run, one_thread, workers):
    cfg = load_config([f"data.dir={tiny_synth}", f"run.dir={tiny_run}", "decode.shard_users=7",
                       f"decode.workers={workers}"])
    run = Run.load(cfg)
    ds = load_dataset(run.cfg.data, run.cfg.clean)
    users = ds.test_users[::-1][:30]  # not sorted: the lists must come back in this order
    whole = run.decoder(ds).topk(run.net, users, run.ranker, 10)
    assert np.array_equal(run.recommend(ds, users, 10), whole)


def test_lightning_predict_gathers_the_shards_in_the_users_order(tiny_synth, tiny_run, one_thread, tmp_path):
    cfg = load_config([f"data.dir={tiny_synth}", f"run.dir={tiny_run}", "decode.shard_users=4", "decode.device=cpu"])
    run = Run.load(cfg)
    ds = load_dataset(run.cfg.data, run.cfg.clean)
    users = ds.test_users[::-1][:10]
    got = decode_ddp(run.net, run.shard_topk(ds, 10), users, run.cfg.decode, tmp_path / "parts")
    assert np.array_equal(got, run.recommend(ds, users, 10))
    assert not list((tmp_path / "parts").glob("*.npz"))  # the parts are gone once gathered


def test_predict_under_ddp_on_two_processes_writes_the_one_process_submission(tiny_synth, tiny_run, tmp_path):
    def predict(devices: int) -> pd.DataFrame:
        out = tmp_path / f"sub{devices}.csv"
        args = [sys.executable, str(ROOT / "predict.py"), f"data.dir={tiny_synth}", f"run.dir={tiny_run}",
                f"submission={out}", f"decode.devices={devices}", "decode.device=cpu", "decode.shard_users=5"]
        env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}  # one thread per process: 2 ranks share 2 cores
        done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        return pd.read_csv(out)

    one, two = predict(1), predict(2)
    assert len(one) == 50 * one["user_id"].nunique() and one["user_id"].nunique() > 10  # 3 shards of 5 users
    pd.testing.assert_frame_equal(two, one)
