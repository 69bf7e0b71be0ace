"""Temporal splits that mirror the contest: history up to a cut, score the next window."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from seqrec.config import MetricConfig, SplitConfig
from seqrec.data.dataset import Dataset
from seqrec.metrics import Truth, build_truth


@dataclass
class Split:
    """History to fit on (`history.end` is the cut) and what the evaluated users did in the window."""

    history: Dataset
    users: np.ndarray
    """Evaluated user indices: active both before the cut and in the window."""
    truth: Truth
    window: pd.DataFrame
    """Raw window events of the evaluated users."""


def make_split(ds: Dataset, cfg: SplitConfig, seed: int, metric: MetricConfig | None = None) -> Split:
    """`temporal`: hold out the last window of the log; `future`: the whole log vs future.csv. The window is
    scored under `metric`'s reading (default: the contest's wording)."""
    metric = metric or MetricConfig()
    if cfg.mode == "future":
        if ds.future is None:
            raise ValueError(f"split.mode=future needs future.csv in {ds.report.get('folder')}; "
                             "use split.mode=temporal on real data")
        history, window, cut = ds.events, ds.future, ds.end
        users = np.intersect1d(ds.test_users, history["user"].unique())
    else:
        cut = pd.Timestamp(cfg.cut) if cfg.cut else ds.end - pd.Timedelta(days=cfg.window_days)
        ts = ds.events["ts"]
        history = ds.events[ts < cut]
        window = ds.events[(ts >= cut) & (ts < cut + pd.Timedelta(days=cfg.window_days))]
        plays = window["user"].value_counts()
        regular = plays.index[plays >= cfg.min_window_events].to_numpy()
        users = np.intersect1d(history["user"].unique(), regular)
        if cfg.max_users is not None and len(users) > cfg.max_users:
            rng = np.random.default_rng(seed)
            users = np.sort(rng.choice(users, size=cfg.max_users, replace=False))
    if not len(users):
        raise ValueError(f"no user is active both before {cut} and in the {cfg.window_days}-day window after it")
    window = window[window["user"].isin(users)]
    truth = build_truth(
        window["user"].to_numpy(np.int64),
        window["item"].to_numpy(np.int64),
        window["duration"].to_numpy(np.float64),
        ds.items["track_duration"].to_numpy(np.float64),
        metric.fraction, metric.rounding, metric.normalise,
    )
    return Split(ds.restrict(history.reset_index(drop=True), cut, window, users), users, truth, window)
