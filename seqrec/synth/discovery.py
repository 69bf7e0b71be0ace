"""New tracks: where a session's starts come from, the album runs after them, and followers' release plays."""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqrec.synth.catalog import BACK_CATALOGUE, RELATED_P, Catalog, Charts
from seqrec.synth.config import SOURCES, SynthConfig
from seqrec.synth.plays import CHART, CONTINUED, FOLLOWED, RELEASE, RUN, SCENE, SEEDED, Plays, rank_by
from seqrec.synth.users import Sessions, Users

MAX_CROSS = 3
"""An artist run goes through at most this many further albums."""
FRESH_TRIES = 4
"""Draws per start to find a track the user has not drawn before."""
CONTINUE_BACK = 3
"""A continued start picks up one of the user's last this many runs ..."""
CONTINUE_LAST = 0.6
"""... the last one with this chance, the one before with this share of the rest, and so on."""


def discoveries(cfg: SynthConfig, cat: Catalog, charts: Charts, users: Users, sess: Sessions,
                rng: np.random.Generator) -> Plays:
    """New tracks: the starts of a session and the album runs after them, and followers' first plays of new
    albums. A seeded start is what autoplay brings after the last track the user heard before it (the end of
    the previous run, in this session or the last one): a walk through the related-track graph. A continued
    start picks up after the last track the user heard of one of the previous few runs."""
    n_d = rng.poisson(users.discoveries[sess.user])
    s = np.repeat(np.arange(len(sess.user)), n_d)
    r_user, r_item, r_day = release_plays(cfg, cat, users, rng)
    r_sess = sess.next_of(r_user, r_day)
    ok = r_sess >= 0
    session = np.concatenate([s, r_sess[ok]])
    item = np.concatenate([np.full(len(s), -1, np.int64), r_item[ok]])
    source = np.concatenate([_sources(cfg, len(s), rng), np.full(int(ok.sum()), RELEASE)])
    key = rng.random(len(session))
    order = np.lexsort((key, session))  # sessions are sorted by (user, start): this is time order per user
    session, item, source, key = session[order], item[order], source[order], key[order]
    user, day = sess.user[session], sess.day[session]
    n = len(session)
    pos = rank_by(user, np.arange(n))
    source[(pos == 0) & ((source == SEEDED) | (source == CONTINUED))] = SCENE  # nothing heard yet
    source[(source == FOLLOWED) & ~(users.follows[user] >= 0).any(1)] = SCENE

    # Drawn starts: without replacement per user and album, by drawing again where the user already drew from
    # the track's album (a chart does not send the user back into an album they started).
    fallback = _draw(SCENE, np.arange(n), cat, charts, users, user, day, cfg, rng)  # stands in where a walk fails
    drawn = (source == SCENE) | (source == CHART) | (source == FOLLOWED)
    todo = np.flatnonzero(drawn)
    for _ in range(FRESH_TRIES):
        for src in (SCENE, CHART, FOLLOWED):
            rows = todo[source[todo] == src]
            item[rows] = _draw(src, rows, cat, charts, users, user, day, cfg, rng)
        empty = drawn & (item < 0)  # nothing out in that chart or by that artist yet
        item[empty] = fallback[empty]
        known = drawn & (item >= 0)
        todo = np.flatnonzero(_repeated(user, cat.album[np.maximum(item, 0)], known | (source == RELEASE)) & known)
        if not len(todo):
            break

    # Runs: releases play the whole album; other starts run on with p_binge (always for a followed artist or
    # a continued album).
    release = source == RELEASE
    run = release | (source == FOLLOWED) | (source == CONTINUED) | (rng.random(n) < cfg.p_binge)
    wanted = np.where(release, cat.album_end[np.maximum(item, 0)] - item - 1,
                      rng.geometric(1 / max(cfg.binge_len, 1.0), n))
    wanted = np.where(run, wanted, 0)
    cross = np.where(release, 0, np.minimum(rng.geometric(max(1 - cfg.p_artist_binge, 1e-6), n) - 1, MAX_CROSS))
    room = rng.geometric(1 / max(cfg.binge_session, 1.0), n)
    carried = rng.geometric(max(1 - cfg.p_resume, 1e-6), n) - 1  # sessions the run is carried on into
    length = np.zeros(n, np.int64)
    fixed = np.flatnonzero(item >= 0)
    length[fixed] = run_length(cat, item[fixed], day[fixed], wanted[fixed], cross[fixed])

    # Walks, in step over all users: each start of this kind needs the runs before it.
    pick = rng.choice(len(RELATED_P), size=n, p=RELATED_P)
    back = np.minimum(np.minimum(rng.geometric(CONTINUE_LAST, n), CONTINUE_BACK), pos)
    rows = np.flatnonzero((source == SEEDED) | (source == CONTINUED))
    by_pos = rows[np.argsort(pos[rows], kind="stable")]
    for grp in np.split(by_pos, np.flatnonzero(np.diff(pos[by_pos])) + 1):
        if not len(grp):
            continue
        seeded = source[grp] == SEEDED
        prev = np.where(seeded, grp - 1, grp - back[grp])
        # The last track heard of that start's run: in its session for autoplay, all of it when picked up later.
        heard = item[prev] + np.where(seeded, np.minimum(length[prev], room[prev]), length[prev])
        cand = np.where(seeded, cat.related[np.maximum(heard, 0), pick[grp]], np.minimum(heard + 1, cat.n - 1))
        ok = (item[prev] >= 0) & (cat.release[cand] <= day[grp])
        ok &= seeded | ((heard + 1 < cat.n) & (cat.artist[cand] == cat.artist[np.maximum(heard, 0)]))
        item[grp] = np.where(ok, cand, fallback[grp])
        good = grp[item[grp] >= 0]
        length[good] = run_length(cat, item[good], day[good], wanted[good], cross[good])
    keep = item >= 0
    starts = Plays(session[keep], key[keep], item[keep], source[keep], np.zeros(int(keep.sum())))
    return Plays.concat([starts, album_runs(sess, starts, length[keep], room[keep], carried[keep])])


