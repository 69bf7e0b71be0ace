"""Similar tracks: nearest items by the trained run's item embeddings, or by co-listening (item-kNN).

python -m seqrec.similar data.dir=DIR run.dir=RUN item_id=ID k=20 [similar.method=embedding|cooccurrence]
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from seqrec import PAD
from seqrec.baselines import ItemKNN
from seqrec.cli import Command, run
from seqrec.config import BaselineConfig, Config, SimilarConfig, load_config
from seqrec.data.dataset import Dataset, load_dataset
from seqrec.errors import UserError
from seqrec.run import Run, RunError
from seqrec.storage import localised
from seqrec.topk import sparse_topk


class SimilarError(UserError):
    """A request the command cannot answer (unknown track, no checkpoint); the message says what to do."""


def _check_query(items: np.ndarray, n_items: int, k: int, allowed: np.ndarray | None) -> np.ndarray:
    """items as int64 indices in 1..n_items, or a ValueError naming what is wrong."""
    items = np.asarray(items).astype(np.int64, copy=False)
    if items.ndim != 1:
        raise ValueError(f"items must be 1-D item indices, got shape {items.shape}")
    if items.size and (items.min() <= PAD or items.max() > n_items):
        raise ValueError(f"items must be indices 1..{n_items} (0 is padding); got {items.min()}..{items.max()}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if allowed is not None and np.shape(allowed) != (n_items + 1,):
        raise ValueError(f"allowed must be a bool mask of length n_items + 1 = {n_items + 1}, "
                         f"got shape {np.shape(allowed)}")
    return items


def embedding_neighbours(emb: torch.Tensor, items: np.ndarray, k: int, allowed: np.ndarray | None = None,
                         batch: int = SimilarConfig.batch) -> tuple[np.ndarray, np.ndarray]:
    """Nearest tracks by cosine over an (n_items + 1, d) embedding table whose row 0 is PAD.

    Returns (len(items), k) neighbour indices and float32 cosines, best first; never the query itself, PAD
    or an item whose `allowed` entry is False. Where fewer than k items qualify, the row ends in PAD / -inf.
    """
    n_items = emb.shape[0] - 1
    items = _check_query(items, n_items, k, allowed)
    with torch.no_grad():
        e = F.normalize(emb.detach().float(), dim=1)  # (V, D) unit rows; PAD's zero row stays zero
        banned = torch.zeros(n_items + 1, dtype=torch.bool, device=e.device)
        banned[PAD] = True
        if allowed is not None:
            banned |= ~torch.as_tensor(np.array(allowed, dtype=bool), device=e.device)
        top = min(k, n_items + 1)
        idx_parts, val_parts = [], []
        for start in range(0, len(items), batch):
            q = torch.as_tensor(items[start:start + batch], device=e.device)
            s = (e[q] @ e.T).masked_fill_(banned, -torch.inf)  # (B, V)
            s[torch.arange(len(q), device=e.device), q] = -torch.inf
            val, idx = torch.topk(s, top, dim=1)  # (B, top)
            idx_parts.append(idx.masked_fill_(torch.isinf(val), PAD).cpu())
            val_parts.append(val.cpu())
    idx = torch.cat(idx_parts).numpy() if idx_parts else np.zeros((0, top), np.int64)
    val = torch.cat(val_parts).numpy() if val_parts else np.zeros((0, top), np.float32)
    if top < k:  # a catalog smaller than k: pad the columns
        idx = np.pad(idx, ((0, 0), (0, k - top)), constant_values=PAD)
        val = np.pad(val, ((0, 0), (0, k - top)), constant_values=-np.inf)
    return idx.astype(np.int64), val.astype(np.float32)


def cooccurrence_table(ds: Dataset, cfg: BaselineConfig) -> sp.csr_matrix:
    """(n_items + 1, n_items + 1) co-listening cosine of the item-kNN baseline (baselines.knn_neighbours per row)."""
    with warnings.catch_warnings():  # implicit converts its own input internally and warns about it
        warnings.filterwarnings("ignore", "Method expects CSR input")
        return ItemKNN(cfg).fit(ds).model.similarity.tocsr()


def cooccurrence_neighbours(sim: sp.csr_matrix, items: np.ndarray, k: int,
                            allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Nearest tracks by co-listening from `cooccurrence_table`; same contract as `embedding_neighbours`.

    Only the table's stored neighbours count, so rows may end in PAD / -inf sooner than with embeddings.
    """
    n_items = sim.shape[0] - 1
    items = _check_query(items, n_items, k, allowed)
    rows = sim[items].tocoo()  # (n, V)
    keep = (rows.col != items[rows.row]) & (rows.col != PAD) & (rows.data > 0)
    if allowed is not None:
        keep &= np.asarray(allowed, dtype=bool)[rows.col]
    m = sp.csr_matrix((rows.data[keep], (rows.row[keep], rows.col[keep])), shape=rows.shape)
    return sparse_topk(m, k)


