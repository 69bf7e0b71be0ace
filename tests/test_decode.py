import dataclasses

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from seqrec import PAD
from seqrec.config import load_config
from seqrec.data.sequences import build_sequences, user_blocks
from seqrec.inference.decode import make_decoder
from seqrec.models.features import event_features, history_inputs
from seqrec.models.side import catalog_network
from seqrec.ranking.candidates import Candidates
from seqrec.ranking.evidence import LogTables
from seqrec.training.batches import TrainWindows, first_plays, horizon_ends, train_windows

pytestmark = pytest.mark.usefixtures("one_thread")

# ---- training windows and histories on a hand log -------------------------------------------------------------
# item 5 is invalid (unknown length, so frac NaN). Feature ids: frac = quarter bucket + 2 (unknown 1); gap = 1 for a
# user's first event, else 2 + bucket of (<60 s, <300 s, <1800 s, <7200 s, ...); session = position in session + 1.
HAND = [
    (0, 1, "2025-03-01 10:00:00", 1.0),   # e0: frac 6, gap 1 (first), session 1; quarter weight 1
    (0, 2, "2025-03-01 10:00:30", 0.3),   # e1: frac 3, gap 2 (30 s), session 2; weight 0.25
    (0, 3, "2025-03-01 10:02:00", 0.6),   # e2: frac 4, gap 3 (90 s), session 3; weight 0.5
    (0, 4, "2025-03-01 11:00:00", 0.1),   # e3: frac 2, gap 5 (58 min), new session 1; weight 0 (a skip)
    (0, 5, "2025-03-01 11:01:30", 0.9),   # e4: frac 1 (unknown), gap 3, session 2; weight 0 (unknown length)
    (0, 2, "2025-03-01 11:02:00", 0.75),  # e5: frac 5, gap 2, session 3; weight 0.75
    (1, 3, "2025-03-01 09:00:00", 1.0),   # e6: user 1's only event: never a target
    (2, 4, "2025-03-02 08:00:00", 0.5),   # e7: frac 4, gap 1, session 1; weight 0.5
    (2, 1, "2025-03-02 08:10:00", 1.0),   # e8: frac 6, gap 4 (600 s), session 2; weight 1
    (2, 2, "2025-03-03 09:10:00", 0.25),  # e9: frac 3, gap 8 (25 h), new session 1; weight 0.25
]                                         # user 3 has no events


@pytest.fixture
def hand_feats(make_dataset):
    ds = make_dataset(HAND, n_items=6, n_users=4, invalid=(5,))
    seqs = build_sequences(ds.events, ds.n_users, session_gap_min=30.0)
    return event_features(seqs, "quarter")


def test_event_features_exact(hand_feats):
    f = hand_feats
    np.testing.assert_array_equal(f.offsets, [0, 6, 7, 10, 10])
    np.testing.assert_array_equal(f.item, [1, 2, 3, 4, 5, 2, 3, 4, 1, 2])
    np.testing.assert_array_equal(f.inputs["frac"], [6, 3, 4, 2, 1, 5, 6, 4, 6, 3])
    np.testing.assert_array_equal(f.inputs["gap"], [1, 2, 3, 5, 3, 2, 1, 1, 4, 8])
    np.testing.assert_array_equal(f.inputs["session"], [1, 2, 3, 1, 2, 3, 1, 1, 2, 1])
    np.testing.assert_array_equal(f.weight, np.array([1, 0.25, 0.5, 0, 0, 0.75, 1, 0.5, 1, 0.25], np.float32))


def test_train_windows_cover_every_target_once(hand_feats):
    o = hand_feats.offsets
    start, end, stop = train_windows(o[:-1], o[1:], 3)
    # user 0 (6 events): 5 targets -> windows ending at 6 and 3; user 1: none; user 2 (3 events): one; user 3: none
    np.testing.assert_array_equal(start, [0, 0, 7])
    np.testing.assert_array_equal(end, [6, 3, 10])
    np.testing.assert_array_equal(stop, [6, 6, 10])
    start, end, stop = train_windows(o[2:4], o[3:5], 3)  # users 2 and 3
    np.testing.assert_array_equal(start, [7])
    np.testing.assert_array_equal(end, [10])
    start, end, stop = train_windows(o[:-1], o[:-1] + [5, 1, 2, 0], 3)  # the first 5, 1, 2, 0 events in use
    np.testing.assert_array_equal(start, [0, 0, 7])
    np.testing.assert_array_equal(end, [5, 2, 9])
    np.testing.assert_array_equal(stop, [5, 5, 9])


