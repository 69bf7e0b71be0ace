"""Decoding speed at full scale: users/s of top-50 over the whole catalog, and memory by batch size.

python benchmarks/decode_speed.py data.dir=data/synthetic/full [preset=gpu] [--users 2048] [--batches 128 512]

An untrained network of the preset's shape (decoding cost does not depend on the weights) encodes each
user's history, scores every track, and a GBDT (fitted beforehand on the first users' candidates, so its trees
cost what a real ranker's do) ranks the candidates of every source, exactly as predict.py does. Each batch size
runs in a fresh process so its peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from seqrec.config import load_config
from seqrec.data.dataset import load_dataset
from seqrec.data.sequences import build_sequences
from seqrec.inference.decode import make_decoder
from seqrec.models.features import event_features
from seqrec.models.side import catalog_network
from seqrec.ranking.evidence import LogTables
from seqrec.ranking.rankers import fit


def run_one(overrides: list[str], n_users: int, batch: int) -> dict:
    cfg = load_config([*overrides, f"decode.batch_users={batch}"])
    ds = load_dataset(cfg.data, cfg.clean)
    seqs = build_sequences(ds.events, ds.n_users, cfg.clean.session_gap_min)
    t0 = time.perf_counter()
    decoder = make_decoder(ds, event_features(seqs, cfg.train.weight_mode), cfg, LogTables.build(ds, cfg.rank))
    setup_s = time.perf_counter() - t0
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    net = catalog_network(cfg.model, ds.items, np.bincount(ds.events["item"], minlength=ds.n_items + 1)).to(device)
    users = np.sort(np.random.default_rng(0).choice(ds.n_users, size=min(n_users, ds.n_users), replace=False))
    probe = decoder.candidates(net, users[:batch], cfg.eval.k)  # stand-in gains: the re-listen score, in [0, 1]
    ranker = fit(probe, probe.columns(("relisten",))[..., 0], cfg.rank)
    t0 = time.perf_counter()
    recs = decoder.topk(net, users, ranker, cfg.eval.k)
    decode_s = time.perf_counter() - t0
    assert recs.shape == (len(users), cfg.eval.k)
    return {"users": len(users), "batch": batch, "setup_s": setup_s, "decode_s": decode_s,
            "users_per_s": len(users) / decode_s, "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            / 2**20, "peak_before_decode_gib": rss_before / 2**20, "device": device}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=2048)
    p.add_argument("--batches", type=int, nargs="+", default=[128, 512])
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)
    a, overrides = p.parse_known_args()
    if not any(o.startswith("preset=") for o in overrides):
        overrides.append("preset=gpu")
    if a.one:
        print(json.dumps(run_one(overrides, a.users, a.one)))
        return
    print("| batch users | users/s | peak GiB | peak before decoding GiB | setup s | device |")
    print("|---:|---:|---:|---:|---:|---|")
    for b in a.batches:
        out = subprocess.run([sys.executable, __file__, "--one", str(b), "--users", str(a.users), *overrides],
                             capture_output=True, text=True)
        if out.returncode:
            print(f"| {b} | failed: {out.stderr.strip().splitlines()[-1]} | | | | |")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {b} | {r['users_per_s']:.1f} | {r['peak_gib']:.2f} | {r['peak_before_decode_gib']:.2f} "
              f"| {r['setup_s']:.0f} | {r['device']} |", flush=True)


if __name__ == "__main__":
    main()
