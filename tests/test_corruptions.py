"""A table of corrupted hear-me files, each read by both engines (pyarrow in memory, DuckDB streamed): every case
has one expected outcome (an error naming the file and line, a count in the cleaning report, or the same data as the
clean file), and the two engines must agree on it exactly: the same error message, or the same events and report.
"Silently wrong" (exit 0, a result unlike the clean file's, nothing counted) is what no case may be."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import pytest

from seqrec.config import CleanConfig
from seqrec.data.dataset import build_dataset
from seqrec.data.ingest import DataError
from seqrec.data.rules import RULES

H = "user_id,item_id,listened_duration,listened_datetime"
LOG = [H, "42,300,50,2025-03-01 10:00:00", "42,500,20,2025-03-02 11:00:00", "7,300,30,2025-03-03 12:00:00",
       "7,500,40,2025-03-04 12:00:00", "42,300,60,2025-03-05 10:00:00", "7,300,70,2025-03-06 12:00:00",
       "42,500,80,2025-03-07 11:00:00", "7,500,90,2025-03-08 12:00:00"]
ITEMS = ["item_id,track_duration,artist_name,track_name", "300,100,A,x", "500,200,B,y"]
TEST = ["user_id", "42", "7"]
USERS = ["user_id,gender", "42,F", "7,M"]
FILES = {"interactions.csv": LOG, "item_metadata.csv": ITEMS, "test.csv": TEST, "user_metadata.csv": USERS}
COLUMNS = H.split(",")


@dataclass(frozen=True)
class Case:
    name: str
    file: str
    edit: Callable[[list[str]], list[str] | bytes]
    """The clean file's lines (header first) -> the corrupted lines, or raw bytes."""
    error: str | None = None
    """A regex the DataError must match (it must also name the file); None: the data set is built."""
    report: dict = field(default_factory=dict)
    """Cleaning-report entries ("section.key": value) the corrupted file must produce."""
    changes: bool = False
    """The events differ from the clean file's (then `report` must count why)."""


def row(line: int, text: str) -> Callable[[list[str]], list[str]]:
    """Replace line `line` (1: the header) with `text`."""
    return lambda lines: [*lines[:line - 1], text, *lines[line:]]


def cell(line: int, col: int, text: str) -> Callable[[list[str]], list[str]]:
    """Replace field `col` of line `line`."""
    def edit(lines):
        fields = lines[line - 1].split(",")
        fields[col] = text
        return row(line, ",".join(fields))(lines)
    return edit


def raw(fn: Callable[[bytes], bytes]) -> Callable[[list[str]], bytes]:
    return lambda lines: fn(("\n".join(lines) + "\n").encode())


def quote(line: int, col: int, close_at: int | None = None) -> Callable[[list[str]], list[str]]:
    """Open a quote before field `col` of `line`, closed at the end of that field of line `close_at` (never
    when None)."""
    def edit(lines):
        out = cell(line, col, '"' + lines[line - 1].split(",")[col])(lines)
        if close_at is not None:
            out = cell(close_at, col, out[close_at - 1].split(",")[col] + '"')(out)
        return out
    return edit


def at(line: int, *parts: str) -> str:
    """An error naming interactions.csv's line `line` and each of `parts` (regexes), in any order."""
    return "".join(f"(?=.*{p})" for p in (r"^interactions\.csv: ", rf"line {line}\b", *parts))


QUOTE = r"opens a quote that is not closed on that line"
MISSING = "interactions.dropped_missing_ids_or_time"

