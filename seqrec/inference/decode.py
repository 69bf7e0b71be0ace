"""Top-k decoding: candidates (the model's best tracks, the user's history, what follows their favourites),
masked, with their named features, ranked by the run's ranking stage."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from seqrec import PAD
from seqrec.config import Config, DecodeConfig, RankConfig
from seqrec.data.dataset import Dataset
from seqrec.inference.evidence import BLEND_FEATURES, FEATURES, Evidence, LogTables
from seqrec.models.features import EventFeatures, history_inputs
from seqrec.models.ranker import GBDT, Blend, Candidates, Ranker, top_k
from seqrec.models.sasrec import SASRec
from seqrec.topk import sparse_topk


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
        history and what follows their favourites, batched on the model's device."""
        model.eval()
        parts = []
        for u in np.array_split(users, range(self.cfg.batch_users, len(users), self.cfg.batch_users)):
            if len(u):
                logp, h = self.model_logp(model, u)
                parts.append(self.candidates_for(u, logp, k, (h, model.item_emb.weight)))
        return Candidates.concat(parts, FEATURES)

    def model_logp(self, model: SASRec, users: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, V) the network's log-probabilities of the tracks that may be recommended (-inf elsewhere), and its
        (B, D) state after each user's last event."""
        device = next(model.parameters()).device
        x = {n: t.to(device) for n, t in history_inputs(self.feats, users, model.cfg.max_len).items()}
        h = model(**x)[:, -1]  # (B, D) state after the last event
        logits = model.logits(h, model.repeat_bias(x["item"], x["frac"], last_only=True),
                              allowed=torch.tensor(self.allowed, device=device))
        return torch.log_softmax(logits, dim=-1), h

    @torch.no_grad()
    def candidates_for(self, users: np.ndarray, logp: torch.Tensor, k: int = 0,
                       state: tuple[torch.Tensor, torch.Tensor] | None = None) -> Candidates:
        """The candidates of `users` given a scorer's (B, V) log-probabilities over the catalog: its top tracks,
        the users' history, what follows their favourites and the other configured sources, without the user's blocked
        tracks. With the scorer's
        `state` ((B, D) user states, (V, D) item vectors) the candidates also carry their cosine to the state."""
        device = logp.device
        if self.blocked is not None:
            logp = logp.masked_fill(_dense(self.blocked[users], device) > 0, float("-inf"))
        n_top = min(max(self.cfg.n_model_candidates, k), logp.shape[1])  # a catalog may be smaller
        top = torch.topk(logp, n_top, dim=-1).indices.cpu().numpy()  # (B, C)
        nxt, fav = self.evidence.transition_scores(users)
        sources = [top]
        if self.cfg.use_history:
            sources += [self.evidence.history_items(users, self.cfg.n_history_candidates),
                        sparse_topk(fav, self.cfg.n_transition_candidates)[0]]
            if self.cfg.n_next_candidates:
                sources.append(sparse_topk(self.evidence.recent_next(users), self.cfg.n_next_candidates)[0])
            if self.cfg.n_artist_candidates:
                sources.append(sparse_topk(self.evidence.artists_tracks(users), self.cfg.n_artist_candidates)[0])
        items, mask = merge_candidates(*sources)
        idx = torch.as_tensor(items, device=device)
        lp_t = torch.gather(logp, 1, idx)  # (B, C)
        by_score = torch.sort(logp.float(), dim=1, descending=True).values  # (B, V)
        rank = torch.searchsorted(-by_score, -lp_t.float().contiguous())  # tracks the scorer puts above each one
        model = {"model_rank": torch.log1p(rank.float()).cpu().numpy()}
        if state is not None:
            h, emb = state
            cos = F.normalize(h.float(), dim=-1)[:, None, :] * F.normalize(emb[idx].float(), dim=-1)  # (B, C, D)
            model["model_cos"] = cos.sum(-1).cpu().numpy()
        lp = lp_t.float().cpu().numpy()
        mask &= np.isfinite(lp)  # masked tracks stay out, history included
        return self.evidence.candidates(users, items, mask, lp, nxt, fav, model)

    def topk(self, model: SASRec, users: np.ndarray, ranker: Ranker, k: int) -> np.ndarray:
        """(n, k) best candidates by the ranking stage."""
        c = self.candidates(model, users, k)
        coverage_check(c.mask, k)
        return top_k(c, ranker.score(c), k)[0]


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