def neighbour_mask(ds: Dataset, query: int, same_song: bool = False) -> np.ndarray:
    """(n_items + 1,) bool: the tracks a query's neighbours are drawn from: valid ones, without the query's own
    versions and duplicate uploads (its song group) unless `same_song`."""
    allowed = ds.items["valid"].to_numpy().copy()  # writable: torch warns on read-only arrays
    if not same_song:
        song = ds.song_group
        allowed &= song != song[query]
    return allowed


def item_index(ds: Dataset, item_id: int, folder: str) -> int:
    """Internal index of an item_id, or a SimilarError naming the id and the data folder."""
    hit = int(ds.item_map.index(item_id)[0])
    if hit < 0:
        raise SimilarError(f"item_id {item_id} is not a track of {folder} (neither in item_metadata.csv nor in "
                           f"interactions.csv)")
    return hit


def load_run(cfg: Config) -> Run:
    """The trained run of cfg.run.dir, or a SimilarError saying how to get one or do without."""
    try:
        return Run.load(cfg)
    except RunError as e:
        raise SimilarError(f"{e}; or use similar.method=cooccurrence") from e


def describe(items: pd.DataFrame, i: int) -> str:
    """`item_id  track — artist` with `?` for what the metadata does not say."""
    row = items.iloc[i]
    name, artist = (row.get(c) for c in ("track_name", "artist_name"))
    return f"{row['item_id']}  {name if pd.notna(name) else '?'} — {artist if pd.notna(artist) else '?'}"


def similar(cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """Print the query track and its cfg.similar.k nearest valid tracks; returns (indices, scores)."""
    sc = cfg.similar
    if sc.item_id is None:
        raise SimilarError("no query track: give item_id=ID (an item_id of item_metadata.csv)")
    run = load_run(cfg) if sc.method == "embedding" else None
    cfg = run.cfg if run else cfg
    ds = load_dataset(cfg.data, cfg.clean)
    q = np.array([item_index(ds, sc.item_id, cfg.data.dir)])
    allowed = neighbour_mask(ds, int(q[0]), sc.same_song)
    if run:
        try:
            run.check_catalog(ds)
        except RunError as e:
            raise SimilarError(f"{e}; or use similar.method=cooccurrence") from e
        idx, val = embedding_neighbours(run.net.item_emb.weight, q, sc.k, allowed, sc.batch)
        source = f"embedding of {cfg.run.dir}"
    else:
        idx, val = cooccurrence_neighbours(cooccurrence_table(ds, cfg.baselines), q, sc.k, allowed)
        source = "co-listening (item-kNN cosine)"
    idx, val = idx[0][idx[0] != PAD], val[0][idx[0] != PAD]
    print(f"query {describe(ds.items, int(q[0]))}")
    print(f"{len(idx)} most similar by {source}:")
    for rank, (i, s) in enumerate(zip(idx.tolist(), val.tolist(), strict=True), 1):
        print(f"{rank:3d}. {describe(ds.items, i)}  {s:.4f}")
    return idx, val


COMMAND = Command(
    usage="python -m seqrec.similar item_id=ID [k=N] [similar.method=embedding|cooccurrence] [key=value ...]",
    summary="The tracks most similar to one track: by the trained run's item embeddings or by co-listening.",
    keys=("similar.item_id", "similar.k", "similar.method", "run.dir", "data.dir"),
    examples=("python -m seqrec.similar item_id=123 run.dir=runs/demo",
              "python -m seqrec.similar item_id=123 similar.method=cooccurrence k=20"),
)


def main(argv: list[str] | None = None) -> int:
    with localised(load_config(sys.argv[1:] if argv is None else argv)) as (cfg, _):
        similar(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(run(COMMAND, main))