CASES = [
    # every column: a value that does not parse, a quote left open, a quote closed lines later, empty, a null marker,
    # quoted, a quoted null marker, spaces around it
    *(c for col, name in enumerate(COLUMNS) for c in (
        Case(f"{name}: not a value", "interactions.csv", cell(4, col, "x3"), at(4, f"'{name}'", "got 'x3'")),
        Case(f"{name}: quote never closed", "interactions.csv", quote(4, col), at(4, QUOTE)),
        Case(f"{name}: quote closed 3 lines later", "interactions.csv", quote(4, col, 7), at(4, QUOTE)),
        Case(f"{name}: empty", "interactions.csv", cell(4, col, ""),
             report={MISSING if col != 2 else "interactions.dropped_missing_duration": 1}, changes=True),
        Case(f"{name}: null marker NA", "interactions.csv", cell(4, col, "NA"),
             report={MISSING if col != 2 else "interactions.dropped_missing_duration": 1}, changes=True),
        Case(f"{name}: quoted", "interactions.csv", lambda ls, col=col: cell(4, col, f'"{ls[3].split(",")[col]}"')(ls)),
        Case(f"{name}: quoted null marker", "interactions.csv", cell(4, col, '"NA"'), at(4, "got 'NA'")),
        Case(f"{name}: text after the closing quote", "interactions.csv",
             lambda ls, col=col: cell(4, col, f'"{ls[3].split(",")[col]}"x')(ls), at(4)),
    )),
    # rows
    Case("an extra field", "interactions.csv", row(3, "42,500,20,2025-03-02 11:00:00,x"),
         report={"malformed_rows_skipped.interactions.csv": 1}, changes=True),
    Case("a missing field", "interactions.csv", row(3, "42,500,20"),
         report={"malformed_rows_skipped.interactions.csv": 1}, changes=True),
    Case("two malformed rows", "interactions.csv", lambda ls: row(5, "7,5")(row(3, "1,2,3,4,5,6")(ls)),
         report={"malformed_rows_skipped.interactions.csv": 2}, changes=True),
    Case("a truncated last line", "interactions.csv", raw(lambda b: b + b"7,50"),
         report={"malformed_rows_skipped.interactions.csv": 1}),
    Case("no newline at the end", "interactions.csv", raw(lambda b: b.rstrip(b"\n"))),
    Case("a blank line", "interactions.csv", lambda ls: [*ls[:3], "", *ls[3:]]),
    Case("blank lines at the end", "interactions.csv", lambda ls: [*ls, "", "", ""]),
    Case("a row of empty fields", "interactions.csv", lambda ls: [*ls, ",,,"], report={MISSING: 1}),
    Case("CRLF line ends", "interactions.csv", raw(lambda b: b.replace(b"\n", b"\r\n"))),
    Case("a byte-order mark", "interactions.csv", raw(lambda b: b"\xef\xbb\xbf" + b)),
    Case("spaces and quotes around header names", "interactions.csv",
         row(1, ' user_id , "item_id",listened_duration ,listened_datetime')),
    Case("columns in another order", "interactions.csv",
         lambda ls: [",".join(line.split(",")[i] for i in (1, 0, 3, 2)) for line in ls]),
    Case("an extra column", "interactions.csv", lambda ls: [f"{line},{'source' if i == 0 else 'radio'}"
                                                            for i, line in enumerate(ls)],
         report={"ignored_columns.interactions.csv": ["source"]}),
    Case("an extra quoted column with commas", "interactions.csv",
         lambda ls: [f"{line},{'note' if i == 0 else chr(34) + 'a, b' + chr(34)}" for i, line in enumerate(ls)],
         report={"ignored_columns.interactions.csv": ["note"]}),
    Case("a column named twice", "interactions.csv", lambda ls: [f"{line},{line.split(',')[0]}" for line in ls],
         r"interactions\.csv: column\(s\) \['user_id'\] named more than once"),
    Case("a required column missing", "interactions.csv", lambda ls: [line.rsplit(",", 1)[0] for line in ls],
         r"interactions\.csv: missing column\(s\) \['listened_datetime'\]"),
    Case("a misspelt header", "interactions.csv", row(1, "userid,item_id,listened_duration,listened_datetime"),
         r"interactions\.csv: missing column\(s\) \['user_id'\]"),
    Case("an empty file", "interactions.csv", raw(lambda b: b""), r"interactions\.csv: empty file"),
    Case("the header only", "interactions.csv", lambda ls: ls[:1], r"interactions\.csv: no event left"),
    Case("semicolons", "interactions.csv", lambda ls: [line.replace(",", ";") for line in ls],
         r"interactions\.csv: missing column"),
    Case("tabs", "interactions.csv", lambda ls: [line.replace(",", "\t") for line in ls],
         r"interactions\.csv: missing column"),
    Case("bytes that are not UTF-8", "interactions.csv", raw(lambda b: b.replace(b"7,500,40", b"7,5\xff0,40")),
         r"interactions\.csv: line 5 is not UTF-8"),
    Case("a NUL byte", "interactions.csv", raw(lambda b: b.replace(b"7,500,40", b"7,5\x000,40")), at(5)),
    Case("binary garbage", "interactions.csv", raw(lambda b: b[:60] + bytes(range(256)) * 4), r"interactions\.csv"),
    Case("a duration 3 MB long", "interactions.csv", cell(4, 2, "9" * (3 << 20)),
         report={"interactions.dropped_nonfinite_or_over_max_listen": 1}, changes=True),
    Case("an id 3 MB long", "interactions.csv", cell(4, 1, "9" * (3 << 20)), at(4, "'item_id'")),
    # values
    Case("a time zone Z", "interactions.csv", cell(4, 3, "2025-03-03T12:00:00Z"), at(4, "without a time zone")),
    Case("a time zone offset", "interactions.csv", cell(4, 3, "2025-03-03 12:00:00+03:00"), at(4)),
    Case("a T between date and time", "interactions.csv", cell(4, 3, "2025-03-03T12:00:00")),
    Case("fractional seconds", "interactions.csv", cell(4, 3, "2025-03-03 12:00:00.250000"), changes=True),
    Case("a date that does not exist", "interactions.csv", cell(4, 3, "2025-02-30 12:00:00"), at(4)),
    Case("an hour 25", "interactions.csv", cell(4, 3, "2025-03-03 25:00:00"), at(4)),
    Case("a date before the log", "interactions.csv", cell(4, 3, "2024-03-03 12:00:00"),
         report={"interactions.dropped_outside_period": 1}, changes=True),
    Case("a date after the log", "interactions.csv", cell(4, 3, "2026-03-03 12:00:00"),
         report={"interactions.dropped_outside_period": 1}, changes=True),
    Case("a decimal user id", "interactions.csv", cell(4, 0, "7.5"), at(4, "'user_id'")),
    Case("an id past int64", "interactions.csv", cell(4, 1, "99999999999999999999"), at(4, "'item_id'")),
    Case("a negative user id", "interactions.csv", cell(4, 0, "-7"), report={"test_users_without_history": 0},
         changes=True),
    Case("an unknown item id", "interactions.csv", cell(4, 1, "900"),
         report={"interactions.events_on_items_without_metadata": 1, "items_only_in_log": 1}, changes=True),
    Case("a user outside test.csv", "interactions.csv", lambda ls: [*ls, "99,300,30,2025-03-03 12:00:00"],
         changes=True),
    Case("a negative duration", "interactions.csv", cell(4, 2, "-30"),
         report={"interactions.negative_duration_dropped": 1}, changes=True),
    Case("an infinite duration", "interactions.csv", cell(4, 2, "inf"),
         report={"interactions.dropped_nonfinite_or_over_max_listen": 1}, changes=True),
    Case("a duration of 1e300", "interactions.csv", cell(4, 2, "1e300"),
         report={"interactions.dropped_nonfinite_or_over_max_listen": 1}, changes=True),
    Case("a duration in scientific notation", "interactions.csv", cell(4, 2, "3e1")),
    Case("a duration of 30.0", "interactions.csv", cell(4, 2, "30.0")),
    Case("a duration with a unit", "interactions.csv", cell(4, 2, "30s"), at(4, "'listened_duration'")),
    Case("a decimal comma", "interactions.csv", cell(4, 2, '"30,5"'), at(4, "'listened_duration'")),
    Case("an overlong listen", "interactions.csv", cell(4, 2, "3000"), report={"interactions.overlong_clipped": 1},
         changes=True),
    Case("an exact duplicate row", "interactions.csv", lambda ls: [*ls, ls[3]],
         report={"interactions.dropped_exact_duplicates": 1}),
    Case("a quote inside a value", "interactions.csv", cell(4, 0, '7"'), at(4)),
    # the catalogue
    Case("catalogue: a length that is not a number", "item_metadata.csv", cell(2, 1, "long"),
         r"item_metadata\.csv: column 'track_duration', line 2"),
    Case("catalogue: a quote never closed in a name", "item_metadata.csv", cell(2, 3, '"x'),
         r"item_metadata\.csv: line 2 " + QUOTE),
    Case("catalogue: a quote closed lines later in a name", "item_metadata.csv",
         lambda ls: [*cell(2, 3, '"x')(ls)[:2], "600,100,C,z", '700,100,D,w"', *ls[2:]],
         r"item_metadata\.csv: line 2 " + QUOTE),
    Case("catalogue: a name with a comma, quoted", "item_metadata.csv", cell(2, 3, '"x, y"')),
    Case("catalogue: an artist 'A feat. B'", "item_metadata.csv", cell(2, 2, "A feat. B")),
    Case("catalogue: a missing length", "item_metadata.csv", cell(2, 1, ""),
         report={"items_without_valid_duration": 1}, changes=True),
    Case("catalogue: a zero length", "item_metadata.csv", cell(2, 1, "0"),
         report={"items_without_valid_duration": 1}, changes=True),
    Case("catalogue: a negative length", "item_metadata.csv", cell(2, 1, "-100"),
         report={"items_without_valid_duration": 1}, changes=True),
    Case("catalogue: a duplicated id", "item_metadata.csv", lambda ls: [*ls, "300,100,A,x"],
         report={"item_metadata_duplicate_ids": 1}),
    Case("catalogue: a missing id", "item_metadata.csv", lambda ls: [*ls, ",100,C,z"],
         report={"item_metadata_missing_ids": 1}),
    Case("catalogue: an extra field", "item_metadata.csv", lambda ls: [*ls, "600,100,C,z,extra"],
         report={"malformed_rows_skipped.item_metadata.csv": 1}),
    Case("catalogue: no length column", "item_metadata.csv", lambda ls: [",".join(line.split(",")[::2]) for line in ls],
         r"item_metadata\.csv: missing column\(s\) \['track_duration'\]"),
    Case("catalogue: an id that is not a number", "item_metadata.csv", cell(3, 0, "five"),
         r"item_metadata\.csv: column 'item_id', line 3"),
    Case("catalogue: CRLF line ends", "item_metadata.csv", raw(lambda b: b.replace(b"\n", b"\r\n"))),
    # the test users
    Case("test: header only", "test.csv", lambda ls: ls[:1], r"test\.csv: no user_id under the header"),
    Case("test: an empty user", "test.csv", lambda ls: [*ls, ""]),
    Case("test: a user id that is not a number", "test.csv", lambda ls: [*ls, "abc"],
         r"test\.csv: column 'user_id', line 4"),
    Case("test: a duplicated user", "test.csv", lambda ls: [*ls, "42"], report={"test_duplicate_user_ids": 1}),
    Case("test: a user without history", "test.csv", lambda ls: [*ls, "99"],
         report={"test_users": 3, "test_users_without_history": 1}),
    Case("test: another column name", "test.csv", row(1, "user"), r"test\.csv: missing column\(s\) \['user_id'\]"),
    Case("test: a quote never closed", "test.csv", row(2, '"42'), r"test\.csv: line 2 " + QUOTE),
    # the user metadata
    Case("users: a quote never closed", "user_metadata.csv", cell(2, 1, '"F'), r"user_metadata\.csv: line 2 " + QUOTE),
    Case("users: a duplicated user", "user_metadata.csv", lambda ls: [*ls, "42,M"]),
    Case("users: an id that is not a number", "user_metadata.csv", cell(2, 0, "x"),
         r"user_metadata\.csv: column 'user_id', line 2"),
    Case("users: an extra field", "user_metadata.csv", lambda ls: [*ls, "8,F,x"],
         report={"malformed_rows_skipped.user_metadata.csv": 1}),
]


