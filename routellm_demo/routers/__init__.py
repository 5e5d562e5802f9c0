"""Router names, and the one parser of RouteLLM's ``router-<name>-<threshold>`` model names."""

from __future__ import annotations

import re
from dataclasses import dataclass

ROUTER_NAMES = ("random", "elo", "sw_ranking", "mf", "classifier")

_MODEL_NAME = re.compile(r"^router-(?P<name>[a-z_]+)-(?P<threshold>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)$")


class UnknownRouterError(ValueError):
    """A router name or threshold that no router answers to."""


@dataclass(frozen=True)
class RouterChoice:
    name: str
    threshold: float

    @property
    def model_name(self) -> str:
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
    """``"router-sw_ranking-0.3"`` -> RouterChoice("sw_ranking", 0.3), with clear errors."""
    m = _MODEL_NAME.match(model or "")
    if not m:
        if (model or "").startswith("router-"):
            raise UnknownRouterError(
                f"bad router model {model!r}: expected router-<name>-<threshold>, e.g. router-mf-0.5"
            )
        raise UnknownRouterError(f"{model!r} is not a router model name (router-<name>-<threshold>)")
    return RouterChoice(check_router(m["name"]), check_threshold(m["threshold"]))


def make_router(name: str, **params):
    """A fresh, unfitted router of the given name."""
    check_router(name)
    if name == "random":
        from routellm_demo.routers.random_router import RandomRouter as cls
    elif name == "elo":
        from routellm_demo.routers.elo import EloRouter as cls
    elif name == "sw_ranking":
        from routellm_demo.routers.sw_ranking import SWRankingRouter as cls
    elif name == "mf":
        from routellm_demo.routers.mf import MFRouter as cls
    else:
        from routellm_demo.routers.classifier import ClassifierRouter as cls
    return cls(**params)
