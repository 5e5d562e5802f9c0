"""Battles as arrays: the one form that ratings and every router are fitted on.

A battle in the store names two models (``model_a``, ``model_b``), a winner and, where known, which
side played the *strong role*. Routers do not care about model names: they learn "does the strong
role beat the weak role on prompts like this one". So each side is mapped to a *player*:

- ``"strong"`` / ``"weak"`` when the battle says which side was strong (gold imports, local-pair votes),
- else the role given by a role map (e.g. ``{"gpt-4-1106-preview": "strong"}``),
- else the model's own name (an arena battle between two other models still ties the graph together
  through Bradley-Terry's transitivity).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

STRONG = "strong"
WEAK = "weak"

WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")
OUTCOME = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "tie (bothbad)": 0.5}


ARENA_SOURCE = "arena-vote"  # a battle voted in this app's arena (the store's source for it)


def player_of(model: str, side: str, strong_side: str | None, role_map: Mapping[str, str] | None = None) -> str:
    """The player a battle side counts as: its role where known, else the model name."""
    if strong_side in ("a", "b"):
        return STRONG if side == strong_side else WEAK
    if role_map and model in role_map:
        return role_map[model]
    return model


@dataclass
class Battles:
    """Battles as parallel arrays.

    players:    player names; always contains "strong" and "weak" (indices 0 and 1).
    a, b:       int32 indices into ``players`` for each battle's two sides.
    outcome:    float64; 1.0 = side a won, 0.0 = side b won, 0.5 = tie (either kind).
    embeddings: float32 (n, d), L2-normalised prompt embeddings, or None for prompt-free fits.
    ids:        int64 battle ids in the store (or -1), to explain a score by its nearest battles.
    prompts:    the prompt texts, or None; routers that read more than the embedding (the classifier's
                prompt features) need them.
    sources:    each battle's store source (e.g. "arena-vote", "import:mmlu"), or None; a router may
                weigh this app's own votes apart from imported judgements (sw_ranking's vote_weight).
    """

    players: list[str]
    a: np.ndarray
    b: np.ndarray
    outcome: np.ndarray
    embeddings: np.ndarray | None = None
    ids: np.ndarray = field(default=None)  # type: ignore[assignment]
    prompts: list[str] | None = None
    sources: list[str] | None = None

    def __post_init__(self) -> None:
        self.a = np.asarray(self.a, dtype=np.int32)
        self.b = np.asarray(self.b, dtype=np.int32)
        self.outcome = np.asarray(self.outcome, dtype=np.float64)
        n = len(self.a)
        if self.ids is None:
            self.ids = np.full(n, -1, dtype=np.int64)
        self.ids = np.asarray(self.ids, dtype=np.int64)
        if self.embeddings is not None:
            self.embeddings = np.ascontiguousarray(self.embeddings, dtype=np.float32)
            if self.embeddings.shape[0] != n:
                raise ValueError(f"{self.embeddings.shape[0]} embeddings for {n} battles")
        if not (len(self.b) == len(self.outcome) == len(self.ids) == n):
            raise ValueError("battle arrays differ in length")
        if self.prompts is not None:
            self.prompts = list(self.prompts)
            if len(self.prompts) != n:
                raise ValueError(f"{len(self.prompts)} prompts for {n} battles")
        if self.sources is not None:
            self.sources = list(self.sources)
            if len(self.sources) != n:
                raise ValueError(f"{len(self.sources)} sources for {n} battles")
        if self.players[:2] != [STRONG, WEAK]:
            raise ValueError('players must start with "strong", "weak"')

    def __len__(self) -> int:
        return len(self.a)

    def subset(self, mask) -> "Battles":
        """The battles selected by a boolean mask or an index array, every field kept in step."""
        idx = np.arange(len(self))[mask]
        return Battles(list(self.players), self.a[idx], self.b[idx], self.outcome[idx],
                       None if self.embeddings is None else self.embeddings[idx], self.ids[idx],
                       None if self.prompts is None else [self.prompts[i] for i in idx],
                       None if self.sources is None else [self.sources[i] for i in idx])

    @classmethod
    def from_records(
        cls,
        records: Iterable[Mapping],
        embeddings: np.ndarray | None = None,
        role_map: Mapping[str, str] | None = None,
    ) -> "Battles":
        """Build from store rows: dicts with model_a, model_b, winner, strong_side and optional id and
        prompt and source (each kept when every row has one)."""
        players = [STRONG, WEAK]
        index = {STRONG: 0, WEAK: 1}
        a, b, out, ids, prompts, sources = [], [], [], [], [], []
        for r in records:
            pa = player_of(r["model_a"], "a", r.get("strong_side"), role_map)
            pb = player_of(r["model_b"], "b", r.get("strong_side"), role_map)
            for p in (pa, pb):
                if p not in index:
                    index[p] = len(players)
                    players.append(p)
            a.append(index[pa])
            b.append(index[pb])
            out.append(OUTCOME[r["winner"]])
            ids.append(r.get("id", -1))
            prompts.append(r.get("prompt"))
            sources.append(r.get("source"))
        texts = prompts if all(isinstance(t, str) for t in prompts) else None
        kinds = sources if all(isinstance(t, str) for t in sources) else None
        return cls(players, np.array(a), np.array(b), np.array(out), embeddings, np.array(ids, dtype=np.int64), texts,
                   kinds)

    def strong_outcome(self) -> np.ndarray:
        """Per battle: 1 strong role won, 0 weak role won, 0.5 tie; NaN where no side is strong/weak."""
        y = np.full(len(self), np.nan)
        sw = (self.a == 0) & (self.b == 1)
        ws = (self.a == 1) & (self.b == 0)
        y[sw] = self.outcome[sw]
        y[ws] = 1.0 - self.outcome[ws]
        return y
