"""Replay a benchmark's gold labels as arena votes, through the app's own vote path, and watch the router learn.

Why replay: the arena claims that votes teach the router. RouteLLM's data says, per prompt, whether the
strong or the weak model was right, so it can stand in for visitors: each prompt becomes an arena round
(``Arena.record_round``: the pending battle a finished ``stream_answers`` leaves, minus the model calls)
and its gold label becomes a vote cast with the unchanged ``Arena.vote`` (one transaction in
``store.record_vote``, then ``RouterSet.absorb``, then the ratings): exactly what a visitor's click does.
The trained routers (mf, classifier) learn through the app's background refresher instead
(``Refresher``, hooked to the arena's votes as in the app), refitting every ``every`` votes.

The label -> vote rule: strong better -> a vote for the strong model's side; weak better -> for the
weak one's; equal -> "tie", or "both are bad" when both were wrong (MMLU, GSM8K). Sides are random per
round, as in the arena.

Measured: after every ``every`` votes, the router scores the domain's prompts not voted on yet, and
RouteLLM's APGR and CPT(50%) are computed on them (``evals.metrics``); also on the prompts that are
never voted on in the run (a fixed set, so points along the curve compare like with like), and on the
*fixed evaluation set*: the last ``FIXED_FRACTION`` of the seeded permutation, which neither order
votes on, so ``random`` and ``active`` orders of one seed are compared on the same prompts.
With ``watch`` (a benchmark other than the domain's), that whole benchmark is scored at every
checkpoint too, its battles kept out of the store (``apgr_watch``): do votes on one domain make routing
worse on a domain that got none?

The order (``order``): "random" votes the seeded permutation's first prompts (as before this option
existed: same votes, same sides); "active" (:mod:`routellm_demo.active`, the arena's own rule) draws each
next batch of ``ACTIVE_BATCH`` votes from the rest of the pool (the domain minus the fixed set) by how far
each prompt lies outside what the votes so far cover (:func:`~routellm_demo.active.coverage_gap`),
epsilon-mixed with uniform picks; "uncertain" draws by the measured router's uncertainty (or, with
``active_routers``, those routers' uncertainty and disagreement), the first rule tried. All replay the same
gold labels; only which prompts get voted, and when, differs. A chosen order's "prompts not voted on yet"
are not a random sample of the domain, so compare orders on ``apgr_fixed``.

The store starts with no battle of the domain (checked: no stored prompt equals a domain prompt).
``seed_store`` chooses what else it holds: "none" (default: a fresh store, so any gain comes from the
votes alone and the 0-vote baseline is exactly random), "other-benchmarks" (the gold battles of the
other benchmarks in the data folder), or "all-other" (every gold battle outside the domain: for an
MMLU subject, also the other subjects; the closest to the app's own store).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from routellm_demo.evals.benchmarks import EvalError, EvalSet, available_benchmarks, concat, load_benchmark
from routellm_demo.evals.metrics import summarize
from routellm_demo.importers import BENCHMARKS, STRONG_MODEL, WEAK_MODEL
from routellm_demo.routers import ROUTER_NAMES
from routellm_demo.store import ARENA_SOURCE, prompt_sha256

SEED_CHOICES = ("none", "other-benchmarks", "all-other")
ORDER_CHOICES = ("random", "active", "uncertain")
CURVE_COLUMNS = ("votes", "apgr", "cpt50", "n_eval", "apgr_heldout", "cpt50_heldout", "n_heldout", "apgr_fixed",
                 "cpt50_fixed", "n_fixed", "apgr_watch", "n_watch")
FIXED_FRACTION = 0.3  # share of the domain set aside, never voted on in either order (see replay())
ACTIVE_BATCH = 10  # the active order re-reads the router's scores every this many votes
DEFAULT_CACHE_DB = Path("data/eval_cache.db")  # the eval command's embedding cache


class ReplayError(EvalError):
    """The replay cannot run as asked; the message says what to change."""


@dataclass
class ReplayResult:
    rows: list[dict]  # one per checkpoint, CURVE_COLUMNS
    summary: dict
    curve_csv: Path
    plot_png: Path
    store_path: Path


# -- the domain and its votes ------------------------------------------------------------------------


def load_domain(data_dir, benchmark: str, subject: str | None = None) -> EvalSet:
    """The benchmark (or one MMLU subject), one entry per distinct prompt text (a repeated prompt
    would otherwise be voted on and evaluated at once)."""
    evalset = load_benchmark(data_dir, benchmark)
    if subject is not None:
        if benchmark != "mmlu":
            raise ReplayError("--subject is for --benchmark mmlu only")
        mask = np.array([str(g) == f"mmlu:{subject}" for g in evalset.groups])
        if not mask.any():
            known = sorted({str(g).split(":", 1)[1] for g in evalset.groups})
            raise ReplayError(f"no MMLU subject {subject!r} in {data_dir}; it holds: {', '.join(known)}")
        evalset = evalset.subset(mask)
    first = {}
    for i, p in enumerate(evalset.prompts):
        first.setdefault(p.strip(), i)
    return evalset.subset(np.array(sorted(first.values()), dtype=np.int64))


def outcome_for(strong_quality: float, weak_quality: float, strong_side: str, *, correctness: bool) -> str:
    """The arena outcome ("A", "B", "tie", "bothbad") a visitor who knew the gold label would give."""
    if strong_quality > weak_quality:
        return strong_side.upper()
    if weak_quality > strong_quality:
        return "B" if strong_side == "a" else "A"
    return "bothbad" if correctness and strong_quality <= 0 else "tie"


def gold_rows(evalset: EvalSet) -> list[dict]:
    """The set's prompts as gold strong-vs-weak battles (strong as side a), as the importer stores them."""
    correctness = evalset.benchmark != "mt-bench"
    rows = []
    for i, (p, s, w, g) in enumerate(zip(evalset.prompts, evalset.strong_quality, evalset.weak_quality, evalset.groups)):
        vote = outcome_for(s, w, "a", correctness=correctness)
        winner = {"A": "model_a", "B": "model_b", "tie": "tie", "bothbad": "tie (bothbad)"}[vote]
        bench = str(g).split(":", 1)[0]
        rows.append(dict(prompt=p, model_a=STRONG_MODEL, model_b=WEAK_MODEL, winner=winner, strong_side="a",
                         source=f"import:{bench}", uid=f"replay-seed:{g}:{i}:{prompt_sha256(p)}",
                         meta={"benchmark": bench, "group": str(g)}))
    return rows


