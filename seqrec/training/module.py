"""LightningModule: listen-weighted training of SASRec under its objective (next track, first plays or both). Its
validation step encodes the validation users' histories; decoding, ranking and scoring their lists is the
RankingStage callback's job (seqrec.training.ranking_stage)."""

from __future__ import annotations

import math
import time
from dataclasses import asdict

import numpy as np
import pytorch_lightning as pl
import torch

from seqrec import PAD
from seqrec.config import OBJECTIVES, ModelConfig, TrainConfig
from seqrec.models.sasrec import SASRec, States
from seqrec.models.side import side_shapes
from seqrec.training.losses import sampled_ce, weighted_ce, window_items


class SeqRecModule(pl.LightningModule):
    """Trains SASRec; hyper-parameters are plain dicts so checkpoints load with weights_only=True."""

    def __init__(self, model: dict, train: dict, n_items: int, catalog: str | None = None,
                 side: dict[str, list[int]] | None = None, config_digest: str | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.model_cfg, self.train_cfg = ModelConfig(**model), TrainConfig(**train)
        self.net = SASRec(self.model_cfg, n_items, side)
        self._t_batch = None

    @classmethod
    def create(cls, model: ModelConfig, train: TrainConfig, n_items: int, catalog: str | None = None,
               side: dict[str, np.ndarray] | None = None, config_digest: str | None = None) -> SeqRecModule:
        """`catalog`: Dataset.catalog_id of the data trained on, kept so a run refuses another catalog. `side`: the
        catalog's side tables (seqrec.models.side.side_tables), read with `model.use_side`. `config_digest`: the
        run's config.yaml (seqrec.runfolder.config_digest), kept so a checkpoint is only read with its config."""
        side = {name: side[name] for name in model.side} if model.use_side and side else None
        module = cls(asdict(model), asdict(train), n_items, catalog, side_shapes(side) if side else None,
                     config_digest)
        if side:
            module.net.set_side(side)
        return module

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        states = self.net.encode(batch)  # (B, T, D) with each position's re-listen window
        cfg = self.train_cfg
        objective = OBJECTIVES[cfg.objective]
        item, target, w = batch["item"], batch["target"].flatten(), batch["weight"].flatten()  # (B*T,)
        neg = torch.multinomial(self.neg_q, cfg.n_negatives, replacement=True) if cfg.loss == "sampled" else None
        parts = []  # every objective trains at least one of the two
        if objective.next:
            parts.append(self.loss(states, item, target, w, neg))
        if objective.discover:  # first plays only, each weighted by its listen
            parts.append(self.loss(states, item, batch["discover_target"].flatten(),
                                   batch["discover_weight"].flatten(), neg, explore=True))
        loss = sum(parts[1:], parts[0])
        bs = batch["item"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        now = time.perf_counter()
        if self._t_batch is not None:
            self.log("train/windows_per_s", bs / (now - self._t_batch), batch_size=bs)
        self._t_batch = now
        return loss

    def loss(self, states: States, item: torch.Tensor, target: torch.Tensor, w: torch.Tensor,
             negatives: torch.Tensor | None, explore: bool = False) -> torch.Tensor:
        """The configured loss (`train.loss`) of (B, T) windows `item`, their states and flattened targets; with
        `explore`, each position's seen tracks leave its softmax. Under DDP the weighted mean divides by the ranks'
        mean weight sum, not its own: the ranks' averaged gradients are then those of the whole batch in one
        process, whatever share of the weight each rank's windows carry."""
        norm = None
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            norm = w.sum().detach().clone()
            torch.distributed.all_reduce(norm)
            norm = norm / torch.distributed.get_world_size()
        if self.train_cfg.loss == "sampled":
            return sampled_ce(self.net, states, item, target, w, negatives, self.neg_q.log(), explore=explore,
                              norm=norm)
        return weighted_ce(self.net, states.flatten(), target, w, self.train_cfg.loss_chunk,
                           exclude=window_items(item) if explore else None, norm=norm)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> States:
        """The states of the validation users after their last event (the callbacks decode them)."""
        return self.net.encode(batch, last_only=True)

    def on_validation_epoch_end(self) -> None:
        self._t_batch = None  # the next training step's rate must not count the validation

    def configure_model(self) -> None:
        if self.train_cfg.compile:
            self.net.compile()  # in place: parameter names, and so checkpoints, stay those of the plain network

    def on_fit_start(self) -> None:
        if self.train_cfg.loss == "sampled":
            counts = torch.as_tensor(self.trainer.datamodule.item_counts, dtype=torch.float64, device=self.device)
            q = (counts + 1) ** self.train_cfg.neg_alpha
            q[PAD] = 0.0  # never sample padding
            self.neg_q = (q / q.sum()).float()

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

