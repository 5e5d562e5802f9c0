"""The anomalous-voter check: a visitor whose votes disagree with the consensus of OTHER visitors on
similar prompts far beyond chance.

Why a background check and not a write-time flag: it needs a visitor's votes together, and the other
visitors' votes around them, which a single vote does not have. It runs over the clean arena votes
whose visitor is still known (``vote_visitors``, within the retention period), in the background every
``arena.anomaly_check_every`` votes; the votes of a flagged visitor get the flag ``anomalous`` and are
forgotten by the routers and the ratings the way an admin delete is (the flag is a change the change
feed carries to every process). Votes from trusted sources are never flagged.

The test per visitor: for each of its decisive votes (strong or weak won), the consensus ``c`` is the
share of strong wins among the other visitors' decisive votes on the ``k`` most similar prompts
(cosine >= ``min_similarity``, at least ``min_neighbours`` of them, and leaning one way by at least
``min_lean``). A voter like the others disagrees with the consensus with probability ``min(c, 1-c)``;
the visitor is flagged when it disagrees ``z`` standard deviations more often than that (a normal
approximation of the sum of those Bernoulli trials) over at least ``min_votes`` such votes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from routellm_demo.hygiene import ANOMALOUS  # noqa: F401 (the flag this check sets)

# "Similar prompts": as rare among the shared data's prompt pairs (0.7%) as a cosine of 0.75 was under
# full MiniLM; the two-layer encoder's cosines sit closer together (routellm_demo/embeddings.py).
MIN_SIMILARITY = 0.94


@dataclass(frozen=True)
class VoterScore:
    """One visitor's agreement with the others: judged votes, disagreements, expected ones, z."""

    visitor: str
    votes: int
    disagreements: int
    expected: float
    z: float


def strong_outcome(row: dict) -> float | None:
    """1 when the strong model won, 0 when the weak one did, None for a tie."""
    if row["winner"] not in ("model_a", "model_b") or row["strong_side"] not in ("a", "b"):
        return None
    return 1.0 if row["winner"] == f"model_{row['strong_side']}" else 0.0


def score_voters(rows: list[dict], embeddings: np.ndarray, *, k: int = 20, min_similarity: float = MIN_SIMILARITY,
                 min_neighbours: int = 3, min_lean: float = 0.2) -> list[VoterScore]:
    """Each visitor's disagreement with the consensus on similar prompts (``rows``: votes with
    ``visitor``, ``winner``, ``strong_side``; ``embeddings``: their prompts' unit vectors, in order)."""
    outcome = np.array([np.nan if (o := strong_outcome(r)) is None else o for r in rows])
    decisive = ~np.isnan(outcome)
    visitors = np.array([r["visitor"] for r in rows])
    embeddings = np.asarray(embeddings, dtype=np.float32)
    per: dict[str, list[tuple[float, float]]] = {}
    for i in np.flatnonzero(decisive):
        sims = embeddings @ embeddings[i]  # one row at a time: memory stays O(n)
        others = decisive & (visitors != visitors[i]) & (sims >= min_similarity)
        idx = np.flatnonzero(others)
        if len(idx) < min_neighbours:
            continue
        idx = idx[np.argsort(-sims[idx])[:k]]
        c = (float(outcome[idx].sum()) + 1.0) / (len(idx) + 2.0)  # Laplace: a unanimous consensus is not certain
        if abs(c - 0.5) < min_lean:
            continue
        p = min(c, 1.0 - c)
        disagree = float(outcome[i] != (1.0 if c > 0.5 else 0.0))
        per.setdefault(visitors[i], []).append((disagree, p))
    out = []
    for visitor, trials in per.items():
        d = sum(t[0] for t in trials)
        e = sum(t[1] for t in trials)
        v = sum(t[1] * (1 - t[1]) for t in trials)
        out.append(VoterScore(visitor, len(trials), int(d), e, (d - e) / math.sqrt(v) if v > 0 else 0.0))
    return out


def anomalous_voters(scores: list[VoterScore], *, z: float = 3.0, min_votes: int = 10) -> list[str]:
    """The visitors whose disagreement is at least ``z`` standard deviations beyond chance."""
    return [s.visitor for s in scores if s.votes >= min_votes and s.z >= z]


__all__ = ["ANOMALOUS", "VoterScore", "anomalous_voters", "score_voters", "strong_outcome"]
