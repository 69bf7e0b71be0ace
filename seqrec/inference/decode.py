"""Top-k decoding: model log-probabilities blended with re-listen evidence, masked, batched on the device."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from seqrec.baselines import Relisten, row_normalise
from seqrec.config import Config
from seqrec.data.dataset import Dataset
from seqrec.models.sasrec import SASRec
from seqrec.training.batches import EventFeatures, history_inputs


@dataclass
class Decoder:
    """Everything needed to turn a user's history into k recommendations."""

    feats: EventFeatures
    """Per-event inputs of the history to encode."""
    relisten: sp.csr_matrix
    """(n_users, n_items + 1) re-listen evidence scaled to [0, 1] per user."""
    allowed: np.ndarray
    """(n_items + 1,) bool: items that may be recommended (PAD and tracks without a length are not)."""
    blocked: sp.csr_matrix | None = None
    """(n_users, n_items + 1) user-specific items never to recommend (e.g. repeatedly skipped)."""
    batch_users: int = 256

    @torch.no_grad()
    def topk(self, model: SASRec, users: np.ndarray, weights: list[float], k: int) -> dict[float, np.ndarray]:
        """For each blend weight w: (n, k) best items by log p(item) + w * relisten, best first."""
        model.eval()
        device = next(model.parameters()).device
        allowed = torch.as_tensor(self.allowed, device=device)
        out: dict[float, list[np.ndarray]] = {w: [] for w in weights}
        for i in range(0, len(users), self.batch_users):
            u = users[i:i + self.batch_users]
            x = {n: t.to(device) for n, t in history_inputs(self.feats, u, model.cfg.max_len).items()}
            h = model(**x)[:, -1]  # (B, D) state after the last event
            logp = torch.log_softmax(model.score_all(h).float(), dim=-1)  # (B, V)
            logp = logp.masked_fill(~allowed, float("-inf"))
            if self.blocked is not None:
                logp = logp.masked_fill(_dense(self.blocked[u], device) > 0, float("-inf"))
            rel = _dense(self.relisten[u], device) if any(weights) else None
            for w in weights:
                s = logp + w * rel if w else logp
                out[w].append(torch.topk(s, k, dim=-1).indices.cpu().numpy())
        return {w: np.concatenate(v) if v else np.zeros((0, k), np.int64) for w, v in out.items()}


def _dense(m: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    """A few CSR rows as a dense (B, V) tensor on the device."""
    coo = m.tocoo()
    out = torch.zeros(m.shape, dtype=torch.float32, device=device)
    out[torch.as_tensor(coo.row, device=device), torch.as_tensor(coo.col, device=device)] = torch.as_tensor(
        coo.data, dtype=torch.float32, device=device)
    return out


def skipped_items(seqs_user: np.ndarray, item: np.ndarray, frac: np.ndarray, n_users: int, n_items: int,
                  min_skips: int) -> sp.csr_matrix:
    """Items a user skipped (< a quarter) at least `min_skips` times and never listened to half of."""
    f = np.nan_to_num(frac, nan=1.0)
    skips = sp.coo_matrix(((f < 0.25).astype(np.float32), (seqs_user, item)), shape=(n_users, n_items + 1)).tocsr()
    good = sp.coo_matrix(((f >= 0.5).astype(np.float32), (seqs_user, item)), shape=(n_users, n_items + 1)).tocsr()
    blocked = (skips >= min_skips).astype(np.float32) - (good > 0).astype(np.float32)
    blocked.data = (blocked.data > 0).astype(np.float32)
    blocked.eliminate_zeros()
    return blocked


def make_decoder(ds: Dataset, feats: EventFeatures, cfg: Config) -> Decoder:
    """The decoder predict.py and validation share: re-listen evidence, catalog mask, skip mask."""
    relisten = row_normalise(Relisten(cfg.baselines).fit(ds).history).tocsr()  # each user's best = 1
    blocked = None
    if cfg.decode.mask_skipped > 0:
        ev = ds.events
        blocked = skipped_items(ev["user"].to_numpy(), ev["item"].to_numpy(), ev["frac"].to_numpy(),
                                ds.n_users, ds.n_items, cfg.decode.mask_skipped)
    return Decoder(feats, relisten, ds.items["valid"].to_numpy(), blocked, cfg.decode.batch_users)
