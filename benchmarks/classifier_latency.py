"""Latency of the shipped classifier checkpoint: one prompt scored as the app scores it, and a batch,
with and without its boosted trees; plus a refit's time on the shipped training-set size.

Reads ``data/checkpoints/classifier.npz`` (the router the app uses by default). Embedding the prompt is
excluded (the vector is given); the text counts, the multiple-choice features and the trees' walk are
included. "with_vote_ridge": the same router after 200 votes on open prompts, with the votes' ridge (on the
vector and an open prompt's text counts, as the classifier fits it) and its gate against a 4096-prompt sample
of the store (``routellm_demo/routers/vote_ridge.py``), scoring the multiple-choice prompt and an open one. A refit (what the app does in the
background every 50 votes) is timed on synthetic battles of the checkpoint's own size, without votes and
with 200 of them. Prints figures; never asserts on time.

Run: python benchmarks/classifier_latency.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from routellm_demo.battles import ARENA_SOURCE, Battles  # noqa: E402
from routellm_demo.routers.classifier import ClassifierRouter  # noqa: E402
from routellm_demo.routers.vote_ridge import VoteRidge  # noqa: E402

PROMPT = ("A train leaves at 3:15 pm at 80 km/h; a second leaves 45 minutes later at 100 km/h. When does "
          "the second catch up?\nA. 5:00 pm\nB. 6:15 pm\nC. 7:00 pm\nD. It never does\nAnswer:")
OPEN_PROMPT = PROMPT.split("\nA.")[0]  # the same question without options: the ridge reads its counts


def percentiles(seconds: list[float]) -> str:
    ms = np.asarray(seconds) * 1e3
    return f"p50_ms={np.percentile(ms, 50):.3f} p95_ms={np.percentile(ms, 95):.3f}"


def time_calls(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    rng = np.random.default_rng(0)
    router = ClassifierRouter.load(ROOT / "data" / "checkpoints" / "classifier.npz")
    x = rng.standard_normal((1, 384)).astype(np.float32)
    x /= np.linalg.norm(x)
    head_only = ClassifierRouter.load(ROOT / "data" / "checkpoints" / "classifier.npz")
    head_only.tree_weight = 0.0
    voted = ClassifierRouter.load(ROOT / "data" / "checkpoints" / "classifier.npz")
    votes = rng.standard_normal((200, 384))
    votes /= np.linalg.norm(votes, axis=1, keepdims=True)
    vote_texts = [f"How many apples are left after {i} of {2 * i + 7} are eaten?" for i in range(200)]
    store = rng.standard_normal((20_000, 384)).astype(np.float32)
    voted.vote_ridge_ = VoteRidge().fit(votes, rng.random(200), store / np.linalg.norm(store, axis=1, keepdims=True),
                                        inputs=voted.vote_ridge_inputs(votes, vote_texts))
    for label, r, prompt in (("blend", router, PROMPT), ("head_only", head_only, PROMPT),
                             ("with_vote_ridge", voted, PROMPT), ("with_vote_ridge open_prompt", voted, OPEN_PROMPT)):
        r.win_probability(x, [prompt])
        print(f"classifier {label} one_prompt "
              f"{percentiles(time_calls(lambda: r.win_probability(x, [prompt]), 500))}")
    batch = rng.standard_normal((1000, 384)).astype(np.float32)
    batch /= np.linalg.norm(batch, axis=1, keepdims=True)
    prompts = [PROMPT.replace("80", str(i)) for i in range(1000)]
    print(f"classifier blend batch_1000 {percentiles(time_calls(lambda: router.win_probability(batch, prompts), 5))}")

    n = router.n_battles_
    xs = rng.standard_normal((n, 384)).astype(np.float32)
    xs /= np.linalg.norm(xs, axis=1, keepdims=True)
    texts = [prompts[i % 1000] for i in range(n - 200)] + [f"voted prompt {i}" for i in range(200)]
    battles = Battles(["strong", "weak"], np.zeros(n), np.ones(n), rng.choice([0.0, 0.5, 1.0], n), xs,
                      prompts=texts, sources=["import"] * n)
    with_votes = Battles(battles.players, battles.a, battles.b, battles.outcome, xs, prompts=texts,
                         sources=["import"] * (n - 200) + [ARENA_SOURCE] * 200)  # the last 200 prompts voted on
    ClassifierRouter(epochs=1).fit(battles.subset(np.arange(500)))  # torch's first use, out of the timings
    for label, params, data in (("blend", {}, battles), ("head_only", {"tree_weight": 0.0}, battles),
                                ("blend_200_votes", {}, with_votes)):
        start = time.perf_counter()
        ClassifierRouter(**params).fit(data)
        print(f"classifier {label} refit N={n} seconds={time.perf_counter() - start:.1f}")


if __name__ == "__main__":
    main()
