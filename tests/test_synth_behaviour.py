"""Each behaviour of the synthetic service, on a crafted configuration, against the same with its knob off."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from seqrec.synth import PRESETS, Simulation, simulate
from seqrec.synth.catalog import BACK_CATALOGUE, scene_hops
from seqrec.synth.plays import KINDS, REPLAY, RUN
from seqrec.synth.users import DAYPARTS, FIRST_WEEKDAY

SESSION_GAP = 30 / 1440  # days: plays further apart start a new session


def sim(**knobs) -> Simulation:
    return simulate(replace(PRESETS["tiny"], **knobs))


def replay_gaps(s: Simulation) -> pd.DataFrame:
    """Gaps in days between consecutive replays of each (user, favourite), with the replay's index."""
    r = s.plays[s.plays["kind"] == REPLAY].sort_values(["user", "item", "day"])
    user, item = r["user"].to_numpy(), r["item"].to_numpy()
    same = (user[1:] == user[:-1]) & (item[1:] == item[:-1])
    gaps = pd.DataFrame({"user": r["user"].to_numpy()[1:], "item": r["item"].to_numpy()[1:],
                         "gap": np.diff(r["day"].to_numpy())})[same]
    gaps["k"] = gaps.groupby(["user", "item"]).cumcount()
    return gaps


def sessions(plays: pd.DataFrame) -> pd.DataFrame:
    """Plays in time order per user with a session number (a new one after a 30-minute pause)."""
    p = plays.sort_values(["user", "day"]).reset_index(drop=True)
    new = np.r_[True, (p["user"].to_numpy()[1:] != p["user"].to_numpy()[:-1])
                | (np.diff(p["day"].to_numpy()) > SESSION_GAP)]
    return p.assign(session=np.cumsum(new), first=new)


STEADY = dict(users=600, satiation=0.0, p_rediscover=0.0, p_daypart=0.0, sessions_per_day=2.0, sessions_sigma=0.2,
              period_sessions=12.0, period_sigma=0.2)


def test_replay_rhythm_is_steady_only_with_a_rhythm_shape():
    def cv(shape: float) -> float:
        g = replay_gaps(sim(**STEADY, rhythm_shape=shape))
        stats = g.groupby(["user", "item"])["gap"].agg(["mean", "std", "size"])
        stats = stats[stats["size"] >= 4]
        assert len(stats) > 50
        return float((stats["std"] / stats["mean"]).median())

    assert cv(16.0) < 0.45  # a favourite comes back about every period: it can be due
    assert cv(1.0) > 0.7  # memoryless gaps: when it was last played says nothing


def test_satiation_stretches_the_gaps_and_brings_skips():
    def trend(satiation: float) -> tuple[float, float]:
        s = sim(**{**STEADY, "satiation": satiation})
        g = replay_gaps(s)
        by = g.groupby(["user", "item"])
        k = g["k"] - by["k"].transform("mean")  # within each favourite: long-period ones end sooner
        log_gap = np.log(g["gap"]) - by["gap"].transform(lambda x: np.log(x).mean())
        slope = float((k * log_gap).sum() / (k * k).sum())
        r = s.plays[s.plays["kind"] == REPLAY]
        full = r["listened_duration"] >= s.world.cat.duration[r["item"]] - 3
        late = r.groupby(["user", "item"]).cumcount(ascending=False) < 2  # the last two replays of each
        return slope, float(full[late].mean() - full[~late].mean())

    slope, skips = trend(0.15)
    assert slope > 0.05 and skips < -0.05
    slope, skips = trend(0.0)
    assert abs(slope) < 0.03 and abs(skips) < 0.03


def test_dropped_favourites_come_back_only_with_rediscovery():
    def share(p: float) -> float:
        g = replay_gaps(sim(**{**STEADY, "period_sessions": 4.0, "p_rediscover": p, "rediscover_days": 60.0}))
        return float((g.groupby(["user", "item"])["gap"].max() > 30).mean())

    assert share(1.0) > 0.3
    assert share(0.0) < 0.02


