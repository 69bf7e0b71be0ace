"""The ranking stage during training, as Lightning callbacks: validation decodes, ranks and scores full lists, and
the ranker travels in every checkpoint. The LightningModule only trains and encodes; this is the one module of
seqrec.training that fits rankers."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from seqrec.config import Config
from seqrec.data.dataset import Dataset
from seqrec.data.split import Split
from seqrec.inference.decode import Decoder, make_decoder
from seqrec.metrics import competition_score
from seqrec.models.features import EventFeatures
from seqrec.models.sasrec import States
from seqrec.ranking.candidates import Candidates
from seqrec.ranking.evidence import LogTables
from seqrec.ranking.rankers import ByFeature, Ranker, crossfit, fit, load_ranker, single_source, top_k
from seqrec.training.listmetrics import ListMetrics


class CarriesRanker(Callback):
    """Saves its ranker in every checkpoint (`ranker`, the state Run.load reads) and takes it back on a resume."""

    def __init__(self, ranker: Ranker):
        self.ranker = ranker

    @classmethod
    def of_checkpoint(cls, state: dict) -> CarriesRanker:
        """The ranker a loaded checkpoint carries."""
        return cls(load_ranker(state["ranker"]))

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint["ranker"] = self.ranker.state()

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        self.ranker = load_ranker(checkpoint["ranker"])


class RankingStage(CarriesRanker):
    """Validation's lists and the ranking stage's fit.

    Each process turns the states its validation steps encode (its share of the split's users) into candidates;
    at the epoch's end the candidates are gathered from every process, the ranker is cross-fitted on all users
    (identically on every process) to make out-of-sample lists, and fitted on the whole window for an epoch whose
    score beats the best so far (the one best.ckpt keeps), unless the best single source (`rank.fallback_by`)
    scores better on the same users: then that source ranks (`choice` says which). Each process scores its own
    users' lists; the metrics
    are reduced across processes and logged as val/*.
    """

    def __init__(self, split: Split, feats: EventFeatures, cfg: Config):
        super().__init__(ByFeature(cfg.rank.by))  # until the first validation fits the configured ranker
        self.split, self.feats, self.cfg = split, feats, cfg
        self.best = float("-inf")
        self.metrics = ListMetrics(cfg.eval.k, cfg.eval.cutoffs)
        self.decoded = 0
        """Validation users this process decoded in the last epoch."""
        self.choice: dict = {}
        """The best epoch's ranking stage: which ranker ships and the cross-fitted scores it was chosen on."""
        self._parts: list[tuple[np.ndarray, Candidates]] = []

    @cached_property
    def shard(self) -> Dataset:
        """The history of the validation users only (at most split.max_users)."""
        return self.split.history.shard(self.split.users)

    @cached_property
    def decoder(self) -> Decoder:
        """The evidence of the validation users only, the log-wide tables of the whole history; built on first use
        (a refit on the whole log never validates)."""
        return make_decoder(self.shard, self.feats, self.cfg, LogTables.build(self.split.history, self.cfg.rank))

    def state_dict(self) -> dict:
        return {"best": self.best, "choice": self.choice}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best, self.choice = state_dict["best"], state_dict.get("choice", {})

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._parts = []

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: States,
                                batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        if trainer.sanity_checking:  # a few batches to check the loop runs: nothing to rank
            return
        users = batch["user"].cpu().numpy()
        self._parts.append((users, self.decoder.candidates_from(self.decoder.scores(pl_module.net, users, outputs),
                                                                users)))

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        mine = np.concatenate([u for u, _ in self._parts]) if self._parts else np.zeros(0, np.int64)
        self.decoded = len(mine)
        users, c = self.gathered(trainer)
        self._parts = []
        if not len(users):
            return
        truth, k, rank = self.split.truth, self.cfg.eval.k, self.cfg.rank
        gain = truth.lookup(users, c.items)
        recs = crossfit(c, gain, rank, k)
        single = single_source(rank)
        fallback = top_k(c, single.score(c), k)[0]
        scores = {"fitted": competition_score(recs, users, truth), "single": competition_score(fallback, users, truth)}
        use_single = rank.fallback and scores["single"] > scores["fitted"]  # on every user: the same on every process
        recs = fallback if use_single else recs
        model_only = top_k(c, ByFeature("model_logp").score(c), k)[0]  # the network's own lists
        own = np.isin(users, mine)
        hist = self.shard.events  # the validation users' plays, not the whole history's (all the lists read)
        self.metrics.to(pl_module.device)
        self.metrics.update(recs[own], users[own], truth, (hist["user"].to_numpy(), hist["item"].to_numpy()),
                            model_only[own])
        values = self.metrics.compute()  # reduced across processes: the same on every one
        if values["score"] > self.best:
            self.best = values["score"]
            self.ranker = single if use_single else fit(c, gain, rank)
            self.choice = {"ranker": f"{single.feature} (the best single source)" if use_single else rank.model,
                           "val_score_fitted": scores["fitted"], f"val_score_{single.feature}": scores["single"]}
        pl_module.log_dict({f"val/{name}": v for name, v in values.items()}, sync_dist=False)
        pl_module.log(f"val/score_{single.feature}", scores["single"], sync_dist=False)

    def gathered(self, trainer: pl.Trainer) -> tuple[np.ndarray, Candidates]:
        """Every process's validation users and candidates, in the split's order of users."""
        parts = self._parts
        if trainer.world_size > 1:
            every: list = [None] * trainer.world_size
            torch.distributed.all_gather_object(every, parts)
            parts = [p for process in every for p in process]
        if not parts:
            return np.zeros(0, np.int64), Candidates.concat([])
        users = np.concatenate([u for u, _ in parts])
        order = pd.Index(users).get_indexer(self.split.users)
        if len(users) != len(self.split.users) or (order < 0).any():
            raise RuntimeError(f"validation decoded {len(users):,} users of the split's {len(self.split.users):,}")
        c = Candidates.concat([c for _, c in parts])
        return (users, c) if np.array_equal(order, np.arange(len(order))) else (users[order], c.rows(order))
