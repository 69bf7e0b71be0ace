"""Synthetic hear-me data calibrated to the real service's shape.

Generative story (all vectorised over events, users processed in chunks):
- Catalog: tracks are laid out album by album (an album's tracks have consecutive indices); albums belong
  to artists with heavy-tailed popularity, artists to a primary genre. A share of tracks is released during
  the period and is only played after release, with a launch boost that fades.
- Users: a demographic segment tilts a sparse genre taste; activity is log-normal (a few heavy listeners,
  many light ones); each user is active over a sub-interval of the period.
- Listening comes in sessions (daily rhythm peaking in the evening; plays back to back). Each play is
  a favourite (a small core of all-time favourites plus a window of favourites that slides through a
  personal list over time, so tastes drift; a new favourite is often the next album track or a related
  track of the one before it), the next track of the album just played (at a session's start: where the
  last session stopped), a related track of the play before (playlist-like), or a discovery drawn from
  the user's genres by time-varying popularity.
- How much is listened depends on affinity: favourites are mostly played to the end, discoveries outside
  the user's main genres are mostly skipped. Durations are whole seconds, so a full listen sometimes ends
  a second or two short.
- Noise as in real exports: exact duplicate rows, negative and absurdly long durations, timestamps from
  1970, tracks missing from the metadata, metadata fields missing, unsorted rows.
The 15-day window after the log (future.csv) continues the same process; test users are users with
history who listen at least `min_test_events` times in that window.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from seqrec.data.synth_export import GENRES, CsvSink, add_noise, write_csv, write_metadata

START = np.datetime64("2025-02-28T00:00:00", "us")
TRAIN_END = np.datetime64("2025-08-31T00:00:00", "us")  # the log covers 02-28 .. 08-30
WINDOW_START = np.datetime64("2025-09-01T00:00:00", "us")
WINDOW_END = np.datetime64("2025-09-16T00:00:00", "us")
DAY_US = 86_400_000_000
HOUR_WEIGHTS = np.array([2, 1, 1, 1, 1, 2, 4, 7, 9, 8, 7, 7, 8, 8, 7, 7, 8, 10, 12, 13, 13, 11, 8, 4], float)


@dataclass
class SynthConfig:
    """Size and behaviour of the synthetic service."""

    users: int = 5_000
    items: int = 30_000
    seed: int = 0
    test_users: int = 1_500
    """Users in test.csv (fewer if not enough qualify)."""
    min_test_events: int = 30
    """A test user listens at least this many times in the window."""
    events_median: float = 80.0
    """Median plays per user over the whole period (train + window)."""
    events_sigma: float = 1.3
    """Log-normal spread of user activity."""
    session_mean: float = 8.0
    """Mean plays per session."""
    p_core: float = 0.5
    """Share of plays that go to a user's all-time favourites."""
    p_drift: float = 0.35
    """Share of plays that go to the user's current (drifting) favourites."""
    p_next: float = 0.25
    """Chance that a play (not the session's first) is the next track of the album just played."""
    p_resume: float = 0.3
    """Chance that a session starts with the next album track after the previous session's last play."""
    p_related: float = 0.1
    """Chance that a play (not the session's first) is one of the related tracks of the play before."""
    p_drift_related: float = 0.7
    """Share of drifting favourites that follow from the favourite before them (album or related track)."""
    p_drift_album: float = 0.5
    """Of those, the share that is the next track of the previous favourite's album."""
    core_size: int = 5
    """All-time favourites per user (scaled up for heavy listeners)."""
    window_size: int = 12
    """Current favourites per user at any time (scaled up for heavy listeners)."""
    drift: float = 2.5
    """How many times the current favourites are replaced over the period."""
    new_release_share: float = 0.12
    """Tracks released during the period."""
    noise: float = 1.0
    """Multiplier on every noise rate (0 = clean data)."""


PRESETS = {
    "demo": SynthConfig(users=5_000, items=30_000, test_users=1_000),
    "full": SynthConfig(users=279_000, items=349_000, test_users=1_500, events_median=62.0),  # ~25M rows
    "tiny": SynthConfig(users=300, items=2_000, test_users=100),
}
CHUNK_USERS = 20_000


