"""One song under many ids in the generator: versions, covers and duplicate uploads with the truth beside
future.csv; with the knobs at 0 (the default) nothing of the data changes."""

import numpy as np
import pandas as pd
import pytest
from rapidfuzz.distance import Levenshtein

from seqrec.synth import PRESETS, generate
from seqrec.synth.versions import COVER, DUPLICATE, MARKERS, VERSION, respell

KNOBS = {"version_share": 0.08, "cover_share": 0.02, "duplicate_share": 0.03}


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    from dataclasses import replace

    plain, versions = tmp_path_factory.mktemp("plain"), tmp_path_factory.mktemp("versions")
    generate(replace(PRESETS["tiny"], **{k: 0.0 for k in KNOBS}), plain)
    generate(replace(PRESETS["tiny"], **KNOBS), versions)
    return plain, versions


def test_the_knobs_at_zero_write_no_truth_and_versions_keep_the_plays(both):
    plain, versions = both
    assert not (plain / "entities.csv").exists()
    a, b = pd.read_csv(plain / "interactions.csv"), pd.read_csv(versions / "interactions.csv")
    assert len(a) == len(b) and (a["user_id"] == b["user_id"]).all()
    assert (a["listened_datetime"] == b["listened_datetime"]).all()  # the same plays, some on another id
    moved = (a["item_id"] != b["item_id"]).mean()
    assert 0.005 < moved < 0.2


def test_the_truth_describes_every_track_and_each_kind_behaves(both):
    _, versions = both
    truth = pd.read_csv(versions / "entities.csv").set_index("item_id")
    items = pd.read_csv(versions / "item_metadata.csv").set_index("item_id")
    assert set(items.index) <= set(truth.index)
    assert {VERSION, COVER, DUPLICATE} <= set(truth["kind"])
    song = truth[truth["kind"] == 0].reset_index().set_index("work")
    for item_id, row in truth[truth["kind"] > 0].iterrows():
        if item_id not in items.index or row["work"] not in song.index:
            continue
        base = song.loc[row["work"], "item_id"]
        if base not in items.index or np.isnan(items.loc[item_id, "track_duration"]):
            continue
        ratio = items.loc[item_id, "track_duration"] / items.loc[base, "track_duration"]
        if row["kind"] == VERSION:
            lo, hi = MARKERS[row["label"]]
            assert lo - 0.02 <= ratio <= hi + 0.02 and row["song"] == row["work"]
            assert row["label"] in items.loc[item_id, "track_name"]
        elif row["kind"] == DUPLICATE:
            assert ratio == 1 and row["song"] == row["work"]
        else:
            assert row["song"] != row["work"]  # a cover: the work, not the song


@pytest.mark.parametrize(("name", "how"), [("Любовь Night", "translit"), ("Love Night", "translit"),
                                            ("Kairat Nurtas", "typo"), ("Moon City", "case")])
def test_spelling_variants(name, how):
    rng = np.random.default_rng(0)
    for _ in range(20):
        out = respell(name, how, rng)
        assert out != name
        if how == "translit":
            assert out.isascii() if not name.isascii() else any("а" <= c.lower() <= "я" for c in out)
        elif how == "typo":
            assert Levenshtein.distance(out, name) <= 4  # one or two slips (a swap counts two)
        else:
            assert out.strip(" !").casefold().split() == name.casefold().split()
