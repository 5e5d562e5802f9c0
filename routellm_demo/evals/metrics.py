"""RouteLLM's router metrics, computed exactly on the curve a router can actually achieve.

A router scores every prompt; a threshold t sends prompts with ``score >= t`` to the strong model and
the rest to the weak one. Each threshold gives a point (x = share of calls to strong, y = mean quality).
Thresholds can only fall *between* distinct scores, so tied prompts always move together: the
achievable points are one per distinct score (plus "all weak"). Between two achievable points the curve
is interpolated linearly, which is what a router gets by flipping a coin between the two thresholds;
nothing finer is claimed. A router with all scores equal thus gets the straight line from weak to
strong, and no metric pretends it can pick a share in between by its scores.

Definitions (RouteLLM, arXiv 2406.18665 section 5.1 and its evaluate.py):

- PGR(x) = (q(x) - q_weak) / (q_strong - q_weak);
- AUC = area under q(x) over x in [0, 1]; APGR = area under PGR(x) = (AUC - q_weak) / (q_strong - q_weak);
- CPT(p%) = the least strong share x with PGR(x) >= p% (first crossing of the interpolated curve,
  so a curve that is not monotone is not credited with a share it only reaches later);
- the oracle sends a prompt to strong exactly when strong is strictly better, best gains first, and
  never spends more calls than it gains from (RouteLLM's ``get_optimal_accuracy``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

GRID = np.linspace(0.0, 1.0, 101)
CPT_LEVELS = (20, 50, 80)
_EPS = 1e-9


@dataclass
class Curve:
    """Achievable points, x strictly increasing from 0 to 1; ``thresholds[i]`` gives point i."""

    x: np.ndarray
    y: np.ndarray
    thresholds: np.ndarray

    def at(self, x) -> np.ndarray:
        """Quality at strong share(s) x, linearly interpolated between achievable points."""
        return np.interp(x, self.x, self.y)


def _as_arrays(scores, strong_quality, weak_quality) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    sq = np.asarray(strong_quality, dtype=np.float64)
    wq = np.asarray(weak_quality, dtype=np.float64)
    if s.ndim != 1 or s.shape != sq.shape or s.shape != wq.shape:
        raise ValueError(f"scores {s.shape}, strong quality {sq.shape} and weak quality {wq.shape} must be equal 1-D")
    if s.size == 0:
        raise ValueError("no prompts to evaluate")
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(sq)) and np.all(np.isfinite(wq))):
        raise ValueError("scores and qualities must be finite (no NaN or infinity)")
    return s, sq, wq


def quality_curve(scores, strong_quality, weak_quality) -> Curve:
    """Every achievable (strong share, quality) point of a router's scores, from all-weak to all-strong."""
    s, sq, wq = _as_arrays(scores, strong_quality, weak_quality)
    n = s.size
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    cum_gain = np.cumsum(sq[order] - wq[order])
    # The last index of each run of equal scores: a threshold there takes the whole run.
    ends = np.flatnonzero(np.append(s_sorted[1:] != s_sorted[:-1], True))
    x = np.concatenate([[0.0], (ends + 1) / n])
    y = (wq.sum() + np.concatenate([[0.0], cum_gain[ends]])) / n
    thresholds = np.concatenate([[np.nextafter(s_sorted[0], np.inf)], s_sorted[ends]])
    return Curve(x, y, thresholds)


def quantile_curve(scores, strong_quality, weak_quality, n_bins: int = 10) -> Curve:
    """The points RouteLLM's evaluate.py reports: thresholds at the score quantiles 0, 1/n, ..., 1
    (each ``score >= t``, the top one ``score > t``), i.e. a subset of the achievable points."""
    full = quality_curve(scores, strong_quality, weak_quality)
    s = np.asarray(scores, dtype=np.float64)
    qs = np.quantile(s, np.linspace(0.0, 1.0, int(n_bins) + 1))
    # Achievable thresholds are descending in full.thresholds; ">= q" means the lowest one >= q.
    asc = full.thresholds[::-1]
    picks = {len(asc) - 1 - int(np.searchsorted(asc, q, side="left")) for q in qs[:-1]}
    picks.add(0)  # the top quantile with ">" sends nothing to strong
    idx = np.array(sorted(picks))
    return Curve(full.x[idx], full.y[idx], full.thresholds[idx])


def pgr(quality, q_weak: float, q_strong: float):
    """Performance gap recovered; NaN when both models score the same (no gap to recover)."""
    gap = q_strong - q_weak
    if abs(gap) <= _EPS * max(1.0, abs(q_strong)):
        return np.full(np.shape(quality), np.nan) if np.ndim(quality) else math.nan
    return (np.asarray(quality, dtype=np.float64) - q_weak) / gap


