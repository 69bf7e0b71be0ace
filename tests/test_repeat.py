"""The learned re-listen bias: its per-row values, and both losses with it against loop-by-loop references."""

import math

import pytest
import torch
import torch.nn.functional as F

from seqrec import PAD
from seqrec.config import ModelConfig
from seqrec.models.sasrec import N_FRAC, REPEAT_DIST_EDGES, SASRec, States
from seqrec.training.losses import sampled_ce, weighted_ce

V = 12
ITEM = torch.tensor([[PAD, PAD, 3, 5, 3, 7, 3],
                     [4, 4, 9, 2, 9, 4, 11]])  # (B, T) with repeats and left padding
FRAC = torch.tensor([[0, 0, 6, 2, 4, 6, 5],
                     [6, 3, 6, 6, 2, 6, 6]])


@pytest.fixture
def net():
    torch.manual_seed(0)
    m = SASRec(ModelConfig(d_model=8, n_heads=2, n_blocks=1, max_len=7, dropout=0.0, use_gap=False,
                           use_session=False, use_side=False), V)
    with torch.no_grad():
        m.repeat.weight.normal_()  # zero at init: make the bias visible
    return m.eval()


def bucket(d: int) -> int:
    return sum(d > e for e in REPEAT_DIST_EDGES)


def expected_bias(net, b: int, t: int, item: int) -> float:
    """Sum of the kernel over the row's visible plays of `item`."""
    table = net.repeat.weight.detach().squeeze(-1)
    return sum(float(table[bucket(t - j) * N_FRAC + FRAC[b, j]])
               for j in range(t + 1) if ITEM[b, j] == item and item != PAD)


def test_bias_sums_every_visible_play_and_marks_one_play_per_item(net):
    rep = net.repeat_bias(ITEM, FRAC)
    B, T = ITEM.shape
    for b in range(B):
        for t in range(T):
            r = b * T + t
            visible = {int(i) for i in ITEM[b, : t + 1] if i != PAD}
            latest = rep.items[r][rep.latest[r]].tolist()
            assert sorted(latest) == sorted(visible)  # each visible item exactly once
            for j in range(T):
                if rep.latest[r, j]:
                    assert rep.bias[r, j].item() == pytest.approx(expected_bias(net, b, t, int(ITEM[b, j])),
                                                                 abs=1e-5)
                    assert j <= t and not (ITEM[b, j + 1: t + 1] == ITEM[b, j]).any()  # the latest play


def test_no_bias_when_switched_off():
    m = SASRec(ModelConfig(d_model=8, n_heads=2, n_blocks=1, max_len=7, use_repeat=False, use_side=False), V)
    assert m.repeat_bias(ITEM, FRAC) is None


def inputs(net):
    h = net(ITEM, frac=FRAC).flatten(0, 1).detach().requires_grad_()  # (B*T, D)
    emb = net.item_weights().detach().clone().requires_grad_()  # the reference's own copy of the item table
    target = torch.tensor([0, 0, 5, 3, 7, 3, 1, 4, 9, 2, 9, 4, 11, 4])  # next items; 0 = PAD target
    w = torch.tensor([0, 0, 1, .5, 1, .75, 1, 1, .25, 1, 0, 1, 1, .5])
    return h, emb, target, w


def test_full_loss_with_bias_matches_a_dense_reference_at_any_chunk(net):
    rep = net.repeat_bias(ITEM, FRAC)
    h, emb, target, w = inputs(net)
    logits = h @ emb.T
    bias = torch.zeros_like(logits)
    T = ITEM.shape[1]
    for r in range(len(h)):
        for i in range(1, V + 1):
            bias[r, i] = expected_bias(net, r // T, r % T, i)
    logits = (logits + bias).masked_fill(torch.arange(V + 1) == PAD, float("-inf"))
    ref = (w * F.cross_entropy(logits, target, reduction="none").nan_to_num(0)).sum() / w.sum()
    g_ref = torch.autograd.grad(ref, (h, emb))
    for chunk in (1, 3, 100):
        loss = weighted_ce(net, States(h, rep), target, w, chunk)
        grads = torch.autograd.grad(loss, (h, net.item_emb.weight))
        assert loss.item() == pytest.approx(ref.item(), abs=1e-5)
        for g, gr in zip(grads, g_ref, strict=True):
            torch.testing.assert_close(g, gr, atol=1e-5, rtol=1e-5)


def test_sampled_loss_with_bias_matches_a_row_by_row_reference(net):
    rep = net.repeat_bias(ITEM, FRAC)
    h, emb, target, w = inputs(net)
    T = ITEM.shape[1]
    negatives = torch.tensor([3, 8, 10, 4, 12])
    log_q = torch.log(torch.linspace(1, 2, V + 1) / torch.linspace(1, 2, V + 1).sum())
    loss = sampled_ce(net, States(h.view(2, T, -1), rep), ITEM, target, w, negatives, log_q)
    total, weight = 0.0, 0.0
    for r in range(len(h)):
        if w[r] == 0:
            continue
        b, t = divmod(r, T)
        window = {int(i) for i in ITEM[b, : t + 1] if i != PAD}
        tgt = int(target[r])
        scores = (h[r] @ emb.T).tolist()  # this row's h . e for every item
        s = scores.__getitem__
        corr = (log_q + math.log(len(negatives))).tolist().__getitem__
        pos = s(tgt) + (expected_bias(net, b, t, tgt) if tgt in window else -corr(tgt))
        others = [s(i) + expected_bias(net, b, t, i) for i in window if i != tgt]
        others += [s(int(n)) - corr(int(n)) for n in negatives if int(n) != tgt and int(n) not in window]
        lse = math.log(sum(math.exp(x) for x in [pos, *others]))
        total += float(w[r]) * (lse - pos)
        weight += float(w[r])
    assert loss.item() == pytest.approx(total / weight, abs=1e-5)


def test_last_only_gives_the_last_rows_of_the_full_bias(net):
    full = net.repeat_bias(ITEM, FRAC)
    last = net.repeat_bias(ITEM, FRAC, last_only=True)
    T = ITEM.shape[1]
    rows = torch.arange(T - 1, len(full.items), T)
    for a, b in ((full.items[rows], last.items), (full.bias[rows], last.bias), (full.latest[rows], last.latest)):
        torch.testing.assert_close(a, b)