def test_session_hours_follow_personal_peaks_only_with_the_hour_habit():
    def concentration(habit: float) -> float:
        p = sessions(sim(users=500, hour_habit=habit).plays)
        start = p[p["first"]]
        hour = ((start["day"] % 1) * 24).astype(int)
        top = hour.groupby(start["user"]).agg(lambda h: np.bincount(h, minlength=24).max() / len(h))
        return float(top[start.groupby("user").size() >= 10].mean())

    assert concentration(1.0) > concentration(0.0) + 0.1


def test_weekdays_follow_personal_profiles_only_with_the_weekday_habit():
    def spread(habit: float) -> float:
        p = sessions(sim(users=800, weekday_habit=habit).plays)
        start = p[p["first"]]
        weekend = (FIRST_WEEKDAY + np.floor(start["day"]).astype(int)) % 7 >= 5
        share = weekend.groupby(start["user"]).mean()[start.groupby("user").size() >= 15]
        return float(share.std())

    assert spread(1.0) > 1.5 * spread(0.0)


def test_favourites_keep_the_part_of_the_day_they_were_found_in():
    def same_part(p_daypart: float) -> float:
        s = sim(users=600, hour_habit=0.0, p_daypart=p_daypart, sessions_per_day=1.0, sessions_sigma=0.3)
        p = s.plays.sort_values(["user", "item", "day"])
        part = ((p["day"] % 1) * DAYPARTS).astype(int)
        found = part.groupby([p["user"], p["item"]]).transform("first")
        replay = p["kind"] == REPLAY
        return float((part[replay] == found[replay]).mean())

    assert same_part(1.0) > same_part(0.0) + 0.2


def test_album_runs_continue_where_the_user_stopped_sessions_later():
    def resumed(p_resume: float) -> float:
        s = sim(users=500, p_binge=1.0, binge_len=8.0, binge_session=1.5, p_resume=p_resume, p_continue=0.0)
        p = sessions(s.plays)
        heard = set(zip(p["session"] + 1, p["item"] + 1, strict=True))  # (next session, track after one heard)
        cat = s.world.cat
        opens = p[p["first"] & (p["user"] == p["user"].shift(1))]
        same_album = cat.album[np.maximum(opens["item"] - 1, 0)] == cat.album[opens["item"]]
        picks_up = [(ses, i) in heard for ses, i in zip(opens["session"], opens["item"], strict=True)]
        return float((np.array(picks_up) & same_album).mean())

    # A session opens with the next track of an album the last one left off (off: by chance, a few per cent).
    assert resumed(1.0) > resumed(0.0) + 0.2


def test_artist_runs_go_on_into_the_next_album_only_with_the_artist_binge():
    def crossing(p: float) -> float:
        s = sim(users=400, p_binge=1.0, binge_len=20.0, binge_session=30.0, p_artist_binge=p)
        plays = s.plays.sort_values(["user", "day"])
        cat = s.world.cat
        item = plays["item"].to_numpy()
        run = plays["kind"].to_numpy()[1:] == RUN
        into_next = (cat.album[item[1:]] == cat.album[item[:-1]] + 1) & (cat.artist[item[1:]] == cat.artist[item[:-1]])
        return float(into_next[run].mean())

    assert crossing(0.9) > 0.05
    assert crossing(0.0) < 0.01  # only where a track skipped before is left out of the run


def test_followers_play_new_albums_of_their_artists_soon_after_release():
    def share(p_release: float) -> float:
        s = sim(users=600, p_release=p_release, new_release_share=0.3, release_boost=0.0, p_followed=0.0,
                sessions_per_day=1.0, sessions_sigma=0.3)
        cat, plays = s.world.cat, s.plays
        first = np.flatnonzero((cat.release > BACK_CATALOGUE) & (np.arange(cat.n) == cat.album_start)
                               & (cat.release < 150))
        users, slots = np.nonzero(s.follows >= 0)
        artist = s.follows[users, slots]
        pairs = pd.DataFrame({"user": users, "artist": artist}).merge(
            pd.DataFrame({"artist": cat.artist[first], "album": cat.album[first], "release": cat.release[first]}))
        active = plays.groupby("user")["day"].agg(["min", "max"])
        pairs = pairs.join(active, on="user")
        pairs = pairs[(pairs["min"] < pairs["release"]) & (pairs["max"] > pairs["release"] + 14)]
        heard = plays.assign(album=cat.album[plays["item"]])[["user", "album", "day"]].merge(pairs)
        soon = heard[(heard["day"] >= heard["release"]) & (heard["day"] < heard["release"] + 7)]
        assert len(pairs) > 30
        return len(soon.drop_duplicates(["user", "album"])) / len(pairs)

    on, off = share(1.0), share(0.0)  # off: only as any other discovery
    assert on > 0.5 and on > off + 0.3


