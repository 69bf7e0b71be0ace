"""Every offline metric of top-k lists on a split: seqrec.evaluate's table, predict.py's score on future.csv."""

from __future__ import annotations

import itertools

import numpy as np

from seqrec import metrics
from seqrec.data.split import Split
from seqrec.logstats import listeners


def list_metrics(recs: np.ndarray, split: Split) -> dict[str, float]:
    """Every offline metric of one set of top-k lists (k = their length)."""
    h = split.history
    ev = h.events
    k = recs.shape[1]
    return {
        "score": metrics.competition_score(recs, split.users, split.truth),
        f"ndcg@{k}": metrics.ndcg_at_k(recs, split.users, split.truth),
        f"recall@{k}": metrics.recall_at_k(recs, split.users, split.truth),
        "coverage": metrics.coverage(recs, h.n_items),
        "novelty": metrics.novelty(recs, listeners(h), h.n_users),
        "diversity": metrics.artist_diversity(recs, h.items["artist"].to_numpy()),
        "repeat": metrics.repeat_share(recs, split.users, ev["user"].to_numpy(), ev["item"].to_numpy()),
    }


def readings(recs: np.ndarray, split: Split) -> dict[str, float]:
    """The contest score of the lists under every reading of its text (fraction / rounding / normalisation)."""
    w = split.window
    duration = split.history.items["track_duration"].to_numpy(np.float64)
    out = {}
    for f, r, n in itertools.product(metrics.FRACTIONS, metrics.ROUNDINGS, metrics.NORMALISATIONS):
        truth = metrics.build_truth(w["user"].to_numpy(), w["item"].to_numpy(), w["duration"].to_numpy(), duration,
                                    f, r, n)
        out[f"{f}/{r}/{n}"] = metrics.competition_score(recs, split.users, truth)
    return out


def extra_metrics(recs: np.ndarray, split: Split, cutoffs: list[int]) -> dict[str, float]:
    """precision, MAP and hit rate at the cutoffs and at k, and the score under every reading of the metric."""
    k = recs.shape[1]
    return {**metrics.at_cutoffs(recs, split.users, split.truth, sorted({*cutoffs, k})),
            **{f"score {name}": v for name, v in readings(recs, split).items()}}
