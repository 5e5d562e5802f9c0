import numpy as np
import pytest

from routellm_demo.battles import Battles
from routellm_demo.ratings import fit_bt, pair_counts, win_probability
from routellm_demo.routers.elo import EloRouter
from routellm_demo.routers.random_router import RandomRouter


def embeddings(n, seed=0, dim=8):
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_random_router_is_deterministic_per_prompt_and_seed():
    x = embeddings(200)
    router = RandomRouter(random_state=0).fit(Battles(["strong", "weak"], [], [], []))
    p = router.win_probability(x)
    assert p.shape == (200,)
    assert np.all((0.0 <= p) & (p < 1.0))
    np.testing.assert_array_equal(p, RandomRouter(random_state=0).win_probability(x))  # fresh instance
    np.testing.assert_array_equal(p[::-1], router.win_probability(x[::-1]))  # per prompt, not per position
    np.testing.assert_array_equal(p[:1], router.win_probability(x[0]))
    # float64 input of the same prompt: same score.
    np.testing.assert_array_equal(p, router.win_probability(x.astype(np.float64)))
    assert not np.allclose(p, RandomRouter(random_state=1).win_probability(x))


def test_random_router_is_roughly_uniform():
    p = RandomRouter().win_probability(embeddings(2000, seed=1))
    assert abs(p.mean() - 0.5) < 0.03
    assert abs(np.mean(p < 0.25) - 0.25) < 0.03


def test_random_router_score_is_a_known_value():
    # Pins the hash: a change would silently re-route every stored prompt.
    p = RandomRouter(random_state=0).win_probability(np.zeros((1, 4), dtype=np.float32))[0]
    assert p == pytest.approx(RandomRouter(random_state=0).win_probability(np.zeros(4))[0])
    assert p == pytest.approx(0.056466399000460805, abs=1e-15)


def test_elo_router_uses_global_bt_probability_for_every_prompt():
    players = ["strong", "weak", "other"]
    # strong beats weak 3-1, other beats weak twice, strong-other tie.
    battles = Battles(players, [0, 0, 0, 1, 2, 2, 0], [1, 1, 1, 0, 1, 1, 2], [1, 1, 1, 1, 1, 1, 0.5],
                      embeddings(7))
    router = EloRouter(l2=0.1).fit(battles)
    beta = fit_bt(pair_counts(battles), l2=0.1)
    expected = float(win_probability(beta[0], beta[1]))
    assert router.n_battles_ == 7
    p = router.win_probability(embeddings(5, seed=3))
    np.testing.assert_allclose(p, expected)
    assert 0.5 < expected < 1.0


def test_elo_router_without_battles_says_half():
    router = EloRouter().fit(Battles(["strong", "weak"], [], [], []))
    np.testing.assert_allclose(router.win_probability(embeddings(3)), 0.5)


def test_elo_router_fits_without_embeddings():
    router = EloRouter().fit(Battles(["strong", "weak"], [0, 0], [1, 1], [1.0, 0.0]))
    assert router.win_probability(embeddings(2))[0] == pytest.approx(0.5)
