"""RouteLLM's similarity-weighted (SW) ranking router.

For a prompt q, every past battle is weighted by how similar its prompt is to q
(``weight = scale * base ** (sim / max_sim)``: RouteLLM's is ``10 * 10 ** (s / max(s))``, the default
here ``10 * 1e4 ** (s / max(s))`` for the two-layer encoder's closer cosines (config.SW_PRESETS); or, with
``normalize="one"``, ``scale * base ** sim``, see :func:`similarity_weights`), and a weighted
Bradley-Terry model is fitted over ALL battles, all players included: an arena battle between two
other models still informs "strong vs weak" through transitivity. The score is
P(strong beats weak) = sigmoid(beta_strong - beta_weak) under that fit.

Similarity is the cosine of the prompts' embeddings (:mod:`routellm_demo.embeddings`), extended (``text_weight > 0``, the
default 0.3) with a few counts read from the text (:func:`routellm_demo.prompt_features.text_vectors`:
numbers, arithmetic, length): a vote on a sum-heavy word problem then counts more for other
sum-heavy prompts than for prose on the same topic. ``text_weight=0`` is RouteLLM's similarity.

Why it is fast enough to run per prompt (65k battles in a few ms):

- embeddings sit in one contiguous float32 matrix, so the similarities are one BLAS mat-vec;
- each battle is precomputed to a *cell* (player a, player b, outcome); the weighted pair counts
  are one ``np.bincount`` over the cell codes, then folded into a tiny K x K matrix;
- the BT fit runs on that matrix (:func:`routellm_demo.ratings.fit_bt`), warm-started from the
  prompt-blind fit, so Newton needs a handful of K x K steps.

A vote is appended with :meth:`SWRankingRouter.partial_fit` in O(1) amortised: the embedding matrix is
a capacity-doubling buffer, and nothing is rebuilt.

Votes weigh more than the store (``vote_weight``, issue 18). In a store of ~11,000 imported gold
battles, RouteLLM's kernel is so flat that 200 votes on a new domain carry ~3% of the weight of a
domain prompt's fit (5% on GSM8K): the fit stays the store's, and the votes barely move the domain. A
battle of this app's arena (source "arena-vote") weighs ``vote_weight`` times an imported judgement of
the same similarity, whether it arrives as a vote (:meth:`SWRankingRouter.partial_fit`) or is read back
by a refit (:meth:`fit`: a restart, a delete), since :class:`~routellm_demo.battles.Battles` carry each
battle's source. The weight is part of the battle's *cell* (a cell is (player a, player b, outcome,
weight)), so the clustered index, which stores cells, carries it with no change.

Heavy votes where they are, weight 1 elsewhere (``vote_neighbours``, ``vote_share``). The kernel is never
zero, so a few hundred heavy votes on one domain also move the prompts of domains that got none, all of
them together: their ranking a little, their level enough to send most of them to one model at a fixed
threshold (``benchmarks/vote_locality.py`` measures both). So a prompt's score is fitted twice
on the same kernel sums, votes at ``vote_weight`` and at 1, and blended by the share of votes among its
``vote_neighbours`` most similar battles: from ``vote_share`` of them on, the heavy fit alone; with no vote
among them, the weight-1 fit, i.e. what a vote counting as any other battle does there. Blending per prompt
(not weighing each vote by its own similarity, which shifts only the prompts near some vote and reorders
them) keeps each fit's ranking intact where it applies.

From ``INDEX_MIN_BATTLES`` battles on, streaming the whole float32 matrix for every prompt costs more than
the index (100 MB a prompt at 65,000 battles; 1.6 GB at a million): :meth:`fit` then builds, or reloads
from ``index_dir``, the clustered int8 index of
:mod:`routellm_demo.routers.sw_index`, which weighs the nearest battles one by one and far clusters at
their centroids (scores within 0.002 of the exact computation under RouteLLM's kernel; sharper kernels
err more: figures in SCALING.md).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from routellm_demo.battles import ARENA_SOURCE, STRONG, WEAK, Battles
# The weighting's choices, default text weight and named presets (``SWRankingRouter(**SW_PRESETS[name])``)
# are defined once, in the config: it selects them, and imports no router.
from routellm_demo.config import SW_NORMALIZE as NORMALIZE_CHOICES
from routellm_demo.config import SW_TEXT_WEIGHT as DEFAULT_TEXT_WEIGHT
from routellm_demo.prompt_features import FEATURE_NAMES, REFERENCE_MEAN, REFERENCE_SCALE, prompt_features, text_vectors
from routellm_demo.ratings import DEFAULT_L2, fit_bt, win_probability
from routellm_demo.routers.base import Router
from routellm_demo.routers.numeric import check_embeddings
from routellm_demo.routers.sw_index import SWIndex, VectorSource

log = logging.getLogger(__name__)

INDEX_MIN_BATTLES = 50_000  # fit uses the clustered index from here on (the exact path below it)
INDEX_CHECK_ROWS = 32  # stored vectors compared with fresh ones when an index is reloaded

SIMILARITY_BLOCK = 4_000_000  # similarities computed per block of queries: at most ~16 MB of float32

# A prompt counts as inside the voted region when votes are VOTE_SHARE of its VOTE_NEIGHBOURS most similar
# battles (see the module doc; chosen on benchmarks/vote_locality.py's grid, over 6 seeds).
VOTE_NEIGHBOURS = 50
VOTE_SHARE = 0.1


def similarity_weights(similarities: np.ndarray, base: float = 10.0, scale: float = 10.0,
                       normalize: str = "max") -> np.ndarray:
    """Battle weights ``scale * base ** (sim / ref)`` (float64).

    ``normalize="max"`` is RouteLLM's ``ref = max(sim)``: the most similar battle always weighs
    ``scale * base``. When no battle has a positive similarity, the ratio is meaningless (and would
    invert the order for a negative maximum), so every battle then weighs ``scale``: nothing is similar,
    use the global fit. A side effect: storing a battle more similar than any before (a vote on the
    prompt itself, sim 1) changes ``ref`` and so reweighs every other battle, which can move the
    prompt's score slightly against the vote.

    ``normalize="one"``: ``ref = 1`` (the largest cosine similarity), a fixed kernel: a battle's weight
    depends on its own similarity only, so adding one never changes the others' weights.
    """
    sims = np.asarray(similarities, dtype=np.float64)
    if normalize == "one":
        ref = 1.0
    elif normalize == "max":
        ref = sims.max(initial=0.0)
        if ref <= 0.0:
            return np.full(sims.shape, float(scale))
    else:
        raise ValueError(f"normalize must be one of {', '.join(NORMALIZE_CHOICES)}, got {normalize!r}")
    # scale * base ** x == exp(x * ln(base) + ln(scale)): one exp pass instead of power + multiply.
    exponent = sims * (math.log(base) / ref)
    exponent += math.log(scale)
    return np.exp(exponent, out=exponent)


class SWRankingRouter(Router):
    """Similarity-weighted Bradley-Terry over all stored battles (RouteLLM ``sw_ranking``)."""

    name = "sw_ranking"
    # Not hyperparameters (get_params leaves them out): where the large-store index persists, and a
    # ``progress(stage, done, total)`` callback for building or loading it (default: logged at INFO,
    # every ~10%). Set by whoever owns the directories.
    index_dir: Path | None = None
    index_progress = None
    index_ = None

    def __init__(self, base: float = 1e4, scale: float = 10.0, l2: float = DEFAULT_L2, normalize: str = "max",
                 text_weight: float = DEFAULT_TEXT_WEIGHT, vote_weight: float = 1.0,
                 vote_neighbours: int = VOTE_NEIGHBOURS, vote_share: float = VOTE_SHARE):
        self.base = base
        self.scale = scale
        self.l2 = l2
        self.normalize = normalize
        self.text_weight = text_weight
        self.vote_weight = vote_weight
        self.vote_neighbours = vote_neighbours  # 0: votes weigh vote_weight everywhere
        self.vote_share = vote_share

    def _vectors(self, embeddings, prompts) -> np.ndarray:
        """What similarity is taken between: the embeddings, or with text_weight the text-extended vectors."""
        x = np.asarray(embeddings, dtype=np.float32)
        if not self.text_weight:
            return x
        if prompts is None:
            raise ValueError("sw_ranking reads the prompts' text as well as their embeddings (text_weight > 0): "
                             "pass the prompts, or use text_weight=0")
        return text_vectors(x, prompts, self.text_weight)

    # -- fitting -----------------------------------------------------------------------------------
    def fit(self, battles: Battles) -> "SWRankingRouter":
        """Store the battles (embeddings, cells, ids) and the prompt-blind fit used as warm start."""
        if self.base <= 1.0 or self.scale <= 0.0:
            raise ValueError(f"need base > 1 and scale > 0, got base={self.base}, scale={self.scale}")
        if self.normalize not in NORMALIZE_CHOICES:
            raise ValueError(f"normalize must be one of {', '.join(NORMALIZE_CHOICES)}, got {self.normalize!r}")
        if not self.text_weight >= 0:
            raise ValueError(f"text_weight must be 0 or more, got {self.text_weight}")
        if not (math.isfinite(self.vote_weight) and self.vote_weight > 0):
            raise ValueError(f"vote_weight must be a positive number, got {self.vote_weight}")
        if not (isinstance(self.vote_neighbours, (int, np.integer)) and self.vote_neighbours >= 0):
            raise ValueError(f"vote_neighbours must be a whole number, 0 or more, got {self.vote_neighbours!r}")
        if not 0.0 < self.vote_share <= 1.0:
            raise ValueError(f"vote_share must be in (0, 1], got {self.vote_share!r}")
        self.players_ = [STRONG, WEAK]
        self.player_index_ = {STRONG: 0, WEAK: 1}
        self.n_battles_ = 0
        self.dim_ = None
        self.embedding_buffer_ = np.zeros((0, 0), dtype=np.float32)
        self.cell_buffer_ = np.zeros(0, dtype=np.int64)
        self.id_buffer_ = np.zeros(0, dtype=np.int64)
        self.cell_index_ = {}
        self.cell_a_ = np.zeros(0, dtype=np.int64)
        self.cell_b_ = np.zeros(0, dtype=np.int64)
        self.cell_outcome_ = np.zeros(0, dtype=np.float64)
        self.cell_count_ = np.zeros(0, dtype=np.float64)
        self.cell_weight_ = np.zeros(0, dtype=np.float64)  # per cell: 1, or vote_weight for online battles
        self.global_beta_ = np.zeros(2)
        self.index_ = None
        if len(battles) >= INDEX_MIN_BATTLES:
            self._fit_indexed(battles)
            return self
        # Headroom so the first live votes after a bulk fit do not copy the whole matrix.
        self._append(battles, headroom=len(battles) // 8)
        return self

    def partial_fit(self, battles: Battles) -> "SWRankingRouter":
        """Append battles (e.g. one vote) without rebuilding; players unseen so far are added."""
        if not hasattr(self, "players_"):
            return self.fit(battles)
        self._append(battles, headroom=0, online=True)
        return self

    def _append(self, battles: Battles, headroom: int, online: bool = False) -> None:
        n_new = len(battles)
        if n_new and battles.embeddings is None:
            raise ValueError(
                "these battles carry no prompt embeddings; the sw_ranking router needs one per battle"
            )
        if battles.embeddings is not None and battles.embeddings.ndim != 2:
            raise ValueError(f"embeddings must be (n, d), got shape {battles.embeddings.shape}")
        if n_new and self.text_weight and battles.prompts is None:
            raise ValueError("these battles carry no prompt texts; sw_ranking reads them (text_weight > 0): "
                             "load them with their prompts or use text_weight=0")
        if n_new and self.dim_ is not None and battles.embeddings.shape[1] != self.dim_:
            raise ValueError(f"embeddings have {battles.embeddings.shape[1]} dims, the router holds {self.dim_}")
        if battles.embeddings is not None and self.dim_ is None:
            self.dim_ = int(battles.embeddings.shape[1])

        new_cells = self._cells_of(battles, online)
        if n_new == 0:
            self._refit_global()
            return
        if self.index_ is not None:
            self.index_.append(self._vectors(battles.embeddings, battles.prompts), new_cells, battles.ids,
                               len(self.cell_a_))
            self.cell_count_ += np.bincount(new_cells, minlength=len(self.cell_count_))
            self.n_battles_ += n_new
            self._refit_global()
            return

        start, stop = self.n_battles_, self.n_battles_ + n_new
        self._reserve(stop, headroom)
        self.embedding_buffer_[start:stop] = self._vectors(battles.embeddings, battles.prompts)
        self.cell_buffer_[start:stop] = new_cells
        self.id_buffer_[start:stop] = battles.ids
        self.cell_count_ += np.bincount(new_cells, minlength=len(self.cell_count_))
        self.n_battles_ = stop
        self._refit_global()

    def _battle_weights(self, battles: Battles, online: bool) -> np.ndarray:
        """Each battle's own weight: ``vote_weight`` for this app's arena votes (source "arena-vote"),
        1 for any other source, at a refit from the store as when absorbed online. Battles that carry
        no source count as votes when absorbed online (a vote) and as imports in a bulk fit."""
        if battles.sources is None:
            return np.full(len(battles), float(self.vote_weight) if online else 1.0)
        return np.where(np.asarray(battles.sources, dtype=object) == ARENA_SOURCE, float(self.vote_weight), 1.0)

    def _cells_of(self, battles: Battles, online: bool = False) -> np.ndarray:
        """Each battle's cell code (players and cells unseen so far are added); a cell is (player a,
        player b, outcome, the battle's own weight: :meth:`_battle_weights`)."""
        ours = np.array([self._player_id(name) for name in battles.players], dtype=np.int64)
        if len(battles) == 0:
            return np.zeros(0, dtype=np.int64)
        # One integer per (a, b, outcome), in the same lexicographic order as the triples: a 1-D unique
        # takes 0.1 s at a million battles where a row-wise one takes 4 s.
        outcomes, outcome_code = np.unique(battles.outcome, return_inverse=True)
        k, m = len(self.players_), len(outcomes)
        codes = (ours[battles.a] * k + ours[battles.b]) * m + outcome_code.ravel()
        weights = self._battle_weights(battles, online)
        out = np.empty(len(battles), dtype=np.int64)
        for weight in np.unique(weights):  # 1 and vote_weight: a handful of passes at most
            rows = weights == weight
            cells, cell_of_new = np.unique(codes[rows], return_inverse=True)
            cell_ids = np.array([self._cell_id(int(c // m // k), int(c // m % k), float(outcomes[c % m]),
                                               float(weight)) for c in cells], dtype=np.int64)
            out[rows] = cell_ids[cell_of_new.ravel()]
        return out

    # -- the large-store path: a clustered index -----------------------------------------------------
    def _text_block(self, prompts) -> np.ndarray | None:
        """``text_weight *`` standardised text features (float32), as :func:`text_vectors` computes them,
        each distinct prompt read once (arena stores repeat prompts; synthetic ones repeat them a lot)."""
        if not self.text_weight:
            return None
        distinct: dict = {}
        inverse = np.fromiter((distinct.setdefault(p, len(distinct)) for p in prompts), dtype=np.int64,
                              count=len(prompts))
        z = (prompt_features(list(distinct)) - REFERENCE_MEAN) / REFERENCE_SCALE / np.sqrt(len(FEATURE_NAMES))
        return (float(self.text_weight) * z).astype(np.float32)[inverse]

    def _progress(self):
        """The progress callback: the one set, else a log line per stage every ~10%."""
        if self.index_progress is not None:
            return self.index_progress
        last: dict = {}

        def logged(stage: str, done: int, total: int) -> None:
            tenth = 10 * done // max(total, 1)
            if last.get(stage) != tenth:
                last[stage] = tenth
                log.info("sw_ranking index: %s %d/%d", stage, done, total)
        return logged

    def _source(self, battles: Battles, rows: np.ndarray) -> VectorSource:
        """The vectors of some battles, as the index stores them."""
        texts = [battles.prompts[i] for i in rows] if self.text_weight else None
        return VectorSource(battles.embeddings[rows], self._text_block(texts))

    def _index_meta(self) -> dict:
        return {"text_weight": float(self.text_weight), "dim": int(self.dim_)}

    def _fit_indexed(self, battles: Battles) -> None:
        """Fit on a large store: reuse the persisted index for the battles it holds, build it otherwise."""
        if battles.embeddings is None:
            raise ValueError("these battles carry no prompt embeddings; the sw_ranking router needs one per battle")
        if self.text_weight and battles.prompts is None:
            raise ValueError("these battles carry no prompt texts; sw_ranking reads them (text_weight > 0): "
                             "load them with their prompts or use text_weight=0")
        self.dim_ = int(battles.embeddings.shape[1])
        cells = self._cells_of(battles)
        ids = np.asarray(battles.ids, dtype=np.int64)
        sorted_ids = np.sort(ids)
        persist = self.index_dir is not None and sorted_ids[0] >= 0 and not (np.diff(sorted_ids) == 0).any()
        index = self._reload_index(battles, cells, ids) if persist else None
        if index is None:
            source = VectorSource(battles.embeddings, self._text_block(battles.prompts))
            index = SWIndex.build(source, ids, cells, len(self.cell_a_), progress=self._progress())
            if persist:
                index.save(self.index_dir, **self._index_meta())
        self.index_ = index
        self.cell_count_ = np.bincount(cells, minlength=len(self.cell_a_)).astype(np.float64)
        self.n_battles_ = len(battles)
        self._refit_global()

    def _reload_index(self, battles: Battles, cells: np.ndarray, ids: np.ndarray) -> SWIndex | None:
        """The persisted index, minus battles no longer stored, plus those it lacks; None to rebuild."""
        directory = Path(self.index_dir)
        if not SWIndex.exists(directory):
            return None
        try:
            index, meta = SWIndex.load(directory, progress=self._progress())
        except (OSError, ValueError, KeyError):
            return None  # unreadable: rebuilt and saved again
        if {k: meta.get(k) for k in self._index_meta()} != self._index_meta():
            return None
        by_id = np.argsort(ids)
        pos = by_id[np.minimum(np.searchsorted(ids, index.ids, sorter=by_id), len(ids) - 1)]
        stored = ids[pos] == index.ids
        dropped = not stored.all()
        index.keep(stored)  # deleted since: dropped here, and from the disk below (an admin delete)
        pos = pos[stored]
        if len(pos) < len(ids) // 2:
            return None  # most of it is gone: clusters of a different store
        check = np.linspace(0, len(pos) - 1, min(INDEX_CHECK_ROWS, len(pos))).astype(int)  # index rows
        fresh = self._source(battles, pos[check]).rows(slice(None))
        if np.abs(index.vectors(check) - fresh).max() > 0.02:
            return None  # other embeddings (a new model) or other text features: rebuild
        index.set_cells(cells[pos], len(self.cell_a_))
        missing = np.ones(len(ids), dtype=bool)
        missing[pos] = False
        if missing.any():
            new = np.flatnonzero(missing)
            index.append(self._source(battles, new).rows(slice(None)), cells[new], ids[new], len(self.cell_a_))
        if dropped or missing.any():
            index.save(directory, **self._index_meta())
        return index

    def _player_id(self, name: str) -> int:
        if name not in self.player_index_:
            self.player_index_[name] = len(self.players_)
            self.players_.append(name)
        return self.player_index_[name]

    def _cell_id(self, a: int, b: int, outcome: float, weight: float = 1.0) -> int:
        key = (a, b, outcome) if weight == 1.0 else (a, b, outcome, weight)
        if key not in self.cell_index_:
            self.cell_index_[key] = len(self.cell_a_)
            self.cell_a_ = np.append(self.cell_a_, a)
            self.cell_b_ = np.append(self.cell_b_, b)
            self.cell_outcome_ = np.append(self.cell_outcome_, outcome)
            self.cell_count_ = np.append(self.cell_count_, 0.0)
            self.cell_weight_ = np.append(self.cell_weight_, weight)
        return self.cell_index_[key]

    def _reserve(self, needed: int, headroom: int) -> None:
        """Grow the per-battle buffers to hold ``needed`` rows, at least doubling (amortised O(1))."""
        capacity = len(self.cell_buffer_)
        width = self.dim_ + (len(FEATURE_NAMES) if self.text_weight else 0)  # embedding (+ text counts)
        if needed <= capacity and self.embedding_buffer_.shape[1] == width:
            return
        new_capacity = max(needed + headroom, 2 * capacity, 16)
        embeddings = np.zeros((new_capacity, width), dtype=np.float32)
        cells = np.zeros(new_capacity, dtype=np.int64)
        ids = np.full(new_capacity, -1, dtype=np.int64)
        n = self.n_battles_
        if n:
            embeddings[:n] = self.embedding_buffer_[:n]
        cells[:n] = self.cell_buffer_[:n]
        ids[:n] = self.id_buffer_[:n]
        self.embedding_buffer_, self.cell_buffer_, self.id_buffer_ = embeddings, cells, ids

    def _refit_global(self) -> None:
        """Prompt-blind fit (every battle weighing ``scale``): the warm start, and the answer when
        nothing is similar or there are no battles."""
        k = len(self.players_)
        init = np.zeros(k)
        init[: len(self.global_beta_)] = self.global_beta_
        self.global_beta_ = fit_bt(self._counts(self.scale * self.cell_count_), l2=self.l2, init=init)

    def _counts(self, cell_weights: np.ndarray, own_weights: bool = True) -> np.ndarray:
        """Fold per-cell weights (the kernel's sums), times each cell's own weight (vote_weight for
        votes; all 1 with ``own_weights=False``), into the K x K matrix of weighted wins (ties: half to
        each side)."""
        k = len(self.players_)
        if own_weights:
            cell_weights = cell_weights * self.cell_weight_
        codes = np.concatenate([self.cell_a_ * k + self.cell_b_, self.cell_b_ * k + self.cell_a_])
        wins = np.concatenate([cell_weights * self.cell_outcome_, cell_weights * (1.0 - self.cell_outcome_)])
        return np.bincount(codes, weights=wins, minlength=k * k).reshape(k, k)

    # -- scoring -----------------------------------------------------------------------------------
    @property
    def embeddings_(self) -> np.ndarray:
        """The stored battle vectors (embeddings, text-extended when text_weight > 0; a view, no copy)."""
        if self.index_ is not None:
            raise RuntimeError("this router holds its battles in a clustered int8 index (a large store); "
                               "there is no float32 matrix to view")
        return self.embedding_buffer_[: self.n_battles_]

    def _check_queries(self, embeddings, prompts=None) -> np.ndarray:
        """Query vectors, as stored: checked embeddings, extended with the prompts' text if configured."""
        if not hasattr(self, "players_"):
            raise RuntimeError("SWRankingRouter is not fitted; call fit(battles) first")
        x = check_embeddings(embeddings)
        if self.dim_ is not None and x.shape[1] != self.dim_:
            raise ValueError(f"embeddings have {x.shape[1]} dims, the router holds {self.dim_}")
        if not np.all(np.isfinite(x)):
            raise ValueError("embeddings contain NaN or infinity")
        return self._vectors(x, prompts)

    def beta_for_similarities(self, similarities: np.ndarray) -> np.ndarray:
        """Log-strengths of every player (``players_`` order) under the similarity-weighted fit, votes at
        their weight (the heavy fit of :meth:`_blend`)."""
        return fit_bt(self._counts(self._kernel_cell_weights(similarities)), l2=self.l2, init=self.global_beta_)

    def _kernel_cell_weights(self, similarities: np.ndarray) -> np.ndarray:
        """Per-cell sums of the kernel's battle weights (exact path: one similarity per stored battle)."""
        weights = similarity_weights(similarities, self.base, self.scale, self.normalize)
        return np.bincount(self.cell_buffer_[: self.n_battles_], weights=weights, minlength=len(self.cell_a_))

    def win_probability(self, embeddings: np.ndarray, prompts=None) -> np.ndarray:
        """P(strong beats weak) per prompt; 0.5 (the zero-data prior) when no battles are stored."""
        x = self._check_queries(embeddings, prompts)
        if self.n_battles_ == 0:
            return np.full(len(x), float(win_probability(self.global_beta_[0], self.global_beta_[1])))
        out = np.empty(len(x))
        k = self._gate_neighbours()
        if self.index_ is not None:
            for row, q in enumerate(x):
                weights, nearest = self.index_.cell_weights_and_nearest(
                    q, math.log(self.base), math.log(self.scale), self.normalize, k)
                out[row] = self._blend(np.pad(weights, (0, len(self.cell_a_) - len(weights))), nearest)
            return out
        block = max(1, SIMILARITY_BLOCK // self.n_battles_)
        stored = self.embeddings_
        cells = self.cell_buffer_[: self.n_battles_]
        for start in range(0, len(x), block):
            sims = x[start : start + block] @ stored.T  # (block, n_battles), one BLAS call
            for row, similarities in enumerate(sims, start):
                nearest = cells[np.argpartition(-similarities, k - 1)[:k]] if k else None
                out[row] = self._blend(self._kernel_cell_weights(similarities), nearest)
        return out

    def _gate_neighbours(self) -> int:
        """How many nearest battles the vote gate reads: 0 when it has nothing to do (no battle weighs
        other than 1, so both fits are one)."""
        if not self.vote_neighbours or not np.any((self.cell_weight_ != 1.0) & (self.cell_count_ > 0)):
            return 0
        return min(int(self.vote_neighbours), self.n_battles_)

    def _blend(self, cell_weights: np.ndarray, nearest_cells: np.ndarray | None) -> float:
        """P(strong beats weak) from the kernel's per-cell sums: the fit with votes at their weight where
        votes are at least ``vote_share`` of the nearest battles, at weight 1 where none are, linear in
        between (see the module doc)."""
        gate = 1.0 if nearest_cells is None else min(
            1.0, float(np.mean(self.cell_weight_[nearest_cells] != 1.0)) / self.vote_share)
        p_heavy = p_light = 0.0
        if gate > 0.0:
            heavy = fit_bt(self._counts(cell_weights), l2=self.l2, init=self.global_beta_)
            p_heavy = win_probability(heavy[0], heavy[1])
        if gate < 1.0:
            light = fit_bt(self._counts(cell_weights, own_weights=False), l2=self.l2, init=self.global_beta_)
            p_light = win_probability(light[0], light[1])
        return p_light + gate * (p_heavy - p_light)  # one fit unless the prompt is at the region's edge

    def _candidates(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(sims, cells, ids)`` of every battle the similarity is taken with: all of them (exact path),
        or the index's nearest clusters and its tail."""
        if self.index_ is None:
            n = self.n_battles_
            return self.embeddings_ @ q, self.cell_buffer_[:n], self.id_buffer_[:n]
        index = self.index_
        _, rows, sims, _ = index.near(q)
        return (np.concatenate([sims, index.tail_vectors @ q]), np.concatenate([index.cells[rows], index.tail_cells]),
                np.concatenate([index.ids[rows], index.tail_ids]))

    def explain(self, embedding: np.ndarray, k: int = 5, prompt: str | None = None) -> list[dict]:
        """The k past battles most similar to the prompt: the ones that weigh most in its score."""
        x = self._check_queries(embedding, None if prompt is None else [prompt])
        if len(x) != 1:
            raise ValueError(f"explain takes one prompt embedding, got {len(x)}")
        if self.n_battles_ == 0 or k <= 0:
            return []
        sims, cells, ids = self._candidates(x[0])
        weights = similarity_weights(sims, self.base, self.scale, self.normalize)
        k = min(k, len(sims))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        rows = []
        for i in top:
            cell = cells[i]
            rows.append(
                {
                    "battle_id": int(ids[i]),
                    "similarity": float(sims[i]),
                    "weight": float(weights[i] * self.cell_weight_[cell]),
                    "player_a": self.players_[self.cell_a_[cell]],
                    "player_b": self.players_[self.cell_b_[cell]],
                    "outcome": float(self.cell_outcome_[cell]),
                }
            )
        return rows

    def info(self) -> dict:
        return {**super().info(), **self.get_params(), "players": len(getattr(self, "players_", []))}
