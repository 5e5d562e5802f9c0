"""A stacked ensemble of routers, with a calibrated output.

Why: sw_ranking (local, nearest battles), mf and the classifier (global, learned on embeddings) make
different mistakes; combining them is cheap. Their raw scores live on different scales (sw_ranking's
BT probabilities hug the base rate, the classifier's spread out), so averaging them would let the
widest one dominate. Instead each member's *out-of-fold* logit on the training prompts is standardised
(within each inner fold, so one fold's model offset cannot pose as signal) and a small logistic
regression learns the weights on the real targets, so the output is a calibrated P(strong beats weak). Out-of-fold matters: in-sample, sw_ranking finds each training
prompt's own battle and would look perfect.

``fit(battles, groups=...)`` takes optional group labels (e.g. MMLU subjects) for the inner folds, so
the weights reflect how each member does on *new kinds* of prompts, not on near-copies.
"""

from __future__ import annotations

import numpy as np

from routellm_demo.battles import Battles
from routellm_demo.routers.base import Router
from routellm_demo.routers.numeric import sigmoid

DEFAULT_MEMBERS = (("sw_ranking", {}), ("mf", {}), ("classifier", {}))
_CLIP = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _CLIP, 1 - _CLIP)
    return np.log(p / (1 - p))


def inner_folds(n: int, k: int, groups=None, seed: int = 0) -> np.ndarray:
    """Fold per battle: whole groups per fold when groups are given, else a seeded random split."""
    rng = np.random.default_rng(seed)
    if groups is None:
        return rng.permutation(np.arange(n) % k)
    labels, inverse = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    if len(labels) < k:
        return rng.permutation(np.arange(n) % k)
    fold_of_label = rng.permutation(np.arange(len(labels)) % k)
    return fold_of_label[inverse.ravel()]


def fit_stack(z: np.ndarray, target: np.ndarray, l2: float = 1.0, steps: int = 50) -> tuple[np.ndarray, float]:
    """Logistic regression with soft targets (ties = 0.5) by Newton's method: (weights, bias)."""
    n, m = z.shape
    x = np.column_stack([z, np.ones(n)])
    w = np.zeros(m + 1)
    reg = np.full(m + 1, l2)
    reg[-1] = 0.0  # the bias is not shrunk
    for _ in range(steps):
        p = sigmoid(x @ w)
        grad = x.T @ (p - target) + reg * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(reg) + 1e-9 * np.eye(m + 1)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w[:-1], float(w[-1])


class EnsembleRouter(Router):
    """Stacked routers: standardised out-of-fold member logits -> logistic regression -> P(strong wins)."""

    name = "ensemble"

    def __init__(self, members=DEFAULT_MEMBERS, inner_folds: int = 3, l2: float = 1.0, random_state: int = 0):
        self.members = members
        self.inner_folds = inner_folds
        self.l2 = l2
        self.random_state = random_state

    def get_params(self) -> dict:
        return {"members": [[n, dict(p)] for n, p in self.members], "inner_folds": self.inner_folds,
                "l2": self.l2, "random_state": self.random_state}

    def _make(self, i: int):
        from routellm_demo.routers import make_router

        name, params = self.members[i]
        return make_router(name, **dict(params))

    def fit(self, battles: Battles, groups=None) -> "EnsembleRouter":
        if not self.members:
            raise ValueError("an ensemble needs at least one member router")
        if battles.embeddings is None or len(battles) == 0:
            raise ValueError("the ensemble needs battles with prompt embeddings")
        target = battles.strong_outcome()
        sw = ~np.isnan(target)  # stacking learns on strong-vs-weak battles only
        if sw.sum() < 2 * self.inner_folds:
            raise ValueError(f"too few strong-vs-weak battles ({int(sw.sum())}) for {self.inner_folds} inner folds")
        folds = inner_folds(len(battles), self.inner_folds, groups, self.random_state)
        z = np.zeros((len(battles), len(self.members)))
        for f in range(self.inner_folds):
            test = folds == f
            train, held_out = battles.subset(~test), battles.subset(test)
            for j in range(len(self.members)):
                z[test, j] = _logit(self._make(j).fit(train).win_probability(held_out.embeddings, held_out.prompts))
        # Centre each member within each inner fold: every fold's models have their own offset (with
        # grouped folds, anti-correlated with the held-out base rate), which must not set the weights.
        centred = z.copy()
        for f in range(self.inner_folds):
            m = (folds == f) & sw
            if m.any():
                centred[folds == f] -= z[m].mean(axis=0)
        self.mean_ = z[sw].mean(axis=0)
        self.scale_ = np.maximum(centred[sw].std(axis=0), 1e-6)
        self.weights_, self.bias_ = fit_stack(centred[sw] / self.scale_, target[sw], self.l2)
        self.members_ = [self._make(j).fit(battles) for j in range(len(self.members))]
        self.n_battles_ = len(battles)
        return self

    def member_logits(self, embeddings: np.ndarray, prompts=None) -> np.ndarray:
        return np.column_stack([_logit(m.win_probability(embeddings, prompts)) for m in self.members_])

    def win_probability(self, embeddings: np.ndarray, prompts=None) -> np.ndarray:
        z = (self.member_logits(embeddings, prompts) - self.mean_) / self.scale_
        return sigmoid(z @ self.weights_ + self.bias_)

    def info(self) -> dict:
        names = [n for n, _ in self.members]
        weights = dict(zip(names, np.round(getattr(self, "weights_", np.full(len(names), np.nan)), 4).tolist()))
        return {**super().info(), "members": names, "weights": weights}
