"""One entry point for top-k lists from any model: a fitted baseline or a trained SASRec run."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from seqrec.baselines import make_baseline
from seqrec.config import Config, RunConfig, TrainConfig
from seqrec.data.dataset import Dataset
from seqrec.data.sequences import build_sequences
from seqrec.inference.decode import make_decoder
from seqrec.metrics import repeat_share
from seqrec.training.batches import event_features
from seqrec.training.module import SeqRecModule


def load_module(run: RunConfig) -> SeqRecModule:
    """The best checkpoint of a run, loaded without unpickling arbitrary objects."""
    path = run.best_ckpt
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: train first with `python train.py run.dir={run.dir}`")
    state = torch.load(path, map_location="cpu", weights_only=True)
    module = SeqRecModule(**state["hyper_parameters"])
    module.load_state_dict(state["state_dict"])
    return module


def inference_device(train: TrainConfig) -> str:
    """Where a trained network decodes: the GPU when there is one, unless training was pinned to the CPU."""
    return "cuda" if torch.cuda.is_available() and train.accelerator != "cpu" else "cpu"


def sasrec_topk(cfg: Config, ds: Dataset, users: np.ndarray, k: int | None = None) -> np.ndarray:
    """Encode each user's whole history in `ds` and decode top-k (k: cfg.eval.k) with the blend fitted on validation."""
    module = load_module(cfg.run)
    k = k or cfg.eval.k
    cfg = dataclasses.replace(cfg, decode=module.decode_cfg)  # decode exactly as the run validated
    if module.net.n_items != ds.n_items:
        raise ValueError(f"{cfg.run.dir} was trained on {module.net.n_items:,} items but {cfg.data.dir} has "
                         f"{ds.n_items:,}: predict with the data set the run was trained on")
    device = inference_device(cfg.train)
    seqs = build_sequences(ds.events, ds.n_users, cfg.clean.session_gap_min)
    decoder = make_decoder(ds, event_features(seqs, cfg.train.weight_mode), cfg)
    recs = decoder.topk(module.net.to(device), users, module.blend.numpy(), k)
    rep = repeat_share(recs, users, ds.events["user"].to_numpy(), ds.events["item"].to_numpy())
    print(f"sasrec: lists are {rep:.0%} repeats, {1 - rep:.0%} new tracks")
    return recs


def recommend(name: str, cfg: Config, ds: Dataset, users: np.ndarray, k: int | None = None) -> np.ndarray:
    """(n, k) lists (k: cfg.eval.k) for `users` from history `ds`: `sasrec` loads cfg.run, anything else fits a
    baseline."""
    k = k or cfg.eval.k
    if name == "sasrec":
        return sasrec_topk(cfg, ds, users, k)
    return make_baseline(name, cfg.baselines, cfg.seed).fit(ds).recommend(users, k)[0]
