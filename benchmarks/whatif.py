"""What-if on 10,000 real prompts: how long a stakeholder's file takes, end to end, on this machine.

Builds a JSONL file of MMLU prompts from RouteLLM's data (``../shared/data/routellm`` by default),
then does what ``python -m routellm_demo whatif FILE`` does: read and check the file, embed every prompt
on the private path (no embedding cache: each prompt is encoded, the cold case), score them with the
router, price every threshold and read the quality curve. The store is a fresh temporary one, seeded
as the app's first start seeds it (sw_ranking fits on those battles). Loading the embedding model is
timed apart (the app loads it once at start). Prints figures; never asserts on time (target: < 120 s
for 10,000 prompts).

Run: python benchmarks/whatif.py [--n 10000] [--router classifier] [--data-dir ../shared/data/routellm]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from routellm_demo.config import load_config  # noqa: E402
from routellm_demo.runtime import build_runtime  # noqa: E402
from routellm_demo.whatif import read_prompts, what_if  # noqa: E402


def mmlu_prompts(data_dir: Path, n: int) -> list[str]:
    prompts: list[str] = []
    for path in sorted((data_dir / "mmlu" / "responses").glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as f:
            prompts.extend(row["prompt"] for row in csv.DictReader(f))
    if len(prompts) < n:
        raise SystemExit(f"only {len(prompts)} MMLU prompts in {data_dir}; ask for --n {len(prompts)} or fewer")
    return prompts[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--router", default="classifier")
    parser.add_argument("--benchmark", default="mmlu")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "routellm"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="whatif-bench-") as tmp:
        tmp = Path(tmp)
        prompts = mmlu_prompts(Path(args.data_dir), args.n)
        path = tmp / "prompts.jsonl"
        path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts), encoding="utf-8")
        config = replace(load_config(), db_path=tmp / "store.db", seed=True)

        start = time.perf_counter()
        rt = build_runtime(config)  # seeds the empty store, as the app's first start does
        setup_s = time.perf_counter() - start
        try:
            start = time.perf_counter()
            rt.embedder.load()
            load_s = time.perf_counter() - start
            start = time.perf_counter()
            rt.routers.get(args.router)
            router_s = time.perf_counter() - start

            start, cpu_start = time.perf_counter(), time.process_time()
            file = read_prompts(path, max_chars=config.max_prompt_chars)
            read_s = time.perf_counter() - start
            result = what_if(rt, file, router=args.router, benchmark=args.benchmark)
            total_s = read_s + result.seconds["total"]
            cpu_s = time.process_time() - cpu_start
            tokens = model_tokens(rt, prompts)
        finally:
            rt.close()

    print(f"whatif prompts={result.n_prompts} distinct={len(set(prompts))} file_mb={path_mb(prompts):.1f} "
          f"model_tokens_mean={tokens.mean():.0f} model_tokens_p90={np.percentile(tokens, 90):.0f} "
          f"router={args.router} cpu_threads={threads()} load_avg_1min={os.getloadavg()[0]:.1f}")
    print(f"setup: store_seed_s={setup_s:.1f} model_load_s={load_s:.1f} router_load_s={router_s:.1f} (not counted)")
    print(f"run: read_s={read_s:.2f} embedding_s={result.seconds['embedding']:.1f} "
          f"scoring_s={result.seconds['scoring']:.1f} total_s={total_s:.1f} "
          f"prompts_per_s={result.n_prompts / total_s:.0f} cpu_s={cpu_s:.0f} (target: total < 120 s for 10,000)")


def model_tokens(rt, prompts: list[str]) -> np.ndarray:
    """Tokens the embedding model reads per prompt (after its 256-token cut): what the time scales with."""
    from routellm_demo.embeddings import load_model

    tokenizer = load_model().tokenizer
    limit = rt.embedder.max_seq_length
    sample = prompts[::max(1, len(prompts) // 2000)]
    return np.array([min(len(ids), limit) for ids in tokenizer(sample)["input_ids"]])


def path_mb(prompts: list[str]) -> float:
    return sum(len(json.dumps({"prompt": p})) + 1 for p in prompts) / 2**20


def threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    main()
