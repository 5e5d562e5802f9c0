"""Last turn or conversation: APGR on MT-Bench's second turns in both routing modes (issue #16).

Runs ``eval``'s protocol (grouped K-fold CV by question, repeated over fold draws; by default beside
MMLU's and GSM8K's gold data, ``--no-combine`` for MT-Bench alone) once per routing mode
(``routing.context``: ``last_turn``, ``context``) on the same prompts and folds, and prints each
router's APGR in both modes, the difference and its 95% interval from a paired bootstrap over
questions. ``context`` should become the default only if that interval lies above zero.

``--weights 0.5 1 2`` also prints context mode's APGR at other context weights, for information only:
the weight in use (``conversation.CONTEXT_WEIGHT``) was fixed before measuring, and choosing it here
would fit 39 questions' noise. ``--checkpoints DIR`` adds the shipped ``mf``/``classifier`` checkpoints as
the app runs them (no refit, one router for every prompt: pooled APGR); up to 6 of these questions'
first turns were in their training data (their model cards), which favours ``context`` mode there.

Run: python benchmarks/context_routing.py --data-dir ../shared/data/routellm [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from routellm_demo.conversation import CONTEXT, CONTEXT_WEIGHT, LAST_TURN  # noqa: E402
from routellm_demo.evals.command import DEFAULT_CACHE_DB  # noqa: E402
from routellm_demo.evals.context import (  # noqa: E402
    DEFAULT_ROUTERS, compare_contexts, context_wins, format_comparison, paired_bootstrap, pooled_apgr,
)


def checkpoint_comparison(data_dir, checkpoint_dir, cache_db, rounds: int, seed: int) -> dict:
    """The shipped checkpoints scored on turn 2 in both modes, as the app would (pooled APGR)."""
    from routellm_demo.embeddings import Embedder
    from routellm_demo.evals.benchmarks import load_benchmark, with_embeddings
    from routellm_demo.routers import registry
    from routellm_demo.store import Store

    with Store(cache_db) as store:
        embedder = Embedder(store)
        sets = {mode: with_embeddings(load_benchmark(data_dir, "mt-bench", turn=2), embedder, context=mode)
                for mode in (LAST_TURN, CONTEXT)}
    base = sets[LAST_TURN]
    out = {}
    for name in ("mf", "classifier"):
        router = registry.get(name).cls.load(Path(checkpoint_dir) / f"{name}.npz")
        scores = {m: router.win_probability(s.embeddings, s.prompts) for m, s in sets.items()}
        paired = paired_bootstrap([scores[LAST_TURN]], [scores[CONTEXT]], base.strong_quality, base.weak_quality,
                                  base.groups, [None], rounds=rounds, seed=seed)
        out[name] = {"last_turn": pooled_apgr([scores[LAST_TURN]], base.strong_quality, base.weak_quality),
                     "context": pooled_apgr([scores[CONTEXT]], base.strong_quality, base.weak_quality),
                     "paired": paired}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default="../shared/data/routellm")
    p.add_argument("--routers", nargs="+", default=list(DEFAULT_ROUTERS))
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5, help="fold draws (seeds seed..seed+repeats-1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-combine", action="store_true", help="train on MT-Bench's other questions only")
    p.add_argument("--train-dir", help="train on this folder's gold data instead of CV")
    p.add_argument("--weights", nargs="+", type=float, default=[CONTEXT_WEIGHT],
                   help=f"context weights; the first is compared (default {CONTEXT_WEIGHT:g}, the shipped one)")
    p.add_argument("--rounds", type=int, default=2000, help="bootstrap rounds")
    p.add_argument("--cache-db", default=str(DEFAULT_CACHE_DB))
    p.add_argument("--checkpoints", metavar="DIR", help="also score the shipped checkpoints in DIR (no refit)")
    p.add_argument("--json", help="write the result here")
    args = p.parse_args(argv)

    started = time.perf_counter()
    result = compare_contexts(args.data_dir, args.routers, folds=args.folds, repeats=args.repeats, seed=args.seed,
                              combine=not args.no_combine, train_dir=args.train_dir, weights=args.weights,
                              rounds=args.rounds, cache_db=args.cache_db)
    print(format_comparison(result))
    for name in args.routers:
        print(f"{name}: context {'wins' if context_wins(result, name) else 'does not win'} (interval above zero?)")
    if args.checkpoints:
        result["checkpoints"] = checkpoint_comparison(args.data_dir, args.checkpoints, args.cache_db, args.rounds,
                                                      args.seed)
        print("\nshipped checkpoints, no refit (pooled APGR; up to 6 first turns were in their training data):")
        for name, row in result["checkpoints"].items():
            ci = row["paired"]["diff_ci95"]
            print(f"{name:<12} last_turn {row['last_turn']:.3f}  context {row['context']:.3f}  "
                  f"diff {row['paired']['diff']:+.3f}  95% CI [{ci[0]:+.3f}, {ci[1]:+.3f}]")
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(f"\n{result['seconds']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
