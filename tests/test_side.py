"""Side information: each entry's ids on a hand catalog, the network's item vectors, and a run that carries them."""

import numpy as np
import pandas as pd
import pytest
import torch

from seqrec import PAD
from seqrec.config import ModelConfig
from seqrec.errors import UserError
from seqrec.models.sasrec import SASRec
from seqrec.models.side import MAX_GENRES, SIDES, catalog_network, side_shapes, side_tables

pytestmark = pytest.mark.usefixtures("one_thread")

ITEMS = pd.DataFrame({  # row 0 is PAD, as in a Dataset's catalog
    "artist": np.array([-1, 0, 0, 2, -1, 1], np.int32),
    "track_genres_list": [np.nan, "['Pop', 'Rock']", "['rock']", np.nan, "['Jazz','Pop','Rock','Folk','Metal']",
                          "free text"],
    "track_duration": [np.nan, 59.0, 60.0, 181.0, np.nan, 1000.0],
})
COUNTS = np.array([0, 0, 1, 3, 4, 1500])


def test_every_side_table_by_hand():
    t = side_tables(ITEMS, COUNTS)
    assert list(t) == [s.name for s in SIDES] == ["artist", "canonical_artists", "genres", "duration", "popularity"]
    np.testing.assert_array_equal(t["artist"][:, 0], [PAD, 1, 1, 3, PAD, 2])  # unknown artist -> PAD
    # a track's first MAX_GENRES genres (metal is cut), case-folded, numbered in sorted order: folk 1, free text 2,
    # jazz 3, pop 4, rock 5
    assert MAX_GENRES == 4
    np.testing.assert_array_equal(t["genres"], [[0, 0, 0, 0], [4, 5, 0, 0], [5, 0, 0, 0], [0, 0, 0, 0],
                                                [3, 4, 5, 1], [2, 0, 0, 0]])
    # buckets of 60 120 150 180 210 240 300 420 600 s, + 1; unknown length PAD
    np.testing.assert_array_equal(t["duration"][:, 0], [PAD, 1, 1, 5, PAD, 10])
    # floor(log2(plays + 1)) + 1: 0 -> 1, 1 -> 2, 3 -> 3, 4 -> 3, 1500 -> 11
    np.testing.assert_array_equal(t["popularity"][:, 0], [PAD, 1, 2, 3, 3, 11])
    assert side_shapes(t) == {"artist": [4, 1], "canonical_artists": [4, 1], "genres": [6, 4], "duration": [11, 1],
                              "popularity": [12, 1]}
    with pytest.raises(ValueError, match="play counts for 3 items, the catalog has 6 rows"):
        side_tables(ITEMS, COUNTS[:3])


def test_a_tracks_vector_is_its_id_plus_the_mean_of_each_sides_embeddings():
    t = side_tables(ITEMS, COUNTS)
    net = SASRec(ModelConfig(d_model=8, n_heads=2, n_blocks=1, max_len=4, use_side=True), 5, side_shapes(t))
    net.set_side(t)
    s = net.side
    want = (net.item_emb.weight[4] + s["genres"].weight[[3, 4, 5, 1]].mean(0) + s["duration"].weight[0]
            + s["popularity"].weight[3])  # item 4: no artist, no length (PAD rows are zero)
    torch.testing.assert_close(net.item_vectors(torch.tensor([4]))[0], want)
    torch.testing.assert_close(net.item_weights()[4], want)
    assert torch.all(net.item_weights()[PAD] == 0)
    # two tracks of one artist share its vector: with no id signal they score alike through the side alone
    with torch.no_grad():
        net.item_emb.weight.zero_()
        for name in ("genres", "duration", "popularity"):
            s[name].weight.zero_()
    torch.testing.assert_close(net.item_weights()[1], net.item_weights()[2])
    assert not torch.allclose(net.item_weights()[1], net.item_weights()[3])


def test_side_information_is_switched_on_by_the_config_only():
    bare = SASRec(ModelConfig(d_model=8, n_heads=2, n_blocks=1, max_len=4, use_side=False), 5, {"artist": [4, 1]})
    assert len(bare.side) == 0 and not any(n.startswith("side_") for n, _ in bare.named_buffers())
    with pytest.raises(ValueError, match="side tables"):
        SASRec(ModelConfig(d_model=8, n_heads=2, n_blocks=1, max_len=4), 5)  # on by default: tables needed
    net = catalog_network(ModelConfig(d_model=8, n_heads=2, n_blocks=1, max_len=4), ITEMS, COUNTS)
    np.testing.assert_array_equal(net.side_genres.numpy(), side_tables(ITEMS, COUNTS)["genres"])


def test_decoding_keeps_the_summed_vectors_until_the_weights_change():
    t = side_tables(ITEMS, COUNTS)
    net = SASRec(ModelConfig(d_model=8, n_heads=2, n_blocks=1, max_len=4, use_side=True), 5, side_shapes(t)).eval()
    net.set_side(t)
    with torch.no_grad():
        kept = net.item_weights()
        assert net.item_weights() is kept  # eval without gradients: built once
        net.load_state_dict({n: p + 1.0 if n == "item_emb.weight" else p for n, p in net.state_dict().items()})
        torch.testing.assert_close(net.item_weights(), kept + 1.0)  # rebuilt from the loaded weights
    assert net.item_weights().requires_grad  # training needs them fresh, in the graph


def test_canonical_artists_read_a_collaborator_too_and_the_choice_is_a_setting():
    n = len(ITEMS)
    items = ITEMS.assign(canon_artist=[-1, *range(n - 1)], canon_partner=[-1, 1] + [-1] * (n - 2))
    t = side_tables(items, COUNTS, ("canonical_artists", "genres"))
    assert list(t) == ["canonical_artists", "genres"]
    assert t["canonical_artists"][1].tolist() == [1, 2] and t["canonical_artists"][0].tolist() == [PAD, PAD]
    with pytest.raises(UserError, match="model.side: unknown side information"):
        side_tables(items, COUNTS, ("artsit",))
