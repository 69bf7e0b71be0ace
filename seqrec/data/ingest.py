"""Read the hear-me CSV files into typed pyarrow tables, with errors that name the file, column and row."""

from __future__ import annotations

import mmap
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from seqrec.errors import UserError

# Expected columns and their types; `required` columns must be present, the rest are optional metadata.
INTERACTIONS = {
    "user_id": pa.int64(),
    "item_id": pa.int64(),
    "listened_duration": pa.float64(),  # int seconds in the spec; float keeps `12.0` exports readable
    "listened_datetime": pa.timestamp("us"),
}
ITEMS = {
    "item_id": pa.int64(),
    "track_name": pa.string(),
    "artist_name": pa.string(),
    "track_duration": pa.float64(),
    "track_genres_list": pa.string(),
    "track_dislike_count": pa.float64(),
    "track_like_count": pa.float64(),
    "track_download_count": pa.float64(),
}
USERS = {
    "user_id": pa.int64(),
    "age_bin": pa.string(),
    "children": pa.float64(),
    "gender": pa.string(),
    "top_genre": pa.string(),
    "user_disliked_track_count": pa.float64(),
    "user_liked_track_count": pa.float64(),
    "user_downloaded_track_count": pa.float64(),
}
TEST = {"user_id": pa.int64()}
REQUIRED = {
    "interactions.csv": ("user_id", "item_id", "listened_duration", "listened_datetime"),
    "future.csv": ("user_id", "item_id", "listened_duration", "listened_datetime"),
    "item_metadata.csv": ("item_id", "track_duration"),
    "user_metadata.csv": ("user_id",),
    "test.csv": ("user_id",),
}
SCHEMAS = {
    "interactions.csv": INTERACTIONS,
    "future.csv": INTERACTIONS,
    "item_metadata.csv": ITEMS,
    "user_metadata.csv": USERS,
    "test.csv": TEST,
}


class DataError(UserError):
    """An input file does not match the hear-me format; the message says where and what was expected."""


MALFORMED = "seqrec.malformed_rows"
"""Schema metadata of a table read by read_csv: how many rows had the wrong number of fields and were skipped."""
IGNORED = "seqrec.ignored_columns"
"""Schema metadata of a table read by read_csv: the header's columns the hear-me format does not know, comma-joined."""
BLOCK_SIZES = (1 << 20, 1 << 24, 1 << 28, 1 << 30)
MERGE_BATCHES = 64
"""scan_ids folds the distinct ids of this many blocks into one array at a time."""
"""pyarrow reads in blocks that one field may not straddle: retry with larger blocks for very long fields."""


def read_csv(path: str | Path) -> pa.Table:
    """One hear-me file as a typed table; unknown extra columns are ignored, optional ones may be absent, spaces
    around header names are ignored. Rows with the wrong number of fields (a truncated last line, a stray comma)
    are skipped and counted in the table's metadata (MALFORMED). A quote that runs past the end of its line (it
    would swallow the rows after it) and anything else that does not parse raise DataError naming the file and
    line."""
    path = Path(path)
    table, skipped = _read(path, lambda options: pcsv.read_csv(path, **options), _check_values)
    ignored = ",".join(c for c in header(path) if c not in SCHEMAS[path.name])
    return table.replace_schema_metadata({MALFORMED: str(skipped), IGNORED: ignored})


@dataclass
class Scan:
    """What scan_ids learned of a file too large to hold, under read_csv's rules."""

    rows: int
    """Rows read (the malformed ones not included)."""
    malformed: int
    """Rows with the wrong number of fields, skipped."""
    ignored: list[str]
    """The header's columns the hear-me format does not know."""
    ids: dict[str, np.ndarray]
    """Each id column's sorted distinct non-null values."""


def scan_ids(path: str | Path, columns: tuple[str, ...] = ("user_id", "item_id")) -> Scan:
    """read_csv's reading of a file, streamed block by block (every value parsed and checked, the same errors and
    counts), keeping only the distinct values of the id `columns`: how the out-of-core engine reads the log under
    the in-memory engine's rules before DuckDB cleans it."""
    path = Path(path)

    def stream(options: dict) -> tuple[int, dict[str, np.ndarray]]:
        rows, seen = 0, {c: [] for c in columns}
        for n, batch in enumerate(pcsv.open_csv(path, **options), start=1):
            _check_values(path, batch)
            rows += batch.num_rows
            for c in columns:
                seen[c].append(batch.column(c).unique())
                if n % MERGE_BATCHES == 0:  # memory follows the distinct ids, not the log
                    seen[c] = [pa.chunked_array(seen[c]).unique()]
        return rows, {c: np.sort(pa.chunked_array(v, pa.int64()).unique().drop_null().to_numpy()) for c, v in
                      seen.items()}

    (rows, ids), malformed = _read(path, stream, lambda path, result: None)
    return Scan(rows, malformed, [c for c in header(path) if c not in SCHEMAS[path.name]], ids)


