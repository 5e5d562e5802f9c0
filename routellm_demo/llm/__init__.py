"""Calling models: OpenAI-compatible endpoints, the embedded local pair, and what a call costs."""

from routellm_demo.llm.costs import cost_usd
from routellm_demo.llm.endpoints import (
    Completion,
    Endpoint,
    EndpointError,
    Usage,
    fewshot_prompt,
    make_endpoints,
)
from routellm_demo.llm.local import LocalModelError, LocalServer

__all__ = [
    "Completion",
    "Endpoint",
    "EndpointError",
    "LocalModelError",
    "LocalServer",
    "Usage",
    "cost_usd",
    "fewshot_prompt",
    "make_endpoints",
]
