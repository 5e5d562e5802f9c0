"""Latency of the embedded local pair: load time, time to first token, decode speed.

Run: ``python benchmarks/llm_latency.py [--max-tokens 64] [--prompts 5]``. Prints one line per model:

    local smollm2 load_s=1.56 (ready_s=1.20 + warm-up) ttft_ms=138 tok_per_s=39.9 n=5 ...

- load_s: server process start until it answers /v1/models (ready_s) and has decoded one warm-up
  token after evaluating the prompt prefix every request shares (the few-shot header for Gemma).
- ttft_ms: median time from sending a streamed request to its first text piece.
- tok_per_s: median decode speed, (completion tokens - 1) / (latency - ttft), per request.

Numbers depend on what else runs on the machine (two cores here), so compare runs made alike.
:func:`measure_local` is the function to call from other benchmarks (e.g. routing overhead).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from routellm_demo.config import LOCAL_MODELS, Config, load_config  # noqa: E402
from routellm_demo.llm.endpoints import Completion, Endpoint, warmup_prompt  # noqa: E402
from routellm_demo.llm.local import LocalServer  # noqa: E402

PROMPTS = (
    "What is the capital of France?",
    "Explain what a black hole is.",
    "How do I boil an egg?",
    "Name three primary colors.",
    "Why do leaves change color in autumn?",
    "Who wrote Romeo and Juliet?",
    "What is photosynthesis?",
)


def measure_local(local: str, config: Config, prompts=PROMPTS[:5], max_tokens: int = 64) -> dict:
    """Start one embedded model fresh, stream ``prompts`` through it, stop it; return the medians."""
    spec = LOCAL_MODELS[local]
    server = LocalServer.from_config(spec, config, warmup_prompt=warmup_prompt(spec))
    try:
        server.ensure_running()
        endpoint = Endpoint(spec, server=server)
        ttfts, speeds, tokens = [], [], []
        for prompt in prompts:
            final = None
            for item in endpoint.stream([{"role": "user", "content": prompt}], max_tokens=max_tokens):
                if isinstance(item, Completion):
                    final = item
            ttfts.append(final.ttft_ms)
            tokens.append(final.usage.completion_tokens)
            decode_s = (final.latency_ms - final.ttft_ms) / 1000
            if final.usage.completion_tokens > 1 and decode_s > 0:
                speeds.append((final.usage.completion_tokens - 1) / decode_s)
        return {
            "model": local,
            "load_s": server.load_seconds,
            "ready_s": server.ready_seconds,
            "ttft_ms": statistics.median(ttfts),
            "tok_per_s": statistics.median(speeds) if speeds else float("nan"),
            "completion_tokens": statistics.median(tokens),
            "n": len(prompts),
        }
    finally:
        server.stop()


def format_line(result: dict) -> str:
    return (f"local {result['model']} load_s={result['load_s']:.2f} (ready_s={result['ready_s']:.2f} + warm-up) ttft_ms={result['ttft_ms']:.0f} "
            f"tok_per_s={result['tok_per_s']:.1f} n={result['n']} median_completion_tokens={result['completion_tokens']:.0f}")


def measure_routing(config: Config, prompts=PROMPTS, names=("elo", "sw_ranking", "mf")) -> dict:
    """Median routing overhead per router: embed an uncached prompt + score it, as the controller does.

    sw_ranking is fitted on the configured store's battles (as the app does); mf from its checkpoint.
    """
    import tempfile
    import time

    from routellm_demo.embeddings import Embedder
    from routellm_demo.store import Store
    from routellm_demo.router_set import RouterSet

    store = Store(config.db_path)
    emb = Embedder(Store(Path(tempfile.mkdtemp()) / "cold.db"))  # a cold cache: every prompt is new
    emb.embed(["warm up the model"])
    routers = RouterSet.from_config(store, Embedder(store), config)
    out = {}
    for name in routers_available(routers, names):
        times = []
        for i, prompt in enumerate(prompts):
            t = time.perf_counter()
            text = f"{prompt} ({name} {i})"
            routers.score(name, emb.embed([text]), [text])
            times.append((time.perf_counter() - t) * 1000)
        out[name] = {"routing_ms": statistics.median(times), "battles": len(routers.battles())}
    store.close()
    return out


def routers_available(routers, names):
    for name in names:
        try:
            routers.get(name)
        except Exception as e:  # e.g. no mf checkpoint: say so, measure the others
            print(f"routing {name}: skipped ({e})")
            continue
        yield name


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--prompts", type=int, default=5, help=f"how many prompts (at most {len(PROMPTS)})")
    args = parser.parse_args(argv)
    config = load_config()
    results = []
    for local in ("smollm2", "gemma3"):
        results.append(measure_local(local, config, PROMPTS[: args.prompts], args.max_tokens))
        print(format_line(results[-1]), flush=True)
    for name, r in measure_routing(config).items():
        shares = " ".join(f"pct_of_ttft_{res['model']}={100 * r['routing_ms'] / res['ttft_ms']:.1f}" for res in results)
        print(f"routing {name} battles={r['battles']} routing_ms={r['routing_ms']:.1f} {shares}", flush=True)


if __name__ == "__main__":
    main()