def auc(curve: Curve) -> float:
    """Area under quality over strong share in [0, 1] (exact for the piecewise-linear curve)."""
    return float(np.trapezoid(curve.y, curve.x))


def apgr(curve: Curve, q_weak: float, q_strong: float) -> float:
    """Area under the PGR curve over [0, 1] (RouteLLM's APGR); 0.5 for random routing."""
    return float(pgr(auc(curve), q_weak, q_strong))


def share_for_quality(curve: Curve, target: float) -> float | None:
    """The least strong share whose (interpolated) quality reaches ``target``; None if none does."""
    tol = _EPS * max(1.0, abs(target))
    reached = np.flatnonzero(curve.y >= target - tol)
    if reached.size == 0:
        return None
    i = int(reached[0])
    if i == 0:
        return float(curve.x[0])
    x0, x1, y0, y1 = curve.x[i - 1], curve.x[i], curve.y[i - 1], curve.y[i]
    return float(min(x1, x0 + (target - y0) / (y1 - y0) * (x1 - x0)))


def cpt(curve: Curve, q_weak: float, q_strong: float, pct: float) -> float | None:
    """Call-performance threshold: least strong share with PGR >= pct% (None if never reached)."""
    if math.isnan(float(pgr(q_strong, q_weak, q_strong))):
        return None
    return share_for_quality(curve, q_weak + pct / 100.0 * (q_strong - q_weak))


def oracle_curve(strong_quality, weak_quality) -> Curve:
    """The best any router can do within a budget of strong calls: best gains first, never a loss."""
    sq = np.asarray(strong_quality, dtype=np.float64)
    wq = np.asarray(weak_quality, dtype=np.float64)
    gain = sq - wq
    curve = quality_curve(gain, sq, wq)
    # Beyond the helpful prompts, spending more calls is optional: keep the best quality so far.
    return Curve(curve.x, np.maximum.accumulate(curve.y), curve.thresholds)


def random_scores(n: int, seed: int) -> np.ndarray:
    """Uniform scores from a seed stream of their own (never the stream a caller drew data from)."""
    return np.random.default_rng((int(seed), 0x2406_18665)).random(int(n))


def random_curve(strong_quality, weak_quality, *, seeds: int = 10, grid=GRID) -> Curve:
    """Mean quality over ``seeds`` random routers, on ``grid``; it tends to the weak-strong line."""
    sq = np.asarray(strong_quality, dtype=np.float64)
    wq = np.asarray(weak_quality, dtype=np.float64)
    ys = [quality_curve(random_scores(sq.size, seed), sq, wq).at(grid) for seed in range(seeds)]
    return Curve(np.asarray(grid, dtype=np.float64), np.mean(ys, axis=0), np.full(len(grid), np.nan))


def cost_reduction(strong_share: float | None, strong_price: float, weak_price: float) -> float | None:
    """Saving versus always-strong at a strong share (prices per call, or per token with equal token
    counts): 1 - (x * strong + (1 - x) * weak) / strong."""
    if strong_share is None or strong_price <= 0:
        return None
    return float(1.0 - (strong_share * strong_price + (1.0 - strong_share) * weak_price) / strong_price)


def _pct(share: float | None) -> float | None:
    return None if share is None else 100.0 * share


def fold_curve(scores, strong_quality, weak_quality, folds, curve_fn=quality_curve) -> Curve:
    """Cross-validation's curve: each fold's router calibrated on its own fold, averaged by fold size.

    In K-fold CV every fold is scored by a different fitted router, and a threshold only means
    something for one router's score scale. Sending share x of *each* fold to strong (each router's
    own quantile threshold, as the app calibrates "x% to strong") sends x overall, with quality
    sum_f n_f q_f(x) / n. One threshold over the pooled raw scores would instead rank folds by their
    routers' offsets, a protocol artefact no deployed router has (prompt-blind routers suffer most:
    a fold whose training folds won more often gets a higher constant).
    """
    s, sq, wq = _as_arrays(scores, strong_quality, weak_quality)
    folds = np.asarray(folds)
    if folds.shape != s.shape:
        raise ValueError(f"folds {folds.shape} and scores {s.shape} differ")
    parts = []
    for f in np.unique(folds):
        m = folds == f
        parts.append((curve_fn(s[m], sq[m], wq[m]), int(m.sum())))
    x = np.unique(np.concatenate([c.x for c, _ in parts]))
    y = sum(n_f * c.at(x) for c, n_f in parts) / s.size
    return Curve(x, y, np.full(len(x), np.nan))


def router_curve(scores, strong_quality, weak_quality, folds=None) -> Curve:
    """The curve a router is judged by: pooled if one router scored everything, else per fold."""
    if folds is None:
        return quality_curve(scores, strong_quality, weak_quality)
    return fold_curve(scores, strong_quality, weak_quality, folds)