def seed_set(data_dir, benchmark: str, subject: str | None, seed_store: str, domain: EvalSet,
             watch: EvalSet | None = None) -> EvalSet | None:
    """The gold battles the store starts with, minus any prompt text of the domain (and of the watched
    set, which must stay unseen to show what the votes do to a domain that got none)."""
    if seed_store == "none":
        return None
    if seed_store not in SEED_CHOICES:
        raise ReplayError(f"seed_store must be one of {', '.join(SEED_CHOICES)}, got {seed_store!r}")
    sets = [load_benchmark(data_dir, b) for b in available_benchmarks(data_dir) if b != benchmark]
    if seed_store == "all-other" and subject is not None:
        sets.append(load_benchmark(data_dir, benchmark))
    if not sets:
        return None
    pooled = concat(sets)
    inside = {p.strip() for p in domain.prompts} | ({p.strip() for p in watch.prompts} if watch is not None else set())
    keep = np.array([p.strip() not in inside for p in pooled.prompts], dtype=bool)
    return pooled.subset(keep)


# -- the store -----------------------------------------------------------------------------------


def copy_embeddings(prompts: list[str], cache_db: Path | None, store, embedder, progress: bool) -> dict:
    """Fill the replay store's embedding cache for ``prompts``: from ``cache_db`` (encoding and caching
    there what it lacks, so a second run is fast), or by encoding into the replay store."""
    from routellm_demo.embeddings import Embedder
    from routellm_demo.store import Store

    if cache_db is None:
        embedder.embed(prompts, progress=progress)
        return {"encoded": embedder.encoded, "from_cache_db": 0}
    with Store(cache_db) as cache:
        source = Embedder(cache)
        vectors = source.embed(prompts, progress=progress)
    store.put_embeddings(embedder.cache_key, {prompt_sha256(p): v for p, v in zip(prompts, vectors)})
    return {"encoded": source.encoded, "from_cache_db": source.cache_hits}


