"""The one interface every router shares.

A router is fitted on :class:`~routellm_demo.battles.Battles` and gives, for a batch of L2-normalised
prompt embeddings (and the prompts' texts, which a router may also read), the probability that the
strong model beats the weak one. The decision is always
``strong if p >= threshold`` and lives here only, so the app, the server, the CLI and the evaluation
decide alike. scikit-learn manners: ``__init__`` stores hyperparameters only, ``fit`` returns self,
learned state lives in attributes ending in ``_``.
"""

from __future__ import annotations

import inspect

import numpy as np

from routellm_demo.battles import Battles


class Router:
    """Base class: subclasses implement ``fit`` and ``win_probability``."""

    name: str = "base"

    def get_params(self) -> dict:
        """The hyperparameters, read back by the names ``__init__`` takes (as scikit-learn does), so
        ``type(r)(**r.get_params())`` is an unfitted copy and a checkpoint can record them."""
        names = [p.name for p in inspect.signature(type(self).__init__).parameters.values()
                 if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        return {k: getattr(self, k) for k in names}

    def fit(self, battles: Battles) -> "Router":
        raise NotImplementedError

    def win_probability(self, embeddings: np.ndarray, prompts=None) -> np.ndarray:
        """Strong-model win probability in [0, 1] for each row of ``embeddings`` (n, d) -> (n,).

        ``prompts``: the n texts the embeddings were made from; routers that read only the embedding
        ignore them, and callers that have the texts always pass them."""
        raise NotImplementedError

    def route(self, embeddings: np.ndarray, threshold: float, prompts=None) -> np.ndarray:
        """True where the strong model should answer."""
        return routes_to_strong(self.win_probability(embeddings, prompts), threshold)

    def info(self) -> dict:
        """What the app shows about this router (version, training-set size...)."""
        return {"name": self.name, "n_battles": int(getattr(self, "n_battles_", 0))}


def routes_to_strong(probability, threshold: float):
    """The routing rule, in one place."""
    return np.asarray(probability) >= threshold
