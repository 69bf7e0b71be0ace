"""Top-k decoding: the model's best tracks and the user's history as candidates, masked, ranked by the blend."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from seqrec.config import Config, DecodeConfig
from seqrec.data.dataset import Dataset
from seqrec.inference.blend import FEATURES, Evidence, coverage_check, merge_candidates, rank
from seqrec.inference.topk import sparse_topk
from seqrec.models.sasrec import SASRec
from seqrec.training.batches import EventFeatures, history_inputs


@dataclass
class Candidates:
    """Per user: candidate items (n, C), which are real (n, C), and their features (n, C, F)."""

    items: np.ndarray
    mask: np.ndarray
    x: np.ndarray


@dataclass
class Decoder:
    """Everything needed to turn a user's history into k recommendations."""

    feats: EventFeatures
    """Per-event inputs of the history to encode."""
    evidence: Evidence
    """Re-listen statistics of the same history."""
    allowed: np.ndarray
    """(n_items + 1,) bool: items that may be recommended (PAD and tracks without a length are not)."""
    blocked: sp.csr_matrix | None
    """(n_users, n_items + 1) user-specific items never to recommend (e.g. repeatedly skipped)."""
    cfg: DecodeConfig

    @torch.no_grad()
    def candidates(self, model: SASRec, users: np.ndarray, k: int = 0) -> Candidates:
        """Model top tracks (at least k of them, so a long list can be made of the model's alone), plus the user's
        history and what follows their favourites, batched on the device."""
        model.eval()
        device = next(model.parameters()).device
        allowed = torch.tensor(self.allowed, device=device)
        parts = []
        for i in range(0, len(users), self.cfg.batch_users):
            u = users[i:i + self.cfg.batch_users]
            x = {n: t.to(device) for n, t in history_inputs(self.feats, u, model.cfg.max_len).items()}
            h = model(**x)[:, -1]  # (B, D) state after the last event
            rep = model.repeat_bias(x["item"], x["frac"], last_only=True)
            logp = torch.log_softmax(model.score_all(h, rep), dim=-1)  # (B, V)
            logp = logp.masked_fill(~allowed, float("-inf"))
            if self.blocked is not None:
                logp = logp.masked_fill(_dense(self.blocked[u], device) > 0, float("-inf"))
            n_top = min(max(self.cfg.n_model_candidates, k), logp.shape[1])  # a catalog may be smaller
            top = torch.topk(logp, n_top, dim=-1).indices.cpu().numpy()  # (B, C)
            nxt, fav = self.evidence.transition_scores(u)
            if self.cfg.use_history:
                items, mask = merge_candidates(top, self.evidence.history_items(u, self.cfg.n_history_candidates),
                                               sparse_topk(fav, self.cfg.n_transition_candidates)[0])
            else:
                items, mask = merge_candidates(top)
            item_t = torch.as_tensor(items, device=device)
            lp = torch.gather(logp, 1, item_t).cpu().numpy()  # (B, C)
            mask &= np.isfinite(lp)  # masked tracks stay out, history included
            feat = self.evidence.features(u, items, lp, nxt, fav)
            feat[..., [FEATURES.index(f) for f in self.cfg.drop_features]] = 0.0  # a constant carries no signal
            parts.append(Candidates(items, mask, feat))
        if not parts:
            return Candidates(np.zeros((0, 0), np.int64), np.zeros((0, 0), bool), np.zeros((0, 0, 0), np.float32))
        return Candidates(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("items", "mask", "x")))

    def topk(self, model: SASRec, users: np.ndarray, blend: np.ndarray, k: int) -> np.ndarray:
        """(n, k) best candidates by the blend (see seqrec.inference.blend)."""
        c = self.candidates(model, users, k)
        coverage_check(c.mask, k)
        return rank(c.items, c.mask, c.x, blend, self.cfg.blend_hidden, k)


def _dense(m: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    """A few CSR rows as a dense (B, V) tensor on the device."""
    coo = m.tocoo()
    out = torch.zeros(m.shape, dtype=torch.float32, device=device)
    out[torch.as_tensor(coo.row, device=device), torch.as_tensor(coo.col, device=device)] = torch.as_tensor(
        coo.data, dtype=torch.float32, device=device)
    return out


def skipped_items(user: np.ndarray, item: np.ndarray, frac: np.ndarray, n_users: int, n_items: int,
                  min_skips: int) -> sp.csr_matrix:
    """Items a user skipped (< a quarter) at least `min_skips` times and never listened to half of."""
    f = np.nan_to_num(frac, nan=1.0)
    shape = (n_users, n_items + 1)
    skips = sp.coo_matrix(((f < 0.25).astype(np.float32), (user, item)), shape=shape).tocsr()
    good = sp.coo_matrix(((f >= 0.5).astype(np.float32), (user, item)), shape=shape).tocsr()
    blocked = (skips >= min_skips).astype(np.float32) - (good > 0).astype(np.float32)
    blocked.data = (blocked.data > 0).astype(np.float32)
    blocked.eliminate_zeros()
    return blocked


def make_decoder(ds: Dataset, feats: EventFeatures, cfg: Config) -> Decoder:
    """The decoder predict.py and validation share: candidates, evidence, catalog and skip masks."""
    unknown = set(cfg.decode.drop_features) - set(FEATURES)
    if unknown:
        raise ValueError(f"decode.drop_features: unknown {sorted(unknown)}; features are {list(FEATURES)}")
    blocked = None
    if cfg.decode.mask_skipped > 0:
        ev = ds.events
        blocked = skipped_items(ev["user"].to_numpy(), ev["item"].to_numpy(), ev["frac"].to_numpy(),
                                ds.n_users, ds.n_items, cfg.decode.mask_skipped)
    return Decoder(feats, Evidence.build(ds, cfg), ds.items["valid"].to_numpy(), blocked, cfg.decode)
