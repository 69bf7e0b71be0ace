"""Cleaning rules for hear-me logs: each rule's effect is counted in a report; ids become contiguous indices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from seqrec import PAD
from seqrec.config import CleanConfig
from seqrec.data.canon import canonicalise
from seqrec.data.rules import RULES, Rows, Rule


def column(table: pa.Table, name: str, fill: object = 0) -> tuple[np.ndarray, np.ndarray]:
    """(values with nulls filled, null mask) as numpy, without the float upcast pyarrow does for null ints."""
    col = table.column(name)
    if col.null_count == 0:  # the common case: skip building and scanning a null mask
        return col.to_numpy(), np.zeros(len(col), dtype=bool)
    nulls = pc.is_null(col).to_numpy(zero_copy_only=False)
    col = pc.fill_null(col, pa.scalar(fill, type=col.type))
    return col.to_numpy(), nulls


def index_of(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Position of each value in the unique `keys`, -1 where absent (a hash lookup: `values` is the log)."""
    return pd.Index(keys).get_indexer(values).astype(np.int32)


def _apply(rule: Rule, rows: Rows, keep: np.ndarray, cfg: CleanConfig, report: dict) -> np.ndarray:
    """Count the kept rows `rule` flags; drop them, or fix them (negative: zeroed, overlong: clipped)."""
    flagged = rule.flags(rows, cfg) & keep
    report[rule.key(cfg)] = int(flagged.sum())
    if rule.drops(cfg):
        return keep & ~flagged
    if rule.name == "negative":
        rows.dur = np.where(flagged, 0.0, rows.dur)
    elif rule.name == "overlong":
        rows.dur = np.where(flagged, rows.track, rows.dur)
    return keep


def build_items(meta: pa.Table, log_item_ids: np.ndarray, report: dict, cfg: CleanConfig | None = None
                ) -> pd.DataFrame:
    """Catalog indexed 1..n_items (row 0 is PAD): every metadata track plus tracks seen only in the log, with its
    canonical artist and song group (seqrec.data.canon; counts under report["entities"])."""
    df = meta.to_pandas()
    no_id = df["item_id"].isna()  # a null int64 turns the column float; a NaN id would cast to INT64_MIN
    report["item_metadata_missing_ids"] = int(no_id.sum())
    df = df[~no_id].astype({"item_id": np.int64})
    length = pd.to_numeric(df["track_duration"], errors="coerce")
    usable = np.isfinite(length) & (length > 0)
    df = df.iloc[np.argsort(~usable.to_numpy(), kind="stable")]  # of duplicated ids, keep the first usable copy
    dup = df["item_id"].duplicated()
    report["item_metadata_duplicate_ids"] = int(dup.sum())
    df = df[~dup].sort_index()
    ids = np.union1d(df["item_id"].to_numpy(np.int64), log_item_ids)
    items = pd.DataFrame({"item_id": np.concatenate([[-1], ids])})
    items = items.merge(df, on="item_id", how="left", sort=False)
    items["known"] = items["item_id"].isin(df["item_id"]).to_numpy() & (items.index != PAD)
    duration = items["track_duration"].to_numpy(np.float64)
    items["valid"] = items["known"] & np.isfinite(duration) & (duration > 0)
    items.loc[~items["valid"], "track_duration"] = np.nan
    artist_name = items["artist_name"] if "artist_name" in items else pd.Series(np.nan, index=items.index)
    items["artist"] = pd.factorize(artist_name)[0].astype(np.int32)  # NaN artist -> -1
    title = items["track_name"] if "track_name" in items else pd.Series(np.nan, index=items.index, dtype=object)
    report["entities"] = {}
    ent = canonicalise(artist_name, title, duration, cfg or CleanConfig(), report["entities"])
    items["canon_artist"], items["song_group"] = ent.artist, ent.song_group
    items["canon_partner"] = np.array([a[1] if len(a) > 1 else -1 for a in ent.artists], dtype=np.int32)
    report["items_with_metadata"] = int(items["known"].sum())
    report["items_only_in_log"] = int((~items["known"]).sum() - 1)
    report["items_without_valid_duration"] = int((items["known"] & ~items["valid"]).sum())
    return items


