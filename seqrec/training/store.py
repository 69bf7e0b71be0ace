"""The per-event arrays the network trains from (its input ids, target weights, first plays, horizon ends), built
once per cleaned log in blocks of whole users and kept as memory-mapped files in the cleaned log's cache: a
training process holds the model, the batch and the windows' indices, and the operating system pages the log's
arrays in and out as windows are drawn. A split trains on a prefix of each user's events of the same arrays
(`EventStore.until`), so the temporal split and the refit on the whole log share one store."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from seqrec.config import OBJECTIVES, Config
from seqrec.data.dataset import Dataset, cache_root
from seqrec.data.sequences import CHUNK_EVENTS, build_sequences, event_blocks
from seqrec.io import atomic_folder
from seqrec.models.features import INPUTS, EventFeatures, event_features
from seqrec.training.batches import first_plays, horizon_ends, listened_first_plays

log = logging.getLogger(__name__)
STORE_VERSION = "1"  # bump when what the arrays hold changes
META = "meta.json"


@dataclass
class EventStore:
    """A log's per-event arrays, flat and user-sorted as seqrec.data.sequences lays them out."""

    feats: EventFeatures
    first_flags: np.ndarray
    """(E,) bool: the event is its user's first play of the track."""
    first_at: np.ndarray
    """Positions of the listened first plays (what a horizon draw picks from), ascending."""
    horizon_end: np.ndarray | None
    """(E,) one past the user's last event within the horizon after each event; None when no objective reads it."""

    @property
    def n_events(self) -> int:
        return int(self.feats.offsets[-1])

    def until(self, counts: np.ndarray) -> EventFeatures:
        """The features with each user's first `counts` events in use: the history of a split whose events are a
        prefix of each user's in this log."""
        offsets = self.feats.offsets
        if len(counts) != len(offsets) - 1 or (offsets[:-1] + counts > offsets[1:]).any():
            raise ValueError("the split's history cannot be a prefix of each user's events in this store: another "
                             "log's, or more events for a user")
        return replace(self.feats, ends=offsets[:-1] + counts)


def horizon_seconds(cfg: Config) -> float | None:
    """The horizon the objective draws from, in seconds; None when it draws none."""
    objective = OBJECTIVES[cfg.train.objective]
    return cfg.train.horizon_days * 86400.0 if objective.p_window or objective.discover_horizon else None


def event_chunks(events: pd.DataFrame, block_events: int = CHUNK_EVENTS) -> Iterator[pd.DataFrame]:
    """Cleaned events (sorted by user, ts) in blocks of whole users of about `block_events` events."""
    for a, b in event_blocks(events["user"].to_numpy(), block_events):
        yield events.iloc[a:b]


class _Column:
    """One array of the store written chunk by chunk: kept in memory, or appended to an .npy file by plain writes
    (numpy pads an .npy header so that it can be rewritten in place with the final shape). Not a writable memory
    map: the pages written belong to the file cache, not to this process's resident memory."""

    def __init__(self, dtype: type, path: Path | None):
        self.dtype, self.path, self.n, self.parts = np.dtype(dtype), path, 0, []
        if path is not None:
            self.fh = open(path, "wb")  # noqa: SIM115 (closed by finish)
            self.data_at = self._header()

    def _header(self) -> int:
        np.lib.format.write_array_header_1_0(self.fh, {"descr": np.lib.format.dtype_to_descr(self.dtype),
                                                       "fortran_order": False, "shape": (self.n,)})
        return self.fh.tell()

    def append(self, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=self.dtype)
        self.n += len(values)
        if self.path is None:
            self.parts.append(values)
        else:
            values.tofile(self.fh)

    def finish(self) -> np.ndarray:
        """The whole array: in memory, or the file memory-mapped read-only."""
        if self.path is None:
            return np.concatenate(self.parts) if self.parts else np.empty(0, self.dtype)
        self.fh.seek(0)
        if self._header() != self.data_at:
            raise RuntimeError(f"{self.path}: the .npy header changed length")
        self.fh.close()
        return np.load(self.path, mmap_mode="r")


