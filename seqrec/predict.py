"""Recommend for test.csv from the whole log (a fitted baseline or a trained run), write the submission, score it
when the window is known."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from seqrec import report
from seqrec.cli import Command
from seqrec.config import Config, load_config
from seqrec.data.dataset import Dataset
from seqrec.data.split import make_split
from seqrec.errors import UserError
from seqrec.inference.lists import check_lists, lists_digest, write_lists
from seqrec.inference.rerank import rerank_dataset
from seqrec.inference.submission import write_submission
from seqrec.offline import list_metrics
from seqrec.predict_ddp import decode_ddp
from seqrec.run import Run, recommend
from seqrec.storage import localised

COMMAND = Command(
    usage="python predict.py [model=sasrec|NAME] [users=test|all lists=FOLDER] [key=value ...]",
    summary="Recommend 50 tracks for every user of test.csv from the whole log (a trained run, or a baseline "
            "fitted now),\nwrite the submission atomically and score it when future.csv is present.",
    keys=("data.dir", "run.dir", "model.name", "submission", "eval.k", "decode.batch_users", "decode.shard_users",
          "decode.workers", "decode.devices", "rerank.enabled", "users", "lists"),
    examples=("python predict.py run.dir=runs/demo submission=runs/demo/submission.csv",
              "python predict.py run.dir=runs/real data.dir=data/real decode.devices=4   # 4 GPUs, DDP",
              "python predict.py model=transitions data.dir=data/real submission=transitions.csv",
              "python predict.py run.dir=runs/demo users=all lists=runs/demo/lists   # every user, parquet"),
)


def main(argv: list[str]) -> None:
    with localised(load_config(argv)) as (cfg, _):
        predict(cfg)


def predict(cfg: Config) -> dict[str, float] | None:
    """Write cfg.submission; returns the offline metrics when future.csv is present, else None. A trained run
    (model=sasrec) reads and decodes the log with the settings it was trained with."""
    run = Run.load(cfg) if cfg.model.name == "sasrec" else None
    cfg = run.cfg if run else cfg
    ds = report.ingest(cfg)
    if cfg.lists:
        if run is None:
            raise UserError(f"lists={cfg.lists} writes a trained run's lists: give run.dir=RUN (model=sasrec)")
        predict_lists(cfg, ds, run)
        return None
    with report.step_report(cfg, "predict") as rep:
        t0 = time.perf_counter()
        k = cfg.eval.k
        ds.check_list_length(k, "eval.k")
        n, d = cfg.rerank.candidates * k if cfg.rerank.enabled else k, cfg.decode
        if run is not None and d.distributed:  # Lightning's predict under DDP
            recs = decode_ddp(run.net, run.shard_topk(ds, n), ds.test_users, d, Path(cfg.run.dir) / "predict_shards")
            if recs is None:
                return None  # another process of the DDP run: the first one writes the submission
            run.report_repeats(recs, ds.test_users, ds)
        else:
            recs = recommend(cfg, ds, ds.test_users, n, run)
        if cfg.rerank.enabled:  # diversity and novelty from the model's longer list, by rank
            recs = rerank_dataset(recs, ds, cfg.rerank, k)
        write_submission(cfg.submission, ds, ds.test_users, recs, k)
        print(f"{cfg.model.name}: wrote {cfg.submission} ({len(ds.test_users):,} users x {k}) "
              f"in {time.perf_counter() - t0:.1f}s")
        rep["summary"] = {"model": cfg.model.name, "submission": cfg.submission, "users": len(ds.test_users),
                          "rows": len(ds.test_users) * k, "reranked": cfg.rerank.enabled}
        if ds.future is None:
            return None
        split = make_split(ds, dataclasses.replace(cfg.split, mode="future"), cfg.seed, cfg.metric)
        row = {u: i for i, u in enumerate(ds.test_users.tolist())}
        scores = rep["metrics"] = list_metrics(recs[[row[u] for u in split.users.tolist()]], split)
        rep["summary"]["future_score"] = scores["score"]
        print(f"future.csv score {scores['score']:.4f}  ndcg@{k} {scores[f'ndcg@{k}']:.4f}  "
              f"repeat {scores['repeat']:.2f}  ({len(split.users):,} test users with history)")
        return scores


def predict_lists(cfg: Config, ds: Dataset, run: Run) -> None:
    """Write the lists of test.csv's users (users=test) or of every user (users=all) into cfg.lists, resuming
    what an earlier call with the same run and data left, then check them whole."""
    with report.step_report(cfg, "predict") as rep:
        t0, k = time.perf_counter(), cfg.eval.k
        ds.check_list_length(k, "eval.k")
        users = np.arange(ds.n_users) if cfg.users == "all" else ds.test_users
        digest = lists_digest(run.ckpt, ds)
        write_lists(cfg.lists, ds, users, run.shard_ranked(ds, k), k, digest, cfg.decode.shard_users,
                    cfg.decode.workers)
        problems = check_lists(cfg.lists, ds, users)
        if problems:
            raise ValueError(f"{cfg.lists}: the lists are not valid: {'; '.join(problems[:5])}")
        seconds = time.perf_counter() - t0
        print(f"{cfg.model.name}: wrote the lists of {len(users):,} users x {k} into {cfg.lists} (digest {digest}) "
              f"in {seconds:.1f}s, {len(users) / seconds:.0f} users/s; checked: every user once, {k} distinct "
              f"recommendable tracks each")
        rep["summary"] = {"model": cfg.model.name, "lists": cfg.lists, "users": len(users), "k": k,
                          "digest": digest, "seconds": seconds}
