"""Two CPU processes (DDP over gloo) train to the same weights as one process with the doubled batch."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from seqrec.training.datamodule import window_batches

ROOT = Path(__file__).resolve().parent.parent
T = 5  # model.max_len
USERS = 16  # one full window each: 16 windows = 2 ranks x 2 batches x 4
ITEMS = 12


def test_one_process_batches_are_the_union_of_the_ranks_batches():
    ranks = [window_batches(USERS, 4, world_size=2, rank=r, seed=3) for r in (0, 1)]
    single = window_batches(USERS, 8, seed=3)
    for epoch in (0, 1):
        for s in (*ranks, single):
            s.set_epoch(epoch)
        for step, (b0, b1, b) in enumerate(zip(*ranks, single, strict=True)):
            assert sorted(b0 + b1) == sorted(b), (epoch, step)


def _write_log(folder: Path) -> None:
    """Every user: T + 1 plays before the validation window (one full training window), 2 plays inside it."""
    rng = np.random.default_rng(0)
    start = pd.Timestamp("2025-07-01 12:00:00")
    rows = []
    for u in range(USERS):
        items = rng.integers(1, ITEMS + 1, T + 3)
        for j, item in enumerate(items):
            day = j if j <= T else 50 + j  # the last two land in the final 15 days of the log
            rows.append((100 + u, 1000 + item, 100, start + pd.Timedelta(days=day, minutes=u)))
    folder.mkdir()
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "listened_duration", "listened_datetime"])
    inter.to_csv(folder / "interactions.csv", index=False, date_format="%Y-%m-%d %H:%M:%S.%f")
    pd.DataFrame({"item_id": 1000 + np.arange(1, ITEMS + 1), "track_duration": 100}).to_csv(
        folder / "item_metadata.csv", index=False)
    pd.DataFrame({"user_id": 100 + np.arange(USERS)}).to_csv(folder / "user_metadata.csv", index=False)
    pd.DataFrame({"user_id": [100]}).to_csv(folder / "test.csv", index=False)


def _train(data: Path, run: Path, devices: int, batch: int) -> dict[str, torch.Tensor]:
    args = [sys.executable, str(ROOT / "train.py"), f"data.dir={data}", f"run.dir={run}", "train.accelerator=cpu",
            f"train.devices={devices}", f"train.batch_size={batch}", "train.max_epochs=2", "train.warmup_steps=1",
            "train.loss=full", "train.weight_mode=none", "train.num_workers=0", "train.progress_bar=false",
            "train.lr=1e-2", f"model.max_len={T}", "model.d_model=16", "model.dropout=0",
            "split.min_window_events=1", "seed=5", "train.refit=false"]
    # one thread per process: the two ranks share 2 cores
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(args, cwd=run.parent, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 4  # 2 epochs x 2 steps on both set-ups
    return {k: v for k, v in state["state_dict"].items() if k.startswith("net.")}


@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="needs torch.distributed with gloo")
def test_two_gloo_processes_match_one_process(tmp_path):
    data = tmp_path / "data"
    _write_log(data)
    one = _train(data, tmp_path / "one", devices=1, batch=8)
    two = _train(data, tmp_path / "two", devices=2, batch=4)
    assert one.keys() == two.keys()
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-4, atol=1e-5, msg=f"{k} differs")


@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="needs torch.distributed with gloo")
def test_validation_users_are_split_across_processes_with_the_metrics_of_one_process(tiny_synth, tmp_path):
    """Each of 2 processes decodes half the validation users; the candidates are gathered, the ranker cross-fitted
    on all of them, the metrics reduced: the same values as one process decoding everyone."""
    overrides = [f"data.dir={tiny_synth}", "preset=tiny", "decode.batch_users=10", "rank.min_data_in_leaf=20"]

    def validate(devices: int) -> list[dict]:
        out = tmp_path / f"p{devices}"
        done = subprocess.run([sys.executable, str(ROOT / "tests" / "ddp_validate.py"), str(out), str(devices),
                               *overrides], cwd=ROOT, capture_output=True, text=True, timeout=300,
                              env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
        assert done.returncode == 0, done.stderr[-3000:]
        return [json.loads((out / f"rank{r}.json").read_text()) for r in range(devices)]

    (one,), two = validate(1), validate(2)
    assert one["decoded"] == 40 and [r["decoded"] for r in two] == [20, 20]  # split.max_users=40 of the preset
    assert {"val/score", "val/ndcg@50", "val/recall@50", "val/map@10", "val/hit@3", "val/repeat"} <= set(one["metrics"])
    for r in two:
        assert r["metrics"] == pytest.approx(one["metrics"], rel=1e-6, abs=1e-7)
