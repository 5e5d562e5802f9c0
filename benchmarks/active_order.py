"""Which prompts to ask about (``routellm_demo/active.py``) on issue 18's protocol, with the router held still:
the votes' ridge (``routellm_demo/routers/vote_ridge.py``, the classifier's learner of a new domain) fitted on
the prompts each order chose, scored on a fixed set no order votes on.

For each domain and seed: the router is fitted once on every gold battle outside the domain and the watched
benchmark (as ``simulate-votes --seed-store all-other --watch``); the seed's permutation splits the domain as
simulate-votes does (the fixed evaluation set, the pool). Each order takes 200 votes from the pool in batches
of 10: ``random`` the permutation's first prompts, ``active`` by the coverage gap of the votes so far (the
arena's rule), ``uncertain`` by the router's uncertainty on its current scores (the rule tried first). At
50/100/150/200 votes a ridge is fitted on the chosen prompts' gold outcomes, the router's scores are blended
with it, and APGR is measured on the fixed set (``apgr_fixed``). Many seeds are cheap here (one router fit per
domain), and the fixed sets of ~100-200 prompts are coarse, so the default is 20 seeds. ``simulate-votes
--order`` measures the whole vote path (refits included) on fewer.

Run: python benchmarks/active_order.py [--router classifier|sw_ranking] [--seeds 20]
     [--orders random,active,uncertain] [--domains professional_psychology,moral_disputes,gsm8k]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from protocol import add_protocol_args, held_still, ridge_inputs  # noqa: E402
from routellm_demo import active  # noqa: E402
from routellm_demo.embeddings import Embedder  # noqa: E402
from routellm_demo.evals.metrics import summarize  # noqa: E402
from routellm_demo.replay import ACTIVE_BATCH, fixed_size  # noqa: E402
from routellm_demo.routers.vote_ridge import MIN_VOTES, VoteRidge  # noqa: E402
from routellm_demo.store import Store  # noqa: E402

CHECKPOINTS = (50, 100, 150, 200)
ORDERS = ("random", "active", "uncertain")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--router", default="classifier", choices=("classifier", "sw_ranking"))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--orders", default=",".join(ORDERS))
    add_protocol_args(parser)
    args = parser.parse_args()
    orders = [o for o in args.orders.split(",") if o]
    unknown = set(orders) - set(ORDERS)
    if unknown:
        parser.error(f"unknown order(s) {', '.join(sorted(unknown))}; choose from {', '.join(ORDERS)}")

    with Store(args.cache_db) as cache:
        embedder = Embedder(cache)
        for name in args.domains.split(","):
            setup = held_still(args.data_dir, name, embedder, args.router)
            voted, before, stored, outcome = setup.voted, setup.before, setup.stored, setup.outcome
            x, inputs = voted.embeddings, ridge_inputs(setup.router, voted)
            n = len(voted)

            def blended(chosen):
                if len(chosen) < MIN_VOTES:
                    return before
                ridge = VoteRidge().fit(x[chosen], outcome[chosen], stored, before[chosen], inputs[chosen])
                return ridge.blend(before, x, inputs)

            curves = {o: [] for o in orders}
            for seed in range(args.seeds):
                perm = np.random.default_rng(seed).permutation(n)  # simulate-votes' split of the domain
                fixed = perm[n - fixed_size(n, CHECKPOINTS[-1]):]
                pool = perm[: n - len(fixed)]

                def apgr(scores):
                    return summarize(scores[fixed], voted.strong_quality[fixed], voted.weak_quality[fixed])["apgr"]

                for order in orders:
                    pick_rng = np.random.default_rng([seed, 0xAC71])  # simulate-votes' own draws
                    chosen: list[int] = []
                    current, curve = before, [apgr(before)]
                    for k in range(0, CHECKPOINTS[-1], ACTIVE_BATCH):
                        if k and k in CHECKPOINTS:  # the router as it stands after k votes
                            current = blended(chosen)
                            curve.append(apgr(current))
                        left = pool[~np.isin(pool, chosen)]
                        if order == "random":
                            take = np.arange(ACTIVE_BATCH)
                            left = pool[k:]
                        elif order == "active":
                            take = active.next_prompts(x[chosen], x[left], ACTIVE_BATCH, pick_rng)
                        else:
                            take = active.choose(active.uncertainty(current[left]), ACTIVE_BATCH, pick_rng)
                        chosen.extend(left[take].tolist())
                    curve.append(apgr(blended(chosen)))
                    curves[order].append(curve)
            print(f"router={args.router} domain={name} seeds={args.seeds}: apgr_fixed at 0/"
                  + "/".join(map(str, CHECKPOINTS)) + " votes (mean), and after 200 against random (mean, "
                  "seeds ahead)", flush=True)
            for order in orders:
                c = np.array(curves[order])
                line = f"  {order:10s} " + " ".join(f"{v:.3f}" for v in c.mean(axis=0))
                if order != "random" and "random" in curves:
                    diff = c[:, -1] - np.array(curves["random"])[:, -1]
                    line += (f"   {diff.mean():+.3f} (standard error {diff.std(ddof=1) / np.sqrt(len(diff)):.3f}; "
                             f"ahead on {int((diff > 0).sum())} of {len(diff)} seeds)")
                print(line, flush=True)


if __name__ == "__main__":
    main()