def test_window_targets_of_a_hand_log(make_dataset):
    ds = make_dataset(HAND, n_items=6, n_users=4, invalid=(5,))
    seqs = build_sequences(ds.events, ds.n_users, session_gap_min=30.0)
    ends = horizon_ends(seqs.offsets, seqs.ts, 3600)  # one hour after each event, that event's last follower
    np.testing.assert_array_equal(ends, [4, 4, 6, 6, 6, 6, 7, 9, 9, 10])
    windows = TrainWindows(event_features(seqs, "quarter"), T=5, horizon_end=ends, p_window=1.0)
    assert len(windows) == 2  # user 0's six events, user 2's three
    np.testing.assert_array_equal(windows[[0, 1]]["target"], windows[[0, 1]]["target"])  # seed and ids decide
    # a window's draws do not depend on its batch (DDP ranks split batches); the epoch (id + 2 x epoch) changes them
    np.testing.assert_array_equal(windows[[1]]["target"][0], windows[[0, 1]]["target"][1])
    later = [windows[[2 * e, 2 * e + 1]]["target"] for e in range(1, 20)]
    assert any(not torch.equal(t, windows[[0, 1]]["target"]) for t in later)
    np.testing.assert_array_equal(windows[[2, 3]]["item"], windows[[0, 1]]["item"])  # the same windows
    seen = [[set() for _ in range(5)] for _ in range(2)]
    for seed in range(200):
        windows.seed = seed
        target = windows[[0, 1]]["target"].numpy()
        for w in range(2):
            for t in range(5):
                seen[w][t].add(int(target[w, t]))
    # user 0: after e0 the hour holds e1 e2 e3 (items 2 3 4); after e2, e3 e4 e5 (items 4, 5 and 2 again); ...
    assert seen[0] == [{2, 3, 4}, {3, 4}, {4, 5, 2}, {5, 2}, {2}]
    # user 2: after e7 only e8 lies in the hour; after e8 nothing does, so the next event (e9) stays its target
    assert seen[1] == [{PAD}, {PAD}, {PAD}, {1}, {2}]


def test_train_windows_batch_exact_tensors(hand_feats):
    windows = TrainWindows(hand_feats, T=3)
    assert len(windows) == 3
    b = windows[[0, 1, 2]]
    want = {
        # window 0: inputs e2 e3 e4, targets e3 e4 e5
        # window 1: inputs PAD e0 e1, targets PAD e1 e2 (e0 has no predecessor: never a target)
        # window 2: inputs PAD e7 e8, targets PAD e8 e9
        "item": [[3, 4, 5], [PAD, 1, 2], [PAD, 4, 1]],
        "frac": [[4, 2, 1], [PAD, 6, 3], [PAD, 4, 6]],
        "gap": [[3, 5, 3], [PAD, 1, 2], [PAD, 1, 4]],
        "session": [[3, 1, 2], [PAD, 1, 2], [PAD, 1, 2]],
        "target": [[4, 5, 2], [PAD, 2, 3], [PAD, 1, 2]],
    }
    assert set(b) == {*want, "weight"}
    for name, rows in want.items():
        assert b[name].dtype == torch.int64, name
        torch.testing.assert_close(b[name], torch.tensor(rows), rtol=0, atol=0, msg=name)
    assert b["weight"].dtype == torch.float32
    torch.testing.assert_close(b["weight"], torch.tensor([[0, 0, 0.75], [0, 0.25, 0.5], [0, 1, 0.25]]))
    # a batch is a list of window ids in any order
    torch.testing.assert_close(windows[[2, 0]]["target"], torch.tensor([[PAD, 1, 2], [4, 5, 2]]))


def test_history_inputs_exact_tensors(hand_feats):
    x = history_inputs(hand_feats, np.array([0, 1, 2, 3]), T=4)
    want = {
        "item": [[3, 4, 5, 2], [PAD, PAD, PAD, 3], [PAD, 4, 1, 2], [PAD] * 4],
        "frac": [[4, 2, 1, 5], [PAD, PAD, PAD, 6], [PAD, 4, 6, 3], [PAD] * 4],
        "gap": [[3, 5, 3, 2], [PAD, PAD, PAD, 1], [PAD, 1, 4, 8], [PAD] * 4],
        "session": [[3, 1, 2, 3], [PAD, PAD, PAD, 1], [PAD, 1, 2, 1], [PAD] * 4],
    }
    assert set(x) == set(want)
    for name, rows in want.items():
        torch.testing.assert_close(x[name], torch.tensor(rows), rtol=0, atol=0, msg=name)


