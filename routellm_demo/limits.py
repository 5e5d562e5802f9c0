"""The limits a public demo needs, in the manner of Chatbot Arena: prompt length, turns per
conversation, and a per-session rate on generations and on votes.

Why here and not in the app: the same rules (and the same messages) hold for the chat and the arena,
and they are plain Python that tests can drive with a fake clock. Every refusal is a
:class:`LimitError` whose message says what the limit is and what to do; nothing in this module
touches a model or the store.

The rate limiter is a sliding window: a key may act at most ``max_events`` times in any
``window_s`` seconds. It is thread-safe (Gradio calls handlers from worker threads) and forgets
idle keys, so memory stays bounded by the number of sessions active in the last window.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from routellm_demo.errors import UserError


class LimitError(UserError, ValueError):
    """A request refused by a limit. ``kind`` is "prompt_too_long", "empty_prompt", "invalid_text",
    "too_many_turns", "conversation_too_long" or "rate_limited"; ``retry_after`` (seconds) is set for
    "rate_limited"."""

    def __init__(self, kind: str, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after

    @property
    def status(self) -> int:
        """429 for a rate limit (retry after ``retry_after``), else 400: the prompt must change."""
        return 429 if self.kind == "rate_limited" else 400


def check_prompt(prompt, max_chars: int) -> str:
    """The prompt if it is non-blank, valid Unicode text of at most ``max_chars`` characters, else a
    LimitError."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise LimitError("empty_prompt", "Type a question first.")
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate: no model, store or browser can take it
        raise LimitError(
            "invalid_text",
            f"Your message contains an invalid character at position {e.start:,} (not valid Unicode text). "
            "Retype that part and send it again.",
        ) from None
    if len(prompt) > max_chars:
        raise LimitError(
            "prompt_too_long",
            f"Your message is {len(prompt):,} characters long; the limit is {max_chars:,}. "
            f"Shorten it by {len(prompt) - max_chars:,} characters and send it again.",
        )
    return prompt


def check_turns(user_turns: int, max_turns: int) -> None:
    """Refuse a new turn once a conversation already holds ``max_turns`` user turns."""
    if user_turns >= max_turns:
        raise LimitError(
            "too_many_turns",
            f"This conversation has reached {max_turns} turns, the limit. "
            "Start a new conversation to keep chatting.",
        )


class RateLimiter:
    """Sliding-window limiter: at most ``max_events`` per key in any ``window_s`` seconds."""

    def __init__(self, max_events: int, window_s: float = 60.0, *, what: str = "requests",
                 clock: Callable[[], float] = time.monotonic):
        if max_events < 1:
            raise ValueError(f"max_events must be at least 1, got {max_events}")
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self.max_events = int(max_events)
        self.window_s = float(window_s)
        self.what = what
        self._clock = clock
        self._events: dict[str, deque] = {}
        self._lock = threading.Lock()
        self._last_sweep = clock()

    def hit(self, key: str) -> None:
        """Count one event for ``key``, or raise LimitError (nothing counted) if over the limit."""
        now = self._clock()
        with self._lock:
            self._sweep(now)
            events = self._events.setdefault(key, deque())
            horizon = now - self.window_s
            while events and events[0] <= horizon:
                events.popleft()
            if len(events) >= self.max_events:
                wait = events[0] + self.window_s - now
                raise LimitError(
                    "rate_limited",
                    f"Too many {self.what}: at most {self.max_events} per {self._window_text()} in one "
                    f"session. Try again in {max(1, math.ceil(wait))} s.",
                    retry_after=wait,
                )
            events.append(now)

    def remaining(self, key: str) -> int:
        """Events ``key`` may still make in the current window."""
        now = self._clock()
        with self._lock:
            events = self._events.get(key, ())
            return self.max_events - sum(1 for t in events if t > now - self.window_s)

    def _window_text(self) -> str:
        return "minute" if self.window_s == 60 else f"{self.window_s:g} s"

    def _sweep(self, now: float) -> None:
        """Drop keys idle for a whole window (at most once per window), bounding memory."""
        if now - self._last_sweep < self.window_s:
            return
        self._last_sweep = now
        horizon = now - self.window_s
        for key in [k for k, ev in self._events.items() if not ev or ev[-1] <= horizon]:
            del self._events[key]

    def __len__(self) -> int:
        """Keys currently tracked (for tests)."""
        with self._lock:
            return len(self._events)


