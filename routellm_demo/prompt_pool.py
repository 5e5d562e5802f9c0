"""The prompts a team wants labelled (config ``arena.prompt_pool``), and which one to ask about next.

Why: a team collecting labels has more prompts than voters, so the arena offers the prompts whose votes
teach the routers most (:mod:`routellm_demo.active`: the ones least covered by the arena's votes so far,
drawn with some randomness so the labels stay representative). Why a sample: a pool can hold thousands
of prompts and each must be encoded before it can be compared with the votes, so a suggestion compares a
random sample of the prompts not voted on yet (``sample`` of them); a click stays short and the picks stay
spread over the pool.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from routellm_demo.active import next_prompts
from routellm_demo.battles import ARENA_SOURCE
from routellm_demo.errors import UserError
from routellm_demo.store import prompt_sha256

logger = logging.getLogger(__name__)

DEFAULT_SAMPLE = 64  # pool prompts scored per suggestion


class PoolError(UserError, RuntimeError):
    """The pool cannot give a suggestion (unreadable file, every prompt voted on)."""


class PromptPool:
    """Suggests prompts from a file to ask the arena's visitors about; ``suggest`` is thread-safe."""

    def __init__(self, path: str | Path, store, embedder, *, max_chars: int, sample: int = DEFAULT_SAMPLE,
                 seed: int | None = None):
        self.path = Path(path)
        self.store = store
        self.embedder = embedder
        self.max_chars = int(max_chars)
        self.sample = int(sample)
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._prompts: list[str] | None = None
        self._voted: set[str] = set()
        self._voted_prompts: list[str] = []  # every arena vote's prompt, pool or not: what the votes cover
        self._voted_vectors: np.ndarray | None = None  # the first len() of them, embedded (grown per suggest)
        self.error: str | None = None  # why the file could not be read (for the operator's log)

    def _load(self) -> list[str]:
        """The pool's prompts not voted on yet, read once (callers hold the lock)."""
        if self._prompts is None:
            from routellm_demo.whatif import read_prompts

            try:
                prompts = read_prompts(self.path, max_chars=self.max_chars).prompts
            except (UserError, OSError) as e:
                self.error = str(e)
                logger.error("arena: the prompt pool %s cannot be read: %s", self.path, e)
                raise PoolError("The prompt pool cannot be read right now; type your own question.") from None
            self._prompts = list(dict.fromkeys(prompts))
            voted = self.store.battles(source=ARENA_SOURCE, include_flagged=True)  # asked is asked, flagged or not
            self._voted_prompts = list(dict.fromkeys(b["prompt"] for b in voted))
            self._voted = {prompt_sha256(p) for p in self._voted_prompts}
            logger.info("arena: prompt pool %s: %d prompts, %d already voted on", self.path, len(self._prompts),
                        sum(prompt_sha256(p) in self._voted for p in self._prompts))
        return [p for p in self._prompts if prompt_sha256(p) not in self._voted]

    def mark_voted(self, prompt: str) -> None:
        """A vote on ``prompt`` was stored: it is not suggested again."""
        with self._lock:
            digest = prompt_sha256(prompt)
            if digest not in self._voted:
                self._voted.add(digest)
                self._voted_prompts.append(prompt)

    def forget_votes(self) -> None:
        """The store's arena votes were deleted: read what is voted (and what the votes cover) anew."""
        with self._lock:
            self._prompts, self._voted, self._voted_prompts, self._voted_vectors = None, set(), [], None

    def suggest(self, k: int = 1) -> list[str]:
        """Up to ``k`` prompts to ask about next: a random sample of the unvoted ones, compared with every
        voted prompt, drawn by :func:`routellm_demo.active.next_prompts` (embeddings come from the cache
        the votes filled, so only the sample may need encoding)."""
        with self._lock:
            todo = self._load()
            if not todo:
                raise PoolError("Every prompt of the pool has a vote: type your own question.")
            pick = self._rng.choice(len(todo), size=min(self.sample, len(todo)), replace=False)
            candidates = [todo[i] for i in pick]
            vectors = self.embedder.embed(candidates)
            if self._voted_vectors is None:
                self._voted_vectors = np.zeros((0, vectors.shape[1]), dtype=np.float32)
            new = self._voted_prompts[len(self._voted_vectors):]
            if new:
                self._voted_vectors = np.vstack([self._voted_vectors, self.embedder.embed(new)])
            chosen = next_prompts(self._voted_vectors, vectors, k, self._rng)
            return [candidates[i] for i in chosen]
