"""From simulated listening to hear-me files: track and artist names, metadata with gaps, export noise, CSVs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv

from seqrec.synth.versions import Alternates, names, truth
from seqrec.synth.versions import artist_names as artist_names_synth

if TYPE_CHECKING:
    from seqrec.synth.catalog import Catalog

GENRES = [
    "Поп", "Pop", "Рок", "Rock", "Hip-Hop", "Рэп", "Электроника", "Dance", "Jazz", "Classical",
    "Шансон", "Indie", "Metal", "R&B", "Folk", "Lo-fi", "K-Pop", "Latin", "Эстрада", "Soundtrack",
    "Альтернатива", "Blues", "Country", "Детская",
]
WORDS = [
    "love", "night", "fire", "dream", "city", "rain", "heart", "gold", "wild", "blue", "ночь", "любовь",
    "город", "звезда", "море", "весна", "sun", "moon", "road", "home", "ветер", "небо", "dance", "lost",
    "забудь", "танцуй", "время", "light", "shadow", "echo", "river", "снег", "огонь", "летим", "summer",
]
EPOCH = np.datetime64("1970-01-01T00:00:00", "us")


def add_noise(df: pd.DataFrame, rate: float, rng: np.random.Generator, durations: np.ndarray,
              start: np.datetime64) -> pd.DataFrame:
    """Export bugs: duplicates, negative and absurd durations, 1970 timestamps; then shuffle."""
    n = len(df)
    dups = df.iloc[rng.choice(n, int(0.01 * rate * n), replace=False)] if rate > 0 else df.iloc[:0]
    df = pd.concat([df, dups], ignore_index=True)
    n = len(df)
    listened = df["listened_duration"].to_numpy().copy()
    neg = rng.random(n) < 0.0005 * rate
    listened[neg] = -rng.integers(1, 300, neg.sum())
    huge = rng.random(n) < 0.001 * rate
    listened[huge] = durations[df["item"].to_numpy()[huge]] * rng.integers(8, 60, huge.sum())
    df["listened_duration"] = listened
    bug = rng.random(n) < 0.0001 * rate
    ts = df["listened_datetime"].to_numpy().copy()
    ts[bug] = EPOCH + (ts[bug] - start)  # a clock reset: the right time of day, the wrong epoch
    df["listened_datetime"] = ts
    return df.iloc[rng.permutation(n)].reset_index(drop=True)


def _names(rng: np.random.Generator, n: int, lo: int, hi: int) -> np.ndarray:
    words = np.array(WORDS, dtype=object)
    k = rng.integers(lo, hi + 1, n)
    picks = words[rng.integers(0, len(words), (n, hi))]
    return np.array([" ".join(row[:m]).title() for row, m in zip(picks, k, strict=True)], dtype=object)


def write_metadata(noise: float, cat: Catalog, item_ids: np.ndarray, user_ids: np.ndarray,
                   age: np.ndarray, gender: np.ndarray, children: np.ndarray, top_genre: np.ndarray,
                   out: Path, rng: np.random.Generator, alt: Alternates | None = None,
                   vrng: np.random.Generator | None = None) -> None:
    """item_metadata.csv and user_metadata.csv with the gaps real metadata has; with `alt`, the versions, covers
    and duplicates after the base tracks (their names and draws from `vrng`) and entities.csv, the truth."""
    n_artists = cat.artist.max() + 1
    n_base = cat.n
    artist_names = _names(rng, n_artists, 1, 2)
    feat = rng.random(n_artists) < 0.05
    partner = rng.integers(0, n_artists, n_artists)
    artist_names[feat] = artist_names[feat] + " feat. " + artist_names[partner[feat]]
    second = rng.integers(0, len(GENRES), n_base)
    two = rng.random(n_base) < 0.3
    genre_lists = [
        repr([GENRES[g], GENRES[s]]) if t else repr([GENRES[g]])
        for g, s, t in zip(cat.genre, second, two, strict=True)
    ]
    like = np.round(cat.pop * rng.lognormal(2, 1, n_base)).astype(np.int64)
    items = pd.DataFrame({
        "item_id": item_ids[:n_base],
        "track_name": _names(rng, n_base, 1, 3),
        "artist_name": artist_names[cat.artist],
        "track_duration": cat.duration.astype(float),
        "track_genres_list": genre_lists,
        "track_dislike_count": (like * rng.uniform(0, 0.1, n_base)).round(),
        "track_like_count": like.astype(float),
        "track_download_count": (like * rng.uniform(0, 0.5, n_base)).round(),
    })
    rate = noise
    gaps = [rng.random(n_base) < r * rate for r in (0.005, 0.01, 0.02)] + [rng.random(n_base) < 0.003 * rate]
    if alt is not None:  # versions, covers, duplicates: names from the base's, every draw from their own stream
        who = np.where(vrng.random(n_artists) < 0.05, vrng.integers(0, n_artists, n_artists), -1)
        titles, credits = names(items["track_name"].to_numpy(), artist_names_synth(n_artists, vrng), cat.artist,
                                alt, who, vrng)
        extra = items.iloc[alt.base].assign(item_id=item_ids[n_base:], track_duration=alt.duration.astype(float))
        items = pd.concat([items, extra], ignore_index=True).assign(track_name=titles, artist_name=credits)
        gaps = [np.r_[g, vrng.random(alt.n) < g.mean()] for g in gaps]
        write_csv(truth(item_ids, alt, cat.artist, who), out / "entities.csv")
    items.loc[gaps[0], "track_duration"] = np.nan
    items.loc[gaps[1], "artist_name"] = None
    items.loc[gaps[2], "track_genres_list"] = None
    items = items[~gaps[3]]  # tracks that never made it into the metadata
    write_csv(items.iloc[rng.permutation(len(items))], out / "item_metadata.csv")

    users = pd.DataFrame({
        "user_id": user_ids,
        "age_bin": np.array(["18_29", "30_44", "45_60", "61_inf"])[age],
        "children": children.astype(float),
        "gender": np.array(["M", "F"])[gender],
        "top_genre": np.array(GENRES, dtype=object)[top_genre],
        "user_disliked_track_count": rng.poisson(3, len(user_ids)).astype(float),
        "user_liked_track_count": rng.poisson(40, len(user_ids)).astype(float),
        "user_downloaded_track_count": rng.poisson(10, len(user_ids)).astype(float),
    })
    for col in ("age_bin", "gender", "top_genre"):
        users.loc[rng.random(len(users)) < 0.03 * rate, col] = None
    users = users[rng.random(len(users)) >= 0.03 * rate]
    write_csv(users, out / "user_metadata.csv")


class CsvSink:
    """Appends DataFrames to a CSV written under a temporary name and renamed on success."""

    def __init__(self, path: Path):
        self.path, self.tmp, self.writer = path, path.with_name(f".{path.name}.tmp"), None

    def __enter__(self) -> CsvSink:
        self.fh = open(self.tmp, "wb")
        return self

    def write(self, df: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(df, preserve_index=False)
        if self.writer is None:
            self.fh.write((",".join(table.column_names) + "\n").encode())
            self.writer = pcsv.CSVWriter(self.fh, table.schema, write_options=pcsv.WriteOptions(include_header=False))
        self.writer.write_table(table)

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.writer is not None:
            self.writer.close()
        self.fh.close()
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def write_csv(df: pd.DataFrame, path: Path) -> None:
    with CsvSink(path) as sink:
        sink.write(df)


