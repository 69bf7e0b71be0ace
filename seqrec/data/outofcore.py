"""The cleaning rules of clean.py run by DuckDB over the interactions CSV, for logs larger than memory: the same
rules, in the same order, with the same counts, written as a parquet dataset in user shards.

Hand-written SQL because the rules are ours; DuckDB streams the CSV and spills to disk under its memory limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv

from seqrec.config import CleanConfig, DataConfig
from seqrec.data.ingest import BLOCK_SIZES, INTERACTIONS, DataError, header, unreadable

SHARD_USERS = 65_536
"""Users per parquet partition (`shard=user // SHARD_USERS`)."""
COLUMNS = "user, item, ts, duration, frac"
ORDER = "user, ts, item, duration"  # as clean.clean_events sorts


def connect(memory_limit: str = DataConfig.duckdb_memory) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that spills to its temp folder past `memory_limit`; row order is set by ORDER BY
    only."""
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    return con


@contextmanager
def _named(csv: Path) -> Iterator[None]:
    """DuckDB's parse errors (they give the line and the value) as DataErrors naming the file."""
    try:
        yield
    except (duckdb.InvalidInputException, duckdb.ConversionException) as err:
        raise unreadable(csv, str(err)) from None


def clean_to_parquet(con: duckdb.DuckDBPyConnection, csv: Path, items: pd.DataFrame, user_ids: np.ndarray,
                     cfg: CleanConfig, report: dict, out: Path, rows: int | None = None) -> None:
    """Clean interactions.csv into `out` (parquet, partitioned by user shard), counting as clean_events does;
    `rows`: how many rows seqrec.data.ingest.scan_ids read, which DuckDB must read too."""
    with _named(csv):
        _clean(con, csv, items, user_ids, cfg, report, rows)
        out.mkdir(parents=True, exist_ok=True)
        con.execute(f"""COPY (SELECT {COLUMNS}, user // {SHARD_USERS} AS shard FROM cleaned ORDER BY {ORDER})
                        TO '{out}' (FORMAT parquet, PARTITION_BY (shard), OVERWRITE_OR_IGNORE)""")


def clean_events(con: duckdb.DuckDBPyConnection, csv: Path, items: pd.DataFrame, user_ids: np.ndarray,
                 cfg: CleanConfig, report: dict, rows: int | None = None) -> pd.DataFrame:
    """clean.clean_events' events and counts, the CSV streamed by DuckDB (only the cleaned events are held);
    `rows` as clean_to_parquet's."""
    with _named(csv):
        _clean(con, csv, items, user_ids, cfg, report, rows)
        return _frame(con, "cleaned")


def read_events(out: Path) -> pd.DataFrame:
    """The cleaned events of a parquet dataset written by clean_to_parquet, sorted by user, ts."""
    return _frame(duckdb.connect(), f"read_parquet('{out}/*/*.parquet')")


def read_shards(out: Path) -> Iterator[pd.DataFrame]:
    """The cleaned events of a parquet dataset written by clean_to_parquet, one user shard at a time in user
    order, each sorted by user, ts: only one shard is in memory."""
    con = duckdb.connect()
    shards = sorted(out.glob("shard=*"), key=lambda p: int(p.name.split("=", 1)[1]))
    for shard in shards:
        yield _frame(con, f"read_parquet('{shard}/*.parquet')")


