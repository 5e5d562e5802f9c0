"""Budget mode: the threshold read from recent logged scores (past only, shared through the store),
its prior before traffic, its feedback on the realised share, and how a client asks for it."""

from __future__ import annotations

import random

import pytest

from routellm_demo.budget import BudgetError, BudgetThresholds, share_for_cost
from routellm_demo.routers import UnknownRouterError, parse_router_model
from routellm_demo.store import Store


def log(store, router, scores, *, threshold=0.5, budget=None):
    for s in scores:
        store.log_decision(prompt_sha256="0" * 64, router=router, threshold=threshold, score=s,
                           chosen_role="strong" if s >= threshold else "weak", source="cli", budget=budget)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "budget.db")
    yield s
    s.close()


def test_the_threshold_sends_the_target_share_of_recent_scores_strong(store):
    rng = random.Random(0)
    log(store, "mf", [rng.random() for _ in range(400)])  # older traffic, out of the window
    recent = [0.2 + 0.6 * rng.random() for _ in range(200)]
    log(store, "mf", recent)
    log(store, "sw_ranking", [0.99] * 50)  # another router's traffic is not this one's
    d = BudgetThresholds(store, window=200).decide("mf", 0.25)
    assert d.from_traffic == d.window == 200 and d.realised is None
    assert sum(s >= d.threshold for s in recent) == 50  # exactly the target share of the window


def test_before_traffic_the_prior_fills_the_window(store):
    prior = [i / 100 for i in range(100)]
    budgets = BudgetThresholds(store, lambda router: prior, window=100)
    d = budgets.decide("mf", 0.1)
    assert d.from_traffic == 0 and d.threshold == pytest.approx(0.90)
    log(store, "mf", [0.0] * 60)  # traffic so far scores low: it takes 60 of the 100 places
    d = budgets.decide("mf", 0.1)
    assert d.from_traffic == 60 and d.window == 100 and d.threshold == pytest.approx(0.30)


def test_a_restart_or_another_process_continues_the_same_budget(tmp_path):
    path = tmp_path / "shared.db"
    rng = random.Random(1)
    with Store(path) as first:
        log(first, "mf", [rng.random() for _ in range(150)])
        before = BudgetThresholds(first, window=100).decide("mf", 0.4).threshold
    with Store(path) as second:  # a new process on the same file: the window is in the store
        assert BudgetThresholds(second, window=100).decide("mf", 0.4).threshold == before


def test_a_budget_that_overspent_aims_lower_until_it_is_paid_back(store):
    scores = [i / 200 for i in range(200)]
    log(store, "mf", scores)
    budgets = BudgetThresholds(store, window=200)
    neutral = budgets.decide("mf", 0.3).threshold
    # the budget's own latest requests all went strong (a shift the window has not caught up with)
    log(store, "mf", [0.1] * 40 + [0.9] * 60, threshold=0.5, budget=0.3)
    d = budgets.decide("mf", 0.3)
    assert d.realised == pytest.approx(1.0)
    assert d.threshold > neutral


def test_bad_budgets_are_one_line_errors(store):
    with pytest.raises(BudgetError, match=r"in \[0, 1\]"):
        BudgetThresholds(store, window=50).decide("mf", 1.5)
    with pytest.raises(BudgetError, match="below the weak model's own cost"):
        share_for_cost(0.01, strong_cost_per_1k=10.0, weak_cost_per_1k=0.5)
    assert share_for_cost(2.5, strong_cost_per_1k=10.5, weak_cost_per_1k=0.5) == pytest.approx(0.2)


def test_a_client_asks_for_a_budget_by_model_name():
    choice = parse_router_model("router-mf-budget30")
    assert (choice.name, choice.threshold, choice.budget) == ("mf", None, 0.3)
    assert choice.model_name == "router-mf-budget30"
    assert parse_router_model("router-mf-0.3").budget is None
    with pytest.raises(UnknownRouterError, match="outside 0-100%"):
        parse_router_model("router-mf-budget120")


def test_a_cost_budget_is_the_share_that_costs_it_at_the_traffics_request_size(store):
    from routellm_demo.budget import DEFAULT_ANSWER_TOKENS, DEFAULT_PROMPT_TOKENS, MIN_SIZED_REQUESTS, cost_budget
    from routellm_demo.config import ModelEndpoint

    strong = ModelEndpoint(name="S", model="s", input_price=10.0, output_price=30.0)  # USD per 1M tokens
    weak = ModelEndpoint(name="W", model="w", input_price=1.0, output_price=2.0)
    # no traffic: a request is the default size
    plan = cost_budget(5.0, strong, weak, [])
    strong_1k = 1000 * (DEFAULT_PROMPT_TOKENS * 10.0 + DEFAULT_ANSWER_TOKENS * 30.0) / 1e6
    weak_1k = 1000 * (DEFAULT_PROMPT_TOKENS * 1.0 + DEFAULT_ANSWER_TOKENS * 2.0) / 1e6
    assert (plan.strong_per_1k, plan.weak_per_1k, plan.from_traffic) == (pytest.approx(strong_1k),
                                                                          pytest.approx(weak_1k), 0)
    assert plan.share == pytest.approx(round((5.0 - weak_1k) / (strong_1k - weak_1k), 3))
    assert "no traffic yet" in plan.describe() and "per 1,000 requests" in plan.describe()
    # traffic of 100 tokens in, 100 out (failed requests do not count): $4 all strong, $0.30 all weak
    rows = [{"prompt_tokens": 100, "completion_tokens": 100, "error": None}] * MIN_SIZED_REQUESTS
    rows += [{"prompt_tokens": 5000, "completion_tokens": 0, "error": "timeout"}] * 5
    plan = cost_budget(1.225, strong, weak, rows)
    assert (plan.strong_per_1k, plan.weak_per_1k) == (pytest.approx(4.0), pytest.approx(0.3))
    assert plan.share == pytest.approx(0.25) and plan.from_traffic == MIN_SIZED_REQUESTS
    assert cost_budget(100.0, strong, weak, rows).share == 1.0  # more than all-strong costs: everything strong
    with pytest.raises(BudgetError, match="below the weak model's own cost"):
        cost_budget(0.1, strong, weak, rows)
    for bad in (-1, float("nan"), "cheap"):
        with pytest.raises(BudgetError, match="per 1,000 requests"):
            cost_budget(bad, strong, weak, rows)


def test_a_client_asks_for_a_cost_budget_by_model_name():
    choice = parse_router_model("router-mf-cost0.5")
    assert (choice.name, choice.threshold, choice.budget, choice.cost) == ("mf", None, None, 0.5)
    assert choice.model_name == "router-mf-cost0.5"
    with pytest.raises(UnknownRouterError, match="router-<name>-cost"):
        parse_router_model("router-mf-costly")
