"""Where decoding's time goes, by stage: a trained run decodes a seeded sample of users as predict.py does
(Run.shard_topk over shards of decode.shard_users, in this process), under cProfile.

python benchmarks/decode_profile.py run.dir=RUN [--users 4096] [--threads 1] [key=value ...]

Each stage is the cumulative time of the functions that make it (`of which` rows are inside the row above them);
`users/s` counts the sample over the whole wall time, the log-wide
tables included, and the peak memory is the process's. Run it with PYTHONPATH on a copy of older code to profile
that code on the same run (stages whose functions it lacks are blank).
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import inspect
import pstats
import resource
import time

import numpy as np
import torch

from seqrec.config import load_config
from seqrec.data.dataset import load_dataset
from seqrec.inference.shards import decode_shards
from seqrec.run import Run

STAGES = {  # stage: the functions (module, qualified name) whose cumulative time it is
    "log-wide tables (once)": [("seqrec.ranking.evidence", "LogTables.build")],
    "shard's evidence": [("seqrec.ranking.evidence", "Evidence.build")],
    "shard's sequences and inputs": [("seqrec.data.sequences", "build_sequences"),
                                     ("seqrec.models.features", "event_features")],
    "encode, score the catalog, log-softmax": [("seqrec.inference.decode", "Decoder.scores")],
    "source: model (top-k)": [("seqrec.ranking.sources", "_model")],
    "source: explore (top-k of the unplayed)": [("seqrec.ranking.sources", "_explore")],
    "sources: history, favourites, next, artists": [("seqrec.ranking.sources", n) for n in
                                                    ("_history", "_favourites", "_next", "_artists")],
    "features (all)": [("seqrec.ranking.features", "features_of")],
    "of which model_rank": [("seqrec.ranking.features", "_model_rank")],
    "ranker (LightGBM)": [("seqrec.ranking.rankers", "GBDT.score")],
    "top k of the candidates": [("seqrec.ranking.rankers", "top_k")],
}


def code_key(module: str, qualname: str) -> tuple[str, int, str] | None:
    """cProfile's key of a function, None where this code has no such function."""
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    code = inspect.unwrap(getattr(obj, "__func__", obj)).__code__
    return code.co_filename, code.co_firstlineno, code.co_name


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=4096)
    p.add_argument("--threads", type=int, default=1, help="torch threads (a decoding worker has one)")
    a, keys = p.parse_known_args()
    torch.set_num_threads(a.threads)
    run = Run.load(load_config(keys))
    ds = load_dataset(run.cfg.data, run.cfg.clean)
    users = np.sort(np.random.default_rng(0).choice(ds.n_users, min(a.users, ds.n_users), replace=False))
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    recs = decode_shards(run.shard_topk(ds, run.cfg.eval.k), users, run.cfg.decode.shard_users, 1)
    prof.disable()
    wall = time.perf_counter() - t0
    assert recs.shape == (len(users), run.cfg.eval.k)
    stats = pstats.Stats(prof)
    print(f"{len(users):,} of {ds.n_users:,} users, {ds.n_items:,} tracks, {len(ds.events):,} events; "
          f"{a.threads} torch thread(s); shards of {run.cfg.decode.shard_users:,}; "
          f"rank.model_rank_sample={getattr(run.cfg.rank, 'model_rank_sample', 'absent (sorted)')}")
    print("| stage | seconds | share of wall | calls |")
    print("|---|---:|---:|---:|")
    for stage, funcs in STAGES.items():
        found = [stats.stats[k] for k in (code_key(m, q) for m, q in funcs) if k in stats.stats]
        sec, n = sum(f[3] for f in found), sum(f[1] for f in found)
        print(f"| {stage} | {sec:.1f} | {sec / wall:.0%} | {n:,} |" if found else f"| {stage} | | | |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"| **wall, from the tables to the last list** | {wall:.1f} | 100% | |")
    print(f"users_per_s={len(users) / wall:.1f} peak_gib={peak:.2f}")


if __name__ == "__main__":
    main()
