"""What 200 votes on one domain do to it, and to a domain that got none: sw_ranking's vote weight
everywhere, weight 1, and the gate (heavy votes where they are, weight 1 elsewhere).

The issue-18 protocol without the arena around it (as ``benchmarks/vote_weight_seeds.py``): the router is
fitted on every other benchmark's gold battles (``simulate-votes --seed-store all-other``), with a watched
domain kept out of the store (GSM8K for an MMLU subject, moral_disputes for GSM8K), then absorbs the
domain's gold labels as votes in each seed's random order, online, 50 at a time. Printed per setting:

- the mean APGR on the prompts not voted on yet at 0/50/.../200 votes, and each seed's after 200;
- the watched domain's APGR after 200 votes minus before (mean, worst seed);
- the watched domain's *strong share*: the share of its prompts above the threshold that sent half of them
  to the strong model before the votes (APGR ranks a domain's prompts and is blind to a shift of all of
  them; a fixed threshold is not: this is the cost and quality that domain's users see move).

``--router classifier`` (the app's default) refits instead, as the app's background refit does: on the
store plus the votes so far (source "arena-vote"), at its default vote weight and at 1; only after 0 and 200
votes (a refit takes ~10 s).

Run: python benchmarks/vote_locality.py [--router sw_ranking|classifier] [--seeds 6] [--weight 30]
     [--neighbours 50] [--shares 0.1] [--domains professional_psychology,moral_disputes,gsm8k]
     [--data-dir ../shared/data/routellm] [--cache-db data/eval_cache.db]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from routellm_demo.battles import ARENA_SOURCE, Battles  # noqa: E402
from routellm_demo.embeddings import Embedder  # noqa: E402
from routellm_demo.evals.benchmarks import gold_battles  # noqa: E402
from routellm_demo.evals.metrics import summarize  # noqa: E402
from routellm_demo.replay import DEFAULT_CACHE_DB, load_domain, seed_set  # noqa: E402
from routellm_demo.routers.classifier import ClassifierRouter  # noqa: E402
from routellm_demo.routers.sw_ranking import SWRankingRouter  # noqa: E402
from routellm_demo.store import Store  # noqa: E402

VOTES = 200
EVERY = 50


def load(data_dir: str, name: str, embedder: Embedder):
    """The voted domain, the watched one, and the store (every other benchmark's gold battles), embedded."""
    if name == "gsm8k":
        domain, watched = load_domain(data_dir, "gsm8k"), load_domain(data_dir, "mmlu", "moral_disputes")
        store = seed_set(data_dir, "gsm8k", None, "all-other", domain, watched)
    else:
        domain, watched = load_domain(data_dir, "mmlu", name), load_domain(data_dir, "gsm8k")
        store = seed_set(data_dir, "mmlu", name, "all-other", domain, watched)
    for evalset in (domain, watched, store):
        evalset.embeddings = embedder.embed(list(evalset.prompts))
    return domain, watched, store


def settings(weight: float, neighbours: list[int], shares: list[float]) -> dict[str, dict]:
    out = {f"weight {weight:g} everywhere": {"vote_weight": weight, "vote_neighbours": 0},
           "weight 1": {"vote_weight": 1.0}}
    for k in neighbours:
        for share in shares:
            out[f"weight {weight:g}, gate {k}/{share:g}"] = {"vote_weight": weight, "vote_neighbours": k,
                                                              "vote_share": share}
    return out


def classifier_settings() -> dict[str, dict]:
    return {"classifier, its vote weight": {}, "classifier, vote weight 1": {"vote_weight": 1.0}}


def with_votes(stored: Battles, votes: Battles) -> Battles:
    """The store's battles (imports) and the votes (arena votes), as a refit reads them from the store."""
    parts = (stored, votes)
    return Battles(stored.players, np.concatenate([p.a for p in parts]), np.concatenate([p.b for p in parts]),
                   np.concatenate([p.outcome for p in parts]), np.vstack([p.embeddings for p in parts]),
                   np.arange(len(stored) + len(votes)), prompts=[t for p in parts for t in p.prompts],
                   sources=["import:gold"] * len(stored) + [ARENA_SOURCE] * len(votes))


def run_classifier_seed(domain, watched, stored, votes, seed: int, params: dict, before) -> dict:
    """``before``: the router fitted on the store alone (the same for every seed)."""
    perm = np.random.default_rng(seed).permutation(len(domain))
    router = ClassifierRouter(**params).fit(with_votes(stored, votes.subset(perm[:VOTES])))
    rest, every_watched, watched_texts = perm[VOTES:], np.arange(len(watched)), list(watched.prompts)
    curve = [apgr(before.win_probability(domain.embeddings[rest], [domain.prompts[i] for i in rest]), domain, rest),
             apgr(router.win_probability(domain.embeddings[rest], [domain.prompts[i] for i in rest]), domain, rest)]
    old = before.win_probability(watched.embeddings, watched_texts)
    after = router.win_probability(watched.embeddings, watched_texts)
    return {"curve": curve, "moved": apgr(after, watched, every_watched) - apgr(old, watched, every_watched),
            "strong_share": float(np.mean(after > np.median(old)))}


def apgr(scores, evalset, rows) -> float:
    return summarize(scores, evalset.strong_quality[rows], evalset.weak_quality[rows])["apgr"]


def run_seed(domain, watched, stored, votes, seed: int, params: dict) -> dict:
    perm = np.random.default_rng(seed).permutation(len(domain))  # simulate-votes' order for this seed
    router = SWRankingRouter(**params).fit(stored)
    every_watched, watched_texts = np.arange(len(watched)), list(watched.prompts)
    before = router.win_probability(watched.embeddings, watched_texts)
    curve = []
    for k in range(0, VOTES + 1, EVERY):
        if k:
            router.partial_fit(votes.subset(perm[k - EVERY:k]))
        rest = perm[k:]
        curve.append(apgr(router.win_probability(domain.embeddings[rest], [domain.prompts[i] for i in rest]),
                          domain, rest))
    after = router.win_probability(watched.embeddings, watched_texts)
    return {"curve": curve, "moved": apgr(after, watched, every_watched) - apgr(before, watched, every_watched),
            "strong_share": float(np.mean(after > np.median(before)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--router", choices=("sw_ranking", "classifier"), default="sw_ranking")
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--weight", type=float, default=30.0)
    parser.add_argument("--neighbours", default="50", help="comma-separated vote_neighbours to try")
    parser.add_argument("--shares", default="0.1", help="comma-separated vote_share to try")
    parser.add_argument("--domains", default="professional_psychology,moral_disputes,gsm8k")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "routellm"))
    parser.add_argument("--cache-db", default=str(ROOT / DEFAULT_CACHE_DB))
    args = parser.parse_args()
    grid = settings(args.weight, [int(k) for k in args.neighbours.split(",")],
                    [float(s) for s in args.shares.split(",")]) if args.router == "sw_ranking" else classifier_settings()
    checkpoints = f"apgr_by_{EVERY}_votes" if args.router == "sw_ranking" else f"apgr_at_0_and_{VOTES}_votes"

    with Store(args.cache_db) as cache:
        embedder = Embedder(cache)
        for name in args.domains.split(","):
            domain, watched, store = load(args.data_dir, name, embedder)
            stored, votes = gold_battles(store), gold_battles(domain)
            for label, params in grid.items():
                if args.router == "classifier":
                    before = ClassifierRouter(**params).fit(with_votes(stored, votes.subset(np.arange(0))))
                    runs = [run_classifier_seed(domain, watched, stored, votes, seed, params, before)
                            for seed in range(args.seeds)]
                else:
                    runs = [run_seed(domain, watched, stored, votes, seed, params) for seed in range(args.seeds)]
                curves = np.array([r["curve"] for r in runs])
                moved = np.array([r["moved"] for r in runs])
                print(f"{name} [{label}] seeds={args.seeds} {checkpoints}="
                      + ",".join(f"{x:.3f}" for x in curves.mean(axis=0))
                      + " after_200=" + ",".join(f"{x:.3f}" for x in curves[:, -1])
                      + f" | watched: apgr moved {moved.mean():+.3f} (worst {moved[np.argmax(np.abs(moved))]:+.3f}),"
                      + " strong share from .50 to " + ",".join(f"{r['strong_share']:.2f}" for r in runs),
                      flush=True)


if __name__ == "__main__":
    main()
