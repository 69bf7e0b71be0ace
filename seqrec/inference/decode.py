"""Top-k decoding: the network encodes each user's history and scores the catalog under the masks; the ranking
stage makes the candidates from its named sources, with their features, and ranks them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from seqrec.config import Config, DecodeConfig, RankConfig
from seqrec.data.dataset import Dataset
from seqrec.models.features import EventFeatures, history_inputs
from seqrec.models.sasrec import SASRec, States
from seqrec.ranking.candidates import Candidates, make_candidates
from seqrec.ranking.evidence import Evidence, LogTables
from seqrec.ranking.rankers import Ranker, top_k
from seqrec.ranking.sources import Scores


@dataclass
class Decoder:
    """Everything needed to turn a user's history into k recommendations."""

    feats: EventFeatures
    """Per-event inputs of the history to encode."""
    evidence: Evidence
    """What the ranking stage knows of the same history."""
    allowed: np.ndarray
    """(n_items + 1,) bool: items that may be recommended (PAD and tracks without a length are not)."""
    blocked: sp.csr_matrix | None
    """(n_users, n_items + 1) user-specific items never to recommend (e.g. repeatedly skipped)."""
    cfg: DecodeConfig
    rank: RankConfig

    def inputs(self, net: SASRec, users: np.ndarray) -> dict[str, torch.Tensor]:
        """Each user's last max_len events as the network reads them, on its device."""
        device = next(net.parameters()).device
        return {n: t.to(device) for n, t in history_inputs(self.feats, users, net.cfg.max_len).items()}

    @torch.no_grad()
    def scores(self, net: SASRec, users: np.ndarray, states: States | None = None) -> Scores:
        """The network's log-probabilities over what each user may be recommended, with its states (encoded here
        unless given: (B, D) after each user's last event)."""
        net.eval()
        states = states if states is not None else net.encode(self.inputs(net, users), last_only=True)
        device = states.h.device
        logits = net.score(states, allowed=torch.tensor(self.allowed, device=device))
        if self.blocked is not None:  # each user's blocked tracks, set one by one: no (B, V) mask is built
            coo = self.blocked[users].tocoo()
            logits[torch.as_tensor(coo.row, device=device), torch.as_tensor(coo.col, device=device)] = float("-inf")
        return Scores(torch.log_softmax(logits, dim=-1), states.h, net.item_weights())

    @torch.no_grad()
    def candidates(self, net: SASRec, users: np.ndarray, k: int = 0) -> Candidates:
        """The ranking stage's candidates of `users` (the network's source at least k long, so a list can be made
        of it alone), in batches of decode.batch_users on the network's device."""
        return Candidates.concat(list(self._batches(net, users, k)))

    def _batches(self, net: SASRec, users: np.ndarray, k: int) -> Iterator[Candidates]:
        """The candidates of each batch of decode.batch_users users, made as it is reached."""
        step = self.cfg.batch_users
        for i in range(0, len(users), step):
            batch = users[i:i + step]
            yield self.candidates_from(self.scores(net, batch), batch, k)

    def candidates_from(self, scores: Scores, users: np.ndarray, k: int = 0) -> Candidates:
        """The candidates of `users` given a scorer's view of the catalog (the network's, or another's)."""
        return make_candidates(self.evidence, users, scores, self.rank, k)

    def topk(self, net: SASRec, users: np.ndarray, ranker: Ranker, k: int) -> np.ndarray:
        """(n, k) best candidates by the ranking stage."""
        return self.ranked(net, users, ranker, k)[0]

    @torch.no_grad()
    def ranked(self, net: SASRec, users: np.ndarray, ranker: Ranker, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(n, k) best candidates by the ranking stage and (n, k) their ranking scores, ranked batch by batch
        (decode.batch_users): only one batch's candidates and features are held, not a shard's."""
        items, scores = [], []
        for c in self._batches(net, users, k):
            coverage_check(c.mask, k)
            top, score = top_k(c, ranker.score(c), k)
            items.append(top)
            scores.append(score)
        if not items:
            return np.zeros((0, k), np.int64), np.zeros((0, k))
        return np.concatenate(items), np.concatenate(scores)


def coverage_check(mask: np.ndarray, k: int) -> None:
    """Every user must have at least k distinct candidates."""
    short = mask.sum(1) < k
    if short.any():
        raise ValueError(f"{int(short.sum())} user(s) have fewer than {k} candidates; raise "
                         f"rank.n_model_candidates")


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
    """The decoder of a history: its encoded inputs, its evidence (reading the whole log's `tables`), the catalog
    and skip masks. Validation, predict.py and the service all decode through it."""
    blocked = None
    if cfg.decode.mask_skipped > 0:
        ev = ds.events
        blocked = skipped_items(ev["user"].to_numpy(), ev["item"].to_numpy(), ev["frac"].to_numpy(),
                                ds.n_users, ds.n_items, cfg.decode.mask_skipped)
    return Decoder(feats, Evidence.build(ds, cfg.rank, tables), ds.items["valid"].to_numpy(), blocked, cfg.decode,
                   cfg.rank)
