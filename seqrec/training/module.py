"""LightningModule: listen-weighted next-track training, validated with the contest metric on decoded lists."""

from __future__ import annotations

import math
import time
from dataclasses import asdict

import numpy as np
import pytorch_lightning as pl
import torch

from seqrec import PAD, metrics
from seqrec.config import DecodeConfig, ModelConfig, TrainConfig
from seqrec.inference.blend import fit_blend, logp_only, rank
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
        # the blend fitted on validation, saved with the weights so predict.py decodes the same way
        self.register_buffer("blend", torch.from_numpy(logp_only(self.decode_cfg.blend_hidden)))
        self._val: list = []
        self._t_batch = None

    @classmethod
    def create(cls, model: ModelConfig, train: TrainConfig, decode: DecodeConfig, n_items: int, k: int):
        return cls(asdict(model), asdict(train), asdict(decode), n_items, k)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        item = batch["item"]
        h = self.net(item, batch["frac"], batch["gap"], batch["session"])  # (B, T, D)
        rep = self.net.repeat_bias(item, batch["frac"])
        emb = self.net.item_weights()
        cfg = self.train_cfg
        target, w = batch["target"].flatten(), batch["weight"].flatten()  # (B*T,)
        if cfg.loss == "sampled":
            neg = torch.multinomial(self.neg_q, cfg.n_negatives, replacement=True)
            dot = torch.bmm(h, emb[item].transpose(1, 2)).flatten(0, 1) if rep is not None else None  # (B*T, T)
            loss = sampled_ce(h.flatten(0, 1), emb, target, w, neg, self.neg_q.log(), rep, dot)
        else:
            loss = weighted_ce(h.flatten(0, 1), emb, target, w, cfg.loss_chunk, rep)
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

    def on_validation_epoch_start(self) -> None:
        self._val = []

    def validation_step(self, users: torch.Tensor, batch_idx: int) -> None:
        u = users.cpu().numpy()
        self._val.append((u, self.trainer.datamodule.decoder.candidates(self.net, u)))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        dm = self.trainer.datamodule
        users = np.concatenate([u for u, _ in self._val])
        items, mask, x = (np.concatenate([getattr(c, f) for _, c in self._val]) for f in ("items", "mask", "x"))
        self._val = []
        truth = dm.split.truth
        gain = truth.lookup(users, items)
        d = self.decode_cfg
        only_model = logp_only(d.blend_hidden)
        if d.use_history:
            # cross-fitted: each half of the users is ranked by a blend fitted on the other half
            recs = np.empty((len(users), self.k), dtype=np.int64)
            half = np.arange(len(users)) % 2 == 0
            for part in (half, ~half):
                p = fit_blend(x[~part], mask[~part], gain[~part], d)
                recs[part] = rank(items[part], mask[part], x[part], p, d.blend_hidden, self.k)
            p = fit_blend(x, mask, gain, d)
        else:
            p = only_model
            recs = rank(items, mask, x, p, d.blend_hidden, self.k)
        self.blend.copy_(torch.from_numpy(p))
        hist = dm.split.history.events
        self.log_dict({
            "val/score": metrics.competition_score(recs, users, truth),
            "val/ndcg@50": metrics.ndcg_at_k(recs, users, truth),
            "val/recall@50": metrics.recall_at_k(recs, users, truth),
            "val/repeat": metrics.repeat_share(recs, users, hist["user"].to_numpy(), hist["item"].to_numpy()),
            "val/score_model_only": metrics.competition_score(
                rank(items, mask, x, only_model, d.blend_hidden, self.k), users, truth),
        }, sync_dist=True)  # every process decodes all validation users: the mean of equal values
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
