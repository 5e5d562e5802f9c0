"""Cost of one call, in USD, from the endpoint's per-1M-token prices.

Kept trivial and separate so the app, the logs and the benchmarks all price a call the same way.
"""

from __future__ import annotations

from routellm_demo.config import ModelEndpoint


def cost_usd(spec: ModelEndpoint, prompt_tokens: int, completion_tokens: int) -> float:
    """USD for ``prompt_tokens`` in and ``completion_tokens`` out at ``spec``'s prices."""
    return (prompt_tokens * spec.input_price + completion_tokens * spec.output_price) / 1_000_000
