import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from routellm_demo.battles import Battles
from routellm_demo.ratings import (
    ELO_SCALE,
    bootstrap_ci,
    fit_bt,
    leaderboard,
    pair_counts,
    to_elo,
    win_probability,
)

PLAYERS = ["strong", "weak", "m2", "m3"]


def random_battles(n, seed=0, strengths=(1.0, 0.0, 0.5, -0.5), tie_rate=0.2):
    """Battles drawn from a BT model with ties, so fits have a known target."""
    rng = np.random.default_rng(seed)
    k = len(strengths)
    a = rng.integers(0, k, n)
    b = (a + rng.integers(1, k, n)) % k
    s = np.asarray(strengths)
    a_wins = rng.random(n) < win_probability(s[a], s[b])
    outcome = np.where(rng.random(n) < tie_rate, 0.5, a_wins.astype(float))
    return Battles(PLAYERS[:k] if k <= 4 else PLAYERS + [f"m{i}" for i in range(4, k)], a, b, outcome)


def sklearn_beta(battles, l2, weights=None):
    """The reference fit: logistic regression on raw battles, row e_a - e_b, a tie as two half rows."""
    k, n = len(battles.players), len(battles)
    w = np.ones(n) if weights is None else np.asarray(weights, float)
    x = np.zeros((n, k))
    x[np.arange(n), battles.a] += 1.0
    x[np.arange(n), battles.b] -= 1.0
    tie = battles.outcome == 0.5
    rows = np.vstack([x[~tie], x[tie], x[tie]])
    y = np.concatenate([battles.outcome[~tie], np.ones(tie.sum()), np.zeros(tie.sum())])
    sw = np.concatenate([w[~tie], 0.5 * w[tie], 0.5 * w[tie]])
    # (x, won) and (-x, lost) are the same battle; flipping every other row keeps both classes present.
    flip = np.arange(len(y)) % 2 == 1
    rows[flip], y[flip] = -rows[flip], 1.0 - y[flip]
    lr = LogisticRegression(C=1.0 / l2, fit_intercept=False, tol=1e-12, max_iter=10_000, solver="lbfgs")
    lr.fit(rows, y, sample_weight=sw)
    return lr.coef_[0]


@pytest.mark.parametrize("l2", [1e-2, 1.0, 25.0])
def test_fit_matches_sklearn_logistic_regression(l2):
    battles = random_battles(400, seed=1)
    beta = fit_bt(pair_counts(battles), l2=l2)
    np.testing.assert_allclose(beta, sklearn_beta(battles, l2), atol=1e-3)


def test_weighted_fit_matches_sklearn():
    battles = random_battles(300, seed=2)
    weights = np.random.default_rng(3).uniform(0.1, 5.0, len(battles))
    beta = fit_bt(pair_counts(battles, weights), l2=0.5)
    np.testing.assert_allclose(beta, sklearn_beta(battles, 0.5, weights), atol=1e-3)


def test_pair_counts_counts_a_tie_as_half_a_win_each():
    battles = Battles(["strong", "weak"], [0, 1, 0], [1, 0, 1], [1.0, 0.5, 0.5])
    np.testing.assert_allclose(pair_counts(battles), [[0.0, 2.0], [1.0, 0.0]])
    # One tie == one win each at half weight.
    tie = Battles(["strong", "weak"], [0], [1], [0.5])
    split = Battles(["strong", "weak"], [0, 0], [1, 1], [1.0, 0.0])
    np.testing.assert_allclose(pair_counts(tie), pair_counts(split, weights=[0.5, 0.5]))


def test_only_ties_give_equal_strengths():
    battles = Battles(["strong", "weak"], [0, 1, 0], [1, 0, 1], [0.5, 0.5, 0.5])
    beta = fit_bt(pair_counts(battles))
    assert beta[0] == pytest.approx(beta[1], abs=1e-9)


def test_fit_recovers_generating_strengths():
    truth = np.array([1.0, 0.0, 0.5, -0.5])
    battles = random_battles(20_000, seed=4, strengths=truth, tie_rate=0.0)
    beta = fit_bt(pair_counts(battles), l2=1e-3)
    np.testing.assert_allclose(beta - beta.mean(), truth - truth.mean(), atol=0.06)


def test_penalty_keeps_perfect_separation_finite_and_disconnected_players_at_zero():
    # strong always beats weak; m2 and m3 never play.
    battles = Battles(PLAYERS, [0] * 10, [1] * 10, [1.0] * 10)
    beta = fit_bt(pair_counts(battles), l2=1e-2)
    assert np.all(np.isfinite(beta))
    assert beta[0] > beta[1] + 5
    np.testing.assert_allclose(beta[2:], 0.0, atol=1e-12)
    np.testing.assert_allclose(beta, sklearn_beta(battles, 1e-2), atol=1e-3)


def test_unpenalised_fit_on_connected_graph_has_mean_zero():
    battles = random_battles(500, seed=5)
    beta = fit_bt(pair_counts(battles), l2=0.0)
    assert beta.mean() == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(beta, fit_bt(pair_counts(battles), l2=1e-9), atol=1e-4)


