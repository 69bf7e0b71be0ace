"""Per-user, time-ordered sequences as flat arrays + offsets, with per-event features and sessions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from seqrec.metrics import quarter

UNKNOWN_BUCKET = -1  # listened-fraction bucket of a track without a known length


@dataclass
class Sequences:
    """User u's events are rows offsets[u]:offsets[u+1], oldest first."""

    offsets: np.ndarray
    """int64 (n_users + 1,)."""
    item: np.ndarray
    """int32 (E,) item index."""
    ts: np.ndarray
    """int64 (E,) seconds since the epoch."""
    frac: np.ndarray
    """float32 (E,) listened fraction (NaN when the track length is unknown)."""
    bucket: np.ndarray
    """int8 (E,) quarter bucket 0..4 of min(1, frac) as in the metric; UNKNOWN_BUCKET when unknown."""
    gap: np.ndarray
    """float32 (E,) seconds since the user's previous event; NaN for the first."""
    session: np.ndarray
    """int64 (E,) global session id; a session breaks after a gap above the threshold."""
    pos: np.ndarray
    """int32 (E,) position within the session, 0 for its first event."""

    @property
    def n_users(self) -> int:
        return len(self.offsets) - 1


def build_sequences(events: pd.DataFrame, n_users: int, session_gap_min: float) -> Sequences:
    """Flat sequences from events sorted by (user, ts), as the cleaning step leaves them."""
    user = events["user"].to_numpy()
    us = events["ts"].to_numpy().astype("datetime64[us]").astype(np.int64)
    d_user = np.diff(user)
    if np.any((d_user < 0) | ((d_user == 0) & (np.diff(us) < 0))):  # time must not go back within a user
        raise ValueError("events must be sorted by (user, ts); use the Dataset's events as cleaned")
    offsets = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(user, minlength=n_users), out=offsets[1:])
    ts = us // 1_000_000
    frac = events["frac"].to_numpy(np.float32)
    bucket = np.where(np.isnan(frac), UNKNOWN_BUCKET, quarter(frac) * 4)

    first = np.ones(len(user), dtype=bool)
    first[1:] = user[1:] != user[:-1]
    gap = np.empty(len(user), dtype=np.float32)
    gap[0:1] = np.nan
    gap[1:] = ts[1:] - ts[:-1]
    gap[first] = np.nan
    new_session = first | (gap > session_gap_min * 60)
    session = np.cumsum(new_session) - 1
    start = np.maximum.accumulate(np.where(new_session, np.arange(len(user)), 0))
    return Sequences(
        offsets=offsets,
        item=events["item"].to_numpy(np.int32),
        ts=ts,
        frac=frac,
        bucket=bucket.astype(np.int8),
        gap=gap,
        session=session.astype(np.int64),
        pos=(np.arange(len(user)) - start).astype(np.int32),
    )


def build_sequences_memmap(chunks: Iterable[pd.DataFrame], n_users: int, n_events: int, session_gap_min: float,
                           folder: Path) -> Sequences:
    """build_sequences over a log that arrives in chunks of whole users in user order (e.g.
    outofcore.read_shards), written into memory-mapped flat arrays `folder/<field>.npy`: only one chunk's
    sequences are in memory at a time. The arrays equal build_sequences' over the concatenated chunks."""
    folder.mkdir(parents=True, exist_ok=True)
    dtypes = {"item": np.int32, "ts": np.int64, "frac": np.float32, "bucket": np.int8, "gap": np.float32,
              "session": np.int64, "pos": np.int32}
    out = {name: np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=dt, shape=(n_events,))
           for name, dt in dtypes.items()}
    offsets = np.zeros(n_users + 1, dtype=np.int64)
    at, sessions, last_user = 0, 0, -1
    for events in chunks:
        if events.empty:
            continue
        first_user = int(events["user"].iat[0])
        if first_user <= last_user:
            raise ValueError(f"chunks must hold whole users in user order: user {first_user} after {last_user}")
        part = build_sequences(events, n_users, session_gap_min)
        n = len(events)
        if at + n > n_events:
            raise ValueError(f"the chunks hold more than the {n_events:,} events announced")
        offsets += part.offsets  # a chunk's offsets count only its own users, so they add up to the log's
        for name in dtypes:
            out[name][at:at + n] = getattr(part, name)
        out["session"][at:at + n] += sessions
        at, sessions, last_user = at + n, sessions + int(part.session[-1]) + 1, int(events["user"].iat[-1])
    if at != n_events:
        raise ValueError(f"the chunks hold {at:,} events, {n_events:,} were announced")
    for arr in out.values():
        arr.flush()
    np.save(folder / "offsets.npy", offsets)
    return Sequences(offsets=offsets, **{f.name: out[f.name] for f in fields(Sequences) if f.name != "offsets"})
