"""Latency of the SW ranking router on synthetic battles: per-query score and one-vote append.

Synthetic data: random unit vectors (384 dims, like all-MiniLM-L6-v2), six players including
"strong" and "weak". Embedding the prompt is excluded: timings start from the vector.
Prints lines such as ``sw_ranking N=65000 D=384 p50_ms=... p95_ms=...``; never asserts on time.

The N=1000000 row (the clustered index, :mod:`routellm_demo.routers.sw_index`) cannot use random
vectors: in 384 dimensions they are all nearly orthogonal, every battle weighs the same and any coarse
scheme is trivially exact. Its battles are resampled from the real embeddings of RouteLLM's evaluation
prompts (``../shared/data/routellm``, embedded with the project's Embedder; its cache is read from a
copy of ``data/eval_cache.db`` when present), each with its prompt's text and noise on the embedding.
It also prints the index's build and start-up (reload) times, its size, the process RSS growth, and
|score - exact float64 score| over 1,000 prompts, on those battles and on the real battles alone.

Run: python benchmarks/sw_latency.py            (all rows; the 1M rows take ~8 min, peak RSS ~3.2 GB)
     python benchmarks/sw_latency.py --million  (the 1M row only)
     python benchmarks/sw_latency.py --small    (today's rows only)
     python benchmarks/sw_latency.py --store    (start-up from a 1M-battle SQLite store, read included)
     python benchmarks/sw_latency.py --kernels  (accuracy under sharper kernels, 200k battles)
Work files (the 1M index) go under $TMPDIR/routellm_demo_sw_bench, never into the repository.
"""

from __future__ import annotations

import gc
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from routellm_demo.battles import Battles
from routellm_demo.config import SW_VOTE_WEIGHT
from routellm_demo.ratings import fit_bt
from routellm_demo.ratings import win_probability as bt_probability
from routellm_demo.routers import sw_ranking
from routellm_demo.routers.sw_index import VectorSource
from routellm_demo.routers.sw_ranking import SWRankingRouter

DIM = 384
PLAYERS = ["strong", "weak", "gpt-4", "mixtral", "llama-70b", "claude"]


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def synthetic_battles(rng: np.random.Generator, n: int, id_start: int = 0) -> Battles:
    k = len(PLAYERS)
    a = rng.integers(0, k, n)
    b = (a + rng.integers(1, k, n)) % k
    outcome = rng.choice([0.0, 0.5, 1.0], n, p=[0.4, 0.2, 0.4])
    return Battles(PLAYERS, a, b, outcome, unit_rows(rng, n), np.arange(id_start, id_start + n),
                   [prompt_text(rng) for _ in range(n)])


def prompt_text(rng: np.random.Generator) -> str:
    """A short prompt, sometimes with numbers: what the router's text features read."""
    return f"Question {rng.integers(1, 10**6)}: what is {rng.integers(1, 99)}% of ${rng.integers(1, 999)}?" \
        if rng.random() < 0.5 else "Explain why the sky looks blue at noon and red at dusk."


def percentiles_ms(seconds: list[float]) -> tuple[float, float]:
    p50, p95 = np.percentile(np.asarray(seconds) * 1e3, [50, 95])
    return float(p50), float(p95)


def time_queries(router: SWRankingRouter, queries: np.ndarray, prompts: list[str]) -> list[float]:
    times = []
    for q, text in zip(queries, prompts):
        start = time.perf_counter()
        router.win_probability(q[None, :], [text])
        times.append(time.perf_counter() - start)
    return times


def time_appends(router: SWRankingRouter, votes: list[Battles]) -> list[float]:
    times = []
    for vote in votes:
        start = time.perf_counter()
        router.partial_fit(vote)
        times.append(time.perf_counter() - start)
    return times


