"""The offline metrics in numpy, for seqrec.evaluate, the benchmarks and the synthetic calibration: the contest
score (torchmetrics has no graded quarter-credit metric), graded NDCG, recall, precision / MAP / hit rate at
cutoffs, coverage, novelty, diversity, repeats. Validation computes the ones torchmetrics has through it
(seqrec.training.listmetrics) and tests/test_metrics.py checks that both agree on the same lists."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Padding item index: fills short lists, never a real item, never in any truth.
from seqrec import PAD

FRACTIONS, ROUNDINGS, NORMALISATIONS = ("longest", "sum"), ("floor", "round"), ("k", "window")
"""The contest text's open points: a track's window listening is its longest single listen or the sum of its
listens (capped at 1), floored or rounded to a quarter; a user's sum is divided by k or by min(k, distinct tracks
the user played in the window). The first of each is the official wording and our default."""


def quarter(frac: np.ndarray, rounding: str = "floor") -> np.ndarray:
    """Listened fraction floored (or rounded) to a quarter in [0, 1]; NaN/negative -> 0, >1 -> 1."""
    frac = np.nan_to_num(np.asarray(frac, dtype=np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    q = np.clip(frac, 0.0, 1.0) * 4.0
    return ((np.floor(q) if rounding == "floor" else np.floor(q + 0.5)) / 4.0).astype(np.float32)


def _find(keys: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each query in sorted distinct keys, and whether it is there."""
    if keys.size == 0:
        return np.zeros(query.shape, np.int64), np.zeros(query.shape, bool)
    pos = np.minimum(np.searchsorted(keys, query), keys.size - 1)
    return pos, keys[pos] == query


def _rank_in_run(s: np.ndarray) -> np.ndarray:
    """Position of each element inside its run of equal values along the last axis of sorted s."""
    idx = np.broadcast_to(np.arange(s.shape[-1]), s.shape)
    new = np.ones(s.shape, bool)
    new[..., 1:] = s[..., 1:] != s[..., :-1]
    return idx - np.maximum.accumulate(np.where(new, idx, 0), axis=-1)


def _mean(x: np.ndarray) -> float:
    """Mean as a float; NaN (no warning) when there is nothing to average, so 'undefined' stays visible."""
    return float(x.mean()) if x.size else float("nan")


def _as_recs(recs: np.ndarray) -> np.ndarray:
    """recs as a 2-D int64 array, or a ValueError saying what came instead."""
    recs = np.asarray(recs)
    if recs.ndim != 2:
        raise ValueError(f"recs must be 2-D (n_users, k) item indices; got shape {recs.shape}")
    if recs.size and recs.dtype.kind not in "iu":
        raise ValueError(f"recs must hold integer item indices; got dtype {recs.dtype}")
    return recs.astype(np.int64, copy=False)


