"""Latency of one arena vote, end to end through ``Arena.vote``, with 65,000 battles stored.

Synthetic store: N battles between six models (a third with known strong/weak sides) and random unit
prompt embeddings written into the embedding cache, so the SW index holds N battles without running
the encoder. Each timed vote is a round registered with ``Arena.record_round`` (its prompt's
embedding also cached: encoding a new prompt costs ~15 ms more, see the note printed at the end),
then ``Arena.vote``: store the battle and mark the round voted (one transaction), absorb into
sw_ranking and elo, sw_ranking's score after (the "before" was stored with the round, as the app
does when both answers are in), arena ratings before and after.

Prints ``vote N=65000 p50_ms=... p95_ms=...`` and where the time goes; never asserts on time.

Run: python benchmarks/vote_latency.py [--battles 65000] [--votes 100] [--source arena-vote]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from routellm_demo.arena import Arena  # noqa: E402
from routellm_demo.config import load_config  # noqa: E402
from routellm_demo.embeddings import DIM, Embedder  # noqa: E402
from routellm_demo.store import ARENA_SOURCE, Store, prompt_sha256  # noqa: E402
from routellm_demo.router_set import RouterSet  # noqa: E402

OTHER_MODELS = ["gpt-4", "mixtral", "llama-70b", "claude"]
CHUNK = 5000


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def fill_store(store: Store, embedder: Embedder, n: int, source: str, strong: str, weak: str, seed: int) -> None:
    """N battles with cached random embeddings; a third are strong-vs-weak with a known side."""
    rng = np.random.default_rng(seed)
    models = [strong, weak, *OTHER_MODELS]
    winners = np.array(["model_a", "model_b", "tie", "tie (bothbad)"])
    for start in range(0, n, CHUNK):
        size = min(CHUNK, n - start)
        prompts = [f"synthetic prompt {i}" for i in range(start, start + size)]
        a = rng.integers(0, len(models), size)
        b = (a + rng.integers(1, len(models), size)) % len(models)
        sw = rng.random(size) < 1 / 3
        won = winners[rng.choice(4, size, p=[0.4, 0.4, 0.1, 0.1])]
        rows = []
        for i, p in enumerate(prompts):
            side = "a" if rng.random() < 0.5 else "b"
            ma, mb = ((strong, weak) if side == "a" else (weak, strong)) if sw[i] else (models[a[i]], models[b[i]])
            rows.append(dict(prompt=p, model_a=ma, model_b=mb, winner=str(won[i]), source=source,
                             strong_side=side if sw[i] else None))
        store.add_battles(rows)
        vectors = unit_rows(rng, size)
        store.put_embeddings(embedder.cache_key, {prompt_sha256(p): v for p, v in zip(prompts, vectors)})


class Timer:
    """Wraps methods of an object to add up their time per vote (benchmark instrumentation only)."""

    def __init__(self):
        self.spent: dict[str, list[float]] = defaultdict(list)
        self.current: dict[str, float] = defaultdict(float)

    def wrap(self, obj, method: str, label: str) -> None:
        inner = getattr(obj, method)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.current[label] += time.perf_counter() - start

        setattr(obj, method, timed)

    def end_vote(self) -> None:
        for label, seconds in self.current.items():
            self.spent[label].append(seconds)
        self.current = defaultdict(float)


def pct_ms(seconds) -> tuple[float, float]:
    p50, p95 = np.percentile(np.asarray(seconds) * 1e3, [50, 95])
    return float(p50), float(p95)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--battles", type=int, default=65_000)
    ap.add_argument("--votes", type=int, default=100)
    ap.add_argument("--source", default=ARENA_SOURCE,
                    help="source of the stored battles: arena-vote (default: the worst case, every stored battle "
                         "is an arena vote that the arena ratings read) or e.g. import:synthetic")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cold", action="store_true",
                    help="leave the vote prompts out of the embedding cache, so each vote encodes its prompt with "
                         "MiniLM (in the app, stream_answers caches it while the models answer)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="vote_latency_") as tmp:
        cfg = load_config(environ={})
        cfg = replace(cfg, db_path=Path(tmp) / "store.db", checkpoint_dir=Path(tmp) / "none")
        store = Store(cfg.db_path)
        embedder = Embedder(store)
        started = time.perf_counter()
        fill_store(store, embedder, args.battles, args.source, cfg.strong.name, cfg.weak.name, args.seed)
        routers = RouterSet.from_config(store, embedder, cfg)
        routers.get("sw_ranking")
        routers.get("elo")
        print(f"# store filled and routers fitted in {time.perf_counter() - started:.1f} s "
              f"({args.battles} battles of source {args.source}; sw_ranking holds "
              f"{routers.get('sw_ranking').n_battles_})", flush=True)

        arena = Arena(cfg, store, embedder, routers, controller=None, rng=random.Random(args.seed))
        timer = Timer()
        timer.wrap(routers, "score", "sw score (after, for display)")
        timer.wrap(routers, "absorb", "absorb (sw_ranking + elo)")
        timer.wrap(store, "record_vote", "store.record_vote")
        timer.wrap(store, "battles", "store.battles (arena ratings)")
        timer.wrap(embedder, "embed", "embed (cache lookups)")

        rng = np.random.default_rng(args.seed + 1)
        prompts = [f"vote prompt {i}" for i in range(args.votes + 3)]
        if args.cold:
            embedder.embed(["load the embedding model before timing"])
        else:
            store.put_embeddings(embedder.cache_key, {prompt_sha256(p): v for p, v in
                                                      zip(prompts, unit_rows(rng, len(prompts)))})
        outcomes = ["A", "B", "tie", "bothbad"]
        totals = []
        for i, prompt in enumerate(prompts):
            battle_id = arena.record_round(prompt, "bench", answers=("answer one", "answer two"),
                                           strong_side="a" if i % 2 else "b")
            timer.current.clear()
            start = time.perf_counter()
            arena.vote(battle_id, outcomes[i % 4], "bench")
            elapsed = time.perf_counter() - start
            if i >= 3:  # the first votes warm caches and BLAS threads
                totals.append(elapsed)
                timer.end_vote()
            else:
                timer.current.clear()
        p50, p95 = pct_ms(totals)
        print(f"vote N={args.battles} p50_ms={p50:.1f} p95_ms={p95:.1f}", flush=True)
        # Absorbing = storing, ratings, SW index; the sw score after is only shown to the visitor.
        absorb = np.asarray(totals) - np.asarray(timer.spent["sw score (after, for display)"])
        p50, p95 = pct_ms(absorb)
        print(f"absorb N={args.battles} p50_ms={p50:.1f} p95_ms={p95:.1f}  (the vote without its display score)")
        for label, seconds in timer.spent.items():
            p50, p95 = pct_ms(seconds)
            print(f"  {label:32s} p50_ms={p50:.1f} p95_ms={p95:.1f}")
        print("# vote prompts' embeddings " + ("NOT cached: each vote encoded its prompt" if args.cold else
              "cached, as stream_answers leaves them; --cold to time the encode too"))
        store.close()


if __name__ == "__main__":
    main()
