"""Candidate recall: how much of the best achievable window credit each candidate source holds, per pool.

python benchmarks/candidates.py run.dir=RUN [--sizes 25 50 100 200] [key=value ...]

On the temporal split of the run's data (Run.load: the run's own settings), every candidate source of the ranking
stage (seqrec.ranking.sources.SOURCES: the network's top tracks `model`, the user's history by re-listen score
`history`, what follows the user's favourites `favourites`, what follows the last plays `next`, the tracks of the
user's artists `artists`) lists its best n tracks per validation user, for each n of --sizes, beside recent
popularity (`popular`, the same for everyone). For each, and
for the union of the decoder's sources at their configured sizes, it prints the share of the best achievable
credit (each user's best k window tracks) inside the candidates, for tracks the user played before and for tracks
never played.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np
import torch

from seqrec import PAD
from seqrec.config import load_config
from seqrec.data.dataset import load_dataset
from seqrec.data.split import Split, make_split
from seqrec.ranking.sources import SOURCES, UserBatch
from seqrec.run import Run


def recall(items: np.ndarray, split: Split, k: int) -> dict[str, float]:
    """Share of the best achievable credit (each user's best k window tracks) inside `items` (users x C), by pool:
    tracks the user played before the cut and tracks never played."""
    truth, users = split.truth, split.users
    hist = split.history.events
    stride = split.history.n_items + 1
    pair = truth.users * stride + truth.items
    played = np.isin(pair, hist["user"].to_numpy(np.int64) * stride + hist["item"].to_numpy(np.int64))
    inside = np.isin(pair, (users[:, None] * stride + items)[items != PAD])
    order = np.lexsort((-truth.gain, truth.users))
    rank = np.arange(len(order)) - np.searchsorted(truth.users[order], truth.users[order])
    best = np.zeros(len(pair), bool)
    best[order[rank < k]] = True
    out = {}
    for name, pool in (("played", played), ("never played", ~played)):
        total = truth.gain[best & pool].sum()
        out[name] = float(truth.gain[best & pool & inside].sum() / total) if total > 0 else float("nan")
    return out


def sources(run: Run, split: Split, n: int) -> dict[str, np.ndarray]:
    """(users, n) the best n tracks of each source."""
    decoder = run.decoder(split.history)
    users, step = split.users, run.cfg.decode.batch_users
    lists: dict[str, list[np.ndarray]] = {s.name: [] for s in SOURCES}
    with torch.no_grad():
        for i in range(0, len(users), step):
            batch = UserBatch(users[i:i + step], decoder.evidence, decoder.scores(run.net, users[i:i + step]))
            for s in SOURCES:
                lists[s.name].append(s.top(batch, n))
    pop = decoder.evidence.tables.item["log_popularity"]
    popular = np.argsort(-np.where(decoder.allowed, pop, -np.inf))[:n]
    return {**{name: np.concatenate(parts) for name, parts in lists.items()},
            "popular": np.broadcast_to(popular, (len(users), n))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100, 200])
    p.add_argument("--union", nargs="*", default=[], metavar="SOURCE=N",
                   help="also the union with these rank.* sizes changed, e.g. n_next_candidates=30")
    a, overrides = p.parse_known_args()
    run = Run.load(load_config(overrides), whole_log=False)  # the cut's network
    ds = load_dataset(run.cfg.data, run.cfg.clean)
    split = make_split(ds, run.cfg.split, run.cfg.seed, run.cfg.metric)
    k = run.cfg.eval.k
    print(f"{len(split.users)} validation users; recall of the best {k} window tracks' credit", file=sys.stderr)
    print("| source | n per user | played | never played |\n|---|---|---|---|")
    for n in a.sizes:
        for name, items in sources(run, split, n).items():
            r = recall(items, split, k)
            print(f"| {name} | {n} | {r['played']:.1%} | {r['never played']:.1%} |", flush=True)
    for change in [{}, *({kv.split("=")[0]: int(kv.split("=")[1]) for kv in a.union} for _ in a.union[:1])]:
        run.cfg = dataclasses.replace(run.cfg, rank=dataclasses.replace(run.cfg.rank, **change))
        c = run.decoder(split.history).candidates(run.net, split.users, k)
        sizes = ", ".join(f"{s.name} {s.n(run.cfg.rank)}" for s in SOURCES)
        r = recall(np.where(c.mask, c.items, PAD), split, k)
        print(f"| union as decoded ({sizes}) | {c.mask.sum(1).mean():.0f} | {r['played']:.1%} | "
              f"{r['never played']:.1%} |", flush=True)


if __name__ == "__main__":
    main()
