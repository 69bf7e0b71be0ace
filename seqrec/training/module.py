"""LightningModule: listen-weighted next-track training, validated with the contest metric on decoded lists; the
ranking stage is fitted on each validation and saved with the weights."""

from __future__ import annotations

import math
import time
from dataclasses import asdict

import numpy as np
import pytorch_lightning as pl
import torch

from seqrec import PAD, metrics
from seqrec.config import DecodeConfig, ModelConfig, RankConfig, TrainConfig
from seqrec.inference.decode import crossfit, fit_on
from seqrec.models.features import INPUT
from seqrec.models.ranker import Blend, Candidates, load_ranker, top_k
from seqrec.models.sasrec import SASRec
from seqrec.training.losses import sampled_ce, weighted_ce


class SeqRecModule(pl.LightningModule):
    """Wraps SASRec and its ranking stage; hyper-parameters are plain dicts so checkpoints load with
    weights_only=True, and the ranking stage fitted on validation is saved with the weights."""

    def __init__(self, model: dict, train: dict, decode: dict, n_items: int, k: int = 50, catalog: str | None = None,
                 rank: dict | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.model_cfg, self.train_cfg = ModelConfig(**model), TrainConfig(**train)
        self.decode_cfg, self.rank_cfg, self.k = DecodeConfig(**decode), RankConfig(**(rank or {})), k
        self.net = SASRec(self.model_cfg, n_items)
        self.ranker = Blend.by("model_logp")  # until the first validation fits the real one
        # Cross-fitting scores every epoch; the ranker on the whole window is fitted only for an epoch that beats
        # the best so far, the one best.ckpt keeps (last.ckpt, for resuming, may carry an earlier epoch's).
        self._best_score = float("-inf")
        self._val: list = []
        self._t_batch = None

    @classmethod
    def create(cls, model: ModelConfig, train: TrainConfig, decode: DecodeConfig, n_items: int, k: int,
               catalog: str | None = None, rank: RankConfig | None = None) -> SeqRecModule:
        """`catalog`: Dataset.catalog_id of the data trained on, kept so a run refuses another catalog."""
        return cls(asdict(model), asdict(train), asdict(decode), n_items, k, catalog, asdict(rank or RankConfig()))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        item = batch["item"]
        h = self.net(item, **{name: batch[name] for name in INPUT})  # (B, T, D)
        rep = self.net.repeat_bias(item, batch["frac"])
        cfg = self.train_cfg
        target, w = batch["target"].flatten(), batch["weight"].flatten()  # (B*T,)
        if cfg.loss == "sampled":
            neg = torch.multinomial(self.neg_q, cfg.n_negatives, replacement=True)
            loss = sampled_ce(self.net, h, item, target, w, neg, self.neg_q.log(), rep)
        else:
            loss = weighted_ce(self.net, h.flatten(0, 1), target, w, cfg.loss_chunk, rep)
        bs = batch["item"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        now = time.perf_counter()
        if self._t_batch is not None:
            self.log("train/windows_per_s", bs / (now - self._t_batch), batch_size=bs)
        self._t_batch = now
        return loss

    def configure_model(self) -> None:
        if self.train_cfg.compile:
            self.net.compile()  # in place: parameter names, and so checkpoints, stay those of the plain network

    def on_fit_start(self) -> None:
        if self.train_cfg.loss == "sampled":
            counts = torch.as_tensor(self.trainer.datamodule.item_counts, dtype=torch.float64, device=self.device)
            q = (counts + 1) ** self.train_cfg.neg_alpha
            q[PAD] = 0.0  # never sample padding
            self.neg_q = (q / q.sum()).float()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["ranker"] = self.ranker.state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.ranker = load_ranker(checkpoint["ranker"])

    def on_validation_epoch_start(self) -> None:
        self._val = []

    def validation_step(self, users: torch.Tensor, batch_idx: int) -> None:
        u = users.cpu().numpy()
        self._val.append((u, self.trainer.datamodule.decoder.candidates(self.net, u)))

    def on_validation_epoch_end(self) -> None:
        if not self._val or self.trainer.sanity_checking:  # a few batches of users: nothing to fit or keep
            self._val = []
            return
        dm = self.trainer.datamodule
        users = np.concatenate([u for u, _ in self._val])
        c = Candidates.concat([c for _, c in self._val], self._val[0][1].names)
        self._val = []
        truth = dm.split.truth
        gain = truth.lookup(users, c.items)
        recs = crossfit(c, gain, self.decode_cfg, self.rank_cfg, self.k)
        score = metrics.competition_score(recs, users, truth)
        if score > self._best_score:  # the epoch best.ckpt will keep: its ranker, fitted on the whole window
            self._best_score = score
            self.ranker = fit_on(c, gain, self.decode_cfg, self.rank_cfg)
        hist = dm.split.history.events
        k = self.k
        self.log_dict({
            "val/score": score,
            f"val/ndcg@{k}": metrics.ndcg_at_k(recs, users, truth),
            f"val/recall@{k}": metrics.recall_at_k(recs, users, truth),
            "val/repeat": metrics.repeat_share(recs, users, hist["user"].to_numpy(), hist["item"].to_numpy()),
            "val/score_model_only": metrics.competition_score(top_k(c, Blend.by("model_logp").score(c), k)[0],
                                                              users, truth),
        }, sync_dist=True)  # every process decodes all validation users: the mean of equal values
        self._t_batch = None

    def configure_optimizers(self):
        cfg = self.train_cfg
        # weight decay on the weight matrices of Linear layers only: never on embeddings, norms or biases
        decay = {id(m.weight) for m in self.net.modules() if isinstance(m, torch.nn.Linear)}
        params = list(self.net.parameters())
        opt = torch.optim.AdamW([{"params": [p for p in params if id(p) in decay], "weight_decay": cfg.weight_decay},
                                 {"params": [p for p in params if id(p) not in decay], "weight_decay": 0.0}],
                                lr=cfg.lr, betas=(0.9, 0.98))
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warm = min(cfg.warmup_steps, total // 2)

        def schedule(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

