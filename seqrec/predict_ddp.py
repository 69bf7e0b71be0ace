"""Decoding shards of users under Lightning's predict loop, for several GPUs or nodes (DDP): every process decodes
the shards its sampler gives it and writes each to a shared folder; the first process gathers them in the users'
order."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader

from seqrec.config import DecodeConfig, parse_devices
from seqrec.errors import UserError
from seqrec.inference.shards import split_users
from seqrec.models.sasrec import SASRec


class ShardDecoding(pl.LightningModule):
    """The network (moved by Lightning to each process's device) and the function decoding one shard of users."""

    def __init__(self, net: SASRec, decode: Callable[[np.ndarray], np.ndarray]):
        super().__init__()
        self.net, self.decode = net, decode

    def predict_step(self, batch: dict, batch_idx: int) -> tuple[int, np.ndarray]:
        return int(batch["shard"]), self.decode(batch["users"].cpu().numpy())


class ShardWriter(BasePredictionWriter):
    """Each decoded shard as `folder/shard<i>.npz` (users and lists), written by the process that decoded it."""

    def __init__(self, folder: Path):
        super().__init__(write_interval="batch")
        self.folder = folder

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                           dataloader_idx=0) -> None:
        shard, recs = prediction
        tmp = self.folder / f".shard{shard}.npz"
        np.savez(tmp, users=batch["users"].cpu().numpy(), recs=recs)
        tmp.replace(self.folder / f"shard{shard}.npz")


def decode_ddp(net: SASRec, decode: Callable[[np.ndarray], np.ndarray], users: np.ndarray, cfg: DecodeConfig,
               folder: Path) -> np.ndarray | None:
    """(n, k) lists of `users` decoded shard by shard on decode.devices processes x decode.num_nodes nodes;
    `folder` must be shared by the nodes. Returns the lists on the first process, None on the others."""
    trainer = pl.Trainer(accelerator="cpu" if cfg.device == "cpu" else "auto", devices=parse_devices(cfg.devices),
                         num_nodes=cfg.num_nodes, strategy="ddp" if cfg.distributed else "auto", logger=False,
                         enable_checkpointing=False, enable_model_summary=False, callbacks=[ShardWriter(folder)])
    world = trainer.world_size
    if len(users) < world:
        raise UserError(f"{len(users)} users for {world} decoding processes: use fewer decode.devices")
    size = min(cfg.shard_users, -(-len(users) // world))  # every process gets at least one shard
    shards = [{"shard": i, "users": torch.from_numpy(np.ascontiguousarray(s))}
              for i, s in enumerate(split_users(users, size))]
    folder.mkdir(parents=True, exist_ok=True)
    trainer.predict(ShardDecoding(net, decode), DataLoader(shards, batch_size=None), return_predictions=False)
    trainer.strategy.barrier()
    if not trainer.is_global_zero:
        return None
    parts = [np.load(folder / f"shard{i}.npz") for i in range(len(shards))]  # a stale higher shard is not read
    got = np.concatenate([p["users"] for p in parts])
    row = pd.Index(got).get_indexer(users)
    if len(got) != len(users) or (row < 0).any():
        raise RuntimeError(f"{folder}: the decoded shards do not hold the {len(users):,} users asked for")
    recs = np.concatenate([p["recs"] for p in parts])[row]
    for i in range(len(shards)):
        (folder / f"shard{i}.npz").unlink()
    return recs
