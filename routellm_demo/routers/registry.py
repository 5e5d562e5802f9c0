"""Every router the package knows, in one table: name -> :class:`RouterSpec`.

Adding a router is one new module (a :class:`~routellm_demo.routers.base.Router` subclass) and one
``RouterSpec`` line in :data:`BUILTIN`. Everything that names routers reads this table: the names the
app, the server, the CLI and the config accept (:data:`ROUTER_NAMES`), ``make_router`` and
``check_router``, which routers are trained offline and loaded from a checkpoint (:data:`CHECKPOINTED`,
``checkpoint.load_router``), which ones the evaluation scores and how (:data:`EVAL_ROUTERS`), and the
line of help the app shows beside its router choice (:func:`router_help`).

A spec names its class as ``"module:Class"`` and imports it on first use, so listing the routers
imports no router module (and no torch), and a router module may import any helper of this package
without an import cycle. This module imports nothing of the package.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, Iterator

from routellm_demo.errors import UserError

EVAL_BATTLES = "battles"  # eval fits ``cls(**params).fit(gold battles)``; a parameter grid can tune it
EVAL_GROUPS = "groups"  # eval fits ``cls(**params).fit(gold battles, groups=...)`` (a combination); no grid
_NAME = re.compile(r"^[a-z_]+$")  # what ``router-<name>-<threshold>`` can spell


class UnknownRouterError(UserError, ValueError):
    """A router name or threshold that no router answers to."""


@dataclass(frozen=True)
class RouterSpec:
    """What the package needs to know about one router, besides its class."""

    name: str  # the class's ``name``, the checkpoint's ``kind``, the ``router-<name>-<t>`` model name
    target: str | type  # "module:Class", imported on first use (or the class itself)
    help: str  # the one line the app shows when this router is chosen
    app: bool = True  # served: the app, the server, the CLI and the config accept it
    checkpointed: bool = False  # trained offline (``train``), saved as a checkpoint and loaded by kind
    online: bool = False  # learns from each vote at once (``partial_fit``)
    eval: str | None = EVAL_BATTLES  # how ``eval`` fits it (EVAL_BATTLES, EVAL_GROUPS), None: not scored

    @property
    def cls(self) -> type:
        if isinstance(self.target, type):
            return self.target
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)

    @property
    def tunable(self) -> bool:
        """Whether ``eval`` may tune it by a parameter grid."""
        return self.eval == EVAL_BATTLES


BUILTIN = (
    RouterSpec("random", "routellm_demo.routers.random_router:RandomRouter",
               "random: a coin weighted by nothing; the baseline"),
    RouterSpec("elo", "routellm_demo.routers.elo:EloRouter",
               "elo: one global strong-vs-weak rating, the same score for every prompt", online=True),
    RouterSpec("sw_ranking", "routellm_demo.routers.sw_ranking:SWRankingRouter",
               "sw_ranking: ratings refit per prompt, weighting past battles by similarity (learns from arena "
               "votes at once)", online=True),
    RouterSpec("mf", "routellm_demo.routers.mf:MFRouter",
               "mf: matrix factorisation over prompt embeddings (trained offline)", checkpointed=True),
    RouterSpec("classifier", "routellm_demo.routers.classifier:ClassifierRouter",
               "classifier: logistic regression on prompt embeddings + counts from the text, blended with "
               "boosted trees on multiple-choice questions (trained offline)", checkpointed=True),
    RouterSpec("ensemble", "routellm_demo.routers.ensemble:EnsembleRouter",
               "ensemble: sw_ranking, mf and classifier stacked on their out-of-fold scores (evaluation only)",
               app=False, eval=EVAL_GROUPS),
)

_SPECS: dict[str, RouterSpec] = {}


def register(spec: RouterSpec) -> RouterSpec:
    """Add a router (after those already registered: the app's dropdown keeps this order)."""
    if not _NAME.match(spec.name):
        raise ValueError(f"router name {spec.name!r}: use lowercase letters and underscores only")
    if spec.name in _SPECS:
        raise ValueError(f"router {spec.name!r} is registered already")
    if spec.eval not in (None, EVAL_BATTLES, EVAL_GROUPS):
        raise ValueError(f"router {spec.name!r}: eval must be None, {EVAL_BATTLES!r} or {EVAL_GROUPS!r}")
    _SPECS[spec.name] = spec
    return spec


def unregister(name: str) -> RouterSpec:
    """Remove a router (tests that registered a double)."""
    return _SPECS.pop(name)


def get(name: str) -> RouterSpec:
    """The spec of any registered router (served or evaluation-only)."""
    try:
        return _SPECS[name]
    except KeyError:
        raise UnknownRouterError(f"unknown router {name!r}; choose one of: {', '.join(_SPECS)}") from None


def specs(where: Callable[[RouterSpec], bool] | None = None) -> tuple[RouterSpec, ...]:
    """The registered specs, in registration order, optionally those ``where`` accepts."""
    return tuple(s for s in _SPECS.values() if where is None or where(s))


class RouterNames(Sequence):
    """The names of the routers ``where`` accepts, in registration order: a live read-only view (a
    router registered later is in it), used wherever a tuple of names would be (``in``, iteration,
    ``join``, ``list``, argparse ``choices``)."""

    def __init__(self, where: Callable[[RouterSpec], bool]):
        self._where = where

    def _names(self) -> tuple[str, ...]:
        return tuple(s.name for s in specs(self._where))

    def __getitem__(self, index):
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, name) -> bool:
        spec = _SPECS.get(name) if isinstance(name, str) else None
        return spec is not None and self._where(spec)

    def __eq__(self, other) -> bool:
        if isinstance(other, (RouterNames, tuple, list)):
            return self._names() == tuple(other)
        return NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return repr(self._names())


ROUTER_NAMES = RouterNames(lambda s: s.app)  # served routers, in the app's dropdown order
CHECKPOINTED = RouterNames(lambda s: s.checkpointed)  # trained offline, loaded from checkpoints
EVAL_ROUTERS = RouterNames(lambda s: s.eval is not None)  # what ``eval --routers`` accepts


def router_help(name: str) -> str:
    """The app's one line about a router ("" for a name no router answers to)."""
    spec = _SPECS.get(name)
    return spec.help if spec is not None else ""


for _spec in BUILTIN:
    register(_spec)
del _spec
