"""Fit on the whole log, write the submission for test.csv, print the score when the window is known."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from seqrec.baselines import make_baseline
from seqrec.config import Config
from seqrec.data.dataset import Dataset, load_dataset
from seqrec.data.sequences import build_sequences
from seqrec.data.split import make_split
from seqrec.evaluate import list_metrics
from seqrec.inference.decode import make_decoder
from seqrec.metrics import repeat_share
from seqrec.inference.submission import write_submission
from seqrec.train import checkpoint_dir
from seqrec.training.batches import event_features
from seqrec.training.module import SeqRecModule


def load_module(run_dir: str | Path) -> SeqRecModule:
    """The best checkpoint of a run, loaded without unpickling arbitrary objects."""
    path = checkpoint_dir(run_dir) / "best.ckpt"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: train first with `python train.py run.dir={run_dir}`")
    state = torch.load(path, map_location="cpu", weights_only=True)
    module = SeqRecModule(**state["hyper_parameters"])
    module.load_state_dict(state["state_dict"])
    return module


def predict_sasrec(cfg: Config, ds: Dataset) -> np.ndarray:
    """Encode every test user's whole history and decode top-k with the blend weight chosen on validation."""
    module = load_module(cfg.run.dir)
    if module.net.n_items != ds.n_items:
        raise ValueError(f"{cfg.run.dir} was trained on {module.net.n_items:,} items but {cfg.data.dir} has "
                         f"{ds.n_items:,}: predict with the data set the run was trained on")
    device = "cuda" if torch.cuda.is_available() and cfg.train.accelerator != "cpu" else "cpu"
    net = module.net.to(device)
    seqs = build_sequences(ds.events, ds.n_users, cfg.clean.session_gap_min)
    decoder = make_decoder(ds, event_features(seqs, cfg.train.weight_mode), cfg)
    w = float(module.relisten_weight)
    recs = decoder.topk(net, ds.test_users, [w], cfg.eval.k)[w]
    rep = repeat_share(recs, ds.test_users, ds.events["user"].to_numpy(), ds.events["item"].to_numpy())
    print(f"sasrec: re-listen blend weight {w:g}; lists are {rep:.0%} repeats, {1 - rep:.0%} new tracks")
    return recs


def predict(cfg: Config) -> dict[str, float] | None:
    """Write cfg.submission; returns the offline metrics when future.csv is present, else None."""
    ds = load_dataset(cfg.data, cfg.clean)
    t0 = time.perf_counter()
    if cfg.model.name == "sasrec":
        recs = predict_sasrec(cfg, ds)
    else:
        recs, _ = make_baseline(cfg.model.name, cfg.baselines, cfg.seed).fit(ds).recommend(ds.test_users, cfg.eval.k)
    write_submission(cfg.submission, ds, ds.test_users, recs, cfg.eval.k)
    print(f"{cfg.model.name}: wrote {cfg.submission} ({len(ds.test_users):,} users x {cfg.eval.k}) "
          f"in {time.perf_counter() - t0:.1f}s")
    if ds.future is None:
        return None
    split = make_split(ds, dataclasses.replace(cfg.split, mode="future"), cfg.seed)
    keep = np.isin(ds.test_users, split.users)
    scores = list_metrics(recs[keep], split)
    print(f"future.csv score {scores['score']:.4f}  ndcg@50 {scores['ndcg@50']:.4f}  "
          f"repeat {scores['repeat']:.2f}  ({len(split.users):,} test users with history)")
    return scores
