"""The synthetic generator through its command line, `python -m seqrec.synth`."""

import ast
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from seqrec.data.ingest import read_dir
from seqrec.synth.__main__ import main
from seqrec.synth.export import GENRES

FILES = {
    "interactions.csv": ["user_id", "item_id", "listened_duration", "listened_datetime"],
    "future.csv": ["user_id", "item_id", "listened_duration", "listened_datetime"],
    "item_metadata.csv": ["item_id", "track_name", "artist_name", "track_duration", "track_genres_list",
                          "track_dislike_count", "track_like_count", "track_download_count"],
    "user_metadata.csv": ["user_id", "age_bin", "children", "gender", "top_genre", "user_disliked_track_count",
                          "user_liked_track_count", "user_downloaded_track_count"],
    "test.csv": ["user_id"],
    "entities.csv": ["item_id", "song", "work", "artists", "kind", "label"],  # the versions' truth, not a hear-me file
}
DATETIME = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The tiny preset twice with seed 0 (once as a real `python -m`) and once with seed 1."""
    out = {name: tmp_path_factory.mktemp(f"synth_{name}") for name in ("a", "again", "other")}
    main(["--preset", "tiny", "--seed", "0", "--out", str(out["a"])])
    main(["--preset", "tiny", "--seed", "1", "--out", str(out["other"])])
    done = subprocess.run([sys.executable, "-m", "seqrec.synth", "--preset", "tiny", "--seed", "0",
                           "--out", str(out["again"])], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {out['again']}: interactions=")
    return out


def read(folder: Path, name: str) -> pd.DataFrame:
    """A file as text, exactly as written (no NA parsing)."""
    return pd.read_csv(folder / name, dtype=str, keep_default_na=False)


def test_files_and_columns(runs):
    folder = runs["a"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)  # no temporary files left behind
    for name, columns in FILES.items():
        header = (folder / name).read_text(encoding="utf-8").split("\n", 1)[0]
        assert header.split(",") == columns, name
        assert len(read(folder, name)) > 0, name


def test_datetimes_and_periods(runs):
    inter, future = read(runs["a"], "interactions.csv"), read(runs["a"], "future.csv")
    for df in (inter, future):
        assert df["listened_datetime"].str.match(DATETIME).all()
    ts = pd.to_datetime(inter["listened_datetime"])
    bug = ts.dt.year == 1970  # injected export bugs
    assert bug.sum() > 0
    assert (ts[~bug] >= "2025-02-28").all() and (ts[~bug] < "2025-08-31").all()
    assert (ts[bug] < "1970-08-31").all()  # shifted by the log start, so still within half a year of 1970-01-01
    fts = pd.to_datetime(future["listened_datetime"])
    assert (fts >= "2025-09-01").all() and (fts < "2025-09-16").all()


def test_test_users_have_history_and_window_plays(runs):
    folder = runs["a"]
    test = read(folder, "test.csv")["user_id"]
    assert len(test) > 0 and test.is_unique
    assert test.isin(read(folder, "interactions.csv")["user_id"]).all()
    plays = read(folder, "future.csv")["user_id"].value_counts()
    assert (plays.reindex(test, fill_value=0) >= 30).all()  # min_test_events


def test_same_seed_same_files_other_seed_other_files(runs):
    for name in FILES:
        assert (runs["a"] / name).read_bytes() == (runs["again"] / name).read_bytes(), name
    assert (runs["a"] / "interactions.csv").read_bytes() != (runs["other"] / "interactions.csv").read_bytes()
    assert (runs["a"] / "test.csv").read_bytes() != (runs["other"] / "test.csv").read_bytes()


def test_noise_as_in_real_exports(runs):
    folder = runs["a"]
    inter = read(folder, "interactions.csv")
    items = read(folder, "item_metadata.csv")
    assert inter.duplicated().sum() > 0  # exact duplicate rows
    assert (inter["listened_duration"].astype(int) < 0).sum() > 0
    assert (~inter["item_id"].isin(items["item_id"])).sum() > 0  # tracks missing from the metadata
    assert (items["track_duration"] == "").sum() > 0 and (items["artist_name"] == "").sum() > 0
    assert not pd.to_datetime(inter["listened_datetime"]).is_monotonic_increasing  # rows are not sorted
    users = read(folder, "user_metadata.csv")
    assert (users["age_bin"] == "").sum() > 0 and set(users["age_bin"]) <= {"", "18_29", "30_44", "45_60", "61_inf"}
    assert set(users["gender"]) <= {"", "M", "F"}


def test_genre_lists_are_python_list_literals(runs):
    genres = read(runs["a"], "item_metadata.csv")["track_genres_list"]
    present = genres[genres != ""]
    assert len(present) > 0
    for text in present:
        value = ast.literal_eval(text)
        assert isinstance(value, list) and value and all(isinstance(g, str) and g in GENRES for g in value)


def test_output_reads_with_our_loader(runs):
    tables = read_dir(runs["a"])
    assert tables["interactions.csv"].num_rows == len(read(runs["a"], "interactions.csv"))
    assert tables["future.csv"] is not None and tables["user_metadata.csv"] is not None
