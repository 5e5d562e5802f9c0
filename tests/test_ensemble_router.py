"""The stacked ensemble router on synthetic battles (fast: small members)."""

import numpy as np
import pytest

from routellm_demo.battles import Battles
from routellm_demo.routers.ensemble import EnsembleRouter, fit_stack, inner_folds

SMALL = (("sw_ranking", {"text_weight": 0}), ("classifier", {"epochs": 5, "text_weight": 0, "tree_weight": 0}))


def battles(n=400, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    outcome = (rng.random(n) < 1 / (1 + np.exp(-6 * x[:, 0]))).astype(float)  # strong wins where x0 > 0
    return Battles(["strong", "weak"], np.zeros(n), np.ones(n), outcome, x)


def test_ensemble_learns_the_signal_and_stays_a_probability():
    b = battles()
    r = EnsembleRouter(members=SMALL, inner_folds=3).fit(b, groups=np.arange(len(b)) % 20)
    test = battles(200, seed=1)
    p = r.win_probability(test.embeddings)
    assert p.shape == (200,) and np.all((p > 0) & (p < 1))
    assert np.corrcoef(p, test.embeddings[:, 0])[0, 1] > 0.5
    assert r.info()["members"] == ["sw_ranking", "classifier"]
    assert sum(r.weights_) > 0


def test_inner_folds_keep_groups_whole():
    groups = np.repeat(np.arange(10), 7)
    folds = inner_folds(len(groups), 3, groups, seed=0)
    for g in range(10):
        assert len(set(folds[groups == g])) == 1
    assert set(inner_folds(30, 3)) == {0, 1, 2}


def test_fit_stack_recovers_a_logistic_model():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(4000, 2))
    y = (rng.random(4000) < 1 / (1 + np.exp(-(2 * z[:, 0] - z[:, 1] + 0.5)))).astype(float)
    w, b = fit_stack(z, y, l2=1e-6)
    np.testing.assert_allclose(w, [2, -1], atol=0.2)
    assert b == pytest.approx(0.5, abs=0.15)


def test_ensemble_refuses_battles_without_embeddings():
    b = battles(20)
    with pytest.raises(ValueError):
        EnsembleRouter(members=SMALL).fit(Battles(b.players, b.a, b.b, b.outcome, None))
