"""Candidate recall: how much of the best achievable window credit each candidate source holds, per pool.

python benchmarks/candidates.py run.dir=RUN [--sizes 50 100 200] [--no-references] [key=value ...]

On the temporal split of the run's data (Run.load: the run's own settings and the cut's network), three tables of
the share of the best achievable credit (each user's best k window tracks) that candidates hold:

1. every source of the ranking stage (seqrec.ranking.sources.SOURCES) listing its best n tracks, for tracks the
   user played before the cut and for tracks never played;
2. the never-played pool: each source's best n tracks among those the user never played, beside the references a
   strong engineer would try for new tracks (item-kNN over the recent plays, users like you, new releases of the
   user's artists, ALS, popular now), each at its best setting on this validation window among a small grid;
3. the union as the ranking stage decodes it, with and without the network's sources (`model`, `explore`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from threadpoolctl import threadpool_limits

from seqrec import PAD
from seqrec.config import Config, load_config
from seqrec.data.dataset import Dataset, load_dataset
from seqrec.data.split import Split, make_split
from seqrec.logstats import decayed_plays, listen_quality, listeners, recent_context, user_item_matrix
from seqrec.ranking.sources import SOURCES, UserBatch
from seqrec.run import Run
from seqrec.topk import sparse_topk

warnings.filterwarnings("ignore", message="Method expects CSR input")  # implicit's note on its own conversion
NETWORK = ("model", "explore")
"""The sources that read the network."""


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


def played_matrix(ds: Dataset, users: np.ndarray) -> sp.csr_matrix:
    """(len(users), n_items + 1) 1 where the user played the track."""
    m = user_item_matrix(ds, np.ones(len(ds.events), np.float32), valid_only=False)[users]
    m.data[:] = 1.0
    return m


def never_played(lists: np.ndarray, played: sp.csr_matrix, n: int) -> np.ndarray:
    """(B, n) the first n tracks of each row of `lists` (B, L) that its user never played, PAD where fewer."""
    seen = np.asarray(played[np.arange(len(lists))[:, None], lists].todense()).astype(bool) | (lists == PAD)
    order = np.argsort(seen, axis=1, kind="stable")  # unseen first, in list order
    out = np.where(np.take_along_axis(seen, order, 1), PAD, np.take_along_axis(lists, order, 1))
    return out[:, :n] if out.shape[1] >= n else np.pad(out, ((0, 0), (0, n - out.shape[1])))


def top_unplayed(scores: sp.csr_matrix, played: sp.csr_matrix, n: int) -> np.ndarray:
    """(B, n) best-scored tracks each user never played."""
    scores = scores.tocsr()
    return sparse_topk(scores - scores.multiply(played), n)[0]


# ---- the references: (history, validation users, their plays, n, setting) -> (B, n) never-played tracks ----------
def itemknn_recent(ds: Dataset, users: np.ndarray, played: sp.csr_matrix, n: int, last_n: int,
                   neighbours: int) -> np.ndarray:
    """implicit's item-item cosine over the quality-weighted plays, read from the user's last plays."""
    from implicit.nearest_neighbours import CosineRecommender

    model = CosineRecommender(K=neighbours)
    model.fit(user_item_matrix(ds, listen_quality(ds.events["frac"].to_numpy(), 0.1)), show_progress=False)
    return top_unplayed(recent_context(ds, last_n)[users] @ model.similarity, played, n)


def users_like_you(ds: Dataset, users: np.ndarray, played: sp.csr_matrix, n: int, neighbours: int,
                   days: int) -> np.ndarray:
    """What the user's nearest users (cosine of 30-day-decayed plays) played in the last `days` days."""
    u = decayed_plays(ds, 30.0, 0.1)
    norm = np.sqrt(np.asarray(u.multiply(u).sum(1)).ravel())
    u = (sp.diags(1.0 / np.maximum(norm, 1e-9)) @ u).tocsr()
    parts = []
    for i in range(0, len(users), 512):  # (512, n_users) dense similarities at a time
        sims = (u[users[i:i + 512]] @ u.T).toarray()
        sims[np.arange(len(sims)), users[i:i + 512]] = 0.0
        cut = -np.partition(-sims, min(neighbours, sims.shape[1]) - 1, axis=1)[:, min(neighbours, sims.shape[1]) - 1]
        parts.append(sp.csr_matrix(np.where(sims >= cut[:, None], sims, 0.0)))  # each row's nearest users
    sims = sp.vstack(parts).tocsr()
    recent = ds.events["ts"] >= ds.end - pd.Timedelta(days=days)
    ev = ds.events[recent]
    r = sp.coo_matrix((listen_quality(ev["frac"].to_numpy(), 0.1), (ev["user"], ev["item"])),
                      shape=(ds.n_users, ds.n_items + 1)).tocsr()
    return top_unplayed(sims @ r, played, n)


