"""Offline lists: every chosen user's top k as parquet files of user shards (`user_id, item_id, rank, score`),
tied to the run and the data by a digest and resumable shard by shard, for a service to serve.

FOLDER/manifest.json holds the digest, k, the users' count and the shard size; each shard is written whole
(temporary file and rename) as part-NNNNN.parquet, so a shard on disk is finished: a run killed halfway
resumes at the first missing shard. Lists of another digest, k or users in FOLDER are removed first.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from seqrec import PAD
from seqrec.data.dataset import Dataset
from seqrec.inference.shards import iter_shards, split_users
from seqrec.io import atomic_output, file_sha256, write_atomic

MANIFEST = "manifest.json"
PART = "part-{:05d}.parquet"
Rank = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""users (n,) -> their (n, k) best items and (n, k) ranking scores."""


@dataclass(frozen=True)
class Manifest:
    digest: str
    """Of the checkpoint that decoded and of the data it read (lists_digest)."""
    k: int
    users: int
    """How many users the lists hold (shards of `shard_users`, in user index order)."""
    shard_users: int
    complete: bool = False


def lists_digest(ckpt: Path, ds: Dataset) -> str:
    """What offline lists were decoded from: the checkpoint's bytes and the cleaned inputs' digest."""
    if ds.digest is None:
        raise ValueError("offline lists need a data set read by load_dataset (its digest names the inputs)")
    return hashlib.sha256(f"{file_sha256(ckpt)}|{ds.digest}".encode()).hexdigest()[:16]


def write_lists(folder: str | Path, ds: Dataset, users: np.ndarray, rank: Rank, k: int, digest: str,
                shard_users: int, workers: int = 1) -> Manifest:
    """Decode and write the lists of `users` into `folder`, skipping the shards already there for the same
    digest, k and users; returns the finished manifest. Progress and ETA go to stderr."""
    folder = Path(folder)
    users = np.sort(np.asarray(users, np.int64))
    want = Manifest(digest, k, len(users), shard_users)
    shards = split_users(users, shard_users)
    have = _manifest(folder)
    if have is not None and asdict(have) | {"complete": False} != asdict(want):
        print(f"{folder}: lists of another run, data, k or user set ({have.digest}, k={have.k}, {have.users:,} "
              f"users): writing them afresh", file=sys.stderr)
        for p in folder.glob("part-*.parquet"):
            p.unlink()
        (folder / MANIFEST).unlink()
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / MANIFEST, json.dumps(asdict(want), indent=2))
    todo = [i for i in range(len(shards)) if not (folder / PART.format(i)).exists()]
    if len(todo) < len(shards):
        print(f"{folder}: {len(shards) - len(todo)} of {len(shards)} shards already written: resuming",
              file=sys.stderr)
    item_ids, user_ids = ds.item_map.ids, ds.user_map.ids
    for i, (items, scores) in zip(todo, iter_shards(rank, [shards[i] for i in todo], workers), strict=True):
        problems = check_shard(items, ds, k)
        if problems:
            raise ValueError(f"refusing to write {folder / PART.format(i)}: {'; '.join(problems)}")
        n = len(items)
        table = pa.table({"user_id": np.repeat(user_ids[shards[i]], k), "item_id": item_ids[items.ravel()],
                          "rank": np.tile(np.arange(1, k + 1, dtype=np.int16), n),
                          "score": scores.astype(np.float32).ravel()})
        with atomic_output(folder / PART.format(i)) as tmp:
            pq.write_table(table, tmp)
    done = Manifest(digest, k, len(users), shard_users, complete=True)
    write_atomic(folder / MANIFEST, json.dumps(asdict(done), indent=2))
    return done


def check_shard(items: np.ndarray, ds: Dataset, k: int) -> list[str]:
    """What is wrong with a shard's (n, k) lists: short lists, repeated or not recommendable tracks."""
    problems = []
    if items.shape[1] != k:
        problems.append(f"lists of {items.shape[1]} tracks, expected {k}")
    srt = np.sort(items, axis=1)
    if (bad := (srt[:, 1:] == srt[:, :-1]).any(1)).any():
        problems.append(f"{int(bad.sum())} list(s) repeat a track")
    allowed = ds.items["valid"].to_numpy()
    if (bad := ~allowed[items] | (items == PAD)).any():
        problems.append(f"{int(bad.sum())} track(s) that may not be recommended (no valid length)")
    return problems


