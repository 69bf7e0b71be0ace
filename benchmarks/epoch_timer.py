"""The epoch timer both sides of vs_rectools.py use; imports only Lightning, so it also runs in RecTools' venv."""

from __future__ import annotations

import time

import pytorch_lightning as pl


class EpochTimer(pl.Callback):
    """Wall time from the first training epoch's start to the last one's end, and the epoch count."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.end: float | None = None
        self.epochs = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self.start is None:
            self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.end = time.perf_counter()
        self.epochs += 1
