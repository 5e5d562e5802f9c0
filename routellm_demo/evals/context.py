"""Last turn or conversation? Both routing modes scored on the same prompts, folds and routers, and
their APGR difference with a paired bootstrap over questions (issue #16).

:func:`compare_contexts` runs ``eval``'s own protocol (:func:`~routellm_demo.evals.command.collect_scores`:
grouped K-fold CV by question, optionally beside the other benchmarks' gold data) once per routing mode
and fold draw. The two modes see identical folds (fold assignment depends on the groups and the seed
only), so their scores are paired prompt by prompt.

:func:`paired_bootstrap` resamples *questions* (the CV groups) with replacement, recomputes both modes'
APGR on each resample (each fold's router calibrated on its own fold, as ``eval`` does; mean over the
fold draws) and reports the difference's 95% percentile interval. With ~40 MT-Bench questions that
interval is wide; :func:`context_wins` says whether it lies above zero.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from routellm_demo.conversation import CONTEXT, CONTEXT_WEIGHT, LAST_TURN
from routellm_demo.evals.metrics import apgr, quality_curve, router_curve

DEFAULT_ROUTERS = ("sw_ranking", "mf", "classifier")


def draw_apgr(scores: Sequence[np.ndarray], strong_quality, weak_quality, folds: Sequence, idx=None) -> float:
    """APGR averaged over fold draws (``scores[d]`` scored with ``folds[d]``), on prompts ``idx``."""
    sq = np.asarray(strong_quality, dtype=np.float64)
    wq = np.asarray(weak_quality, dtype=np.float64)
    idx = np.arange(sq.size) if idx is None else np.asarray(idx)
    q_strong, q_weak = float(sq[idx].mean()), float(wq[idx].mean())
    values = [apgr(router_curve(np.asarray(s)[idx], sq[idx], wq[idx], None if f is None else np.asarray(f)[idx]),
                   q_weak, q_strong) for s, f in zip(scores, folds)]
    return float(np.mean(values))


def paired_bootstrap(scores_a: Sequence[np.ndarray], scores_b: Sequence[np.ndarray], strong_quality, weak_quality,
                     groups, folds: Sequence, *, rounds: int = 2000, seed: int = 0) -> dict:
    """APGR of modes a and b (mean over fold draws), b - a, and 95% percentile intervals from resampling
    ``groups`` (questions) with replacement; rounds whose resample has no quality gap are skipped."""
    groups = np.asarray(groups, dtype=object).astype(str)
    labels, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(labels))]
    a = draw_apgr(scores_a, strong_quality, weak_quality, folds)
    b = draw_apgr(scores_b, strong_quality, weak_quality, folds)
    rng = np.random.default_rng((int(seed), 0xC0_47E7))
    boot_a, boot_b = [], []
    for _ in range(int(rounds)):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
        va = draw_apgr(scores_a, strong_quality, weak_quality, folds, idx)
        vb = draw_apgr(scores_b, strong_quality, weak_quality, folds, idx)
        if not (math.isnan(va) or math.isnan(vb)):
            boot_a.append(va)
            boot_b.append(vb)
    boot_a, boot_b = np.array(boot_a), np.array(boot_b)
    diff = boot_b - boot_a

    def interval(x):
        return [float(v) for v in np.percentile(x, [2.5, 97.5])] if x.size else None

    return {"a": a, "b": b, "diff": b - a, "a_ci95": interval(boot_a), "b_ci95": interval(boot_b),
            "diff_ci95": interval(diff), "p_b_better": float((diff > 0).mean()) if diff.size else None,
            "rounds": int(diff.size), "groups": len(labels)}


def pooled_apgr(scores: Sequence[np.ndarray], strong_quality, weak_quality) -> float:
    """APGR under one threshold over all folds' raw scores, mean over draws (``eval``'s apgr_pooled)."""
    sq = np.asarray(strong_quality, dtype=np.float64)
    wq = np.asarray(weak_quality, dtype=np.float64)
    return float(np.mean([apgr(quality_curve(s, sq, wq), float(wq.mean()), float(sq.mean())) for s in scores]))


def compare_contexts(
    data_dir, routers: Sequence[str] = DEFAULT_ROUTERS, *, benchmark: str = "mt-bench", turn: int = 2,
    folds: int = 5, repeats: int = 5, seed: int = 0, combine: bool = True, train_dir=None, params: dict | None = None,
    weights: Sequence[float] = (CONTEXT_WEIGHT,), rounds: int = 2000, cache_db=None, progress: bool = False,
) -> dict:
    """Score ``routers`` on ``benchmark``'s ``turn`` in ``last_turn`` mode and in ``context`` mode (once per
    weight in ``weights``; the first is the one compared), over ``repeats`` fold draws; returns per router
    each mode's APGR and :func:`paired_bootstrap` of context minus last turn."""
    from routellm_demo.evals.command import DEFAULT_CACHE_DB, collect_scores
    from routellm_demo.evals.routers import fitter_for

    params = params or {}
    fitters = {name: fitter_for(name, params.get(name), target=benchmark) for name in routers}
    seeds = [seed] if train_dir is not None else list(range(seed, seed + repeats))
    modes = [(LAST_TURN, CONTEXT_WEIGHT)] + [(CONTEXT, float(w)) for w in weights]
    runs: dict[tuple[str, float], list] = {m: [] for m in modes}
    for s in seeds:
        for mode, weight in modes:
            result, _ = collect_scores(benchmark, data_dir, fitters, train_dir=train_dir, folds=folds, combine=combine,
                                       seed=s, cache_db=cache_db or DEFAULT_CACHE_DB, progress=progress, turn=turn,
                                       context=mode, context_weight=weight)
            runs[(mode, weight)].append(result)
    base = runs[modes[0]][0].evalset
    for results in runs.values():  # the pairing rests on this: same prompts, same order, same folds per draw
        for d, r in enumerate(results):
            if r.evalset.prompts != base.prompts or (r.folds is not None and
                                                     not np.array_equal(r.folds, runs[modes[0]][d].folds)):
                raise AssertionError("the routing modes were scored on different prompts or folds")
    sq, wq, groups = base.strong_quality, base.weak_quality, base.groups
    fold_draws = [r.folds for r in runs[modes[0]]]
    out_routers = {}
    for name in routers:
        last = [r.scores[name] for r in runs[modes[0]]]
        row = {"last_turn": draw_apgr(last, sq, wq, fold_draws), "last_turn_pooled": pooled_apgr(last, sq, wq)}
        for k, (mode, weight) in enumerate(modes[1:]):
            ctx = [r.scores[name] for r in runs[(mode, weight)]]
            if k == 0:
                row["context"] = draw_apgr(ctx, sq, wq, fold_draws)
                row["context_pooled"] = pooled_apgr(ctx, sq, wq)
                row["paired"] = paired_bootstrap(last, ctx, sq, wq, groups, fold_draws, rounds=rounds, seed=seed)
            row.setdefault("context_by_weight", {})[f"{weight:g}"] = draw_apgr(ctx, sq, wq, fold_draws)
        out_routers[name] = row
    first = runs[modes[0]][0]
    return {
        "benchmark": base.benchmark, "n_prompts": len(base), "questions": int(len(set(map(str, groups)))),
        "skipped_contaminated": base.skipped_contaminated, "q_strong": base.q_strong, "q_weak": base.q_weak,
        "protocol": first.report["protocol"] + (f", mean of {len(seeds)} fold draws (seeds {seeds[0]}-{seeds[-1]})"
                                                if len(seeds) > 1 else ""),
        "extra_training_prompts": first.report.get("extra_training_prompts", first.report.get("training_prompts")),
        "combine": bool(combine and train_dir is None), "train_dir": None if train_dir is None else str(train_dir),
        "context_weight": float(weights[0]), "weights": [float(w) for w in weights], "bootstrap_rounds": rounds,
        "routers": out_routers,
    }


