"""The ranking stage over one trained run's candidates: LightGBM pointwise and lambdarank (and CatBoost), what the
network and each candidate source are worth to the GBDT, and whether the sources' ranks help it as features.

python benchmarks/rankers.py run.dir=RUN [data.dir=DIR] [--fit-seeds 0 1 2] [--only TEXT ...] [key=value ...]

The run's network decodes the candidates of the temporal split's users once (Run.load, the run's own settings);
every row ranks those same candidates:
- `val`: cross-fitted on the temporal window, as train.py's val/score (each half of the users ranked by a ranker
  fitted on the other half);
- `future` (synthetic data): the ranker fitted on the whole temporal window ranks the candidates that the same
  network decodes from the whole log for test.csv's users, scored on future.csv, as predict.py does.
`no network` replaces the network by recent popularity (the same tracks for everyone) as the candidates' scorer
and drops the three model_* features; `without the network` removes the network's sources (`model`, `explore`)
with nothing in their place and drops its features: what the network is worth to the pipeline. `source ranks`
lets the GBDT read, for each source, the candidate's rank in it (rank.source_features). `catboost
YetiRank` is CatBoost's ranker on the same features, candidates, tree count, learning rate and threads (skipped
when catboost is not installed: it is no dependency of seqrec; `pip install catboost` to run it). Fit seconds are
one fit on the whole window; score seconds rank the whole window once. The candidate-recall table says how much of
the best achievable window credit the candidates hold, for tracks the user played before and never played.
With several --fit-seeds, every row is fitted once per LightGBM seed (rank.seed) on the same candidates: the
table shows the means and the range of val/score and future score, the noise of the fit itself. --only keeps the
rows whose name holds one of the texts.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
import time

import numpy as np
import torch
from candidates import recall  # benchmarks/ is on the path: this file runs as a script

from seqrec import PAD, metrics
from seqrec.config import Config, RankConfig, load_config
from seqrec.data.dataset import load_dataset
from seqrec.data.split import Split, make_split
from seqrec.ranking.candidates import Candidates
from seqrec.ranking.rankers import crossfit_with, fit, ranker_features, top_k
from seqrec.ranking.sources import SOURCES, Scores
from seqrec.run import Run

MODEL_FEATURES = "rank.drop_features=[model_logp,model_rank,model_cos]"
NO_NETWORK_SOURCES = ["rank.n_model_candidates=0", "rank.n_explore_candidates=0"]
CATBOOST = "catboost"  # a row's overrides name it: CatBoost's ranker in place of the configured one
ROWS = {  # name: (overrides of the run's rank.* settings, what scores the candidates)
    "gbdt (the run's settings)": ([], "network"),
    "gbdt, model_rank counted over the whole catalog": (["rank.model_rank_sample=0"], "network"),
    "gbdt, model_rank estimated below the best 1,000 from 4,096 tracks":
        (["rank.model_rank_sample=4096", "rank.model_rank_top=1000"], "network"),
    "gbdt lambdarank": (["rank.objective=lambdarank"], "network"),
    "catboost YetiRank": ([CATBOOST], "network"),
    "gbdt, source ranks as features": (["rank.source_features=true"], "network"),
    "gbdt, no network features": ([MODEL_FEATURES], "network"),
    "gbdt, no network: popularity scores the candidates, no network features": ([MODEL_FEATURES], "popularity"),
    "gbdt, without the network: no model or explore candidates, no network features":
        ([MODEL_FEATURES, *NO_NETWORK_SOURCES], None),
    "gbdt, without the song-group features": (["rank.drop_features=[song_plays,canon_artist_share]"], "network"),
    "gbdt, without the explore source": (["rank.n_explore_candidates=0"], "network"),
    "gbdt, with the explore source (100)": (["rank.n_explore_candidates=100"], "network"),
    "gbdt, without the history source": (["rank.n_history_candidates=0"], "network"),
    "gbdt, without the favourites' transitions source": (["rank.n_favourites_candidates=0"], "network"),
    "gbdt, without the next-track source": (["rank.n_next_candidates=0"], "network"),
    "gbdt, with the artist source (30)": (["rank.n_artist_candidates=30"], "network"),
}


class CatBoostRanker:
    """CatBoost's YetiRank over the same named features, tree count, learning rate and threads as rank.*; for this
    comparison only."""

    def __init__(self, cfg: Config):
        self.features = ranker_features(cfg.rank)
        r = cfg.rank
        self.params = {"loss_function": "YetiRank", "iterations": r.trees, "learning_rate": r.learning_rate,
                       "thread_count": r.threads, "random_seed": cfg.seed, "verbose": False,
                       "allow_writing_files": False}
        self.model = None

    def fit(self, c: Candidates, gain: np.ndarray) -> CatBoostRanker:
        from catboost import CatBoostRanker as Ranker
        from catboost import Pool

        keep = np.where(c.mask, gain, 0).sum(1) > 0  # as GBDT.fit: users with any gain
        m = c.mask[keep]
        group = np.repeat(np.arange(m.shape[0]), m.sum(1))
        self.model = Ranker(**self.params).fit(Pool(c.columns(self.features)[keep][m], gain[keep][m], group_id=group))
        return self

    def score(self, c: Candidates) -> np.ndarray:
        s = self.model.predict(c.columns(self.features).reshape(-1, len(self.features)))
        return np.where(c.mask, s.reshape(c.mask.shape), -np.inf)


def fitter(cfg: Config, catboost: bool):
    """`fit(candidates, gain)` for the row's ranker: CatBoost's, or the configured stage."""
    if catboost:
        return lambda c, gain: CatBoostRanker(cfg).fit(c, gain)
    return lambda c, gain: fit(c, gain, cfg.rank)


def with_overrides(cfg: Config, overrides: list[str]) -> Config:
    """The run's config with the rank.* keys of `overrides` changed."""
    overrides = [o for o in overrides if o != CATBOOST]
    given = load_config(overrides).rank
    keys = {o.split("=")[0].split(".")[1] for o in overrides}
    return dataclasses.replace(cfg, rank=dataclasses.replace(cfg.rank, **{k: getattr(given, k) for k in keys}))


