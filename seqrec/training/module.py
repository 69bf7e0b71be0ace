"""LightningModule: listen-weighted next-track training, validated with the contest metric on decoded lists."""

from __future__ import annotations

import math
import time
from dataclasses import asdict

import numpy as np
import pytorch_lightning as pl
import torch

from seqrec import metrics
from seqrec.config import DecodeConfig, ModelConfig, TrainConfig
from seqrec.models.sasrec import SASRec
from seqrec.training.losses import sampled_ce, weighted_ce


class SeqRecModule(pl.LightningModule):
    """Wraps SASRec; hyper-parameters are plain dicts so checkpoints load with weights_only=True."""

    def __init__(self, model: dict, train: dict, decode: dict, n_items: int, k: int = 50):
        super().__init__()
        self.save_hyperparameters()
        self.model_cfg, self.train_cfg = ModelConfig(**model), TrainConfig(**train)
        self.decode_cfg, self.k = DecodeConfig(**decode), k
        self.net = SASRec(self.model_cfg, n_items)
        # chosen on validation, saved with the weights so predict.py decodes the same way
        self.register_buffer("relisten_weight", torch.tensor(0.0))
        self._val_users: list[np.ndarray] = []
        self._val_recs: dict[float, list[np.ndarray]] = {}
        self._t_batch = None

    @classmethod
    def create(cls, model: ModelConfig, train: TrainConfig, decode: DecodeConfig, n_items: int, k: int):
        return cls(asdict(model), asdict(train), asdict(decode), n_items, k)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        h = self.net(batch["item"], batch["frac"], batch["gap"], batch["session"])  # (B, T, D)
        h, target, w = h.flatten(0, 1), batch["target"].flatten(), batch["weight"].flatten()  # (B*T, ...)
        cfg = self.train_cfg
        if cfg.loss == "sampled":
            neg = torch.multinomial(self.neg_q, cfg.n_negatives, replacement=True)
            loss = sampled_ce(h, self.net.item_weights(), target, w, neg, self.neg_q.log())
        else:
            loss = weighted_ce(h, self.net.item_weights(), target, w, cfg.loss_chunk)
        bs = batch["item"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        now = time.perf_counter()
        if self._t_batch is not None:
            self.log("train/windows_per_s", bs / (now - self._t_batch), batch_size=bs)
        self._t_batch = now
        return loss

    def on_fit_start(self) -> None:
        if self.train_cfg.loss == "sampled":
            counts = torch.as_tensor(self.trainer.datamodule.item_counts, dtype=torch.float64, device=self.device)
            q = (counts + 1) ** self.train_cfg.neg_alpha
            q[0] = 0.0  # never sample PAD
            self.neg_q = (q / q.sum()).float()

    def on_validation_epoch_start(self) -> None:
        self._val_users, self._val_recs = [], {w: [] for w in self.decode_cfg.relisten_weights}

    def validation_step(self, users: torch.Tensor, batch_idx: int) -> None:
        u = users.cpu().numpy()
        recs = self.trainer.datamodule.decoder.topk(self.net, u, self.decode_cfg.relisten_weights, self.k)
        self._val_users.append(u)
        for w, r in recs.items():
            self._val_recs[w].append(r)

    def on_validation_epoch_end(self) -> None:
        if not self._val_users:
            return
        truth = self.trainer.datamodule.split.truth
        users = np.concatenate(self._val_users)
        scores = {w: metrics.competition_score(np.concatenate(r), users, truth) for w, r in self._val_recs.items()}
        best = max(scores, key=scores.get)
        recs = np.concatenate(self._val_recs[best])
        self.relisten_weight.fill_(best)
        hist = self.trainer.datamodule.split.history.events
        self.log_dict({
            "val/score": scores[best],
            "val/ndcg@50": metrics.ndcg_at_k(recs, users, truth),
            "val/recall@50": metrics.recall_at_k(recs, users, truth),
            "val/repeat": metrics.repeat_share(recs, users, hist["user"].to_numpy(), hist["item"].to_numpy()),
            "val/relisten_weight": float(best),
            "val/score_model_only": scores.get(0.0, float("nan")),
        })
        self._t_batch = None

    def configure_optimizers(self):
        cfg = self.train_cfg
        decay = [p for n, p in self.named_parameters() if p.ndim >= 2 and "emb" not in n]
        rest = [p for n, p in self.named_parameters() if not (p.ndim >= 2 and "emb" not in n)]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                 {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98))
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warm = min(cfg.warmup_steps, total // 2)

        def schedule(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
