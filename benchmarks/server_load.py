"""Load on the OpenAI-compatible server, loopback only and bounded: C concurrent clients, each
sending R requests through the real openai client over the embedded local pair.

Prints one line per mode:
  server_load mode=router clients=32 requests=... failed=0 rps=... p50_ms=... p95_ms=...
mode=router uses max_tokens=1 (routing plus one token: the router's overhead under load);
mode=e2e uses max_tokens=32 (a short real answer).

    .venv/bin/python benchmarks/server_load.py [--clients 32] [--requests 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import openai  # noqa: E402

PROMPTS = ["What is the capital of France?", "Write a haiku about rain.", "Explain recursion briefly.",
           "Prove that the square root of 2 is irrational.", "Give me three tips for sleeping well.",
           "Translate 'good morning' into Spanish.", "What is 17 times 23?", "Summarise the plot of Hamlet."]


def run_load(base_url: str, *, clients: int, requests: int, max_tokens: int, model: str, api_key: str = "none") -> dict:
    """Fire clients x requests chat completions; return counts, throughput and latency percentiles."""

    def one_client(i: int) -> list[tuple[float, str | None]]:
        c = openai.OpenAI(base_url=base_url + "/v1", api_key=api_key, max_retries=0, timeout=600)
        out = []
        for j in range(requests):
            prompt = PROMPTS[(i + j) % len(PROMPTS)] + f" (#{i}.{j})"
            t = time.perf_counter()
            try:
                r = c.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                              max_tokens=max_tokens, temperature=0)
                err = None if r.choices and r.model else "empty response"
            except Exception as e:  # a benchmark counts failures rather than dying on the first
                err = f"{type(e).__name__}: {e}"
            out.append(((time.perf_counter() - t) * 1000, err))
        return out

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [x for chunk in pool.map(one_client, range(clients)) for x in chunk]
    wall = time.perf_counter() - start
    lat = np.array([ms for ms, _ in results])
    errors = [e for _, e in results if e]
    return {"requests": len(results), "failed": len(errors), "errors": errors[:3], "rps": len(results) / wall,
            "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)), "wall_s": wall}


def main() -> None:
    import threading

    import uvicorn

    from routellm_demo.config import load_config
    from routellm_demo.runtime import build_runtime
    from routellm_demo.server import create_app

    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--requests", type=int, default=4, help="requests per client")
    p.add_argument("--router", default="sw_ranking")
    args = p.parse_args()

    tmp = Path(tempfile.mkdtemp())
    cfg = load_config()
    cfg = replace(cfg, db_path=tmp / "load.db")
    rt = build_runtime(cfg)
    server = uvicorn.Server(uvicorn.Config(create_app(rt), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    model = f"router-{args.router}-0.5"
    run_load(url, clients=2, requests=1, max_tokens=1, model=model)  # warm up: models loaded, caches hot
    for mode, max_tokens in (("router", 1), ("e2e", 32)):
        r = run_load(url, clients=args.clients, requests=args.requests, max_tokens=max_tokens, model=model)
        print(f"server_load mode={mode} router={args.router} clients={args.clients} requests={r['requests']} "
              f"failed={r['failed']} rps={r['rps']:.1f} p50_ms={r['p50_ms']:.0f} p95_ms={r['p95_ms']:.0f}", flush=True)
        for e in r["errors"]:
            print("  error:", e)
    server.should_exit = True
    thread.join(10)
    rt.close()


if __name__ == "__main__":
    main()
