"""The Elo router: one global Bradley-Terry win probability, whatever the prompt.

It answers "how often does the strong model win overall", so at a threshold it sends either every
prompt or none to strong. It is the prompt-blind baseline a prompt-aware router has to beat.
"""

from __future__ import annotations

import numpy as np

from routellm_demo.battles import Battles
from routellm_demo.ratings import DEFAULT_L2, fit_bt, pair_counts, win_probability
from routellm_demo.routers.base import Router


class EloRouter(Router):
    """P(strong beats weak) from a penalised BT fit on all battles (all players, via transitivity)."""

    name = "elo"

    def __init__(self, l2: float = DEFAULT_L2):
        self.l2 = l2

    def fit(self, battles: Battles) -> "EloRouter":
        self.players_ = list(battles.players)
        self.counts_ = pair_counts(battles)
        self.n_battles_ = len(battles)
        return self._refit()

    def partial_fit(self, battles: Battles) -> "EloRouter":
        """Add new battles (a vote): their pair counts are folded in and the KxK fit redone."""
        if not hasattr(self, "counts_"):
            return self.fit(battles)
        index = {p: i for i, p in enumerate(self.players_)}
        for p in battles.players:
            if p not in index:
                index[p] = len(self.players_)
                self.players_.append(p)
        k = len(self.players_)
        counts = np.zeros((k, k))
        counts[: len(self.counts_), : len(self.counts_)] = self.counts_
        remap = np.array([index[p] for p in battles.players])
        new = Battles(self.players_, remap[battles.a], remap[battles.b], battles.outcome)
        self.counts_ = counts + pair_counts(new)
        self.n_battles_ += len(battles)
        return self._refit()

    def _refit(self) -> "EloRouter":
        self.beta_ = fit_bt(self.counts_, l2=self.l2)
        self.strong_win_probability_ = float(win_probability(self.beta_[0], self.beta_[1]))
        return self

    def win_probability(self, embeddings: np.ndarray, prompts=None) -> np.ndarray:
        n = np.atleast_2d(np.asarray(embeddings)).shape[0]
        return np.full(n, self.strong_win_probability_)

    def info(self) -> dict:
        return {
            **super().info(),
            **self.get_params(),
            "strong_win_probability": getattr(self, "strong_win_probability_", None),
            "players": len(getattr(self, "players_", [])),
        }
