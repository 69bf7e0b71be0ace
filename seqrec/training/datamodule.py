"""LightningDataModule: training windows from the split's history, validation users of its window."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, SequentialSampler

from seqrec.config import OBJECTIVES, Config
from seqrec.data.dataset import Dataset
from seqrec.data.sequences import build_sequences
from seqrec.data.split import Split
from seqrec.inference.decode import Decoder, make_decoder
from seqrec.inference.evidence import LogTables
from seqrec.models.features import event_features
from seqrec.training.batches import TrainWindows, horizon_ends


class WindowBatches(BatchSampler):
    """Lists of window ids for batched fetches; passes the epoch on so a distributed shard reshuffles."""

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)


def window_batches(n_windows: int, batch_size: int, world_size: int = 1, rank: int = 0,
                   seed: int = 0) -> WindowBatches:
    """Shuffled batches of window ids; with several processes each rank gets its own shard.

    One process draws the same seeded permutation as several do, so batch i of a single process with batch size
    world_size * B holds exactly the windows of batch i across the ranks (a DDP run repeats a single-process one).
    """
    base = DistributedSampler(range(n_windows), num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    return WindowBatches(base, batch_size, drop_last=False)


class SeqDataModule(pl.LightningDataModule):
    """Trains on `split.history`; validates by decoding `split.users` exactly as predict.py does."""

    def __init__(self, split: Split, cfg: Config):
        super().__init__()
        self.split, self.cfg = split, cfg
        ds: Dataset = split.history
        seqs = build_sequences(ds.events, ds.n_users, cfg.clean.session_gap_min)
        self.feats = event_features(seqs, cfg.train.weight_mode)
        p_window = OBJECTIVES[cfg.train.objective]
        horizon = horizon_ends(seqs.offsets, seqs.ts, cfg.train.horizon_days * 86400) if p_window else None
        self.train_set = TrainWindows(self.feats, cfg.model.max_len, horizon_end=horizon, p_window=p_window,
                                      seed=cfg.seed)
        self.item_counts = np.bincount(seqs.item, minlength=ds.n_items + 1)

    @cached_property
    def decoder(self) -> Decoder:
        """Validation's decoder, built on first use (a refit on the whole log never validates): the evidence of the
        validation users only (at most split.max_users), the log-wide tables of the whole history."""
        ds = self.split.history
        return make_decoder(ds.shard(self.split.users), self.feats, self.cfg, LogTables.build(ds, self.cfg))

    def train_dataloader(self) -> DataLoader:
        # batched fetch: the sampler yields lists of window ids, the dataset gathers them in one go;
        # sharded here for DDP (the trainer runs with use_distributed_sampler=False)
        t = self.trainer
        world, rank = (t.world_size, t.global_rank) if t is not None else (1, 0)
        sampler = window_batches(len(self.train_set), self.cfg.train.batch_size, world, rank, self.cfg.seed)
        workers = self.cfg.train.num_workers
        # its own generator: creating the iterator must not draw from the global random state that EpochSeed fixes
        return DataLoader(self.train_set, sampler=sampler, batch_size=None, num_workers=workers,
                          pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0,
                          generator=torch.Generator().manual_seed(self.cfg.seed))

    def val_dataloader(self) -> DataLoader:
        users = torch.from_numpy(np.asarray(self.split.users, dtype=np.int64))
        sampler = BatchSampler(SequentialSampler(users), self.cfg.decode.batch_users, drop_last=False)
        return DataLoader(users, sampler=sampler, batch_size=None)