def _read(path: Path, parse: Callable[[dict], object], check: Callable[[Path, object], None]) -> tuple[object, int]:
    """`parse(pyarrow's options)` under the hear-me rules, retried with larger blocks for long fields; `check` reads
    its result. Returns (result, rows skipped for their number of fields)."""
    schema = SCHEMAS[path.name]
    if not path.exists():
        raise DataError(f"{path}: file not found (expected the hear-me file {path.name})")
    head = header(path)
    columns = [c for c in schema if c in head]
    types = {c: schema[c] for c in columns}
    skipped: list[str] = []

    def skip(row: pcsv.InvalidRow) -> str:
        skipped.append(row.text)
        return "skip"

    for block in BLOCK_SIZES:
        skipped.clear()
        options = {
            "read_options": pcsv.ReadOptions(column_names=head, skip_rows=1, block_size=block),
            "convert_options": pcsv.ConvertOptions(column_types=types, include_columns=columns,
                                                   strings_can_be_null=True, quoted_strings_can_be_null=False),
            "parse_options": pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=skip),
        }
        try:
            result = parse(options)
            check(path, result)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            message = str(err)
            if "straddle" in message and block != BLOCK_SIZES[-1]:
                continue
            if "UTF8" in message or "UTF-8" in message:
                raise not_utf8(path) or DataError(f"{path}: {message.splitlines()[0]}") from err
            raise _locate(path, head, types) or unreadable(path, message) from err
        swallowing = [text for text in skipped if _spans_lines(text)]
        if swallowing:
            raise _quote_error(path, line_of(path, swallowing[0]))
        return result, len(skipped)
    raise AssertionError("unreachable")


def _check_values(path: Path, table: pa.Table | pa.RecordBatch) -> None:
    """No text value spans lines: a quote opened in a text column and closed lines later swallowed the rows
    between (typed columns refuse such a value when it is converted)."""
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_string(col.type):
            spans = pc.match_substring_regex(col, r"[\r\n]")
            if pc.any(spans).as_py():
                raise _quote_error(path, line_of(path, col.filter(spans)[0].as_py()))


def _quote_error(path: Path, line: int) -> DataError:
    """A quote that does not close on its line: every hear-me value fits on one line, so the rows after it would be
    swallowed into one field."""
    return DataError(f"{path}: line {line} opens a quote that is not closed on that line: the rows after it would be "
                     "swallowed into one value (a stray '\"'?)")


def _value_error(path: Path, column: str, line: int, value: str, typ: pa.DataType) -> DataError:
    """A value that does not parse as its column's type."""
    return DataError(f"{path}: column {column!r}, line {line}: got {value[:80]!r}, expected {_expected(typ)}")


def _expected(typ: pa.DataType) -> str:
    """What a value of a hear-me column must look like."""
    if pa.types.is_timestamp(typ):
        return "a datetime like 2025-03-01 12:34:56.123456, without a time zone"
    return "an integer id" if pa.types.is_integer(typ) else "a number"


def _spans_lines(text: str) -> bool:
    return "\n" in text or "\r" in text


def line_of(path: Path, text: str) -> int:
    """The line of the file where `text` (a row, or a value that spans lines) starts: found by its first two lines,
    which a swallowed stretch of the file makes unique; 0 when it is not found."""
    lines = text.encode("utf-8").replace(b"\r\n", b"\n").split(b"\n")[:2]
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for sep in (b"\n", b"\r\n"):
            at = data.find(sep.join(lines))
            if at >= 0:
                return data[:at].count(b"\n") + 1
    return 0