def check_fresh(store, domain: EvalSet) -> None:
    """Refuse a store that already holds a battle (or a pending arena round) on a domain prompt."""
    shas = {prompt_sha256(p) for p in domain.prompts}
    found = sum(1 for r in store.battles() if r["prompt_sha256"] in shas)
    if found:
        raise ReplayError(f"{store.path} already holds {found} battle(s) on this domain's prompts: the replay must "
                          "start from a store without them (omit --db for a fresh one)")


def open_arena(store_path: Path, checkpoint_dir: Path, max_prompt_chars: int, seed: int,
               sw_params: dict | None = None, router: str | None = None):
    """Store, embedder, routers and arena wired as the app wires them, for the gold models' names.

    The routers come from the config (``RouterSet.from_config``, as in the app), so sw_ranking's
    weighting is the config file's ``[sw_ranking]``; ``sw_params`` (a ``[sw_ranking]`` table:
    ``preset``, ``base``, ``scale``, ``normalize``, ``text_weight``, ``vote_weight``) replaces it for this run;
    its ``vote_weight``, when given, is the classifier's too (else the classifier keeps its own default).
    No checkpoint is loaded (the shipped ones were trained on these benchmarks); the controller is
    not needed, since no model is called. ``router`` is the app's router for this run: the arena records its
    score before each vote (as the app does for its own), which the prequential accuracy reads."""
    from routellm_demo.arena import Arena
    from routellm_demo.config import check_sw_params, load_config
    from routellm_demo.embeddings import Embedder
    from routellm_demo.store import Store
    from routellm_demo.router_set import RouterSet

    cfg = load_config(environ={})
    cfg = replace(cfg, db_path=store_path, checkpoint_dir=checkpoint_dir,
                  max_prompt_chars=max(cfg.max_prompt_chars, max_prompt_chars),
                  strong=replace(cfg.strong, name=STRONG_MODEL), weak=replace(cfg.weak, name=WEAK_MODEL))
    if router is not None:
        cfg = replace(cfg, router=router)
    if sw_params is not None:
        sw = check_sw_params(sw_params, "--sw-params")
        cfg = replace(cfg, sw_base=sw["base"], sw_scale=sw["scale"], sw_normalize=sw["normalize"],
                      sw_text_weight=sw["text_weight"], sw_vote_weight=sw["vote_weight"])
    store = Store(store_path)
    embedder = Embedder(store)
    routers = RouterSet.from_config(store, embedder, cfg)
    if sw_params is not None and "vote_weight" in sw_params:  # an experiment's weight, for both learners
        routers.router_params["classifier"] = {**routers.router_params.get("classifier", {}),
                                               "vote_weight": cfg.sw_vote_weight}
    arena = Arena(cfg, store, embedder, routers, controller=None, rng=random.Random(seed))
    return arena


# -- measuring -----------------------------------------------------------------------------------


def router_scores(routers, name: str, embeddings: np.ndarray, prompts=None) -> np.ndarray:
    """The router's scores; 0.5 for all (no information) when it cannot be fitted yet (no battles)."""
    from routellm_demo.router_set import NoCheckpointError

    try:
        return np.asarray(routers.score(name, embeddings, prompts), dtype=np.float64)
    except (NoCheckpointError, ValueError):
        if len(routers.store.battles(limit=1)):
            raise
        return np.full(len(embeddings), 0.5)


def _metrics(scores: np.ndarray, evalset: EvalSet, idx: np.ndarray) -> tuple[float, float]:
    if len(idx) < 2:  # nothing to rank
        return float("nan"), float("nan")
    m = summarize(scores, evalset.strong_quality[idx], evalset.weak_quality[idx])
    nan = float("nan")
    return (nan if m["apgr"] is None else m["apgr"]), (nan if m["cpt50"] is None else m["cpt50"])


