"""Candidates and their features: the model's best tracks, the user's own history and what follows it.

Re-listening dominates this task, so a user's history competes with the model's new tracks on equal terms:
each (user, candidate) gets the model's log-probability and re-listen evidence (recency-decayed plays, play
count, days since the last play, best past listen, what usually follows the last plays and the favourites,
popularity), and a small blend (linear term + one-layer MLP) learned on the validation window ranks them,
trained as a listwise softmax over each user's candidates with the window's gains as targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from seqrec import PAD
from seqrec.baselines import Transitions, listen_quality, row_normalise
from seqrec.config import Config, DecodeConfig
from seqrec.data.dataset import Dataset

FEATURES = ("model_logp", "relisten", "relisten_short", "log_plays", "log_days_since", "in_history",
            "best_listen", "next", "favourites_next", "log_popularity")
NO_HISTORY_DAYS = 365.0  # "days since last play" of a track never played


@dataclass
class Evidence:
    """Per (user, item) history statistics as sorted keys user * stride + item with aligned columns."""

    keys: np.ndarray
    stats: np.ndarray  # (pairs, 5): relisten, relisten_short, log_plays, log_days_since, best_listen
    stride: int
    ranked: np.ndarray  # pair indices ordered by user, then re-listen score (best first)
    transitions: Transitions
    log_pop: np.ndarray  # (n_items + 1,) log1p of recent distinct listeners

    @classmethod
    def build(cls, ds: Dataset, cfg: Config) -> Evidence:
        ev = ds.events
        b = cfg.baselines
        age = (ds.end - ev["ts"]).dt.total_seconds().to_numpy() / 86400
        q = listen_quality(ev["frac"].to_numpy(), b.relisten_quality_floor)
        frame = pd.DataFrame({
            "user": ev["user"].to_numpy(), "item": ev["item"].to_numpy(),
            "rel": q * np.exp2(-age / b.relisten_half_life_days),
            "rel_short": q * np.exp2(-age / cfg.decode.short_half_life_days),
            "plays": np.ones(len(ev), np.float32), "age": age,
            "best": np.floor(np.clip(np.nan_to_num(ev["frac"].to_numpy()), 0, 1) * 4) / 4,
        })
        g = frame.groupby(["user", "item"], sort=True).agg(
            rel=("rel", "sum"), rel_short=("rel_short", "sum"), plays=("plays", "sum"), age=("age", "min"),
            best=("best", "max"))
        users = g.index.get_level_values(0).to_numpy(np.int64)
        items = g.index.get_level_values(1).to_numpy(np.int64)
        stride = ds.n_items + 1
        # relisten columns are scaled so each user's best track is 1, as in the baselines
        rel = _per_user_max_scale(users, g["rel"].to_numpy())
        rel_short = _per_user_max_scale(users, g["rel_short"].to_numpy())
        stats = np.stack([rel, rel_short, np.log1p(g["plays"].to_numpy()), np.log1p(g["age"].to_numpy()),
                          g["best"].to_numpy()], axis=1).astype(np.float32)
        recent = ev[ev["ts"] >= ds.end - pd.Timedelta(days=b.popular_days)]
        pop = np.bincount(recent.drop_duplicates(["user", "item"])["item"], minlength=stride)
        ranked = np.lexsort((-rel, users))
        return cls(users * stride + items, stats, stride, ranked, Transitions(b).fit(ds),
                   np.log1p(pop).astype(np.float32))

    def history_items(self, users: np.ndarray, n: int) -> np.ndarray:
        """(B, n) each user's top tracks by re-listen score, PAD-padded."""
        lo = np.searchsorted(self.keys, users * self.stride)
        hi = np.searchsorted(self.keys, (users + 1) * self.stride)
        idx = lo[:, None] + np.arange(n)[None, :]  # (B, n) positions in `ranked`; keys and ranked share user runs
        ok = idx < hi[:, None]
        pairs = self.ranked[np.where(ok, idx, 0)]
        return np.where(ok, self.keys[pairs] % self.stride, PAD)

    def transition_scores(self, users: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(B, V) re-listen + next-after-last-plays scores, and what usually follows the user's favourites."""
        t = self.transitions
        nxt = row_normalise(t.user_scores(users)).tocsr()
        fav = row_normalise(row_normalise(t.history[users]) @ t.trans).tocsr()
        return nxt, fav

    def features(self, users: np.ndarray, items: np.ndarray, logp: np.ndarray, nxt: sp.csr_matrix,
                 fav: sp.csr_matrix) -> np.ndarray:
        """(B, C, F) features of candidate `items` (B, C) given the model's log-probabilities of them."""
        key = users[:, None] * self.stride + items  # (B, C)
        pos = np.clip(np.searchsorted(self.keys, key), 0, len(self.keys) - 1)
        hit = self.keys[pos] == key
        stats = np.where(hit[..., None], self.stats[pos], 0.0)  # (B, C, 5)
        stats[..., 3] = np.where(hit, stats[..., 3], np.log1p(NO_HISTORY_DAYS))
        rows = np.repeat(np.arange(len(users)), items.shape[1])
        nxt_val = np.asarray(nxt[rows, items.ravel()]).reshape(items.shape)
        fav_val = np.asarray(fav[rows, items.ravel()]).reshape(items.shape)
        return np.concatenate([
            np.maximum(logp, -30.0)[..., None],
            stats[..., :2], stats[..., 2:4], hit[..., None].astype(np.float32), stats[..., 4:5],
            nxt_val[..., None], fav_val[..., None], self.log_pop[items][..., None],
        ], axis=-1).astype(np.float32)


def _per_user_max_scale(users: np.ndarray, values: np.ndarray) -> np.ndarray:
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    top = np.maximum.reduceat(values, starts) if len(values) else values
    return values / np.repeat(np.where(top > 0, top, 1.0), np.diff(np.r_[starts, len(values)]))


def merge_candidates(*parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, n_i) candidate lists -> (B, sum n_i) candidates and a mask of the distinct real ones."""
    items = np.concatenate(parts, axis=1)
    order = np.argsort(items, axis=1, kind="stable")
    srt = np.take_along_axis(items, order, 1)
    dup_sorted = np.zeros_like(srt, dtype=bool)
    dup_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
    dup = np.empty_like(dup_sorted)
    np.put_along_axis(dup, order, dup_sorted, 1)
    return items, (items != PAD) & ~dup


# The blend is a tiny residual MLP on standardised features, kept as one flat vector so it travels in a
# checkpoint as a plain buffer: [mu (F), sd (F), w_lin (F), W1 (F*H), b1 (H), w2 (H)].
def n_blend_params(hidden: int) -> int:
    f = len(FEATURES)
    return 3 * f + f * hidden + 2 * hidden


def _unpack(p: torch.Tensor, hidden: int) -> tuple[torch.Tensor, ...]:
    f = len(FEATURES)
    sizes = [f, f, f, f * hidden, hidden, hidden]
    mu, sd, w_lin, w1, b1, w2 = torch.split(p, sizes)
    return mu, sd, w_lin, w1.view(f, hidden), b1, w2


def blend_score(p: np.ndarray | torch.Tensor, x: np.ndarray | torch.Tensor, hidden: int) -> torch.Tensor:
    """(..., F) features -> (...) scores."""
    x = torch.as_tensor(x)
    mu, sd, w_lin, w1, b1, w2 = _unpack(torch.as_tensor(p, dtype=x.dtype), hidden)
    z = (x - mu) / sd
    return z @ w_lin + torch.nn.functional.gelu(z @ w1 + b1) @ w2


def logp_only(hidden: int) -> np.ndarray:
    """Blend that ranks by the model alone."""
    p = np.zeros(n_blend_params(hidden), np.float32)
    f = len(FEATURES)
    p[f:2 * f] = 1.0  # sd
    p[2 * f] = 1.0  # w_lin on model_logp
    return p


def fit_blend(x: np.ndarray, mask: np.ndarray, gain: np.ndarray, d: DecodeConfig, seed: int = 0) -> np.ndarray:
    """Fit the blend (d.blend_*) to maximise a listwise softmax likelihood of each user's window gains over
    candidates."""
    with torch.inference_mode(False), torch.enable_grad():  # also called from Lightning's validation loop
        return _fit_blend(x, mask, gain, d.blend_hidden, d.blend_l2, d.blend_steps, d.blend_lr, seed)


def _fit_blend(x: np.ndarray, mask: np.ndarray, gain: np.ndarray, hidden: int, l2: float, steps: int, lr: float,
               seed: int) -> np.ndarray:
    g = torch.from_numpy(gain).float() * torch.from_numpy(mask)
    keep = (g.sum(1) > 0).numpy()  # users with nothing to find carry no signal
    X, m, g = torch.from_numpy(x[keep]).float(), torch.from_numpy(mask[keep]), g[keep]
    if not len(X):
        return logp_only(hidden)
    f = len(FEATURES)
    mu = (X * m[..., None]).sum((0, 1)) / m.sum()
    sd = (((X - mu) ** 2) * m[..., None]).sum((0, 1)).div(m.sum()).sqrt().clamp_min(1e-6)
    gen = torch.Generator().manual_seed(seed)
    w_lin = torch.zeros(f, requires_grad=True)
    w1 = (torch.randn(f, hidden, generator=gen) / f**0.5).requires_grad_()
    b1 = torch.zeros(hidden, requires_grad=True)
    w2 = torch.zeros(hidden, requires_grad=True)
    opt = torch.optim.Adam([w_lin, w1, b1, w2], lr=lr)
    target = g / g.sum(1, keepdim=True)
    for _ in range(steps):
        opt.zero_grad()
        p = torch.cat([mu, sd, w_lin, w1.flatten(), b1, w2])
        s = blend_score(p, X, hidden).masked_fill(~m, float("-inf"))
        nll = -(target * torch.log_softmax(s, dim=1).masked_fill(~m, 0)).sum(1).mean()
        (nll + l2 * (w_lin.square().sum() + w1.square().sum() + w2.square().sum())).backward()
        opt.step()
    return torch.cat([mu, sd, w_lin, w1.flatten(), b1, w2]).detach().numpy()


def rank(items: np.ndarray, mask: np.ndarray, x: np.ndarray, p: np.ndarray, hidden: int, k: int) -> np.ndarray:
    """(B, k) best candidates by the blend; a user with fewer than k real candidates gets PAD after them."""
    return ranked(items, mask, x, p, hidden, k)[0]


def ranked(items: np.ndarray, mask: np.ndarray, x: np.ndarray, p: np.ndarray, hidden: int,
           k: int) -> tuple[np.ndarray, np.ndarray]:
    """`rank` with the blend scores of the chosen candidates, (B, k) each; -inf where PAD fills a short row."""
    with torch.no_grad():
        s = np.where(mask, blend_score(p, x, hidden).numpy(), -np.inf)
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(np.where(mask, items, PAD), top, 1), np.take_along_axis(s, top, 1)


def coverage_check(mask: np.ndarray, k: int) -> None:
    """Every user must have at least k distinct candidates."""
    short = mask.sum(1) < k
    if short.any():
        raise ValueError(f"{int(short.sum())} user(s) have fewer than {k} candidates; raise "
                         f"decode.n_model_candidates")
