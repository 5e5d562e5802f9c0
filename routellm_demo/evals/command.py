"""The ``eval`` subcommand: score routers on a RouteLLM benchmark under the honest protocol.

``register(subparsers)`` adds it to the main CLI; :func:`run_eval` does the work and returns the
results (it writes files but prints nothing); :func:`cmd_eval` is the thin printing layer.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from routellm_demo.conversation import CONTEXT_WEIGHT, DEFAULT_MODE, ROUTING_CONTEXTS
from routellm_demo.evals.benchmarks import (
    MT_BENCH_TURNS, EvalError, available_benchmarks, check_data_dir, concat, context_leaks, load_benchmark,
    with_embeddings, without_context_turns,
)
from routellm_demo.evals.metrics import baseline_summary, bootstrap_apgr, curve_points, summarize
from routellm_demo.evals.protocol import Scores, cross_validated_scores, train_test_scores
from routellm_demo.evals.report import TABLE_COLUMNS, format_table, plot_curves, write_metrics, write_prompts, write_scores
from routellm_demo.evals.routers import EVAL_ROUTERS, fitter_for
from routellm_demo.importers import BENCHMARKS

DEFAULT_CACHE_DB = Path("data/eval_cache.db")
MIN_FOLD_PROMPTS = 20
SPLITS = ("group", "prompt")
# RouteLLM's prices (USD per 1M tokens, paper section 5.2): GPT-4 $24.7, Mixtral-8x7B $0.24.
DEFAULT_STRONG_PRICE = 24.7
DEFAULT_WEAK_PRICE = 0.24


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``eval`` to an argparse subparsers object; the parsed args carry ``func=cmd_eval``."""
    s = subparsers.add_parser(
        "eval", help="evaluate routers on RouteLLM's MMLU / GSM8K / MT-Bench (APGR, CPT, cost at 95%%)",
        description="Score routers on prompts they were never trained on: grouped K-fold cross-validation "
        "inside --data-dir, or training on --train-dir. Writes metrics.json, scores.csv and curve.png.",
    )
    s.add_argument("--benchmark", required=True, choices=BENCHMARKS)
    s.add_argument("--data-dir", required=True, help="RouteLLM's evals folder (mmlu/, gsm8k/, mt_bench/)")
    s.add_argument("--train-dir", help="train on every benchmark's gold battles in this folder instead of CV")
    s.add_argument("--routers", nargs="+", default=["random", "elo", "sw_ranking", "mf", "classifier"],
                   choices=EVAL_ROUTERS, metavar="ROUTER", help=f"any of: {', '.join(EVAL_ROUTERS)}")
    s.add_argument("--out", help="output folder (default: <eval_dir>/<benchmark>, where the app's Evaluation tab "
                   "looks; eval_dir is set in the configuration, default data/eval)")
    s.add_argument("--folds", type=int, default=5, help="K for grouped K-fold cross-validation (default 5)")
    s.add_argument("--split", choices=SPLITS, default="group",
                   help="CV folds by group (MMLU subject, MT-Bench question, GSM8K row; the honest default) or by "
                        "prompt (MMLU subjects then on both sides, like RouteLLM's setting: easier)")
    s.add_argument("--combine", action="store_true",
                   help="CV: also train on the gold battles of the other benchmarks in --data-dir")
    s.add_argument("--turn", type=int, choices=MT_BENCH_TURNS,
                   help="mt-bench: score one turn on its own judge scores (2: the follow-up, routed as a "
                        "conversation per --context; default: each question once, its first turn's text, both "
                        "turns' mean score); writes to <eval_dir>/mt-bench-turn<N> by default")
    s.add_argument("--context", choices=ROUTING_CONTEXTS, default=DEFAULT_MODE,
                   help="what routers read of a conversation (--turn 2): the last user turn, or with the earlier "
                        f"user turns' embedding (routellm_demo/conversation.py; default {DEFAULT_MODE})")
    s.add_argument("--params", default="{}", help='router hyperparameters as JSON, e.g. \'{"mf": {"dim": 32}}\'')
    s.add_argument("--cache-db", default=str(DEFAULT_CACHE_DB), help="embedding cache (SQLite store)")
    s.add_argument("--strong-price", type=float, default=DEFAULT_STRONG_PRICE, help="per call or per 1M tokens")
    s.add_argument("--weak-price", type=float, default=DEFAULT_WEAK_PRICE, help="same unit as --strong-price")
    s.add_argument("--limit", type=int, help="evaluate only the first N prompts (quick checks)")
    s.add_argument("--seed", type=int, default=0, help="fold assignment seed")
    s.add_argument("--repeats", type=int, default=1,
                   help="CV: repeat with fold seeds seed, seed+1, ... and report each router's mean (GSM8K's 649 "
                        "prompts make one fold draw's CPT swing by points); files and interval are the first draw's")
    s.add_argument("--bootstrap", type=int, default=200, help="bootstrap rounds for APGR's 95%% interval (0: none)")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.set_defaults(func=cmd_eval)
    return s