def measure(scores: np.ndarray, domain: EvalSet, perm: np.ndarray, sequence: np.ndarray, voted: int,
            fixed: np.ndarray) -> dict:
    """APGR / CPT(50%) from the router's scores of every domain prompt at ``voted`` votes: on the
    prompts not voted on yet, on those never voted on in the run (``sequence``: every vote's prompt),
    and on the fixed evaluation set. Prompts are taken in the permutation's order, so that a random
    order measures exactly the slices it always did."""
    now, ever = set(sequence[:voted].tolist()), set(sequence.tolist())
    remaining = np.array([i for i in perm if i not in now], dtype=np.int64)
    never = np.array([i for i in perm if i not in ever], dtype=np.int64)
    apgr, cpt50 = _metrics(scores[remaining], domain, remaining)
    apgr_h, cpt50_h = _metrics(scores[never], domain, never)
    apgr_f, cpt50_f = _metrics(scores[fixed], domain, fixed)
    return {"votes": voted, "apgr": apgr, "cpt50": cpt50, "n_eval": len(remaining), "apgr_heldout": apgr_h,
            "cpt50_heldout": cpt50_h, "n_heldout": len(never), "apgr_fixed": apgr_f, "cpt50_fixed": cpt50_f,
            "n_fixed": len(fixed)}


def fixed_size(n: int, votes: int) -> int:
    """Size of the fixed evaluation set: ``FIXED_FRACTION`` of the domain, leaving room for the votes."""
    return max(0, min(round(FIXED_FRACTION * n), n - votes))


def checkpoints(votes: int, every: int) -> list[int]:
    points = list(range(0, votes + 1, every))
    return points if points[-1] == votes else [*points, votes]


def replay(arena, domain: EvalSet, *, votes: int, every: int, router: str, seed: int, refresher=None,
           session_id: str | None = None, progress: bool = True, order: str = "random",
           watch: EvalSet | None = None, active_routers: tuple[str, ...] | None = None) -> list[dict]:
    """Cast ``votes`` gold-label votes on the domain through ``arena``, in a seeded random order or a
    chosen one (module docstring); return the curve (one row per checkpoint). ``domain.embeddings``
    must be set; so must ``watch.embeddings`` if a watched set (a domain that gets no vote) is given.
    ``active_routers``: whose scores rank the pool in the uncertain order (default: ``router`` alone, its
    uncertainty; several: :func:`routellm_demo.active.priority`, uncertainty and disagreement)."""
    from routellm_demo import active

    if domain.embeddings is None:
        raise ValueError("embed the domain first")
    if order not in ORDER_CHOICES:
        raise ReplayError(f"order must be one of {', '.join(ORDER_CHOICES)}, got {order!r}")
    n = len(domain)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    sides = np.where(rng.random(votes) < 0.5, "a", "b")
    fixed = perm[n - fixed_size(n, votes):]
    pool = perm[: n - len(fixed)]
    pick_rng = np.random.default_rng([seed, 0xAC71])  # the active order's own draws: sides stay the random order's
    sequence = np.full(votes, -1, dtype=np.int64)
    if order == "random":
        sequence[:] = perm[:votes]
    correctness = domain.benchmark != "mt-bench"
    session_id = session_id or f"replay-{seed}"
    marks = set(checkpoints(votes, every))
    prompts = list(domain.prompts)

    def score_all() -> np.ndarray:
        return router_scores(arena.routers, router, domain.embeddings, prompts)

    def score_watch() -> np.ndarray | None:
        return None if watch is None else router_scores(arena.routers, router, watch.embeddings, list(watch.prompts))

    snapshots = [(0, score_all(), score_watch())]  # (votes, scores of every domain prompt, of the watched set)
    current = snapshots[0][1]
    bar = tqdm(total=votes, desc=f"replaying {domain.benchmark} votes ({order} order)", unit="vote",
               disable=not progress)
    with bar:
        for k in range(votes):
            if order != "random" and k % ACTIVE_BATCH == 0:
                left = pool[~np.isin(pool, sequence[:k])]
                batch = min(ACTIVE_BATCH, votes - k)
                if order == "active":  # the arena's rule: what the votes so far do not cover
                    take = active.next_prompts(domain.embeddings[sequence[:k]], domain.embeddings[left], batch,
                                               pick_rng)
                else:
                    scores = {}
                    for name in active_routers or (router,):
                        fresh = name == router and (k in marks or k == 0)  # just scored at a checkpoint
                        full = current if fresh else router_scores(arena.routers, name, domain.embeddings, prompts)
                        scores[name] = full[left]
                    take = active.choose(active.priority(scores), batch, pick_rng)
                sequence[k:k + len(take)] = left[take]
            i = int(sequence[k])
            side = str(sides[k])
            strong_answer = f"[{STRONG_MODEL}'s answer, replayed from the gold label]"
            weak_answer = f"[{WEAK_MODEL}'s answer, replayed from the gold label]"
            answers = (strong_answer, weak_answer) if side == "a" else (weak_answer, strong_answer)
            battle_id = arena.record_round(domain.prompts[i], session_id, answers=answers, strong_side=side)
            outcome = outcome_for(domain.strong_quality[i], domain.weak_quality[i], side, correctness=correctness)
            arena.vote(battle_id, outcome, session_id)  # the app's vote path, unchanged
            bar.update(1)
            if k + 1 in marks:
                if refresher is not None:
                    refresher.wait_idle()  # the background refit these votes triggered, as in the app
                    if refresher.last_error:
                        raise ReplayError(f"refit failed: {refresher.last_error}")
                current = score_all()
                snapshots.append((k + 1, current, score_watch()))
    rows = []
    for voted, scores, watched in snapshots:
        row = measure(scores, domain, perm, sequence, voted, fixed)
        if watch is not None:
            row["apgr_watch"] = _metrics(watched, watch, np.arange(len(watch)))[0]
            row["n_watch"] = len(watch)
        rows.append(row)
    return rows


