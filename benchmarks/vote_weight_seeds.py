"""How much sw_ranking's vote weight lifts a new domain, over many seeds: the issue-18 protocol's random
order, without the arena around it, so 20 seeds take minutes instead of an hour.

For each domain and seed: the router is fitted on every gold battle outside the domain (``simulate-votes
--seed-store all-other``), then absorbs the domain's gold labels as votes in the seed's
random order, 50 at a time, online (``partial_fit``: the app's vote path for this router); after each 50 it
scores the prompts not voted on yet and prints their APGR. Same permutation, same store, same router as
``simulate-votes --order random``, whose curves it reproduces; what it leaves out is the store and the arena
(their costs, not their arithmetic). Three seeds spread by .1-.2 after 200 votes: this is how differences of a
few hundredths between weights are told from noise (the standard error of the gain is printed).

Run: python benchmarks/vote_weight_seeds.py [--weights 1,30] [--seeds 20]
     [--domains professional_psychology,moral_disputes,gsm8k] [--data-dir ../shared/data/routellm]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from routellm_demo.embeddings import Embedder  # noqa: E402
from routellm_demo.evals.benchmarks import gold_battles  # noqa: E402
from routellm_demo.evals.metrics import summarize  # noqa: E402
from routellm_demo.replay import DEFAULT_CACHE_DB, load_domain, seed_set  # noqa: E402
from routellm_demo.routers.sw_ranking import SWRankingRouter  # noqa: E402
from routellm_demo.store import Store  # noqa: E402

VOTES = 200
EVERY = 50


def domain_and_store(data_dir: str, name: str, embedder: Embedder):
    """The domain's prompts and the gold battles of everything else, both embedded."""
    benchmark, subject = ("gsm8k", None) if name == "gsm8k" else ("mmlu", name)
    domain = load_domain(data_dir, benchmark, subject)
    store = seed_set(data_dir, benchmark, subject, "all-other", domain)
    for evalset in (domain, store):
        evalset.embeddings = embedder.embed(list(evalset.prompts))
    return domain, store


def curve(domain, stored, votes, weight: float, seed: int) -> list[float]:
    """APGR on the prompts not voted on yet, at 0, 50, ... VOTES votes."""
    perm = np.random.default_rng(seed).permutation(len(domain))  # simulate-votes' order for this seed
    router = SWRankingRouter(vote_weight=weight).fit(stored)
    out = []
    for k in range(0, VOTES + 1, EVERY):
        if k:
            router.partial_fit(votes.subset(perm[k - EVERY:k]))
        rest = perm[k:]
        scores = router.win_probability(domain.embeddings[rest], [domain.prompts[i] for i in rest])
        out.append(summarize(scores, domain.strong_quality[rest], domain.weak_quality[rest])["apgr"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="1,30")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--domains", default="professional_psychology,moral_disputes,gsm8k")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "routellm"))
    args = parser.parse_args()

    with Store(ROOT / DEFAULT_CACHE_DB) as cache:
        embedder = Embedder(cache)
        for name in args.domains.split(","):
            domain, store = domain_and_store(args.data_dir, name, embedder)
            # no sources: the router counts what it is fitted on as imports, what it absorbs online as votes
            stored, votes = gold_battles(store), gold_battles(domain)
            for weight in (float(w) for w in args.weights.split(",")):
                curves = np.array([curve(domain, stored, votes, weight, seed) for seed in range(args.seeds)])
                mean = curves.mean(axis=0)
                gain = curves[:, -1] - curves[:, 0]
                print(f"vote_weight={weight:g} domain={name} seeds={args.seeds} apgr_by_{EVERY}_votes="
                      + ",".join(f"{x:.3f}" for x in mean)
                      + f" gain={gain.mean():+.3f} gain_se={gain.std(ddof=1) / np.sqrt(len(gain)):.3f}", flush=True)


if __name__ == "__main__":
    main()
