"""The synthetic catalogue: artists, albums, scenes, releases, related tracks, and time-varying charts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqrec.synth.config import SPAN_DAYS, SynthConfig
from seqrec.synth.export import GENRES

N_SLICES = 40
"""Charts are rebuilt every SPAN_DAYS / N_SLICES (5) days: trends move at that pace."""
RELATED_P = np.array([0.25, 0.15, 0.2, 0.15, 0.1, 0.15])
"""How often each column of `Catalog.related` is followed: the next two tracks on the scene's ring (like a
playlist), a popular track of the scene, a track of the same artist, a popular track of a neighbouring
scene, another popular track of the scene."""
BACK_CATALOGUE = -1e9
"""Release day of tracks that were out before the log starts."""


@dataclass
class Catalog:
    """Tracks 0..n-1, laid out artist by artist and album by album (consecutive indices)."""

    artist: np.ndarray
    album: np.ndarray
    """Album index of each track; albums are numbered in layout order."""
    album_start: np.ndarray
    """First track of each track's album."""
    album_end: np.ndarray
    """One past the last track of each track's album."""
    album_stop: np.ndarray
    """Per album: one past its last track."""
    album_release: np.ndarray
    """Per album: its release day."""
    genre: np.ndarray
    scene: np.ndarray
    """Taste neighbourhood: genre * scenes_per_genre + position on the genre's ring."""
    duration: np.ndarray
    """Whole seconds."""
    release: np.ndarray
    """Day the track comes out (BACK_CATALOGUE for older tracks)."""
    pop: np.ndarray
    """Base popularity weight."""
    catchiness: np.ndarray
    """How readily a track is adopted and replayed; mean 1."""
    related: np.ndarray
    """(n, 6) related tracks, see RELATED_P."""
    hit_peak: np.ndarray
    """Day a trending track peaks in its own scene; NaN for tracks that never trend."""
    artist_lo: np.ndarray
    """First track of each artist."""
    artist_hi: np.ndarray
    """One past the last track of each artist."""
    artist_scene: np.ndarray
    artist_pop: np.ndarray
    n_scenes: int
    scenes_per_genre: int

    @property
    def n(self) -> int:
        return len(self.artist)


def scene_hops(a: np.ndarray, b: np.ndarray, per_genre: int) -> np.ndarray:
    """Steps between two scenes on their genre's ring; scenes of different genres are `per_genre` apart."""
    ga, gb = a // per_genre, b // per_genre
    d = np.abs(a % per_genre - b % per_genre)
    return np.where(ga == gb, np.minimum(d, per_genre - d), per_genre)


def neighbour_scene(scene: np.ndarray, per_genre: int, rng: np.random.Generator) -> np.ndarray:
    """A scene next to each given one on its genre's ring (itself when the genre has one scene)."""
    step = np.where(rng.random(len(scene)) < 0.5, -1, 1) if per_genre > 1 else np.zeros(len(scene), np.int64)
    return scene // per_genre * per_genre + (scene % per_genre + step) % per_genre


def make_catalog(cfg: SynthConfig, rng: np.random.Generator) -> Catalog:
    """Albums (a quarter of them singles) grouped by artist; artists with heavy-tailed popularity in scenes."""
    n, per_genre = cfg.items, cfg.scenes_per_genre
    lens = np.where(rng.random(n) < 0.25, 1, np.minimum(2 + rng.poisson(8, n), 30))
    lens = lens[: np.searchsorted(np.cumsum(lens), n) + 1]
    lens[-1] -= lens.sum() - n
    n_albums = len(lens)
    per_artist = 1 + rng.poisson(2, n_albums)
    per_artist = per_artist[: np.searchsorted(np.cumsum(per_artist), n_albums) + 1]
    per_artist[-1] -= per_artist.sum() - n_albums
    n_artists = len(per_artist)
    album_artist = np.repeat(np.arange(n_artists), per_artist)
    genre_pop = 1.0 / np.arange(1, len(GENRES) + 1) ** 0.8
    artist_genre = rng.choice(len(GENRES), size=n_artists, p=genre_pop / genre_pop.sum())
    scene_pop = 1.0 / np.arange(1, per_genre + 1) ** 0.5
    artist_scene = artist_genre * per_genre + rng.choice(per_genre, size=n_artists, p=scene_pop / scene_pop.sum())
    artist_pop = rng.pareto(1.2, n_artists) + 0.05

    album = np.repeat(np.arange(n_albums), lens)
    album_start = np.repeat(np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
    artist = album_artist[album]
    pos = np.arange(n) - album_start
    pop = artist_pop[artist] * rng.lognormal(0, 1.0, n_albums)[album] * rng.lognormal(0, 0.7, n)
    pop *= 1.0 / (1 + 0.15 * pos)  # opening tracks of an album are played more
    new_album = rng.random(n_albums) < cfg.new_release_share
    release = np.where(new_album, rng.random(n_albums) * SPAN_DAYS, BACK_CATALOGUE)[album]
    catchiness = rng.lognormal(0, cfg.catchiness_sigma, n)
    catchiness /= catchiness.mean()
    duration = np.clip(rng.lognormal(np.log(200), 0.3, n), 45, 900).round().astype(np.int64)
    scene = artist_scene[artist]
    artist_lo = np.searchsorted(artist, np.arange(n_artists))
    artist_hi = np.r_[artist_lo[1:], n]

    # Trending tracks: mostly new releases, peaking two weeks or so after the release; a few revivals.
    n_hits = int(round(cfg.hit_share * n))
    is_new = release > BACK_CATALOGUE
    w = pop * np.where(is_new, 4.0, 1.0)
    hits = rng.choice(n, size=min(n_hits, n), replace=False, p=w / w.sum())
    hit_peak = np.full(n, np.nan)
    hit_peak[hits] = np.where(is_new[hits], release[hits] + rng.uniform(5, 20, len(hits)),
                              rng.random(len(hits)) * SPAN_DAYS)

    related = np.empty((n, len(RELATED_P)), dtype=np.int64)
    for s in range(cfg.scenes_per_genre * len(GENRES)):  # per scene, not per track
        members = np.flatnonzero(scene == s)
        if not len(members):
            continue
        ring = rng.permutation(members)
        related[ring, 0] = np.roll(ring, -1)
        related[ring, 1] = np.roll(ring, -2)
        cum = np.cumsum(pop[members])
        for col in (2, 5):
            related[members, col] = members[np.minimum(np.searchsorted(cum, rng.random(len(members)) * cum[-1]),
                                                       len(members) - 1)]
    lo, hi = artist_lo[artist], artist_hi[artist]
    related[:, 3] = lo + (rng.random(n) * (hi - lo)).astype(np.int64)
    related[:, 4] = weighted_member(scene, pop, neighbour_scene(scene, per_genre, rng), per_genre * len(GENRES),
                                    rng, related[:, 2])
    album_stop = np.cumsum(lens)
    return Catalog(artist, album, album_start, album_stop[album], album_stop, release[album_stop - 1],
                   artist_genre[artist], scene, duration, release, pop, catchiness,
                   related, hit_peak, artist_lo, artist_hi, artist_scene, artist_pop,
                   per_genre * len(GENRES), per_genre)


def weighted_member(group: np.ndarray, weight: np.ndarray, want: np.ndarray, n_groups: int,
                    rng: np.random.Generator, fallback: np.ndarray) -> np.ndarray:
    """For each wanted group, one of its members (indices into `group`) drawn by weight; the fallback where the
    group is empty."""
    out = fallback.copy()
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(n_groups + 1))
    for g in np.unique(want):
        members = order[bounds[g]:bounds[g + 1]]
        rows = np.flatnonzero(want == g)
        if len(members):
            cum = np.cumsum(weight[members])
            out[rows] = members[np.minimum(np.searchsorted(cum, rng.random(len(rows)) * cum[-1]), len(members) - 1)]
    return out