def artists_new(ds: Dataset, users: np.ndarray, played: sp.csr_matrix, n: int, days: int) -> np.ndarray:
    """Tracks first heard in the last `days` days, by the user's share of plays of their artist and their recent
    listeners."""
    ev = ds.events
    first = ev.groupby("item")["ts"].min()
    new = np.zeros(ds.n_items + 1, bool)
    new[first.index[first >= ds.end - pd.Timedelta(days=days)]] = True
    artist = ds.items["artist"].to_numpy(np.int64) + 1
    tracks = np.flatnonzero(new & ds.items["valid"].to_numpy() & (artist > 0))
    weight = 1 + np.log1p(listeners(ds, 14)[tracks].astype(np.float64))
    by_artist = sp.coo_matrix((weight, (artist[tracks], tracks)), shape=(artist.max() + 1, ds.n_items + 1))
    shares = sp.coo_matrix((np.ones(len(ev)), (ev["user"], artist[ev["item"]])),
                           shape=(ds.n_users, artist.max() + 1)).tocsr()[users]
    return top_unplayed(shares @ by_artist.tocsr(), played, n)


def als(ds: Dataset, users: np.ndarray, played: sp.csr_matrix, n: int, factors: int) -> np.ndarray:
    """implicit's ALS (the baselines' settings but `factors`), the user's own tracks filtered out."""
    from implicit.cpu.als import AlternatingLeastSquares

    cfg = load_config([]).baselines
    w = listen_quality(ds.events["frac"].to_numpy(), cfg.relisten_quality_floor)
    user_items = (user_item_matrix(ds, w, valid_only=False) * cfg.als_alpha).astype(np.float32).tocsr()
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=factors, iterations=cfg.als_iterations,
                                        regularization=cfg.als_regularization, random_state=0)
        model.fit(user_items, show_progress=False)
    invalid = np.flatnonzero(~ds.items["valid"].to_numpy())
    items, _ = model.recommend(users, user_items[users], N=n, filter_already_liked_items=True, filter_items=invalid)
    return never_played(items.astype(np.int64), played, n)


def popular_now(ds: Dataset, users: np.ndarray, played: sp.csr_matrix, n: int, days: int) -> np.ndarray:
    """The tracks with most listeners in the last `days` days, the same for everyone."""
    pop = np.where(ds.items["valid"].to_numpy(), listeners(ds, days).astype(np.float64), 0.0)
    deep = n + int(np.diff(played.indptr).max(initial=0))  # enough to drop any user's played tracks
    order = np.argsort(-pop, kind="stable")[:deep]
    return never_played(np.broadcast_to(np.where(pop[order] > 0, order, PAD), (len(users), len(order))), played, n)


REFERENCES: dict[str, tuple[Callable[..., np.ndarray], list[dict]]] = {
    "item-kNN over the recent plays": (itemknn_recent, [{"last_n": ln, "neighbours": k}
                                                        for ln in (10, 50) for k in (50, 200)]),
    "users like you": (users_like_you, [{"neighbours": k, "days": d} for k in (20, 100) for d in (7, 30)]),
    "new releases of the user's artists": (artists_new, [{"days": d} for d in (14, 30, 60)]),
    "ALS": (als, [{"factors": f} for f in (64, 128)]),
    "popular now": (popular_now, [{"days": d} for d in (7, 30)]),
}
"""Each reference and its grid of settings."""


