"""Every feature of the ranking stage pinned by value on a hand log, the expected values computed here from the
events themselves; and that none of them reads the scored window."""

import math
from datetime import datetime

import numpy as np
import pytest
import torch

from seqrec import PAD
from seqrec.config import RankConfig, SplitConfig, load_config
from seqrec.data.split import make_split
from seqrec.ranking.candidates import make_candidates
from seqrec.ranking.evidence import Evidence, LogTables
from seqrec.ranking.features import ENTRIES, FEATURES, LEVELS
from seqrec.ranking.sources import SOURCES, Scores

END = datetime(2025, 8, 31)
V = 6  # items 0 (PAD) .. 5; item 5 has no known length
LOG = [  # (user, item, time, listened fraction)
    (0, 1, "2025-08-21 00:00:00", 1.0),
    (0, 2, "2025-08-21 00:05:00", 0.5),  # follows 1 within 30 minutes: a transition 1 -> 2
    (0, 1, "2025-08-25 00:00:00", 1.0),
    (0, 1, "2025-08-29 00:00:00", 0.1),  # a skip
    (0, 3, "2025-08-29 00:10:00", 0.8),  # a transition 1 -> 3
    (0, 5, "2025-08-30 00:00:00", 1.0),  # a track without a length: in no pair feature, still in the context
    (1, 2, "2025-08-10 00:00:00", 0.75),
    (1, 3, "2025-08-26 00:00:00", 1.0),
    (1, 4, "2025-08-26 00:20:00", 0.3),  # a transition 3 -> 4
    (2, 4, "2025-07-20 00:00:00", 1.0),  # older than a month
]
ARTIST = [-1, 0, 0, 1, 2, 2]  # artist code of each item (-1: PAD)
SONG = [0, 1, 1, 2, 3, 4]  # song group of each item: 1 and 2 are two ids of one song
CANON = [-1, 0, 0, 1, 2, 2]  # primary canonical artist
PARTNER = [-1, -1, -1, 2, -1, -1]  # item 3 is artist 1 featuring artist 2
GENRES = [np.nan, "['Pop', 'Rock']", "['Jazz']", np.nan, "['pop']", np.nan]
TOP_GENRE = ["POP", None, "Jazz"]
LIKES = [np.nan, 10, 0, 3, np.nan, 1]
SEGMENTS = [("30_44", "F"), ("61_inf", None), (None, "M")]
CHILDREN = [2, np.nan, 0]
LOGITS = torch.tensor([[0.0, 0.5, 0.1, 0.3, -0.2, 0.0], [0.0, -0.4, 0.9, 0.2, 0.6, 0.0],
                       [0.0, 0.05, -0.3, 0.7, 0.4, 0.0]])
STATE = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
VECTORS = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, -1.0], [0.5, 0.5], [-1.0, 3.0], [1.0, 0.0]])
CFG = RankConfig(n_model_candidates=V, n_explore_candidates=V,
                 n_history_candidates=10, n_favourites_candidates=10, n_next_candidates=10,
                 n_artist_candidates=10)


# ---- the expected values, from LOG alone ---------------------------------------------------------------------------
def age(ts: str) -> float:
    return (END - datetime.fromisoformat(ts)).total_seconds() / 86400


def plays(u: int, i: int) -> list[tuple[float, float]]:
    return [(age(t), f) for uu, ii, t, f in LOG if (uu, ii) == (u, i)]


def decayed(u: int, i: int, hl: float) -> float:
    return sum(min(max(f, 0.1), 1.0) * 2 ** (-a / hl) for a, f in plays(u, i))


def scaled(u: int, i: int, hl: float) -> float:
    return decayed(u, i, hl) / max(decayed(u, j, hl) for j in (1, 2, 3, 4))


def listeners(i: int, days: float | None) -> int:
    return len({u for u, ii, t, _ in LOG if ii == i and (days is None or age(t) <= days)})


def pair(u: int, i: int) -> dict[str, float]:
    p = plays(u, i)
    if i == 5 or not p:
        return {"in_history": 0, "relisten": 0, "relisten_short": 0, "log_plays": 0,
                "log_days_since": math.log1p(365), "best_listen": 0, "hl7": 0, "hl21": 0, "hl60": 0,
                **{f"plays_{d}d": 0 for d in (3, 7, 15, 30, 60)}, "full_share": 0, "skip_share": 0,
                "log_first_age": 0, "distinct_days": 0, "gap_median": np.nan, "due": np.nan}
    ages = sorted(a for a, _ in p)
    gaps = [b - a for a, b in zip(ages, ages[1:], strict=False)]
    gap = float(np.median(gaps)) if gaps else np.nan
    return {"in_history": 1, "relisten": scaled(u, i, 30), "relisten_short": scaled(u, i, 7),
            "log_plays": math.log1p(len(p)), "log_days_since": math.log1p(ages[0]),
            "best_listen": max(math.floor(min(f, 1) * 4) / 4 for _, f in p),
            **{f"hl{hl}": math.log1p(decayed(u, i, hl)) for hl in (7, 21, 60)},
            **{f"plays_{d}d": sum(a < d for a in ages) for d in (3, 7, 15, 30, 60)},
            "full_share": np.mean([f >= 0.75 for _, f in p]), "skip_share": np.mean([f < 0.25 for _, f in p]),
            "log_first_age": math.log1p(ages[-1]), "distinct_days": len({math.floor(a) for a in ages}),
            "gap_median": gap, "due": ages[0] / max(gap, 1e-3)}


