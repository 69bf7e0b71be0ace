"""LightningDataModule: training windows from the split's history, validation users of its window."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

from seqrec.config import Config
from seqrec.data.dataset import Dataset
from seqrec.data.sequences import build_sequences
from seqrec.data.split import Split
from seqrec.inference.decode import Decoder, make_decoder
from seqrec.training.batches import TrainWindows, event_features


class SeqDataModule(pl.LightningDataModule):
    """Trains on `split.history`; validates by decoding `split.users` exactly as predict.py does."""

    def __init__(self, split: Split, cfg: Config):
        super().__init__()
        self.split, self.cfg = split, cfg
        ds: Dataset = split.history
        seqs = build_sequences(ds.events, ds.n_users, cfg.clean.session_gap_min)
        self.feats = event_features(seqs, cfg.train.weight_mode)
        self.train_set = TrainWindows(self.feats, cfg.model.max_len)
        self.item_counts = np.bincount(seqs.item, minlength=ds.n_items + 1)
        self.decoder: Decoder = make_decoder(ds, self.feats, cfg)

    def train_dataloader(self) -> DataLoader:
        # batched fetch: the sampler yields lists of window ids, the dataset gathers them in one go
        sampler = BatchSampler(RandomSampler(self.train_set), self.cfg.train.batch_size, drop_last=False)
        return self._loader(self.train_set, sampler)

    def val_dataloader(self) -> DataLoader:
        users = torch.from_numpy(np.asarray(self.split.users, dtype=np.int64))
        sampler = BatchSampler(SequentialSampler(users), self.cfg.decode.batch_users, drop_last=False)
        return DataLoader(users, sampler=sampler, batch_size=None)

    def _loader(self, dataset, sampler) -> DataLoader:
        workers = self.cfg.train.num_workers
        return DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=workers,
                          pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0)