def parse_params(text: str) -> dict[str, dict]:
    try:
        params = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise EvalError(f"--params is not valid JSON ({exc.msg}); e.g. '{{\"mf\": {{\"dim\": 32}}}}'") from None
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise EvalError('--params must map router names to objects, e.g. {"mf": {"dim": 32}}')
    unknown = set(params) - set(EVAL_ROUTERS)
    if unknown:
        raise EvalError(f"--params names unknown router(s): {', '.join(sorted(unknown))}")
    return params


def _load_all(data_dir, benchmarks, embedder, progress: bool) -> list:
    return [with_embeddings(load_benchmark(data_dir, b), embedder, progress=progress) for b in benchmarks]


def collect_scores(
    benchmark: str, data_dir, fitters: dict, *, train_dir=None, folds: int = 5, split: str = "group",
    combine: bool = False,
    limit: int | None = None, seed: int = 0, cache_db=DEFAULT_CACHE_DB, progress: bool = True,
    turn: int | None = None, context: str = DEFAULT_MODE, context_weight: float = CONTEXT_WEIGHT,
) -> tuple[Scores, dict]:
    """Out-of-sample scores of every fitter on ``benchmark`` (train/test or grouped CV), and the
    embedding cache's statistics. ``turn``/``context``: see :func:`load_benchmark` and
    :mod:`routellm_demo.conversation`; a prompt whose earlier turn is a training prompt is not scored
    (or, for ``--combine``, that training prompt is left out), in either context mode."""
    from routellm_demo.embeddings import Embedder
    from routellm_demo.store import Store

    with Store(cache_db) as store:
        embedder = Embedder(store)
        evalset = load_benchmark(data_dir, benchmark, turn=turn)
        if limit is not None:
            evalset = evalset.subset(slice(0, int(limit)))
        evalset = with_embeddings(evalset, embedder, context=context, weight=context_weight, progress=progress)
        if train_dir is not None:
            train = concat(_load_all(train_dir, available_benchmarks(train_dir), embedder, progress))
            leaks = context_leaks(evalset, train.prompts)
            if leaks.all():
                raise EvalError(f"every one of the {len(evalset)} conversations has an earlier turn in --train-dir's "
                                "training prompts: train on a folder without these MT-Bench questions")
            evalset = evalset.subset(~leaks)
            result = train_test_scores(evalset, train, fitters, progress=progress)
            result.report["eval_prompts_dropped_as_context_in_training"] = int(leaks.sum())
        else:
            others = [b for b in available_benchmarks(data_dir) if b != benchmark] if combine else []
            extra = concat(_load_all(data_dir, others, embedder, progress)) if others else None
            if extra is not None:
                extra = without_context_turns(extra, evalset)
            if split == "prompt":
                evalset = evalset.by_prompt()
            result = cross_validated_scores(evalset, fitters, k=folds, seed=seed, extra=extra, progress=progress)
            if split == "prompt":
                result.report["protocol"] += " by prompt (groups such as MMLU subjects on both sides)"
        return result, {"encoded": embedder.encoded, "cache_hits": embedder.cache_hits}


def _warnings(result: Scores) -> list[str]:
    out = []
    if result.folds is not None and np.bincount(result.folds).min() < MIN_FOLD_PROMPTS:
        out.append(f"the smallest CV fold has {int(np.bincount(result.folds).min())} prompts: per-fold "
                   "calibration can hardly rank so few, so apgr says little; look at apgr_pooled too")
    if len(result.evalset) < 100:
        out.append(f"only {len(result.evalset)} prompts: every metric here is mostly noise")
    return out