def item(i: int) -> dict[str, float]:
    l7, l14, every = listeners(i, 7), listeners(i, 14), listeners(i, None)
    return {"log_popularity": math.log1p(listeners(i, 30)), "listeners_7d": math.log1p(l7),
            "trend_7d": math.log((l7 + 1) / (l14 - l7 + 1)),
            "stickiness": sum(ii == i for _, ii, _, _ in LOG) / every, "likes": math.log1p(LIKES[i]),
            "downloads": np.nan, "dislikes": np.nan}


def user(u: int) -> dict[str, float]:
    valid = [(i, t) for uu, i, t, _ in LOG if uu == u and i != 5]
    return {"activity_30d": math.log1p(sum(age(t) < 30 for _, t in valid)),
            "repeat_rate": 1 - len({i for i, _ in valid}) / len(valid),
            "age_bin": [1, 3, np.nan][u], "gender": [1, np.nan, 0][u], "children": CHILDREN[u]}


def rownorm(m: np.ndarray) -> np.ndarray:
    top = m.max(1, keepdims=True)
    return m / np.where(top > 0, top, 1)


def tables() -> dict[str, np.ndarray]:
    """(users, V) dense: re-listen scores, recent context, transitions and what the sources score."""
    history = np.array([[decayed(u, i, 30) if 0 < i < 5 else 0 for i in range(V)] for u in range(3)])
    trans = np.zeros((V, V))
    for (u0, i0, t0, _), (u1, i1, t1, f1) in zip(LOG, LOG[1:], strict=False):
        if u0 == u1 and i0 != i1 and i1 != 5 and (age(t0) - age(t1)) * 1440 <= 30:
            trans[i0, i1] += min(max(f1, 0.1), 1.0)
    trans = trans / np.maximum(trans.sum(1, keepdims=True), 1e-9)
    context = np.zeros((3, V))
    for u in range(3):
        mine = [i for uu, i, _, _ in LOG if uu == u]
        for back, i in enumerate(reversed(mine)):
            context[u, i] += 1 / (1 + back)
    shares = np.zeros((3, 3))  # users x artists
    for u, i, _, _ in LOG:
        if i != 5:
            shares[u, ARTIST[i]] += 1
    shares /= shares.sum(1, keepdims=True)
    weight = np.array([0] + [1 + math.log1p(listeners(i, 14)) for i in (1, 2, 3, 4)] + [0])
    by_artist = np.array([[shares[u, ARTIST[i]] * weight[i] if i else 0 for i in range(V)] for u in range(3)])
    return {"next": rownorm(rownorm(history) + 0.1 * rownorm(context @ trans)),
            "favourites_next": rownorm(rownorm(history) @ trans), "next_source": context @ trans,
            "history": history, "artists": by_artist}


def expected(u: int, i: int) -> dict[str, float]:
    t = tables()
    logp = torch.log_softmax(LOGITS.masked_fill(torch.tensor([True, False, False, False, False, True]), -math.inf),
                             -1).numpy()
    vec, state = VECTORS[i].numpy(), STATE[u].numpy()
    played = {j for uu, j, _, _ in LOG if uu == u and j != 5}  # 5 has no valid length: never a pair

    def rank(scores: np.ndarray) -> float:
        order = [j for j in np.lexsort((np.arange(V), -scores)) if scores[j] > 0]
        return float(order.index(i)) if i in order else np.nan

    genre = {"pop": [1, 4], "jazz": [2]}.get((TOP_GENRE[u] or "").casefold())
    return {"model_logp": max(logp[u, i], -30), "model_rank": math.log1p((logp[u] > logp[u, i]).sum()),
            "model_cos": vec @ state / np.linalg.norm(vec) / np.linalg.norm(state), **pair(u, i),
            "next": t["next"][u, i], "favourites_next": t["favourites_next"][u, i], **item(i),
            "artist_share": sum(ARTIST[j] == ARTIST[i] for uu, j, _, _ in LOG if uu == u and j != 5)
            / sum(uu == u and j != 5 for uu, j, _, _ in LOG),
            "genre_match": np.nan if genre is None else float(i in genre), **user(u),
            "song_plays": math.log1p(sum(SONG[j] == SONG[i] for uu, j, _, _ in LOG if uu == u and j != 5)),
            "canon_artist_share": sum(CANON[i] in (CANON[j], PARTNER[j]) for uu, j, _, _ in LOG if uu == u and j != 5)
            / sum(uu == u and j != 5 for uu, j, _, _ in LOG),
            "rank_in_model": float(np.argsort(-logp[u], kind="stable").tolist().index(i)),
            "rank_in_explore": float([j for j in np.argsort(-logp[u], kind="stable") if j not in played].index(i))
            if i not in played else np.nan,
            "rank_in_history": rank(t["history"][u]), "rank_in_favourites": rank(t["favourites_next"][u]),
            "rank_in_next": rank(t["next_source"][u]), "rank_in_artists": rank(t["artists"][u])}


