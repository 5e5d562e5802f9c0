"""What the evaluation can score: the registry's routers (the app's, plus evaluation-only combinations).

A *fitter* turns training prompts (an :class:`EvalSet` with gold qualities and embeddings) into a
fitted router; going through fitters rather than routers lets a combination (an ensemble, a tuned
router) look at the training set's groups and qualities, not only at its battles.
"""

from __future__ import annotations

import itertools
import math

from routellm_demo.evals.benchmarks import EvalError, EvalSet, gold_battles
from routellm_demo.routers import registry
from routellm_demo.routers.registry import EVAL_GROUPS, EVAL_ROUTERS


def router_fitter(name: str, params: dict | None = None):
    """Fit the router ``name`` (built with ``params``) on the training set's gold battles; a combination
    (the stacked ensemble) also gets the training prompts' groups, so its inner folds are grouped like
    the outer ones (whole subjects/questions)."""
    params = dict(params or {})
    spec = registry.get(name)

    def fit(train: EvalSet):
        router = spec.cls(**params)
        if spec.eval == EVAL_GROUPS:
            return router.fit(gold_battles(train), groups=train.groups)
        return router.fit(gold_battles(train))

    fit.__name__ = f"fit_{name}"
    return fit


def param_grid(grid: dict) -> list[dict]:
    """``{"dim": [16, 64], "epochs": [10]}`` -> every combination, as parameter dicts."""
    if not isinstance(grid, dict) or not grid or not all(isinstance(v, list) and v for v in grid.values()):
        raise EvalError('"tune" must map parameter names to non-empty lists, e.g. {"dim": [16, 64]}')
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def tuned_fitter(name: str, base: dict | None, grid: dict, *, inner_folds: int = 3, target: str | None = None,
                 seed: int = 0):
    """Pick ``grid``'s best parameters by grouped inner CV on the *training* prompts only, then refit.

    The inner score is the fold-calibrated APGR on the training prompts of ``target`` (the benchmark
    being evaluated) when it has some, so extra benchmarks mixed into training do not steer the choice.
    Each call appends ``{"params", "inner_apgr"}`` to ``fit.history`` for the report.
    """
    from routellm_demo.evals.metrics import summarize
    from routellm_demo.evals.protocol import cross_validated_scores

    base = dict(base or {})
    candidates = param_grid(grid)

    def fit(train: EvalSet):
        mask = train.benchmarks() == target if target is not None else None
        if mask is None or not mask.any():
            mask = slice(None)
        best, best_score = candidates[0], -math.inf
        inner = {str(i): router_fitter(name, {**base, **c}) for i, c in enumerate(candidates)}
        res = cross_validated_scores(train, inner, k=inner_folds, seed=seed)
        for i, c in enumerate(candidates):
            m = summarize(res.scores[str(i)][mask], train.strong_quality[mask], train.weak_quality[mask],
                          folds=res.folds[mask])
            score = -math.inf if m["apgr"] is None else m["apgr"]
            if score > best_score:
                best, best_score = c, score
        fit.history.append({"params": best, "inner_apgr": best_score})
        return router_fitter(name, {**base, **best})(train)

    fit.history = []
    fit.__name__ = f"fit_tuned_{name}"
    return fit


def _check_params(name: str, params: dict, grid: dict | None) -> None:
    """Fail before any fitting on a misspelt hyperparameter, not minutes into a cross-validation."""
    if name not in EVAL_ROUTERS:
        return
    spec = registry.get(name)
    try:
        for candidate in param_grid(grid) if grid is not None and spec.tunable else [{}]:
            spec.cls(**{**params, **candidate})
    except TypeError as exc:
        raise EvalError(f"bad parameters for router {name!r}: {exc}") from None


def fitter_for(name: str, params: dict | None = None, *, target: str | None = None):
    """The fitter behind a router name given to ``eval --routers``; ``params["tune"]`` (a grid of
    lists) makes it a :func:`tuned_fitter`."""
    params = dict(params or {})
    grid = params.pop("tune", None)
    _check_params(name, params, grid)
    if name not in EVAL_ROUTERS:
        raise EvalError(f"unknown router {name!r}; choose from {', '.join(EVAL_ROUTERS)}")
    if grid is None:
        return router_fitter(name, params)
    if not registry.get(name).tunable:
        raise EvalError(f"the {name} cannot be tuned by a grid (tune its members instead)")
    return tuned_fitter(name, params, grid, target=target)
