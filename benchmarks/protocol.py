"""Issue 18's protocol domains, set up as the benchmarks that hold a router still need them (not a script).

``simulate-votes --seed-store all-other --watch W`` in one call, without the app around it: the voted domain
(an MMLU subject, or "gsm8k"), the watched domain that gets no vote (GSM8K for a subject, moral_disputes for
GSM8K), the store of every other gold battle, all embedded from the cache, and the router fitted once on the
store. Shared by ``vote_ridge.py`` and ``active_order.py``; ``vote_ceiling.py`` uses :func:`split` and
:func:`add_protocol_args`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from routellm_demo.evals.benchmarks import EvalSet, gold_battles
from routellm_demo.replay import DEFAULT_CACHE_DB, load_domain, seed_set
from routellm_demo.routers import make_router

ROOT = Path(__file__).resolve().parents[1]
DOMAINS = "professional_psychology,moral_disputes,gsm8k"


def add_protocol_args(parser) -> None:
    """``--domains`` (comma-separated), ``--data-dir`` (RouteLLM's evals, ../shared's by default) and
    ``--cache-db`` (the embedding cache)."""
    parser.add_argument("--domains", default=DOMAINS)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "routellm"))
    parser.add_argument("--cache-db", default=str(ROOT / DEFAULT_CACHE_DB))


def split(name: str) -> tuple[str, str | None]:
    """A protocol domain's (benchmark, subject): "gsm8k" is GSM8K, any other name an MMLU subject."""
    return ("gsm8k", None) if name == "gsm8k" else ("mmlu", name)


def watch_name(name: str) -> str:
    """The domain scored alongside without votes: GSM8K for a subject, moral_disputes for GSM8K."""
    return "moral_disputes" if name == "gsm8k" else "gsm8k"


@dataclass
class HeldStill:
    """A protocol domain with the router fitted once on the store, before any vote."""

    voted: EvalSet  # the domain the votes come from (embedded)
    watched: EvalSet  # the domain that gets none (embedded), its battles kept out of the store
    router: object
    before: np.ndarray  # the router's scores of the voted domain's prompts
    stored: np.ndarray  # the store's distinct prompt vectors, one row a prompt (as the classifier passes them)
    outcome: np.ndarray  # each voted prompt's gold outcome: 1 strong better, 0.5 equal, 0 weak better


def ridge_inputs(router, evalset: EvalSet) -> np.ndarray:
    """What the votes' ridge reads for a domain's prompts with this router (the classifier adds an open prompt's
    text counts; any other, the vectors)."""
    if hasattr(router, "vote_ridge_inputs"):
        return router.vote_ridge_inputs(evalset.embeddings, list(evalset.prompts))
    return evalset.embeddings


def held_still(data_dir, name: str, embedder, router: str) -> HeldStill:
    voted = load_domain(data_dir, *split(name))
    watched = load_domain(data_dir, *split(watch_name(name)))
    store = seed_set(data_dir, *split(name), "all-other", voted, watched)
    for evalset in (voted, store, watched):
        evalset.embeddings = embedder.embed(list(evalset.prompts))
    fitted = make_router(router).fit(gold_battles(store))
    return HeldStill(voted, watched, fitted, fitted.win_probability(voted.embeddings, list(voted.prompts)),
                     np.unique(store.embeddings, axis=0),
                     (1.0 + np.sign(voted.strong_quality - voted.weak_quality)) / 2.0)
