"""Train SASRec on the temporal split's history, validating with the contest metric on decoded lists."""

from __future__ import annotations

import gc
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger

from seqrec import report, runfolder
from seqrec.cli import Command
from seqrec.config import Config, load_config, parse_devices, to_yaml
from seqrec.data.dataset import load_dataset
from seqrec.data.split import Split
from seqrec.errors import UserError
from seqrec.io import write_atomic
from seqrec.metrics import build_truth
from seqrec.storage import RunMirror, localised
from seqrec.training.datamodule import SeqDataModule
from seqrec.training.module import SeqRecModule
from seqrec.training.ranking_stage import CarriesRanker, RankingStage
from seqrec.training.store import EventStore, event_store

COMMAND = Command(
    usage="python train.py [preset=NAME] [key=value ...]",
    summary="Train the SASRec network and its ranking stage on the temporal split of a hear-me folder, validating "
            "with the contest metric;\nthen refit the network on the whole log. Writes RUN/checkpoints, RUN/tb "
            "(TensorBoard) and RUN/reports.",
    keys=("data.dir", "run.dir", "preset", "train.max_epochs", "train.accelerator", "train.devices",
          "train.precision", "train.batch_size", "train.lr", "train.loss", "train.objective", "train.refit",
          "model.d_model", "rank.model", "ckpt", "seed"),
    examples=("python train.py preset=demo", "python train.py data.dir=data/real run.dir=runs/real preset=gpu",
              "python train.py run.dir=runs/real ckpt=last   # resume"),
)


def main(argv: list[str]) -> None:
    with localised(load_config(argv)) as (cfg, mirror):
        train(cfg, [] if mirror is None else [PushRun(mirror)])


class PushRun(Callback):
    """Push a remote run's local mirror after each validation (checkpoints, reports, TensorBoard logs)."""

    def __init__(self, mirror: RunMirror):
        self.mirror = mirror

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero and not trainer.sanity_checking:
            self.mirror.push()


class EpochSeed(Callback):
    """Every epoch starts from random states fixed by (seed, epoch, process): a run resumed from an epoch's
    checkpoint draws the same negatives and dropout as a run that was never stopped (the window order and window
    targets depend on seed and epoch by construction)."""

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl.seed_everything(self.seed + 1_000 * trainer.current_epoch + trainer.global_rank, workers=True,
                           verbose=False)


def build_trainer(cfg: Config, refit_epochs: int | None = None, extra: Sequence[Callback] = ()) -> pl.Trainer:
    """Lightning trainer: bf16-mixed on GPU, fp32 on CPU; best-by-val/score and last checkpoints. With
    `refit_epochs`: that many epochs on the whole log, no validation and no checkpoint callbacks."""
    run = Path(cfg.run.dir)
    t = cfg.train
    precision = t.precision or ("bf16-mixed" if torch.cuda.is_available() and t.accelerator != "cpu" else "32-true")
    every_run = [LearningRateMonitor(logging_interval="step"), EpochSeed(cfg.seed)]
    callbacks = [
        ModelCheckpoint(dirpath=cfg.run.checkpoints, filename="best", monitor="val/score", mode="max",
                        save_top_k=1, auto_insert_metric_name=False, enable_version_counter=False),
        # the newest state, every epoch, for ckpt=last (save_last only follows saves of the best one)
        ModelCheckpoint(dirpath=cfg.run.checkpoints, filename="last", monitor="step", mode="max", save_top_k=1,
                        enable_version_counter=False),
        EarlyStopping(monitor="val/score", mode="max", patience=t.patience),
        *every_run,
        *extra,
    ]
    refit = {} if refit_epochs is None else {"limit_val_batches": 0, "num_sanity_val_steps": 0,
                                             "enable_checkpointing": False}
    return pl.Trainer(
        accelerator=t.accelerator,
        devices=parse_devices(t.devices),
        num_nodes=t.num_nodes,
        precision=precision,
        max_epochs=t.max_epochs if refit_epochs is None else refit_epochs,
        **refit,
        gradient_clip_val=t.grad_clip,
        limit_train_batches=int(t.limit_train_batches) if t.limit_train_batches > 1 else t.limit_train_batches,
        log_every_n_steps=t.log_every_n_steps,
        logger=TensorBoardLogger(str(run), name="tb", version="" if refit_epochs is None else "refit"),
        callbacks=callbacks if refit_epochs is None else [*every_run, *extra],
        enable_progress_bar=t.progress_bar,
        enable_model_summary=False,
        # the data module shards its batched window sampler itself; Lightning's replacement would break it
        use_distributed_sampler=False,
    )


