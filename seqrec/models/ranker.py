"""The ranking stage over candidates: fitted on named feature columns, the window's gains and user groups,
scoring candidates by name, saved with the run.

`Blend` is a linear term plus a one-layer MLP on standardised features, trained as a listwise softmax over
each user's candidates with the window's gains as targets. `GBDT` is LightGBM over the same named columns (NaN
read as missing), pointwise on the gains or lambdarank over each user's candidates. Both implement `fit` / `score`
/ `state` and are found by their `kind` in `load_ranker`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from seqrec import PAD


@dataclass
class Candidates:
    """Per user (a group): candidate items (B, C), which are real (B, C), and named features (B, C, F)."""

    items: np.ndarray
    mask: np.ndarray
    x: np.ndarray
    names: tuple[str, ...]

    def columns(self, names: tuple[str, ...]) -> np.ndarray:
        """(B, C, len(names)) the named features, in that order."""
        missing = sorted(set(names) - set(self.names))
        if missing:
            raise ValueError(f"candidates lack feature(s) {missing}; they have {list(self.names)}")
        return self.x[..., [self.names.index(n) for n in names]]

    def rows(self, keep: np.ndarray) -> Candidates:
        return Candidates(self.items[keep], self.mask[keep], self.x[keep], self.names)

    @staticmethod
    def concat(parts: list[Candidates], names: tuple[str, ...]) -> Candidates:
        if not parts:
            return Candidates(np.zeros((0, 0), np.int64), np.zeros((0, 0), bool), np.zeros((0, 0, len(names)),
                              np.float32), names)
        return Candidates(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("items", "mask", "x")), names)


class Blend:
    """Linear term + one-layer GELU MLP over standardised features; scores are comparable within a user."""

    kind = "blend"

    def __init__(self, features: tuple[str, ...], hidden: int, params: dict[str, torch.Tensor] | None = None):
        self.features, self.hidden = tuple(features), hidden
        f = len(self.features)
        self.params = params or {"mu": torch.zeros(f), "sd": torch.ones(f), "w_lin": torch.zeros(f),
                                 "w1": torch.zeros(f, hidden), "b1": torch.zeros(hidden), "w2": torch.zeros(hidden)}

    @classmethod
    def by(cls, feature: str, hidden: int = 1) -> Blend:
        """A blend that ranks by one feature alone (e.g. the model's log-probability)."""
        blend = cls((feature,), hidden)
        blend.params["w_lin"][0] = 1.0
        return blend

    def _score(self, x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        z = (x - p["mu"]) / p["sd"]
        return z @ p["w_lin"] + torch.nn.functional.gelu(z @ p["w1"] + p["b1"]) @ p["w2"]

    def score(self, c: Candidates) -> np.ndarray:
        """(B, C) scores of the candidates; -inf where a slot is not a real candidate."""
        with torch.no_grad():
            s = self._score(torch.from_numpy(c.columns(self.features)).float(), self.params).numpy()
        return np.where(c.mask, s, -np.inf)

    def fit(self, c: Candidates, gain: np.ndarray, steps: int, lr: float, l2: float, seed: int = 0) -> Blend:
        """A new blend of the same features and size, maximising the listwise softmax likelihood of each user's
        window gains over their candidates. Plain torch: callable from Lightning's validation loop or anywhere."""
        with torch.inference_mode(False), torch.enable_grad():
            return self._fit(c, gain, steps, lr, l2, seed)

    def _fit(self, c: Candidates, gain: np.ndarray, steps: int, lr: float, l2: float, seed: int) -> Blend:
        g = torch.from_numpy(gain).float() * torch.from_numpy(c.mask)
        keep = (g.sum(1) > 0).numpy()  # users with nothing to find carry no signal
        m = torch.from_numpy(c.mask[keep])
        X, g = torch.from_numpy(c.columns(self.features)[keep]).float(), g[keep]
        if not len(X):
            return Blend.by("model_logp")
        f, h = len(self.features), self.hidden
        mu = (X * m[..., None]).sum((0, 1)) / m.sum()
        sd = (((X - mu) ** 2) * m[..., None]).sum((0, 1)).div(m.sum()).sqrt().clamp_min(1e-6)
        gen = torch.Generator().manual_seed(seed)
        p = {"mu": mu, "sd": sd, "w_lin": torch.zeros(f, requires_grad=True),
             "w1": (torch.randn(f, h, generator=gen) / f**0.5).requires_grad_(),
             "b1": torch.zeros(h, requires_grad=True), "w2": torch.zeros(h, requires_grad=True)}
        learned = [p["w_lin"], p["w1"], p["b1"], p["w2"]]
        opt = torch.optim.Adam(learned, lr=lr)
        target = g / g.sum(1, keepdim=True)
        for _ in range(steps):
            opt.zero_grad()
            s = self._score(X, p).masked_fill(~m, float("-inf"))
            nll = -(target * torch.log_softmax(s, dim=1).masked_fill(~m, 0)).sum(1).mean()
            (nll + l2 * (p["w_lin"].square().sum() + p["w1"].square().sum() + p["w2"].square().sum())).backward()
            opt.step()
        return Blend(self.features, h, {k: v.detach().clone() for k, v in p.items()})

    def state(self) -> dict:
        """What a checkpoint keeps (tensors, strings and numbers only: it loads with weights_only=True)."""
        return {"kind": self.kind, "features": list(self.features), "hidden": self.hidden,
                "params": {k: v.clone() for k, v in self.params.items()}}

    @classmethod
    def from_state(cls, state: dict) -> Blend:
        return cls(tuple(state["features"]), int(state["hidden"]), dict(state["params"]))


class GBDT:
    """LightGBM over named feature columns; scores are comparable within a user."""

    kind = "gbdt"

    def __init__(self, features: tuple[str, ...], params: dict, model: str | None = None):
        """`params`: LightGBM's, `num_iterations` (the number of trees) included."""
        self.features, self.params, self.model = tuple(features), dict(params), model
        self._booster = None

    def fit(self, c: Candidates, gain: np.ndarray, seed: int = 0) -> GBDT:
        """A new GBDT of the same features and parameters fitted on the real candidates of users who have any gain
        (the others carry no signal for a list)."""
        import lightgbm as lgb

        keep = (np.where(c.mask, gain, 0).sum(1) > 0)
        m = c.mask[keep]
        x = c.columns(self.features)[keep][m]  # (rows, F), user by user
        y = gain[keep][m]
        params = {**self.params, "seed": seed, "verbose": -1, "deterministic": True, "force_row_wise": True}
        share = params.pop("negative_share", 1.0)
        if params.get("objective") != "lambdarank" and share < 1.0:  # a pointwise fit needs no whole lists
            rows = (y > 0) | (np.random.default_rng(seed).random(len(y)) < share)
            x, y = x[rows], y[rows]
        if params.get("objective") == "lambdarank":
            y = np.rint(y * 4).astype(np.int32)  # relevance grades 0..4: the quarters
            params.setdefault("label_gain", list(range(5)))
            data = lgb.Dataset(x, y, group=m.sum(1), feature_name=list(self.features), free_raw_data=True)
        else:
            data = lgb.Dataset(x, y, feature_name=list(self.features), free_raw_data=True)
        if not len(y):
            return GBDT(self.features, self.params)
        booster = lgb.train(params, data)
        return GBDT(self.features, self.params, booster.model_to_string())

    @property
    def booster(self):
        if self._booster is None and self.model is not None:
            import lightgbm as lgb

            self._booster = lgb.Booster(model_str=self.model)
        return self._booster

    def score(self, c: Candidates) -> np.ndarray:
        """(B, C) scores of the candidates; -inf where a slot is not a real candidate. An unfitted GBDT ranks by
        the network's log-probability."""
        if self.booster is None:
            return Blend.by("model_logp").score(c)
        x = c.columns(self.features)
        s = self.booster.predict(x.reshape(-1, len(self.features)), num_threads=self.params.get("num_threads", 0))
        return np.where(c.mask, s.reshape(c.mask.shape), -np.inf)

    def importance(self) -> dict[str, float]:
        """Share of the total gain of each feature's splits."""
        gain = self.booster.feature_importance("gain") if self.booster is not None else np.zeros(len(self.features))
        return dict(zip(self.features, (gain / max(gain.sum(), 1e-12)).tolist(), strict=True))

    def state(self) -> dict:
        """What a checkpoint keeps (strings and numbers only: it loads with weights_only=True)."""
        return {"kind": self.kind, "features": list(self.features), "params": dict(self.params), "model": self.model}

    @classmethod
    def from_state(cls, state: dict) -> GBDT:
        return cls(tuple(state["features"]), dict(state["params"]), state.get("model"))


Ranker = Blend | GBDT
RANKERS = {Blend.kind: Blend, GBDT.kind: GBDT}


def load_ranker(state: dict) -> Ranker:
    """A ranker from its saved state."""
    kind = state.get("kind")
    if kind not in RANKERS:
        raise ValueError(f"unknown ranker kind {kind!r} in the checkpoint; known: {sorted(RANKERS)}")
    return RANKERS[kind].from_state(state)


def top_k(c: Candidates, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, k) best candidates by `scores` and their scores; PAD / -inf after a user's last real candidate."""
    # ties (a GBDT's scores are piecewise constant) go to the lower item id, not to the candidates' order, so a
    # user decoded alone and in a batch get the same list
    top = np.lexsort((np.where(c.mask, c.items, np.iinfo(np.int64).max), -scores), axis=1)[:, :k]
    return np.take_along_axis(np.where(c.mask, c.items, PAD), top, 1), np.take_along_axis(scores, top, 1)
