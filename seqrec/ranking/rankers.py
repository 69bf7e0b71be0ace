"""Rankers over candidates: fitted on the candidates' named features and the window's gains, scoring candidates
by name, saved with the run. `GBDT` is LightGBM (NaN read as missing), pointwise on the gains or lambdarank over
each user's candidates; `ByFeature` ranks by one feature and learns nothing. Both have `fit(candidates, gain)`,
`score(candidates)` and `state()`, and are found by their `kind` in `load_ranker`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from seqrec import PAD
from seqrec.config import RankConfig
from seqrec.ranking.candidates import Candidates
from seqrec.ranking.features import FEATURES, SOURCE_FEATURES


class ByFeature:
    """Ranks each user's candidates by one feature, highest first; ties (and missing values, last) by a second
    feature `then`, if any."""

    kind = "by_feature"

    def __init__(self, feature: str, then: str | None = None):
        self.feature, self.then = feature, then

    def fit(self, c: Candidates, gain: np.ndarray) -> ByFeature:
        """Nothing to learn."""
        return self

    def score(self, c: Candidates) -> np.ndarray:
        """(B, C) scores of the candidates; -inf where a slot is not a real candidate."""
        first = c.columns((self.feature,))[..., 0]
        if self.then is None:
            return np.where(c.mask, first, -np.inf)
        keys = [np.nan_to_num(-x, nan=np.inf) for x in (c.columns((self.then,))[..., 0], first)]
        order = np.lexsort(keys, axis=1)  # by `feature`, then `then`, best first
        score = np.empty(first.shape)
        np.put_along_axis(score, order, -np.arange(first.shape[1], dtype=np.float64)[None, :], 1)
        return np.where(c.mask, score, -np.inf)

    def state(self) -> dict:
        return {"kind": self.kind, "feature": self.feature, "then": self.then}

    @classmethod
    def from_state(cls, state: dict) -> ByFeature:
        return cls(state["feature"], state.get("then"))


class GBDT:
    """LightGBM over named feature columns; scores are comparable within a user."""

    kind = "gbdt"

    def __init__(self, features: tuple[str, ...], params: dict, model: str | None = None,
                 fallback: str = RankConfig.by):
        """`params`: LightGBM's, `num_iterations` (the number of trees) included; `fallback`: the feature an
        unfitted GBDT ranks by."""
        self.features, self.params, self.model, self.fallback = tuple(features), dict(params), model, fallback
        self._booster = None

    def fit(self, c: Candidates, gain: np.ndarray) -> GBDT:
        """A new GBDT of the same features and parameters fitted on the real candidates of users who have any gain
        (the others carry no signal for a list)."""
        import lightgbm as lgb

        keep = (np.where(c.mask, gain, 0).sum(1) > 0)
        m = c.mask[keep]
        x = c.columns(self.features)[keep][m]  # (rows, F), user by user
        y = gain[keep][m]
        params = {"seed": RankConfig.seed, **self.params, "verbose": -1, "deterministic": True, "force_row_wise": True}
        share = params.pop("negative_share", 1.0)
        if params.get("objective") != "lambdarank" and share < 1.0:  # a pointwise fit needs no whole lists
            rows = (y > 0) | (np.random.default_rng(params["seed"]).random(len(y)) < share)
            x, y = x[rows], y[rows]
        if params.get("objective") == "lambdarank":
            y = np.rint(y * 4).astype(np.int32)  # relevance grades 0..4: the quarters
            params.setdefault("label_gain", list(range(5)))
            data = lgb.Dataset(x, y, group=m.sum(1), feature_name=list(self.features), free_raw_data=True)
        else:
            data = lgb.Dataset(x, y, feature_name=list(self.features), free_raw_data=True)
        if not len(y):
            return GBDT(self.features, self.params, fallback=self.fallback)
        booster = lgb.train(params, data)
        return GBDT(self.features, self.params, booster.model_to_string(), self.fallback)

    @property
    def booster(self):
        if self._booster is None and self.model is not None:
            import lightgbm as lgb

            self._booster = lgb.Booster(model_str=self.model)
        return self._booster

    def score(self, c: Candidates) -> np.ndarray:
        """(B, C) scores of the candidates; -inf where a slot is not a real candidate. An unfitted GBDT ranks by
        its fallback feature."""
        if self.booster is None:
            return ByFeature(self.fallback).score(c)
        out = np.full(c.mask.shape, -np.inf)
        out[c.mask] = self.booster.predict(c.columns(self.features)[c.mask],  # the real candidates only
                                           num_threads=self.params.get("num_threads", 0))
        return out

    def importance(self) -> dict[str, float]:
        """Share of the total gain of each feature's splits."""
        gain = self.booster.feature_importance("gain") if self.booster is not None else np.zeros(len(self.features))
        return dict(zip(self.features, (gain / max(gain.sum(), 1e-12)).tolist(), strict=True))

    def state(self) -> dict:
        """What a checkpoint keeps (strings and numbers only: it loads with weights_only=True)."""
        return {"kind": self.kind, "features": list(self.features), "params": dict(self.params), "model": self.model,
                "fallback": self.fallback}

    @classmethod
    def from_state(cls, state: dict) -> GBDT:
        return cls(tuple(state["features"]), dict(state["params"]), state.get("model"),
                   state.get("fallback", RankConfig.by))


