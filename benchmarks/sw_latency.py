"""Latency of the SW ranking router on synthetic battles: per-query score and one-vote append.

Synthetic data: random unit vectors (384 dims, like all-MiniLM-L6-v2), six players including
"strong" and "weak". Embedding the prompt is excluded: timings start from the vector.
Prints lines such as ``sw_ranking N=65000 D=384 p50_ms=... p95_ms=...``; never asserts on time.

Run: python benchmarks/sw_latency.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from routellm_demo.battles import Battles
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
        router = SWRankingRouter().fit(synthetic_battles(rng, n))  # the app's default: text_weight 0.3
        queries = unit_rows(rng, n_queries)
        prompts = [prompt_text(rng) for _ in range(n_queries)]
        router.win_probability(queries[:3], prompts[:3])  # warm-up: BLAS threads, caches
        p50, p95 = percentiles_ms(time_queries(router, queries, prompts))
        print(f"sw_ranking N={n} D={DIM} p50_ms={p50:.2f} p95_ms={p95:.2f}", flush=True)
        votes = [synthetic_battles(rng, 1, id_start=n + i) for i in range(n_votes)]
        p50, p95 = percentiles_ms(time_appends(router, votes))
        print(f"sw_append N={n} p50_ms={p50:.3f} p95_ms={p95:.3f}", flush=True)


if __name__ == "__main__":
    main()