def train(cfg: Config, callbacks: Sequence[Callback] = ()) -> Path:
    """Fit and return the path of the best checkpoint; `callbacks` join the trainer's own. The run folder is
    locked and cleared of an earlier training's artifacts first, and marked complete at the end
    (seqrec.runfolder)."""
    pl.seed_everything(cfg.seed, workers=True)
    ckpt = resume_from(cfg)
    with runfolder.training(cfg.run, resume=ckpt is not None):
        ds = report.ingest(cfg)
        split = report.split(ds, cfg)
        print(f"training on history before {split.history.end} ({len(split.history.events):,} events), "
              f"validating on {len(split.users):,} users of the next {cfg.split.window_days} days")
        with report.step_report(cfg, "train") as rep:
            store = event_store(ds, cfg)
            dm = SeqDataModule(split, cfg, store)
            config_yaml = to_yaml(cfg)
            write_atomic(Path(cfg.run.dir) / "config.yaml", config_yaml)
            ds.item_map.save(cfg.run.item_ids)  # the run's ids, known without cleaning the log again
            ds.user_map.save(cfg.run.user_ids)
            module = SeqRecModule.create(cfg.model, cfg.train, ds.n_items, ds.catalog_id, dm.side_tables(),
                                         runfolder.config_digest(config_yaml))
            del ds  # training reads the split's history; the refit reads the whole log again, never both at once
            stage = RankingStage(split, dm.feats, cfg)
            trainer = build_trainer(cfg, extra=[stage, *callbacks])
            trainer.fit(module, dm, ckpt_path=ckpt)
            best = cfg.run.best_ckpt
            score = trainer.checkpoint_callback.best_model_score
            score = float(score) if score is not None else None
            rep["metrics"] = {k: float(v) for k, v in trainer.callback_metrics.items()}  # the last epoch's
            rep["summary"] = {"epochs": trainer.current_epoch, "steps": trainer.global_step,
                              "windows": len(dm.train_set),
                              "parameters": sum(p.numel() for p in module.parameters()),
                              "resumed_from": str(ckpt) if ckpt else None, "best_val_score": score,
                              "best_checkpoint": str(best), "ranking_stage": stage.choice}
        print(f"best checkpoint {best} val/score {score if score is None else round(score, 4)}"
              + (f", ranked by {stage.choice['ranker']}" if stage.choice else ""))
        del split, dm, module, stage, trainer  # the split's history, windows and validation candidates: the refit
        gc.collect()  # holds the whole log's instead, not both
        if cfg.train.refit and best.exists():
            refit(cfg, best, store)
        if best.exists():
            runfolder.set_state(cfg.run, "complete")
    return best


def resume_from(cfg: Config) -> Path | None:
    """The checkpoint `ckpt=` names (`last`, `best` or a path), checked to load before any training starts."""
    if not cfg.ckpt:
        return None
    ckpt = cfg.run.named_ckpts.get(cfg.ckpt, Path(cfg.ckpt))
    if not ckpt.exists():
        raise UserError(f"ckpt={cfg.ckpt}: {ckpt} does not exist; train once without ckpt= first")
    try:
        torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError... for a damaged file
        raise UserError(f"{ckpt}: cannot be read ({type(err).__name__}), probably cut short by a crash; resume "
                        f"from another checkpoint (ckpt=best) or train afresh without ckpt=") from err
    return ckpt


def refit(cfg: Config, best: Path, store: EventStore | None = None) -> Path:
    """The network trained again on the whole log (read from the cleaned cache; its arrays from `store` when given)
    for best.ckpt's epoch count, saved with best.ckpt's ranking stage as refit.ckpt (what the submission is decoded
    with)."""
    ds = load_dataset(cfg.data, cfg.clean)
    state = torch.load(best, map_location="cpu", weights_only=True)
    epochs = int(state["epoch"]) + 1
    pl.seed_everything(cfg.seed, workers=True)
    with report.step_report(cfg, "refit") as rep:
        print(f"refit: {epochs} epoch(s) on the whole log ({len(ds.events):,} events)")
        whole = Split(ds, np.zeros(0, np.int64), build_truth(*(np.zeros(0),) * 4), ds.events.iloc[:0])
        dm = SeqDataModule(whole, cfg, store)
        module = SeqRecModule.create(cfg.model, cfg.train, ds.n_items, ds.catalog_id, dm.side_tables(),
                                     runfolder.config_digest(to_yaml(cfg)))
        trainer = build_trainer(cfg, refit_epochs=epochs, extra=[CarriesRanker.of_checkpoint(state)])
        trainer.fit(module, dm)
        tmp = cfg.run.refit_ckpt.with_name(".refit.ckpt.partial")
        trainer.save_checkpoint(tmp)  # every process calls it; the strategy writes on the first only
        if trainer.is_global_zero:
            os.replace(tmp, cfg.run.refit_ckpt)  # atomic: a reader never sees half a checkpoint
        rep["summary"] = {"epochs": epochs, "steps": trainer.global_step, "windows": len(dm.train_set),
                          "checkpoint": str(cfg.run.refit_ckpt)}
    print(f"refit checkpoint {cfg.run.refit_ckpt}")
    return cfg.run.refit_ckpt
