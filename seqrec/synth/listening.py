"""The listening process of a chunk of users: new tracks (discovery.py), how much of them is heard, which
become favourites, their replays and the radio after them, then every play timed inside its session.

Everything is vectorised over plays; the only loop is the walk of seeded discoveries through related tracks,
which runs once per discovery position (not per play).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqrec.hashing import GOLDEN, mix64, unit
from seqrec.synth.catalog import RELATED_P, Catalog, Charts
from seqrec.synth.config import SPAN_DAYS, SynthConfig
from seqrec.synth.discovery import discoveries
from seqrec.synth.plays import RADIO, REPLAY, Plays, cumsum_by, rank_by
from seqrec.synth.users import Sessions, Users

SECOND = 1 / 86_400
DISLIKED = 0.5
"""A first listen shorter than this share of the track means the user does not want it again."""
FOLLOWED_LIKING = 1.0
"""Logit of liking added by following the track's artist ..."""
CATCHY_LIKING = 0.5
"""... and per unit of the log of its catchiness."""
LOGISTIC_UNIT = 0.55
"""Scales logistic noise to a unit standard deviation, so `liking_noise` reads as one."""
PARTIAL = 0.35
"""Of the listens that do not reach the end, the share that go past 30 % of the track (the rest are skips)."""
TIRED_SKIPS = 3.0
"""How much satiation lowers the chance of a full replay by the end of a favourite's run."""
SHORT_FULL = 0.1
"""A full listen sometimes ends a second or three early (players and logs round)."""
MAX_PAUSE_S = 15
"""Seconds between two plays of a session, at most."""
SESSION_GAP_DAYS = 30 / 1440
"""A session starts at least 30 minutes after the user's previous one ends."""


def pair_uniform(user: np.ndarray, item: np.ndarray, salt: int) -> np.ndarray:
    """A uniform in [0, 1) fixed for each (user, item): the same pair always gets the same draw (splitmix64)."""
    x = (user.astype(np.uint64) << np.uint64(32)) ^ item.astype(np.uint64) ^ np.uint64(salt & 0xFFFFFFFF)
    return unit(mix64(x + np.uint64(GOLDEN)))


def simulate_listening(cfg: SynthConfig, cat: Catalog, charts: Charts, users: Users, sess: Sessions,
                       user_offset: int, rng: np.random.Generator) -> pd.DataFrame:
    """Plays of one chunk of users: columns user (global index), item, listened_duration (s), day, kind."""
    first = discoveries(cfg, cat, charts, users, sess, rng)
    user = sess.user[first.session]
    first.frac = listened(liking(cfg, cat, users, user, first.item, sess.day[first.session], user_offset), rng)
    fav = adopted(cat, users, first, user, rng)
    replays = favourite_replays(cfg, cat, users, sess, first.take(fav), rng)
    radio = radio_plays(cfg, cat, users, sess, replays, user_offset, rng)
    plays = Plays.concat([first, replays, radio])
    # One play of a track per session, the first: a later play of a track the session already has goes.
    order = np.lexsort((plays.key, plays.item, plays.session))
    dup = np.r_[False, (plays.session[order][1:] == plays.session[order][:-1])
                & (plays.item[order][1:] == plays.item[order][:-1])]
    plays = plays.take(np.sort(order[~dup]))
    plays = _known_again(plays, sess.user[plays.session], rng, cfg)
    return timed(cat, sess, plays, user_offset, rng)


def _known_again(plays: Plays, user: np.ndarray, rng: np.random.Generator, cfg: SynthConfig) -> Plays:
    """A track heard before: if the user skipped or left it early the first time, nobody goes back to it (the
    play goes); if they liked it, it is listened like a replay."""
    order = np.lexsort((plays.key, plays.session, plays.item, user))  # per (user, track), in time order
    u, i = user[order], plays.item[order]
    first = np.r_[True, (u[1:] != u[:-1]) | (i[1:] != i[:-1])] if len(u) else np.zeros(0, bool)
    first_frac = plays.frac[order][first][np.cumsum(first) - 1]
    again = np.zeros(len(u), bool)
    again[order] = ~first
    liked = np.zeros(len(u), bool)
    liked[order] = first_frac >= DISLIKED
    known = again & (plays.kind != REPLAY) & liked
    plays.frac = np.where(known, np.where(rng.random(len(u)) < cfg.replay_full, 1.0, plays.frac), plays.frac)
    return plays.take(np.flatnonzero(~(again & ~liked)))