class Charts:
    """Popularity-weighted draws per (time slice, scene) and service-wide, with launches and trends.

    A scene's chart holds its own tracks and the trending tracks of its genre's other scenes: a trend
    reaches a scene `hit_lag_days` later per step on the ring, so it spreads through neighbourhoods.
    """

    def __init__(self, cat: Catalog, cfg: SynthConfig):
        self.edges = np.linspace(0.0, SPAN_DAYS, N_SLICES + 1)
        mids = (self.edges[:-1] + self.edges[1:]) / 2
        hits = np.flatnonzero(np.isfinite(cat.hit_peak))
        self.tables: list[list[tuple[np.ndarray, np.ndarray]]] = []
        self.global_tables: list[tuple[np.ndarray, np.ndarray]] = []
        by_scene = [np.flatnonzero(cat.scene == s) for s in range(cat.n_scenes)]
        for t in mids:
            age = t - cat.release
            launch = np.where(age < 0, 0.0, 1 + cfg.release_boost * np.exp(-np.maximum(age, 0) / cfg.release_fade_days))
            launch = np.where(cat.release == BACK_CATALOGUE, 1.0, launch)  # back catalogue: always out, no launch
            base = cat.pop * launch
            own_trend = self._trend(cat.hit_peak, t, 0, cfg)
            per_scene = []
            for s in range(cat.n_scenes):
                own = by_scene[s]
                guests = hits[(cat.genre[hits] == s // cat.scenes_per_genre) & (cat.scene[hits] != s)]
                hops = scene_hops(cat.scene[guests], np.full(len(guests), s), cat.scenes_per_genre)
                w = np.concatenate([base[own] * (1 + own_trend[own]),
                                    base[guests] * self._trend(cat.hit_peak[guests], t, hops, cfg)])
                idx = np.concatenate([own, guests])
                keep = w > 0
                per_scene.append((idx[keep], np.cumsum(w[keep])))
            self.tables.append(per_scene)
            w = base * (1 + own_trend)
            keep = np.flatnonzero(w > 0)
            self.global_tables.append((keep, np.cumsum(w[keep])))

    @staticmethod
    def _trend(peak: np.ndarray, t: float, hops, cfg: SynthConfig) -> np.ndarray:
        """Trend multiplier of tracks at day t in a scene `hops` steps from theirs (0 for tracks that never trend)."""
        z = (t - np.nan_to_num(peak, nan=-1e9) - cfg.hit_lag_days * np.asarray(hops)) / cfg.hit_width_days
        return np.where(np.isfinite(peak), cfg.hit_boost * np.exp(-0.5 * z**2), 0.0)

    def slice_of(self, day: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(self.edges, day, side="right") - 1, 0, N_SLICES - 1)

    def draw(self, day: np.ndarray, scene: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
        """One track per request: from the scene's chart at that day, or the service-wide chart (scene None)."""
        sl = self.slice_of(day)
        out = np.full(len(day), -1, dtype=np.int64)
        key = sl if scene is None else sl * (len(self.tables[0]) + 1) + scene
        order = np.argsort(key, kind="stable")
        bounds = np.flatnonzero(np.diff(key[order])) + 1
        for grp in np.split(order, bounds):
            if not len(grp):
                continue
            s = sl[grp[0]]
            idx, cum = self.global_tables[s] if scene is None else self.tables[s][scene[grp[0]]]
            if len(idx):
                out[grp] = idx[np.minimum(np.searchsorted(cum, rng.random(len(grp)) * cum[-1]), len(idx) - 1)]
        return out  # -1 where a scene has nothing out yet