# ---- decoding top-k ------------------------------------------------------------------------------------------------
N_ITEMS, INVALID, K = 24, (3, 7), 20


def plays(user: int, item: int, frac: float, n: int, hour: int) -> list[tuple[int, int, str, float]]:
    return [(user, item, f"2025-03-01 {hour:02d}:{m:02d}:00", frac) for m in range(n)]


DECODE_LOG = [
    *plays(0, 5, 1.0, 3, 8),    # user 0 re-listen evidence: 5 (3.0) > 9 (2.0) > 14 (1.0) > 16 (0.8) > 12 (0.3)
    *plays(0, 9, 1.0, 2, 9),
    *plays(0, 14, 1.0, 1, 10),
    *plays(0, 16, 0.05, 2, 11),  # skipped twice but also half-listened once: not blocked
    *plays(0, 16, 0.6, 1, 12),
    *plays(0, 12, 0.05, 3, 13),  # skipped 3 times, never half-listened: blocked when mask_skipped in 1..3
    *plays(0, 3, 1.0, 6, 14),   # played most, but has no known length: never recommended
    *plays(1, 20, 1.0, 2, 8),   # user 1: 20 > 12 (user 0's skips do not block 12 for user 1)
    *plays(1, 12, 1.0, 1, 9),
    *plays(2, 7, 1.0, 4, 8),    # user 2: an invalid track, then one valid play
    *plays(2, 1, 1.0, 1, 9),
]
USERS = np.array([0, 1, 2])


@pytest.fixture
def decode_setup(make_dataset):
    """A seeded untrained model and the pieces make_decoder needs, as train.py and predict.py build them."""
    pl.seed_everything(0)
    ds = make_dataset(DECODE_LOG, n_items=N_ITEMS, n_users=3, invalid=INVALID)
    overrides = ["model.d_model=16", "model.n_blocks=1", "model.max_len=8", "model.dropout=0.0"]
    cfg = load_config(overrides)
    seqs = build_sequences(ds.events, ds.n_users, cfg.clean.session_gap_min)
    feats = event_features(seqs, cfg.train.weight_mode)
    model = catalog_network(cfg.model, ds.items, np.bincount(ds.events["item"], minlength=ds.n_items + 1))
    return ds, feats, model, overrides


class Linear:
    """A hand-set ranker: a weighted sum of named features, as a fitted ranker's `score` gives."""

    def __init__(self, **weights: float):
        self.weights = weights

    def score(self, c: Candidates) -> np.ndarray:
        s = sum(w * c.columns((name,))[..., 0] for name, w in self.weights.items())
        return np.where(c.mask, s, -np.inf)


WEIGHTS = {"model only": Linear(model_logp=1.0), "mixed": Linear(model_logp=1.0, relisten=1.0),
           "relisten": Linear(model_logp=1.0, relisten=1000.0)}


def decode(setup, extra: list[str], w: Linear, users: np.ndarray = USERS) -> np.ndarray:
    ds, feats, model, overrides = setup
    cfg = load_config(overrides + extra)
    return make_decoder(ds, feats, cfg, LogTables.build(ds, cfg.rank)).topk(model, users, w, K)


@pytest.mark.parametrize("mask_skipped", [0, 2])
def test_topk_lists_are_k_distinct_recommendable_items(decode_setup, mask_skipped):
    ds = decode_setup[0]
    valid = ds.items["valid"].to_numpy()
    for name, w in WEIGHTS.items():
        r = decode(decode_setup, [f"decode.mask_skipped={mask_skipped}"], w)
        assert r.shape == (len(USERS), K), name
        assert all(len(set(row)) == K for row in r.tolist()), name
        assert not (r == PAD).any(), name
        assert valid[r].all(), name  # 22 recommendable items for 20 slots: only the mask keeps 3 and 7 out
        if mask_skipped:
            assert 12 not in r[0], name  # user 0 skipped 12 three times
        elif name == "relisten":  # without the mask, 12 is user 0's fifth re-listen candidate
            assert r[0, 4] == 12


def test_large_relisten_weight_puts_own_most_played_tracks_first(decode_setup):
    recs = decode(decode_setup, ["decode.mask_skipped=2"], WEIGHTS["relisten"])
    np.testing.assert_array_equal(recs[0, :4], [5, 9, 14, 16])
    assert 12 not in recs[0]
    np.testing.assert_array_equal(recs[1, :2], [20, 12])
    assert recs[2, 0] == 1
    # the untrained model alone does not reproduce that order
    model_only = decode(decode_setup, ["decode.mask_skipped=2"], WEIGHTS["model only"])
    assert list(model_only[0, :4]) != [5, 9, 14, 16]


