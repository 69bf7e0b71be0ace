"""A trained run from Python, for notebooks: recommendations, similar tracks and evaluation as pandas frames.

    import seqrec
    run = seqrec.load_run("runs/demo")
    run.recommend([42, 7], k=10)      # user_id, rank, item_id, track_name, artist_name
    run.similar(300, k=5)             # rank, item_id, score, track_name, artist_name
    run.evaluate(["transitions"])     # one row per model: score, ndcg@k, ... on the temporal split
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from functools import cached_property

import numpy as np
import pandas as pd
import torch

from seqrec import PAD
from seqrec.config import Config, load_config
from seqrec.data.dataset import Dataset, load_dataset
from seqrec.data.split import make_split
from seqrec.errors import UserError
from seqrec.evaluate import evaluate_models
from seqrec.run import Run
from seqrec.similar import embedding_neighbours, item_index, neighbour_mask

TRACK_COLUMNS = ("track_name", "artist_name", "song_group")


def load_run(run_dir: str, **settings: object) -> TrainedRun:
    """The run of `run_dir` as trained; `settings` are the command line's key=value pairs that may differ from
    training (e.g. `**{"decode.device": "cpu"}`), the same keys Run.load accepts."""
    overrides = [f"run.dir={run_dir}", *(f"{k}={v}" for k, v in settings.items())]
    return TrainedRun(Run.load(load_config(overrides)))


class TrainedRun:
    """A trained run and the data it was trained on (read and cleaned with the run's own settings on first use)."""

    def __init__(self, run: Run):
        self.run = run

    @property
    def cfg(self) -> Config:
        return self.run.cfg

    @cached_property
    def data(self) -> Dataset:
        """The whole cleaned log the lists are decoded from."""
        ds = load_dataset(self.cfg.data, self.cfg.clean)
        self.run.check_catalog(ds)
        return ds

    def recommend(self, user_ids: Iterable[int], k: int | None = None) -> pd.DataFrame:
        """Top-k tracks per user from the whole log, as predict.py ranks them: one row per (user, rank)."""
        k = k or self.cfg.eval.k
        ds = self.data
        ids = np.asarray(list(user_ids), dtype=np.int64)
        users = ds.user_map.index(ids)
        if (users < 0).any():
            raise UserError(f"user_id(s) {ids[users < 0][:5].tolist()} are not in {self.cfg.data.dir}")
        with torch.no_grad():
            recs = self.run.recommend(ds, users.astype(np.int64), k)
        frame = pd.DataFrame({"user_id": np.repeat(ids, k), "rank": np.tile(np.arange(1, k + 1), len(ids)),
                              "item": recs.ravel()})
        return self._tracks(frame)

    def similar(self, item_id: int, k: int = 20) -> pd.DataFrame:
        """The k valid tracks nearest to one track by the network's item embeddings (cosine)."""
        ds = self.data
        q = np.array([item_index(ds, item_id, self.cfg.data.dir)])
        idx, val = embedding_neighbours(self.run.net.item_emb.weight, q, k,
                                        neighbour_mask(ds, int(q[0]), self.cfg.similar.same_song),
                                        self.cfg.similar.batch)
        keep = idx[0] != PAD
        frame = pd.DataFrame({"rank": np.arange(1, keep.sum() + 1), "item": idx[0][keep], "score": val[0][keep]})
        return self._tracks(frame)

    def evaluate(self, baselines: Iterable[str] = ("relisten", "transitions"), mode: str = "temporal"
                 ) -> pd.DataFrame:
        """seqrec.evaluate's table for the run (`sasrec`) and `baselines` on the temporal split (the network
        trained up to the cut) or on future.csv (`mode="future"`, the whole-log network): one row per model."""
        cfg = dataclasses.replace(self.cfg, split=dataclasses.replace(self.cfg.split, mode=mode),
                                  eval=dataclasses.replace(self.cfg.eval, models=[*baselines, "sasrec"]))
        run = self.run if mode == "future" else Run.load(self.cfg, whole_log=False)
        split = make_split(self.data, cfg.split, cfg.seed, cfg.metric)
        with torch.no_grad():
            rows = evaluate_models(split, cfg, run)
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")

    def _tracks(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`item` (an index) as item_id, with the track's name and artist where the metadata has them."""
        items = self.data.items
        frame.insert(frame.columns.get_loc("item"), "item_id", items["item_id"].to_numpy()[frame["item"]])
        for col in TRACK_COLUMNS:
            if col in items:
                frame[col] = items[col].to_numpy()[frame["item"]]
        return frame.drop(columns="item")
