"""The cleaned data set every model reads, built from a hear-me folder and cached as parquet."""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seqrec.config import CleanConfig, DataConfig
from seqrec.data import outofcore
from seqrec.data.clean import build_items, build_users, clean_events, column
from seqrec.data.ids import IdMap
from seqrec.data.ingest import IGNORED, MALFORMED, DataError, read_dir, scan_ids
from seqrec.io import atomic_folder, file_sha256

log = logging.getLogger(__name__)
CACHE_VERSION = "5"  # bump when cleaning changes what lands in the cache
HASH_CHUNK = 1 << 22
"""The cache key hashes every input whole, streamed in chunks of this many bytes (sha256 runs at disk speed: an
edit that keeps a file's size and mtime still invalidates the cache)."""


@dataclass
class Dataset:
    """Cleaned events plus the catalog and users they index; `end` is when recommendations are made."""

    events: pd.DataFrame
    """user (int32), item (int32, PAD never used), ts (datetime64[us]), duration (s), frac; sorted by user, ts."""
    items: pd.DataFrame
    """Indexed 0..n_items (row 0 is PAD): item_id, track_duration (NaN unless valid), artist, known, valid."""
    users: pd.DataFrame
    """Indexed 0..n_users-1: user_id and demographics where known."""
    test_users: np.ndarray
    """User indices to recommend for."""
    end: pd.Timestamp
    """Start of the window being predicted; nothing at or after it is in `events`."""
    future: pd.DataFrame | None = None
    """Events of the predicted window when known (synthetic future.csv, or a temporal hold-out)."""
    report: dict = field(default_factory=dict)
    """Cleaning counts."""
    digest: str | None = None
    """The inputs' content under the cleaning rules (load_dataset's cache key; None when built otherwise): what
    offline lists were decoded from."""

    @property
    def n_items(self) -> int:
        """Catalog size excluding PAD."""
        return len(self.items) - 1

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def catalog_id(self) -> str:
        """A fingerprint of the catalog (its item ids in index order): a trained run decodes only the catalog it
        learned."""
        return hashlib.sha1(self.items["item_id"].to_numpy(np.int64).tobytes()).hexdigest()[:16]

    @property
    def item_map(self) -> IdMap:
        """item index <-> item_id (index 0 is PAD)."""
        return IdMap.of(self.items["item_id"].to_numpy(np.int64), first=1)

    @property
    def user_map(self) -> IdMap:
        """user index <-> user_id."""
        return IdMap.of(self.users["user_id"].to_numpy(np.int64))

    @property
    def song_group(self) -> np.ndarray:
        """(n_items + 1,) each track's song group (seqrec.data.canon); each track its own where not computed."""
        if "song_group" in self.items:
            return self.items["song_group"].to_numpy(np.int64)
        return np.arange(len(self.items), dtype=np.int64)

    @property
    def canonical_artists(self) -> tuple[np.ndarray, np.ndarray]:
        """(n_items + 1,) twice: each track's primary canonical artist and its collaborator's, -1 where none (the
        raw artist where not computed)."""
        if "canon_artist" in self.items:
            return (self.items["canon_artist"].to_numpy(np.int64), self.items["canon_partner"].to_numpy(np.int64))
        return self.items["artist"].to_numpy(np.int64), np.full(len(self.items), -1, np.int64)

    def check_list_length(self, k: int, key: str) -> None:
        """Refuse lists of `k` distinct tracks (setting `key`) from a catalogue with fewer recommendable ones."""
        valid = int(self.items["valid"].sum())
        if k > valid:
            raise DataError(f"{key}={k}: the catalogue has only {valid:,} tracks with a valid length to recommend")

    def has_history(self, users: np.ndarray, usable_only: bool = True) -> np.ndarray:
        """(len(users),) bool: the user has an event (on a track with a valid length, with `usable_only`); a binary
        search in the user-sorted events, not a scan of the log per call."""
        ev_user = self.events["user"].to_numpy()
        lo, hi = np.searchsorted(ev_user, users), np.searchsorted(ev_user, users, side="right")
        if not usable_only:
            return hi > lo
        seen = np.zeros(len(ev_user) + 1, dtype=np.int64 if len(ev_user) >= 2**31 else np.int32)
        np.cumsum(self.usable_events(), out=seen[1:])  # usable events before each position
        return seen[hi] > seen[lo]

    def usable_events(self) -> np.ndarray:
        """(events,) bool: events on tracks with a valid length, the ones a history is built from."""
        return self.items["valid"].to_numpy()[self.events["item"].to_numpy()]

    def shard(self, users: np.ndarray) -> Dataset:
        """The same catalog, users and window end with the events of `users` only (they become the test users):
        what a shard of users is decoded from, so the per-user evidence follows the shard, not the log."""
        users = np.unique(np.asarray(users, dtype=np.int64))
        ev_user = self.events["user"].to_numpy()
        lo, hi = np.searchsorted(ev_user, users), np.searchsorted(ev_user, users, side="right")  # sorted by user
        n = hi - lo
        rows = np.repeat(lo - np.cumsum(n) + n, n) + np.arange(n.sum())  # the concatenated ranges lo:hi
        return replace(self, events=self.events.iloc[rows].reset_index(drop=True), future=None, test_users=users)

    def restrict(self, events: pd.DataFrame, end: pd.Timestamp, future: pd.DataFrame | None,
                 test_users: np.ndarray) -> Dataset:
        """The same catalog and users with another history / window."""
        return replace(self, events=events, end=end, future=future, test_users=test_users)