def build_metrics(result: Scores, *, strong_price: float, weak_price: float, bootstrap: int = 200,
                  seed: int = 0) -> dict:
    """Every router's metrics (+ APGR's bootstrap interval), the oracle and random baselines."""
    scored = result.evalset
    sq, wq = scored.strong_quality, scored.weak_quality
    prices = {"strong_price": strong_price, "weak_price": weak_price}
    routers = {}
    for name, s in result.scores.items():
        routers[name] = summarize(s, sq, wq, folds=result.folds, **prices)
        if bootstrap:
            routers[name]["apgr_ci95"] = bootstrap_apgr(s, sq, wq, folds=result.folds, rounds=bootstrap, seed=seed)
    curve = "every achievable threshold"
    if result.folds is not None:
        curve += ("; CV: each fold's router calibrated on its own fold, curves averaged by fold size "
                  "(apgr_pooled: one threshold over all folds' raw scores)")
    return {
        "benchmark": scored.benchmark,
        "n_prompts": len(scored),
        "skipped_contaminated": scored.skipped_contaminated,
        "q_strong": scored.q_strong,
        "q_weak": scored.q_weak,
        **result.report,
        "prices": prices,
        "units": "apgr, auc: raw; cpt*, strong_pct_at_95, cost_reduction_at_95: percent of calls / of cost",
        "curve": curve,
        "warnings": _warnings(result),
        "routers": routers,
        "baselines": baseline_summary(sq, wq, **prices),
    }


def average_draws(rows: dict[str, dict], draws: list[Scores], **prices) -> None:
    """Replace each router's numbers in ``rows`` by their mean over the CV fold draws (in place); keep
    every draw's APGR and CPT(50%). Draw 0 is the one the rows were built from."""
    for name, row in rows.items():
        runs = [summarize(d.scores[name], d.evalset.strong_quality, d.evalset.weak_quality, folds=d.folds, **prices)
                for d in draws]
        for key in runs[0]:
            values = [r[key] for r in runs if isinstance(r[key], (int, float))]
            if values and key != "distinct_scores":
                row[key] = float(np.mean(values))
        row["apgr_by_draw"] = [r["apgr"] for r in runs]
        row["cpt50_by_draw"] = [r["cpt50"] for r in runs]


def held_out_curves(draws: list[Scores]) -> dict:
    """Per router, its held-out quality at strong shares 0, 1, ..., 100% (the curve its metrics read,
    mean over the fold draws): what the what-if reads an estimated quality from at a given share."""
    return {name: curve_points([(d.scores[name], d.evalset.strong_quality, d.evalset.weak_quality, d.folds)
                                for d in draws])
            for name in draws[0].scores}