Ranker = GBDT | ByFeature
RANKERS = {GBDT.kind: GBDT, ByFeature.kind: ByFeature}


def load_ranker(state: dict) -> Ranker:
    """A ranker from its saved state."""
    kind = state.get("kind")
    if kind == "blend":
        raise ValueError("its ranking stage is the retired MLP blend; train the run again")
    if kind not in RANKERS:
        raise ValueError(f"unknown ranker kind {kind!r} in the checkpoint; known: {sorted(RANKERS)}")
    unknown = sorted(set(state.get("features") or [state.get("feature"), state.get("then")]) - {None, *FEATURES})
    if unknown:
        raise ValueError(f"its ranker reads feature(s) {unknown} that no longer exist; train the run again")
    return RANKERS[kind].from_state(state)


def ranker_features(cfg: RankConfig) -> tuple[str, ...]:
    """The features a ranker reads: FEATURES, without the source ranks unless rank.source_features, without
    rank.drop_features."""
    unknown = set(cfg.drop_features) - set(FEATURES)
    if unknown:
        raise ValueError(f"rank.drop_features: unknown {sorted(unknown)}; features are {list(FEATURES)}")
    drop = {*cfg.drop_features, *(() if cfg.source_features else SOURCE_FEATURES)}
    return tuple(f for f in FEATURES if f not in drop)


def make_ranker(cfg: RankConfig) -> Ranker:
    """An unfitted ranker as configured (`rank.model`)."""
    if cfg.model == "by_feature":
        return ByFeature(cfg.by)
    return GBDT(ranker_features(cfg), {"objective": cfg.objective, "num_iterations": cfg.trees,
                                       "learning_rate": cfg.learning_rate, "num_leaves": cfg.num_leaves,
                                       "min_data_in_leaf": cfg.min_data_in_leaf,
                                       "feature_fraction": cfg.feature_fraction,
                                       "negative_share": cfg.negative_share, "num_threads": cfg.threads,
                                       "seed": cfg.seed},
                fallback=cfg.by)


def single_source(cfg: RankConfig) -> ByFeature:
    """The best single source as a ranker: the user's tracks by re-listen score, the rest by recent listeners, as
    the re-listen baseline ranks them (`rank.fallback_by`)."""
    return ByFeature(cfg.fallback_by, "log_popularity")


def fit(c: Candidates, gain: np.ndarray, cfg: RankConfig) -> Ranker:
    """The configured ranker fitted on candidates and their window gains."""
    return make_ranker(cfg).fit(c, gain)


def crossfit(c: Candidates, gain: np.ndarray, cfg: RankConfig, k: int) -> np.ndarray:
    """(users, k) validation lists that are out of sample: each half of the users is ranked by a ranker fitted on
    the other half."""
    return crossfit_with(c, gain, lambda c, gain: fit(c, gain, cfg), k)


def crossfit_with(c: Candidates, gain: np.ndarray, fit: Callable[[Candidates, np.ndarray], Ranker],
                  k: int) -> np.ndarray:
    """`crossfit` with any ranker: `fit(candidates, gain)` returns something with `score(candidates)`."""
    recs = np.empty((len(c.items), k), dtype=np.int64)
    half = np.arange(len(c.items)) % 2 == 0
    for part in (half, ~half):
        other = fit(c.rows(~part), gain[~part])
        recs[part] = top_k(c.rows(part), other.score(c.rows(part)), k)[0]
    return recs


def top_k(c: Candidates, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, k) best candidates by `scores` and their scores; PAD / -inf after a user's last real candidate."""
    # ties (a GBDT's scores are piecewise constant) go to the lower item id, not to the candidates' order, so a
    # user decoded alone and in a batch get the same list
    top = np.lexsort((np.where(c.mask, c.items, np.iinfo(np.int64).max), -scores), axis=1)[:, :k]
    return np.take_along_axis(np.where(c.mask, c.items, PAD), top, 1), np.take_along_axis(scores, top, 1)
