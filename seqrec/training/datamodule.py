"""LightningDataModule: training windows from the split's history; the histories of its window's users, shared
between the processes, for validation."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

from seqrec.config import OBJECTIVES, Config
from seqrec.data.dataset import Dataset
from seqrec.data.split import Split
from seqrec.models.features import EventFeatures, history_inputs
from seqrec.models.side import side_tables
from seqrec.training.batches import TrainWindows
from seqrec.training.store import EventStore, build_store, event_chunks, horizon_seconds


class WindowBatches(BatchSampler):
    """Lists of window ids for batched fetches, each plus epoch x windows (TrainWindows draws its random targets
    from them); passes the epoch on so a distributed shard reshuffles."""

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self):
        shift = self.sampler.epoch * len(self.sampler.dataset)
        for batch in super().__iter__():
            yield [i + shift for i in batch]


def window_batches(n_windows: int, batch_size: int, world_size: int = 1, rank: int = 0,
                   seed: int = 0) -> WindowBatches:
    """Shuffled batches of window ids; with several processes each rank gets its own shard.

    One process draws the same seeded permutation as several do, so batch i of a single process with batch size
    world_size * B holds exactly the windows of batch i across the ranks (a DDP run repeats a single-process one).
    """
    base = DistributedSampler(range(n_windows), num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    return WindowBatches(base, batch_size, drop_last=False)


class SeqDataModule(pl.LightningDataModule):
    """Trains on `split.history`; validation encodes `split.users`, each process its share. The windows read the
    arrays of `store` (seqrec.training.store: the whole log's, memory-mapped, of which the history is a prefix of
    each user's events) or, without one, of the history built in memory."""

    def __init__(self, split: Split, cfg: Config, store: EventStore | None = None):
        super().__init__()
        self.split, self.cfg = split, cfg
        ds: Dataset = split.history
        users, items = ds.events["user"].to_numpy(), ds.events["item"].to_numpy()
        if store is None:
            store = build_store(event_chunks(ds.events), ds.n_users, len(ds.events),
                                cfg.clean.session_gap_min, cfg.train.weight_mode, horizon_seconds(cfg))
        self.feats = store.until(np.bincount(users, minlength=ds.n_users))
        objective = OBJECTIVES[cfg.train.objective]
        self.train_set = TrainWindows(self.feats, cfg.model.max_len, horizon_end=store.horizon_end,
                                      p_window=objective.p_window, seed=cfg.seed, first=objective.discover,
                                      first_horizon=objective.discover_horizon, first_flags=store.first_flags,
                                      first_at=store.first_at)
        self.item_counts = np.bincount(items, minlength=ds.n_items + 1)

    def side_tables(self) -> dict[str, np.ndarray] | None:
        """The catalog's side tables, popularity from the plays trained on; None unless `model.use_side`."""
        model = self.cfg.model
        return side_tables(self.split.history.items, self.item_counts, tuple(model.side)) if model.use_side else None

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
        # each process encodes its own consecutive share of the validation users
        t = self.trainer
        world, rank = (t.world_size, t.global_rank) if t is not None else (1, 0)
        users = np.array_split(np.asarray(self.split.users, dtype=np.int64), world)[rank]
        batches = [list(range(i, min(i + self.cfg.decode.batch_users, len(users))))
                   for i in range(0, len(users), self.cfg.decode.batch_users)]
        return DataLoader(Histories(self.feats, users, self.cfg.model.max_len), sampler=batches, batch_size=None)


class Histories(torch.utils.data.Dataset):
    """Indexed by a list of positions in `users`: those users (`user`) and their last T events, as
    `history_inputs` gathers them."""

    def __init__(self, feats: EventFeatures, users: np.ndarray, T: int):
        self.feats, self.users, self.T = feats, users, T

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, ids: list[int]) -> dict[str, torch.Tensor]:
        users = self.users[ids]
        return {"user": torch.from_numpy(users), **history_inputs(self.feats, users, self.T)}
