"""The random router: a floor every real router must beat.

Its score is uniform on [0, 1) but a pure function of the prompt embedding and ``random_state``, so the
app, the server and the CLI route the same prompt the same way (and an evaluation is repeatable).
"""

from __future__ import annotations

import hashlib

import numpy as np

from routellm_demo.battles import Battles
from routellm_demo.routers.base import Router


def _uniform_from_bytes(data: bytes, random_state: int) -> float:
    """A uniform [0, 1) number from a stable hash (Python's ``hash`` changes between processes)."""
    digest = hashlib.blake2b(data, digest_size=8, salt=int(random_state).to_bytes(8, "little", signed=True))
    return int.from_bytes(digest.digest(), "little") / 2.0**64


class RandomRouter(Router):
    """Uniform score, deterministic per (prompt embedding, random_state). Learns nothing."""

    name = "random"

    def __init__(self, random_state: int = 0):
        self.random_state = random_state

    def fit(self, battles: Battles) -> "RandomRouter":
        self.n_battles_ = len(battles)
        return self

    def win_probability(self, embeddings: np.ndarray, prompts=None) -> np.ndarray:
        # float32 first: the same prompt embedded as float64 or float32 gives the same score.
        rows = np.ascontiguousarray(np.atleast_2d(np.asarray(embeddings, dtype=np.float32)))
        if rows.ndim != 2:
            raise ValueError(f"embeddings must be (n, d), got shape {rows.shape}")
        return np.array([_uniform_from_bytes(row.tobytes(), self.random_state) for row in rows], dtype=np.float64)