def count_events(out: Path) -> int:
    """Rows of a parquet dataset written by clean_to_parquet (read from the files' metadata)."""
    return int(duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{out}/*/*.parquet')").fetchone()[0])


def _frame(con: duckdb.DuckDBPyConnection, source: str) -> pd.DataFrame:
    frame = con.execute(f"SELECT {COLUMNS} FROM {source} ORDER BY {ORDER}").df()
    return frame.astype({"user": np.int32, "item": np.int32, "ts": "datetime64[us]"})


def _clean(con: duckdb.DuckDBPyConnection, csv: Path, items: pd.DataFrame, user_ids: np.ndarray,
           cfg: CleanConfig, report: dict, rows: int | None) -> None:
    """The view `cleaned` and the report's counts."""
    con.register("items_df", pd.DataFrame({"item": np.arange(1, len(items), dtype=np.int32),
                                           "item_id": items["item_id"].to_numpy(np.int64)[1:],
                                           "track": items["track_duration"].to_numpy(np.float64)[1:],
                                           "known": items["known"].to_numpy()[1:]}))
    con.register("users_df", pd.DataFrame({"user": np.arange(len(user_ids), dtype=np.int32), "user_id": user_ids}))
    start = f"TIMESTAMP '{cfg.start}'" if cfg.start is not None else "NULL"
    end = f"TIMESTAMP '{cfg.end}'" if cfg.end is not None else "NULL"
    max_s = cfg.max_listen_hours * 3600
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW flagged AS
        SELECT r.*, u.user, i.item, i.track, i.known,
               (r.user_id IS NULL OR r.item_id IS NULL OR r.ts IS NULL) AS no_key,
               r.dur IS NULL AS no_dur,
               (coalesce(r.ts < {start}, false) OR coalesce(r.ts >= {end}, false)) AS outside
        FROM (SELECT user_id, item_id, listened_duration AS dur, listened_datetime AS ts FROM {_scan(csv)}) r
        LEFT JOIN users_df u USING (user_id) LEFT JOIN items_df i USING (item_id)""")
    counts = con.execute("""
        SELECT count(*), sum(no_key::INT), sum((NOT no_key AND no_dur)::INT),
               sum((NOT no_key AND NOT no_dur AND outside)::INT),
               sum((NOT no_key AND NOT no_dur AND NOT outside AND user IS NULL)::INT),
               sum((NOT no_key AND NOT no_dur AND NOT outside AND user IS NOT NULL AND item IS NULL)::INT)
        FROM flagged""").fetchone()
    keys = ("rows_in", "dropped_missing_ids_or_time", "dropped_missing_duration", "dropped_outside_period",
            "dropped_unknown_user", "dropped_unknown_item_id")
    report.update({k: int(v or 0) for k, v in zip(keys, counts, strict=True)})
    if rows is not None and report["rows_in"] != rows:  # a value DuckDB refuses that pyarrow accepted
        try:
            bad = con.execute("SELECT line, error_message FROM reject_errors WHERE error_type NOT IN "
                              "('TOO MANY COLUMNS', 'MISSING COLUMNS') ORDER BY line LIMIT 1").fetchone()
        except duckdb.CatalogException:  # nothing rejected
            bad = None
        raise DataError(f"{csv}: DuckDB read {report['rows_in']:,} rows where the hear-me reader read {rows:,}"
                        + (f"; line {bad[0]}: {' '.join(bad[1].split())[:200]}" if bad else "")
                        + "; use data.engine=memory")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE kept AS
        SELECT DISTINCT user, ts, item, dur, track, known FROM flagged
        WHERE NOT no_key AND NOT no_dur AND NOT outside AND user IS NOT NULL AND item IS NOT NULL""")
    distinct = con.execute("SELECT count(*) FROM kept").fetchone()[0]
    report["dropped_exact_duplicates"] = int(report["rows_in"] - sum(report[k] for k in keys[1:]) - distinct)
    negative = "dropped" if cfg.negative == "drop" else "zeroed"
    overlong = "clipped" if cfg.overlong == "clip" else "dropped"
    row = con.execute(f"""
        SELECT sum((NOT abs(dur) <= {max_s})::INT),
               sum((abs(dur) <= {max_s} AND dur < 0)::INT),
               sum((abs(dur) <= {max_s} AND {_not_negative(cfg)} AND {_d(cfg)} > {cfg.max_duration_ratio} * track)::INT)
        FROM kept""").fetchone()
    report["dropped_nonfinite_or_over_max_listen"] = int(row[0] or 0)
    report[f"negative_duration_{negative}"] = int(row[1] or 0)
    report[f"overlong_{overlong}"] = int(row[2] or 0)
    over = f"({_d(cfg)} > {cfg.max_duration_ratio} * track)"
    keep = f"abs(dur) <= {max_s} AND {_not_negative(cfg)}" + (f" AND NOT coalesce({over}, false)"
                                                             if cfg.overlong == "drop" else "")
    duration = f"CASE WHEN coalesce({over}, false) THEN track ELSE {_d(cfg)} END"
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW cleaned AS
        SELECT user, item, ts, ({duration})::FLOAT AS duration, (({duration}) / track)::FLOAT AS frac, known
        FROM kept WHERE {keep}""")
    row = con.execute("""SELECT count(*), sum((NOT known)::INT), count(DISTINCT CASE WHEN NOT known THEN item END),
                                sum((duration = 0)::INT) FROM cleaned""").fetchone()
    report["events_on_items_without_metadata"] = int(row[1] or 0)
    report["items_without_metadata_in_log"] = int(row[2] or 0)
    report["zero_duration_events"] = int(row[3] or 0)
    report["rows_out"] = int(row[0])


def _d(cfg: CleanConfig) -> str:
    """The duration after the negative rule (zeroed when it zeroes)."""
    return "dur" if cfg.negative == "drop" else "greatest(dur, 0)"


def _not_negative(cfg: CleanConfig) -> str:
    return "dur >= 0" if cfg.negative == "drop" else "true"


MAX_LINE = BLOCK_SIZES[-2]
"""The longest line DuckDB reads: as long as read_csv's second-largest block."""
DUCKDB_TYPES = {pa.int64(): "BIGINT", pa.float64(): "DOUBLE", pa.timestamp("us"): "TIMESTAMP"}


def _scan(csv: Path) -> str:
    """read_csv over interactions.csv in seqrec.data.ingest.read_csv's dialect: the header's own names (in its order,
    so columns are found by name), '"' quotes doubled to escape, pyarrow's null markers, nothing sniffed; rows with
    the wrong number of fields go to DuckDB's rejects table, as read_csv skips them."""
    if not csv.exists():
        raise DataError(f"{csv}: file not found (expected the hear-me file {csv.name})")
    columns = ", ".join(f"{_sql(name)}: {_sql(DUCKDB_TYPES[INTERACTIONS[name]] if name in INTERACTIONS else 'VARCHAR')}"
                        for name in header(csv))
    nulls = ", ".join(_sql(v) for v in pcsv.ConvertOptions().null_values)
    return (f"read_csv({_sql(str(csv))}, auto_detect=false, header=true, delim=',', quote='\"', escape='\"', "
            f"nullstr=[{nulls}], allow_quoted_nulls=false, max_line_size={MAX_LINE}, store_rejects=true, "
            f"columns={{{columns}}})")


def _sql(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