def candidates(run: Run, cfg: Config, split: Split, scorer: str | None) -> Candidates:
    """The candidates of the split's users from its history under `cfg`, scored by the run's `network` or by recent
    `popularity` (the same for everyone); None: the network's, but no source makes up a short list (the `model`
    source is not stretched to k), so a user may get fewer than k."""
    run = dataclasses.replace(run, cfg=cfg)
    decoder, users, k = run.decoder(split.history), split.users, cfg.eval.k
    if scorer != "popularity":
        return decoder.candidates(run.net, users, k if scorer == "network" else 0)
    pop = torch.as_tensor(decoder.evidence.tables.item["log_popularity"], dtype=torch.float32)
    logp = torch.log_softmax(pop.masked_fill(~torch.as_tensor(decoder.allowed), float("-inf")), dim=0)
    step = cfg.decode.batch_users
    return Candidates.concat([decoder.candidates_from(Scores(logp.expand(len(users[i:i + step]), -1)),
                                                      users[i:i + step], k) for i in range(0, len(users), step)])


def one_row(cfg: Config, split: Split, c: Candidates, future: tuple[Split, Candidates] | None,
            catboost: bool = False) -> dict[str, float]:
    """Cross-fitted validation lists, the whole-window fit applied to the future window, and their timings."""
    k, hist = cfg.eval.k, split.history.events
    gain = split.truth.lookup(split.users, c.items)
    fit = fitter(cfg, catboost)
    recs = crossfit_with(c, gain, fit, k)
    t0 = time.perf_counter()
    ranker = fit(c, gain)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    top_k(c, ranker.score(c), k)
    row = {"val": metrics.competition_score(recs, split.users, split.truth),
           "val ndcg": metrics.ndcg_at_k(recs, split.users, split.truth),
           "val repeat": metrics.repeat_share(recs, split.users, hist["user"].to_numpy(), hist["item"].to_numpy()),
           "fit s": fit_s, "score s": time.perf_counter() - t0}
    if future is not None:
        fsplit, fc = future
        row["future"] = metrics.competition_score(top_k(fc, ranker.score(fc), k)[0], fsplit.users, fsplit.truth)
    return row


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fit-seeds", type=int, nargs="+", default=[RankConfig.seed], help="rank.seed of each fit")
    p.add_argument("--only", nargs="+", default=[], metavar="TEXT", help="only the rows whose name holds a TEXT")
    a, keys = p.parse_known_args(argv)
    run = Run.load(load_config(keys), whole_log=False)  # scored on the temporal window: the cut's network
    torch.set_grad_enabled(False)
    ds = load_dataset(run.cfg.data, run.cfg.clean)
    split = make_split(ds, run.cfg.split, run.cfg.seed, run.cfg.metric)
    fsplit = None if ds.future is None else make_split(
        ds, dataclasses.replace(run.cfg.split, mode="future"), run.cfg.seed, run.cfg.metric)
    print(f"{len(split.users)} validation users", file=sys.stderr)
    cache: dict[tuple, tuple[Candidates, Candidates | None]] = {}
    rows, recalls = {}, {}
    for name, (overrides, scorer) in ROWS.items():
        if a.only and not any(text in name for text in a.only):
            continue
        if CATBOOST in overrides and importlib.util.find_spec("catboost") is None:
            print(f"{name}: skipped, catboost is not installed", file=sys.stderr)
            continue
        cfg = with_overrides(run.cfg, overrides)
        key = (scorer, *(s.n(cfg.rank) for s in SOURCES), cfg.rank.model_rank_sample, cfg.rank.model_rank_top)
        if key not in cache:
            # the future window's candidates come from the whole log, decoded by the same (cut's) network
            cache[key] = (candidates(run, cfg, split, scorer),
                          None if fsplit is None else candidates(run, cfg, fsplit, scorer))
        c, fc = cache[key]
        fits = [one_row(dataclasses.replace(cfg, rank=dataclasses.replace(cfg.rank, seed=seed)), split, c,
                        None if fsplit is None else (fsplit, fc), CATBOOST in overrides) for seed in a.fit_seeds]
        rows[name] = {k: float(np.mean([f[k] for f in fits])) for k in fits[0]}
        rows[name].update({f"{k} range": (min(f[k] for f in fits), max(f[k] for f in fits)) for k in ("val", "future")
                           if k in fits[0]})
        rows[name]["per user"] = float(c.mask.sum(1).mean())
        recalls[name] = recall(np.where(c.mask, c.items, PAD), split, cfg.eval.k)
        print(name, rows[name], file=sys.stderr, flush=True)
    ranges = len(a.fit_seeds) > 1
    head = ["row", "val/score", "val ndcg@k", "val repeat", "future score", "fit s", "score s", "candidates/user",
            "recall played", "recall never played", *(["val/score range", "future range"] if ranges else [])]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for name, r in rows.items():
        spread = [f"{lo:.4f}..{hi:.4f}" for lo, hi in (r["val range"], r.get("future range", (np.nan, np.nan)))]
        print(f"| {name} | {r['val']:.4f} | {r['val ndcg']:.4f} | {r['val repeat']:.2f} | "
              f"{r.get('future', float('nan')):.4f} | {r['fit s']:.1f} | {r['score s']:.1f} | {r['per user']:.0f} | "
              f"{recalls[name]['played']:.1%} | {recalls[name]['never played']:.1%} |"
              + ("".join(f" {x} |" for x in spread) if ranges else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
