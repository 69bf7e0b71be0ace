"""The rankers: GBDT and by-feature share fit / score / state; features are read by name; the saved state loads."""

import io

import numpy as np
import pytest
import torch

from seqrec import PAD
from seqrec.config import RankConfig
from seqrec.ranking.candidates import Candidates
from seqrec.ranking.features import FEATURES, SOURCE_FEATURES
from seqrec.ranking.rankers import (
    GBDT,
    ByFeature,
    crossfit,
    fit,
    load_ranker,
    make_ranker,
    ranker_features,
    single_source,
    top_k,
)


def _roundtrip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)  # what a checkpoint keeps loads without unpickling code


def _candidates(x: np.ndarray, mask: np.ndarray | None = None) -> Candidates:
    n_users, n_cands = x.shape[:2]
    items = np.tile(np.arange(1, n_cands + 1), (n_users, 1))
    return Candidates(items, np.ones((n_users, n_cands), bool) if mask is None else mask, x, FEATURES)


def test_top_k_pads_users_with_fewer_real_candidates_than_k():
    items = np.array([[3, 5, 5, 1], [2, 4, 6, 8]])
    mask = np.array([[True, True, False, False], [True, True, True, True]])
    x = np.zeros((2, 4, len(FEATURES)), np.float32)
    x[..., FEATURES.index("model_logp")] = [[-1.0, -0.5, 0.0, 0.0], [-4.0, -3.0, -2.0, -1.0]]
    c = Candidates(items, mask, x, FEATURES)
    out, scores = top_k(c, ByFeature("model_logp").score(c), k=3)
    np.testing.assert_array_equal(out, [[5, 3, PAD], [8, 6, 4]])
    assert np.isneginf(scores[0, 2]) and np.isfinite(scores[1]).all()


def test_ties_go_to_the_lower_item_whatever_the_candidates_order():
    items = np.array([[7, 3, 5, 9], [9, 5, 3, 7]])
    x = np.zeros((2, 4, len(FEATURES)), np.float32)
    x[1, 0, FEATURES.index("model_logp")] = 1.0  # user 1's item 9 scores highest; the rest tie
    c = Candidates(items, np.ones((2, 4), bool), x, FEATURES)
    out = top_k(c, ByFeature("model_logp").score(c), k=3)[0]
    np.testing.assert_array_equal(out, [[3, 5, 7], [9, 3, 5]])


@pytest.mark.parametrize("objective", ["xentropy", "lambdarank"])
def test_gbdt_learns_the_gain_through_missing_values_and_survives_its_checkpoint_state(objective):
    rng = np.random.default_rng(2)
    n_users, n_cands = 200, 20
    x = rng.normal(size=(n_users, n_cands, len(FEATURES))).astype(np.float32)
    due = FEATURES.index("due")
    x[..., due] = np.where(rng.random((n_users, n_cands)) < 0.3, np.nan, x[..., due])  # never replayed: unknown
    gain = np.where(np.isnan(x[..., due]), 0.0, (x[..., due] > 0.5) * 1.0).astype(np.float32)
    c = _candidates(x)
    cfg = RankConfig(objective=objective, trees=40, min_data_in_leaf=20, threads=1)
    ranker, lists = fit(c, gain, cfg), crossfit(c, gain, cfg, k=3)
    assert isinstance(ranker, GBDT) and ranker.features == ranker_features(cfg)
    hit = np.take_along_axis(gain, lists - 1, 1).sum()
    best = np.sort(gain, 1)[:, ::-1][:, :3].sum()
    by_model = np.take_along_axis(gain, top_k(c, ByFeature("model_logp").score(c), 3)[0] - 1, 1).sum()
    assert hit >= 0.97 * best and by_model < 0.5 * best  # cross-fitted lists find the due tracks; noise does not
    again = load_ranker(_roundtrip(ranker.state()))
    np.testing.assert_array_equal(again.score(c), ranker.score(c))
    assert max(ranker.importance(), key=ranker.importance().get) == "due"