def test_topk_does_not_depend_on_the_user_batch(decode_setup):
    for name, w in WEIGHTS.items():
        one_batch = decode(decode_setup, ["decode.mask_skipped=2"], w)
        small = decode(decode_setup, ["decode.mask_skipped=2", "decode.batch_users=2"], w)
        np.testing.assert_array_equal(small, one_batch, err_msg=name)
        alone = decode(decode_setup, ["decode.mask_skipped=2"], w, users=np.array([2]))
        np.testing.assert_array_equal(alone[0], one_batch[2], err_msg=name)


def test_window_batches_shard_disjointly_across_ranks_and_reshuffle_per_epoch():
    from seqrec.training.datamodule import window_batches

    samplers = [window_batches(23, 5, world_size=2, rank=rank, seed=7) for rank in (0, 1)]
    seen = {}
    for epoch in (0, 1):
        shards = []
        for sampler in samplers:
            sampler.set_epoch(epoch)
            assert all(len(b) <= 5 for b in sampler)
            ids = [i for batch in sampler for i in batch]
            assert all(epoch * 23 <= i < (epoch + 1) * 23 for i in ids)  # window id + epoch x windows
            shards.append([i - epoch * 23 for i in ids])
        assert len(shards[0]) == len(shards[1]) == 12  # 23 windows padded to an even 24
        assert set(shards[0]) | set(shards[1]) == set(range(23))  # every window is seen
        assert len(set(shards[0]) & set(shards[1])) <= 1
        seen[epoch] = shards[0]
    assert seen[0] != seen[1]  # set_epoch reshuffles
    single = window_batches(23, 5)
    assert sorted(i for batch in single for i in batch) == list(range(23))


def test_first_plays_mark_each_users_first_play_of_a_track(hand_feats):
    # user 0 plays 2 twice (e1, e5): e5 is a repeat; every other event is its user's first play of its track
    np.testing.assert_array_equal(first_plays(hand_feats.offsets, hand_feats.item),
                                  [1, 1, 1, 1, 1, 0, 1, 1, 1, 1])


@pytest.mark.parametrize("block", [1, 2, 3, 7])
def test_per_event_tables_built_in_blocks_of_users_equal_the_whole_log(block):
    rng = np.random.default_rng(block)
    lens = rng.integers(0, 12, 40)
    offsets = np.concatenate([[0], np.cumsum(lens)])
    item, ts = rng.integers(1, 9, offsets[-1]), np.concatenate([np.sort(rng.integers(0, 500, n)) for n in lens])
    blocks = user_blocks(offsets, block)
    assert blocks[0][0] == 0 and blocks[-1][1] == 40  # every user, in order, once
    assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:], strict=False))
    assert len(blocks) > 1
    whole = 10**9  # one block
    np.testing.assert_array_equal(first_plays(offsets, item, block), first_plays(offsets, item, whole))
    np.testing.assert_array_equal(horizon_ends(offsets, ts, 60, block), horizon_ends(offsets, ts, 60, whole))
    user = np.repeat(np.arange(40), lens)  # by hand: a pair's first event; the user's last event within 60 s
    pairs = list(enumerate(zip(user.tolist(), item.tolist(), strict=True)))
    seen = {(u, i): j for j, (u, i) in reversed(pairs)}
    np.testing.assert_array_equal(np.flatnonzero(first_plays(offsets, item, block)), sorted(seen.values()))
    ends = [max(k for k in range(j, offsets[u + 1]) if ts[k] <= ts[j] + 60) + 1 for j, u in enumerate(user)]
    np.testing.assert_array_equal(horizon_ends(offsets, ts, 60, block), ends)


def test_discover_batches_keep_the_next_event_only_when_it_is_a_first_play(hand_feats):
    b = TrainWindows(hand_feats, T=3, first=True)[[0, 1, 2]]
    # targets [[e3 e4 e5], [PAD e1 e2], [PAD e8 e9]]: e5 replays item 2; e3 and e4 weigh 0 (a skip, an unknown length)
    torch.testing.assert_close(b["discover_target"], torch.tensor([[4, 5, PAD], [PAD, 2, 3], [PAD, 1, 2]]))
    torch.testing.assert_close(b["discover_weight"], torch.tensor([[0, 0, 0], [0, 0.25, 0.5], [0, 1, 0.25]]))
    torch.testing.assert_close(b["target"], torch.tensor([[4, 5, 2], [PAD, 2, 3], [PAD, 1, 2]]))  # `next` unchanged
    assert "discover_target" not in TrainWindows(hand_feats, T=3)[[0]]  # only the discover objectives read it


