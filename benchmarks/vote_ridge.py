"""The votes' own ridge (``routellm_demo/routers/vote_ridge.py``) on issue 18's protocol, with the router
held still: what the ridge and its gate do, apart from the router's refit.

For each domain and seed (simulate-votes' random order): the router is fitted once on every gold battle
outside the domain and the watched benchmark (as ``simulate-votes --seed-store all-other --watch``); after k
votes a :class:`VoteRidge` is fitted on the voted prompts' vectors and outcomes against the store's prompts,
and the router's scores are blended with it. Printed: the voted domain's mean APGR on the prompts not voted
on yet at 0 (the router alone) and 50/100/150/200 votes, the mean blend weight there, and after 200 votes the
watched benchmark's APGR change, its strong share at the threshold that sent half of it to the strong model,
and its largest blend weight, per seed. ``simulate-votes --router classifier`` measures the whole vote path.

Run: python benchmarks/vote_ridge.py [--router classifier|sw_ranking] [--share 0.1] [--neighbours 50]
     [--reach 0.8] [--seeds 6] [--domains professional_psychology,moral_disputes,gsm8k]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from protocol import add_protocol_args, held_still, ridge_inputs, watch_name  # noqa: E402
from routellm_demo.embeddings import Embedder  # noqa: E402
from routellm_demo.evals.metrics import summarize  # noqa: E402
from routellm_demo.routers.vote_ridge import NEIGHBOURS, REACH, SHARE, VoteRidge  # noqa: E402
from routellm_demo.store import Store  # noqa: E402

CHECKPOINTS = (50, 100, 150, 200)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--router", default="classifier", choices=("classifier", "sw_ranking"))
    parser.add_argument("--share", type=float, default=SHARE)
    parser.add_argument("--neighbours", type=int, default=NEIGHBOURS)
    parser.add_argument("--reach", type=float, default=REACH, help="leverage quantile trusted in full")
    parser.add_argument("--seeds", type=int, default=6)
    add_protocol_args(parser)
    args = parser.parse_args()

    with Store(args.cache_db) as cache:
        embedder = Embedder(cache)
        for name in args.domains.split(","):
            setup = held_still(args.data_dir, name, embedder, args.router)
            voted, watched, before, stored, outcome = (setup.voted, setup.watched, setup.before, setup.stored,
                                                       setup.outcome)
            watched_before = setup.router.win_probability(watched.embeddings, list(watched.prompts))
            threshold = float(np.median(watched_before))
            x, inputs = voted.embeddings, ridge_inputs(setup.router, voted)  # the ridge's regressors
            watched_inputs = ridge_inputs(setup.router, watched)

            def apgr(scores, evalset, idx=slice(None)):
                return summarize(scores, evalset.strong_quality[idx], evalset.weak_quality[idx])["apgr"]

            curves, gates, moved, shares, gate_max = [], [], [], [], []
            for seed in range(args.seeds):
                order = np.random.default_rng(seed).permutation(len(voted))  # simulate-votes' random order
                curve, gate_means = [apgr(before, voted)], []
                for k in CHECKPOINTS:
                    votes, rest = order[:k], order[k:]
                    ridge = VoteRidge(args.neighbours, args.share, args.reach).fit(
                        x[votes], outcome[votes], stored, before[votes], inputs[votes])  # as the classifier fits it

                    def blended(base, vectors, read):
                        return ridge.blend(base, vectors, read), ridge.gate(vectors) * ridge.trust(read)

                    scores, g = blended(before[rest], x[rest], inputs[rest])
                    curve.append(apgr(scores, voted, rest))
                    gate_means.append(float(g.mean()))
                watched_after, g = blended(watched_before, watched.embeddings, watched_inputs)
                curves.append(curve)
                gates.append(gate_means)
                moved.append(apgr(watched_after, watched) - apgr(watched_before, watched))
                shares.append(float(np.mean(watched_after > threshold)))
                gate_max.append(float(g.max()))
            print(f"router={args.router} share={args.share:g} neighbours={args.neighbours} reach={args.reach:g} "
                  f"domain={name} seeds={args.seeds}\n"
                  f"  apgr at 0/{'/'.join(map(str, CHECKPOINTS))} votes: "
                  + " ".join(f"{v:.3f}" for v in np.mean(curves, axis=0))
                  + "; mean weight: " + " ".join(f"{v:.2f}" for v in np.mean(gates, axis=0))
                  + f"\n  {watch_name(name)} after 200 votes: apgr moved " + " ".join(f"{v:+.3f}" for v in moved)
                  + "; strong share " + " ".join(f"{v:.2f}" for v in shares)
                  + "; largest weight " + " ".join(f"{v:.2f}" for v in gate_max), flush=True)


if __name__ == "__main__":
    main()
