import numpy as np
import pandas as pd
import pytest

from seqrec import PAD
from seqrec.config import RerankConfig, load_config
from seqrec.data.dataset import load_dataset
from seqrec.data.genres import parse_genres
from seqrec.evaluate import main as evaluate
from seqrec.inference.rerank import ItemTraits, genre_bits, item_novelty, rerank
from seqrec.inference.submission import check
from seqrec.predict import predict

PLAIN = RerankConfig(artist_cap=None, mmr_lambda=1.0, genre_similarity=0.0, novelty_weight=0.0)


def traits(artist: list[int], genres: list[str] | None = None, novelty: list[float] | None = None) -> ItemTraits:
    """Traits for items 1..n (row 0 is PAD) from per-item artist codes, genre literals and novelty."""
    n = len(artist)
    return ItemTraits(
        artist=np.array([-1, *artist], dtype=np.int64),
        genres=genre_bits(pd.Series([None, *(genres or [None] * n)], dtype=object)),
        novelty=np.array([0.0, *(novelty or [0.0] * n)], dtype=np.float32),
    )


def cfg(**kw) -> RerankConfig:
    return RerankConfig(**{**vars(PLAIN), **kw})


def test_artist_cap_holds_and_keeps_the_order_otherwise():
    t = traits([0] * 4 + [1] * 4 + [2] * 4)  # items 1-4 by artist 0, 5-8 by 1, 9-12 by 2
    cands = np.arange(1, 13)[None, :]
    assert rerank(cands, t, cfg(artist_cap=2), k=6).tolist() == [[1, 2, 5, 6, 9, 10]]
    assert rerank(cands, t, cfg(artist_cap=1), k=3).tolist() == [[1, 5, 9]]


def test_the_cap_yields_only_when_every_candidate_left_is_capped():
    t = traits([0, 0, 0, 1])
    assert rerank(np.array([[1, 2, 3, 4]]), t, cfg(artist_cap=1), k=3).tolist() == [[1, 4, 2]]


def test_lambda_one_without_cap_or_novelty_is_the_identity():
    rng = np.random.default_rng(0)
    t = traits(rng.integers(0, 3, 40).tolist(), [f"['g{g}']" for g in rng.integers(0, 2, 40)],
               rng.random(40).tolist())
    cands = np.stack([rng.permutation(np.arange(1, 41))[:30] for _ in range(5)])
    out = rerank(cands, t, cfg(artist_cap=10, genre_similarity=0.5), k=10)
    assert out.tolist() == cands[:, :10].tolist()


def test_low_lambda_picks_another_artist_over_a_higher_ranked_same_artist_track():
    t = traits([0, 0, 1])
    cands = np.array([[1, 2, 3]])
    assert rerank(cands, t, cfg(mmr_lambda=0.3), k=2).tolist() == [[1, 3]]
    assert rerank(cands, t, cfg(mmr_lambda=1.0), k=2).tolist() == [[1, 2]]


def test_a_shared_genre_counts_as_partial_similarity():
    # step 2 at lambda 0.5: item 2 gains 0.5 * 2/3 - 0.5 * genre_similarity, item 3 gains 0.5 * 1/3
    t = traits([0, 1, 2], ["['Pop', 'Rock']", "['rock']", "['Jazz']"])
    cands = np.array([[1, 2, 3]])
    assert rerank(cands, t, cfg(mmr_lambda=0.5, genre_similarity=0.8), k=2).tolist() == [[1, 3]]
    assert rerank(cands, t, cfg(mmr_lambda=0.5, genre_similarity=0.1), k=2).tolist() == [[1, 2]]


def test_novelty_boost_promotes_a_rare_track():
    t = traits([0, 1], novelty=[0.0, 1.0])  # rank relevance: 1 and 0.5; item 2 nobody played
    cands = np.array([[1, 2]])
    assert rerank(cands, t, cfg(novelty_weight=0.6), k=2).tolist() == [[2, 1]]
    assert rerank(cands, t, cfg(novelty_weight=0.4), k=2).tolist() == [[1, 2]]


def test_scores_set_the_relevance_when_given():
    # scores 10, 9.9, 0 make item 2 almost as relevant as item 1; by rank it would be 2/3
    t = traits([0, 0, 1])
    cands = np.array([[1, 2, 3]])
    scores = np.array([[10.0, 9.9, 0.0]])
    assert rerank(cands, t, cfg(mmr_lambda=0.7), k=2, scores=scores).tolist() == [[1, 2]]
    assert rerank(cands, t, cfg(mmr_lambda=0.7), k=2).tolist() == [[1, 3]]


