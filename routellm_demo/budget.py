"""Budget mode: a threshold that follows live traffic so that a target share of calls goes strong.

``calibrate`` is the one-off counterpart: it picks a threshold once, on a sample of prompts, and the
share it realises drifts as soon as the traffic's mix differs from that sample (RouteLLM issue #36).
Budget mode instead re-reads the threshold for every request from the router's most recent scores
in the routing log: the threshold that would have sent the target share of them to the strong model.

- Past scores only: a request's own score is logged after it is answered, so it is never among them.
- Persisted and shared: the window is read from the store, so a restart continues where it stopped
  and every process serving the same store follows one budget.
- Sensible before traffic: until the log holds a full window, scores of stored battle prompts (what
  ``calibrate`` uses when there is no traffic) fill the rest of it.
- Self-correcting: the share realised by this budget's own latest requests is compared with the
  target, and the share aimed at is moved by the difference (ties, and a shift in the traffic that
  the window has not caught up with yet, are corrected within a few dozen requests).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Callable, Sequence

from routellm_demo.calibration import threshold_for_strong_share
from routellm_demo.errors import UserError

MIN_PRIOR = 50  # fewest prior (battle prompt) scores worth using before traffic fills the window
# The feedback: the share realised by the budget's own latest FEEDBACK_HORIZON requests, its miss
# times FEEDBACK_GAIN added to the share aimed at. Chosen with window 100 by replaying shifting
# MMLU -> GSM8K streams (3 routers x 3 seeds x targets 20/30/50%; benchmarks/budget_replay.py): a
# shorter horizon or a lower gain let the shift's overspend run on, a higher gain oscillates.
FEEDBACK_HORIZON = 50
FEEDBACK_GAIN = 2.0


class BudgetError(UserError, ValueError):
    """A budget that cannot be met as asked (a share outside 0-100%, a cost below the weak model's)."""


@dataclass(frozen=True)
class BudgetDecision:
    """How one budget threshold was set, for the route card and the log."""

    target: float  # share of calls meant for the strong model, 0..1
    threshold: float
    window: int  # scores the threshold was read from
    from_traffic: int  # how many of them were logged requests (the rest: stored battle prompts)
    realised: float | None  # share this budget's recent requests went strong (None before any)


def check_share(share: float) -> float:
    try:
        s = float(share)
    except (TypeError, ValueError):
        raise BudgetError(f"a budget is a share of strong calls in [0, 1], got {share!r}") from None
    if not (math.isfinite(s) and 0.0 <= s <= 1.0):
        raise BudgetError(f"a budget is a share of strong calls in [0, 1], got {share!r}")
    return s


# A cost budget prices "a request" at the mean size of the latest answered requests in the routing log
# (SIZE_WINDOW of them, once there are MIN_SIZED_REQUESTS); before that, at a typical chat turn:
# DEFAULT_PROMPT_TOKENS in, DEFAULT_ANSWER_TOKENS out (the what-if's default answer length).
SIZE_WINDOW = 500
MIN_SIZED_REQUESTS = 20
DEFAULT_PROMPT_TOKENS = 60
DEFAULT_ANSWER_TOKENS = 300


@dataclass(frozen=True)
class CostBudget:
    """A budget given as USD per 1,000 requests, read as the share of strong calls that costs it."""

    cost_per_1k: float
    share: float  # of calls to the strong model, 0..1 (rounded to 0.1 point, so the budget's log key holds)
    strong_per_1k: float  # USD per 1,000 requests all answered by the strong model
    weak_per_1k: float
    prompt_tokens: float  # the request size the prices were applied to
    completion_tokens: float
    from_traffic: int  # answered requests that size was measured on (0: the defaults)

    def describe(self) -> str:
        size = (f"requests here average {self.prompt_tokens:.0f} tokens in and {self.completion_tokens:.0f} out "
                f"(last {self.from_traffic})" if self.from_traffic else
                f"no traffic yet, so a request is taken as {self.prompt_tokens:.0f} tokens in and "
                f"{self.completion_tokens:.0f} out")
        return (f"${self.cost_per_1k:.4g} per 1,000 requests = {100 * self.share:.1f}% of calls to the strong model "
                f"(all strong: ${self.strong_per_1k:.4g}, all weak: ${self.weak_per_1k:.4g}; {size})")


def cost_budget(cost_per_1k: float, strong, weak, decisions: Sequence[dict]) -> CostBudget:
    """The :class:`CostBudget` for ``cost_per_1k`` USD per 1,000 requests, pricing a request on
    ``strong``/``weak`` (model endpoints with per-1M-token prices) at the mean size of the answered
    ``decisions`` (routing log rows, newest first), or at the defaults before there are enough."""
    from routellm_demo.llm.costs import cost_usd

    try:
        cost = float(cost_per_1k)
    except (TypeError, ValueError):
        raise BudgetError(f"a cost budget is USD per 1,000 requests, got {cost_per_1k!r}") from None
    if not (math.isfinite(cost) and cost >= 0.0):
        raise BudgetError(f"a cost budget is a non-negative number of USD per 1,000 requests, got {cost_per_1k!r}")
    sized = [d for d in decisions[:SIZE_WINDOW]
             if not d.get("error") and d.get("prompt_tokens") and d.get("completion_tokens") is not None]
    if len(sized) >= MIN_SIZED_REQUESTS:
        p = sum(d["prompt_tokens"] for d in sized) / len(sized)
        c = sum(d["completion_tokens"] for d in sized) / len(sized)
    else:
        p, c, sized = DEFAULT_PROMPT_TOKENS, DEFAULT_ANSWER_TOKENS, []
    strong_1k, weak_1k = 1000 * cost_usd(strong, p, c), 1000 * cost_usd(weak, p, c)
    share = round(share_for_cost(cost, strong_1k, weak_1k), 3)
    return CostBudget(cost, share, strong_1k, weak_1k, p, c, len(sized))


def share_for_cost(cost_per_1k: float, strong_cost_per_1k: float, weak_cost_per_1k: float) -> float:
    """The strong share whose expected cost per 1,000 requests is ``cost_per_1k``, given what a
    strong and a weak request cost on average."""
    if not strong_cost_per_1k > weak_cost_per_1k:
        raise BudgetError("a cost budget needs the strong model to cost more than the weak one")
    if cost_per_1k < weak_cost_per_1k:
        raise BudgetError(f"${cost_per_1k:g} per 1,000 requests is below the weak model's own cost "
                          f"(${weak_cost_per_1k:.4g}): no routing can meet it")
    return min(1.0, (cost_per_1k - weak_cost_per_1k) / (strong_cost_per_1k - weak_cost_per_1k))


class BudgetThresholds:
    """Reads budget thresholds from a store's routing log (``Store.recent_scores`` and
    ``Store.recent_budget_routes``); ``prior(router)`` gives scores of stored prompts for the time
    before there is traffic (computed once per router and kept)."""

    def __init__(self, store, prior: Callable[[str], Sequence[float]] | None = None, *,
                 window: int, gain: float = FEEDBACK_GAIN, horizon: int = FEEDBACK_HORIZON):
        if window < 10:
            raise BudgetError(f"a budget window needs at least 10 requests, got {window}")
        self.store = store
        self.window = int(window)
        self.gain = float(gain)
        self.horizon = int(horizon)
        self._prior_of = prior
        self._priors: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _prior(self, router: str) -> list[float]:
        with self._lock:
            if router not in self._priors and self._prior_of is not None:
                self._priors[router] = [float(s) for s in self._prior_of(router)]
            return self._priors.get(router, [])

    def decide(self, router: str, target: float) -> BudgetDecision:
        target = check_share(target)
        recent = self.store.recent_scores(router, self.window)
        scores = list(recent)
        if len(scores) < self.window:
            prior = self._prior(router)
            if len(prior) >= MIN_PRIOR or not scores:
                scores += prior[: self.window - len(scores)]
        routes = self.store.recent_budget_routes(router, target, self.horizon)
        realised = sum(routes) / len(routes) if routes else None
        aim = target
        if realised is not None:
            # measured over as many requests as there are yet, so early on it counts less
            aim = target + self.gain * (target - realised) * len(routes) / self.horizon
        aim = min(1.0, max(0.0, aim))
        if not scores:  # nothing known yet: the target share, read as a score (a fair coin for 0.5)
            threshold = 1.0 - target
        elif aim >= 1.0:
            threshold = 0.0
        else:
            threshold = threshold_for_strong_share(scores, aim)
        return BudgetDecision(target, min(1.0, max(0.0, threshold)), len(scores), len(recent), realised)
