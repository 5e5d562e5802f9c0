"""routellm_demo: an open LLM router demo (RouteLLM-style routing, local models, arena votes)."""

__version__ = "0.1.0"
