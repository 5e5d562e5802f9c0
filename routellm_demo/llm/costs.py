"""Cost of one call, in USD, from the endpoint's per-1M-token prices.

Kept small and separate so the app, the logs and the benchmarks all price a call the same way.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from routellm_demo.config import ModelEndpoint


def cost_usd(spec: ModelEndpoint, prompt_tokens: int, completion_tokens: int) -> float:
    """USD for ``prompt_tokens`` in and ``completion_tokens`` out at ``spec``'s prices."""
    return (prompt_tokens * spec.input_price + completion_tokens * spec.output_price) / 1_000_000


def other_prompt_tokens(answered: ModelEndpoint, other: ModelEndpoint, messages: Sequence[Mapping[str, str]],
                        prompt_tokens: int) -> int:
    """The prompt tokens ``other`` would have read for ``messages``, from the ``prompt_tokens`` that
    ``answered`` read: the same conversation plus the difference in prompt formatting (a base model's
    few-shot header, a chat template's markers), at about 4 characters per token. This is what "the
    strong model would have cost" needs when the weak one answered: the strong model's prompt may be
    much longer than the weak one's for the same question (Gemma's few-shot header: ~150 tokens)."""
    from routellm_demo.llm.endpoints import estimate_tokens, prompt_text

    extra = estimate_tokens(prompt_text(other, messages)) - estimate_tokens(prompt_text(answered, messages))
    return max(1, prompt_tokens + extra)