def _check(recs: np.ndarray, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """recs (n, k) and users (n,) as int64, one list per user, or a ValueError naming the shapes."""
    recs, users = _as_recs(recs), np.asarray(users)
    if users.ndim != 1 or users.shape[0] != recs.shape[0]:
        raise ValueError(
            f"recs must have one row per user: got recs {recs.shape} and users {users.shape}; "
            "expected recs (n, k) with users (n,)"
        )
    if recs.shape[1] == 0:
        raise ValueError(f"recs has k = 0 columns (shape {recs.shape}); lists must hold at least one item")
    users = users.astype(np.int64, copy=False)
    if users.size and users.min() < 0:
        raise ValueError(f"users must be indices >= 0; got min {users.min()}")
    return recs, users


def _check_in_range(recs: np.ndarray, n_slots: int, what: str) -> None:
    """Every recommended index must address the per-item array it is looked up in."""
    if recs.size and (recs.min() < 0 or recs.max() >= n_slots):
        raise ValueError(
            f"recs hold item indices {recs.min()}..{recs.max()} but {what} covers only 0..{n_slots - 1}"
        )


def _check_distinct(recs: np.ndarray) -> None:
    """A repeated item would be scored twice and inflate every truth-based metric, so refuse it."""
    s = np.sort(recs, axis=1)
    dup = (s[:, 1:] == s[:, :-1]) & (s[:, 1:] != PAD)
    if dup.any():
        row = int(np.flatnonzero(dup.any(axis=1))[0])
        item = int(s[row, 1:][dup[row]][0])
        raise ValueError(
            f"recs row {row} lists item {item} more than once; each list must name an item at most once "
            f"(pad short lists with {PAD})"
        )


@dataclass(frozen=True, eq=False)  # eq=False: element-wise array __eq__/__hash__ would be meaningless
class Truth:
    """What each user listened to in the scored window: one row per distinct (user, item)."""

    users: np.ndarray
    """int64 (m,) user indices, rows sorted by (user, item), pairs distinct."""
    items: np.ndarray
    """int64 (m,) item indices 1..n_items."""
    gain: np.ndarray
    """float32 (m,) quarter of min(1, max listened / duration); 0 if the duration is unknown."""
    normalise: str = "k"
    """A user's sum of gains is divided by k (`k`) or by min(k, the user's distinct window tracks) (`window`)."""
    _stride: int = field(init=False, repr=False)
    _keys: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        users = np.asarray(self.users).astype(np.int64, copy=False)
        items = np.asarray(self.items).astype(np.int64, copy=False)
        gain = np.asarray(self.gain).astype(np.float32, copy=False)
        if not (users.ndim == items.ndim == gain.ndim == 1 and len(users) == len(items) == len(gain)):
            raise ValueError(
                f"Truth needs 1-D users, items, gain of one length; got {users.shape}, {items.shape}, "
                f"{gain.shape}"
            )
        if users.size and (users.min() < 0 or items.min() <= PAD):
            raise ValueError(
                f"Truth needs users >= 0 and items >= {PAD + 1} ({PAD} is padding); got user min "
                f"{users.min()}, item min {items.min()}"
            )
        # One integer key per pair turns lookups into a single searchsorted over all users at once.
        stride = int(items.max()) + 1 if items.size else 1
        keys = users * stride + items
        if keys.size > 1 and not np.all(keys[1:] > keys[:-1]):
            raise ValueError(
                "Truth rows must be distinct (user, item) pairs sorted by (user, item); use build_truth"
            )
        set_ = object.__setattr__  # frozen: fields are normalised once, here
        set_(self, "users", users)
        set_(self, "items", items)
        set_(self, "gain", gain)
        set_(self, "_stride", stride)
        set_(self, "_keys", keys)

    def lookup(self, users: np.ndarray, recs: np.ndarray) -> np.ndarray:
        """Gain of each recommended item: users (n,), recs (n, k) -> (n, k) float32; 0 where not listened."""
        recs, users = _check(recs, users)
        # Items past the largest truth item would alias another user's key, so mask them out.
        inside = (recs > PAD) & (recs < self._stride)
        pos, hit = _find(self._keys, users[:, None] * self._stride + recs)  # (n, k)
        return np.where(inside & hit, self.gain[pos] if self.gain.size else 0.0, 0.0).astype(np.float32)

    @property
    def n_users(self) -> int:
        """Number of distinct users that have rows."""
        return int(np.count_nonzero(self.users[1:] != self.users[:-1])) + 1 if self.users.size else 0


def build_truth(
    users: np.ndarray, items: np.ndarray, listened: np.ndarray, track_duration: np.ndarray,
    fraction: str = "longest", rounding: str = "floor", normalise: str = "k",
) -> Truth:
    """Truth from raw window events: the longest listen (or the sum of listens) per (user, item) over the track's
    duration, to a quarter (FRACTIONS, ROUNDINGS, NORMALISATIONS)."""
    if fraction not in FRACTIONS or rounding not in ROUNDINGS or normalise not in NORMALISATIONS:
        raise ValueError(f"metric readings: fraction in {FRACTIONS}, rounding in {ROUNDINGS}, normalise in "
                         f"{NORMALISATIONS}; got {fraction!r}, {rounding!r}, {normalise!r}")
    users = np.asarray(users).astype(np.int64, copy=False)
    items = np.asarray(items).astype(np.int64, copy=False)
    listened = np.asarray(listened, dtype=np.float64)
    track_duration = np.asarray(track_duration, dtype=np.float64)
    if not (users.ndim == items.ndim == listened.ndim == 1 and len(users) == len(items) == len(listened)):
        raise ValueError(
            f"build_truth needs 1-D users, items, listened of one length (one per event); got "
            f"{users.shape}, {items.shape}, {listened.shape}"
        )
    n_slots = len(track_duration)
    if items.size and (items.min() <= PAD or items.max() >= n_slots):
        raise ValueError(
            f"build_truth: event items span {items.min()}..{items.max()} but must be item indices "
            f"1..{n_slots - 1} (track_duration has {n_slots} slots, {PAD} is padding); map raw ids first"
        )
    if users.size and users.min() < 0:
        raise ValueError(f"build_truth: users must be indices >= 0; got min {users.min()}")
    if users.size == 0:
        return Truth(users=users, items=items, gain=np.zeros(0, np.float32), normalise=normalise)

    # Officially a replay does not add up: the longest listen per pair (max); the other reading sums them.
    keys = users * n_slots + items
    order = np.argsort(keys, kind="stable")
    keys, secs = keys[order], np.clip(np.nan_to_num(listened[order], nan=0.0), 0.0, None)
    start = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    best = (np.maximum if fraction == "longest" else np.add).reduceat(secs, start)
    pair_users, pair_items = np.divmod(keys[start], n_slots)

    dur = track_duration[pair_items]
    known = np.isfinite(dur) & (dur > 0)  # unknown length: the fraction cannot be scored, so it gains 0
    frac = np.divide(best, dur, out=np.zeros_like(best), where=known)
    return Truth(users=pair_users, items=pair_items, gain=quarter(frac, rounding), normalise=normalise)


def user_scores(recs: np.ndarray, users: np.ndarray, truth: Truth) -> np.ndarray:
    """Contest score per user: sum of the k gains / k (or / min(k, distinct window tracks), `truth.normalise`)."""
    recs, users = _check(recs, users)
    _check_distinct(recs)
    k = recs.shape[1]
    denom = np.full(len(users), float(k))
    if truth.normalise == "window":
        size = max(int(users.max()) if users.size else -1, int(truth.users.max()) if truth.users.size else -1) + 1
        denom = np.clip(np.bincount(truth.users, minlength=size)[users], 1, k).astype(np.float64)
    return truth.lookup(users, recs).sum(axis=1) / denom  # (n,)


def competition_score(recs: np.ndarray, users: np.ndarray, truth: Truth) -> float:
    """The contest metric: mean over users of user_scores."""
    return _mean(user_scores(recs, users, truth))


def ndcg_at_k(recs: np.ndarray, users: np.ndarray, truth: Truth) -> float:
    """Graded NDCG@k (gain = quarter fraction), ideal list from each user's full truth; users with no gain score 0 and are included."""  # noqa: E501
    recs, users = _check(recs, users)
    _check_distinct(recs)
    k = recs.shape[1]
    disc = 1.0 / np.log2(np.arange(k) + 2.0)  # (k,)
    dcg = truth.lookup(users, recs) @ disc  # (n,)

    # Ideal list: each user's own truth gains, best first, cut at k; done for all users in one sort.
    order = np.lexsort((-truth.gain, truth.users))
    t_users, t_gain = truth.users[order], truth.gain[order].astype(np.float64)
    rank = _rank_in_run(t_users)
    top = rank < k
    size = max(int(users.max()) if users.size else -1, int(truth.users.max()) if truth.users.size else -1) + 1
    idcg = np.bincount(t_users[top], weights=t_gain[top] * disc[rank[top]], minlength=size)[users]  # (n,)
    return _mean(np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0))