def curve_points(runs, grid=GRID) -> dict:
    """A router's held-out quality at each strong share of ``grid``, averaged over ``runs`` (one
    ``(scores, strong_quality, weak_quality, folds)`` per CV fold draw): the curve its metrics are read
    from, as metrics.json stores it for the what-if ({"strong_pct": [0..100], "quality": [...]})."""
    grid = np.asarray(grid, dtype=np.float64)
    ys = [router_curve(s, sq, wq, folds).at(grid) for s, sq, wq, folds in runs]
    return {"strong_pct": [round(float(100 * x), 6) for x in grid],
            "quality": [round(float(y), 6) for y in np.mean(ys, axis=0)]}


def summarize_curve(
    curve: Curve, q_weak: float, q_strong: float, *, strong_price: float = 1.0, weak_price: float = 0.0,
    keep: float = 0.95,
) -> dict:
    """APGR, AUC, CPT(20/50/80), strong share and cost reduction at ``keep`` of strong's quality."""
    at_keep = share_for_quality(curve, keep * q_strong)
    out = {"apgr": apgr(curve, q_weak, q_strong), "auc": auc(curve)}
    for level in CPT_LEVELS:
        out[f"cpt{level}"] = _pct(cpt(curve, q_weak, q_strong, level))
    out[f"strong_pct_at_{round(100 * keep)}"] = _pct(at_keep)
    out[f"cost_reduction_at_{round(100 * keep)}"] = _pct(cost_reduction(at_keep, strong_price, weak_price))
    return out


def summarize(
    scores, strong_quality, weak_quality, *, folds=None, strong_price: float = 1.0, weak_price: float = 0.0,
    keep: float = 0.95,
) -> dict:
    """All the reported numbers for one router; shares in percent of calls, None where undefined.

    With ``folds`` (cross-validation), the metrics use :func:`fold_curve`; ``apgr_pooled`` then gives
    APGR under one threshold over all folds' raw scores, for comparison. ``apgr_10bins`` is APGR on
    RouteLLM's 10 quantile thresholds only (its evaluate.py), next to ours on every achievable one.
    """
    s, sq, wq = _as_arrays(scores, strong_quality, weak_quality)
    q_strong, q_weak = float(sq.mean()), float(wq.mean())
    curve = router_curve(s, sq, wq, folds)
    out = summarize_curve(curve, q_weak, q_strong, strong_price=strong_price, weak_price=weak_price, keep=keep)
    if folds is None:
        bins = quantile_curve(s, sq, wq, 10)
    else:
        bins = fold_curve(s, sq, wq, folds, lambda *a: quantile_curve(*a, 10))
        out["apgr_pooled"] = apgr(quality_curve(s, sq, wq), q_weak, q_strong)
    out["apgr_10bins"] = apgr(bins, q_weak, q_strong)
    out["distinct_scores"] = int(len(np.unique(s)))
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}


def bootstrap_apgr(scores, strong_quality, weak_quality, *, folds=None, rounds: int = 200, seed: int = 0):
    """95% percentile interval of APGR over prompts resampled with replacement (within each fold).

    Why: GSM8K has ~650 prompts, so two routers 0.02 apart may be tied; the interval says so.
    """
    s, sq, wq = _as_arrays(scores, strong_quality, weak_quality)
    rng = np.random.default_rng((int(seed), 0xB007))
    fold_of = np.zeros(s.size, dtype=np.int64) if folds is None else np.unique(np.asarray(folds), return_inverse=True)[1]
    members = [np.flatnonzero(fold_of == f) for f in range(int(fold_of.max()) + 1)]
    values = []
    for _ in range(int(rounds)):
        idx = np.concatenate([rng.choice(m, size=m.size) for m in members])
        b_sq, b_wq = sq[idx], wq[idx]
        curve = router_curve(s[idx], b_sq, b_wq, None if folds is None else fold_of[idx])
        value = apgr(curve, float(b_wq.mean()), float(b_sq.mean()))
        if not math.isnan(value):
            values.append(value)
    if not values:
        return None
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [float(lo), float(hi)]


def baseline_summary(strong_quality, weak_quality, *, seeds: int = 10, **prices) -> dict:
    """The oracle's numbers and the random baseline's mean over seeds, for the same table."""
    sq = np.asarray(strong_quality, dtype=np.float64)
    wq = np.asarray(weak_quality, dtype=np.float64)
    oracle = summarize_curve(oracle_curve(sq, wq), float(wq.mean()), float(sq.mean()), **prices)
    runs = [summarize(random_scores(sq.size, seed), sq, wq, **prices) for seed in range(seeds)]
    random_mean = {}
    for key in runs[0]:
        vals = [r[key] for r in runs if r[key] is not None]
        random_mean[key] = float(np.mean(vals)) if len(vals) == len(runs) else None
    return {"oracle": oracle, "random (mean of seeds)": random_mean}
