"""Ablation of the SASRec pipeline on one data set: target weights, re-listen candidates, event inputs.

python benchmarks/ablation.py data.dir=data/synthetic/demo [preset=demo] [key=value ...]

Each row trains the `demo` preset with one change and reports the cross-fitted validation score (temporal
split), the future.csv metrics of predict.py (trained up to the temporal cut, encoding the whole log), the
training time and predict.py's time. Baseline rows (relisten, transitions) are fitted and scored by
predict.py the same way, for reference: they have no training, only predict.py's fit-and-recommend time.
Every run, baseline or not, writes into its own temporary folder, never into the preset's run.dir.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from seqrec.config import load_config
from seqrec.predict import predict
from seqrec.train import train

ROWS = {
    "sasrec (quarter weights)": [],
    "weights: none": ["train.weight_mode=none"],
    "weights: binary": ["train.weight_mode=binary"],
    "weights: raw": ["train.weight_mode=raw"],
    "no re-listen candidates (model only)": ["rank.n_history_candidates=0", "rank.n_favourites_candidates=0",
                                             "rank.n_next_candidates=0", "rank.model=by_feature"],
    "ranking stage without the model's score": ["rank.drop_features=[model_logp]"],
    "no fraction input": ["model.use_frac=false"],
    "no gap input": ["model.use_gap=false"],
    "no session input": ["model.use_session=false"],
    "no learned re-listen bias": ["model.use_repeat=false"],
}


def main(argv: list[str]) -> None:
    base = [a for a in argv if "=" in a]
    if not any(a.startswith("preset=") for a in base):
        base.append("preset=demo")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("relisten", "transitions"):
            run = Path(tmp) / name
            cfg = load_config([*base, f"model={name}", f"run.dir={run}", f"submission={run}/submission.csv"])
            t0 = time.perf_counter()
            future = predict(cfg)
            results[name] = {"val/score": float("nan"), **_pick(future), "train_s": float("nan"),
                             "predict_s": time.perf_counter() - t0}
        for name, extra in ROWS.items():
            run = Path(tmp) / f"run{len(results)}"
            cfg = load_config([*base, *extra, f"run.dir={run}", f"submission={run}/submission.csv"])
            t0 = time.perf_counter()
            train(cfg)
            train_s = time.perf_counter() - t0
            state = torch.load(cfg.run.best_ckpt, map_location="cpu", weights_only=True)
            val = _best_score(state)
            t0 = time.perf_counter()
            future = predict(load_config([f"run.dir={run}", f"submission={run}/submission.csv"]))  # as trained
            results[name] = {"val/score": val, **_pick(future), "train_s": train_s,
                             "predict_s": time.perf_counter() - t0}
            print(json.dumps({name: results[name]}), flush=True)
    print("| run | val/score | future score | future ndcg@50 | future repeat | train s | predict s |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        train_s = "–" if r["train_s"] != r["train_s"] else f"{r['train_s']:.0f}"  # NaN: no training
        print(f"| {name} | {r['val/score']:.4f} | {r['score']:.4f} | {r['ndcg@50']:.4f} | {r['repeat']:.2f} "
              f"| {train_s} | {r['predict_s']:.0f} |")


def _pick(metrics: dict | None) -> dict:
    if metrics is None:
        raise SystemExit("the ablation needs future.csv in data.dir (a synthetic data set)")
    return {k: metrics[k] for k in ("score", "ndcg@50", "repeat")}


def _best_score(state: dict) -> float:
    for key, cb in state.get("callbacks", {}).items():
        if "val/score" in key and cb.get("best_model_score") is not None:
            return float(cb["best_model_score"])
    return float("nan")


if __name__ == "__main__":
    main(sys.argv[1:])
