"""Run the synthetic service and write its hear-me files."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from seqrec.synth.catalog import Catalog, Charts, make_catalog
from seqrec.synth.config import START, TRAIN_END_DAY, WINDOW_START_DAY, SynthConfig
from seqrec.synth.export import GENRES, CsvSink, add_noise, write_csv, write_metadata
from seqrec.synth.listening import simulate_listening
from seqrec.synth.users import Users, make_sessions, make_users
from seqrec.synth.versions import make_alternates, redirect

CHUNK_USERS = 20_000
DAY_US = 86_400_000_000


class World:
    """What is fixed before anyone listens: the catalogue, its charts, the users' demographics."""

    def __init__(self, cfg: SynthConfig):
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed)
        rng = self.rng
        self.cat: Catalog = make_catalog(cfg, rng)
        self.charts = Charts(self.cat, cfg)
        self.age = rng.choice(4, size=cfg.users, p=[0.35, 0.35, 0.2, 0.1])
        self.gender = rng.integers(0, 2, cfg.users)
        self.children = (rng.random(cfg.users) < np.array([0.1, 0.5, 0.4, 0.2])[self.age]).astype(int)
        genre_pop = 1.0 / np.arange(1, len(GENRES) + 1) ** 0.8
        self.demo_taste = rng.dirichlet(genre_pop * 3, size=8)  # each (age, gender) segment tilts toward some genres

    def chunks(self, progress: bool = False) -> Iterator[tuple[int, int, Users, pd.DataFrame]]:
        """(first user, end user, users, plays) per chunk of users; plays have user (global index), item,
        listened_duration, day, kind."""
        cfg = self.cfg
        for lo in range(0, cfg.users, CHUNK_USERS):
            hi = min(lo + CHUNK_USERS, cfg.users)
            users = make_users(cfg, self.cat, self.age[lo:hi] * 2 + self.gender[lo:hi], self.demo_taste, self.rng)
            sessions = make_sessions(users, cfg, self.rng)
            plays = simulate_listening(cfg, self.cat, self.charts, users, sessions, lo, self.rng)
            if progress:
                print(f"\r  users {hi:,}/{cfg.users:,}", end="", file=sys.stderr, flush=True)
            yield lo, hi, users, plays
        if progress:
            print(file=sys.stderr)


@dataclass
class Simulation:
    """Every play of every user over the log and the window (no export noise), and what drove it."""

    world: World
    plays: pd.DataFrame
    home: np.ndarray
    """(users, MAX_SCENES) each user's scenes at the start, -1 padded."""
    follows: np.ndarray
    """(users, MAX_FOLLOWS) followed artists, -1 padded."""


def simulate(cfg: SynthConfig) -> Simulation:
    """Run the service without writing files, for inspection and tests."""
    world = World(cfg)
    chunks = list(world.chunks())
    return Simulation(world, pd.concat([plays for *_, plays in chunks], ignore_index=True),
                      np.concatenate([users.home for _, _, users, _ in chunks]),
                      np.concatenate([users.follows for _, _, users, _ in chunks]))


def to_datetime(day: np.ndarray) -> np.ndarray:
    return START + (day * DAY_US).astype(np.int64).astype("timedelta64[us]")


def generate(cfg: SynthConfig, out: str | Path, progress: bool = False) -> dict:
    """Write the four hear-me files plus future.csv (the true window) into `out`; returns row counts."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    world = World(cfg)
    cat, rng = world.cat, world.rng
    item_ids = rng.choice(10 * cfg.items + 1_000_000, size=cfg.items, replace=False) + 1
    user_ids = np.sort(rng.choice(10 * cfg.users + 1_000_000, size=cfg.users, replace=False) + 1)
    duration, genre, alt, vrng = cat.duration, cat.genre, None, None
    if cfg.version_share or cfg.cover_share or cfg.duplicate_share:  # one song under many ids (versions.py)
        vrng = np.random.default_rng([cfg.seed, 1])  # its own stream: the rest of the data stays the same
        alt = make_alternates(cat.artist, cat.duration, cat.pop, cfg, vrng)
        top = 10 * cfg.items + 1_000_001  # above every base id
        item_ids = np.r_[item_ids, vrng.choice(10 * alt.n + 1_000_000, size=alt.n, replace=False) + top]
        duration, genre = np.r_[cat.duration, alt.duration], np.r_[cat.genre, cat.genre[alt.base]]
    counts = {"interactions": 0, "future": 0}
    future_counts = np.zeros(cfg.users, dtype=np.int64)
    has_train = np.zeros(cfg.users, dtype=bool)
    top_genre = np.zeros(cfg.users, dtype=np.int64)
    with CsvSink(out / "interactions.csv") as train_sink, CsvSink(out / "future.csv") as future_sink:
        for lo, hi, _, plays in world.chunks(progress):
            plays = plays.drop(columns="kind")
            if alt is not None:
                plays["item"], plays["listened_duration"] = redirect(
                    plays["user"].to_numpy(), plays["item"].to_numpy(), plays["listened_duration"].to_numpy(), alt,
                    cfg.version_play_share, duration, vrng)
            day = plays.pop("day").to_numpy()
            plays["listened_datetime"] = to_datetime(day)
            train, future = plays[day < TRAIN_END_DAY], plays[day >= WINDOW_START_DAY]
            has_train[np.unique(train["user"])] = True
            future_counts += np.bincount(future["user"], minlength=cfg.users)
            top_genre[lo:hi] = _top_genre(train, genre, lo, hi)
            train = add_noise(train, cfg.noise, rng, duration, START)
            for sink, part in ((train_sink, train), (future_sink, future)):
                part = part.assign(user=user_ids[part["user"]], item=item_ids[part["item"]])
                sink.write(part.rename(columns={"user": "user_id", "item": "item_id"}))
            counts["interactions"] += len(train)
            counts["future"] += len(future)
    write_metadata(cfg.noise, cat, item_ids, user_ids, world.age, world.gender, world.children, top_genre, out, rng,
                   alt, vrng)
    eligible = np.flatnonzero(has_train & (future_counts >= cfg.min_test_events))
    test = np.sort(rng.choice(eligible, size=min(cfg.test_users, len(eligible)), replace=False))
    write_csv(pd.DataFrame({"user_id": user_ids[test]}), out / "test.csv")
    counts["test_users"] = len(test)
    return counts


def _top_genre(train: pd.DataFrame, genre: np.ndarray, lo: int, hi: int) -> np.ndarray:
    counts = np.zeros((hi - lo, len(GENRES)))
    np.add.at(counts, (train["user"].to_numpy() - lo, genre[train["item"].to_numpy()]), 1)
    return counts.argmax(1)