def test_trends_reach_neighbouring_scenes_later():
    def delay(lag: float) -> float:
        s = sim(users=2000, hit_share=0.03, hit_boost=200.0, hit_lag_days=lag, hit_width_days=6.0,
                p_chart=0.0, p_seeded=0.0, p_continue=0.0, p_followed=0.0, p_neighbour_scene=0.0, home_scenes=1.0,
                taste_drift=0.0, new_release_share=0.0)
        cat, plays = s.world.cat, s.plays
        hits = np.isfinite(cat.hit_peak)
        p = plays[hits[plays["item"]] & (plays["kind"] != REPLAY)]
        first = p.drop_duplicates(["user", "item"])
        hops = scene_hops(s.home[first["user"], 0], cat.scene[first["item"]], cat.scenes_per_genre)
        since_peak = first["day"].to_numpy() - cat.hit_peak[first["item"]]
        near, far = since_peak[hops == 0], since_peak[hops == 1]
        assert len(near) > 30 and len(far) > 30
        return float(np.median(far) - np.median(near))

    assert delay(15.0) > 6.0
    assert abs(delay(0.0)) < 4.0


def test_discoveries_follow_from_the_last_track_heard():
    def related_share(p_seeded: float) -> float:
        s = sim(users=500, p_seeded=p_seeded, p_binge=0.0, p_radio=0.0)
        p = sessions(s.plays[s.plays["kind"] != REPLAY])
        item = p["item"].to_numpy()
        same = p["session"].to_numpy()[1:] == p["session"].to_numpy()[:-1]
        follows = (s.world.cat.related[item[:-1]] == item[1:, None]).any(1)
        return float(follows[same].mean())

    on, off = related_share(0.6), related_share(0.0)  # off: same-artist and popular tracks follow by chance
    assert on > off + 0.15


def test_tastes_drift_to_neighbouring_scenes_only_with_taste_drift():
    def moved(drift: float) -> float:
        s = sim(users=600, taste_drift=drift, home_scenes=1.0, p_neighbour_scene=0.0, p_chart=0.0, p_seeded=0.0,
                p_continue=0.0, p_followed=0.0)
        p = s.plays[~s.plays["kind"].isin([REPLAY])]
        scene = s.world.cat.scene[p["item"]]
        early = pd.Series(scene[p["day"] < 60]).groupby(p["user"][p["day"] < 60].to_numpy()).agg(lambda x: x.mode()[0])
        late = pd.Series(scene[p["day"] > 140]).groupby(p["user"][p["day"] > 140].to_numpy()).agg(lambda x: x.mode()[0])
        both = early.index.intersection(late.index)
        return float((early[both] != late[both]).mean())

    assert moved(1.0) > moved(0.0) + 0.2


def test_a_track_skipped_the_first_time_is_never_played_again():
    s = sim(users=400)
    p = s.plays.sort_values(["user", "item", "day"])
    frac = p["listened_duration"] / s.world.cat.duration[p["item"]]
    first = frac.groupby([p["user"], p["item"]]).transform("first")
    again = p.duplicated(["user", "item"])
    assert again.any()
    assert (first[again] >= 0.49).all()


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_play_occurs(kind):
    s = sim(users=600, new_release_share=0.3, p_artist_binge=0.5)
    assert (s.plays["kind"] == KINDS.index(kind)).sum() > 0