# -- output --------------------------------------------------------------------------------------


def write_curve(rows: list[dict], path: Path) -> Path:
    import csv

    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(CURVE_COLUMNS), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in r.items()})
    return path


def plot_curve(rows: list[dict], path: Path, title: str, watch: str | None = None) -> Path:
    """APGR against votes, with the 0-vote baseline, random (0.5) and the watched domain that got no vote
    (``watch``); CPT(50%) beside it."""
    from matplotlib.figure import Figure

    x = [r["votes"] for r in rows]
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax, ax2 = fig.subplots(1, 2)
    ax.plot(x, [r["apgr"] for r in rows], "o-", color="#7c3aed", ms=3, label="APGR, prompts not voted on yet")
    ax.plot(x, [r["apgr_heldout"] for r in rows], "--", color="#a78bfa", label="APGR, prompts never voted on in this run")
    ax.plot(x, [r["apgr_fixed"] for r in rows], ":", color="#db2777", label="APGR, fixed evaluation set (both orders)")
    ax.axhline(rows[0]["apgr"], color="#059669", ls=":", label=f"0-vote baseline ({rows[0]['apgr']:.3f})")
    ax.axhline(0.5, color="#6b7280", lw=0.8, label="random (0.5)")
    if watch and rows[0].get("apgr_watch") is not None:
        ax.plot(x, [r["apgr_watch"] for r in rows], "-.", color="#0891b2", label=f"APGR, {watch} (got no vote)")
    ax.set_xlabel("arena votes replayed")
    ax.set_ylabel("APGR (area under the PGR curve)")
    fig.suptitle(title, fontsize=10)  # across both panels: a long run title is not cut at the figure's edge
    ax.legend(fontsize=7, loc="best")
    ax2.plot(x, [r["cpt50"] for r in rows], "o-", color="#7c3aed", ms=3, label="CPT(50%), prompts not voted on yet")
    ax2.axhline(50.0, color="#6b7280", lw=0.8, label="random (50%)")
    ax2.set_xlabel("arena votes replayed")
    ax2.set_ylabel("% strong calls to recover 50% of the gap")
    ax2.set_title("CPT(50%): lower is better", fontsize=10)
    ax2.legend(fontsize=7, loc="best")
    fig.savefig(path, dpi=110)
    return path