def test_rows_are_k_distinct_items_even_with_duplicates_and_padding():
    rng = np.random.default_rng(1)
    t = traits(rng.integers(0, 4, 30).tolist(), novelty=rng.random(30).tolist())
    cands = rng.integers(0, 31, (50, 25))  # repeats and PAD (0) in most rows
    out = rerank(cands, t, RerankConfig(artist_cap=2, batch_users=7), k=8)
    assert out.shape == (50, 8)
    for row, c in zip(out, cands, strict=True):
        real = np.unique(c[c != PAD])
        n = min(8, len(real))
        assert len(set(row[:n].tolist())) == n and set(row[:n].tolist()) <= set(real.tolist())
        assert (row[n:] == PAD).all()


@pytest.mark.parametrize("cands, k, message", [
    (np.array([[1, 2]]), 3, "k <= C"),
    (np.array([1, 2]), 1, "2-D integer"),
    (np.array([[1, 9]]), 1, "0..3"),
])
def test_rerank_refuses_bad_input(cands, k, message):
    with pytest.raises(ValueError, match=message):
        rerank(cands, traits([0, 1, 2]), PLAIN, k)


def test_genres_parse_from_list_literals_and_free_text():
    assert parse_genres("['Поп', 'Dance']") == ["поп", "dance"]
    assert parse_genres("Rock") == ["rock"]
    assert parse_genres("['Pop', 'Ro") == ["pop", "ro"]
    assert parse_genres(None) == [] and parse_genres("[]") == []
    bits = genre_bits(pd.Series(["['Pop', 'Rock']", "['rock']", None, "['Jazz']"], dtype=object))
    shared = (bits[:, None, :] & bits[None, :, :]).any(-1)
    assert shared.tolist() == [
        [True, True, False, False],
        [True, True, False, False],
        [False, False, False, False],
        [False, False, False, True],
    ]


def test_novelty_is_normalised_self_information(make_dataset):
    # 4 users: item 1 played by all, item 2 by one (twice), item 3 never
    events = [(u, 1, f"2025-05-0{u + 1} 10:00:00", 1.0) for u in range(4)]
    events += [(0, 2, "2025-05-01 11:00:00", 1.0), (0, 2, "2025-05-02 11:00:00", 1.0)]
    nov = item_novelty(make_dataset(events, n_items=3, n_users=4))
    np.testing.assert_allclose(nov[1:], [0.0, 2 / np.log2(5), 1.0], rtol=1e-6)


@pytest.fixture(scope="module")
def tiny_rows(tiny_synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    return evaluate([f"data.dir={tiny_synth}", "split.min_window_events=1", "eval.models=[relisten]",
                     "rerank.enabled=true", f"eval.out={out}", f"run.dir={out}"])


def test_evaluate_adds_a_more_diverse_rerank_row(tiny_rows):
    assert list(tiny_rows) == ["relisten", "relisten+rerank"]
    plain, reranked = tiny_rows["relisten"], tiny_rows["relisten+rerank"]
    assert reranked["diversity"] > plain["diversity"]
    assert 0 < reranked["score"] <= plain["score"]


def test_predict_with_rerank_writes_a_valid_more_diverse_submission(tiny_synth, tmp_path):
    args = [f"data.dir={tiny_synth}", "model=relisten", f"run.dir={tmp_path}"]
    plain = predict(load_config([*args, f"submission={tmp_path / 'plain.csv'}"]))
    conf = load_config([*args, "rerank.enabled=true", f"submission={tmp_path / 'sub.csv'}"])
    reranked = predict(conf)
    assert check(pd.read_csv(tmp_path / "sub.csv"), load_dataset(conf.data, conf.clean), 50) == []
    assert reranked["diversity"] > plain["diversity"]


def test_song_cap_keeps_one_version_of_a_song_while_other_songs_remain():
    t = traits([0, 1, 2, 3, 4])
    t = ItemTraits(t.artist, t.genres, t.novelty, song=np.array([-1, 7, 7, 7, 8, 9]))  # items 1-3: one song
    cands = np.array([[1, 2, 3, 4, 5]])
    assert rerank(cands, t, cfg(song_cap=1), k=3).tolist() == [[1, 4, 5]]
    assert rerank(cands, t, cfg(song_cap=2), k=4).tolist() == [[1, 2, 4, 5]]
    assert rerank(cands, t, cfg(song_cap=1), k=5).tolist() == [[1, 4, 5, 2, 3]]  # yields when nothing else is left
    assert rerank(cands, t, cfg(), k=3).tolist() == [[1, 2, 3]]  # no cap by default
