"""Active labelling: which prompt of a pool the arena should ask about next (issue 18, part 2).

Why: a team collecting labels has more prompts than voters. What learns a new domain from its votes is a
model of the votes themselves (the classifier's votes' ridge, sw_ranking's vote gate: both read the votes
near a prompt), so a vote teaches most where the votes so far say least: on a prompt unlike any voted one.
:func:`coverage_gap` measures that as the prompt's *leverage* under a ridge fitted on the voted prompts'
vectors (the ridge's predictive variance, in units of its noise): small on a voted prompt, large off the
votes' span. The arena's order (:func:`next_prompts`, ``simulate-votes --order active``) draws by it.

The first rule tried drew by the router's *uncertainty* (its score near the routing cut) or the routers'
*disagreement* (:func:`uncertainty`, :func:`disagreement`, :func:`priority`; ``--order uncertain``). With
the router held still over many seeds (LEARNING.md, "Active order: what the votes have not covered"), it taught
no more than random order, while the coverage gap ranked the rest of the domain better after 200 votes on
two of the issue's three domains. A score near the cut is a poor guide on a domain the router has not
learned yet: there its scores are the ones in doubt.

Priorities are read from *ranks within the pool*, not raw values (sw_ranking's probabilities hug the base
rate, the classifier's spread out; a leverage's scale depends on the penalty), and the next prompt is never
an arg-max: with probability ``epsilon`` a pick is uniform, and the rest are sampled proportional to
``rank ** power``, so every prompt keeps a chance and the labels stay representative of the pool.

- :func:`coverage_gap`: the leverage of each candidate under the votes' ridge (all 1 before any vote).
- :func:`uncertainty`: 1 at the cut (default: the pool's median, the cut that sends half to strong;
  or the rank of a given score threshold), falling linearly to 0 at the pool's extremes.
- :func:`disagreement`: spread of the routers' rank percentiles per prompt (scaled to [0, 1]).
- :func:`choose`: the epsilon-mixed sampling, without replacement.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

DEFAULT_EPSILON = 0.1  # share of picks drawn uniformly from the pool
DEFAULT_POWER = 2.0  # sharpness of the priority sampling (0: uniform)
COVERAGE_ALPHA = 10.0  # the votes' ridge penalty in the coverage gap (unit-norm prompt vectors)


def rank_percentile(scores) -> np.ndarray:
    """Each score's mid-rank in the pool, in [0, 1] (ties share their mean rank)."""
    s = np.asarray(scores, dtype=np.float64)
    n = len(s)
    if n == 0:
        return np.zeros(0)
    if n == 1:
        return np.full(1, 0.5)
    order = np.argsort(s, kind="stable")
    ranks = np.empty(n)
    ranks[order] = np.arange(n, dtype=np.float64)
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    mean_rank = np.bincount(inverse, weights=ranks) / counts  # ties: their mean rank
    return mean_rank[inverse] / (n - 1)


def uncertainty(scores, threshold: float | None = None) -> np.ndarray:
    """Closeness of each prompt's rank to the routing cut: 1 at the cut, 0 at the farther extreme.

    ``threshold``: a score threshold (the app's), placed at its rank in the pool; None = the pool's
    median (the cut that routes half the pool to the strong model)."""
    s = np.asarray(scores, dtype=np.float64)
    u = rank_percentile(s)
    cut = 0.5 if threshold is None or len(s) == 0 else float(np.mean(s < threshold))
    reach = max(cut, 1.0 - cut)
    return np.clip(1.0 - np.abs(u - cut) / reach, 0.0, 1.0)


def disagreement(score_sets: Sequence) -> np.ndarray:
    """How much routers disagree on a prompt: the standard deviation of their rank percentiles, over
    its largest possible value (0.5), so 1 = two routers put it at opposite ends of the pool."""
    ranks = np.vstack([rank_percentile(s) for s in score_sets])
    if len(ranks) < 2:
        raise ValueError("disagreement needs the scores of at least two routers")
    return np.clip(ranks.std(axis=0) / 0.5, 0.0, 1.0)


def priority(score_sets: Mapping[str, np.ndarray] | Sequence, threshold: float | None = None) -> np.ndarray:
    """One router: its :func:`uncertainty`. Several: the mean of their uncertainties and their
    disagreement (a prompt teaches when the routers are unsure, or sure of different things)."""
    sets = list(score_sets.values()) if isinstance(score_sets, Mapping) else list(score_sets)
    if not sets:
        raise ValueError("no scores to rank the pool by")
    unsure = np.mean([uncertainty(s, threshold) for s in sets], axis=0)
    if len(sets) == 1:
        return unsure
    return 0.5 * (unsure + disagreement(sets))


def choose(prio, k: int, rng: np.random.Generator, *, epsilon: float = DEFAULT_EPSILON,
           power: float = DEFAULT_POWER) -> np.ndarray:
    """``k`` distinct indices into the pool: each pick uniform with probability ``epsilon``, else drawn
    proportional to ``prio ** power`` among the prompts not picked yet (uniform if those are all 0)."""
    p = np.asarray(prio, dtype=np.float64)
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    if np.any(~np.isfinite(p)) or np.any(p < 0):
        raise ValueError("priorities must be finite and non-negative")
    k = min(int(k), len(p))
    weight = p ** float(power)
    free = np.ones(len(p), dtype=bool)
    picked = []
    for _ in range(k):
        w = np.where(free, weight, 0.0)
        if rng.random() < epsilon or w.sum() <= 0.0:
            w = free.astype(np.float64)
        i = int(rng.choice(len(p), p=w / w.sum()))
        picked.append(i)
        free[i] = False
    return np.array(picked, dtype=np.int64)


def coverage_gap(voted, candidates, alpha: float = COVERAGE_ALPHA) -> np.ndarray:
    """How far each candidate lies outside what the votes cover: its leverage under a ridge (penalty
    ``alpha``, unpenalised intercept) fitted on the voted prompts' vectors, ``(x - m)' (Xc'Xc + alpha I)^-1
    (x - m)`` with ``m`` the votes' mean and ``Xc`` the centred votes: the ridge's predictive variance over
    its noise's. 1 for every candidate before any vote (nothing is covered)."""
    candidates = np.asarray(candidates, dtype=np.float64)
    voted = np.asarray(voted, dtype=np.float64).reshape(-1, candidates.shape[1])  # no vote: 0 rows
    if len(voted) == 0:
        return np.ones(len(candidates))
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    centred = voted - voted.mean(axis=0)
    inverse = np.linalg.inv(centred.T @ centred + alpha * np.eye(voted.shape[1]))
    offset = candidates - voted.mean(axis=0)
    return ((offset @ inverse) * offset).sum(axis=1)


def next_prompts(voted, candidates, k: int, rng: np.random.Generator, *, epsilon: float = DEFAULT_EPSILON,
                 power: float = DEFAULT_POWER) -> np.ndarray:
    """Indices of the ``k`` candidates to ask about next: drawn by the rank of their :func:`coverage_gap`
    (``voted``, ``candidates``: prompt vectors), epsilon-mixed (:func:`choose`)."""
    return choose(rank_percentile(coverage_gap(voted, candidates)), k, rng, epsilon=epsilon, power=power)
