"""Recommend for test.csv from the whole log (a fitted baseline or a trained run), write the submission, score it
when the window is known."""

from __future__ import annotations

import dataclasses
import time

from seqrec.config import Config
from seqrec.data.dataset import load_dataset
from seqrec.data.split import make_split
from seqrec.evaluate import list_metrics
from seqrec.inference.recommend import recommend
from seqrec.inference.submission import write_submission


def predict(cfg: Config) -> dict[str, float] | None:
    """Write cfg.submission; returns the offline metrics when future.csv is present, else None."""
    ds = load_dataset(cfg.data, cfg.clean)
    t0 = time.perf_counter()
    recs = recommend(cfg.model.name, cfg, ds, ds.test_users)
    write_submission(cfg.submission, ds, ds.test_users, recs, cfg.eval.k)
    print(f"{cfg.model.name}: wrote {cfg.submission} ({len(ds.test_users):,} users x {cfg.eval.k}) "
          f"in {time.perf_counter() - t0:.1f}s")
    if ds.future is None:
        return None
    split = make_split(ds, dataclasses.replace(cfg.split, mode="future"), cfg.seed)
    row = {u: i for i, u in enumerate(ds.test_users.tolist())}
    scores = list_metrics(recs[[row[u] for u in split.users.tolist()]], split)  # split.users are test users
    print(f"future.csv score {scores['score']:.4f}  ndcg@50 {scores['ndcg@50']:.4f}  "
          f"repeat {scores['repeat']:.2f}  ({len(split.users):,} test users with history)")
    return scores