# -- the whole run -------------------------------------------------------------------------------


def simulate_votes(data_dir, benchmark: str, out_dir, *, subject: str | None = None, votes: int = 200,
                   every: int = 10, router: str = "sw_ranking", seed: int = 0, db=None,
                   seed_store: str = "none", cache_db=DEFAULT_CACHE_DB, progress: bool = True,
                   sw_params: dict | None = None, order: str = "random", watch: str | None = None,
                   active_routers: tuple[str, ...] | None = None) -> ReplayResult:
    """Replay ``votes`` gold-label votes of a domain through the arena; write curve.csv,
    learning_curve.png, summary.json (and replay.db, the store, unless ``db`` is given) to ``out_dir``."""
    from routellm_demo.learning import prequential
    from routellm_demo.refresh import Refresher
    from routellm_demo.router_set import CHECKPOINTED

    if benchmark not in BENCHMARKS:
        raise ReplayError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
    if router not in ROUTER_NAMES:
        raise ReplayError(f"unknown router {router!r}; choose one of {', '.join(ROUTER_NAMES)}")
    if votes < 1 or every < 1:
        raise ReplayError("--votes and --every must be at least 1")
    if order not in ORDER_CHOICES:
        raise ReplayError(f"--order must be one of {', '.join(ORDER_CHOICES)}, got {order!r}")
    active_routers = tuple(active_routers or ()) or None
    for name in active_routers or ():
        if name not in ROUTER_NAMES:
            raise ReplayError(f"unknown router {name!r} in --active-routers; choose from {', '.join(ROUTER_NAMES)}")
    if active_routers and order != "uncertain":
        raise ReplayError("--active-routers ranks the pool in --order uncertain only")
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    domain = load_domain(data_dir, benchmark, subject)
    if votes >= len(domain):
        raise ReplayError(f"the domain has {len(domain)} distinct prompts: --votes must be below that, so that "
                          "some are left to evaluate on")
    watched = None
    if watch is not None:
        if watch not in BENCHMARKS or watch == benchmark:
            raise ReplayError(f"--watch must be another benchmark than the domain's ({', '.join(BENCHMARKS)}), "
                              f"got {watch!r}")
        watched = load_domain(data_dir, watch)
    seeds = seed_set(data_dir, benchmark, subject, seed_store, domain, watched)
    if sw_params is not None:  # a bad --sw-params fails before any output is written
        from routellm_demo.config import ConfigError, check_sw_params

        try:
            check_sw_params(sw_params, "--sw-params")
        except ConfigError as exc:
            raise ReplayError(str(exc)) from None

    store_path = Path(db) if db is not None else out / "replay.db"
    if db is None:
        for suffix in ("", "-wal", "-shm"):  # this run's own output from an earlier run
            Path(str(store_path) + suffix).unlink(missing_ok=True)
    max_chars = max(len(p) for p in domain.prompts)
    arena = open_arena(store_path, out / "no-checkpoints", max_chars, seed, sw_params=sw_params, router=router)
    store, embedder, routers = arena.store, arena.embedder, arena.routers
    sw_used = dict(routers.router_params.get("sw_ranking", {}))
    refresher = None
    try:
        check_fresh(store, domain)
        prompts = list(domain.prompts) + (list(seeds.prompts) if seeds is not None else [])
        prompts += list(watched.prompts) if watched is not None else []
        embed_stats = copy_embeddings(prompts, Path(cache_db) if cache_db else None, store, embedder, progress)
        if seeds is not None:
            store.add_battles(gold_rows(seeds))
        domain.embeddings = embedder.embed(domain.prompts)
        if watched is not None:
            watched.embeddings = embedder.embed(watched.prompts)
        refit = tuple(n for n in dict.fromkeys((router, *(active_routers or ()))) if n in CHECKPOINTED)
        if refit:  # they learn from votes through the app's background refit
            refresher = Refresher(routers, store, embedder, names=refit, every=every)
            arena.add_vote_listener(refresher.notify_vote)
        rows = replay(arena, domain, votes=votes, every=every, router=router, seed=seed, refresher=refresher,
                      progress=progress, order=order, watch=watched, active_routers=active_routers)
        arena_rows = store.battles(source=ARENA_SOURCE)
        pending = store.count_pending()
        preq = prequential(arena_rows, window=50, router=router).summary()  # the replayed router's own
        counts = store.count_battles()
    finally:
        if refresher is not None:
            refresher.close()
        store.close()

    label = f"{benchmark}" + (f" / {subject}" if subject else "")
    summary = {
        "domain": label, "router": router, "votes": votes, "every": every, "seed": seed, "seed_store": seed_store,
        "order": order, "watch": watch, "active_routers": list(active_routers or [router]) if order == "uncertain" else None,
        "domain_prompts": len(domain), "q_strong": domain.q_strong, "q_weak": domain.q_weak,
        "seed_battles": 0 if seeds is None else len(seeds), "store_battles": counts,
        "arena_votes_stored": len(arena_rows), "arena_rounds": pending,
        "apgr_0": rows[0]["apgr"], "apgr_final": rows[-1]["apgr"], "cpt50_0": rows[0]["cpt50"],
        "cpt50_final": rows[-1]["cpt50"], "apgr_heldout_0": rows[0]["apgr_heldout"],
        "apgr_heldout_final": rows[-1]["apgr_heldout"], "n_eval_final": rows[-1]["n_eval"],
        "apgr_watch_0": rows[0].get("apgr_watch"), "apgr_watch_final": rows[-1].get("apgr_watch"),
        "apgr_fixed_0": rows[0]["apgr_fixed"], "apgr_fixed_final": rows[-1]["apgr_fixed"], "n_fixed": rows[-1]["n_fixed"],
        "sw_params": sw_used, "prequential": preq, "embeddings": embed_stats,
        "seconds": round(time.perf_counter() - started, 1),
    }
    curve = write_curve(rows, out / "curve.csv")
    title = f"{label}: {router}, seed store {seed_store}, seed {seed}, {order} order"
    png = plot_curve(rows, out / "learning_curve.png", title, watch)
    (out / "summary.json").write_text(json.dumps(_jsonable(summary), indent=2))
    return ReplayResult(rows, summary, curve, png, store_path)


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


