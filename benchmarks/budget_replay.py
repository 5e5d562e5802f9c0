"""Budget mode against a fixed threshold on traffic whose mix shifts halfway.

A prompt stream of MMLU questions followed by GSM8K word problems (RouteLLM's public evaluation data
in ../shared) is routed twice by the same router through the real controller (embedding, scoring,
the routing log in a real SQLite store; no model is called: each decision is logged as the answered
request would be):

- fixed: the threshold ``calibrate`` gives for the target share on the first 200 prompts (the one-off
  calibration an operator does before going live);
- budget: ``Controller.decide(..., budget=target)``, the threshold read from recent traffic.

Prints the realised share of strong calls per block of 500 prompts for both, and the largest miss
after the first block (the warm-up). Never asserts.

Run: python benchmarks/budget_replay.py [--router classifier] [--target 0.3] [--mmlu 1500]
     [--data-dir ../shared/data/routellm] [--window 300]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from routellm_demo.calibration import threshold_for_strong_share  # noqa: E402
from routellm_demo.config import load_config  # noqa: E402
from routellm_demo.evals.benchmarks import load_benchmark  # noqa: E402
from routellm_demo.runtime import build_runtime  # noqa: E402

BLOCK = 500
CALIBRATION_PROMPTS = 200


def replay(rt, prompts, router: str, *, threshold=None, budget=None) -> list[bool]:
    routed = []
    for i, prompt in enumerate(prompts):
        d = rt.controller.decide(prompt, router, threshold, budget=budget)
        rt.store.log_decision(prompt_sha256=d.prompt_sha256, router=d.router, threshold=d.threshold, score=d.score,
                              chosen_role=d.role, chosen_model=d.model, routing_ms=d.routing_ms, source="cli",
                              budget=d.budget)
        routed.append(d.role == "strong")
        if (i + 1) % 250 == 0:
            print(f"  {'budget' if budget is not None else 'fixed'}: {i + 1}/{len(prompts)}", file=sys.stderr)
    return routed


def blocks(routed: list[bool]) -> list[float]:
    return [sum(routed[i:i + BLOCK]) / len(routed[i:i + BLOCK]) for i in range(0, len(routed), BLOCK)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--router", default="classifier")
    ap.add_argument("--target", type=float, default=0.3, help="share of strong calls (0-1)")
    ap.add_argument("--mmlu", type=int, default=1500, help="MMLU prompts before the shift")
    ap.add_argument("--window", type=int, default=None, help="budget window (default: the config's)")
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "routellm"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    mmlu = load_benchmark(args.data_dir, "mmlu").prompts
    gsm8k = list(load_benchmark(args.data_dir, "gsm8k").prompts)
    rng.shuffle(gsm8k)
    stream = rng.sample(list(mmlu), args.mmlu) + gsm8k
    print(f"stream: {args.mmlu} MMLU then {len(gsm8k)} GSM8K prompts; router {args.router}, "
          f"target {100 * args.target:g}% strong", file=sys.stderr)

    results = {}
    for mode in ("fixed", "budget"):
        with tempfile.TemporaryDirectory() as tmp:
            config = replace(load_config(environ={}), db_path=Path(tmp) / "budget.db", seed=True)
            if args.window:
                config = replace(config, budget_window=args.window)
            rt = build_runtime(config)  # seeded: stored battle prompts are the budget's prior
            try:
                started = time.perf_counter()
                if mode == "fixed":
                    head = stream[:CALIBRATION_PROMPTS]
                    scores = [rt.controller.decide(p, args.router, 0.5).score for p in head]
                    t = threshold_for_strong_share(scores, args.target)
                    results[mode] = replay(rt, stream, args.router, threshold=t)
                    label = f"fixed threshold {t:.4f} (calibrated on the first {CALIBRATION_PROMPTS} prompts)"
                else:
                    results[mode] = replay(rt, stream, args.router, budget=args.target)
                    label = f"budget {100 * args.target:g}% (window {rt.config.budget_window})"
                seconds = time.perf_counter() - started
            finally:
                rt.close()
        shares = blocks(results[mode])
        after_warmup = shares[1:]
        worst = max(abs(s - args.target) for s in after_warmup) if after_warmup else float("nan")
        print(f"{mode}: {label}; {len(stream)} prompts in {seconds:.0f} s")
        print(f"  realised strong share per {BLOCK} prompts: "
              + "  ".join(f"{100 * s:.1f}%" for s in shares)
              + f"   (the last block: {len(stream) - BLOCK * (len(shares) - 1)} prompts; "
                f"GSM8K from prompt {args.mmlu + 1})")
        print(f"  largest miss after the first block: {100 * worst:.1f} points")


if __name__ == "__main__":
    main()
