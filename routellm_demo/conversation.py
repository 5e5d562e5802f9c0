"""What a router reads of a conversation: the last user turn alone, or with what it refers to.

RouteLLM routes on the last user message. In a chat that is often a follow-up ("why?", "now do it in
Rust") whose difficulty lives in the turns before it; a two-word prompt alone looks easy. Two modes
(``routing.context`` in the configuration, :data:`~routellm_demo.config.ROUTING_CONTEXTS`):

- ``last_turn``: the last user turn's embedding, as RouteLLM does (the default);
- ``context``: the last user turn's embedding plus :data:`CONTEXT_WEIGHT` times the embedding of the
  earlier *user* turns (the nearer counting more, :data:`CONTEXT_DECAY` per step back, at most
  :data:`CONTEXT_TURNS` of them), re-normalised to unit length as the routers expect.

Choices, made before any measurement and not tuned on the benchmark that measures them:

- Only user turns count as context: the assistant's turns were written by whichever model answered
  them, so the same question would route differently after a strong or a weak answer, and an
  offline evaluation (MT-Bench, where each model's second turn follows its own first answer) would
  have no single context to route on. System messages are left out too.
- ``CONTEXT_WEIGHT = 1``: the conversation so far counts as much as the new turn. MT-Bench's 42
  two-turn questions (39 after the contamination list) are too few to choose it on without fitting
  their noise (``benchmarks/context_routing.py --weights 0.5 1 2`` prints other weights for
  information only). The decay over several earlier turns is untested (MT-Bench has one).
- Text features (``sw_ranking``'s ``text_weight``, the classifier's counts and trees) read the last
  turn's text only: they describe the request's surface (its numbers, its length, its options), and a
  concatenated conversation would shift them out of the range they were trained on. The context
  reaches every router through the embedding.

Each turn is embedded on its own, so the earlier turns hit the embedding cache (they were the last
turn once): routing on the context costs a cache read per earlier turn, not an encoding.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from routellm_demo.config import DEFAULT_ROUTING_CONTEXT, ROUTING_CONTEXTS

LAST_TURN, CONTEXT = ROUTING_CONTEXTS  # "last_turn", "context"
DEFAULT_MODE = DEFAULT_ROUTING_CONTEXT

CONTEXT_WEIGHT = 1.0  # the earlier turns' share beside the last turn (chosen a priori, see above)
CONTEXT_DECAY = 0.5  # each step further back counts half as much
CONTEXT_TURNS = 4  # earlier user turns read at most (the nearest ones)

# What a decision says it was routed on (Decision.routed_on, the route card).
ROUTED_ON = {LAST_TURN: "last turn", CONTEXT: "last turn + context"}


def check_mode(mode: str) -> str:
    if mode not in ROUTING_CONTEXTS:
        raise ValueError(f"routing context must be one of {', '.join(ROUTING_CONTEXTS)}, got {mode!r}")
    return mode


def earlier_user_turns(messages: Sequence[dict]) -> list[str]:
    """The user turns before the last one (normalised ``{role, content}`` messages), oldest first;
    blank ones are skipped."""
    users = [m["content"] for m in messages if m.get("role") == "user"]
    return [t for t in users[:-1] if t.strip()]


def used_context(mode: str, context: Sequence[str]) -> tuple[str, ...]:
    """The earlier turns a decision in ``mode`` reads: none in ``last_turn`` mode, else the nearest
    :data:`CONTEXT_TURNS` non-blank ones (oldest first)."""
    if check_mode(mode) == LAST_TURN:
        return ()
    return tuple(t for t in context if isinstance(t, str) and t.strip())[-CONTEXT_TURNS:]


def routed_on(mode: str, context: Sequence[str]) -> str:
    """"last turn", or "last turn + context" when earlier turns were read."""
    return ROUTED_ON[CONTEXT] if used_context(mode, context) else ROUTED_ON[LAST_TURN]


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def combine(last: np.ndarray, earlier: np.ndarray, *, weight: float = CONTEXT_WEIGHT,
            decay: float = CONTEXT_DECAY) -> np.ndarray:
    """The routing vector of a turn: ``unit(last + weight * unit(sum_k decay**k * earlier[-1-k]))``.

    ``last``: the last turn's unit embedding (d,); ``earlier``: the earlier turns' embeddings (k, d),
    oldest first (k may be 0: then ``last`` itself). float32, unit length.
    """
    last = np.asarray(last, dtype=np.float64).reshape(-1)
    earlier = np.asarray(earlier, dtype=np.float64).reshape(-1, last.size)
    if len(earlier) == 0 or weight == 0:
        return _unit(last).astype(np.float32)
    if weight < 0 or not 0 < decay <= 1:
        raise ValueError(f"need weight >= 0 and 0 < decay <= 1, got {weight} and {decay}")
    steps = decay ** np.arange(len(earlier))[::-1]  # the nearest (last row) weighs 1
    context = _unit((steps[:, None] * earlier).sum(axis=0))
    return _unit(last + weight * context).astype(np.float32)


def routing_vectors(embedder, prompts: Sequence[str], contexts: Sequence[Sequence[str]] | None, mode: str, *,
                    weight: float = CONTEXT_WEIGHT, progress: bool = False) -> np.ndarray:
    """(n, d) routing vectors for ``prompts`` (the last turns), each with its conversation's earlier user
    turns (``contexts[i]``, oldest first; None or empty: a single-turn prompt). Every distinct text is
    embedded once, through the embedder's cache."""
    prompts = list(prompts)
    contexts = [()] * len(prompts) if contexts is None else [used_context(mode, c or ()) for c in contexts]
    if len(contexts) != len(prompts):
        raise ValueError(f"{len(contexts)} contexts for {len(prompts)} prompts")
    texts = list(dict.fromkeys([*prompts, *(t for c in contexts for t in c)]))
    vectors = embedder.embed(texts, progress=progress)
    row = {t: i for i, t in enumerate(texts)}
    out = np.empty((len(prompts), vectors.shape[1]), dtype=np.float32)
    for i, (prompt, context) in enumerate(zip(prompts, contexts)):
        earlier = vectors[[row[t] for t in context]] if context else vectors[:0]
        out[i] = combine(vectors[row[prompt]], earlier, weight=weight) if context else vectors[row[prompt]]
    return out