def run_eval(
    benchmark: str, data_dir, out_dir, routers=("random", "elo", "sw_ranking", "mf", "classifier"), *,
    train_dir=None, folds: int = 5, split: str = "group", combine: bool = False, params: dict | None = None,
    cache_db=DEFAULT_CACHE_DB, strong_price: float = DEFAULT_STRONG_PRICE,
    weak_price: float = DEFAULT_WEAK_PRICE, limit: int | None = None, seed: int = 0, bootstrap: int = 200,
    repeats: int = 1, progress: bool = True, turn: int | None = None, context: str = DEFAULT_MODE,
) -> dict:
    """Evaluate ``routers`` on ``benchmark``; writes OUT/metrics.json, scores.csv, curve.png and
    returns the metrics dict (what metrics.json holds). Also writes prompts.csv (group, fold and both
    models' quality per prompt), so the metrics can be recomputed from the files alone. ``turn`` and
    ``context``: MT-Bench's turn 1 or 2 alone, routed on the last turn or the conversation."""
    started = time.perf_counter()
    routers = list(dict.fromkeys(routers))
    if not routers:
        raise EvalError("no router to evaluate")
    if split not in SPLITS:
        raise EvalError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    params = params or {}
    fitters = {name: fitter_for(name, params.get(name), target=benchmark) for name in routers}
    check_data_dir(data_dir, benchmark)
    if train_dir is not None:
        check_data_dir(train_dir)
    if repeats < 1 or (repeats > 1 and train_dir is not None):
        raise EvalError(f"--repeats must be at least 1, and 1 with --train-dir (no folds to redraw); got {repeats}")
    if limit is not None and limit < 2:
        raise EvalError(f"--limit must be at least 2, got {limit}")
    if not (strong_price > 0 and weak_price >= 0):
        raise EvalError(f"prices must be strong > 0 and weak >= 0, got {strong_price:g} and {weak_price:g}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    result, embed_stats = collect_scores(
        benchmark, data_dir, fitters, train_dir=train_dir, folds=folds, split=split, combine=combine, limit=limit,
        seed=seed,
        cache_db=cache_db, progress=progress, turn=turn, context=context,
    )
    draws = [result] + [
        collect_scores(benchmark, data_dir, fitters, folds=folds, split=split, combine=combine, limit=limit,
                       seed=seed + r, cache_db=cache_db, progress=progress, turn=turn, context=context)[0]
        for r in range(1, repeats)
    ]
    metrics = {
        "data_dir": str(data_dir),
        "train_dir": None if train_dir is None else str(train_dir),
        "combined_benchmarks": bool(combine and train_dir is None),
        "split": None if train_dir is not None else split,
        "params": params,
        "turn": turn,
        "context": None if turn is None else context,
        **build_metrics(result, strong_price=strong_price, weak_price=weak_price, bootstrap=bootstrap, seed=seed),
        "embeddings": embed_stats,
        "tuning": {name: f.history for name, f in fitters.items() if hasattr(f, "history")},
    }
    if repeats > 1:
        average_draws(metrics["routers"], draws, strong_price=strong_price, weak_price=weak_price)
        metrics["repeats"] = repeats
        metrics["fold_seeds"] = list(range(seed, seed + repeats))
        metrics["protocol"] += f", mean of {repeats} fold draws (seeds {seed}-{seed + repeats - 1})"
    metrics["curves"] = held_out_curves(draws)
    scored = result.evalset
    write_scores(out / "scores.csv", scored.prompts, result.scores)
    write_prompts(out / "prompts.csv", scored, result.folds)
    plot_curves(out / "curve.png", f"{benchmark}: {result.report['protocol']} ({len(scored)} prompts)",
                result.scores, scored.strong_quality, scored.weak_quality, result.folds)
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    metrics["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_metrics(out / "metrics.json", metrics)
    return metrics


def cmd_eval(args) -> int:
    if args.out is None:
        from routellm_demo.config import load_config

        args.out = str(load_config().eval_dir / (args.benchmark if args.turn is None else
                                                 f"{args.benchmark}-turn{args.turn}"))
    metrics = run_eval(
        args.benchmark, args.data_dir, args.out, args.routers, train_dir=args.train_dir, folds=args.folds,
        split=args.split, combine=args.combine, params=parse_params(args.params), cache_db=args.cache_db,
        strong_price=args.strong_price, weak_price=args.weak_price, limit=args.limit, seed=args.seed,
        bootstrap=args.bootstrap, repeats=args.repeats, progress=not args.quiet, turn=args.turn,
        context=args.context,
    )
    if metrics["context"]:
        print(f"routed on: {metrics['context']} (routellm_demo/conversation.py)")
    print(f"{metrics['benchmark']}: {metrics['n_prompts']} prompts ({metrics['skipped_contaminated']} contaminated "
          f"skipped), {metrics['protocol']}; strong {metrics['q_strong']:.4f}, weak {metrics['q_weak']:.4f}")
    for warning in metrics["warnings"]:
        print(f"warning: {warning}")
    dropped = metrics.get("eval_prompts_dropped_as_in_training")
    if dropped:
        print(f"dropped {dropped} eval prompt(s) that are also in --train-dir")
    columns = ["apgr", "apgr_ci95", *(() if metrics["train_dir"] else ("apgr_pooled",)), *TABLE_COLUMNS[1:]]
    print(format_table({**metrics["routers"], **metrics["baselines"]}, columns))
    print(f"wrote metrics.json, scores.csv, prompts.csv, curve.png to {args.out} in {metrics['seconds']:.0f} s")
    return 0


def main(argv=None) -> int:
    """Standalone entry (the main CLI wires :func:`register` instead)."""
    parser = argparse.ArgumentParser(prog="python -m routellm_demo.evals.command")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["eval", *(argv if argv is not None else sys.argv[1:])])
    try:
        return args.func(args)
    except ValueError as exc:
        print(f"eval: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
