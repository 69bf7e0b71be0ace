"""Decoding in shards of users, one after another or in forked worker processes, the lists put back in the
users' order.

Hand-written over multiprocessing because a fork shares the loaded network and the log-wide tables without
pickling them; each worker then holds only its own shard's evidence.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")
_JOB: Callable[[np.ndarray], object] | None = None
"""The decoding function the forked workers inherit (a closure cannot be pickled to them)."""


def split_users(users: np.ndarray, size: int) -> list[np.ndarray]:
    """`users` cut into consecutive shards of at most `size`."""
    return np.array_split(users, range(size, len(users), size)) if len(users) else []


def decode_shards(decode: Callable[[np.ndarray], np.ndarray], users: np.ndarray, size: int,
                  workers: int = 1) -> np.ndarray:
    """np.concatenate of decode(shard) over the shards of `users` (rows in the users' order), with progress on
    stderr; `workers` > 1 decodes them in that many forked processes of one thread each."""
    shards = split_users(users, size)
    if not shards:
        raise ValueError("no users to decode")
    return np.concatenate(list(iter_shards(decode, shards, workers)))


def iter_shards(decode: Callable[[np.ndarray], T], shards: list[np.ndarray], workers: int = 1) -> Iterator[T]:
    """decode(shard) for each shard, in order, in this process or in `workers` forked processes of one thread
    each; a progress line with users/s and the time left on stderr after each shard."""
    global _JOB
    total, t0, done, pool = sum(len(s) for s in shards), time.perf_counter(), 0, None
    if workers == 1 or len(shards) <= 1:
        results = map(decode, shards)
    else:
        if torch.cuda.is_initialized():
            raise ValueError("decode.workers > 1 forks CPU processes; a CUDA decode runs in one process "
                             "(set decode.workers=1, or decode.device=cpu)")
        _JOB = decode
        pool = multiprocessing.get_context("fork").Pool(min(workers, len(shards)), initializer=torch.set_num_threads,
                                                         initargs=(1,))
        results = pool.imap(_run, shards)
    try:
        for i, (shard, out) in enumerate(zip(shards, results, strict=True), 1):
            done += len(shard)
            rate = done / (time.perf_counter() - t0)
            print(f"decoded shard {i}/{len(shards)}: {done:,}/{total:,} users, {rate:.0f} users/s, "
                  f"{(total - done) / rate / 60:.1f} min left", file=sys.stderr, flush=True)
            yield out
    finally:
        if pool is not None:
            if done < total:  # stopped early (an error, or the caller stopped reading): drop the queued shards
                pool.terminate()
            else:
                pool.close()
            pool.join()
            _JOB = None


def _run(users: np.ndarray) -> object:
    return _JOB(users)
