"""The cleaning rules (seqrec.data.rules, each written once with its SQL) run by DuckDB over the interactions CSV,
for logs larger than memory: the same rules, in the same order, with the same counts, written as a parquet dataset
in user shards. DuckDB streams the CSV and spills to disk under its memory limit.
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
from seqrec.data.rules import RULES, Rule

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
    before = [r for r in RULES if r.before_dedup]
    after = [r for r in RULES if not r.before_dedup]
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW flagged AS
        SELECT *, {_flags(before, cfg)} FROM (
            SELECT r.*, u.user, i.item, i.track, i.known
            FROM (SELECT user_id, item_id, listened_duration AS dur, listened_datetime AS ts FROM {_scan(csv)}) r
            LEFT JOIN users_df u USING (user_id) LEFT JOIN items_df i USING (item_id))""")
    report["rows_in"] = 0  # first in the report, as clean_events writes it
    report["rows_in"] = _count(con, "flagged", before, cfg, report)
    if rows is not None and report["rows_in"] != rows:  # a value DuckDB refuses that pyarrow accepted
        try:
            bad = con.execute("SELECT line, error_message FROM reject_errors WHERE error_type NOT IN "
                              "('TOO MANY COLUMNS', 'MISSING COLUMNS') ORDER BY line LIMIT 1").fetchone()
        except duckdb.CatalogException:  # nothing rejected
            bad = None
        raise DataError(f"{csv}: DuckDB read {report['rows_in']:,} rows where the hear-me reader read {rows:,}"
                        + (f"; line {bad[0]}: {' '.join(bad[1].split())[:200]}" if bad else "")
                        + "; use data.engine=memory")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE kept AS
        SELECT DISTINCT user, ts, item, dur, track, known FROM flagged WHERE NOT ({_any(before)})""")
    distinct = con.execute("SELECT count(*) FROM kept").fetchone()[0]
    report["dropped_exact_duplicates"] = int(report["rows_in"] - sum(report[r.key(cfg)] for r in before) - distinct)
    con.execute(f"CREATE OR REPLACE TEMP VIEW kept_flagged AS SELECT *, {_flags(after, cfg)} FROM kept")
    _count(con, "kept_flagged", after, cfg, report)
    dropped = [r for r in after if r.drops(cfg)]
    over = next(r for r in after if r.name == "overlong")
    duration = f"CASE WHEN flag_{RULES.index(over)} THEN track ELSE {_d(cfg)} END"  # zeroed, clipped unless dropped
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW cleaned AS
        SELECT user, item, ts, ({duration})::FLOAT AS duration, (({duration}) / track)::FLOAT AS frac, known
        FROM kept_flagged WHERE NOT ({_any(dropped)})""")
    row = con.execute("""SELECT count(*), sum((NOT known)::INT), count(DISTINCT CASE WHEN NOT known THEN item END),
                                sum((duration = 0)::INT) FROM cleaned""").fetchone()
    report["events_on_items_without_metadata"] = int(row[1] or 0)
    report["items_without_metadata_in_log"] = int(row[2] or 0)
    report["zero_duration_events"] = int(row[3] or 0)
    report["rows_out"] = int(row[0])


def _flags(rules: list[Rule], cfg: CleanConfig) -> str:
    """One boolean column per rule, `flag_<i>` (its index in RULES): each predicate is evaluated once per row."""
    return ", ".join(f"({r.sql(cfg)}) AS flag_{RULES.index(r)}" for r in rules)


def _count(con: duckdb.DuckDBPyConnection, table: str, rules: list[Rule], cfg: CleanConfig, report: dict) -> int:
    """Each rule's count of the rows no earlier rule of `rules` flagged, in one pass over `table` (which carries the
    rules' _flags); returns its rows."""
    n, *counts = con.execute("SELECT count(*), " + ", ".join(
        f"sum((NOT ({_any(rules[:i])}) AND flag_{RULES.index(r)})::INT)" for i, r in enumerate(rules))
        + f" FROM {table}").fetchone()
    report.update({r.key(cfg): int(c or 0) for r, c in zip(rules, counts, strict=True)})
    return int(n)


def _any(rules: list[Rule]) -> str:
    """A SQL predicate over _flags' columns: one of `rules` flags the row."""
    return " OR ".join(f"flag_{RULES.index(r)}" for r in rules) or "false"


def _d(cfg: CleanConfig) -> str:
    """The duration after the negative rule (zeroed when it zeroes), as the overlong rule reads it."""
    return "dur" if cfg.negative == "drop" else "greatest(dur, 0)"


MAX_LINE = BLOCK_SIZES[1]
"""The longest line DuckDB reads (16 MiB; a larger limit slows every read): a longer one makes DuckDB read fewer
rows than the hear-me reader, which _clean refuses."""
DUCKDB_TYPES = {pa.int64(): "BIGINT", pa.float64(): "DOUBLE", pa.timestamp("us"): "TIMESTAMP"}


def _scan(csv: Path) -> str:
    """read_csv over interactions.csv in seqrec.data.ingest.read_csv's dialect: the header's own names (in its order,
    so columns are found by name), '"' quotes doubled to escape, pyarrow's null markers, no comment lines, no rows
    skipped (DuckDB's sniffer is left only the line ends: without it DuckDB reads this file at half the speed); rows
    with the wrong number of fields go to DuckDB's rejects table, as read_csv skips them."""
    if not csv.exists():
        raise DataError(f"{csv}: file not found (expected the hear-me file {csv.name})")
    columns = ", ".join(f"{_sql(name)}: {_sql(DUCKDB_TYPES[INTERACTIONS[name]] if name in INTERACTIONS else 'VARCHAR')}"
                        for name in header(csv))
    nulls = ", ".join(_sql(v) for v in pcsv.ConvertOptions().null_values)
    return (f"read_csv({_sql(str(csv))}, header=true, delim=',', quote='\"', escape='\"', comment='', skip=0, "
            f"nullstr=[{nulls}], allow_quoted_nulls=false, max_line_size={MAX_LINE}, store_rejects=true, "
            f"columns={{{columns}}})")


def _sql(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