def coverage_check(mask: np.ndarray, k: int) -> None:
    """Every user must have at least k distinct candidates."""
    short = mask.sum(1) < k
    if short.any():
        raise ValueError(f"{int(short.sum())} user(s) have fewer than {k} candidates; raise "
                         f"decode.n_model_candidates")


def ranker_features(cfg: DecodeConfig, names: tuple[str, ...] = FEATURES) -> tuple[str, ...]:
    """The features the ranking stage reads: `names` but `decode.drop_features`."""
    unknown = set(cfg.drop_features) - set(FEATURES)
    if unknown:
        raise ValueError(f"decode.drop_features: unknown {sorted(unknown)}; features are {list(FEATURES)}")
    return tuple(f for f in names if f not in cfg.drop_features)


def make_ranker(d: DecodeConfig, r: RankConfig) -> Ranker:
    """An unfitted ranking stage as configured (`rank.model`)."""
    if r.model == "blend":
        return Blend(ranker_features(d, BLEND_FEATURES), d.blend_hidden)
    return GBDT(ranker_features(d), {"objective": r.objective, "num_iterations": r.trees,
                                     "learning_rate": r.learning_rate, "num_leaves": r.num_leaves,
                                     "min_data_in_leaf": r.min_data_in_leaf, "feature_fraction": r.feature_fraction,
                                     "negative_share": r.negative_share, "num_threads": r.threads})


def fit_on(c: Candidates, gain: np.ndarray, d: DecodeConfig, r: RankConfig) -> Ranker:
    """The configured ranking stage fitted on candidates and their window gains. Callable outside Lightning."""
    if not d.use_history:
        return Blend.by("model_logp")
    blank = make_ranker(d, r)
    if isinstance(blank, GBDT):
        return blank.fit(c, gain)
    return blank.fit(c, gain, d.blend_steps, d.blend_lr, d.blend_l2)


def crossfit(c: Candidates, gain: np.ndarray, d: DecodeConfig, r: RankConfig, k: int) -> np.ndarray:
    """(users, k) validation lists that are out of sample: each half of the users is ranked by a ranker fitted on
    the other half."""
    return crossfit_with(c, gain, lambda c, gain: fit_on(c, gain, d, r), k)


def crossfit_with(c: Candidates, gain: np.ndarray, fit: Callable[[Candidates, np.ndarray], Ranker],
                  k: int) -> np.ndarray:
    """`crossfit` with any ranker: `fit(candidates, gain)` returns something with `score(candidates)`."""
    recs = np.empty((len(c.items), k), dtype=np.int64)
    half = np.arange(len(c.items)) % 2 == 0
    for part in (half, ~half):
        other = fit(c.rows(~part), gain[~part])
        recs[part] = top_k(c.rows(part), other.score(c.rows(part)), k)[0]
    return recs


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


def make_decoder(ds: Dataset, feats: EventFeatures, cfg: Config, tables: LogTables) -> Decoder:
    """The decoder of a history: candidates, evidence (reading the whole log's `tables`), catalog and skip masks.
    Validation, predict.py and the service all decode through it."""
    blocked = None
    if cfg.decode.mask_skipped > 0:
        ev = ds.events
        blocked = skipped_items(ev["user"].to_numpy(), ev["item"].to_numpy(), ev["frac"].to_numpy(),
                                ds.n_users, ds.n_items, cfg.decode.mask_skipped)
    return Decoder(feats, Evidence.build(ds, cfg, tables), ds.items["valid"].to_numpy(), blocked, cfg.decode)