def main(sizes=(1_000, 10_000, 65_000), n_queries: int = 200, n_votes: int = 200, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for n in sizes:
        # the app's defaults: text_weight 0.3, arena votes weighing SW_VOTE_WEIGHT
        router = SWRankingRouter(vote_weight=SW_VOTE_WEIGHT).fit(synthetic_battles(rng, n))
        queries = unit_rows(rng, n_queries)
        prompts = [prompt_text(rng) for _ in range(n_queries)]
        router.win_probability(queries[:3], prompts[:3])  # warm-up: BLAS threads, caches
        p50, p95 = percentiles_ms(time_queries(router, queries, prompts))
        print(f"sw_ranking N={n} D={DIM} p50_ms={p50:.2f} p95_ms={p95:.2f}", flush=True)
        votes = [synthetic_battles(rng, 1, id_start=n + i) for i in range(n_votes)]
        p50, p95 = percentiles_ms(time_appends(router, votes))
        print(f"sw_append N={n} p50_ms={p50:.3f} p95_ms={p95:.3f}", flush=True)
        # with votes stored the vote gate runs too: the nearest battles read, a second fit where it blends
        p50, p95 = percentiles_ms(time_queries(router, queries, prompts))
        print(f"sw_ranking_after_votes N={n} votes={n_votes} p50_ms={p50:.2f} p95_ms={p95:.2f}", flush=True)


# -- a million battles ---------------------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[1]
WORK = Path(tempfile.gettempdir()) / "routellm_demo_sw_bench"


def rss_mb() -> float:
    """This process's resident set size, from /proc (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def real_battles() -> Battles:
    """RouteLLM's evaluation prompts as gold strong-vs-weak battles, embedded with the project's Embedder."""
    from routellm_demo.embeddings import Embedder
    from routellm_demo.evals.benchmarks import gold_outcomes, load_benchmark
    from routellm_demo.store import Store

    data = next((p for p in (REPO.parent / "shared" / "data" / "routellm", Path("/work/shared/data/routellm"))
                 if (p / "mmlu").is_dir()), None)
    if data is None:
        raise SystemExit("RouteLLM eval data not found at ../shared/data/routellm")
    sets = [load_benchmark(data, b) for b in ("mmlu", "gsm8k", "mt-bench")]
    prompts = [p for s in sets for p in s.prompts]
    WORK.mkdir(parents=True, exist_ok=True)
    cache = WORK / "embeddings.db"
    if not cache.exists() and (REPO / "data" / "eval_cache.db").exists():
        shutil.copy(REPO / "data" / "eval_cache.db", cache)  # a copy: the benchmark never writes the repo's
    embeddings = Embedder(Store(cache)).embed(prompts, progress=True)
    outcome = np.concatenate([gold_outcomes(s) for s in sets])
    n = len(prompts)
    return Battles(["strong", "weak"], np.zeros(n), np.ones(n), outcome, embeddings, np.arange(n), prompts)


def resampled(real: Battles, rng: np.random.Generator, n: int, id_start: int = 0) -> Battles:
    """``n`` battles drawn from real ones: a real prompt's text, its embedding plus noise (norm 0.1-0.5,
    cosine ~0.9-0.99 to the original), its gold outcome (a fifth re-drawn), and a quarter of arena-style
    battles between four other models, so the Bradley-Terry fit has more than one pair."""
    k = len(PLAYERS)
    src = rng.integers(0, len(real), n)
    embeddings = np.empty((n, real.embeddings.shape[1]), dtype=np.float32)
    for start in range(0, n, 65536):  # block by block: no 1M x 384 noise matrix beside the result
        rows = src[start:start + 65536]
        x = rng.standard_normal((len(rows), embeddings.shape[1]), dtype=np.float32)
        x *= (rng.uniform(0.1, 0.5, len(rows)) / math.sqrt(embeddings.shape[1])).astype(np.float32)[:, None]
        x += real.embeddings[rows]
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        embeddings[start:start + len(rows)] = x
    outcome = np.where(rng.random(n) < 0.2, rng.choice([0.0, 0.5, 1.0], n), real.outcome[src])
    arena = rng.random(n) < 0.25
    a = np.where(arena, rng.integers(2, k, n), 0)
    b = np.where(arena, 2 + (a - 2 + rng.integers(1, k - 2, n)) % (k - 2), 1)
    outcome = np.where(arena, rng.choice([0.0, 0.5, 1.0], n, p=[0.4, 0.2, 0.4]), outcome)
    return Battles(PLAYERS, a, b, outcome, embeddings, np.arange(id_start, id_start + n), [real.prompts[i] for i in src])


def exact_scores(router: SWRankingRouter, battles: Battles, queries: np.ndarray, block: int = 16384) -> np.ndarray:
    """The exact computation in float64 on the same battles: every similarity, RouteLLM's weights, the fit.
    Two passes over the battles (the "max" normalisation needs each prompt's largest similarity first)."""
    source = VectorSource(battles.embeddings, router._text_block(battles.prompts))
    cells = router._cells_of(battles)
    q = queries.astype(np.float64)
    ref = np.zeros(len(q))
    if router.normalize == "max":
        for start in range(0, len(source), block):
            sims = source.rows(slice(start, start + block)).astype(np.float64) @ q.T
            ref = np.maximum(ref, sims.max(axis=0))
    n_cells = len(router.cell_a_)
    slope = math.log(router.base) / np.where(ref > 0, ref, 1.0) if router.normalize == "max" \
        else np.full(len(q), math.log(router.base))
    cell_w = np.zeros((n_cells, len(q)))
    for start in range(0, len(source), block):
        sims = source.rows(slice(start, start + block)).astype(np.float64) @ q.T  # (block, queries)
        w = np.exp(sims * slope + math.log(router.scale))
        if router.normalize == "max":
            w[:, ref <= 0] = router.scale  # nothing similar: every battle weighs scale
        onehot = np.zeros((n_cells, len(sims)))
        onehot[cells[start:start + block], np.arange(len(sims))] = 1.0
        cell_w += onehot @ w
    cell_w = cell_w.T
    out = np.empty(len(q))
    for j in range(len(q)):
        beta = fit_bt(router._counts(cell_w[j]), l2=router.l2, init=router.global_beta_)
        out[j] = bt_probability(beta[0], beta[1])
    return out


def query_set(real: Battles, rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[str]]:
    """Held-out prompts like the stored ones: fresh noisy copies of real prompts (text included)."""
    q = resampled(real, rng, n)
    return q.embeddings, q.prompts


def report_accuracy(label: str, router: SWRankingRouter, battles: Battles, queries, prompts) -> None:
    fast = router.win_probability(queries, prompts)
    exact = exact_scores(router, battles, router._check_queries(queries, prompts))
    diff = np.abs(fast - exact)
    print(f"sw_index_accuracy {label} N={len(battles)} prompts={len(diff)} max_abs_diff={diff.max():.5f} "
          f"p99_abs_diff={np.percentile(diff, 99):.5f} mean_abs_diff={diff.mean():.5f} "
          f"score_spread={exact.std():.4f}", flush=True)


def progress_printer():
    """A one-line-per-stage progress report (every ~10%)."""
    last = {}

    def progress(stage: str, done: int, total: int) -> None:
        step = int(10 * done / total)
        if last.get(stage) != step:
            last[stage] = step
            print(f"  {stage}: {done}/{total}", flush=True)
    return progress


def million(n: int = 1_000_000, n_queries: int = 1000, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    real = real_battles()
    battles = resampled(real, rng, n)
    queries, prompts = query_set(real, rng, n_queries)
    index_dir = WORK / f"index_{n}"
    shutil.rmtree(index_dir, ignore_errors=True)
    gc.collect()

    rss0 = rss_mb()
    start = time.perf_counter()
    router = SWRankingRouter()
    router.index_dir, router.index_progress = index_dir, progress_printer()
    router.fit(battles)
    build_s = time.perf_counter() - start
    del router
    gc.collect()
    rss_built = rss_mb()

    start = time.perf_counter()  # a restart: the persisted index (vectors and text features) is read back
    router = SWRankingRouter(vote_weight=SW_VOTE_WEIGHT)  # the app's: the votes appended below weigh 30
    router.index_dir, router.index_progress = index_dir, progress_printer()
    router.fit(battles)
    startup_s = time.perf_counter() - start
    gc.collect()
    rss_router = rss_mb() - rss_built
    index = router.index_
    disk = sum(f.stat().st_size for f in index_dir.rglob("*.npy"))
    print(f"sw_index N={n} clusters={len(index.centroids)} build_s={build_s:.1f} startup_s={startup_s:.1f} "
          f"index_mb={index.nbytes / 2**20:.0f} disk_mb={disk / 2**20:.0f} rss_growth_mb={rss_router:.0f} "
          f"rss_after_build_mb={rss_built - rss0:.0f}", flush=True)

    router.win_probability(queries[:3], prompts[:3])
    p50, p95 = percentiles_ms(time_queries(router, queries, prompts))
    print(f"sw_ranking N={n} D={DIM} p50_ms={p50:.2f} p95_ms={p95:.2f}", flush=True)
    print(f"sw_machine cores={os.cpu_count()} load_avg_1min={os.getloadavg()[0]:.1f}", flush=True)  # other work
    votes = [resampled(real, rng, 1, id_start=n + i) for i in range(200)]
    p50, p95 = percentiles_ms(time_appends(router, votes))
    start = time.perf_counter()
    router.index_.fold()  # every FOLD_EVERY votes, inside one vote's partial_fit
    print(f"sw_append N={n} p50_ms={p50:.3f} p95_ms={p95:.3f} fold_s={time.perf_counter() - start:.2f}", flush=True)
    p50, p95 = percentiles_ms(time_queries(router, queries, prompts))  # the vote gate runs from here on
    print(f"sw_ranking_after_votes N={n} votes=200 p50_ms={p50:.2f} p95_ms={p95:.2f}", flush=True)

    router = SWRankingRouter()
    router.index_dir = index_dir
    router.fit(battles)  # reloaded without the 200 votes: the exact reference holds the same battles
    report_accuracy("synthetic", router, battles, queries, prompts)
    del router, battles
    gc.collect()

    # The real battles alone (11.7k): the index is forced (it starts at INDEX_MIN_BATTLES otherwise);
    # prompts: 1,000 of the real prompts themselves, each also stored.
    saved = sw_ranking.INDEX_MIN_BATTLES
    sw_ranking.INDEX_MIN_BATTLES = 1
    try:
        router = SWRankingRouter().fit(real)
    finally:
        sw_ranking.INDEX_MIN_BATTLES = saved
    pick = rng.choice(len(real), n_queries, replace=False)
    report_accuracy("real", router, real, real.embeddings[pick], [real.prompts[i] for i in pick])


def add_resampled_battles(store, real, n: int, rng, arena_share: float = 0.0) -> int:
    """``n`` battles in ``store``, each one of the real prompts (its embedding put in the store's cache)
    with a random outcome; ``arena_share`` of them stored as arena votes (what an admin delete removes).
    Returns how many are votes."""
    from routellm_demo.battles import ARENA_SOURCE
    from routellm_demo.embeddings import Embedder
    from routellm_demo.store import prompt_sha256

    store.put_embeddings(Embedder(store).cache_key, {prompt_sha256(p): v for p, v in zip(real.prompts, real.embeddings)})
    winners = np.array(["model_a", "model_b", "tie"])
    src, won = rng.integers(0, len(real), n), rng.integers(0, 3, n)
    votes = rng.random(n) < arena_share if arena_share else np.zeros(n, dtype=bool)
    store.add_battles(dict(prompt=real.prompts[j], model_a="gpt-4-1106-preview", model_b="mixtral-8x7b",
                           winner=winners[w], strong_side="a", source=ARENA_SOURCE if v else "bench",
                           uid=f"arena:bench-{i}" if v else None)
                      for i, (j, w, v) in enumerate(zip(src, won, votes)))
    return int(votes.sum())


def store_startup(n: int = 1_000_000, seed: int = 0) -> None:
    """The app's start-up at ``n`` battles, from a SQLite store: reading the battles and their cached
    embeddings (``router_set.load_battles``), then the router's fit (building the index once, then a
    restart's reload). The store is written under $TMPDIR and removed afterwards."""
    from routellm_demo.embeddings import Embedder
    from routellm_demo.router_set import load_battles
    from routellm_demo.store import Store

    real = real_battles()
    rng = np.random.default_rng(seed)
    path = WORK / f"store_{n}.db"
    index_dir = WORK / f"store_index_{n}"
    for leftover in (path, index_dir):
        shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
    store = Store(path)
    embedder = Embedder(store)
    start = time.perf_counter()
    add_resampled_battles(store, real, n, rng)
    insert_s = time.perf_counter() - start  # the 11,681 cached vectors included
    gc.collect()
    rss0 = rss_mb()
    start = time.perf_counter()
    battles = load_battles(store, embedder)
    read_s = time.perf_counter() - start
    rss_battles = rss_mb() - rss0
    start = time.perf_counter()
    router = SWRankingRouter()
    router.index_dir = index_dir
    router.fit(battles)
    build_s = time.perf_counter() - start
    del router
    gc.collect()
    start = time.perf_counter()
    router = SWRankingRouter()
    router.index_dir, router.index_progress = index_dir, progress_printer()
    router.fit(battles)
    fit_s = time.perf_counter() - start
    print(f"sw_store_startup N={n} insert_s={insert_s:.0f} read_s={read_s:.1f} rss_battles_mb={rss_battles:.0f} "
          f"index_build_s={build_s:.0f} restart_fit_s={fit_s:.1f} startup_s={read_s + fit_s:.1f}", flush=True)
    store.close() if hasattr(store, "close") else None
    path.unlink(missing_ok=True)
    shutil.rmtree(index_dir, ignore_errors=True)


def kernels(n: int = 200_000, n_queries: int = 300, seed: int = 0) -> None:
    """Accuracy under sharper kernels than RouteLLM's (base 10): the weight then concentrates on the
    nearest battles and the far clusters' approximation matters more."""
    rng = np.random.default_rng(seed)
    real = real_battles()
    battles = resampled(real, rng, n)
    queries, prompts = query_set(real, rng, n_queries)
    for base in (10.0, 1e3, 1e5):
        report_accuracy(f"synthetic_base={base:g}", SWRankingRouter(base=base).fit(battles), battles, queries, prompts)


if __name__ == "__main__":
    if "--kernels" in sys.argv:  # accuracy under sharper kernels, 200k battles (~5 min)
        kernels()
        sys.exit()
    if "--store" in sys.argv:  # the app's start-up from a 1M-battle SQLite store (~10 min, ~4 GB)
        store_startup()
        sys.exit()
    if "--million" not in sys.argv:
        main()
    if "--small" not in sys.argv:
        million()