def test_rankers_read_features_by_name_not_by_position():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 12, len(FEATURES))).astype(np.float32)
    c = _candidates(x)
    gain = (x[..., FEATURES.index("next")] > 0.5).astype(np.float32)
    for ranker in (fit(c, gain, RankConfig(trees=10, min_data_in_leaf=5)), ByFeature("next")):
        shuffled = Candidates(c.items, c.mask, x[..., ::-1].copy(), FEATURES[::-1])  # the same columns, reversed
        np.testing.assert_array_equal(ranker.score(shuffled), ranker.score(c))
        with pytest.raises(ValueError, match="lack feature"):
            ranker.score(Candidates(c.items, c.mask, x[..., :2], FEATURES[:2]))


def test_by_feature_learns_nothing_and_an_unfitted_gbdt_ranks_by_its_fallback():
    x = np.random.default_rng(3).normal(size=(4, 6, len(FEATURES))).astype(np.float32)
    c = _candidates(x)
    by = ByFeature("relisten")
    assert by.fit(c, np.zeros((4, 6), np.float32)) is by
    np.testing.assert_array_equal(by.score(c), x[..., FEATURES.index("relisten")])
    assert load_ranker(_roundtrip(by.state())).feature == "relisten"
    nothing = make_ranker(RankConfig(by="relisten")).fit(c, np.zeros((4, 6), np.float32))  # no user gains
    assert isinstance(nothing, GBDT) and nothing.model is None
    np.testing.assert_array_equal(nothing.score(c), by.score(c))
    assert isinstance(make_ranker(RankConfig(model="by_feature", by="due")), ByFeature)


def test_the_ranker_reads_the_source_ranks_only_when_asked_and_drops_features_by_name():
    assert not set(SOURCE_FEATURES) & set(ranker_features(RankConfig()))
    assert set(SOURCE_FEATURES) <= set(ranker_features(RankConfig(source_features=True)))
    assert len(FEATURES) == len(ranker_features(RankConfig(source_features=True)))
    dropped = ranker_features(RankConfig(drop_features=["model_logp", "model_cos"]))
    assert "model_logp" not in dropped and "model_rank" in dropped
    with pytest.raises(ValueError, match="unknown \\['nope'\\]"):
        ranker_features(RankConfig(drop_features=["nope"]))


def test_saved_rankers_of_retired_kinds_or_features_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="retired MLP blend; train the run again"):
        load_ranker({"kind": "blend", "features": ["model_logp"], "hidden": 8, "params": {}})
    with pytest.raises(ValueError, match=r"feature\(s\) \['gone'\] that no longer exist"):
        load_ranker({"kind": "gbdt", "features": ["model_logp", "gone"], "params": {}, "model": None})
    old = {"kind": "gbdt", "features": list(FEATURES[:3]), "params": {"num_iterations": 1}, "model": None}
    assert load_ranker(old).fallback == "model_logp"  # a state saved before the fallback was


def test_rank_seed_decides_the_fit_and_nothing_else_does():
    x = np.random.default_rng(4).normal(size=(80, 10, len(FEATURES))).astype(np.float32)
    c = _candidates(x)
    gain = (x[..., FEATURES.index("relisten")] + x[..., FEATURES.index("next")] > 1).astype(np.float32)
    cfg = RankConfig(trees=10, min_data_in_leaf=5, feature_fraction=0.5)
    assert fit(c, gain, cfg).model == fit(c, gain, cfg).model
    assert fit(c, gain, cfg).model != fit(c, gain, RankConfig(trees=10, min_data_in_leaf=5, feature_fraction=0.5,
                                                              seed=1)).model


def test_the_single_source_ranks_by_relisten_then_by_recent_listeners():
    x = np.zeros((1, 5, len(FEATURES)), np.float32)
    x[0, :, FEATURES.index("relisten")] = [0.2, np.nan, 1.0, np.nan, 0.2]  # items 1..5; 2 and 4 never played
    x[0, :, FEATURES.index("log_popularity")] = [1.0, 3.0, 0.0, 5.0, 2.0]
    mask = np.array([[True, True, True, True, False]])  # item 5 is no real candidate
    single = single_source(RankConfig())
    c = _candidates(x, mask)
    np.testing.assert_array_equal(top_k(c, single.score(c), 5)[0], [[3, 1, 4, 2, PAD]])
    back = load_ranker(_roundtrip(single.state()))
    assert (back.feature, back.then) == ("relisten", "log_popularity")
    np.testing.assert_array_equal(back.score(c), single.score(c))