def context_wins(result: dict, router: str) -> bool:
    """Whether ``context`` beat ``last_turn`` for ``router``: the paired interval lies above zero."""
    ci = result["routers"][router]["paired"]["diff_ci95"]
    return ci is not None and ci[0] > 0


def format_comparison(result: dict) -> str:
    """A plain-text table of :func:`compare_contexts`'s result."""
    lines = [f"{result['benchmark']}: {result['n_prompts']} prompts from {result['questions']} questions "
             f"({result['skipped_contaminated']} contaminated skipped); {result['protocol']}"
             + ("; trained beside the other benchmarks' gold data" if result["combine"] else "")
             + f"; strong {result['q_strong']:.3f}, weak {result['q_weak']:.3f}",
             f"context weight {result['context_weight']:g}; paired bootstrap over questions, "
             f"{result['bootstrap_rounds']} rounds",
             "",
             f"{'router':<12} {'last_turn':>9} {'context':>9} {'diff':>8}  {'diff 95% CI':<18} {'P(ctx>last)':>11}"
             f"  {'pooled last/ctx':>15}"]
    for name, row in result["routers"].items():
        p = row["paired"]
        ci = "n/a" if p["diff_ci95"] is None else f"[{p['diff_ci95'][0]:+.3f}, {p['diff_ci95'][1]:+.3f}]"
        lines.append(f"{name:<12} {row['last_turn']:>9.3f} {row['context']:>9.3f} {p['diff']:>+8.3f}  {ci:<18} "
                     f"{p['p_b_better']:>11.2f}  {row['last_turn_pooled']:>7.3f}/{row['context_pooled']:.3f}")
    if len(result["weights"]) > 1:
        lines += ["", "context APGR by weight (for information; the weight was fixed beforehand, not chosen here):"]
        for name, row in result["routers"].items():
            lines.append(f"{name:<12} " + "  ".join(f"w={w}: {v:.3f}" for w, v in row["context_by_weight"].items()))
    return "\n".join(lines)
