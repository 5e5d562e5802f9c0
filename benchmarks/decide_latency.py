"""A whole routing decision, timed as a request pays it: ``Controller.decide`` on a fresh prompt.

``decide`` embeds the prompt (a cache miss: the vector is computed and written to the store's cache),
scores it with the router and picks a model; no model is called. The store holds 65,000 battles: the
shipped seed of gold battles (real prompts, real embeddings) plus copies of them resampled with noise
(so the neighbourhoods look like real ones, not random unit vectors). The timed prompts are real ones
from ``../shared/data/routellm``, reported by kind since encoding grows with length: chat questions
(MT-Bench's turns) and the longer benchmark prompts (GSM8K, MMLU); their cached vectors are removed
first, so every decision encodes. Loading the model and fitting each router happen before the timing (the app
does them at start). Prints p50/p95 per router and embedding backend; never asserts on time
(target: p50 <= 5 ms for the default router and sw_ranking with the ONNX backend).

Run: python benchmarks/decide_latency.py [--battles 65000] [--prompts 100] [--backends onnx,torch]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from routellm_demo.config import load_config  # noqa: E402
from routellm_demo.controller import Controller  # noqa: E402
from routellm_demo.embeddings import Embedder  # noqa: E402
from routellm_demo.router_set import RouterSet  # noqa: E402
from routellm_demo.seed import SEED_DIR, read_battles, read_embeddings, unique_prompts  # noqa: E402
from routellm_demo.store import Store, prompt_sha256  # noqa: E402

ROUTERS = ("classifier", "sw_ranking", "mf", "elo", "random")


def shared_prompts(data_dir: Path, n: int, seed: int = 0) -> dict[str, list[str]]:
    """Real prompts by kind: "chat" (MT-Bench's questions, first and follow-up turns: what people type),
    "gsm8k" and "mmlu" (benchmark prompts with their instructions, several times longer), ``n`` of each
    at most."""
    rng = random.Random(seed)
    chat = [turn for line in open(data_dir / "mt_bench" / "question.jsonl", encoding="utf-8")
            for turn in json.loads(line)["turns"]]
    with open(data_dir / "gsm8k" / "gsm8k_responses.csv", newline="", encoding="utf-8") as f:
        gsm = list(dict.fromkeys(row["prompt"] for row in csv.DictReader(f)))
    mmlu: list[str] = []
    for path in sorted((data_dir / "mmlu" / "responses").glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as f:
            mmlu.extend(row["prompt"] for row in csv.DictReader(f))
    return {"chat": chat[:n], "gsm8k": rng.sample(gsm, min(n, len(gsm))), "mmlu": rng.sample(mmlu, min(n, len(mmlu)))}


def fill_store(store: Store, cache_key: str, n_battles: int, seed: int = 0) -> int:
    """The seed's gold battles plus noisy copies of them, with their vectors in the cache."""
    rows = read_battles()
    _, vectors = read_embeddings(SEED_DIR, unique_prompts(rows))
    rng = np.random.default_rng(seed)
    extra, extra_vectors = [], {}
    for k in range(max(0, n_battles - len(rows))):
        row = dict(rows[k % len(rows)])
        base = vectors[prompt_sha256(row["prompt"])]
        row["prompt"] = f"{row['prompt']}\n[resampled {k}]"
        row["uid"] = f"resampled-{k}"
        v = base + rng.normal(0, 0.03, base.shape).astype(np.float32)  # cosine ~0.85 to its source
        extra_vectors[prompt_sha256(row["prompt"])] = v / np.linalg.norm(v)
        extra.append(row)
    with store.transaction():
        store.add_battles(rows + extra)
        store.put_embeddings(cache_key, {**vectors, **extra_vectors})
    return len(rows) + len(extra)


def forget_vectors(db_path: Path, prompts: list[str]) -> None:
    """Remove the timed prompts' cached vectors, so each decision encodes its prompt."""
    with contextlib.closing(sqlite3.connect(db_path)) as db, db:
        db.executemany("DELETE FROM embeddings WHERE sha256 = ?", [(prompt_sha256(p),) for p in prompts])


def token_counts(prompts: list[str]) -> np.ndarray:
    from tokenizers import Tokenizer

    from routellm_demo.minilm_onnx import model_dir

    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.no_padding()  # the file pads to 128 tokens; the encoder pads a batch to its longest instead
    tok.enable_truncation(256)
    return np.array([len(e.ids) for e in tok.encode_batch(prompts)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--battles", type=int, default=65_000)
    parser.add_argument("--prompts", type=int, default=100, help="prompts of each kind")
    parser.add_argument("--backends", default="onnx,torch")
    parser.add_argument("--routers", default=",".join(ROUTERS))
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "routellm"))
    args = parser.parse_args()

    by_kind = shared_prompts(Path(args.data_dir), args.prompts)
    for kind, prompts in by_kind.items():
        tokens = token_counts(prompts)
        print(f"decide prompts kind={kind} n={len(prompts)} tokens_p50={np.median(tokens):.0f} "
              f"tokens_p90={np.percentile(tokens, 90):.0f}")
    print(f"cpu_threads={os.cpu_count()} load_avg_1min={os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="decide-bench-") as tmp:
        db = Path(tmp) / "store.db"
        config = replace(load_config(), db_path=db, seed=False)
        with Store(db) as store:
            start = time.perf_counter()
            n = fill_store(store, Embedder().cache_key, args.battles)
            print(f"store battles={n} filled_s={time.perf_counter() - start:.1f}")
        for backend in args.backends.split(","):
            store = Store(db)
            try:
                embedder = Embedder(store, backend=backend, cache_dir=config.model_cache_dir)
                routers = RouterSet.from_config(store, embedder, config)
                controller = Controller(config, store, embedder, routers)
                for name in args.routers.split(","):
                    start = time.perf_counter()
                    controller.decide("warm up: load the model and fit the router", name)
                    ready_s = time.perf_counter() - start
                    for kind, prompts in by_kind.items():
                        forget_vectors(db, prompts)
                        total, routing = [], []
                        for p in prompts:
                            start = time.perf_counter()
                            d = controller.decide(p, name)
                            total.append(time.perf_counter() - start)
                            routing.append(d.routing_ms / 1e3)
                        t50, t95 = np.percentile(np.array(total) * 1e3, [50, 95])
                        r50 = np.percentile(np.array(routing) * 1e3, 50)
                        print(f"decide router={name} backend={backend} prompts={kind} N={n} p50_ms={t50:.2f} "
                              f"p95_ms={t95:.2f} embed_and_score_p50_ms={r50:.2f} ready_s={ready_s:.1f}")
            finally:
                store.close()


if __name__ == "__main__":
    main()