def load_dataset(data: DataConfig, clean: CleanConfig) -> Dataset:
    """Read, clean and index a hear-me folder; reuses the parquet cache while the inputs are unchanged."""
    cache = cache_dir(data, clean)
    ds = None
    if (cache / "report.json").exists():
        log.info("using cleaned cache %s", cache)
        try:
            ds = _read_cache(cache)
        except Exception as err:  # a truncated parquet, an empty report: any damage means rebuild
            warnings.warn(f"{cache}: damaged cleaned cache ({type(err).__name__}: {str(err)[:120]}); rebuilding it",
                          stacklevel=2)
    if ds is None:
        ds = build_dataset(data.dir, clean, data.engine, data.duckdb_memory)
        _write_cache(ds, cache)
    ds.digest = cache.name
    pa.default_memory_pool().release_unused()  # what Arrow freed while reading: 1 GiB per 25M events otherwise
    check_plausible(ds, data)
    return ds


def check_plausible(ds: Dataset, data: DataConfig) -> None:
    """Refuse a log that parses but cannot be what it claims (DataError, one line with the counts): most events on
    item ids the catalogue does not list, or most test users without usable history, as swapped user_id and
    item_id columns or files of different exports give. The thresholds are data.max_* settings."""
    folder, r = Path(data.dir), ds.report
    if not ds.items["valid"].any():
        raise DataError(f"{folder / 'item_metadata.csv'}: no track has a valid track_duration (all "
                        f"{r['items_with_metadata']:,} are missing, zero or negative): listened fractions and the "
                        "metric need the tracks' lengths")
    events, unknown = len(ds.events), r["interactions"]["events_on_items_without_metadata"]
    if events and unknown / events > data.max_unknown_item_share:
        raise DataError(f"{folder / 'interactions.csv'}: {unknown:,} of {events:,} events ({unknown / events:.0%}) "
                        f"are on item ids that {folder / 'item_metadata.csv'} does not list (above "
                        f"data.max_unknown_item_share={data.max_unknown_item_share}): are user_id and item_id "
                        "swapped, or the files from different exports?")
    users = len(ds.test_users)
    without = users - int(ds.has_history(ds.test_users).sum())
    if users and without / users > data.max_test_users_without_history:
        raise DataError(f"{folder / 'test.csv'}: {without:,} of {users:,} test users ({without / users:.0%}) have no "
                        f"usable history in interactions.csv (above data.max_test_users_without_history="
                        f"{data.max_test_users_without_history}): are user_id and item_id swapped, test.csv from "
                        "another export, or their tracks without a valid track_duration?")


def cache_dir(data: DataConfig, clean: CleanConfig) -> Path:
    """Where load_dataset keeps the cleaned log of these inputs under these cleaning rules (hashes every input)."""
    return cache_root(data) / _cache_key(Path(data.dir), clean)


def cache_root(data: DataConfig) -> Path:
    """The folder of the cleaned caches: a loaded Dataset's own is `cache_root(data) / ds.digest`, found without
    hashing the inputs again."""
    return Path(data.cache_dir) if data.cache_dir else Path(data.dir) / ".seqrec_cache"