def recall_at_k(recs: np.ndarray, users: np.ndarray, truth: Truth) -> float:
    """Share of each user's relevant window items (gain > 0) found in the list, averaged over users that have any."""  # noqa: E501
    recs, users = _check(recs, users)
    _check_distinct(recs)
    found = np.count_nonzero(truth.lookup(users, recs) > 0, axis=1)  # (n,)
    size = max(int(users.max()) if users.size else -1, int(truth.users.max()) if truth.users.size else -1) + 1
    relevant = np.bincount(truth.users, weights=truth.gain > 0, minlength=size)[users]  # (n,)
    has = relevant > 0
    return _mean(found[has] / relevant[has])


def at_cutoffs(recs: np.ndarray, users: np.ndarray, truth: Truth, cutoffs: list[int]) -> dict[str, float]:
    """precision@c, MAP@c and hit rate@c of the lists' first c tracks, a track being relevant when it was listened
    to at least a quarter in the window (MAP@c: mean precision at each relevant position, over min(c, relevant))."""
    recs, users = _check(recs, users)
    rel = truth.lookup(users, recs) > 0  # (n, k)
    size = max(int(users.max()) if users.size else -1, int(truth.users.max()) if truth.users.size else -1) + 1
    n_rel = np.bincount(truth.users, weights=truth.gain > 0, minlength=size)[users]  # (n,)
    out = {}
    for c in cutoffs:
        r = rel[:, :c]
        prec_at = np.cumsum(r, axis=1) / np.arange(1, r.shape[1] + 1)  # (n, c) precision at each position
        ap = np.divide((prec_at * r).sum(1), np.minimum(c, n_rel), out=np.zeros(len(users)), where=n_rel > 0)
        out.update({f"precision@{c}": _mean(r.sum(1) / c), f"map@{c}": _mean(ap), f"hit@{c}": _mean(r.any(1))})
    return out


