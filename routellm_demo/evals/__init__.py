"""Offline evaluation of routers on RouteLLM's benchmarks (MMLU, GSM8K, MT-Bench), RouteLLM's metrics.

- :mod:`.benchmarks`: a benchmark folder -> :class:`EvalSet` (prompts, per-model quality, CV groups)
  and its gold strong-vs-weak battles;
- :mod:`.metrics`: quality-vs-strong-share curves, PGR, APGR, CPT, the oracle and random baselines;
- :mod:`.protocol`: scores a router never trained on (grouped cross-validation or a separate train
  folder), with a leakage guard;
- :mod:`.command`: the ``eval`` subcommand.
"""

from routellm_demo.evals.benchmarks import EvalError, EvalSet, gold_battles, load_benchmark, with_embeddings

__all__ = ["EvalError", "EvalSet", "gold_battles", "load_benchmark", "with_embeddings"]
