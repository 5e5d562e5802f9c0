"""A ridge regression on the arena's votes alone, blended into a router's score where the votes are.

Why (issue 18): a global fit over ~11,000 stored battles cannot learn a new domain's ranking from its 200
votes, weighted or not; the classifier ranked moral_disputes at .44 before and after them. A domain's own
labels can: cross-validated inside the domain, a ridge on 200 of its prompts' vectors ranks the rest at .65
(``benchmarks/vote_ceiling.py``). So the votes get a small model of their own, and it speaks only where it
knows something:

- the *gate*: the share of votes among a prompt's ``neighbours`` most similar battles (the store's, stood
  for by a sample of its distinct prompts, and the votes), full from ``share`` on, as sw_ranking's vote gate:
  far from the votes a prompt keeps the router's score;
- the *reach*: a linear fit extrapolates, so near the votes' region but off their span (a word problem
  beside psychology vignettes) it is trusted in full only up to the ``reach`` quantile of the voted prompts'
  own leverage, and not at all from twice that;
- the ridge's penalty is the one of ``ALPHAS`` with the least leave-one-out error on the votes;
- the ridge may read more than the vector (``inputs``: the classifier adds an open prompt's text counts,
  which lift a word problem's ranking and put it off a subject's votes' span); the gate always compares the
  vectors;
- the ridge speaks on the router's scale: its predictions at the votes are matched, quantile to quantile, to
  the router's scores there. A heavily penalised ridge varies far less than the router, so blended raw it would
  leave the router's ranking in charge wherever the gate is below 1 (moral_disputes stayed at .45).

``benchmarks/vote_ridge.py`` measures it on the protocol (the voted domain, and a domain that got none).
"""

from __future__ import annotations

import numpy as np

ALPHAS = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
NEIGHBOURS = 50
SHARE = 0.1
REACH = 0.8
MIN_VOTES = 20  # distinct voted prompts; fewer teach a ridge nothing but their mean
REFERENCE_ROWS = 4096  # the store's distinct prompts the gate compares with (a sample, each standing for its share)
_BLOCK = 1024  # queries scored at once (bounds the similarity matrix)


def loo_error(xc: np.ndarray, yc: np.ndarray, alpha: float) -> float:
    """Mean squared leave-one-out error of a ridge with an unpenalised intercept on centred ``xc``, ``yc``, in
    closed form (each residual over one minus its leverage), from the hat matrix's diagonal and its product with
    y: never the n x n matrix, so thousands of votes cost what a few hundred do."""
    inverse = np.linalg.inv(xc.T @ xc + alpha * np.eye(xc.shape[1]))
    fitted = xc @ (inverse @ (xc.T @ yc))
    leverage = ((xc @ inverse) * xc).sum(axis=1) + 1.0 / len(yc)  # + the intercept's share
    return float(np.mean(((yc - fitted) / np.maximum(1.0 - leverage, 1e-9)) ** 2))


