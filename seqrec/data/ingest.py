"""Read the hear-me CSV files into typed pyarrow tables, with errors that name the file, column and row."""

from __future__ import annotations

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


def read_csv(path: str | Path) -> pa.Table:
    """One hear-me file as a typed table; unknown extra columns are ignored, optional ones may be absent."""
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
    try:
        return pcsv.read_csv(
            path,
            convert_options=pcsv.ConvertOptions(
                column_types={c: schema[c] for c in columns},
                include_columns=columns,
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
            parse_options=pcsv.ParseOptions(newlines_in_values=True),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise _locate(path, {c: schema[c] for c in columns}) or DataError(f"{path}: {err}") from err


def read_dir(folder: str | Path) -> dict[str, pa.Table | None]:
    """All hear-me files of a folder; user metadata and future.csv are optional."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: data folder not found; generate one with `python -m seqrec.synth`")
    tables: dict[str, pa.Table | None] = {}
    for name in ("interactions.csv", "item_metadata.csv", "test.csv"):
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
    with path.open("r", encoding="utf-8", newline="") as fh:
        line = fh.readline().strip()
    if not line:
        raise DataError(f"{path}: empty file, expected a header line")
    return [c.strip().strip('"') for c in line.split(",")]


def _locate(path: Path, types: dict[str, pa.DataType]) -> DataError | None:
    """Re-read as text to find the first value that does not parse, so the error can quote it."""
    raw = pd.read_csv(path, usecols=list(types), dtype=str, keep_default_na=False, engine="pyarrow")
    for col, typ in types.items():
        values = raw[col]
        if pa.types.is_string(typ):
            continue
        present = values != ""
        if pa.types.is_timestamp(typ):
            parsed = pd.to_datetime(values.where(present), errors="coerce", format="ISO8601")
            expected = "a datetime like 2025-03-01 12:34:56.123456"
        else:
            parsed = pd.to_numeric(values.where(present), errors="coerce")
            if pa.types.is_integer(typ):
                parsed = parsed.where(parsed.isna() | (parsed == parsed.round()))
            expected = "an integer id" if pa.types.is_integer(typ) else "a number"
        bad = present & parsed.isna()
        if bad.any():
            row = int(bad.to_numpy().argmax())
            return DataError(
                f"{path}: column {col!r}, data row {row + 1} (line {row + 2}): "
                f"got {values.iloc[row]!r}, expected {expected}"
            )
    return None