def played(recs: np.ndarray, users: np.ndarray, history_users: np.ndarray, history_items: np.ndarray) -> np.ndarray:
    """(n, k) whether each user played each recommended item in history."""
    recs, users = _check(recs, users)
    h_users = np.asarray(history_users).astype(np.int64, copy=False)
    h_items = np.asarray(history_items).astype(np.int64, copy=False)
    if h_users.shape != h_items.shape or h_users.ndim != 1:
        raise ValueError(
            f"history_users {h_users.shape} and history_items {h_items.shape} must be 1-D, one length"
        )
    stride = max(int(recs.max()) if recs.size else 0, int(h_items.max()) if h_items.size else 0) + 1
    return _find(np.unique(h_users * stride + h_items), users[:, None] * stride + recs)[1]  # (n, k)


def repeat_share(
    recs: np.ndarray, users: np.ndarray, history_users: np.ndarray, history_items: np.ndarray
) -> float:
    """Share of recommended (user, item) pairs the user already played in history."""
    recs = _as_recs(recs)
    hit = played(recs, users, history_users, history_items)
    return _mean(hit[recs != PAD])  # padding is no recommendation, so it is left out of the share


def coverage(recs: np.ndarray, n_items: int) -> float:
    """Distinct recommended items over the catalog size."""
    recs = _as_recs(recs)
    _check_in_range(recs, n_items + 1, f"the catalog (n_items={n_items})")
    # bincount instead of np.unique: linear time on 300K x 50 lists; slot PAD is padding, not an item.
    seen = np.bincount(recs.ravel(), minlength=n_items + 1)[PAD + 1 :] > 0
    return float(np.count_nonzero(seen) / n_items)


def novelty(recs: np.ndarray, item_users: np.ndarray, n_users: int) -> float:
    """Mean self-information -log2(p) of recommended items, p = share of users who played the item (unplayed -> 1/(n_users+1))."""  # noqa: E501
    recs = _as_recs(recs)
    item_users = np.asarray(item_users)
    _check_in_range(recs, len(item_users), f"item_users (length {len(item_users)})")
    if n_users <= 0:
        raise ValueError(f"novelty needs n_users > 0; got {n_users}")
    played = item_users[recs[recs != PAD]].astype(np.float64)
    # An unplayed item would have p = 0 and infinite information; count it as just rarer than one player.
    p = np.where(played > 0, played / n_users, 1.0 / (n_users + 1))
    return _mean(-np.log2(p))


def artist_diversity(recs: np.ndarray, artist: np.ndarray) -> float:
    """Intra-list diversity: share of item pairs in a list with different artists, averaged over lists."""
    recs = _as_recs(recs)
    artist = np.asarray(artist)
    _check_in_range(recs, len(artist), f"artist (length {len(artist)})")
    k = recs.shape[1]
    real = recs != PAD
    a = artist[recs].astype(np.int64)  # (n, k)
    # Padding and unknown artists (-1) get a sentinel unique within the row, so they never match anything.
    a = np.where(~real | (a < 0), -1 - np.arange(k), a)
    # After a row sort equal artists are adjacent: an item's rank in its run = equal pairs it closes.
    same = _rank_in_run(np.sort(a, axis=1)).sum(axis=1)  # (n,)
    n_real = np.count_nonzero(real, axis=1)
    pairs = n_real * (n_real - 1) // 2
    has = pairs > 0  # lists with fewer than two items have no pairs to judge
    return _mean(1.0 - same[has] / pairs[has])