def _sources(cfg: SynthConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    """Where each discovery start comes from, by the configured shares."""
    shares = np.cumsum([getattr(cfg, name) for name in SOURCES])  # SEEDED, CONTINUED, FOLLOWED, CHART
    return np.searchsorted(shares, rng.random(n), side="right")  # past them all: SCENE


def _draw(src: int, rows: np.ndarray, cat: Catalog, charts: Charts, users: Users, user: np.ndarray, day: np.ndarray,
          cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """Tracks for starts drawn from a chart (the user's scene or the service's) or a followed artist's catalogue;
    -1 where nothing is out."""
    u, d = user[rows], day[rows]
    if src == CHART:
        return charts.draw(d, None, rng)
    if src == SCENE:
        return charts.draw(d, users.pick_scene(u, d, cfg, rng), rng)
    n_follow = (users.follows[u] >= 0).sum(1)
    artist = users.follows[u, (rng.random(len(rows)) * n_follow).astype(np.int64)]
    lo, hi = cat.artist_lo[artist], cat.artist_hi[artist]
    track = lo + (rng.random(len(rows)) * (hi - lo)).astype(np.int64)
    return np.where(cat.release[track] <= d, track, -1)


def _repeated(user: np.ndarray, value: np.ndarray, among: np.ndarray) -> np.ndarray:
    """Rows (of `among`) whose value the same user already has in an earlier row of `among`."""
    key = pd.Series(np.where(among, user.astype(np.int64) * (1 << 32) + value, -1 - np.arange(len(value))))
    return key.duplicated().to_numpy() & among


def run_length(cat: Catalog, item: np.ndarray, day: np.ndarray, wanted: np.ndarray, cross: np.ndarray) -> np.ndarray:
    """Tracks a run after `item` can play: down its album, then through up to `cross` further albums of the
    artist that are out on `day`; at most `wanted`."""
    limit = cat.album_end[item] - item - 1
    album = cat.album[item]
    last_album = cat.album[cat.artist_hi[cat.artist[item]] - 1]
    going = np.ones(len(item), bool)
    for c in range(1, int(cross.max(initial=0)) + 1):
        nxt = np.minimum(album + c, last_album)
        going &= (c <= cross) & (album + c <= last_album) & (cat.album_release[nxt] <= day)
        limit = np.where(going, cat.album_stop[nxt] - item - 1, limit)
    return np.minimum(wanted, limit)


def release_plays(cfg: SynthConfig, cat: Catalog, users: Users, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, first track, day) of followers starting a newly released album of an artist they follow."""
    first_tracks = np.flatnonzero((cat.release > BACK_CATALOGUE) & (np.arange(cat.n) == cat.album_start))
    by_artist = first_tracks[np.argsort(cat.artist[first_tracks], kind="stable")]
    album_artist = cat.artist[by_artist]
    fu, fk = np.nonzero(users.follows >= 0)
    fa = users.follows[fu, fk]
    lo = np.searchsorted(album_artist, fa, side="left")
    hi = np.searchsorted(album_artist, fa, side="right")
    n = hi - lo
    user = np.repeat(fu, n)
    album = by_artist[np.repeat(lo, n) + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)]
    day = cat.release[album] + rng.exponential(cfg.release_delay_days, len(album))
    keep = (day >= users.life_lo[user]) & (day < users.life_hi[user]) & (rng.random(len(album)) < cfg.p_release)
    return user[keep], album[keep], day[keep]


def album_runs(sess: Sessions, starts: Plays, length: np.ndarray, room: np.ndarray, sessions: np.ndarray) -> Plays:
    """The tracks after each start on its run, `room` of them per session: the rest waits for the start of the
    user's next sessions, where it stopped, for as many sessions as the run is carried on (`sessions`)."""
    src = np.repeat(np.arange(len(starts.item)), length)
    step = 1 + np.arange(len(src)) - np.repeat(np.cumsum(length) - length, length)
    later = (step - 1) // room[src]  # how many sessions after the start's this track is played
    session = starts.session[src] + later
    inside = session < len(sess.user)
    session = np.minimum(session, len(sess.user) - 1)
    keep = inside & (sess.user[session] == sess.user[starts.session[src]]) & (later <= sessions[src])
    # Carried on: first in the session, run by run in the order they began; otherwise right after the start.
    key = np.where(later > 0, -1.0 + 0.4 * starts.key[src], starts.key[src]) + step * 1e-6
    return Plays(session[keep], key[keep], (starts.item[src] + step)[keep], np.full(int(keep.sum()), RUN),
                 np.zeros(int(keep.sum())))
