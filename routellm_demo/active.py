"""Active labelling: which prompt of a pool the arena should ask about next (issue 18, part 2).

Why: a team collecting labels has more prompts than voters. A vote on a prompt the router already
routes confidently teaches it little; a vote where the router sits on the fence (its score near the
routing cut) or where the routers disagree can flip a decision. So the next prompt is drawn from the
pool with probability rising with that *priority*, never by a pure arg-max: with probability
``epsilon`` a pick is uniform, and the rest are sampled proportional to ``priority ** power``, so every
prompt keeps a chance and the labels stay representative of the pool (a router fitted on votes
chosen only at its own boundary would learn a biased picture of the domain).

Priorities are read from *ranks within the pool*, not raw scores: sw_ranking's probabilities hug the
base rate and the classifier's spread out, so "near 0.5" means different things; a rank says where a
prompt sits against the cut that sends a given share of the pool to the strong model.

- :func:`uncertainty`: 1 at the cut (default: the pool's median, the cut that sends half to strong;
  or the rank of a given score threshold), falling linearly to 0 at the pool's extremes.
- :func:`disagreement`: spread of the routers' rank percentiles per prompt (scaled to [0, 1]).
- :func:`choose`: the epsilon-mixed sampling, without replacement.
- :func:`pool_priority`: the priority of a pool's prompts under a :class:`~routellm_demo.router_set.RouterSet`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

DEFAULT_EPSILON = 0.1  # share of picks drawn uniformly from the pool
DEFAULT_POWER = 2.0  # sharpness of the priority sampling (0: uniform)


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


def pool_priority(routers, names: Sequence[str], embeddings: np.ndarray, prompts: Sequence[str],
                  threshold: float | None = None) -> np.ndarray:
    """The priority of a pool's prompts (e.g. the routing log's, or an uploaded file's) under the
    served routers ``names`` of a :class:`~routellm_demo.router_set.RouterSet`."""
    scores = {n: np.asarray(routers.score(n, embeddings, list(prompts)), dtype=np.float64) for n in names}
    return priority(scores, threshold)


def next_prompts(routers, names: Sequence[str], embeddings: np.ndarray, prompts: Sequence[str], k: int,
                 rng: np.random.Generator, *, threshold: float | None = None, epsilon: float = DEFAULT_EPSILON,
                 power: float = DEFAULT_POWER) -> np.ndarray:
    """Indices of the ``k`` pool prompts to ask about next (what the arena's "Try one" would offer)."""
    prio = pool_priority(routers, names, embeddings, prompts, threshold)
    return choose(prio, k, rng, epsilon=epsilon, power=power)
