"""The first visit of a fresh install: how soon is the app alive? From an empty store with seeding on,
offline, the seconds until each thing a first visitor looks at has content, counted from the start
(before ``build_runtime``; the library's imports are timed apart):

  first_visit seeded_s=...           build_runtime done: the shipped seed (data/seed/) is in the store
  first_visit leaderboard_s=...      Arena.leaderboard("all") has rows (what the Leaderboard tab shows)
  first_visit learning_s=...         what the Learning tab reads (battles by source, arena votes,
                                     the routers' versions and training-set sizes) has content
  first_visit why_panel_s=...        RouterSet.explain("sw_ranking", ...) returns past battles (the chat's
                                     why-panel; includes loading MiniLM to embed the visitor's prompt)
  first_visit update_offline_s=...   the background fetch of RouteLLM's full set gives up (offline)
  first_visit seed_bytes=... battles=... prompts=... (the seed on disk)
  first_visit embed_rate=...         prompts/s: what embedding the seed at start would cost instead
  first_visit seed_load_s=...        the seed load alone, into another empty store

The issue's target: a populated leaderboard at once, the why-panel and the Learning tab within two
minutes, offline. Never asserts on time.

    .venv/bin/python benchmarks/first_visit.py [--online]

``--online`` lets the background update fetch the real public set (needs internet) and times it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPT = "A shop sells pens at $3 each and notebooks at $5 each. How much do 4 pens and 2 notebooks cost?"
UNREACHABLE = "http://127.0.0.1:9/routellm/evals"  # connection refused at once: the offline case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--online", action="store_true", help="let the background update fetch the real public set")
    parser.add_argument("--embed-sample", type=int, default=300,
                        help="seed prompts encoded to estimate embedding them all at start (default 300)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="  log %(name)s: %(message)s")
    logging.getLogger("routellm_demo.seed").setLevel(logging.INFO)

    started = time.perf_counter()
    from routellm_demo import seed
    from routellm_demo.arena import Arena
    from routellm_demo.config import load_config
    from routellm_demo.learning import prequential
    from routellm_demo.refresh import Refresher
    from routellm_demo.runtime import build_runtime
    from routellm_demo.store import ARENA_SOURCE

    imports = time.perf_counter() - started
    files = [seed.SEED_DIR / f for f in (seed.BATTLES_FILE, seed.EMBEDDINGS_FILE, seed.MANIFEST_FILE)]
    manifest = seed.read_manifest()
    print(f"first_visit seed_bytes={sum(f.stat().st_size for f in files)} "
          + " ".join(f"{f.name}={f.stat().st_size}" for f in files)
          + f" battles={manifest['battles']} prompts={manifest['prompts']}")
    print(f"first_visit imports_s={imports:.2f} (library modules, before the clock below starts)")

    with tempfile.TemporaryDirectory(prefix="first_visit_") as tmp:
        config = replace(load_config(environ={}), db_path=Path(tmp) / "fresh.db", seed=True)
        t0 = time.perf_counter()
        rt = build_runtime(config)
        seeded = time.perf_counter() - t0
        print(f"first_visit seeded_s={seeded:.2f} battles={sum(rt.store.count_battles().values())}")
        try:
            arena = Arena.from_runtime(rt)
            board = arena.leaderboard("all")
            print(f"first_visit leaderboard_s={time.perf_counter() - t0:.2f} rows={len(board['rows'])} "
                  f"(leaderboard alone {time.perf_counter() - t0 - seeded:.2f})")

            refresher = Refresher(rt.routers, rt.store, rt.embedder)
            votes, counts = rt.store.battles(source=ARENA_SOURCE), rt.store.count_battles()
            prequential(votes)
            versions = refresher.status()
            sizes = {v.name: v.n_battles for v in versions}
            print(f"first_visit learning_s={time.perf_counter() - t0:.2f} sources={len(counts)} "
                  f"router_sizes={sizes} (before any router is loaded)")

            t = time.perf_counter()
            vector = rt.embedder.embed_one(PROMPT)
            embedded = time.perf_counter() - t
            why = rt.routers.explain("sw_ranking", vector, k=5, prompt=PROMPT)
            print(f"first_visit why_panel_s={time.perf_counter() - t0:.2f} past_battles={len(why)} "
                  f"(embedding model load + prompt {embedded:.2f}, sw_ranking fit + explain "
                  f"{time.perf_counter() - t - embedded:.2f})")

            sizes = {v.name: v.n_battles for v in refresher.status()}
            print(f"first_visit learning_after_why router_sizes={sizes}")

            t = time.perf_counter()
            thread = seed.start_update(rt, **({} if args.online else {"base_url": UNREACHABLE}))
            if thread is not None:
                thread.join()
            label = "update_online_s" if args.online else "update_offline_s"
            print(f"first_visit {label}={time.perf_counter() - t:.2f} started={thread is not None} "
                  f"battles_now={sum(rt.store.count_battles().values())}")
        finally:
            rt.close()

        # the alternative to shipping embeddings: encode every seed prompt at first start (estimated
        # from a random sample, the model already loaded)
        import numpy as np

        from routellm_demo.embeddings import Embedder

        prompts = seed.unique_prompts(seed.read_battles())
        pick = np.random.default_rng(0).choice(len(prompts), size=min(args.embed_sample, len(prompts)), replace=False)
        t = time.perf_counter()
        Embedder().embed([prompts[i] for i in pick])
        per_s = len(pick) / (time.perf_counter() - t)
        print(f"first_visit embed_rate={per_s:.1f} prompts/s (sample of {len(pick)}) -> embedding all "
              f"{len(prompts)} seed prompts at start would take ~{len(prompts) / per_s:.0f} s")

        # the seed load alone, into another fresh store (what a start costs before the page is served)
        from routellm_demo.store import Store

        store = Store(Path(tmp) / "again.db")
        t = time.perf_counter()
        report = seed.seed_store(store, Embedder.model_name)
        print(f"first_visit seed_load_s={time.perf_counter() - t:.2f} battles={report.battles} "
              f"embeddings={report.embeddings}")
        store.close()


if __name__ == "__main__":
    main()