def build_store(chunks: Iterable[pd.DataFrame], n_users: int, n_events: int, session_gap_min: float,
                weight_mode: str, horizon_s: float | None, folder: Path | None = None) -> EventStore:
    """The store of a log arriving in chunks of whole users in user order (event_chunks, or the parquet user shards
    of seqrec.data.outofcore.read_shards): in memory, or written into `folder/<array>.npy` and memory-mapped when
    `folder` is given (only one chunk's sequences are in memory then). Equal to the arrays of the whole log built at
    once."""
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    types = {"item": np.int32, "weight": np.float32, "first": np.bool_, "first_at": np.int64,
             **{inp.name: np.int8 for inp in INPUTS}, **({"horizon_end": np.int64} if horizon_s is not None else {})}
    cols = {name: _Column(dt, None if folder is None else folder / f"{name}.npy") for name, dt in types.items()}
    offsets = np.zeros(n_users + 1, dtype=np.int64)
    at, last_user = 0, -1
    for events in chunks:
        if events.empty:
            continue
        first_user = int(events["user"].iat[0])
        if first_user <= last_user:
            raise ValueError(f"chunks must hold whole users in user order: user {first_user} after {last_user}")
        n = len(events)
        if at + n > n_events:
            raise ValueError(f"the chunks hold more than the {n_events:,} events announced")
        seqs = build_sequences(events, n_users, session_gap_min)
        f = event_features(seqs, weight_mode)
        offsets += seqs.offsets  # a chunk's offsets count only its own users, so they add up to the log's
        flags = first_plays(seqs.offsets, seqs.item, block_events=n)
        for name, values in (("item", f.item), ("weight", f.weight), ("first", flags),
                             ("first_at", listened_first_plays(flags, f.weight, offset=at)), *f.inputs.items()):
            cols[name].append(values)
        if horizon_s is not None:
            cols["horizon_end"].append(at + horizon_ends(seqs.offsets, seqs.ts, horizon_s, block_events=n))
        at, last_user = at + n, int(events["user"].iat[-1])
    if at != n_events:
        raise ValueError(f"the chunks hold {at:,} events, {n_events:,} were announced")
    a = {name: c.finish() for name, c in cols.items()}
    if folder is not None:
        np.save(folder / "offsets.npy", offsets)
    return EventStore(EventFeatures(offsets, a["item"], {inp.name: a[inp.name] for inp in INPUTS}, a["weight"]),
                      a["first"], a["first_at"], a.get("horizon_end"))


def load_store(folder: Path) -> EventStore:
    """A store written by build_store, its arrays memory-mapped read-only."""
    def array(name: str) -> np.ndarray:
        return np.load(folder / f"{name}.npy", mmap_mode="r")

    horizon = array("horizon_end") if (folder / "horizon_end.npy").exists() else None
    feats = EventFeatures(np.load(folder / "offsets.npy"), array("item"), {inp.name: array(inp.name) for inp in INPUTS},
                          array("weight"))
    return EventStore(feats, array("first"), array("first_at"), horizon)


def event_store(ds: Dataset, cfg: Config) -> EventStore:
    """The store of a Dataset's whole log under the run's settings: memory-mapped from the cleaned log's cache
    (built there on first use, atomically: a crash leaves no half store, and a process that finds one built by
    another uses it), or in memory for a Dataset that did not come from a cache."""
    horizon_s = horizon_seconds(cfg)
    args = (ds.n_users, len(ds.events), cfg.clean.session_gap_min, cfg.train.weight_mode, horizon_s)
    cache = cache_root(cfg.data) / ds.digest if ds.digest else None
    if cache is None or not cache.is_dir():
        return build_store(event_chunks(ds.events), *args)
    key = hashlib.sha256(json.dumps([STORE_VERSION, *args[2:]]).encode()).hexdigest()[:12]
    path = cache / f"store-{key}"
    if (path / META).exists():
        try:
            meta = json.loads((path / META).read_text())
            if meta["events"] == len(ds.events) and meta["users"] == ds.n_users:
                return load_store(path)
        except Exception as err:  # a damaged store is rebuilt, as a damaged cache is
            log.warning("%s: damaged training store (%s); rebuilding it", path, type(err).__name__)
    log.info("writing the training store %s (%s events)", path, f"{len(ds.events):,}")
    with atomic_folder(path) as tmp:  # absent, damaged or of another log: built afresh
        build_store(event_chunks(ds.events), *args, folder=tmp)
        (tmp / META).write_text(json.dumps({"events": len(ds.events), "users": ds.n_users, "version": STORE_VERSION,
                                            "session_gap_min": args[2], "weight_mode": args[3],
                                            "horizon_s": horizon_s}))
    return load_store(path)