class VoteRidge:
    """Fit on the voted prompts' vectors and mean outcomes (1 strong win, 0.5 tie, 0 weak win) and the store's
    distinct prompt vectors; :meth:`blend` moves a router's scores toward the ridge's where the votes are."""

    def __init__(self, neighbours: int = NEIGHBOURS, share: float = SHARE, reach: float = REACH,
                 reference_rows: int = REFERENCE_ROWS, random_state: int = 0):
        self.neighbours = neighbours
        self.share = share
        self.reach = reach
        self.reference_rows = reference_rows
        self.random_state = random_state

    def fit(self, votes: np.ndarray, outcomes: np.ndarray, store: np.ndarray,
            scores: np.ndarray | None = None, inputs: np.ndarray | None = None) -> "VoteRidge":
        """``votes``: the voted prompts' vectors (the gate's); ``scores``: the router's scores at them, the
        scale :meth:`blend` puts the ridge on (None: the ridge's own, an expected outcome); ``inputs``: what
        the ridge regresses on at them, one row a voted prompt (None: the vectors)."""
        votes = np.asarray(votes, dtype=np.float64)
        regressors = votes if inputs is None else np.asarray(inputs, dtype=np.float64)
        outcomes = np.asarray(outcomes, dtype=np.float64)
        if len(votes) < 2 or len(votes) != len(outcomes) or len(regressors) != len(votes):
            raise ValueError(f"a vote ridge needs at least 2 voted prompts with an outcome (and inputs) each, "
                             f"got {len(votes)}")
        self.x_mean_ = regressors.mean(axis=0)
        self.y_mean_ = float(outcomes.mean())
        xc, yc = regressors - self.x_mean_, outcomes - self.y_mean_
        self.alpha_ = min(ALPHAS, key=lambda alpha: loo_error(xc, yc, alpha))
        self.inverse_ = np.linalg.inv(xc.T @ xc + self.alpha_ * np.eye(regressors.shape[1]))
        self.coef_ = self.inverse_ @ xc.T @ yc
        self.limit_ = max(float(np.quantile(self._leverage(regressors), self.reach)), 1e-12)
        store = np.asarray(store, dtype=np.float32)
        rows = np.random.default_rng(self.random_state).permutation(len(store))[: self.reference_rows]
        self.reference_ = store[np.sort(rows)]
        self.reference_mass_ = len(store) / max(1, len(self.reference_))
        self.votes_ = votes.astype(np.float32)
        self.scale_from_ = self.scale_to_ = None
        if scores is not None:
            scores = np.asarray(scores, dtype=np.float64)
            if len(scores) != len(votes):
                raise ValueError(f"{len(scores)} router scores for {len(votes)} voted prompts")
            self.scale_from_, self.scale_to_ = np.sort(self.predict(regressors)), np.sort(scores)
        return self

    @property
    def n_inputs_(self) -> int:
        """How many columns the ridge reads (the vectors' width when fitted on them alone)."""
        return len(self.x_mean_)

    def _leverage(self, x: np.ndarray) -> np.ndarray:
        xc = np.asarray(x, dtype=np.float64) - self.x_mean_
        return ((xc @ self.inverse_) * xc).sum(axis=1)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The ridge's expected outcome per prompt (``x``: its inputs), in [0, 1]."""
        return np.clip((np.asarray(x, dtype=np.float64) - self.x_mean_) @ self.coef_ + self.y_mean_, 0.0, 1.0)

    def trust(self, x: np.ndarray) -> np.ndarray:
        """1 within the votes' span (leverage up to ``limit_``), falling linearly to 0 at twice it."""
        return np.clip(2.0 - self._leverage(x) / self.limit_, 0.0, 1.0)

    def gate(self, x: np.ndarray) -> np.ndarray:
        """Share of votes among each prompt's ``neighbours`` most similar battles, over ``share``, capped at 1;
        a reference row stands for ``reference_mass_`` of the store's prompts."""
        x = np.asarray(x, dtype=np.float32)
        k = int(self.neighbours)
        mass = np.concatenate([np.ones(len(self.votes_)), np.full(len(self.reference_), self.reference_mass_)])
        out = np.empty(len(x))
        for start in range(0, len(x), _BLOCK):
            sims = np.hstack([x[start:start + _BLOCK] @ self.votes_.T, x[start:start + _BLOCK] @ self.reference_.T])
            top = min(k, sims.shape[1])  # each row weighs at least 1: the k most similar always reach k battles
            near = np.argpartition(-sims, top - 1, axis=1)[:, :top]
            near = np.take_along_axis(near, np.argsort(-np.take_along_axis(sims, near, axis=1), axis=1), axis=1)
            m = mass[near]
            taken = np.minimum(m, np.maximum(0.0, k - (np.cumsum(m, axis=1) - m)))  # mass counted up to k battles
            out[start:start + _BLOCK] = (taken * (near < len(self.votes_))).sum(axis=1) / taken.sum(axis=1)
        return np.clip(out / self.share, 0.0, 1.0)

    def on_router_scale(self, x: np.ndarray) -> np.ndarray:
        """The ridge's prediction mapped to the router's scores at the votes (quantile matching: monotone, so
        the ridge's ranking is kept); its own prediction when fitted without them."""
        predicted = self.predict(x)
        return predicted if self.scale_from_ is None else np.interp(predicted, self.scale_from_, self.scale_to_)

    def blend(self, scores: np.ndarray, x: np.ndarray, inputs: np.ndarray | None = None) -> np.ndarray:
        """``(1 - w) * scores + w * ridge`` with w = gate (on the vectors ``x``) x trust (on the ridge's
        ``inputs``, the vectors by default): the router's score far from the votes."""
        inputs = x if inputs is None else inputs
        w = self.gate(x) * self.trust(inputs)
        return (1.0 - w) * np.asarray(scores, dtype=np.float64) + w * self.on_router_scale(inputs)

    # -- persistence (arrays for a router's checkpoint) -------------------------------------------------
    ARRAYS = ("x_mean", "y_mean", "coef", "inverse", "limit", "alpha", "reference", "reference_mass", "votes",
              "settings", "scale_from", "scale_to")

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        settings = np.array([self.neighbours, self.share, self.reach, self.reference_rows, self.random_state],
                            dtype=np.float64)
        values = {"x_mean": self.x_mean_, "y_mean": np.float64(self.y_mean_), "coef": self.coef_,
                  "inverse": self.inverse_, "limit": np.float64(self.limit_), "alpha": np.float64(self.alpha_),
                  "reference": self.reference_, "reference_mass": np.float64(self.reference_mass_),
                  "votes": self.votes_, "settings": settings,
                  "scale_from": np.zeros(0) if self.scale_from_ is None else self.scale_from_,
                  "scale_to": np.zeros(0) if self.scale_to_ is None else self.scale_to_}
        return {prefix + name: np.asarray(values[name]) for name in self.ARRAYS}

    @classmethod
    def from_arrays(cls, arrays, prefix: str) -> "VoteRidge | None":
        """The ridge saved under ``prefix``, or None when the checkpoint holds none."""
        if prefix + "coef" not in arrays:
            return None
        neighbours, share, reach, reference_rows, random_state = arrays[prefix + "settings"]
        ridge = cls(int(neighbours), float(share), float(reach), int(reference_rows), int(random_state))
        ridge.x_mean_, ridge.coef_, ridge.inverse_ = (arrays[prefix + n] for n in ("x_mean", "coef", "inverse"))
        ridge.y_mean_, ridge.limit_, ridge.alpha_, ridge.reference_mass_ = (
            float(arrays[prefix + n]) for n in ("y_mean", "limit", "alpha", "reference_mass"))
        ridge.reference_, ridge.votes_ = arrays[prefix + "reference"], arrays[prefix + "votes"]
        scale_from, scale_to = arrays[prefix + "scale_from"], arrays[prefix + "scale_to"]
        ridge.scale_from_, ridge.scale_to_ = (scale_from, scale_to) if len(scale_from) else (None, None)
        return ridge
