import math

import numpy as np
import pytest

from routellm_demo.calibration import strong_share, threshold_for_strong_share
from routellm_demo.routers.base import routes_to_strong


@pytest.mark.parametrize("share", [0.0, 0.1, 0.25, 0.5, 0.9, 1.0])
def test_distinct_scores_hit_the_share_exactly(share):
    scores = np.random.default_rng(0).random(100)
    t = threshold_for_strong_share(scores, share)
    assert strong_share(scores, t) == pytest.approx(share)
    assert np.mean(routes_to_strong(scores, t)) == pytest.approx(share)


def test_threshold_is_the_lowest_score_sent_to_strong():
    scores = [0.1, 0.4, 0.2, 0.9, 0.7]
    assert threshold_for_strong_share(scores, 0.4) == 0.7
    assert threshold_for_strong_share(scores, 1.0) == 0.1
    t0 = threshold_for_strong_share(scores, 0.0)
    assert t0 > 0.9 and t0 == np.nextafter(0.9, 1.0)


def test_tied_scores_pick_the_closest_realised_share():
    scores = [0.2, 0.5, 0.5, 0.5, 0.9]  # achievable shares: 0, 0.2, 0.8, 1.0
    t = threshold_for_strong_share(scores, 0.6)
    assert t == 0.5 and strong_share(scores, t) == pytest.approx(0.8)  # 0.8 is closer than 0.2
    t = threshold_for_strong_share(scores, 0.4)
    assert t == 0.9 and strong_share(scores, t) == pytest.approx(0.2)


def test_equally_close_shares_prefer_fewer_strong_calls():
    scores = [0.3, 0.3, 0.7, 0.7]  # achievable: 0, 0.5, 1.0
    assert strong_share(scores, threshold_for_strong_share(scores, 0.25)) == 0.0
    assert strong_share(scores, threshold_for_strong_share(scores, 0.75)) == 0.5
    # 0.3 * 10 = 3.0000000000000004 in floats: the tie must still break toward fewer strong calls.
    scores = [0.1] * 2 + [0.5] * 2 + [0.6] * 2 + [0.8] * 2 + [0.9] * 2
    assert strong_share(scores, threshold_for_strong_share(scores, 0.3)) == pytest.approx(0.2)


def test_all_scores_tied():
    scores = [0.5] * 10
    assert strong_share(scores, threshold_for_strong_share(scores, 0.4)) == 0.0
    assert strong_share(scores, threshold_for_strong_share(scores, 0.6)) == 1.0


@pytest.mark.parametrize(
    "scores, share",
    [([], 0.5), ([0.1, math.nan], 0.5), ([[0.1, 0.2]], 0.5), ([0.1], -0.1), ([0.1], 1.5), ([0.1], math.nan),
     ([0.1], "half")],
)
def test_bad_input_is_refused(scores, share):
    with pytest.raises(ValueError):
        threshold_for_strong_share(scores, share)


def test_strong_share_validates():
    assert strong_share([0.1, 0.5, 0.5], 0.5) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        strong_share([], 0.5)
    with pytest.raises(ValueError):
        strong_share([0.1], math.nan)
