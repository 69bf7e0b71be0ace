"""Read the hear-me CSV files into typed pyarrow tables, with errors that name the file, column and row."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pandas as pd
import pyarrow as pa
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
"""pyarrow reads in blocks that one field may not straddle: retry with larger blocks for very long fields."""


def read_csv(path: str | Path) -> pa.Table:
    """One hear-me file as a typed table; unknown extra columns are ignored, optional ones may be absent, spaces
    around header names are ignored. Rows with the wrong number of fields (a truncated last line, a stray comma)
    are skipped and counted in the table's metadata (MALFORMED); anything else that does not parse raises
    DataError naming the file, line and column."""
    path = Path(path)
    schema, required = SCHEMAS[path.name], REQUIRED[path.name]
    if not path.exists():
        raise DataError(f"{path}: file not found (expected the hear-me file {path.name})")
    header = _header(path)
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; found {header}; expected at least {list(required)}"
        )
    columns = [c for c in schema if c in header]
    types = {c: schema[c] for c in columns}
    skipped: list[str] = []

    def skip(row: pcsv.InvalidRow) -> str:
        skipped.append(row.text)
        return "skip"

    for block in BLOCK_SIZES:
        skipped.clear()
        try:
            table = pcsv.read_csv(
                path,
                read_options=pcsv.ReadOptions(column_names=header, skip_rows=1, block_size=block),
                convert_options=pcsv.ConvertOptions(column_types=types, include_columns=columns,
                                                    strings_can_be_null=True, quoted_strings_can_be_null=False),
                parse_options=pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=skip),
            )
            ignored = ",".join(c for c in header if c not in schema)
            return table.replace_schema_metadata({MALFORMED: str(len(skipped)), IGNORED: ignored})
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            message = str(err)
            if "straddle" in message and block != BLOCK_SIZES[-1]:
                continue
            if "UTF8" in message or "UTF-8" in message:
                raise _not_utf8(path) from err
            raise _locate(path, header, types) or DataError(f"{path}: {message.splitlines()[0]}") from err
    raise AssertionError("unreachable")


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


def _header(path: Path) -> list[str]:
    """Column names of the first line, spaces and quotes around them removed."""
    with path.open("rb") as fh:
        raw = fh.readline()
    try:
        line = raw.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    if not line:
        raise DataError(f"{path}: empty file, expected a header line")
    return [c.strip().strip('"').strip() for c in line.split(",")]


def _not_utf8(path: Path) -> DataError:
    """Name the first line that is not UTF-8 text."""
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as err:
                return DataError(f"{path}: line {number} is not UTF-8 text (byte {line[err.start]:#04x} at column "
                                 f"{err.start + 1}); save the file as UTF-8")
    return DataError(f"{path}: not UTF-8 text; save the file as UTF-8")


TIMEZONE = r"(?:[Zz]|[+-]\d\d:?\d\d)$"
"""A timestamp that ends in a zone: the hear-me times are plain local times."""


def _locate(path: Path, header: list[str], types: dict[str, pa.DataType]) -> DataError | None:
    """Re-read as text to find the first value that does not parse, so the error can quote it."""
    try:
        raw = pd.read_csv(path, names=header, skiprows=1, usecols=list(types), dtype=str, keep_default_na=False,
                          on_bad_lines="skip")
    except UnicodeDecodeError:
        return _not_utf8(path)
    except pd.errors.ParserError as err:
        quote = re.search(r"EOF inside string starting at row (\d+)", str(err))
        if quote is None:
            return DataError(f"{path}: {str(err).splitlines()[0]}")
        row = int(quote.group(1))
        return DataError(f"{path}: data row {row} (line {row + 1}) opens a quote that is never closed")
    for col, typ in types.items():
        values = raw[col]
        if pa.types.is_string(typ):
            continue
        present = values != ""
        if pa.types.is_timestamp(typ):
            parsed = pd.to_datetime(values.where(present & ~values.str.contains(TIMEZONE)), errors="coerce",
                                    format="ISO8601")
            expected = "a datetime like 2025-03-01 12:34:56.123456, without a time zone"
        else:
            parsed = pd.to_numeric(values.where(present), errors="coerce")
            if pa.types.is_integer(typ):
                parsed = parsed.where(parsed.isna() | (parsed == parsed.round()))
            expected = "an integer id" if pa.types.is_integer(typ) else "a number"
        bad = present & parsed.isna()
        if bad.any():
            row = int(bad.to_numpy().argmax())
            value = values.iloc[row]
            hint = " (a quote left open?)" if "\n" in value else ""
            return DataError(
                f"{path}: column {col!r}, data row {row + 1} (line {row + 2}): "
                f"got {value[:80]!r}, expected {expected}{hint}"
            )
    return None
