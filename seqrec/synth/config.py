"""Knobs of the synthetic service: one per behaviour of the generative story (seqrec/synth/__init__.py)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

START = np.datetime64("2025-02-28T00:00:00", "us")
"""Day 0 of the simulation; times inside the generator are float days since START."""
TRAIN_END_DAY = 184.0  # the log covers 2025-02-28 .. 08-30
WINDOW_START_DAY = 185.0  # the predicted window: 2025-09-01 ..
SPAN_DAYS = 200.0  # .. 09-15
HOUR_WEIGHTS = np.array([2, 1, 1, 1, 1, 2, 4, 7, 9, 8, 7, 7, 8, 8, 7, 7, 8, 10, 12, 13, 13, 11, 8, 4], float)
"""The service's daily rhythm: sessions by hour of day, peaking in the evening."""


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

    # Catalog
    scenes_per_genre: int = 4
    """Taste neighbourhoods per genre, on a ring: neighbouring scenes share listeners and trends."""
    new_release_share: float = 0.12
    """Albums released during the log and the window (the rest is back catalogue)."""
    release_boost: float = 4.0
    """A new album's launch boost to its popularity, fading over `release_fade_days`."""
    release_fade_days: float = 30.0
    hit_share: float = 0.01
    """Tracks that trend: a popularity wave that starts in the track's scene and spreads to the others."""
    hit_boost: float = 30.0
    """Peak popularity multiplier of a trending track in a scene."""
    hit_width_days: float = 12.0
    """How long a trend lasts in one scene."""
    hit_lag_days: float = 10.0
    """Days for a trend to reach the next scene on the ring (0: everywhere at once)."""
    catchiness_sigma: float = 0.7
    """Log-normal spread of how catchy tracks are: catchy tracks are adopted and replayed more."""

    # Users: activity and habits
    joined_before: float = 0.45
    """Share of users already on the service when the log starts; the others join at a steady rate."""
    sessions_per_day: float = 0.033
    """Median listening sessions per active day."""
    sessions_sigma: float = 1.9
    """Log-normal spread of sessions per day across users."""
    weekday_habit: float = 1.0
    """0: sessions spread evenly over the week; 1: each user keeps a personal weekday profile."""
    hour_habit: float = 1.0
    """0: session hours follow the service's daily rhythm; 1: each user has one or two personal peak hours."""
    home_scenes: float = 2.5
    """Mean number of scenes a user listens in (at least one)."""
    taste_drift: float = 0.5
    """Expected number of a user's scenes that move to a neighbouring scene over the period."""
    follows: float = 4.0
    """Mean number of artists a user follows (drawn from the user's scenes by popularity)."""

    # Discovery: new tracks
    discoveries_per_session: float = 1.5
    """Median new tracks a session starts from (before album runs)."""
    discoveries_sigma: float = 0.7
    """Log-normal spread of exploration across users. Repeaters (exploration e < 1) keep a small rotation: they
    adopt more of the little they find (adoption / sqrt(e)), replay it sooner (period * sqrt(e)), longer
    (replays / e) and tire of it less (satiation * e); explorers discover constantly and do the opposite."""
    p_seeded: float = 0.4
    """A discovery is what autoplay brings after the last track the user heard: one of its related tracks."""
    p_continue: float = 0.1
    """A discovery picks up after the last track the user heard of one of their last runs (the next track of the
    album, or the artist's next album): continuing where the user stopped, sessions later."""
    p_followed: float = 0.14
    """A discovery comes from the catalogue of an artist the user follows."""
    p_chart: float = 0.06
    """A discovery comes from the service-wide chart (global, time-varying popularity)."""
    p_neighbour_scene: float = 0.15
    """A scene discovery comes from a scene next to one of the user's scenes rather than from it."""
    p_release: float = 0.6
    """A follower plays a newly released album of a followed artist, soon after the release."""
    release_delay_days: float = 4.0
    """Mean delay between a release and a follower's first play of it."""

    # Album and artist runs
    p_binge: float = 0.33
    """A discovery continues down its album (followed artists and releases: always)."""
    binge_len: float = 6.5
    """Mean number of further tracks in an album run."""
    binge_session: float = 3.5
    """Mean number of run tracks a session has room for; the rest waits for the next sessions."""
    p_resume: float = 0.8
    """An unfinished run is carried on at the start of the user's next session, where it stopped (again and
    again, each time with this chance)."""
    p_artist_binge: float = 0.35
    """At an album's end, the run continues into the artist's next album."""

    # Liking and adoption
    liking_bias: float = 0.4
    """Logit of liking a track with no affinity; liking sets how much of a new track is listened."""
    liking_affinity: float = 2.5
    """Logit weight of the user's affinity for the track's scene and genre."""
    liking_noise: float = 1.6
    """Per-(user, track) logit noise, fixed for the pair: a disliked track stays disliked."""
    adoption: float = 0.15
    """Chance that a fully listened new track becomes a favourite (scaled by its catchiness)."""

    # Replay rhythm of favourites
    period_sessions: float = 1.5
    """Median replay period of a favourite, in the user's own sessions (1: every session)."""
    period_sigma: float = 0.9
    """Log-normal spread of the period across favourites (some daily, some weekly, some monthly)."""
    rhythm_shape: float = 6.0
    """Gamma shape of the gaps around a favourite's period: high = a steady rhythm, 1 = memoryless."""
    replays: float = 11.0
    """Mean replays of a favourite before the user tires of it (scaled by catchiness)."""
    satiation: float = 0.12
    """Each replay stretches the next gap by this share and raises the chance of a skip: interest fades."""
    p_rediscover: float = 0.25
    """A dropped favourite comes back for a short burst of replays."""
    rediscover_days: float = 60.0
    """Median pause before a rediscovery."""
    p_daypart: float = 0.6
    """A favourite is replayed in the part of the day it was found in (morning, afternoon, evening, night)."""
    p_radio: float = 0.22
    """After a replay, the service plays a related track of it."""
    replay_full: float = 0.96
    """Chance that a replay of a fresh favourite is listened to the end."""

    # One song under many ids (versions.py). No share is published for the real log: these are assumptions, kept
    # modest, which canonicalisation is measured against (benchmarks/entities.py).
    version_share: float = 0.08
    """Songs (popular ones more often) that get versions by their artist: remix, edit, live, remaster, sped up,
    slowed."""
    cover_share: float = 0.02
    """Songs covered by another artist."""
    duplicate_share: float = 0.03
    """Songs uploaded again under a spelling variant of their title or artist, with the same length."""
    version_play_share: float = 0.3
    """Of the (user, song) pairs of a song with other ids, the share whose plays go to those ids."""

    noise: float = 1.0
    """Multiplier on every export-noise rate (0 = clean data)."""

    def __post_init__(self) -> None:
        for name in PROBABILITIES:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"synth {name} must be in [0, 1], got {getattr(self, name)}")
        total = sum(getattr(self, name) for name in SOURCES)
        if total > 1.0:
            raise ValueError(f"synth {' + '.join(SOURCES)} must be <= 1, got {total:.3f}")
        if self.rhythm_shape <= 0 or self.period_sessions <= 0 or self.replays <= 0:
            raise ValueError("synth rhythm_shape, period_sessions and replays must be > 0")
        if self.users < 1 or self.items < 100 or self.scenes_per_genre < 1:
            raise ValueError("synth needs users >= 1, items >= 100 and scenes_per_genre >= 1")


SOURCES = ("p_seeded", "p_continue", "p_followed", "p_chart")
"""Shares of discovery starts by source; the rest come from the charts of the user's scenes."""
PROBABILITIES = (*SOURCES, "p_neighbour_scene", "p_release", "p_binge", "p_resume", "p_artist_binge", "adoption",
                 "p_rediscover", "p_daypart", "p_radio", "replay_full", "weekday_habit", "hour_habit",
                 "new_release_share", "hit_share", "joined_before", "version_share", "cover_share", "duplicate_share",
                 "version_play_share")
BASE = SynthConfig()
PRESETS = {
    "demo": replace(BASE, users=10_000, items=80_000, test_users=1_000),
    # The real log's size (~25M rows): its 279K users listen less than the demo's, whose test users must be many.
    "full": replace(BASE, users=279_000, items=349_000, test_users=1_500, sessions_per_day=0.02),
    "tiny": replace(BASE, users=300, items=2_000, test_users=100),
}