def liking(cfg: SynthConfig, cat: Catalog, users: Users, user: np.ndarray, item: np.ndarray, day: np.ndarray,
           user_offset: int) -> np.ndarray:
    """0..1, fixed for a (user, track) up to the drift of the user's scenes: affinity for the track's scene and
    genre, a followed artist, the track's catchiness, and the pair's own taste."""
    aff = users.affinity(user, cat.scene[item], cat.genre[item], day, cfg.scenes_per_genre)
    follows = (users.follows[user] == cat.artist[item][:, None]).any(1)
    u = np.clip(pair_uniform(user + user_offset, item, cfg.seed), 1e-9, 1 - 1e-9)
    z = (cfg.liking_bias + cfg.liking_affinity * aff + FOLLOWED_LIKING * follows
         + CATCHY_LIKING * np.log(cat.catchiness[item]) + cfg.liking_noise * LOGISTIC_UNIT * np.log(u / (1 - u)))
    return 1 / (1 + np.exp(-z))


def listened(like: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Listened fraction of a play: to the end with probability `like`, else a partial listen or a skip."""
    u = rng.random(len(like))
    partial = rng.uniform(0.3, 0.98, len(like))
    skip = rng.uniform(0.0, 0.3, len(like))
    return np.where(u < like, 1.0, np.where(u < like + PARTIAL * (1 - like), partial, skip))


def adopted(cat: Catalog, users: Users, plays: Plays, user: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rows of the plays that make a track a favourite: the user's first play of it, listened to the end, with the
    user's adoption chance scaled by the track's catchiness."""
    order = np.lexsort((plays.key, plays.session, plays.item, user))
    first = np.r_[True, (user[order][1:] != user[order][:-1]) | (plays.item[order][1:] != plays.item[order][:-1])]
    rows = order[first]
    p = np.minimum(users.adoption[user[rows]] * cat.catchiness[plays.item[rows]], 1.0)
    return np.sort(rows[(plays.frac[rows] >= 1.0) & (rng.random(len(rows)) < p)])


def favourite_replays(cfg: SynthConfig, cat: Catalog, users: Users, sess: Sessions, fav: Plays,
                      rng: np.random.Generator) -> Plays:
    """Replays of favourites on their own rhythm: gamma gaps around a personal period, stretching as the user
    tires of the track (and skips it more), then a chance of a rediscovery burst after a long pause. A replay
    goes to the first session after it is due, preferably in the part of the day the track was found in."""
    n = len(fav.item)
    user = sess.user[fav.session]
    day0 = sess.day[fav.session]
    n_rep = rng.geometric(1 / (1 + users.replays[user] * cat.catchiness[fav.item]), n) - 1
    period = users.period[user] * rng.lognormal(0, cfg.period_sigma, n)
    burst = np.where(rng.random(n) < cfg.p_rediscover, 1 + rng.poisson(2, n), 0)
    total = n_rep + burst
    src = np.repeat(np.arange(n), total)
    k = np.arange(len(src)) - np.repeat(np.cumsum(total) - total, total)  # 0-based replay index
    regular = k < n_rep[src]
    stretch = (1 + users.satiation[user[src]]) ** np.where(regular, k, 0)
    gap = rng.gamma(cfg.rhythm_shape, 1 / cfg.rhythm_shape, len(src)) * period[src] * stretch
    pause = rng.lognormal(np.log(cfg.rediscover_days), 0.5, n)
    gap = np.where(~regular & (k == n_rep[src]), pause[src], gap)
    # Clipped so the running sum keeps its precision: a gap past the period's end ends the rhythm anyway.
    day = day0[src] + cumsum_by(np.minimum(gap, SPAN_DAYS), src)
    stage = np.where(regular, (k + 1) / np.maximum(n_rep[src], 1), 0.5)  # how tired of the track the user is
    u = user[src]
    ok = day < np.minimum(users.life_hi[u], SPAN_DAYS)
    src, day, stage, u = src[ok], day[ok], stage[ok], u[ok]
    target = sess.next_of(u, day)
    in_part = sess.next_in_daypart(u, day, sess.daypart[fav.session[src]])
    prefer = (in_part >= 0) & (rng.random(len(src)) < cfg.p_daypart)
    prefer &= sess.day[np.maximum(in_part, 0)] - day < period[src] + 1  # waits a day and a period at most
    session = np.where(prefer, in_part, target)
    ok = session >= 0
    src, session, stage = src[ok], session[ok], stage[ok]
    # A session plays the favourites that are due first, in the order the user found them (a personal playlist,
    # a little shuffled), before its new tracks: keys in [-0.5, 0), after a resumed run (-1) and before starts.
    found = fav.session + (fav.key + 1) / 4  # sessions are in time order; keys lie in [-1, 1)
    rank = rank_by(user, found) / np.maximum(np.bincount(user, minlength=users.n)[user], 1)
    key = -0.5 + 0.4 * rank[src] + rng.uniform(0, 0.1, len(src))
    p_full = np.clip(cfg.replay_full - TIRED_SKIPS * users.satiation[user[src]] * stage**2, 0.0, 1.0)
    frac = np.where(rng.random(len(src)) < p_full, 1.0, listened(np.zeros(len(src)), rng))
    return Plays(session, key, fav.item[src], np.full(len(src), REPLAY), frac)


def radio_plays(cfg: SynthConfig, cat: Catalog, users: Users, sess: Sessions, replays: Plays, user_offset: int,
                rng: np.random.Generator) -> Plays:
    """After a replay the service sometimes plays a related track of it, right after it."""
    rows = np.flatnonzero(rng.random(len(replays.item)) < cfg.p_radio)
    item = cat.related[replays.item[rows], rng.choice(len(RELATED_P), size=len(rows), p=RELATED_P)]
    session = replays.session[rows]
    day = sess.day[session]
    ok = cat.release[item] <= day
    rows, item, session, day = rows[ok], item[ok], session[ok], day[ok]
    like = liking(cfg, cat, users, sess.user[session], item, day, user_offset)
    return Plays(session, replays.key[rows] + 1e-7, item, np.full(len(rows), RADIO), listened(like, rng))


def timed(cat: Catalog, sess: Sessions, plays: Plays, user_offset: int, rng: np.random.Generator) -> pd.DataFrame:
    """Plays back to back inside their session; a session that would overlap the user's next one pushes it later."""
    order = np.lexsort((plays.key, plays.session))
    p = plays.take(order)
    dur = cat.duration[p.item]
    secs = np.floor(p.frac * dur).astype(np.int64)
    short = (p.frac >= 1.0) & (rng.random(len(secs)) < SHORT_FULL)
    secs[short] -= rng.integers(1, 4, int(short.sum()))
    step = secs + rng.integers(1, MAX_PAUSE_S, len(secs))  # the next play starts when this one ends
    offset = cumsum_by(step.astype(np.float64), p.session) - step  # seconds from the session's start
    length = np.zeros(len(sess.user))
    np.add.at(length, p.session, step * SECOND)
    # start_i = max(own start, previous start + previous length + 30 min), per user, in one pass.
    pad = length + SESSION_GAP_DAYS
    before = cumsum_by(pad, sess.user) - pad
    lift = np.maximum.accumulate(sess.day - before + sess.user * 1e4) - sess.user * 1e4
    start = before + lift
    day = start[p.session] + offset * SECOND + rng.random(len(secs)) * SECOND
    keep = day < SPAN_DAYS
    return pd.DataFrame({"user": (sess.user[p.session] + user_offset)[keep], "item": p.item[keep],
                         "listened_duration": secs[keep], "day": day[keep], "kind": p.kind[keep]})
