"""Bradley-Terry ratings ("arena Elo"), fitted on aggregated pair counts.

Model: P(i beats j) = sigmoid(beta_i - beta_j), beta = natural log-strengths. A tie counts as half a
win for each side, as in Chatbot Arena's ``compute_mle_elo``.

Why counts: the likelihood only depends on the K x K matrix ``W[i, j]`` = (weighted) wins of i over j,
so a refit after one new vote costs O(K^3), not O(n_battles). K is small (< 100).

Why a penalty: with lambda = ``l2`` > 0 we maximise

    sum_ij W[i, j] * log sigmoid(beta_i - beta_j)  -  lambda / 2 * ||beta||^2

which has a unique finite maximiser even when the battle graph is disconnected or one player never
loses (the plain MLE would run off to infinity). It is exactly scikit-learn's
``LogisticRegression(C=1/lambda, fit_intercept=False)`` on the raw battles, one row ``e_a - e_b`` per
battle with label "a won" and the battle's weight, a tie entered as two rows (a won / b won) of half
the weight. Because the likelihood is shift-invariant, the penalised optimum has mean(beta) = 0.
"""

from __future__ import annotations

import math

import numpy as np

from routellm_demo.battles import OUTCOME, STRONG, WEAK, Battles

DEFAULT_L2 = 1e-2  # the routers' fits: a weak prior, so thousands of battles speak for themselves
# The prior on each model's *shown* rating (the leaderboard, wherever it is shown: app, CLI, arena
# tally): a Gaussian on its log-strength with variance 1 / LEADERBOARD_L2 (1 sd = 245 Elo). With the
# routers' weak prior (1 sd = 1,700 Elo) one vote swung a new pair to 1340 vs 660; with this one it
# moves them about +-100, and a few dozen votes outweigh it.
LEADERBOARD_L2 = 0.5
ELO_SCALE = 400.0 / math.log(10.0)  # Elo points per unit of log-strength
ELO_CENTER = 1000.0


def pair_counts(battles: Battles, weights: np.ndarray | None = None) -> np.ndarray:
    """K x K matrix W: W[i, j] = weighted wins of player i over player j, a tie giving 0.5 to each."""
    k = len(battles.players)
    w = np.ones(len(battles)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(battles),):
        raise ValueError(f"{w.shape} weights for {len(battles)} battles")
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite and non-negative")
    a = battles.a.astype(np.int64)
    b = battles.b.astype(np.int64)
    wins_a = np.bincount(a * k + b, weights=w * battles.outcome, minlength=k * k)
    wins_b = np.bincount(b * k + a, weights=w * (1.0 - battles.outcome), minlength=k * k)
    return (wins_a + wins_b).reshape(k, k)