# ---- the features as the ranking stage computes them ---------------------------------------------------------------
@pytest.fixture
def computed(make_dataset):
    ds = make_dataset(LOG, n_items=5, n_users=3, invalid=(5,), segments=SEGMENTS, end="2025-08-31")
    ds.items["artist"] = np.array(ARTIST, np.int32)
    ds.items["song_group"], ds.items["canon_artist"] = np.array(SONG, np.int32), np.array(CANON, np.int32)
    ds.items["canon_partner"] = np.array(PARTNER, np.int32)
    ds.items["track_genres_list"] = GENRES
    ds.items["track_like_count"] = LIKES
    ds.users["top_genre"] = TOP_GENRE
    ds.users["children"] = CHILDREN
    ev = Evidence.build(ds, CFG, LogTables.build(ds, CFG))
    users = np.arange(3)
    scores = Scores(torch.log_softmax(LOGITS.masked_fill(~torch.tensor(ds.items["valid"].to_numpy()), -math.inf), -1),
                    STATE, VECTORS)
    return make_candidates(ev, users, scores, CFG)


def value(c, name: str, u: int, i: int) -> float:
    (j,) = np.flatnonzero((c.items[u] == i) & c.mask[u])
    return float(c.columns((name,))[u, j, 0])


@pytest.mark.parametrize("name", FEATURES)
def test_every_feature_on_a_hand_log(computed, name):
    for u in range(3):
        for i in (1, 2, 3, 4):
            want = expected(u, i)[name]
            assert value(computed, name, u, i) == pytest.approx(want, rel=1e-5, abs=1e-6, nan_ok=True), (u, i)


def test_the_pins_cover_every_feature_and_each_has_a_level_and_a_doc():
    assert set(expected(0, 1)) == set(FEATURES) and len(FEATURES) == len(set(FEATURES)) == 47
    assert all(f.level in LEVELS and f.doc for f in ENTRIES)
    assert [f"rank_in_{s.name}" for s in SOURCES] == [f for f in FEATURES if f.startswith("rank_in_")]


def test_tracks_the_scorer_rules_out_are_no_candidates(computed):
    assert not computed.mask[np.isin(computed.items, [PAD, 5])].any()  # item 5 has no length; PAD is none


def test_no_feature_reads_the_scored_window(make_dataset):
    """Two logs that differ only after the cut: the same features for the same candidates, other labels."""
    before = [(0, 1, "2025-08-01 10:00:00", 1.0), (0, 2, "2025-08-03 10:00:00", 0.5),
              (1, 2, "2025-08-02 10:00:00", 1.0), (1, 3, "2025-08-04 10:00:00", 1.0)]
    window_a = [(0, 1, "2025-08-20 10:00:00", 1.0), (0, 3, "2025-08-21 10:00:00", 1.0),
                (1, 3, "2025-08-20 10:00:00", 1.0), (1, 1, "2025-08-22 10:00:00", 1.0)]
    window_b = [(0, 2, "2025-08-20 10:00:00", 0.3), (1, 2, "2025-08-25 10:00:00", 0.6)]
    split_cfg = SplitConfig(mode="temporal", cut="2025-08-15", window_days=15, min_window_events=1, max_users=None)
    cfg = load_config([]).rank
    out = []
    for window in (window_a, window_b):
        ds = make_dataset(before + window, n_items=3, n_users=2, end="2025-08-31")
        split = make_split(ds, split_cfg, 0)
        ev = Evidence.build(split.history, cfg, LogTables.build(split.history, cfg))
        logp = torch.log_softmax(torch.tensor([[-np.inf, 0.1, 0.2, 0.3]] * 2), -1)
        c = make_candidates(ev, split.users, Scores(logp), cfg)
        out.append((c.items, c.x, split.truth.lookup(split.users, c.items)))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])  # NaN in the same places, the rest equal
    assert not np.array_equal(out[0][2], out[1][2])
