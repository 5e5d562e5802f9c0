"""Router names (read from :mod:`routellm_demo.routers.registry`), and the one parser of RouteLLM's
``router-<name>-<threshold>`` model names."""

from __future__ import annotations

import re
from dataclasses import dataclass

from routellm_demo.routers import registry
from routellm_demo.routers.registry import ROUTER_NAMES, UnknownRouterError, router_help

_MODEL_NAME = re.compile(r"^router-(?P<name>[a-z_]+)-(?:(?P<threshold>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
                         r"|budget(?P<budget>[0-9]*\.?[0-9]+)|cost(?P<cost>[0-9]*\.?[0-9]+))$")


@dataclass(frozen=True)
class RouterChoice:
    """A router and either a fixed threshold, a budget (a target share of strong calls, 0..1) or a
    cost budget (USD per 1,000 requests)."""

    name: str
    threshold: float | None
    budget: float | None = None
    cost: float | None = None

    @property
    def model_name(self) -> str:
        if self.cost is not None:
            return f"router-{self.name}-cost{self.cost:g}"
        if self.budget is not None:
            return f"router-{self.name}-budget{100 * self.budget:g}"
        return f"router-{self.name}-{self.threshold:g}"


def check_router(name: str) -> str:
    if name not in ROUTER_NAMES:
        raise UnknownRouterError(f"unknown router {name!r}; choose one of: {', '.join(ROUTER_NAMES)}")
    return name


def check_threshold(threshold: float) -> float:
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise UnknownRouterError(f"threshold {threshold!r} is not a number; give one in [0, 1]") from None
    if not 0.0 <= t <= 1.0:  # also rejects NaN
        raise UnknownRouterError(f"threshold {t:g} is outside [0, 1]")
    return t


def parse_router_model(model: str) -> RouterChoice:
    """``"router-sw_ranking-0.3"`` -> RouterChoice("sw_ranking", 0.3); ``"router-mf-budget30"`` ->
    RouterChoice("mf", None, budget=0.3) (30% of calls to the strong model); ``"router-mf-cost0.5"`` ->
    RouterChoice("mf", None, cost=0.5) ($0.50 per 1,000 requests); with clear errors."""
    m = _MODEL_NAME.match(model or "")
    if not m:
        if (model or "").startswith("router-"):
            raise UnknownRouterError(
                f"bad router model {model!r}: expected router-<name>-<threshold> (e.g. router-mf-0.5), "
                "router-<name>-budget<percent> (e.g. router-mf-budget30) or router-<name>-cost<USD per 1,000 "
                "requests> (e.g. router-mf-cost0.5)"
            )
        raise UnknownRouterError(f"{model!r} is not a router model name (router-<name>-<threshold>)")
    name = check_router(m["name"])
    if m["budget"] is not None:
        pct = float(m["budget"])
        if not 0.0 <= pct <= 100.0:
            raise UnknownRouterError(f"budget {pct:g}% is outside 0-100%")
        return RouterChoice(name, None, budget=pct / 100.0)
    if m["cost"] is not None:
        return RouterChoice(name, None, cost=float(m["cost"]))
    return RouterChoice(name, check_threshold(m["threshold"]))


def make_router(name: str, **params):
    """A fresh, unfitted router of the given (served) name."""
    return registry.get(check_router(name)).cls(**params)


__all__ = ["ROUTER_NAMES", "RouterChoice", "UnknownRouterError", "check_router", "check_threshold", "make_router",
           "parse_router_model", "router_help"]