# -- command line --------------------------------------------------------------------------------


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``simulate-votes`` to an argparse subparsers object; parsed args carry ``func``."""
    s = subparsers.add_parser(
        "simulate-votes", help="replay a benchmark's gold labels as arena votes and plot how the router learns",
        description="Replays RouteLLM's gold labels of one domain as arena votes through the app's vote path "
        "(Arena.vote), starting from a store without that domain, and scores the router on the prompts not "
        "voted on yet every --every votes. Writes curve.csv, learning_curve.png, summary.json and replay.db.")
    s.add_argument("--data-dir", required=True, help="RouteLLM's evals folder (mmlu/, gsm8k/, mt_bench/)")
    s.add_argument("--benchmark", required=True, choices=BENCHMARKS)
    s.add_argument("--subject", help="one MMLU subject, e.g. professional_psychology (--benchmark mmlu)")
    s.add_argument("--votes", type=int, default=200, help="votes to replay (default 200)")
    s.add_argument("--every", type=int, default=10, help="score the router every N votes (default 10)")
    s.add_argument("--router", choices=ROUTER_NAMES, default="sw_ranking",
                   help="router to score; mf/classifier learn through the background refit every --every votes")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--seed", type=int, default=0, help="vote order and sides")
    s.add_argument("--seed-store", choices=SEED_CHOICES, default="none",
                   help="what the store holds before the votes: none (default), the other benchmarks' gold "
                        "battles, or every gold battle outside the domain")
    # SUPPRESS: a --db given before the subcommand (the main CLI's option) is kept, not reset to None
    s.add_argument("--db", default=argparse.SUPPRESS,
                   help="store to replay into (must hold no battle of the domain); default: a fresh OUT/replay.db")
    s.add_argument("--cache-db", default=str(DEFAULT_CACHE_DB),
                   help="embedding cache to copy vectors from (missing ones are encoded and cached there); "
                        "'' to encode into the replay store")
    s.add_argument("--sw-params", type=_sw_params_arg, default=None,
                   help='sw_ranking weighting for this run, as JSON like the config\'s [sw_ranking] table, e.g. '
                        '\'{"preset": "smooth"}\' or \'{"base": 3, "normalize": "one"}\' (default: the config\'s)')
    s.add_argument("--order", choices=ORDER_CHOICES, default="random",
                   help="which prompts get voted: random (default; the seeded permutation), active (the arena's "
                        "rule: the prompts least covered by the votes so far, epsilon-mixed) or uncertain (by the "
                        "router's uncertainty); compare orders on apgr_fixed")
    s.add_argument("--active-routers", type=lambda t: tuple(x for x in t.split(",") if x), default=None,
                   help="comma-separated routers whose scores rank the pool in the uncertain order (default: "
                        "--router; several: their uncertainty and disagreement)")
    s.add_argument("--watch", choices=BENCHMARKS, default=None,
                   help="also score this whole benchmark at every checkpoint, its battles kept out of the store: "
                        "what the votes do to a domain that got none (apgr_watch)")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.set_defaults(func=cmd_simulate_votes)
    return s


def _sw_params_arg(text: str) -> dict:
    """``--sw-params`` JSON -> a dict (checked against the config's rules when the run starts)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc.msg}); e.g. '{{\"preset\": \"smooth\"}}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('must be a JSON object, e.g. \'{"base": 3}\'')
    return value


def cmd_simulate_votes(args) -> int:
    """Run :func:`simulate_votes` and print the curve; the printing layer of the command."""
    result = simulate_votes(args.data_dir, args.benchmark, args.out, subject=args.subject, votes=args.votes,
                            every=args.every, router=args.router, seed=args.seed, db=getattr(args, "db", None),
                            seed_store=args.seed_store, cache_db=args.cache_db or None, progress=not args.quiet,
                            sw_params=getattr(args, "sw_params", None), order=getattr(args, "order", "random"),
                            watch=getattr(args, "watch", None), active_routers=getattr(args, "active_routers", None))
    s = result.summary
    print(f"{s['domain']}: {s['domain_prompts']} prompts, router {s['router']}, {s['order']} order, seed store {s['seed_store']} "
          f"({s['seed_battles']} battles), {s['arena_votes_stored']} votes stored through Arena.vote; "
          f"sw_ranking {json.dumps(s['sw_params'])}")
    print(f"{'votes':>6} {'apgr':>7} {'cpt50%':>7} {'n_eval':>7} {'apgr_heldout':>13} {'apgr_fixed':>11}")
    for r in result.rows:
        watched = f" {s['watch']} {r['apgr_watch']:.4f}" if s.get("watch") else ""
        print(f"{r['votes']:>6} {r['apgr']:>7.4f} {r['cpt50']:>7.2f} {r['n_eval']:>7} {r['apgr_heldout']:>13.4f} "
              f"{r['apgr_fixed']:>11.4f}{watched}")
    p = s["prequential"]
    print(f"APGR {s['apgr_0']:.4f} at 0 votes -> {s['apgr_final']:.4f} after {s['votes']}; "
          f"{s['router']} prequential accuracy {p['accuracy']} (first {p['window']}: {p['first_window']}, "
          f"last {p['window']}: {p['last_window']}; majority baseline {p['baseline_accuracy']})")
    print(f"wrote {result.curve_csv}, {result.plot_png}, {result.curve_csv.parent / 'summary.json'}; store {result.store_path}")
    return 0


def main(argv=None) -> int:
    """Standalone entry, ``python -m routellm_demo.replay --data-dir ...`` (the main CLI wires
    :func:`register` instead)."""
    import sys

    parser = argparse.ArgumentParser(prog="python -m routellm_demo.replay")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["simulate-votes", *(argv if argv is not None else sys.argv[1:])])
    from routellm_demo.store import StoreError

    try:
        return args.func(args)
    except (ValueError, StoreError) as exc:  # EvalError, ReplayError, a store that cannot open: one line
        print(f"simulate-votes: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
