"""The one submission writer, and the validator every submission goes through."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from seqrec.data.dataset import Dataset
from seqrec.io import atomic_output

COLUMNS = ["id", "user_id", "item_id", "rank"]


def to_frame(ds: Dataset, users: np.ndarray, recs: np.ndarray) -> pd.DataFrame:
    """(n, k) item indices for user indices -> submission rows with original ids, rank 1 = best."""
    n, k = recs.shape
    return pd.DataFrame({
        "id": np.arange(n * k),
        "user_id": np.repeat(ds.user_map.id(users), k),
        "item_id": ds.item_map.id(recs.ravel()),
        "rank": np.tile(np.arange(1, k + 1), n),
    })


def write_submission(path: str | Path, ds: Dataset, users: np.ndarray, recs: np.ndarray, k: int = 50) -> None:
    """Check the lists, then write `id,user_id,item_id,rank` atomically (temp file + rename)."""
    if recs.size and not 0 <= recs.min() <= recs.max() <= ds.n_items:  # a negative index would wrap silently
        raise ValueError(f"refusing to write {path}: item indices must lie in 0..{ds.n_items}, "
                         f"found {recs.min()}..{recs.max()}")
    frame = to_frame(ds, users, recs)
    problems = check(frame, ds, k)
    if problems:
        raise ValueError(f"refusing to write {path}: " + "; ".join(problems[:5]))
    with atomic_output(path) as tmp:
        frame.to_csv(tmp, index=False)


def check(frame: pd.DataFrame, ds: Dataset, k: int = 50) -> list[str]:
    """Every way a submission breaks the contest rules, one message each (empty list = valid)."""
    problems = []
    if list(frame.columns) != COLUMNS:
        return [f"columns are {list(frame.columns)}, expected exactly {COLUMNS}"]
    for col in COLUMNS:
        if not pd.api.types.is_integer_dtype(frame[col]):
            problems.append(f"column {col!r} must hold integers, found {frame[col].dtype}")
    if problems:
        return problems
    if not np.array_equal(frame["id"].to_numpy(), np.arange(len(frame))):
        first = int(np.argmax(frame["id"].to_numpy() != np.arange(len(frame))))
        problems.append(f"id must run 0..{len(frame) - 1} in order; row {first} has id "
                        f"{frame['id'].iloc[first]}")
    test_ids = set(ds.users["user_id"].to_numpy()[ds.test_users].tolist())
    got = set(frame["user_id"].unique().tolist())
    if missing := test_ids - got:
        problems.append(f"{len(missing)} test user(s) missing, e.g. user_id {sorted(missing)[0]}")
    if extra := got - test_ids:
        problems.append(f"{len(extra)} user(s) not in test.csv, e.g. user_id {sorted(extra)[0]}")
    sizes = frame.groupby("user_id").size()
    if (wrong := sizes[sizes != k]).size:
        problems.append(f"{len(wrong)} user(s) without exactly {k} rows, e.g. user_id {wrong.index[0]} "
                        f"has {wrong.iloc[0]}")
    dup = frame.duplicated(["user_id", "item_id"])
    if dup.any():
        row = frame[dup].iloc[0]
        problems.append(f"{int(dup.sum())} repeated (user, item) pair(s), e.g. user_id {row.user_id} "
                        f"item_id {row.item_id}")
    ranks = frame.groupby("user_id")["rank"].agg(lambda r: sorted(r) == list(range(1, len(r) + 1)))
    if (~ranks).any():
        problems.append(f"{int((~ranks).sum())} user(s) whose ranks are not 1..{k}, e.g. user_id "
                        f"{ranks.index[~ranks.to_numpy()][0]}")
    known = ds.items.loc[ds.items["known"], "item_id"].to_numpy()
    unknown = ~frame["item_id"].isin(known)
    if unknown.any():
        problems.append(f"{int(unknown.sum())} item_id(s) not in item_metadata, e.g. "
                        f"{frame.loc[unknown, 'item_id'].iloc[0]} (row {int(np.argmax(unknown.to_numpy()))})")
    return problems
