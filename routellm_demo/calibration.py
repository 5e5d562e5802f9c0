"""Turn "send X% of traffic to the strong model" into a threshold on router scores.

A threshold is only meaningful relative to a router's score distribution (RouteLLM calibrates it on
a sample of prompts). The rule is always ``strong if p >= threshold``
(:func:`routellm_demo.routers.base.routes_to_strong`).
"""

from __future__ import annotations

import math

import numpy as np


def _as_scores(scores) -> np.ndarray:
    """Scores as a non-empty finite 1-D float array, or a ValueError saying what is wrong."""
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {values.shape}")
    if values.size == 0:
        raise ValueError("scores is empty: need at least one prompt score to calibrate on")
    if not np.all(np.isfinite(values)):
        raise ValueError("scores contain NaN or infinity")
    return values


def threshold_for_strong_share(scores, strong_share: float) -> float:
    """The threshold that sends ``strong_share`` (0..1) of ``scores`` to the strong model.

    The threshold returned is always one of the scores (the lowest score still sent to strong), or,
    for a share of 0 (or one closest to 0), the next float above the highest score.

    Tied scores move together, so only some shares are achievable. We then pick the threshold whose
    realised share is closest to the target; when two are equally close we pick the higher threshold,
    i.e. the smaller strong share (the cheaper choice). Use :func:`strong_share` to see the share
    actually realised.
    """
    values = _as_scores(scores)
    try:
        target = float(strong_share)
    except (TypeError, ValueError):
        raise ValueError(f"strong_share must be a number in [0, 1], got {strong_share!r}") from None
    if not (math.isfinite(target) and 0.0 <= target <= 1.0):
        raise ValueError(f"strong_share must be in [0, 1], got {strong_share!r}")
    distinct_desc = np.unique(values)[::-1]
    # Threshold = distinct_desc[j] sends every score >= it to strong.
    sent = np.searchsorted(np.sort(-values), -distinct_desc, side="right")
    candidates = np.concatenate([[np.nextafter(distinct_desc[0], np.inf)], distinct_desc])
    sent = np.concatenate([[0], sent])
    # Rounded so that float noise in target * n cannot break an exact tie in distance.
    distance = np.round(np.abs(sent - target * values.size), 9)
    best = int(np.argmin(distance))  # argmin takes the first, i.e. the higher threshold, on ties
    return float(candidates[best])


def strong_share(scores, threshold: float) -> float:
    """Share of ``scores`` that the rule ``p >= threshold`` sends to the strong model."""
    values = _as_scores(scores)
    if math.isnan(float(threshold)):
        raise ValueError("threshold is NaN")
    return float(np.mean(values >= threshold))