def build(folder, engine: str):
    """(error message or None, events, report) of one engine."""
    try:
        ds = build_dataset(folder, CleanConfig(), engine)
    except DataError as err:
        return str(err).replace(str(folder) + "/", ""), None, None
    report = {k: v for k, v in ds.report.items() if k != "folder"}
    return None, ds.events, report


def lookup(report: dict, dotted: str):
    section, _, key = dotted.partition(".")
    if section == "malformed_rows_skipped" or section == "ignored_columns":
        return report[section].get(key, 0 if section.startswith("malformed") else [])
    return report[section][key] if key else report[section]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clean")
    for name, lines in FILES.items():
        (folder / name).write_text("\n".join(lines) + "\n")
    _, events, report = build(folder, "memory")
    return events, report


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # pyarrow decoding a garbage row
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_both_engines_give_the_expected_outcome(case, clean, tmp_path):
    for name, lines in FILES.items():
        edited = case.edit(list(lines)) if name == case.file else lines
        path = tmp_path / name
        if isinstance(edited, bytes):
            path.write_bytes(edited)
        else:
            path.write_text("\n".join(edited) + "\n", encoding="utf-8")
    memory, duckdb = build(tmp_path, "memory"), build(tmp_path, "duckdb")
    assert memory[0] == duckdb[0], "the engines disagree on the error"
    error, events, report = memory
    if case.error is not None:
        assert error is not None, f"no error; report: {report}"
        assert re.search(case.error, error, re.S), error
        assert error.startswith(case.file), error
        return
    assert error is None, error
    pd.testing.assert_frame_equal(duckdb[1], events)
    assert duckdb[2] == report
    for key, value in case.report.items():
        assert lookup(report, key) == value, key
    clean_events, _ = clean
    assert (not events.equals(clean_events)) == case.changes, "the events changed" if not case.changes else "same"


def test_the_table_is_large_enough():
    assert len(CASES) >= 80


@pytest.mark.parametrize("cfg", [CleanConfig(), CleanConfig(negative="zero", overlong="drop")])
def test_every_rule_of_the_table_is_counted_by_both_engines(clean, tmp_path, cfg):
    for name, lines in FILES.items():
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    keys = [rule.key(cfg) for rule in RULES]
    for engine in ("memory", "duckdb"):
        counted = [k for k in build_dataset(tmp_path, cfg, engine).report["interactions"] if k in keys]
        assert counted == keys, engine  # every rule, in the table's order