def test_discover_window_draws_listened_first_plays_of_the_horizon(make_dataset):
    ds = make_dataset(HAND, n_items=6, n_users=4, invalid=(5,))
    seqs = build_sequences(ds.events, ds.n_users, session_gap_min=30.0)
    ends = horizon_ends(seqs.offsets, seqs.ts, 3600)  # [4, 4, 6, 6, 6, 6, 7, 9, 9, 10]
    windows = TrainWindows(event_features(seqs, "quarter"), T=5, horizon_end=ends, p_window=0.0, first=True,
                           first_horizon=True)
    seen = [[set() for _ in range(5)] for _ in range(2)]
    for seed in range(200):
        windows.seed = seed
        b = windows[[0, 1]]
        np.testing.assert_array_equal(b["target"], [[2, 3, 4, 5, 2], [PAD, PAD, PAD, 1, 2]])  # p_window 0: next
        for w in range(2):
            for t in range(5):
                seen[w][t].add((int(b["discover_target"][w, t]), float(b["discover_weight"][w, t])))
    # user 0: after e0 the hour holds e1 e2 e3, e3 a skip: items 2 (weight 0.25) or 3 (0.5); after e1, e2 e3;
    # from e2 on, the hour holds e3 (skip), e4 (unknown length) and e5 (a repeat): no target
    assert seen[0] == [{(2, 0.25), (3, 0.5)}, {(3, 0.5)}, {(PAD, 0)}, {(PAD, 0)}, {(PAD, 0)}]
    # user 2: after e7 only e8 lies in the hour; after e8 nothing does, so the next event (e9) is drawn
    assert seen[1] == [{(PAD, 0)}] * 3 + [{(1, 1.0)}, {(2, 0.25)}]
    unheard = dataclasses.replace(event_features(seqs, "quarter"), weight=np.zeros(10, np.float32))
    none = TrainWindows(unheard, T=5, horizon_end=ends, p_window=0.0, first=True, first_horizon=True)[[0, 1]]
    assert not none["discover_weight"].any() and (none["discover_target"] == PAD).all()  # nothing to draw
    with pytest.raises(ValueError, match="horizon_end is required"):
        TrainWindows(event_features(seqs, "quarter"), T=5, first=True, first_horizon=True)


@pytest.mark.parametrize("sample", [0, 500])
def test_model_rank_counted_exactly_gives_the_sorting_decoders_lists(tiny_run, sample):
    """rank.model_rank_sample=0 counts each candidate's rank exactly: the same features, hence the same lists, as
    the decoder that sorted the whole catalog; an estimate (here from 500 of the tiny catalog's tracks below the
    best 100) keeps the best 100 exact and the rest close."""

    from seqrec.data.dataset import load_dataset
    from seqrec.ranking.rankers import top_k
    from seqrec.run import Run

    run = Run.load(load_config([f"run.dir={tiny_run}"]))
    cfg = dataclasses.replace(run.cfg, rank=dataclasses.replace(run.cfg.rank, model_rank_sample=sample,
                                                                model_rank_top=100))
    ds = load_dataset(cfg.data, cfg.clean)
    seqs = build_sequences(ds.events, ds.n_users, cfg.clean.session_gap_min)
    decoder = make_decoder(ds, event_features(seqs, cfg.train.weight_mode), cfg, LogTables.build(ds, cfg.rank))
    users = ds.test_users[:64]
    c = decoder.candidates(run.net, users, K)
    logp = decoder.scores(run.net, users).logp
    lp = torch.gather(logp, 1, torch.as_tensor(c.items))
    by_sort = torch.sort(logp, dim=1, descending=True).values
    old = torch.log1p(torch.searchsorted(-by_sort, -lp.contiguous()).float()).numpy()
    got = c.columns(("model_rank",))[..., 0]
    at_top = c.mask & (old < np.log1p(99.5))  # fewer than 100 tracks above: among the best 100
    np.testing.assert_array_equal(got[at_top], old[at_top])
    if sample == 0:
        np.testing.assert_array_equal(got[c.mask], old[c.mask])
        sorting = Candidates(c.items, c.mask, c.x.copy(), c.names)
        sorting.x[..., c.names.index("model_rank")] = old
        np.testing.assert_array_equal(top_k(c, run.ranker.score(c), K)[0],
                                      top_k(sorting, run.ranker.score(sorting), K)[0])
    else:
        deep = c.mask & (old > np.log1p(400))
        assert deep.any() and np.median(np.abs(got[deep] - old[deep])) < 0.15
