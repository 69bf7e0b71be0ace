"""RecTools' SASRecModel on the history written by vs_rectools.py; runs inside RecTools' own venv.

.venv-rectools/bin/python benchmarks/rectools_side.py --work DIR [--epochs 6] [--d-model 64] ...

Reads DIR/history.parquet (user, item, ts: our internal indices) and DIR/users.parquet, fits SASRecModel
(id embeddings only, its default softmax loss over the catalog unless --loss says otherwise), recommends
top-k with filter_viewed on and off, and writes DIR/rectools_recs_{filtered,unfiltered}.parquet (user,
item, rank), DIR/rectools_embeddings.npz (the trained network's state of each scored user and its item
embeddings, scored by dot product as RecTools does, so that its network can be decoded with seqrec's own
candidates and ranking stage) and DIR/rectools_side.json (timings). Imports nothing from seqrec: this venv has
numpy<2.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from epoch_timer import EpochTimer  # benchmarks/ is on the path: this file runs as a script
from rectools import Columns
from rectools.dataset import Dataset
from rectools.models import SASRecModel
from rectools.models.nn.item_net import IdEmbeddingsItemNet


def make_trainer(epochs: int, timer: EpochTimer):
    """RecTools' default trainer (no logger, no checkpoints, one device) on the CPU, plus the epoch timer."""

    def build() -> pl.Trainer:
        return pl.Trainer(max_epochs=epochs, min_epochs=epochs, deterministic=False, enable_progress_bar=False,
                          enable_model_summary=False, logger=False, enable_checkpointing=False,
                          accelerator="cpu", devices=1, callbacks=[timer])

    return build


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", required=True, help="folder with history.parquet and users.parquet")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--n-blocks", type=int, default=2)
    p.add_argument("--n-heads", type=int, default=2)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--loss", default="softmax", help="softmax, sampled_softmax, BCE or gBCE")
    p.add_argument("--n-negatives", type=int, default=512, help="only for the sampled losses")
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--seed", type=int, default=42)
    a = p.parse_args()
    work = Path(a.work)

    pl.seed_everything(a.seed, workers=True)
    hist = pd.read_parquet(work / "history.parquet")
    users = pd.read_parquet(work / "users.parquet")["user"].to_numpy()
    t0 = time.perf_counter()
    interactions = pd.DataFrame({
        Columns.User: hist["user"].to_numpy(), Columns.Item: hist["item"].to_numpy(),
        Columns.Weight: 1.0, Columns.Datetime: hist["ts"].to_numpy(),
    })
    dataset = Dataset.construct(interactions)
    prep_s = time.perf_counter() - t0

    timer = EpochTimer()
    model = SASRecModel(
        n_blocks=a.n_blocks, n_heads=a.n_heads, n_factors=a.d_model, dropout_rate=a.dropout,
        session_max_len=a.max_len, loss=a.loss, n_negatives=a.n_negatives, lr=a.lr, batch_size=a.batch_size,
        epochs=a.epochs, item_net_block_types=(IdEmbeddingsItemNet,), recommend_torch_device="cpu",
        get_trainer_func=make_trainer(a.epochs, timer),
    )
    t0 = time.perf_counter()
    model.fit(dataset)
    fit_s = time.perf_counter() - t0
    timer = next(c for c in model.fit_trainer.callbacks if isinstance(c, EpochTimer))  # fit deep-copies the trainer
    n_train_users = model.data_preparator.train_dataset.user_id_map.size
    n_targets = int((model.data_preparator.train_dataset.interactions.df.groupby(Columns.User).size() - 1).sum())

    out = {"prep_s": prep_s, "fit_s": fit_s, "epochs": timer.epochs, "epochs_s": timer.end - timer.start,
           "train_sequences": int(n_train_users), "train_targets_per_epoch": n_targets,
           "known_items": int(len(model.data_preparator.get_known_item_ids())),
           "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "loss": a.loss}
    for name, filt in (("filtered", True), ("unfiltered", False)):
        t0 = time.perf_counter()
        recs = model.recommend(users=users, dataset=dataset, k=a.k, filter_viewed=filt)
        out[f"recommend_{name}_s"] = time.perf_counter() - t0
        recs = recs.rename(columns={Columns.User: "user", Columns.Item: "item", Columns.Rank: "rank"})
        recs[["user", "item", "rank"]].astype("int64").to_parquet(work / f"rectools_recs_{name}.parquet")
    prep = model.data_preparator
    rec = prep.transform_dataset_u2i(dataset, users)  # the scored users RecTools knows, in its internal order
    user_emb, item_emb = model.lightning_model._get_user_item_embeddings(  # what its recommend() scores with
        prep.get_dataloader_recommend(rec, a.batch_size), "cpu")
    np.savez(work / "rectools_embeddings.npz", users=np.asarray(rec.user_id_map.external_ids, dtype=np.int64),
             user_emb=user_emb.numpy(), items=np.asarray(prep.get_known_item_ids(), dtype=np.int64),
             item_emb=item_emb[prep.n_item_extra_tokens:].numpy())
    out["peak_rss_self_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    tmp = work / f".rectools_side.json.{os.getpid()}"
    tmp.write_text(json.dumps(out, indent=2))
    os.replace(tmp, work / "rectools_side.json")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
