"""Is the arena teaching the router? The prequential record of the arena's own votes.

Every arena vote stores the routers' scores for its prompt as they were *before* the vote was learnt
(``meta["scores_before"]``: sw_ranking's, which absorbs a vote at once, and the app's own router's,
which learns at its background refits; older votes carry only ``meta["sw_before"]``), written by
``Arena.vote``. A score >= 0.5 is a prediction that the strong model wins (the routing rule at
threshold 0.5); the vote then says which side did. Scoring each vote by the router's own earlier
prediction ("test, then train") needs no held-out set, uses only the store, and shows live whether the
router's predictions get better as votes come in.

Counted as we define it: ties ("tie", "tie (bothbad)") are left out, since they say neither side is
better; so are votes between models of unknown role and votes stored without that router's score.
Next to the router, the same record scores a prompt-blind baseline: "the side that won most of the
earlier votes", so that "80% right" is not mistaken for learning when the strong model simply wins
80% of the time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from routellm_demo.battles import STRONG, WEAK
from routellm_demo.routers.base import routes_to_strong

PREDICTION_THRESHOLD = 0.5
SW_ROUTER = "sw_ranking"


def winner_role(row: dict) -> str | None:
    """"strong" / "weak" for the side that won the battle, None for a tie or unknown roles."""
    side = {"model_a": "a", "model_b": "b"}.get(row.get("winner"))
    if side is None or row.get("strong_side") not in ("a", "b"):
        return None
    return STRONG if side == row["strong_side"] else WEAK


@dataclass
class PrequentialPoint:
    """One scored vote: the router's prediction before it, and the running accuracies after it."""

    n: int  # 1-based among scored votes
    battle_id: int
    score_before: float  # the router's score before it learnt this vote
    winner: str  # "strong" or "weak"
    correct: bool
    baseline_correct: bool
    rolling: float  # accuracy over the last ``window`` scored votes (fewer at the start)
    cumulative: float
    baseline_rolling: float


@dataclass
class Prequential:
    points: list[PrequentialPoint]
    ties: int  # votes left out because they were ties
    unscored: int  # votes left out for lack of the router's earlier score or of known roles
    window: int
    router: str = SW_ROUTER

    @property
    def accuracy(self) -> float | None:
        return float(np.mean([p.correct for p in self.points])) if self.points else None

    @property
    def baseline_accuracy(self) -> float | None:
        return float(np.mean([p.baseline_correct for p in self.points])) if self.points else None

    def summary(self) -> dict:
        """Headline figures: overall, first and last window, for the router and the baseline."""
        first, last = self.points[: self.window], self.points[-self.window:]

        def acc(points, attr="correct"):
            return round(float(np.mean([getattr(p, attr) for p in points])), 4) if points else None

        return {"router": self.router, "scored_votes": len(self.points), "ties": self.ties, "unscored": self.unscored,
                "window": self.window, "accuracy": acc(self.points), "first_window": acc(first),
                "last_window": acc(last), "baseline_accuracy": acc(self.points, "baseline_correct"),
                "baseline_last_window": acc(last, "baseline_correct")}


def score_before(row: dict, router: str = SW_ROUTER) -> float | None:
    """``router``'s score for the vote's prompt before it learnt the vote, None if not recorded."""
    meta = row.get("meta") or {}
    before = (meta.get("scores_before") or {}).get(router)
    if before is None and router == SW_ROUTER:
        before = meta.get("sw_before")  # votes stored before scores_before existed
    return None if before is None else float(before)


def prequential(rows: list[dict], window: int = 20, router: str = SW_ROUTER) -> Prequential:
    """Score the arena votes ``rows`` (store rows, any order) by ``router``'s score recorded before each."""
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    points: list[PrequentialPoint] = []
    ties = unscored = 0
    wins = {STRONG: 0, WEAK: 0}  # earlier non-tie votes, for the baseline
    for row in sorted(rows, key=lambda r: r["id"]):
        role = winner_role(row)
        before = score_before(row, router)
        if row.get("winner") in ("tie", "tie (bothbad)") and row.get("strong_side") in ("a", "b"):
            ties += 1
            continue
        if role is None or before is None:
            unscored += 1
            continue
        predicted = STRONG if routes_to_strong(float(before), PREDICTION_THRESHOLD) else WEAK
        baseline = STRONG if wins[STRONG] >= wins[WEAK] else WEAK
        wins[role] += 1
        right, base_right = predicted == role, baseline == role
        recent = points[max(0, len(points) - window + 1):] if window > 1 else []
        n = len(points) + 1
        points.append(PrequentialPoint(
            n, int(row["id"]), float(before), role, right, base_right,
            rolling=(sum(p.correct for p in recent) + right) / (len(recent) + 1),
            cumulative=((points[-1].cumulative * (n - 1) if points else 0.0) + right) / n,
            baseline_rolling=(sum(p.baseline_correct for p in recent) + base_right) / (len(recent) + 1)))
    return Prequential(points, ties, unscored, window, router)
