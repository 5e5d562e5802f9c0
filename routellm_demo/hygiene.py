"""Vote hygiene at write time: the flags that say why a vote may not count, in Chatbot Arena's manner.

Why flags and not refusals: every vote is stored (recorded, not hidden), so a team can audit the rules
and change its mind; a flagged vote just teaches no router and moves no leaderboard unless
``arena.count_flagged_votes`` is set, and the export keeps it with its flags.

- ``identity``: the prompt asks a model who it is, or an answer names a model or a vendor. The vote
  is then no longer blind (the rule Chatbot Arena applies to votes where a model revealed itself).
- ``duplicate``: the same visitor (salted hash of the address, :mod:`routellm_demo.visitors`) already
  voted on the same prompt; one voter's view of a prompt counts once.
- ``too_fast``: the vote came sooner than ``arena.min_vote_seconds`` after both answers were in, faster
  than they can be read.

Votes from a trusted source (a gold-label replay, a configured load-test address) are never flagged.
Pure functions over text and times: the arena gathers the facts, this module judges them.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Iterable

IDENTITY, DUPLICATE, TOO_FAST = "identity", "duplicate", "too_fast"
ANOMALOUS = "anomalous"  # set later, in the background (routellm_demo.anomaly)
WRITE_FLAGS = (IDENTITY, DUPLICATE, TOO_FAST)
FLAGS = (*WRITE_FLAGS, ANOMALOUS)
FLAG_TEXT = {IDENTITY: "a model's identity was asked for or revealed",
             DUPLICATE: "the same visitor voted on the same prompt before",
             TOO_FAST: "voted faster than the answers could be read",
             ANOMALOUS: "the voter disagrees with other voters on similar prompts far beyond chance"}

# Asking a model who it is, which model or company is behind it.
_IDENTITY_QUESTION = re.compile(
    r"\b(who|what)\s+(are|r)\s+(you|u)\b|\bwhat('?s| is)\s+your\s+(name|model|identity)\b|\byour\s+name\b"
    r"|\b(what|which)\s+(kind\s+of\s+|ai\s+|language\s+)*(model|llm|company|ai|version|bot)\b.{0,40}"
    r"\b((are|r)\s+(you|u)|is\s+this)\b"
    r"|\b(who|company|vendor|lab)\s+(made|created|built|trained|developed|owns)\s+(you|u)\b|\bare\s+you\s+(an?\s+)?(gpt|chatgpt|claude|gemini|"
    r"gemma|llama|mistral|mixtral|qwen|smollm|deepseek)\b|\b(identify|introduce)\s+yourself\b",
    re.IGNORECASE)
# Model families and vendors an answer may name (matched as words, case-insensitively).
VENDOR_NAMES = ("OpenAI", "ChatGPT", "GPT-3", "GPT-3.5", "GPT-4", "GPT-4o", "Anthropic", "Claude", "Gemini", "Gemma",
                "Google DeepMind", "DeepMind", "Meta AI", "LLaMA", "Llama", "Mistral", "Mixtral", "Qwen", "Alibaba Cloud",
                "DeepSeek", "SmolLM", "SmolLM2", "Hugging Face", "HuggingFace", "Cohere", "Microsoft Phi")


def _names_pattern(names: Iterable[str]) -> re.Pattern | None:
    words = sorted({n.strip() for n in names if n and len(n.strip()) >= 3}, key=len, reverse=True)
    if not words:
        return None
    return re.compile(r"(?<![\w-])(" + "|".join(re.escape(w) for w in words) + r")(?![\w])", re.IGNORECASE)


def identity_leak(prompt: str, answers: Iterable[str | None], model_names: Iterable[str] = ()) -> bool:
    """True when ``prompt`` asks a model who it is, or an answer names a model or vendor (the known
    families, plus ``model_names``: the configured models' display names and ids)."""
    if _IDENTITY_QUESTION.search(prompt or ""):
        return True
    pattern = _names_pattern([*VENDOR_NAMES, *model_names])
    return pattern is not None and any(pattern.search(a or "") for a in answers)


def too_fast(answered_at: str | None, voted_at: datetime, min_seconds: float) -> bool:
    """True when the vote came less than ``min_seconds`` after both answers were in (ISO time)."""
    if min_seconds <= 0 or not answered_at:
        return False
    return (voted_at - datetime.fromisoformat(answered_at)).total_seconds() < min_seconds


def vote_flags(*, prompt: str, answers: Iterable[str | None], model_names: Iterable[str], answered_at: str | None,
               voted_at: datetime, min_seconds: float, voted_before: bool) -> list[str]:
    """The flags of one untrusted vote, in :data:`WRITE_FLAGS` order (empty: a clean vote)."""
    found = {IDENTITY: identity_leak(prompt, answers, model_names), DUPLICATE: voted_before,
             TOO_FAST: too_fast(answered_at, voted_at, min_seconds)}
    return [f for f in WRITE_FLAGS if found[f]]