def source_lists(run: Run, split: Split, n: int) -> dict[str, np.ndarray]:
    """(users, n) the best n tracks of each source of the ranking stage."""
    decoder = run.decoder(split.history)
    users, step = split.users, run.cfg.decode.batch_users
    lists: dict[str, list[np.ndarray]] = {s.name: [] for s in SOURCES}
    with torch.no_grad():
        for i in range(0, len(users), step):
            batch = UserBatch(users[i:i + step], decoder.evidence, decoder.scores(run.net, users[i:i + step]))
            for s in SOURCES:
                lists[s.name].append(s.top(batch, n))
    return {name: np.concatenate(parts) for name, parts in lists.items()}


def union(run: Run, split: Split, k: int, at_least: int, **sizes: int) -> tuple[float, dict[str, float]]:
    """Candidates per user and recall of the union as decoded, with rank.* sizes changed (`model` at least
    `at_least` long: k as decoded, 0 for none)."""
    cfg: Config = run.cfg
    run.cfg = dataclasses.replace(cfg, rank=dataclasses.replace(cfg.rank, **sizes))
    try:
        c = run.decoder(split.history).candidates(run.net, split.users, at_least)
    finally:
        run.cfg = cfg
    return float(c.mask.sum(1).mean()), recall(np.where(c.mask, c.items, PAD), split, k)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200])
    p.add_argument("--no-references", action="store_true", help="only the ranking stage's own sources")
    a, overrides = p.parse_known_args()
    run = Run.load(load_config(overrides), whole_log=False)  # the cut's network
    ds = load_dataset(run.cfg.data, run.cfg.clean)
    split = make_split(ds, run.cfg.split, run.cfg.seed, run.cfg.metric)
    hist, users, k, top = split.history, split.users, run.cfg.eval.k, max(a.sizes)
    print(f"{len(users)} validation users; recall of the best {k} window tracks' credit", file=sys.stderr)
    played = played_matrix(hist, users)
    lists = source_lists(run, split, top + int(np.diff(played.indptr).max()))  # deep enough to drop the played

    print("\n| source | " + " | ".join(f"played @{n} | never played @{n}" for n in a.sizes) + " |")
    print("|---|" + "---|---|" * len(a.sizes))
    for name, items in lists.items():
        cells = (recall(items[:, :n], split, k) for n in a.sizes)
        print(f"| {name} | " + " | ".join(f"{r['played']:.1%} | {r['never played']:.1%}" for r in cells) + " |")

    print("\nThe never-played pool: each source's best n tracks the user never played\n")
    print("| source | setting | " + " | ".join(f"never played @{n}" for n in a.sizes) + " |")
    print("|---|---|" + "---|" * len(a.sizes))
    for name, items in lists.items():
        if name != "history":
            new = never_played(items, played, top)
            print(f"| {name} | rank.* as run | "
                  + " | ".join(f"{recall(new[:, :n], split, k)['never played']:.1%}" for n in a.sizes) + " |",
                  flush=True)
    for name, (make, grid) in ({} if a.no_references else REFERENCES).items():
        tried = [(setting, make(hist, users, played, top, **setting)) for setting in grid]
        for setting, items in tried:
            print(f"  {name} {setting}: {recall(items, split, k)['never played']:.1%} @{top}", file=sys.stderr)
        setting, items = max(tried, key=lambda t: recall(t[1], split, k)["never played"])
        print(f"| {name} | {', '.join(f'{key}={v}' for key, v in setting.items())} | "
              + " | ".join(f"{recall(items[:, :n], split, k)['never played']:.1%}" for n in a.sizes) + " |",
              flush=True)

    print("\n| union as decoded | candidates/user | played | never played |\n|---|---|---|---|")
    sizes = {s.size: s.n(run.cfg.rank) for s in SOURCES}
    for label, change in (("all sources", {}), ("without the network's", {s.size: 0 for s in SOURCES
                                                                           if s.name in NETWORK})):
        per_user, r = union(run, split, k, 0 if change else k, **change)
        shown = ", ".join(f"{s.name} {change.get(s.size, sizes[s.size])}" for s in SOURCES)
        print(f"| {label} ({shown}) | {per_user:.0f} | {r['played']:.1%} | {r['never played']:.1%} |", flush=True)


if __name__ == "__main__":
    main()