@dataclass
class Catalog:
    """Generated tracks (index 0..n-1) with what the listening process needs."""

    album_start: np.ndarray  # first track index of each track's album
    album_len: np.ndarray
    artist: np.ndarray
    genre: np.ndarray
    duration: np.ndarray  # int seconds
    release: np.ndarray  # datetime64[us]; START for back-catalog
    pop: np.ndarray  # base popularity weight
    related: np.ndarray  # (n, R) related tracks of each track: same genre, drawn by popularity


def make_catalog(cfg: SynthConfig, rng: np.random.Generator) -> Catalog:
    """Albums of consecutive tracks, artists with heavy-tailed popularity, genres, release dates."""
    n = cfg.items
    lens = np.minimum(1 + rng.poisson(7, size=n), 30)
    lens = lens[: np.searchsorted(np.cumsum(lens), n) + 1]
    lens[-1] -= lens.sum() - n
    n_albums = len(lens)
    n_artists = max(1, n_albums // 3)
    artist_pop = rng.pareto(1.2, n_artists) + 0.05
    album_artist = rng.choice(n_artists, size=n_albums, p=artist_pop / artist_pop.sum())
    genre_pop = 1.0 / np.arange(1, len(GENRES) + 1) ** 0.8
    artist_genre = rng.choice(len(GENRES), size=n_artists, p=genre_pop / genre_pop.sum())
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    album_start = np.repeat(starts, lens)
    album_len = np.repeat(lens, lens)
    artist = np.repeat(album_artist, lens)
    pos = np.arange(n) - album_start
    pop = artist_pop[artist] * np.repeat(rng.lognormal(0, 1.0, n_albums), lens) * rng.lognormal(0, 0.7, n)
    pop *= 1.0 / (1 + 0.15 * pos)  # opening tracks of an album are played more
    period = (TRAIN_END - START).astype(np.int64)
    new_album = rng.random(n_albums) < cfg.new_release_share
    offset = (rng.random(n_albums) * period).astype(np.int64).astype("timedelta64[us]")
    release = np.where(new_album, START + offset, START)
    duration = np.clip(rng.lognormal(np.log(200), 0.3, n), 45, 900).round().astype(np.int64)
    genre = artist_genre[artist]
    # Related tracks: two neighbours on a shuffled per-genre ring (track-specific, like a playlist)
    # and one popular track of the genre.
    related = np.empty((n, 3), dtype=np.int64)
    for g in range(len(GENRES)):  # per genre, not per track
        members = rng.permutation(np.flatnonzero(genre == g))
        if len(members):
            related[members, 0] = np.roll(members, -1)
            related[members, 1] = np.roll(members, -2)
            cum = np.cumsum(pop[members])
            pick = np.searchsorted(cum, rng.random(len(members)) * cum[-1])
            related[members, 2] = members[np.minimum(pick, len(members) - 1)]
    return Catalog(album_start, album_len, artist, genre, duration, np.repeat(release, lens), pop, related)


def popularity_tables(cat: Catalog, n_slices: int) -> tuple[np.ndarray, list[list[tuple]]]:
    """Per (time slice, genre): items and cumulative weights, so discoveries follow time-varying popularity."""
    edges = START + (np.arange(n_slices + 1) * ((WINDOW_END - START) / n_slices)).astype("timedelta64[us]")
    tables = []
    for s in range(n_slices):
        mid = edges[s] + (edges[s + 1] - edges[s]) // 2
        age_days = (mid - cat.release).astype(np.int64) / DAY_US
        launched = cat.release <= START
        w = np.where(age_days < 0, 0.0, cat.pop * (1 + np.where(launched, 0, 4 * np.exp(-age_days / 30))))
        per_genre = []
        for g in range(len(GENRES)):
            idx = np.flatnonzero((cat.genre == g) & (w > 0))
            per_genre.append((idx, np.cumsum(w[idx])))
        tables.append(per_genre)
    return edges, tables


def draw(tables: list[list[tuple]], slice_: np.ndarray, genre: np.ndarray, rng: np.random.Generator,
         fallback: np.ndarray) -> np.ndarray:
    """One popularity-weighted track per (slice, genre) request; grouped so the loop is per group."""
    out = np.empty(len(slice_), dtype=np.int64)
    key = slice_ * len(GENRES) + genre
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    for grp in np.split(order, bounds):
        if not len(grp):
            continue
        idx, cum = tables[slice_[grp[0]]][genre[grp[0]]]
        if not len(idx):
            out[grp] = rng.choice(fallback, size=len(grp))
            continue
        out[grp] = idx[np.minimum(np.searchsorted(cum, rng.random(len(grp)) * cum[-1]), len(idx) - 1)]
    return out


def simulate_chunk(cfg: SynthConfig, cat: Catalog, tables, edges, user_lo: int, user_hi: int,
                   demo_taste: np.ndarray, segment: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Listening events (user, item, duration, time) of users [user_lo, user_hi)."""
    n_u = user_hi - user_lo
    n_genres = len(GENRES)
    taste = np.stack([rng.dirichlet(demo_taste[s] * 1.5 + 0.02) for s in segment[user_lo:user_hi]])
    cum_taste = np.cumsum(taste, axis=1)
    activity = rng.lognormal(np.log(cfg.events_median), cfg.events_sigma, n_u)
    span = (WINDOW_END - START).astype(np.int64)
    a = rng.random(n_u) * rng.random(n_u)  # most users are there from the start
    life = 0.2 + 0.8 * rng.random(n_u) ** 0.3
    u_start = START + (a * span).astype(np.int64).astype("timedelta64[us]")
    u_end = np.minimum(u_start + (life * span).astype(np.int64).astype("timedelta64[us]"), WINDOW_END)
    active_frac = (u_end - u_start).astype(np.int64) / span
    n_sess = np.maximum(1, rng.poisson(activity * active_frac / cfg.session_mean))
    sess_user = np.repeat(np.arange(n_u), n_sess)
    n_sessions = len(sess_user)
    sess_len = 1 + rng.geometric(1 / cfg.session_mean, n_sessions) - 1
    s_range = (u_end - u_start).astype(np.int64)[sess_user]
    day = (rng.random(n_sessions) * s_range).astype(np.int64) // DAY_US
    hour = rng.choice(24, size=n_sessions, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    sess_t = (u_start[sess_user] + (day * DAY_US + hour * 3_600_000_000
                                    + rng.integers(0, 3_600_000_000, n_sessions)).astype("timedelta64[us]"))

    # Sessions in time order per user, so tastes drift forward and a session can resume the last one.
    order = np.lexsort((sess_t, sess_user))
    sess_t, sess_len = sess_t[order], sess_len[order]
    user_first = np.ones(n_sessions, dtype=bool)
    user_first[1:] = sess_user[1:] != sess_user[:-1]

    # Events: user, session start, position in session.
    ev_sess = np.repeat(np.arange(n_sessions), sess_len)
    n_ev = len(ev_sess)
    first = np.ones(n_ev, dtype=bool)
    first[1:] = ev_sess[1:] != ev_sess[:-1]
    user = sess_user[ev_sess]
    t0 = sess_t[ev_sess]
    tau = np.clip((t0 - START).astype(np.int64) / span, 0, 1)

    # Favourites: a core list and a sliding window over a longer personal list.
    heavy = np.sqrt(activity / cfg.events_median)
    core_n = np.maximum(2, (cfg.core_size * heavy).astype(np.int64))
    win_n = np.maximum(3, (cfg.window_size * heavy).astype(np.int64))
    list_n = core_n + win_n + np.ceil(cfg.drift * win_n).astype(np.int64)
    fav_off = np.concatenate([[0], np.cumsum(list_n)])
    fav_user = np.repeat(np.arange(n_u), list_n)
    fav_genre = (rng.random(len(fav_user))[:, None] > cum_taste[fav_user]).sum(1).clip(0, n_genres - 1)
    # favourites were discovered around when they enter the window: draw them from that slice's popularity
    rel = (np.arange(len(fav_user)) - fav_off[fav_user] - core_n[fav_user]).clip(0) / (
        list_n[fav_user] - core_n[fav_user])
    fav_slice = np.minimum((rel * len(tables)).astype(np.int64), len(tables) - 1)
    fav_items = draw(tables, fav_slice, fav_genre, rng, np.arange(len(cat.pop)))
    # Tastes drift along related tracks and through albums: a new favourite is often the next track of
    # the album of the one before it, or one of its related tracks.
    pos_in_list = np.arange(len(fav_user)) - fav_off[fav_user]
    u_grow = rng.random(len(fav_user))
    grow = (pos_in_list > core_n[fav_user]) & (u_grow < cfg.p_drift_related)
    album = grow & (u_grow < cfg.p_drift_related * cfg.p_drift_album)
    pick = rng.integers(0, cat.related.shape[1], len(fav_user))
    for p in range(1, int(pos_in_list.max(initial=0)) + 1):  # per list position, vectorised over users
        at = np.flatnonzero(grow & (pos_in_list == p))
        prev = fav_items[at - 1]
        nxt = cat.album_start[prev] + (prev - cat.album_start[prev] + 1) % cat.album_len[prev]
        fav_items[at] = np.where(album[at], nxt, cat.related[prev, pick[at]])

    # Play types. A related play follows the previous play's related tracks; it never follows another
    # related play and is never continued as an album, so every play resolves in one vectorised pass.
    r = rng.random(n_ev)
    # A session's first play may resume the album where the user's previous session stopped.
    p_next = np.where(first, np.where(user_first[ev_sess], 0.0, cfg.p_resume), cfg.p_next)
    p_rel = np.where(first, 0.0, cfg.p_related)
    is_next = r < p_next
    is_rel = ~is_next & (r < p_next + p_rel)
    is_rel[1:] &= ~is_rel[:-1]
    after_rel = np.zeros(n_ev, dtype=bool)
    after_rel[1:] = is_rel[:-1]
    is_next &= ~after_rel
    rest = rng.random(n_ev)
    is_core = ~is_next & ~is_rel & (rest < cfg.p_core)
    is_drift = ~is_next & ~is_rel & ~is_core & (rest < cfg.p_core + cfg.p_drift)
    is_disc = ~(is_next | is_rel | is_core | is_drift)

    item = np.zeros(n_ev, dtype=np.int64)
    j = (core_n[user] * rng.random(n_ev) ** 1.6).astype(np.int64)
    item[is_core] = fav_items[fav_off[user] + j][is_core]
    n_drift = list_n - core_n - win_n
    base = core_n[user] + (tau * n_drift[user]).astype(np.int64)
    j = (win_n[user] * rng.beta(2, 2, n_ev)).astype(np.int64)
    item[is_drift] = fav_items[fav_off[user] + base + j][is_drift]
    g = (rng.random(n_ev)[:, None] > cum_taste[user]).sum(1).clip(0, n_genres - 1)
    s = np.clip(np.searchsorted(edges, t0, side="right") - 1, 0, len(tables) - 1)
    item[is_disc] = draw(tables, s[is_disc], g[is_disc], rng, np.arange(len(cat.pop)))
    # Album continuation: the run starting at the last non-continuation play walks down its album.
    idx = np.arange(n_ev)
    run_start = np.maximum.accumulate(np.where(~is_next, idx, 0))
    head = item[run_start]
    step = idx - run_start
    item = cat.album_start[head] + (head - cat.album_start[head] + step) % cat.album_len[head]
    unreleased = cat.release[item] > t0
    item[unreleased] = head[unreleased]  # an album cannot continue into a track not yet out
    rel_idx = np.flatnonzero(is_rel)
    prev = item[rel_idx - 1]
    item[rel_idx] = cat.related[prev, rng.integers(0, cat.related.shape[1], len(rel_idx))]
    unreleased = cat.release[item[rel_idx]] > t0[rel_idx]
    item[rel_idx[unreleased]] = prev[unreleased]

    # How much is listened depends on affinity.
    affinity = taste[user, cat.genre[item]] / taste[user].max(1)
    p_full = np.where(is_core | is_drift, 0.92, np.where(is_next, 0.55, 0.1 + 0.6 * affinity))
    u = rng.random(n_ev)
    dur = cat.duration[item]
    frac = np.where(u < p_full, 1.0,
                    np.where(u < p_full + 0.3 * (1 - p_full), rng.uniform(0.3, 0.98, n_ev), rng.uniform(0, 0.3, n_ev)))
    listened = np.floor(frac * dur).astype(np.int64)
    short = (frac == 1.0) & (rng.random(n_ev) < 0.1)
    listened[short] -= rng.integers(1, 4, short.sum())
    # Plays follow each other back to back within a session.
    gap = np.zeros(n_ev, dtype=np.int64)
    gap[1:] = listened[:-1] + rng.integers(1, 15, n_ev - 1)  # the next play starts when this one ends
    gap[first] = 0
    csum = np.cumsum(gap)
    sess_first_csum = csum[np.flatnonzero(first)][ev_sess - ev_sess[0]] if n_ev else csum
    offset_s = csum - sess_first_csum
    ts = t0 + (offset_s * 1_000_000 + rng.integers(0, 1_000_000, n_ev)).astype("timedelta64[us]")
    keep = ts < WINDOW_END
    return pd.DataFrame({"user": (user + user_lo)[keep], "item": item[keep],
                         "listened_duration": listened[keep], "listened_datetime": ts[keep]})


def generate(cfg: SynthConfig, out: str | Path) -> dict:
    """Write the four hear-me files plus future.csv into `out`; returns row counts."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    cat = make_catalog(cfg, rng)
    item_ids = rng.choice(10 * cfg.items + 1_000_000, size=cfg.items, replace=False) + 1
    user_ids = np.sort(rng.choice(10 * cfg.users + 1_000_000, size=cfg.users, replace=False) + 1)
    age = rng.choice(4, size=cfg.users, p=[0.35, 0.35, 0.2, 0.1])
    gender = rng.integers(0, 2, cfg.users)
    children = (rng.random(cfg.users) < np.array([0.1, 0.5, 0.4, 0.2])[age]).astype(int)
    segment = age * 2 + gender
    genre_pop = 1.0 / np.arange(1, len(GENRES) + 1) ** 0.8
    demo_taste = rng.dirichlet(genre_pop * 3, size=8)  # each segment tilts toward some genres
    edges, tables = popularity_tables(cat, n_slices=14)

    train_path, future_path = out / "interactions.csv", out / "future.csv"
    counts = {"interactions": 0, "future": 0}
    future_counts = np.zeros(cfg.users, dtype=np.int64)
    has_train = np.zeros(cfg.users, dtype=bool)
    top_genre = np.zeros(cfg.users, dtype=np.int64)
    with CsvSink(train_path) as train_sink, CsvSink(future_path) as future_sink:
        for lo in range(0, cfg.users, CHUNK_USERS):
            hi = min(lo + CHUNK_USERS, cfg.users)
            df = simulate_chunk(cfg, cat, tables, edges, lo, hi, demo_taste, segment, rng)
            ts = df["listened_datetime"].to_numpy()
            train, future = df[ts < TRAIN_END], df[ts >= WINDOW_START]
            has_train[np.unique(train["user"])] = True
            future_counts += np.bincount(future["user"], minlength=cfg.users)
            top_genre[lo:hi] = _top_genre(train, cat, lo, hi)
            train = add_noise(train, cfg.noise, rng, cat.duration, START)
            for sink, part in ((train_sink, train), (future_sink, future)):
                part = part.assign(user=user_ids[part["user"]], item=item_ids[part["item"]])
                sink.write(part.rename(columns={"user": "user_id", "item": "item_id"}))
            counts["interactions"] += len(train)
            counts["future"] += len(future)
    write_metadata(cfg.noise, cat, item_ids, user_ids, age, gender, children, top_genre, out, rng)
    eligible = np.flatnonzero(has_train & (future_counts >= cfg.min_test_events))
    test = np.sort(rng.choice(eligible, size=min(cfg.test_users, len(eligible)), replace=False))
    write_csv(pd.DataFrame({"user_id": user_ids[test]}), out / "test.csv")
    counts["test_users"] = len(test)
    return counts


def _top_genre(train: pd.DataFrame, cat: Catalog, lo: int, hi: int) -> np.ndarray:
    n = hi - lo
    counts = np.zeros((n, len(GENRES)))
    np.add.at(counts, (train["user"].to_numpy() - lo, cat.genre[train["item"].to_numpy()]), 1)
    return counts.argmax(1)


def main(argv: list[str] | None = None) -> None:
    """CLI: python -m seqrec.synth --out DIR [--preset demo|full|tiny] [--users N --items M --seed S]."""
    p = argparse.ArgumentParser(prog="python -m seqrec.synth", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="folder to write the hear-me files into")
    p.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    for f in fields(SynthConfig):
        if f.name != "preset":
            p.add_argument(f"--{f.name.replace('_', '-')}", type=type(getattr(SynthConfig(), f.name)), default=None)
    args = p.parse_args(argv)
    base = PRESETS[args.preset]
    overrides = {f.name: getattr(args, f.name) for f in fields(SynthConfig) if getattr(args, f.name) is not None}
    cfg = SynthConfig(**{**base.__dict__, **overrides})
    counts = generate(cfg, args.out)
    print(f"wrote {args.out}: " + ", ".join(f"{k}={v:,}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