def read_dir(folder: str | Path, log: bool = True) -> dict[str, pa.Table | None]:
    """All hear-me files of a folder; user metadata and future.csv are optional. `log=False` leaves
    interactions.csv unread (None), for a reader that streams it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: data folder not found; generate one with `python -m seqrec.synth`")
    tables: dict[str, pa.Table | None] = {"interactions.csv": read_csv(folder / "interactions.csv") if log else None}
    for name in ("item_metadata.csv", "test.csv"):
        tables[name] = read_csv(folder / name)
    users = folder / "user_metadata.csv"
    if users.exists():
        tables["user_metadata.csv"] = read_csv(users)
    else:
        warnings.warn(f"{users} not found: demographic features and segment popularity fall back to global",
                      stacklevel=2)
        tables["user_metadata.csv"] = None
    future = folder / "future.csv"
    tables["future.csv"] = read_csv(future) if future.exists() else None
    return tables


def header(path: Path) -> list[str]:
    """Column names of the first line, spaces and quotes around them removed; the file's required columns must be
    there, each name once."""
    with path.open("rb") as fh:
        raw = fh.readline()
    try:
        line = raw.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        raise not_utf8(path) or DataError(f"{path}: the header is not UTF-8 text") from None
    if not line:
        raise DataError(f"{path}: empty file, expected a header line")
    names = [c.strip().strip('"').strip() for c in line.split(",")]
    required = REQUIRED[path.name]
    missing = [c for c in required if c not in names]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {names}; expected at least {list(required)}")
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise DataError(f"{path}: column(s) {twice} named more than once in the header {names}")
    return names


def not_utf8(path: Path) -> DataError | None:
    """The error naming the first line that is not UTF-8 text; None when every line is."""
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as err:
                return DataError(f"{path}: line {number} is not UTF-8 text (byte {line[err.start]:#04x} at column "
                                 f"{err.start + 1}); save the file as UTF-8")
    return None


def unreadable(path: Path, message: str) -> DataError:
    """A parser's error that names no value: bytes that are not text first, else the parser's first line."""
    return not_utf8(path) or DataError(f"{path}: {' '.join(message.split())[:300]}")


TIMEZONE = r"(?:[Zz]|[+-]\d\d:?\d\d)$"
"""A timestamp that ends in a zone: the hear-me times are plain local times."""


LOCATE_ROWS = 1 << 20
"""_locate reads this many rows at a time, so finding a bad value in a log larger than memory stays in memory."""


def _locate(path: Path, head: list[str], types: dict[str, pa.DataType]) -> DataError | None:
    """Re-read as text to find the first value that does not parse, so the error can quote it and name its line
    (blank lines kept, so a data row's line is its row + 2 unless a quoted value spans lines)."""
    try:
        chunks = pd.read_csv(path, names=head, skiprows=1, usecols=list(types), dtype=str, keep_default_na=False,
                             on_bad_lines="skip", skip_blank_lines=False, chunksize=LOCATE_ROWS)
        for raw in chunks:
            found = _first_bad(raw, types)
            if found is not None:
                row, col = found
                value = raw[col].loc[row]
                if _spans_lines(value):
                    return _quote_error(path, line_of(path, value))
                return _value_error(path, col, row + 2, value, types[col])
    except UnicodeDecodeError:
        return not_utf8(path)
    except pd.errors.ParserError as err:
        quote = re.search(r"EOF inside string starting at row (\d+)", str(err))
        if quote is None:
            return unreadable(path, str(err).splitlines()[0])
        return _quote_error(path, int(quote.group(1)) + 1)
    return None


def _first_bad(raw: pd.DataFrame, types: dict[str, pa.DataType]) -> tuple[int, str] | None:
    """(row label, column) of the earliest value of `raw` (text) that does not parse as its column's type."""
    first: tuple[int, str] | None = None
    for col, typ in types.items():
        values = raw[col]
        if pa.types.is_string(typ):
            continue
        present = values != ""
        if pa.types.is_timestamp(typ):
            parsed = pd.to_datetime(values.where(present & ~values.str.contains(TIMEZONE)), errors="coerce",
                                    format="ISO8601")
        else:
            parsed = pd.to_numeric(values.where(present), errors="coerce")
            if pa.types.is_integer(typ):  # a whole number within int64
                parsed = parsed.where(parsed.isna() | ((parsed == parsed.round()) & (parsed.abs() < 2.0**63)))
        bad = present & parsed.isna()
        if bad.any() and (first is None or bad.idxmax() < first[0]):
            first = int(bad.idxmax()), col
    return first
