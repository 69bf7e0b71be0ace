import math

import numpy as np
import pytest
import torch

from seqrec import PAD
from seqrec.config import ModelConfig
from seqrec.models.features import target_weights
from seqrec.models.sasrec import SASRec, States
from seqrec.training.losses import in_rows, sampled_ce, weighted_ce, window_items

pytestmark = pytest.mark.usefixtures("one_thread")

NAN = np.nan
NO_WINDOW = torch.zeros(1, 8, dtype=torch.int64)  # the window's items: only read with a re-listen bias
FRAC = np.array([NAN, -0.1, 0.0, 0.2, 0.25, 0.49, 0.5, 0.74, 0.75, 0.99, 1.0, 1.7], dtype=np.float32)


@pytest.mark.parametrize(("mode", "expected"), [
    ("quarter", [0, 0, 0, 0, 0.25, 0.25, 0.5, 0.5, 0.75, 0.75, 1, 1]),
    ("raw", [0, 0, 0, 0.2, 0.25, 0.49, 0.5, 0.74, 0.75, 0.99, 1, 1]),
    ("binary", [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]),
    ("none", [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]),  # an unknown-length track is never a target
])
def test_target_weights_per_mode(mode, expected):
    w = target_weights(FRAC, mode)
    assert w.dtype == np.float32 and w.shape == FRAC.shape
    np.testing.assert_allclose(w, np.array(expected, dtype=np.float32), rtol=0, atol=1e-7)


def test_target_weights_rejects_unknown_mode():
    with pytest.raises(ValueError, match="weight_mode"):
        target_weights(FRAC, "squared")


@pytest.fixture
def problem() -> dict[str, torch.Tensor]:
    """Eight positions over a catalog of PAD + 6 items; two positions weigh 0 (one of them a PAD target)."""
    torch.manual_seed(0)
    return {
        "h": torch.randn(8, 5),
        "emb": torch.randn(7, 5),
        "target": torch.tensor([1, 3, 6, 2, PAD, 4, 4, 5]),
        "w": torch.tensor([1.0, 0.25, 0.5, 0.0, 0.0, 0.75, 1.0, 0.25]),
    }


def hand_ce(h, emb, target, w):
    """sum(w * CE) / sum(w) with explicit logits over the real items 1..V-1 (PAD is not a class)."""
    logits = h @ emb.T  # (N, V)
    logp = torch.log_softmax(logits[:, 1:], dim=1)  # (N, V - 1): column j is item j + 1
    keep = w > 0
    ce = -logp[keep, target[keep] - 1]
    return (w[keep] * ce).sum() / w[keep].sum()


def net_with(emb: torch.Tensor) -> SASRec:
    """A real network whose item table (the output embeddings) is `emb`: the losses score through it."""
    net = SASRec(ModelConfig(d_model=emb.shape[1], n_heads=1, use_repeat=False, use_side=False),
                 n_items=emb.shape[0] - 1)
    net.item_emb.weight = torch.nn.Parameter(emb.clone())
    return net


def value_and_grads(fn, p, **kw):
    h = p["h"].clone().requires_grad_()
    if fn is hand_ce:
        emb = p["emb"].clone().requires_grad_()
        loss = hand_ce(h, emb, p["target"], p["w"])
        loss.backward()
        return loss.detach(), h.grad, emb.grad
    net = net_with(p["emb"])
    loss = fn(net, States(h, None), p["target"], p["w"], **kw)
    loss.backward()
    return loss.detach(), h.grad, net.item_emb.weight.grad


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_weighted_ce_matches_hand_computation_for_any_chunk(problem, chunk):
    want, want_dh, want_de = value_and_grads(hand_ce, problem)
    got, dh, de = value_and_grads(weighted_ce, problem, chunk=chunk)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dh, want_dh, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(de, want_de, rtol=1e-5, atol=1e-5)
    assert torch.all(de[PAD] == 0)  # the PAD row is never a class, so it gets no gradient


def test_weighted_ce_first_value_by_hand():
    # Two positions, three items: logits are exactly h . emb; only the first position weighs.
    h = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    emb = torch.tensor([[9.0, 9.0], [1.0, 0.0], [0.0, 0.0], [0.0, 2.0]])  # PAD's logit (9) would dominate
    loss = weighted_ce(net_with(emb), States(h, None), torch.tensor([1, 3]), torch.tensor([2.0, 0.0]))
    want = -(1.0 - math.log(math.e + 1 + 1))  # position 0: logits (1, 0, 0), target item 1
    assert loss.item() == pytest.approx(want, abs=1e-6)


