import pytest
import pytorch_lightning as pl
import torch

from seqrec import PAD
from seqrec.config import ModelConfig
from seqrec.models.features import INPUTS
from seqrec.models.sasrec import SASRec, States
from seqrec.training.losses import weighted_ce

pytestmark = pytest.mark.usefixtures("one_thread")

N_ITEMS, B, T = 12, 3, 7
FEATURES = {"item": N_ITEMS + 1, **{inp.name: inp.vocab for inp in INPUTS}}
BARE = dict(use_frac=False, use_gap=False, use_session=False, use_side=False)


@pytest.fixture
def model() -> SASRec:
    pl.seed_everything(0)
    return SASRec(ModelConfig(d_model=32, n_blocks=2, n_heads=2, max_len=10, dropout=0.1, use_side=False),
                  N_ITEMS).eval()


def random_inputs(batch: int = B, length: int = T) -> dict[str, torch.Tensor]:
    """Every feature drawn from its non-PAD ids."""
    return {name: torch.randint(1, n, (batch, length)) for name, n in FEATURES.items()}


def test_output_shapes_and_pad_scores(model):
    x = random_inputs()
    h = model(**x)
    assert h.shape == (B, T, 32)
    scores = model.score(States(h[:, -1], None))
    assert scores.shape == (B, N_ITEMS + 1)
    assert torch.all(scores[:, PAD] == float("-inf"))
    assert torch.isfinite(scores[:, 1:]).all()
    torch.testing.assert_close(scores[:, 1:], h[:, -1] @ model.item_emb.weight[1:].T)


@pytest.mark.parametrize("feature", list(FEATURES))
def test_a_later_event_never_changes_earlier_outputs(model, feature):
    torch.manual_seed(1)
    x = random_inputs()
    h = model(**x)
    for t in range(T):
        y = {name: v.clone() for name, v in x.items()}
        y[feature][:, t] = y[feature][:, t] % (FEATURES[feature] - 1) + 1  # another non-PAD id
        g = model(**y)
        torch.testing.assert_close(g[:, :t], h[:, :t], rtol=0, atol=1e-6)
        assert (g[:, t] - h[:, t]).abs().amax(dim=-1).min() > 1e-4, f"{feature} at {t} is not read"


def test_left_padding_is_invisible(model):
    torch.manual_seed(2)
    short = random_inputs(batch=2, length=4)
    want = model(**short)  # (2, 4, D) with no padding at all
    padded = {name: torch.cat([torch.zeros(2, 3, dtype=torch.long), v], dim=1) for name, v in short.items()}
    torch.testing.assert_close(model(**padded)[:, 3:], want, rtol=0, atol=1e-5)
    # Whatever sits in the other features of a PAD event is ignored too.
    noisy = {name: v.clone() for name, v in padded.items()}
    for name, n in FEATURES.items():
        if name != "item":
            noisy[name][:, :3] = torch.randint(1, n, (2, 3))
    torch.testing.assert_close(model(**noisy)[:, 3:], want, rtol=0, atol=1e-5)
    # A row of only PAD (a user without history) still gives finite states.
    assert torch.isfinite(model(**{n: torch.zeros(1, 5, dtype=torch.long) for n in FEATURES})).all()


def test_an_input_switched_off_has_no_embedding_and_is_not_read(model):
    x = random_inputs()
    bare = SASRec(ModelConfig(d_model=16, n_blocks=1, n_heads=2, max_len=8, **BARE), N_ITEMS).eval()
    assert len(bare.inputs) == 0 and set(model.inputs) == {inp.name for inp in INPUTS}
    torch.testing.assert_close(bare(**x), bare(x["item"]))
    with pytest.raises(KeyError, match="frac"):  # a network built to read an input needs it
        model(x["item"])


def test_learns_a_cyclic_sequence_with_weighted_ce():
    pl.seed_everything(0)
    n, length = 8, 12
    net = SASRec(ModelConfig(d_model=32, n_blocks=1, n_heads=2, max_len=length, dropout=0.0, **BARE), n)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    start = torch.arange(n)[:, None]  # one sequence per starting item: 1 -> 2 -> ... -> 8 -> 1 -> ...
    seq = (start + torch.arange(length + 1)[None, :]) % n + 1  # (n, length + 1) item ids 1..8
    item, target = seq[:, :-1], seq[:, 1:]
    w = torch.ones(target.shape)
    for _ in range(300):
        h = net(item)  # (n, length, D)
        loss = weighted_ce(net, States(h.flatten(0, 1), None), target.flatten(), w.flatten(), chunk=32)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        h = net(item)
        final = weighted_ce(net, States(h.flatten(0, 1), None), target.flatten(), w.flatten())
        pred = net.score(States(h.flatten(0, 1), None)).argmax(-1).view(n, length)
    assert final.item() < 0.05
    torch.testing.assert_close(pred, target, rtol=0, atol=0)