def test_warm_start_reaches_the_same_optimum():
    counts = pair_counts(random_battles(500, seed=6))
    np.testing.assert_allclose(fit_bt(counts, init=[3.0, -2.0, 1.0, 4.0]), fit_bt(counts), atol=1e-8)


def test_fit_rejects_bad_input():
    with pytest.raises(ValueError):
        fit_bt(np.zeros((2, 3)))
    with pytest.raises(ValueError):
        fit_bt(np.zeros((2, 2)), l2=-1)
    with pytest.raises(ValueError):
        pair_counts(random_battles(5), weights=[1.0, 2.0])


def test_to_elo_scale_and_centre():
    ratings = to_elo(np.array([np.log(10.0), 0.0]))
    assert ratings[0] - ratings[1] == pytest.approx(400.0)
    assert ratings.mean() == pytest.approx(1000.0)
    anchored = to_elo(np.array([1.0, 0.0, -1.0]), anchor=1)
    np.testing.assert_allclose(anchored, [1000 + ELO_SCALE, 1000.0, 1000 - ELO_SCALE])


def test_win_probability_is_symmetric_and_stable():
    assert win_probability(0.0, 0.0) == pytest.approx(0.5)
    assert win_probability(1.0, 0.0) + win_probability(0.0, 1.0) == pytest.approx(1.0)
    assert win_probability(1e4, 0.0) == 1.0


def test_bootstrap_ci_contains_estimate_and_narrows_with_data():
    small, large = random_battles(200, seed=7), random_battles(5_000, seed=7)
    widths = []
    for battles in (small, large):
        ratings = to_elo(fit_bt(pair_counts(battles)))
        low, high = bootstrap_ci(battles, n_boot=100, random_state=0)
        assert np.all(low <= ratings) and np.all(ratings <= high)
        assert np.all(high - low > 0)
        widths.append(np.mean(high - low))
    assert widths[1] < widths[0] / 2  # ~sqrt(25) = 5x narrower in theory


def test_bootstrap_is_reproducible():
    battles = random_battles(300, seed=8)
    first = bootstrap_ci(battles, n_boot=20, random_state=42)
    second = bootstrap_ci(battles, n_boot=20, random_state=42)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_leaderboard_rows_sorted_with_records():
    battles = Battles(PLAYERS, [0, 0, 0, 1, 2], [1, 1, 2, 2, 0], [1.0, 0.5, 1.0, 0.0, 0.0])
    rows = leaderboard(battles, n_boot=20)
    assert [r["rating"] for r in rows] == sorted((r["rating"] for r in rows), reverse=True)
    by_player = {r["player"]: r for r in rows}
    assert "m3" not in by_player  # never played
    assert by_player["strong"] == {**by_player["strong"], "n_battles": 4, "wins": 3, "losses": 0, "ties": 1}
    assert by_player["weak"]["wins"] == 0 and by_player["weak"]["losses"] == 2 and by_player["weak"]["ties"] == 1
    assert rows[0]["player"] == "strong"
    for r in rows:
        assert r["ci_low"] <= r["rating"] <= r["ci_high"]


def test_leaderboard_of_no_battles_is_empty():
    assert leaderboard(Battles(["strong", "weak"], [], [], [])) == []


def test_huge_weighted_counts_reach_the_same_optimum():
    # Scaling counts and penalty together leaves the optimum unchanged; large totals (SW weights
    # reach 100 per battle over 65k battles) must not stall Newton in float noise.
    counts = pair_counts(random_battles(500, seed=9))
    np.testing.assert_allclose(fit_bt(counts * 1e5, l2=0.3 * 1e5, init=np.ones(4)), fit_bt(counts, l2=0.3), atol=1e-8)


@pytest.mark.parametrize("seed", range(6))
def test_two_player_fit_matches_the_general_newton(seed):
    # Two players take a scalar path (the app's store scored per prompt). A third player who never
    # played stays at 0 and leaves the pair's optimum unchanged, so the K x K path on the padded matrix
    # is the reference: random counts, one-sided ones, empty ones, huge ones, far warm starts.
    rng = np.random.default_rng(seed)
    cases = [rng.uniform(0, 50, (2, 2)), np.array([[0.0, 7.0], [0.0, 0.0]]), np.zeros((2, 2)),
             rng.uniform(0, 1, (2, 2)) * 1e9, np.array([[0.0, 1e-6], [3.0, 0.0]])]
    for counts in cases:
        for l2 in (1e-2, 0.7, 30.0):
            init = rng.normal(0, 20, 2)
            padded = np.zeros((3, 3))
            padded[:2, :2] = counts
            reference = fit_bt(padded, l2=l2)
            assert reference[2] == pytest.approx(0.0, abs=1e-9)
            beta = fit_bt(counts, l2=l2, init=init)
            # the difference is what the data decide; the mean is the penalty's (exactly 0 here, within
            # float noise of 0 for the K x K path when the counts dwarf the penalty)
            assert beta[0] - beta[1] == pytest.approx(reference[0] - reference[1], rel=1e-9, abs=1e-9)
            assert beta.sum() == 0.0


def test_two_player_fit_matches_sklearn():
    battles = random_battles(300, seed=11, strengths=(0.8, -0.3))
    np.testing.assert_allclose(fit_bt(pair_counts(battles), l2=0.5), sklearn_beta(battles, 0.5), atol=1e-3)
