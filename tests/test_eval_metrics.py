"""RouteLLM's metrics on small hand-computed cases (fast, no data, no model)."""

import numpy as np
import pytest

from routellm_demo.evals.metrics import (
    apgr, auc, baseline_summary, bootstrap_apgr, cost_reduction, cpt, fold_curve, oracle_curve, quality_curve,
    quantile_curve, random_curve, share_for_quality, summarize,
)

# 4 prompts, scores 4 > 3 > 2 > 1; the strong model is right on prompts 0, 2, 3, the weak never.
HAND_SCORES = np.array([4.0, 3.0, 2.0, 1.0])
HAND_STRONG = np.array([1.0, 0.0, 1.0, 1.0])
HAND_WEAK = np.zeros(4)


def test_hand_curve_points():
    c = quality_curve(HAND_SCORES, HAND_STRONG, HAND_WEAK)
    np.testing.assert_allclose(c.x, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(c.y, [0, 0.25, 0.25, 0.5, 0.75])
    # Each point's threshold sends exactly the scores >= it to strong.
    for x, t in zip(c.x, c.thresholds):
        assert np.mean(HAND_SCORES >= t) == pytest.approx(x)


def test_hand_auc_apgr():
    c = quality_curve(HAND_SCORES, HAND_STRONG, HAND_WEAK)
    assert auc(c) == pytest.approx(0.34375)  # trapezoids: .03125 + .0625 + .09375 + .15625
    assert apgr(c, 0.0, 0.75) == pytest.approx(0.34375 / 0.75)


def test_hand_cpt_is_first_crossing_interpolated():
    c = quality_curve(HAND_SCORES, HAND_STRONG, HAND_WEAK)
    assert cpt(c, 0.0, 0.75, 20) == pytest.approx(0.15)  # y = 0.15 on the first segment
    assert cpt(c, 0.0, 0.75, 50) == pytest.approx(0.625)  # y = 0.375 between (0.5, .25) and (0.75, .5)
    assert cpt(c, 0.0, 0.75, 80) == pytest.approx(0.85)
    assert cpt(c, 0.0, 0.75, 100) == pytest.approx(1.0)
    assert cpt(c, 0.0, 0.75, 120) is None  # never reached by this router


def test_cpt_takes_the_first_crossing_of_a_non_monotone_curve():
    # Strong helps on the first prompt, hurts on the second, helps on the last two.
    sq, wq = np.array([1.0, 0.0, 1.0, 1.0]), np.array([0.0, 1.0, 0.0, 0.0])
    c = quality_curve(HAND_SCORES, sq, wq)
    np.testing.assert_allclose(c.y, [0.25, 0.5, 0.25, 0.5, 0.75])
    assert share_for_quality(c, 0.5) == pytest.approx(0.25)


def test_strong_pct_at_95_and_cost_reduction():
    m = summarize(HAND_SCORES, HAND_STRONG, HAND_WEAK, strong_price=10.0, weak_price=1.0)
    # 0.95 * 0.75 = 0.7125 is reached between (0.75, 0.5) and (1, 0.75): x = 0.9625.
    assert m["strong_pct_at_95"] == pytest.approx(96.25)
    # cost relative to always-strong: 0.9625 * 10 + 0.0375 * 1 = 9.6625 of 10.
    assert m["cost_reduction_at_95"] == pytest.approx(3.375)
    assert m["cpt50"] == pytest.approx(62.5)


def test_strong_pct_at_95_is_zero_when_weak_is_good_enough():
    sq, wq = np.array([1.0, 1.0, 1.0, 1.0]), np.array([1.0, 1.0, 1.0, 0.9])
    m = summarize(HAND_SCORES, sq, wq, strong_price=2.0, weak_price=1.0)
    assert m["strong_pct_at_95"] == 0.0
    assert m["cost_reduction_at_95"] == pytest.approx(50.0)
    assert cost_reduction(None, 1.0, 0.0) is None


def test_all_tied_scores_give_the_straight_line():
    rng = np.random.default_rng(0)
    sq, wq = rng.random(50), rng.random(50) * 0.5
    c = quality_curve(np.full(50, 0.3), sq, wq)
    np.testing.assert_allclose(c.x, [0.0, 1.0])
    np.testing.assert_allclose(c.y, [wq.mean(), sq.mean()])
    assert c.at(0.5) == pytest.approx((wq.mean() + sq.mean()) / 2)
    m = summarize(np.full(50, 0.3), sq, wq)
    assert m["apgr"] == pytest.approx(0.5)
    assert m["apgr_10bins"] == pytest.approx(0.5)
    assert m["cpt50"] == pytest.approx(50.0)
    assert m["distinct_scores"] == 1


def test_partly_tied_scores_move_together():
    scores = np.array([0.9, 0.5, 0.5, 0.5, 0.1])
    c = quality_curve(scores, np.ones(5), np.zeros(5))
    np.testing.assert_allclose(c.x, [0, 0.2, 0.8, 1.0])  # no point inside the tied run
    np.testing.assert_allclose(c.y, c.x)


def test_perfect_router_gives_the_oracle_curve():
    # No prompt where weak beats strong: ranking by the true gain is the oracle, point for point.
    sq = np.array([1, 1, 0, 1, 0, 1, 1, 0], dtype=float)
    wq = np.array([0, 1, 0, 0, 0, 1, 0, 0], dtype=float)
    perfect = quality_curve(sq - wq, sq, wq)
    oracle = oracle_curve(sq, wq)
    np.testing.assert_allclose(perfect.x, oracle.x)
    np.testing.assert_allclose(perfect.y, oracle.y)
    # Oracle: weak 2/8, +1/8 per strong call up to 3 calls, then flat at 5/8 = strong.
    assert oracle.at(3 / 8) == pytest.approx(5 / 8)
    q_weak, q_strong = wq.mean(), sq.mean()
    # Max APGR = 1 - share_needed / 2 = 1 - 3/16.
    assert apgr(perfect, q_weak, q_strong) == pytest.approx(1 - 3 / 16)


def test_perfect_router_apgr_near_oracle_with_weak_wins():
    rng = np.random.default_rng(1)
    sq = (rng.random(2000) < 0.8).astype(float)
    wq = (rng.random(2000) < 0.65).astype(float)
    q_weak, q_strong = wq.mean(), sq.mean()
    perfect = summarize(sq - wq, sq, wq)
    oracle = baseline_summary(sq, wq)["oracle"]
    assert perfect["apgr"] > 1.0  # the oracle beats always-strong: PGR > 1 in the middle
    assert perfect["apgr"] <= oracle["apgr"] + 1e-12
    assert perfect["apgr"] >= 0.9 * oracle["apgr"]
    # The budgeted oracle never loses quality by calling strong more.
    oc = oracle_curve(sq, wq)
    assert np.all(np.diff(oc.y) >= -1e-12)
    assert oc.y[-1] == pytest.approx(max(q_strong, oc.y.max()))
    assert perfect["cpt50"] == oracle["cpt50"]


def test_random_router_apgr_is_about_half():
    rng = np.random.default_rng(2)
    sq = (rng.random(20000) < 0.8).astype(float)
    wq = (rng.random(20000) < 0.6).astype(float)
    m = summarize(rng.random(20000), sq, wq)
    assert m["apgr"] == pytest.approx(0.5, abs=0.03)
    assert m["cpt50"] == pytest.approx(50.0, abs=5)
    baseline = baseline_summary(sq, wq, seeds=5)["random (mean of seeds)"]
    assert baseline["apgr"] == pytest.approx(0.5, abs=0.02)
    rc = random_curve(sq, wq, seeds=5)
    np.testing.assert_allclose(rc.y, wq.mean() + rc.x * (sq.mean() - wq.mean()), atol=0.01)


def test_quantile_curve_is_a_subset_with_both_ends():
    rng = np.random.default_rng(3)
    scores, sq, wq = rng.random(1000), (rng.random(1000) < 0.8) * 1.0, (rng.random(1000) < 0.6) * 1.0
    full, q = quality_curve(scores, sq, wq), quantile_curve(scores, sq, wq, 10)
    assert len(q.x) == 11
    np.testing.assert_allclose(q.x, np.linspace(0, 1, 11), atol=2e-3)
    assert q.x[0] == 0.0 and q.x[-1] == 1.0
    assert set(np.round(q.x, 12)) <= set(np.round(full.x, 12))


def test_no_gap_gives_undefined_pgr_not_a_crash():
    sq = wq = np.array([1.0, 0.0, 1.0])
    m = summarize([0.1, 0.2, 0.3], sq, wq)
    assert m["apgr"] is None and m["cpt50"] is None
    assert m["auc"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("bad", [[0.1, np.nan, 0.3], [0.1, np.inf, 0.3], [0.1, 0.2]])
def test_bad_scores_are_rejected(bad):
    with pytest.raises(ValueError):
        quality_curve(bad, [1.0, 0.0, 1.0], [0.0, 0.0, 1.0])


def test_fold_curve_ignores_offsets_between_folds():
    # Two CV folds, each scored by a prompt-blind router with its own constant: pooled, the constants
    # rank the folds (an artefact); per fold, each router sends all or nothing, i.e. the straight line.
    sq = np.array([1, 1, 1, 1, 1, 0, 0, 0], dtype=float)
    wq = np.zeros(8)
    folds = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.where(folds == 1, 0.9, 0.1)  # the worse fold happens to get the higher constant
    assert summarize(scores, sq, wq)["apgr"] < 0.5
    m = summarize(scores, sq, wq, folds=folds)
    assert m["apgr"] == pytest.approx(0.5)
    assert m["apgr_pooled"] < 0.5
    # A fold-wise perfect router: each fold's curve is its oracle; the average is weighted by size.
    c = fold_curve(sq - wq, sq, wq, folds)
    assert c.at(0.5) == pytest.approx((4 * 0.5 + 4 * 0.25) / 8)  # fold 0: y = x; fold 1: one gain, then flat


def test_bootstrap_interval_brackets_the_estimate():
    rng = np.random.default_rng(4)
    sq = (rng.random(600) < 0.85).astype(float)
    wq = (rng.random(600) < 0.6).astype(float)
    scores = (sq - wq) + rng.normal(0, 1.0, 600)
    lo, hi = bootstrap_apgr(scores, sq, wq, rounds=100)
    est = summarize(scores, sq, wq)["apgr"]
    assert lo < est < hi and hi - lo < 0.3
    assert bootstrap_apgr(np.zeros(600), sq, wq, rounds=20) == pytest.approx([0.5, 0.5])