@dataclass
class OfflineLists:
    """Lists read back for serving: user index -> its k items (indices) and scores."""

    users: np.ndarray
    """(n,) sorted user indices."""
    items: np.ndarray
    """(n, k) item indices, best first."""
    scores: np.ndarray
    """(n, k) float32 ranking scores."""

    def of(self, user: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The user's items and scores, None when the lists do not hold the user."""
        i = int(np.searchsorted(self.users, user))
        if i == len(self.users) or self.users[i] != user:
            return None
        return self.items[i], self.scores[i]


def read_lists(folder: str | Path, ds: Dataset, digest: str) -> OfflineLists:
    """The finished lists in `folder` as item and user indices of `ds`; ValueError naming the reason when they
    are unfinished or were decoded by another checkpoint or from other data (their digest)."""
    folder = Path(folder)
    man = _manifest(folder)
    if man is None or not man.complete:
        raise ValueError(f"{folder}: no finished lists ({MANIFEST} {'missing' if man is None else 'unfinished'}): "
                         "run predict.py users=all lists=FOLDER to the end")
    if man.digest != digest:
        raise ValueError(f"{folder}: the lists were decoded by another checkpoint or from other data (digest "
                         f"{man.digest}, this run and data {digest})")
    rows = _rows(folder)
    n = len(rows["rank"]) // man.k
    if n != man.users or n * man.k != len(rows["rank"]):
        raise ValueError(f"{folder}: {len(rows['rank']):,} rows, expected {man.users:,} users x {man.k}")
    users = ds.user_map.index(rows["user_id"][::man.k])
    items = ds.item_map.index(rows["item_id"]).reshape(n, man.k)
    if (users < 0).any() or (items <= PAD).any():
        raise ValueError(f"{folder}: lists name users or tracks this data set does not have")
    return OfflineLists(users, items, rows["score"].reshape(n, man.k))


def check_lists(folder: str | Path, ds: Dataset, users: np.ndarray) -> list[str]:
    """Every way the finished lists in `folder` fall short: users missing or listed twice, lists not of k
    distinct recommendable tracks, ranks not 1..k (empty list = valid)."""
    folder = Path(folder)
    man = _manifest(folder)
    if man is None:
        return [f"{folder / MANIFEST} missing"]
    rows = _rows(folder)
    uid, rank = rows["user_id"], rows["rank"]
    per_user, counts = np.unique(uid, return_counts=True)
    want = np.sort(ds.user_map.id(np.asarray(users, np.int64)))
    problems = []
    if not np.array_equal(per_user, want):
        problems.append(f"{len(np.setdiff1d(want, per_user))} user(s) missing, "
                        f"{len(np.setdiff1d(per_user, want))} not asked for")
    if (counts != man.k).any():
        problems.append(f"{int((counts != man.k).sum())} user(s) without exactly {man.k} rows")
        return problems
    if not np.array_equal(rank.reshape(-1, man.k), np.broadcast_to(np.arange(1, man.k + 1), (len(counts), man.k))):
        problems.append(f"ranks are not 1..{man.k} for every user")
    items = ds.item_map.index(rows["item_id"]).reshape(-1, man.k)
    if (items < PAD).any():
        problems.append(f"{int((items < PAD).sum())} item_id(s) not in the catalogue")
        return problems
    return problems + check_shard(items, ds, man.k)


def _rows(folder: Path) -> dict[str, np.ndarray]:
    """Every column of the lists' parquet files, rows by user then rank."""
    table = pq.read_table(sorted(folder.glob("part-*.parquet")), columns=["user_id", "item_id", "rank", "score"])
    cols = {name: table[name].to_numpy() for name in table.column_names}
    order = np.lexsort((cols["rank"], cols["user_id"]))
    return {name: col[order] for name, col in cols.items()}


def _manifest(folder: Path) -> Manifest | None:
    path = folder / MANIFEST
    return Manifest(**json.loads(path.read_text())) if path.exists() else None