def test_weighted_ce_ignores_weight_zero_targets_and_the_pad_logit(problem):
    base, base_dh, base_de = value_and_grads(weighted_ce, problem, chunk=3)
    other = dict(problem, target=problem["target"].clone())
    other["target"][3] = 6  # weight 0: whatever item it is, it is no target
    other["emb"] = problem["emb"].clone()
    other["emb"][PAD] = 50.0  # a huge PAD logit would swamp every softmax if PAD were a class
    got, dh, de = value_and_grads(weighted_ce, other, chunk=3)
    torch.testing.assert_close(got, base, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(dh, base_dh, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(de, base_de, rtol=1e-6, atol=1e-6)
    # ... while a target that does weigh changes the loss.
    moved = dict(problem, target=problem["target"].clone())
    moved["target"][0] = 2
    moved_loss = weighted_ce(net_with(moved["emb"]), States(moved["h"], None), moved["target"], moved["w"])
    assert not torch.isclose(moved_loss, base)


def test_weighted_ce_all_zero_weights_is_zero_and_still_backprops(problem):
    h = problem["h"].clone().requires_grad_()
    loss = weighted_ce(net_with(problem["emb"]), States(h, None), problem["target"], torch.zeros(8))
    assert loss.item() == 0.0
    loss.backward()  # a batch whose targets all weigh 0 must not crash the training step
    assert torch.all(h.grad == 0)


def hand_sampled(h, emb, target, w, negatives, log_q):
    """Row by row: the target and each negative that is not the target, all corrected by log(M q)."""
    m = len(negatives)
    total, wsum = 0.0, 0.0
    for i in range(len(h)):
        if w[i] <= 0:
            continue
        t = int(target[i])
        pos = float(h[i] @ emb[t]) - float(log_q[t]) - math.log(m)
        terms = [pos] + [float(h[i] @ emb[n]) - float(log_q[n]) - math.log(m) for n in negatives.tolist() if n != t]
        top = max(terms)
        lse = top + math.log(sum(math.exp(x - top) for x in terms))
        total += float(w[i]) * (lse - pos)
        wsum += float(w[i])
    return total / wsum


def test_sampled_ce_matches_hand_computation_and_masks_accidental_hits(problem):
    q = torch.tensor([0.0, 0.1, 0.3, 0.2, 0.15, 0.05, 0.2])
    log_q = q.log()
    negatives = torch.tensor([2, 4, 4, 6, 1])  # row targets 4 and 6 and 1 hit negatives (4 twice)
    h = problem["h"].clone().requires_grad_()
    loss = sampled_ce(net_with(problem["emb"]), States(h[None], None), NO_WINDOW, problem["target"], problem["w"],
                      negatives, log_q)
    want = hand_sampled(problem["h"], problem["emb"], problem["target"], problem["w"], negatives, log_q)
    assert loss.item() == pytest.approx(want, rel=1e-5)
    loss.backward()
    assert torch.all(h.grad[problem["w"] == 0] == 0)  # weight-0 rows take no part
    assert torch.isfinite(h.grad).all()

    # Without the accidental-hit mask the target would also count as its own negative: a different value.
    unmasked = [
        torch.logsumexp(torch.cat([
            (problem["h"][i] @ problem["emb"][t] - log_q[t] - math.log(5)).reshape(1),
            problem["h"][i] @ problem["emb"][negatives].T - log_q[negatives] - math.log(5),
        ]), 0) - (problem["h"][i] @ problem["emb"][t] - log_q[t] - math.log(5))
        for i, t in enumerate(problem["target"].tolist()) if problem["w"][i] > 0
    ]
    w = problem["w"][problem["w"] > 0]
    assert (w * torch.stack(unmasked)).sum().item() / w.sum().item() != pytest.approx(want, rel=1e-3)


def test_sampled_ce_ignores_weight_zero_targets(problem):
    log_q = torch.full((7,), -math.log(6.0))
    log_q[PAD] = -math.inf
    negatives = torch.tensor([1, 2, 3, 5])
    net = net_with(problem["emb"])
    base = sampled_ce(net, States(problem["h"][None], None), NO_WINDOW, problem["target"], problem["w"], negatives,
                      log_q)
    target = problem["target"].clone()
    target[3] = 5  # weight 0
    got = sampled_ce(net, States(problem["h"][None], None), NO_WINDOW, target, problem["w"], negatives, log_q)
    assert got.item() == pytest.approx(base.item(), rel=1e-6)


def test_window_items_are_what_each_position_has_seen():
    item = torch.tensor([[PAD, 2, 3, 2], [4, 1, 1, 6]])
    want = [[PAD, 0, 0, 0], [PAD, 2, 0, 0], [PAD, 2, 3, 0], [PAD, 2, 3, 2],
            [4, 0, 0, 0], [4, 1, 0, 0], [4, 1, 1, 0], [4, 1, 1, 6]]
    torch.testing.assert_close(window_items(item), torch.tensor(want), rtol=0, atol=0)


def test_in_rows_marks_every_copy_of_a_seen_track_and_never_pad():
    rows = torch.tensor([[3, 3, PAD], [PAD, PAD, PAD], [7, 1, 5], [2, 9, 9]])
    items = torch.tensor([5, 3, PAD, 3, 9, 1, 8])  # drawn with replacement: 3 twice; PAD among them
    want = [[0, 1, 0, 1, 0, 0, 0], [0] * 7, [1, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 1, 0, 0]]
    torch.testing.assert_close(in_rows(rows, items), torch.tensor(want, dtype=torch.bool))
    g = torch.Generator().manual_seed(0)
    for _ in range(50):  # against the all-pairs comparison
        rows, items = torch.randint(0, 12, (9, 6), generator=g), torch.randint(0, 12, (40,), generator=g)
        brute = ((rows[:, :, None] == items) & (rows[:, :, None] != PAD)).any(1) & (items != PAD)
        torch.testing.assert_close(in_rows(rows, items), brute)


EXPLORE_ITEM = torch.tensor([[2, 3, 2, 5, 1, 6, 4, 3]])
"""One window of eight events: position t has seen items EXPLORE_ITEM[0, :t + 1]."""


def hand_explore(h, emb, target, w, item):
    """Row by row, the softmax over the real items the position has not seen."""
    total, wsum = 0.0, 0.0
    for t in range(len(h)):
        if w[t] <= 0:
            continue
        seen = set(item[0, :t + 1].tolist())
        classes = [i for i in range(1, len(emb)) if i not in seen]
        logits = torch.stack([h[t] @ emb[i] for i in classes])
        total += float(w[t]) * float(torch.logsumexp(logits, 0) - h[t] @ emb[int(target[t])])
        wsum += float(w[t])
    return total / wsum


def test_explore_leaves_the_seen_tracks_out_of_the_full_softmax(problem):
    # the weighed targets are first plays: never seen up to their position
    target, w = torch.tensor([3, 4, 4, 6, 6, PAD, 5, 2]), torch.tensor([1.0, 0.5, 0.25, 1.0, 0.0, 0.0, 0.0, 0.0])
    want = hand_explore(problem["h"], problem["emb"], target, w, EXPLORE_ITEM)
    for chunk in (1, 3, 1000):
        got = weighted_ce(net_with(problem["emb"]), States(problem["h"], None), target, w, chunk=chunk,
                          exclude=window_items(EXPLORE_ITEM))
        assert got.item() == pytest.approx(want, rel=1e-5)
    plain = weighted_ce(net_with(problem["emb"]), States(problem["h"], None), target, w)
    assert plain.item() > got.item() + 1e-3  # the seen tracks no longer compete


def test_explore_sampled_softmax_masks_seen_negatives_and_reads_no_window(problem):
    q = torch.tensor([0.0, 0.1, 0.3, 0.2, 0.15, 0.05, 0.2])
    log_q, negatives = q.log(), torch.tensor([2, 4, 4, 6, 1])
    target, w = torch.tensor([3, 4, 1, 6, 6, PAD, 3, 5]), torch.tensor([1.0, 0.5, 0.25, 1.0, 0.0, 0.0, 0.0, 0.0])
    got = sampled_ce(net_with(problem["emb"]), States(problem["h"][None], None), EXPLORE_ITEM, target, w,
                     negatives, log_q, explore=True)
    h, emb, m = problem["h"], problem["emb"], len(negatives)
    total = 0.0
    for t in range(4):
        seen = set(EXPLORE_ITEM[0, :t + 1].tolist())
        tt = int(target[t])
        pos = float(h[t] @ emb[tt] - log_q[tt]) - math.log(m)
        terms = [pos] + [float(h[t] @ emb[n] - log_q[n]) - math.log(m) for n in negatives.tolist()
                         if n != tt and n not in seen]
        total += float(w[t]) * (float(torch.logsumexp(torch.tensor(terms), 0)) - pos)
    assert got.item() == pytest.approx(total / float(w.sum()), rel=1e-5)