def build_dataset(folder: str | Path, clean: CleanConfig, engine: str = DataConfig.engine,
                  memory: str = DataConfig.duckdb_memory) -> Dataset:
    """Clean a hear-me folder into a Dataset (no cache). `engine="duckdb"` streams interactions.csv through
    DuckDB (seqrec.data.outofcore) instead of reading it whole: the same events and counts."""
    tables = read_dir(folder, log=engine == "memory")
    inter, test = tables["interactions.csv"], tables["test.csv"]
    report: dict = {"folder": str(folder), "config": asdict(clean)}
    read = {name: t.schema.metadata for name, t in tables.items() if t is not None}
    report["malformed_rows_skipped"] = {name: int(m[MALFORMED.encode()]) for name, m in read.items()}
    report["ignored_columns"] = {name: m[IGNORED.encode()].decode().split(",") for name, m in read.items()
                                 if m[IGNORED.encode()]}

    log_csv = Path(folder) / "interactions.csv"
    con = outofcore.connect(memory) if engine == "duckdb" else None
    if con is None:
        log_users, log_items = _unique_ids(inter, "user_id"), _unique_ids(inter, "item_id")
    else:  # streamed under read_csv's rules (its errors, its counts), then cleaned by DuckDB
        scan = scan_ids(log_csv)
        report["malformed_rows_skipped"]["interactions.csv"] = scan.malformed
        if scan.ignored:
            report["ignored_columns"]["interactions.csv"] = scan.ignored
        log_users, log_items = scan.ids["user_id"], scan.ids["item_id"]
    items = build_items(tables["item_metadata.csv"], log_items, report, clean)
    test_ids, test_null = column(test, "user_id")
    if test_null.any():
        raise DataError(f"{Path(folder) / 'test.csv'}: empty user_id in data row {int(test_null.argmax()) + 1}")
    if not len(test_ids):
        raise DataError(f"{Path(folder) / 'test.csv'}: no user_id under the header; expected the users to "
                        "recommend for, one per line")
    report["test_duplicate_user_ids"] = int(len(test_ids) - len(np.unique(test_ids)))
    user_ids = np.union1d(log_users, test_ids)
    users = build_users(tables["user_metadata.csv"], user_ids)

    report["interactions"] = {}
    if con is None:
        events = clean_events(inter, items, user_ids, clean, report["interactions"])
    else:
        events = outofcore.clean_events(con, log_csv, items, user_ids, clean, report["interactions"], scan.rows)
    test_users = np.searchsorted(user_ids, np.unique(test_ids)).astype(np.int64)
    report["test_users"] = len(test_users)
    future = None
    if tables["future.csv"] is not None:
        report["future"] = {}
        future_cfg = replace(clean, start=None, end=None)
        future = clean_events(tables["future.csv"], items, user_ids, future_cfg, report["future"])
    if events.empty:
        raise DataError(f"{Path(folder) / 'interactions.csv'}: no event left after cleaning "
                        f"(report: {report['interactions']})")
    end = _log_end(events)
    report["log_end"] = str(end)
    ds = Dataset(events, items, users, test_users, end, future, report)
    report["test_users_without_history"] = int((~ds.has_history(test_users, usable_only=False)).sum())
    return ds


def _unique_ids(table: pa.Table, name: str) -> np.ndarray:
    """Sorted distinct non-null ids of a column; a null id must not become a phantom item or user 0."""
    return np.sort(table.column(name).unique().drop_null().to_numpy())


def _log_end(events: pd.DataFrame) -> pd.Timestamp:
    """Midnight after the last event: the prediction time of the whole log."""
    return (events["ts"].max() + pd.Timedelta(days=1)).normalize()


def _cache_key(folder: Path, clean: CleanConfig) -> str:
    parts = [CACHE_VERSION, json.dumps(asdict(clean), sort_keys=True)]
    for name in ("interactions.csv", "item_metadata.csv", "user_metadata.csv", "test.csv", "future.csv"):
        p = folder / name
        st = p.stat() if p.exists() else None
        parts.append(f"{name}:{file_sha256(p, HASH_CHUNK)}" if st else f"{name}:absent")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _write_cache(ds: Dataset, cache: Path) -> None:
    """Write into a temporary sibling folder, then rename: a crash never leaves a half cache."""
    with atomic_folder(cache) as tmp:
        ds.events.to_parquet(tmp / "events.parquet", index=False)
        ds.items.to_parquet(tmp / "items.parquet", index=False)
        ds.users.to_parquet(tmp / "users.parquet", index=False)
        if ds.future is not None:
            ds.future.to_parquet(tmp / "future.parquet", index=False)
        np.save(tmp / "test_users.npy", ds.test_users)
        (tmp / "report.json").write_text(json.dumps(ds.report, indent=2, default=str))


def _read_parquet(path: Path) -> pd.DataFrame:
    """A parquet file as a DataFrame, each column freed from Arrow's memory as it is converted."""
    return pq.read_table(path).to_pandas(self_destruct=True, split_blocks=True)


def _read_cache(cache: Path) -> Dataset:
    events = _read_parquet(cache / "events.parquet")
    future = _read_parquet(cache / "future.parquet") if (cache / "future.parquet").exists() else None
    return Dataset(
        events=events,
        items=_read_parquet(cache / "items.parquet"),
        users=_read_parquet(cache / "users.parquet"),
        test_users=np.load(cache / "test_users.npy"),
        end=_log_end(events),
        future=future,
        report=json.loads((cache / "report.json").read_text()),
    )