def build_users(meta: pa.Table | None, user_ids: np.ndarray) -> pd.DataFrame:
    """User table indexed 0..n_users-1 in the order of `user_ids`, with demographics where known."""
    users = pd.DataFrame({"user_id": user_ids})
    if meta is None:
        return users
    df = meta.to_pandas().drop_duplicates("user_id")
    return users.merge(df, on="user_id", how="left", sort=False)


def clean_events(
    table: pa.Table,
    items: pd.DataFrame,
    user_ids: np.ndarray,
    cfg: CleanConfig,
    report: dict,
    drop_unknown: bool = False,
) -> pd.DataFrame:
    """Typed raw events -> mapped, deduplicated, outlier-handled events sorted by (user, ts).

    `user_ids` and `items` define the index space; events of users not in it are dropped and counted.
    Events on items without metadata are kept (counted) unless `drop_unknown`.
    """
    report["rows_in"] = n = table.num_rows
    uid, u_null = column(table, "user_id")
    iid, i_null = column(table, "item_id")
    ts, t_null = column(table, "listened_datetime")
    dur, d_null = column(table, "listened_duration", fill=0.0)
    rows = Rows(u_null, i_null, t_null, d_null, ts.astype("datetime64[us]", copy=False), dur,
                index_of(user_ids, uid), index_of(items["item_id"].to_numpy(np.int64)[1:], iid) + 1,  # row 0: PAD
                np.zeros(0))
    del uid, iid  # a log-sized array each: free before sorting
    keep = np.ones(n, dtype=bool)
    for rule in RULES:
        if rule.before_dedup:
            keep = _apply(rule, rows, keep, cfg, report)

    keep_rows = np.flatnonzero(keep)
    user, item, ts, dur = rows.user[keep_rows], rows.item[keep_rows], rows.ts[keep_rows], rows.dur[keep_rows]
    del rows, keep_rows
    # Sorting by every column puts exact duplicates next to each other. Arrow's stable multi-key sort gives
    # the same order as np.lexsort((dur, item, ts, user)), several times faster.
    keys = pa.table({"user": user, "ts": ts, "item": item, "dur": dur})
    order = pc.sort_indices(keys, [(c, "ascending") for c in keys.column_names]).to_numpy()
    del keys
    user, item, ts, dur = user[order], item[order], ts[order], dur[order]
    del order
    dup = np.zeros(len(user), dtype=bool)
    dup[1:] = (user[1:] == user[:-1]) & (ts[1:] == ts[:-1]) & (item[1:] == item[:-1]) & (dur[1:] == dur[:-1])
    report["dropped_exact_duplicates"] = int(dup.sum())
    keep = ~dup

    track = items["track_duration"].to_numpy(np.float64)[item]
    known = items["known"].to_numpy()[item]
    none = np.zeros(len(user), dtype=bool)
    rows = Rows(none, none, none, none, ts, dur, user, item, track)
    for rule in RULES:
        if not rule.before_dedup:
            keep = _apply(rule, rows, keep, cfg, report)
    dur = rows.dur

    report["events_on_items_without_metadata"] = int((~known & keep).sum())
    report["items_without_metadata_in_log"] = int(len(np.unique(item[~known & keep])))
    if drop_unknown:
        report["dropped_items_without_metadata"] = int((~known & keep).sum())
        keep &= known
    report["zero_duration_events"] = int(((dur == 0) & keep).sum())

    user, item, ts, dur, track = user[keep], item[keep], ts[keep], dur[keep], track[keep]
    events = pd.DataFrame(
        {
            "user": user,
            "item": item,
            "ts": ts,
            "duration": dur.astype(np.float32),
            "frac": (dur / track).astype(np.float32),  # NaN where the track length is unknown
        },
        copy=False,  # the arrays are ours: no second copy of the log
    )
    report["rows_out"] = len(events)
    return events
