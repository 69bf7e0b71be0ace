"""Scores exist once: the full loss, the sampled loss's candidate logits and the decoder's log-probabilities all
agree with SASRec.encode and SASRec.score on the same batch."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqrec import PAD
from seqrec.config import ModelConfig, load_config
from seqrec.data.sequences import build_sequences
from seqrec.inference.decode import make_decoder
from seqrec.models.features import event_features, history_inputs
from seqrec.models.sasrec import SASRec, States
from seqrec.models.side import catalog_network
from seqrec.ranking.evidence import LogTables
from seqrec.ranking.features import MIN_LOGP
from seqrec.training.losses import sampled_logits, weighted_ce

pytestmark = pytest.mark.usefixtures("one_thread")

V = 10
ITEM = torch.tensor([[PAD, 3, 5, 3, 7, 2], [4, 4, 9, 2, 9, 10]])  # (B, T): repeats and left padding
FRAC = torch.tensor([[0, 6, 2, 6, 5, 6], [6, 3, 6, 6, 2, 6]])
TARGET = torch.tensor([3, 5, 3, 7, 2, 8, 4, 9, 2, 9, 10, 1])  # the next item of each position
W = torch.tensor([0, 1, .5, 1, .75, 1, 1, 0, 1, .25, 1, 1])


@pytest.fixture
def net() -> SASRec:
    torch.manual_seed(0)
    m = SASRec(ModelConfig(d_model=8, n_heads=2, n_blocks=1, max_len=6, dropout=0.0, use_gap=False,
                           use_session=False, use_side=False), V)
    with torch.no_grad():
        m.repeat.weight.normal_()  # zero at init: make the re-listen bias count
    return m.eval()


def encoded(net: SASRec) -> States:
    return net.encode({"item": ITEM, "frac": FRAC})  # (B, T, D) with every position's re-listen window


def test_the_forms_of_score_agree_with_the_whole_catalog(net):
    s = encoded(net)
    full = net.score(s.flatten())  # (N, V + 1)
    assert torch.isneginf(full[:, PAD]).all()
    shared = torch.tensor([1, 4, 9])
    torch.testing.assert_close(net.score(s.flatten(), shared), full[:, shared])
    per_row = net.score(s, ITEM)  # (B, T, T): each row's own window
    for b in range(2):
        for t in range(6):
            cols = ITEM[b]
            want = full[b * 6 + t, cols].masked_fill(cols == PAD, float("-inf"))
            torch.testing.assert_close(per_row[b, t], want)
    allowed = torch.ones(V + 1, dtype=torch.bool)
    allowed[[2, 7]] = False
    masked = net.score(s.flatten(), allowed=allowed)
    assert torch.isneginf(masked[:, [2, 7]]).all()
    torch.testing.assert_close(masked[:, [1, 3]], full[:, [1, 3]])
    per_user = allowed.expand(len(full), -1).clone()
    per_user[0, 5] = False  # one row may not have item 5
    by_row = net.score(s.flatten(), allowed=per_user)
    assert torch.isneginf(by_row[0, [2, 5, 7]]).all() and torch.isfinite(by_row[1:, 5]).all()
    torch.testing.assert_close(net.score(s.flatten(), shared[None].expand(len(full), -1), allowed=per_user),
                               by_row[:, shared])


def test_encoding_the_last_event_gives_the_last_position(net):
    s, last = encoded(net), net.encode({"item": ITEM, "frac": FRAC}, last_only=True)
    torch.testing.assert_close(last.h, s.h[:, -1])
    torch.testing.assert_close(net.score(last), net.score(s.flatten())[[5, 11]])


def test_the_full_loss_is_the_cross_entropy_of_scores(net):
    s = encoded(net).flatten()
    full = net.score(s)
    keep = W > 0
    want = (W[keep] * F.cross_entropy(full[keep], TARGET[keep], reduction="none")).sum() / W[keep].sum()
    for chunk in (1, 4, 100):
        torch.testing.assert_close(weighted_ce(net, s, TARGET, W, chunk), want)


@torch.no_grad()
def test_the_sampled_loss_scores_its_candidates_with_score(net):
    s = encoded(net)
    rep = s.repeat
    full = net.score(s.flatten())
    plain = net.score(States(s.flatten().h, None))  # no re-listen bias: how negatives are scored
    negatives = torch.tensor([1, 6, 8, 3])
    log_q = torch.log(torch.linspace(1, 2, V + 1) / torch.linspace(1, 2, V + 1).sum())
    corr = log_q + math.log(len(negatives))
    got = sampled_logits(net, s, ITEM, TARGET, negatives, log_q).detach()  # (N, 1 + T + M)
    T = ITEM.shape[1]
    for r in range(len(TARGET)):
        window = rep.items[r][rep.latest[r]].tolist()
        t = int(TARGET[r])
        assert got[r, 0] == pytest.approx(float(full[r, t] - (0 if t in window else corr[t])), abs=1e-5)
        for j in range(T):  # the window's columns: its distinct items, bias included, the target masked
            item = int(rep.items[r, j])
            if rep.latest[r, j] and item != t:
                assert got[r, 1 + j] == pytest.approx(float(full[r, item]), abs=1e-5)
            else:
                assert torch.isneginf(got[r, 1 + j])
        for m, n in enumerate(negatives.tolist()):
            col = got[r, 1 + T + m]
            if n == t or n in window:
                assert torch.isneginf(col)
            else:
                assert col == pytest.approx(float(plain[r, n] - corr[n]), abs=1e-5)


def test_decoding_reads_the_models_log_probabilities_from_score(make_dataset):
    events = [(u, i, f"2025-03-01 {10 + k:02d}:00:00", f) for u, seq in enumerate([[1, 3, 3, 5], [2, 4, 6, 2, 7]])
              for k, (i, f) in enumerate(zip(seq, [1.0, 0.6, 1.0, 0.3, 1.0], strict=False))]
    ds = make_dataset(events, n_items=V, n_users=2, invalid=(8,))
    cfg = load_config(["model.d_model=8", "model.n_heads=2", "model.n_blocks=1", "model.max_len=6",
                       "rank.n_model_candidates=5", "rank.n_history_candidates=5"])
    torch.manual_seed(0)
    net = catalog_network(cfg.model, ds.items, np.bincount(ds.events["item"], minlength=V + 1)).eval()
    feats = event_features(build_sequences(ds.events, 2, cfg.clean.session_gap_min), cfg.train.weight_mode)
    users = np.array([0, 1])
    c = make_decoder(ds, feats, cfg, LogTables.build(ds, cfg.rank)).candidates(net, users)
    x = history_inputs(feats, users, cfg.model.max_len)
    with torch.no_grad():
        allowed = torch.tensor(ds.items["valid"].to_numpy())
        logp = torch.log_softmax(net.score(net.encode(x, last_only=True), allowed=allowed), -1).numpy()
    got = c.columns(("model_logp",))[..., 0]
    want = np.maximum(np.take_along_axis(logp, c.items, 1), MIN_LOGP)
    np.testing.assert_allclose(got[c.mask], want[c.mask], rtol=1e-5)
    assert not c.mask[c.items == 8].any()  # a track without a length is no candidate