def win_probability(beta_i, beta_j):
    """P(i beats j) = sigmoid(beta_i - beta_j), written with tanh so it never overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * (np.asarray(beta_i) - np.asarray(beta_j))))


def _objective(counts: np.ndarray, beta: np.ndarray, l2: float) -> float:
    """Penalised log-likelihood; log sigmoid(x) = -log(1 + exp(-x)) computed stably."""
    diff = beta[:, None] - beta[None, :]
    return float(-(counts * np.logaddexp(0.0, -diff)).sum() - 0.5 * l2 * beta @ beta)


def fit_bt(
    counts: np.ndarray,
    l2: float = DEFAULT_L2,
    init: np.ndarray | None = None,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> np.ndarray:
    """Penalised Bradley-Terry log-strengths beta (K,) from a pair-count matrix, by damped Newton.

    ``init`` warm-starts Newton (e.g. from the unweighted fit) so a nearby refit takes 2-4 steps.
    ``l2 = 0`` is allowed for a connected graph without perfect separation (the shift is then fixed by
    mean(beta) = 0); otherwise the unpenalised MLE does not exist.
    """
    counts = np.asarray(counts, dtype=np.float64)
    k = counts.shape[0]
    if counts.shape != (k, k):
        raise ValueError(f"counts must be square, got {counts.shape}")
    if l2 < 0 or not math.isfinite(l2):
        raise ValueError(f"l2 must be finite and >= 0, got {l2}")
    beta = np.zeros(k) if init is None else np.array(init, dtype=np.float64)
    if beta.shape != (k,):
        raise ValueError(f"init has shape {beta.shape}, expected ({k},)")
    if k == 2 and l2 > 0 and np.isfinite(counts).all() and np.isfinite(beta).all():
        return _fit_pair(float(counts[0, 1]), float(counts[1, 0]), l2, float(beta[0] - beta[1]), tol, max_iter)
    games = counts + counts.T
    wins = counts.sum(axis=1)
    # l2 = 0: the likelihood is flat along beta + c; J/K pins the step to mean zero.
    gauge = np.full((k, k), 1.0 / k) if l2 == 0 else 0.0
    value = _objective(counts, beta, l2)
    for _ in range(max_iter):
        p = win_probability(beta[:, None], beta[None, :])
        gradient = wins - (games * p).sum(axis=1) - l2 * beta
        curvature = games * p * (1.0 - p)
        hessian = np.diag(curvature.sum(axis=1) + l2) - curvature + gauge  # minus the Hessian
        step = np.linalg.solve(hessian, gradient)
        slope = gradient @ step  # Newton decrement: twice the gain still expected
        # Stop when the step is tiny, or when the gain left is below the float resolution of the
        # objective (large weighted counts): the last full step then lands within rounding noise.
        if np.max(np.abs(step), initial=0.0) < tol or slope <= 1e-15 * (abs(value) + 1.0):
            beta = beta + step
            break
        t = 1.0
        for _ in range(40):  # backtracking keeps Newton monotone far from the optimum
            candidate = beta + t * step
            new_value = _objective(counts, candidate, l2)
            if new_value >= value + 1e-4 * t * slope:
                break
            t *= 0.5
        else:
            break  # no ascent left at float precision: we are at the optimum
        beta, value = candidate, new_value
    return beta


def _fit_pair(wins_01: float, wins_10: float, l2: float, d: float, tol: float, max_iter: int) -> np.ndarray:
    """:func:`fit_bt` for two players (the app's strong/weak store, scored per prompt): one unknown.

    The penalised optimum has beta = (d/2, -d/2), d maximising the strictly concave
    ``w01 log sigmoid(d) + w10 log sigmoid(-d) - l2 d^2 / 4``. Newton on d in plain floats, kept inside a
    bracket of the root (bisection where a step would leave it): the same optimum as the K x K path, for
    a small fraction of its per-step array overhead."""
    # The root of the gradient lies in (-2 w10 / l2, 2 w01 / l2): the likelihood's pull is below each count.
    lo, hi = -2.0 * wins_10 / l2, 2.0 * wins_01 / l2
    d = min(max(d, lo), hi)
    last_step = hi - lo
    for _ in range(max_iter):
        e = math.exp(-abs(d))  # sigmoid(d) and sigmoid(-d) without overflow or cancellation
        p_pos, p_neg = (1.0 / (1.0 + e), e / (1.0 + e)) if d >= 0 else (e / (1.0 + e), 1.0 / (1.0 + e))
        gradient = wins_01 * p_neg - wins_10 * p_pos - 0.5 * l2 * d
        if gradient > 0:
            lo = d
        else:
            hi = d
        step = gradient / ((wins_01 + wins_10) * p_pos * p_neg + 0.5 * l2)
        # Newton unless it leaves the bracket or does not at least halve the step before the last one
        # (it can cycle far from the root, where the curvature is flat): then bisect.
        if not lo <= d + step <= hi or abs(step) > 0.5 * abs(last_step):
            step = 0.5 * (lo + hi) - d
        last_step = step
        d += step
        if abs(step) < tol or hi - lo < tol:
            break
    return np.array([0.5 * d, -0.5 * d])


def to_elo(beta: np.ndarray, anchor: int | None = None, anchor_rating: float = ELO_CENTER) -> np.ndarray:
    """Elo-scale ratings (400 points = 10x odds), mean 1000, or player ``anchor`` at ``anchor_rating``."""
    ratings = ELO_SCALE * np.asarray(beta, dtype=np.float64)
    if ratings.size == 0:
        return ratings
    if anchor is None:
        return ratings + (ELO_CENTER - ratings.mean())
    return ratings + (anchor_rating - ratings[anchor])


def _outcome_cells(battles: Battles) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (a, b, outcome) cells and how many battles fall in each."""
    rows = np.column_stack([battles.a, battles.b, battles.outcome]).astype(np.float64)
    cells, n_in_cell = np.unique(rows, axis=0, return_counts=True)
    return cells[:, 0].astype(np.int64), cells[:, 1].astype(np.int64), cells[:, 2], n_in_cell


def bootstrap_ci(
    battles: Battles,
    n_boot: int = 100,
    random_state: int | None = 0,
    l2: float = DEFAULT_L2,
    level: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval (low, high) of each player's Elo rating, shape (K,) each.

    Resampling n battles with replacement is the same as drawing a multinomial(n) over the distinct
    (a, b, outcome) cells, so each replicate costs one small count matrix and one warm-started fit
    instead of a pass over all battles.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    k = len(battles.players)
    n = len(battles)
    point = fit_bt(pair_counts(battles), l2=l2)
    if n == 0:
        ratings = to_elo(point)
        return ratings.copy(), ratings.copy()
    a, b, outcome, n_in_cell = _outcome_cells(battles)
    rng = np.random.default_rng(random_state)
    draws = rng.multinomial(n, n_in_cell / n, size=n_boot)
    replicates = np.empty((n_boot, k))
    for r, drawn in enumerate(draws):
        counts = np.bincount(a * k + b, weights=drawn * outcome, minlength=k * k)
        counts += np.bincount(b * k + a, weights=drawn * (1.0 - outcome), minlength=k * k)
        replicates[r] = to_elo(fit_bt(counts.reshape(k, k), l2=l2, init=point))
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(replicates, [tail, 100.0 - tail], axis=0)
    return low, high


def leaderboard(
    battles: Battles,
    l2: float = LEADERBOARD_L2,
    n_boot: int = 100,
    random_state: int | None = 0,
) -> list[dict]:
    """One row per player that has played: rating, 95% CI and record, best first.

    Players with no battles are left out: their rating would be the uninformative centre.
    """
    k = len(battles.players)
    ratings = to_elo(fit_bt(pair_counts(battles), l2=l2))
    low, high = bootstrap_ci(battles, n_boot=n_boot, random_state=random_state, l2=l2)
    a, b, y = battles.a, battles.b, battles.outcome
    played = np.bincount(a, minlength=k) + np.bincount(b, minlength=k)
    wins = np.bincount(a, weights=y == 1.0, minlength=k) + np.bincount(b, weights=y == 0.0, minlength=k)
    losses = np.bincount(a, weights=y == 0.0, minlength=k) + np.bincount(b, weights=y == 1.0, minlength=k)
    rows = [
        {
            "player": battles.players[i],
            "rating": float(ratings[i]),
            "ci_low": float(low[i]),
            "ci_high": float(high[i]),
            "n_battles": int(played[i]),
            "wins": int(wins[i]),
            "losses": int(losses[i]),
            "ties": int(played[i] - wins[i] - losses[i]),
        }
        for i in range(k)
        if played[i] > 0
    ]
    return sorted(rows, key=lambda row: row["rating"], reverse=True)


# -- the models' own ratings (the leaderboard and the arena's before/after) ------------------------


def model_battles(rows: list[dict]) -> Battles:
    """Battles whose players are the models themselves (for the leaderboard), not strong/weak roles."""
    return Battles.from_records([{**r, "strong_side": None} for r in rows], role_map=None)


def model_ratings(rows: list[dict]) -> dict[str, float]:
    """Bradley-Terry point ratings (Elo scale) of the models in ``rows``; cheap (K x K counts)."""
    tally = PairTally()
    tally.add(rows)
    return tally.ratings()


class PairTally:
    """Model-vs-model win counts (a tie half to each side), grown one battle at a time.

    Why: the arena ratings shown before and after a vote need only these K x K counts; re-reading
    every arena battle for each vote cost ~1.5 s per vote with 65,000 votes stored. Players start
    with "strong", "weak" (never playing here) exactly as :func:`model_battles` lays them out, so
    the ratings equal a refit over all the rows.
    """

    def __init__(self):
        self.players = [STRONG, WEAK]
        self._index = {STRONG: 0, WEAK: 1}
        self.counts = np.zeros((2, 2))
        self.played = np.zeros(2, dtype=bool)
        self.last_id = 0  # the newest stored battle counted, to read only newer ones next time

    def _player(self, name: str) -> int:
        if name not in self._index:
            self._index[name] = len(self.players)
            self.players.append(name)
            self.counts = np.pad(self.counts, ((0, 1), (0, 1)))
            self.played = np.append(self.played, False)
        return self._index[name]

    def add(self, rows: list[dict]) -> None:
        for r in rows:
            i, j = self._player(r["model_a"]), self._player(r["model_b"])
            won = OUTCOME[r["winner"]]
            self.counts[i, j] += won
            self.counts[j, i] += 1.0 - won
            self.played[[i, j]] = True
            self.last_id = max(self.last_id, int(r.get("id") or 0))

    def ratings(self) -> dict[str, float]:
        if not self.played.any():
            return {}
        ratings = to_elo(fit_bt(self.counts, l2=LEADERBOARD_L2))
        return {p: float(r) for p, r, n in zip(self.players, ratings, self.played) if n}


def win_rate_matrix(battles: Battles) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(players, rate, games): rate[i, j] = share of i's games against j that i won (a tie counts
    half), NaN where they never met; games[i, j] = battles between them."""
    counts = pair_counts(battles)
    games = counts + counts.T
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(games > 0, counts / games, np.nan)
    k = len(battles.players)
    a, b = battles.a.astype(np.int64), battles.b.astype(np.int64)
    n = np.bincount(a * k + b, minlength=k * k).reshape(k, k)
    n = n + n.T
    played = n.sum(axis=1) > 0
    keep = np.flatnonzero(played)
    return [battles.players[i] for i in keep], rate[np.ix_(keep, keep)], n[np.ix_(keep, keep)]
