"""Synthetic listeners: taste (genres, scenes, followed artists), activity, weekly and daily habits, sessions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from seqrec.synth.catalog import Catalog, neighbour_scene, scene_hops, weighted_member
from seqrec.synth.config import HOUR_WEIGHTS, SPAN_DAYS, SynthConfig

FIRST_WEEKDAY = 4  # 2025-02-28, day 0, is a Friday (Monday = 0)
MAX_SCENES = 6
MAX_FOLLOWS = 12
DAYPARTS = 4  # night, morning, afternoon, evening: six hours each


@dataclass
class Users:
    """A chunk of users (local indices 0..n-1) and what drives their listening."""

    taste: np.ndarray
    """(n, genres) genre shares."""
    home: np.ndarray
    """(n, MAX_SCENES) the user's scenes, -1 padded."""
    home_w: np.ndarray
    """(n, MAX_SCENES) how much each scene is listened, largest 1, 0 on padding."""
    drift_day: np.ndarray
    """(n, MAX_SCENES) day a scene moves to its neighbour `drift_to` (inf: never)."""
    drift_to: np.ndarray
    follows: np.ndarray
    """(n, MAX_FOLLOWS) followed artists, -1 padded."""
    life_lo: np.ndarray
    """First and last day the user is on the service."""
    life_hi: np.ndarray
    sessions_per_day: np.ndarray
    discoveries: np.ndarray
    """Mean new tracks started per session."""
    adoption: np.ndarray
    """Chance that a fully listened new track becomes a favourite (before the track's catchiness)."""
    replays: np.ndarray
    """Mean replays of a favourite before the user tires of it (before the track's catchiness)."""
    satiation: np.ndarray
    """How much each replay stretches the next gap."""
    period: np.ndarray
    """The user's typical replay period in days."""
    weekday_w: np.ndarray
    """(n, 7) relative chance of a session on each weekday, mean 1."""
    peaks: np.ndarray
    """(n, 2) personal peak hours."""
    peak_w: np.ndarray
    """Chance that a session is at the first peak rather than the second."""

    @property
    def n(self) -> int:
        return len(self.life_lo)

    def scenes_at(self, user: np.ndarray, day: np.ndarray) -> np.ndarray:
        """(m, MAX_SCENES) each user's scenes on that day, after drift."""
        return np.where(day[:, None] >= self.drift_day[user], self.drift_to[user], self.home[user])

    def affinity(self, user: np.ndarray, track_scene: np.ndarray, track_genre: np.ndarray, day: np.ndarray,
                 per_genre: int) -> np.ndarray:
        """0..1: how close a track is to the user's scenes on that day (its own scene 1, a neighbour 0.5, ...),
        plus a little for the genre."""
        scenes = self.scenes_at(user, day)  # (m, K)
        hops = scene_hops(scenes, track_scene[:, None], per_genre)
        near = np.where(scenes >= 0, self.home_w[user] * 0.5 ** hops.astype(np.float64), 0.0)
        near = np.where(hops >= per_genre, 0.0, near).max(1)
        genre = self.taste[user, track_genre] / self.taste[user].max(1)
        return np.clip(0.8 * near + 0.2 * genre, 0.0, 1.0)

    def pick_scene(self, user: np.ndarray, day: np.ndarray, cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
        """A scene to discover in: one of the user's by weight, sometimes a neighbour of it."""
        scenes = self.scenes_at(user, day)
        cum = np.cumsum(self.home_w[user], axis=1)
        k = (rng.random(len(user))[:, None] * cum[:, -1:] >= cum).sum(1)
        scene = scenes[np.arange(len(user)), np.minimum(k, MAX_SCENES - 1)]
        away = rng.random(len(user)) < cfg.p_neighbour_scene
        scene[away] = neighbour_scene(scene[away], cfg.scenes_per_genre, rng)
        return scene


def make_users(cfg: SynthConfig, cat: Catalog, segment: np.ndarray, demo_taste: np.ndarray,
               rng: np.random.Generator) -> Users:
    """Taste from the demographic segment, lifetimes, activity and habits of the users in `segment`."""
    n = len(segment)
    n_genres = demo_taste.shape[1]
    taste = np.stack([rng.dirichlet(demo_taste[s] * 1.5 + 0.02) for s in segment]) if n else np.zeros((0, n_genres))
    cum_taste = np.cumsum(taste, axis=1)

    # Scenes: genres by taste, a scene of the genre by its size; weights decay from the first.
    k = np.clip(1 + rng.poisson(max(cfg.home_scenes - 1, 0), n), 1, MAX_SCENES)
    slot = np.arange(MAX_SCENES)
    g = (rng.random((n, MAX_SCENES, 1)) > cum_taste[:, None, :]).sum(2).clip(0, n_genres - 1)
    scene_pop = 1.0 / np.arange(1, cfg.scenes_per_genre + 1) ** 0.5
    j = rng.choice(cfg.scenes_per_genre, size=(n, MAX_SCENES), p=scene_pop / scene_pop.sum())
    home = np.where(slot < k[:, None], g * cfg.scenes_per_genre + j, -1)
    home_w = np.where(slot < k[:, None], rng.dirichlet(np.ones(MAX_SCENES), n), 0.0)
    home_w /= home_w.max(1, keepdims=True)
    moves = rng.random((n, MAX_SCENES)) < cfg.taste_drift / k[:, None]
    drift_day = np.where(moves & (home >= 0), rng.random((n, MAX_SCENES)) * SPAN_DAYS, np.inf)
    drift_to = np.where(home >= 0, neighbour_scene(np.maximum(home, 0).ravel(), cfg.scenes_per_genre,
                                                   rng).reshape(n, MAX_SCENES), -1)

    # Followed artists: popular artists of the user's scenes.
    n_follow = np.minimum(rng.poisson(cfg.follows, n), MAX_FOLLOWS)
    fs = np.repeat(np.arange(n), n_follow)
    want = home[fs, (rng.random(len(fs)) * k[fs]).astype(np.int64)]
    picked = weighted_member(cat.artist_scene, cat.artist_pop, want, cat.n_scenes, rng,
                             np.full(len(fs), -1, dtype=np.int64))
    once = (picked >= 0) & ~pd.Series(fs * (cat.artist_pop.size + 1) + picked).duplicated().to_numpy()
    fs, picked = fs[once], picked[once]  # each artist followed once, the followed ones first in the row
    follows = np.full((n, MAX_FOLLOWS), -1, dtype=np.int64)
    follows[fs, np.arange(len(fs)) - np.searchsorted(fs, fs)] = picked

    # Lifetimes: some users are there from the start, the others join at a steady rate; some leave early.
    a = np.where(rng.random(n) < cfg.joined_before, 0.0, rng.random(n))
    life = 0.2 + 0.8 * rng.random(n) ** 0.3
    life_lo = a * SPAN_DAYS
    life_hi = np.minimum(life_lo + life * SPAN_DAYS, SPAN_DAYS)

    # Weekly habit: a workday, weekend or even listener, with personal noise; mean 1 over the week.
    kind = rng.choice(3, size=n, p=[0.45, 0.25, 0.3])
    profiles = np.array([[1.3] * 5 + [0.25] * 2, [0.7] * 5 + [1.75] * 2, [1.0] * 7])
    personal = profiles[kind] * rng.lognormal(0, 0.3, (n, 7))
    personal /= personal.mean(1, keepdims=True)
    weekday_w = (1 - cfg.weekday_habit) + cfg.weekday_habit * personal
    rate = rng.lognormal(np.log(cfg.sessions_per_day), cfg.sessions_sigma, n)
    explore = rng.lognormal(0, cfg.discoveries_sigma, n)  # repeaters (< 1) to explorers (> 1)
    hours = rng.choice(24, size=(n, 2), p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum()).astype(np.float64)
    return Users(
        taste=taste, home=home, home_w=home_w, drift_day=drift_day, drift_to=drift_to, follows=follows,
        life_lo=life_lo, life_hi=life_hi,
        sessions_per_day=rate,
        discoveries=cfg.discoveries_per_session * explore,
        adoption=np.minimum(cfg.adoption / np.sqrt(explore), 1.0),  # who explores little keeps more of it
        # A rotation is replayed at the pace the user listens; repeaters replay theirs sooner and for longer.
        period=cfg.period_sessions / rate * np.sqrt(explore) * rng.lognormal(0, 0.4, n),
        replays=cfg.replays / explore,
        satiation=cfg.satiation * np.minimum(explore, 2.0),
        weekday_w=weekday_w, peaks=hours, peak_w=np.where(rng.random(n) < 0.4, 1.0, rng.uniform(0.4, 0.8, n)),
    )


@dataclass
class Sessions:
    """Listening sessions of a chunk of users, sorted by (user, start)."""

    user: np.ndarray
    day: np.ndarray
    """Start, in days since the log's start."""
    daypart: np.ndarray

    def next_of(self, user: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Index of the user's first session starting at or after `day`, -1 when there is none."""
        return _next(self.user.astype(np.float64) * 1e4 + self.day, user * 1e4 + day, self.user, user)

    def next_in_daypart(self, user: np.ndarray, day: np.ndarray, daypart: np.ndarray) -> np.ndarray:
        """The same within one part of the day."""
        key = (self.user * DAYPARTS + self.daypart).astype(np.float64) * 1e4 + self.day
        order = np.argsort(key, kind="stable")
        found = _next(key[order], (user * DAYPARTS + daypart) * 1e4 + day, (self.user * DAYPARTS + self.daypart)[order],
                      user * DAYPARTS + daypart)
        return np.where(found >= 0, order[np.maximum(found, 0)], -1)


def _next(keys: np.ndarray, query: np.ndarray, owner: np.ndarray, want: np.ndarray) -> np.ndarray:
    pos = np.searchsorted(keys, query, side="left")
    ok = pos < len(keys)
    ok[ok] = owner[pos[ok]] == want[ok]
    return np.where(ok, pos, -1)


def make_sessions(users: Users, cfg: SynthConfig, rng: np.random.Generator) -> Sessions:
    """Sessions on the user's active days, thinned by the weekday habit, at personal (or service-wide) hours."""
    top = users.weekday_w.max(1)
    n_cand = rng.poisson(users.sessions_per_day * (users.life_hi - users.life_lo) * top)
    user = np.repeat(np.arange(users.n), n_cand)
    day = np.floor(users.life_lo[user] + rng.random(len(user)) * (users.life_hi - users.life_lo)[user])
    weekday = (FIRST_WEEKDAY + day.astype(np.int64)) % 7
    keep = rng.random(len(user)) * top[user] < users.weekday_w[user, weekday]
    user, day = user[keep], day[keep]
    peak = np.where(rng.random(len(user)) < users.peak_w[user], users.peaks[user, 0], users.peaks[user, 1])
    personal = (peak + rng.normal(0, 1.5, len(user))) % 24
    service = rng.choice(24, size=len(user), p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum()) + rng.random(len(user))
    hour = np.where(rng.random(len(user)) < cfg.hour_habit, personal, service)
    start = np.clip(day + hour / 24, users.life_lo[user], users.life_hi[user])
    order = np.lexsort((start, user))
    user, start, hour = user[order], start[order], hour[order]
    return Sessions(user=user, day=start, daypart=(hour // 6).astype(np.int64) % DAYPARTS)