@dataclass
class Limits:
    """The demo's limits for the chat and the arena; build with :meth:`from_config`.

    Two keys, each with its own quota: the session (in this process's memory: a session lives in one
    process) and, when a store is given, the visitor (the salted hash of the client address,
    :mod:`routellm_demo.visitors`; counted in the store, so a new session, another process or replica
    does not reset it). Order matters: a prompt is checked for length and turns BEFORE any rate is
    counted, so a refused prompt (kept in the box for editing) uses up no quota.
    """

    max_prompt_chars: int
    max_turns: int
    generations: RateLimiter
    votes: RateLimiter
    visitor_generations: object | None = None  # visitors.SharedLimiter, or None: per-session limits only
    visitor_votes: object | None = None

    @classmethod
    def from_config(cls, config, *, store=None, clock: Callable[[], float] = time.monotonic) -> "Limits":
        rpm = config.requests_per_minute
        shared = {}
        if store is not None:
            from routellm_demo.visitors import SharedLimiter  # visitors imports LimitError from here

            shared = dict(
                visitor_generations=SharedLimiter(store, config.visitor_requests_per_minute, 60.0,
                                                  kind="generation", what="requests"),
                visitor_votes=SharedLimiter(store, config.visitor_votes_per_hour, 3600.0, kind="vote", what="votes"))
        return cls(
            max_prompt_chars=config.max_prompt_chars,
            max_turns=config.max_turns,
            generations=RateLimiter(rpm, 60.0, what="requests", clock=clock),
            votes=RateLimiter(rpm, 60.0, what="votes", clock=clock),
            **shared,
        )

    def check_chat(self, session_id: str, prompt: str, user_turns: int, history_chars: int = 0,
                   visitor=None) -> str:
        """A chat turn: prompt length, the turn cap and the conversation's size, then the rates.

        ``history_chars`` (the earlier turns' text) is bounded too, because the history comes back
        from the browser and is sent upstream: at most ``max_turns`` full-size prompts' worth.
        ``visitor``: a :class:`~routellm_demo.visitors.Visitor` (None: the session alone is limited).
        """
        check_prompt(prompt, self.max_prompt_chars)
        check_turns(user_turns, self.max_turns)
        if history_chars + len(prompt) > self.max_prompt_chars * self.max_turns:
            raise LimitError(
                "conversation_too_long",
                f"This conversation is over {self.max_prompt_chars * self.max_turns:,} characters, the limit. "
                "Start a new conversation to keep chatting.",
            )
        self._hit(self.generations, self.visitor_generations, session_id, visitor)
        return prompt

    def check_arena(self, session_id: str, prompt: str, visitor=None) -> str:
        """An arena question (one generation from each model counts as one request)."""
        check_prompt(prompt, self.max_prompt_chars)
        self._hit(self.generations, self.visitor_generations, session_id, visitor)
        return prompt

    def check_vote(self, session_id: str, visitor=None) -> None:
        self._hit(self.votes, self.visitor_votes, session_id, visitor)

    @staticmethod
    def _hit(per_session: RateLimiter, per_visitor, session_id: str, visitor) -> None:
        """The session's quota first (in memory), then the visitor's (in the store); a trusted source
        (a configured load-test address) has no visitor quota."""
        per_session.hit(session_id)
        if per_visitor is not None and visitor is not None and not visitor.trusted:
            per_visitor.hit(visitor.key)
