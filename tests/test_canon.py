"""Canonical artists and song groups, rule by rule, on a hand-made catalogue with versions, covers, duplicate
uploads, collaborations and names in Cyrillic and Kazakh letters."""

import numpy as np
import pandas as pd
import pytest

from seqrec.config import CleanConfig
from seqrec.data.canon import base_title, canonicalise, cluster, normalise, split_artists

CFG = CleanConfig()
FOLDS = tuple(CFG.spelling_folds)


@pytest.mark.parametrize(("a", "b"), [
    ("Земфира", "Zemfira"),
    ("Қайрат Нұртас", "Kairat Nurtas"),  # Kazakh Қ, ұ: q/k folded
    ("Димаш Құдайберген", "Dimash Qudaibergen"),  # й -> y, folded to i
    ("Ерке Есмахан", "Erke Esmahan"),  # х -> kh, folded to h
    ("Beyoncé", "BEYONCE"),
    ("  The   Weeknd!! ", "the weeknd"),
    ("Alla", "Allla"),
])
def test_names_normalise_alike_across_scripts_case_accents_and_spacing(a, b):
    assert normalise(a, FOLDS) == normalise(b, FOLDS) != ""


def test_normalise_without_folds_keeps_what_the_folds_change():
    assert normalise("Қайрат", ()) == "qayrat" and normalise("Қайрат", FOLDS) == "kairat"
    assert normalise(None, FOLDS) == "" and normalise(float("nan"), FOLDS) == ""


@pytest.mark.parametrize(("field", "artists"), [
    ("A feat. B", ["A", "B"]), ("A ft. B", ["A", "B"]), ("A Feat B", ["A", "B"]), ("A featuring B", ["A", "B"]),
    ("A & B", ["A", "B"]), ("A x B", ["A", "B"]), ("A, B", ["A", "B"]), ("A feat. B & C", ["A", "B", "C"]),
    ("Max", ["Max"]), ("Alex Xander", ["Alex Xander"]), ("Foxy", ["Foxy"]), ("", []), (None, []),
])
def test_collaborations_split_on_their_separators_only(field, artists):
    assert split_artists(field, tuple(CFG.artist_separators)) == artists


@pytest.mark.parametrize(("title", "base"), [
    ("Love (Remix)", "Love"), ("Love [Sped Up]", "Love"), ("Love (Slowed + Reverb)", "Love"),
    ("Love - Live at Wembley", "Love"), ("Love (Remastered 2011)", "Love"), ("Любовь (ремикс)", "Любовь"),
    ("Love (feat. B)", "Love (feat. B)"), ("Live", "Live"), ("Love - Part 2", "Love - Part 2"),
])
def test_version_markers_leave_the_song_title(title, base):
    assert base_title(title, tuple(CFG.version_markers)) == base


def test_clusters_link_near_spellings_of_long_names_only():
    keys = ["zemfira", "zemfiras", "zemfira", "lil a", "lil b", "xemfira"]
    label = cluster(keys, threshold=85, min_length=5)
    assert label[0] == label[1] == label[2]  # one letter apart, and identical keys
    assert label[3] != label[4]  # 'lil a' / 'lil b': one letter, but too short to judge
    assert label[5] != label[0]  # another first letter: never compared


CATALOGUE = pd.DataFrame([
    # artist_name, track_name, track_duration, the song, the artist
    ("Zemfira", "Iskala Tebya", 210, "iskala", "zemfira"),
    ("Земфира", "Искала тебя (Remix)", 250, "iskala", "zemfira"),  # a version, everything in Cyrillic
    ("Zemfira", "Iskala Tebya - Live", 260, "iskala", "zemfira"),
    ("Zemfira", "Iskala Tebja", 211, "iskala", "zemfira"),  # a duplicate upload: a spelling variant, same length
    ("Zemfira", "Iskala Tebe", 300, "tebe", "zemfira"),  # as near a title, another length: another song
    ("Mumiy Troll", "Iskala Tebya", 220, "cover", "mumiy"),  # a cover: the work, not the song group
    ("Zemfira feat. Mumiy Troll", "Duet", 200, "duet", "zemfira"),  # a collaboration
    ("Қайрат Нұртас", "Ауырмайды жүрек", 230, "aurmaidi", "kairat"),
    ("Kairat Nurtas", "Auyrmaidy Zhurek (Sped Up)", 180, "aurmaidi", "kairat"),  # Latin spelling, a version
    (None, "Nameless", 100, "nameless", None),
], columns=["artist_name", "track_name", "track_duration", "song", "who"])


def canon(frame=CATALOGUE, cfg=CFG):
    report = {}
    ent = canonicalise(frame["artist_name"], frame["track_name"], frame["track_duration"].to_numpy(float), cfg,
                       report)
    return ent, report


def same_partition(a, b) -> bool:
    return pd.crosstab(np.asarray(a), np.asarray(b)).astype(bool).sum(axis=1).eq(1).all() and \
        pd.crosstab(np.asarray(b), np.asarray(a)).astype(bool).sum(axis=1).eq(1).all()


def test_songs_and_artists_of_the_hand_catalogue():
    ent, report = canon()
    assert same_partition(ent.song_group, CATALOGUE["song"])
    known = CATALOGUE["who"].notna().to_numpy()
    assert same_partition(ent.artist[known], CATALOGUE["who"][known]) and ent.artist[~known] == -1
    duet = ent.artists[6]
    assert duet[0] == ent.artist[0] and duet[1] == ent.artist[5]  # primary first, the partner's own id second
    assert report == {"artists_raw": 6, "artists_canonical": 3, "song_groups": 6,
                      "tracks_in_shared_song_groups": 6, "largest_song_group": 4}


def test_the_rules_are_settings():
    strict = CleanConfig(duplicate_length_s=0, version_markers=[])
    ent, _ = canon(cfg=strict)
    assert ent.song_group[3] != ent.song_group[0]  # 211 s against 210 s: no longer agreeing in length
    assert ent.song_group[2] != ent.song_group[0]  # "- Live" is no longer a marker


def test_canonicalisation_is_deterministic_and_ignores_row_order():
    first, _ = canon()
    again, _ = canon()
    assert np.array_equal(first.song_group, again.song_group) and np.array_equal(first.artist, again.artist)
    order = np.random.default_rng(0).permutation(len(CATALOGUE))
    shuffled, _ = canon(CATALOGUE.iloc[order].reset_index(drop=True))
    assert same_partition(shuffled.song_group, first.song_group[order])
    assert same_partition(shuffled.artist, first.artist[order])
