"""A clustered, compact index of sw_ranking's battle vectors: a prompt scored against a million
battles in milliseconds, in well under 1 GB.

Why: the exact path reads every stored float32 vector per prompt (1.6 KB a battle with the text
features: 1.6 GB, and ~0.4 s per prompt at 1M battles here, where memory streams at ~4 GB/s). Here the battles
are clustered once (k-means) and, per prompt:

- the similarity to every centroid is one small mat-vec (C x d, cache-resident);
- the clusters nearest the prompt, up to ``near_battles`` battles, are weighed battle by battle from
  int8 residuals (vector - centroid, one float32 scale a row), converted to float32 in cache-sized
  chunks: that is where weights are largest and where one near-duplicate can move the score;
- every other cluster is summed at its centroid, per cell: ``count[k, cell] * w(q . c_k)``. A centroid
  is its members' mean, so the first-order error cancels; what remains (Jensen's factor, about
  ``exp(a^2 var / 2)`` for a cluster whose similarities to the prompt vary by ``var``) is much the same
  for every cell, and the Bradley-Terry fit depends on the cells' ratios: the score moves far less than
  the weights (measured: SCALING.md).

Battles appended after the build (live votes) are weighed exactly from a float32 tail, folded into
their nearest cluster every ``FOLD_EVERY`` battles. The index persists as ``.npy`` files in a directory,
keyed by battle id, so a restart reuses the vectors (text features included: ~130 us a prompt to
recompute) of every battle still stored, drops deleted ones and appends the rest. Cells are not
persisted: they are recomputed from the battles (0.1 s at 1M), so a changed role map cannot go stale.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

FORMAT = "routellm_demo.sw_index/2"  # /2: finer clusters below 250,000 battles (a /1 index is rebuilt once)
NEAR_BATTLES = 8192  # the most battles weighed one by one per prompt (default_near_battles)
FOLD_EVERY = 4096  # tail battles (exact float32, 6.5 MB read per prompt) before they are folded in
BLOCK = 32768  # rows per block when building or loading
CHUNK = 512  # rows converted from int8 at a time per prompt: 800 KB of float32 stays in the CPU cache
ARRAYS = ("centroids", "starts", "codes", "row_scale", "ids")  # what is persisted (cells are recomputed)
Progress = Callable[[str, int, int], None]  # (stage, done, total)


def default_clusters(n: int) -> int:
    """About 4 sqrt(n) clusters, at most 2,000 (reached at 250,000 battles): the centroid product stays
    small, and in a smaller store finer clusters make the far sums exact enough for a smaller near set
    (:func:`default_near_battles`; measured in SCALING.md)."""
    return int(min(max(16, round(4 * math.sqrt(n))), 2000))


def default_near_battles(n: int) -> int:
    """Battles weighed one by one per prompt in a store of ``n``: a 32nd of it, from 2,048 to
    :data:`NEAR_BATTLES`."""
    return int(min(NEAR_BATTLES, max(2048, n // 32)))


class VectorSource:
    """Rows ``[embedding ; extra]`` normalised to unit length, built on demand from the two blocks, so a
    build never holds the full float32 matrix (1.6 GB at 1M) beside the embeddings. The arithmetic is
    :func:`routellm_demo.prompt_features.text_vectors`' own (float32 concatenation, then norm)."""

    def __init__(self, embeddings: np.ndarray, extra: np.ndarray | None = None):
        self.embeddings = embeddings
        self.extra = extra
        self.dim = embeddings.shape[1] + (0 if extra is None else extra.shape[1])

    def __len__(self) -> int:
        return len(self.embeddings)

    def rows(self, index) -> np.ndarray:
        x = np.asarray(self.embeddings[index], dtype=np.float32)
        if self.extra is None:
            return x
        out = np.hstack([x, np.asarray(self.extra[index], dtype=np.float32)])
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)


def _nearest(x: np.ndarray, centroids: np.ndarray, half_sq: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (Euclidean) of each row: argmax of x.c - |c|^2 / 2."""
    scores = x @ centroids.T
    scores -= half_sq
    return np.argmax(scores, axis=1)


def kmeans(source: VectorSource, n_clusters: int, *, seed: int = 0, iterations: int = 6,
           sample_per_cluster: int = 32, progress: Progress | None = None) -> np.ndarray:
    """Lloyd's k-means on a random sample of the rows: (n_clusters, d) float32 centroids."""
    rng = np.random.default_rng(seed)
    n = len(source)
    sample = np.sort(rng.choice(n, size=min(n, n_clusters * sample_per_cluster), replace=False))
    x = source.rows(sample)
    centroids = x[rng.choice(len(x), size=n_clusters, replace=False)].copy()
    for iteration in range(iterations):
        if progress:
            progress("clustering", iteration, iterations)
        labels = np.concatenate([_nearest(x[s:s + BLOCK], centroids, 0.5 * np.einsum("ij,ij->i", centroids, centroids))
                                 for s in range(0, len(x), BLOCK)])
        sizes = np.bincount(labels, minlength=n_clusters)
        sums = np.zeros(centroids.shape, dtype=np.float64)
        np.add.at(sums, labels, x)
        empty = sizes == 0
        centroids[~empty] = (sums[~empty] / sizes[~empty, None]).astype(np.float32)
        centroids[empty] = x[rng.choice(len(x), size=int(empty.sum()), replace=False)]  # re-seed
    return centroids


class SWIndex:
    """Clustered int8 battle vectors, cells per battle and per cluster, and an exact tail of recent votes."""

    def __init__(self, centroids, starts, codes, row_scale, ids, cells=None, n_cells: int = 0):
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)  # (C, d), members' means
        self.starts = np.asarray(starts, dtype=np.int64)  # (C + 1,): cluster k is rows starts[k]:starts[k+1]
        self.codes = codes  # (n, d) int8: (vector - centroid) / row_scale, rounded
        self.row_scale = np.asarray(row_scale, dtype=np.float32)
        self.ids = np.asarray(ids, dtype=np.int64)
        self.dim = self.centroids.shape[1]
        self.labels = np.repeat(np.arange(len(self.centroids)), np.diff(self.starts))
        self.tail_vectors = np.zeros((0, self.dim), dtype=np.float32)
        self.tail_cells = np.zeros(0, dtype=np.int64)
        self.tail_ids = np.zeros(0, dtype=np.int64)
        self.set_cells(np.zeros(len(self.ids), dtype=np.int64) if cells is None else cells, n_cells)
        self._scratch = threading.local()  # per thread: prompts may be scored concurrently

    # -- building ----------------------------------------------------------------------------------
    @classmethod
    def build(cls, source: VectorSource, ids, cells, n_cells: int, *, n_clusters: int | None = None,
              seed: int = 0, progress: Progress | None = None) -> "SWIndex":
        """Cluster the rows of ``source`` and store them compactly (rows in cluster order)."""
        n = len(source)
        n_clusters = min(n, n_clusters or default_clusters(n))
        centroids = kmeans(source, n_clusters, seed=seed, progress=progress)
        half_sq = 0.5 * np.einsum("ij,ij->i", centroids, centroids)
        labels = np.empty(n, dtype=np.int64)
        sums = np.zeros(centroids.shape, dtype=np.float64)
        for start in range(0, n, BLOCK):  # assign every row; accumulate the exact means
            x = source.rows(slice(start, start + BLOCK))
            lab = _nearest(x, centroids, half_sq)
            labels[start:start + len(x)] = lab
            order = np.argsort(lab, kind="stable")
            present, first = np.unique(lab[order], return_index=True)
            sums[present] += np.add.reduceat(x[order].astype(np.float64), first, axis=0)
            if progress:
                progress("assigning", start + len(x), n)
        sizes = np.bincount(labels, minlength=n_clusters)
        keep = np.flatnonzero(sizes)  # drop clusters nobody joined
        renumber = np.full(n_clusters, -1)
        renumber[keep] = np.arange(len(keep))
        centroids = (sums[keep] / sizes[keep, None]).astype(np.float32)
        labels = renumber[labels]
        order = np.argsort(labels, kind="stable")
        starts = np.concatenate([[0], np.cumsum(sizes[keep])])
        codes = np.empty((n, source.dim), dtype=np.int8)
        row_scale = np.empty(n, dtype=np.float32)
        for start in range(0, n, BLOCK):  # quantise residuals, in cluster order
            rows = order[start:start + BLOCK]
            codes[start:start + len(rows)], row_scale[start:start + len(rows)] = _quantise(
                source.rows(rows) - centroids[labels[rows]])
            if progress:
                progress("quantising", start + len(rows), n)
        return cls(centroids, starts, codes, row_scale, np.asarray(ids)[order], np.asarray(cells)[order], n_cells)

    def set_cells(self, cells, n_cells: int) -> None:
        """Per-battle cells (clustered order) and the per-cluster cell counts the far clusters use."""
        self.cells = np.asarray(cells, dtype=np.int64)
        self.n_cells = max(int(n_cells), int(self.cells.max(initial=-1)) + 1, int(self.tail_cells.max(initial=-1)) + 1)
        self.counts = np.bincount(self.labels * self.n_cells + self.cells,
                                  minlength=len(self.centroids) * self.n_cells
                                  ).reshape(len(self.centroids), self.n_cells).astype(np.float64)

    def _grow_cells(self, n_cells: int) -> None:
        if n_cells > self.n_cells:
            self.counts = np.pad(self.counts, ((0, 0), (0, n_cells - self.n_cells)))
            self.n_cells = n_cells

    # -- live changes --------------------------------------------------------------------------------
    def append(self, vectors: np.ndarray, cells, ids, n_cells: int) -> None:
        """Add battles (exact, to the tail); fold the tail into the clusters once it is long."""
        self._grow_cells(n_cells)
        self.tail_vectors = np.concatenate([self.tail_vectors, np.asarray(vectors, dtype=np.float32)])
        self.tail_cells = np.concatenate([self.tail_cells, np.asarray(cells, dtype=np.int64)])
        self.tail_ids = np.concatenate([self.tail_ids, np.asarray(ids, dtype=np.int64)])
        if len(self.tail_ids) >= FOLD_EVERY:
            self.fold()

    def fold(self) -> None:
        """Move the tail into the nearest clusters (centroids kept: they move little per fold)."""
        if not len(self.tail_ids):
            return
        lab = _nearest(self.tail_vectors, self.centroids, 0.5 * np.einsum("ij,ij->i", self.centroids, self.centroids))
        order = np.argsort(lab, kind="stable")
        lab = lab[order]
        codes, scale = _quantise(self.tail_vectors[order] - self.centroids[lab])
        at = self.starts[lab + 1]  # each at the end of its cluster: one copying pass, no re-sort
        self.codes = np.insert(self.codes, at, codes, axis=0)
        self.row_scale = np.insert(self.row_scale, at, scale)
        self.ids = np.insert(self.ids, at, self.tail_ids[order])
        cells = np.insert(self.cells, at, self.tail_cells[order])
        self.labels = np.insert(self.labels, at, lab)
        self.starts = np.concatenate([[0], np.cumsum(np.bincount(self.labels, minlength=len(self.centroids)))])
        n_cells = self.n_cells
        self.tail_vectors = self.tail_vectors[:0]
        self.tail_cells = self.tail_cells[:0]
        self.tail_ids = self.tail_ids[:0]
        self.set_cells(cells, n_cells)

    def keep(self, mask: np.ndarray) -> None:
        """Keep only the clustered battles where ``mask`` is true (a restart after deletes)."""
        mask = np.asarray(mask, dtype=bool)
        if mask.all():
            return
        self.codes, self.row_scale, self.ids = self.codes[mask], self.row_scale[mask], self.ids[mask]
        self.labels = self.labels[mask]
        self.starts = np.concatenate([[0], np.cumsum(np.bincount(self.labels, minlength=len(self.centroids)))])
        self.set_cells(self.cells[mask], self.n_cells)

    # -- scoring -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids) + len(self.tail_ids)

    def near(self, q: np.ndarray, near_battles: int | None = None):
        """``(clusters, rows, sims, centroid_sims)``: the nearest clusters holding >= near_battles battles
        (or all), their rows and each row's similarity to ``q``, and every centroid's similarity.

        Products are row by row (``vecdot``: BLAS's single-threaded dot per row), not one BLAS mat-vec:
        for products this small OpenBLAS's threads gain nothing and stall when other processes hold the
        cores (p50 2-5x slower under load, measured); ``einsum``, also single-threaded, is 2x slower."""
        near_battles = default_near_battles(len(self)) if near_battles is None else near_battles
        centroid_sims = np.vecdot(self.centroids, q)
        by_sim = np.argsort(-centroid_sims)
        sizes = np.diff(self.starts)[by_sim]
        take = int(np.searchsorted(np.cumsum(sizes), near_battles)) + 1
        clusters = by_sim[:take]
        begins, ends = self.starts[clusters], self.starts[clusters + 1]
        lengths = ends - begins
        total = int(lengths.sum())
        # each cluster's rows are contiguous: row numbers without a Python loop
        rows = np.arange(total, dtype=np.int64) + np.repeat(begins - (np.cumsum(lengths) - lengths), lengths)
        sims = np.empty(total, dtype=np.float32)
        chunk = getattr(self._scratch, "chunk", None)
        if chunk is None:
            chunk = self._scratch.chunk = np.empty((CHUNK, self.dim), dtype=np.float32)
        # int8 -> float32 into a cache-sized chunk filled across clusters, then one mat-vec per full chunk:
        # ten times faster than converting all the rows first, and one product per chunk, not per cluster
        at = fill = 0
        for a, b in zip(begins.tolist(), ends.tolist()):
            while a < b:
                m = min(CHUNK - fill, b - a)
                chunk[fill:fill + m] = self.codes[a:a + m]
                fill += m
                a += m
                if fill == CHUNK:
                    np.vecdot(chunk, q, out=sims[at:at + CHUNK])
                    at += CHUNK
                    fill = 0
        if fill:
            np.vecdot(chunk[:fill], q, out=sims[at:at + fill])
        sims *= self.row_scale[rows]
        sims += centroid_sims[self.labels[rows]]
        return clusters, rows, sims, centroid_sims

    def cell_weights(self, q: np.ndarray, log_base: float, log_scale: float, normalize: str,
                     near_battles: int | None = None) -> np.ndarray:
        """Per-cell sums of the battle weights ``exp(sim * log_base / ref + log_scale)`` for prompt ``q``
        (see :func:`routellm_demo.routers.sw_ranking.similarity_weights` for ``ref``)."""
        return self.cell_weights_and_nearest(q, log_base, log_scale, normalize, 0, near_battles)[0]

    def cell_weights_and_nearest(self, q: np.ndarray, log_base: float, log_scale: float, normalize: str,
                                 k: int, near_battles: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`cell_weights`, and the cells of the ``k`` battles most similar to ``q`` among those
        weighed one by one (None for ``k=0``): sw_ranking's vote gate reads them."""
        q = np.asarray(q, dtype=np.float32)
        clusters, rows, sims, centroid_sims = self.near(q, near_battles)
        tail_sims = np.vecdot(self.tail_vectors, q)
        row_cells = self.cells[rows]
        nearest = None
        if k:
            every_sim = np.concatenate([sims, tail_sims])
            every_cell = np.concatenate([row_cells, self.tail_cells])
            k = min(k, len(every_sim))
            nearest = every_cell[np.argpartition(-every_sim, k - 1)[:k]] if k else None
        if normalize == "one":
            ref = 1.0
        else:
            ref = float(max(sims.max(initial=0.0), tail_sims.max(initial=0.0)))
            if ref <= 0.0:  # nothing is similar: every battle weighs scale
                total = self.counts.sum(axis=0) + np.bincount(self.tail_cells, minlength=self.n_cells)
                return math.exp(log_scale) * total, nearest
        slope = log_base / ref
        near_w = np.exp(sims.astype(np.float64) * slope + log_scale)
        out = np.bincount(row_cells, weights=near_w, minlength=self.n_cells)
        far_w = np.exp(centroid_sims.astype(np.float64) * slope + log_scale)
        far_w[clusters] = 0.0
        out += np.einsum("i,ij->j", far_w, self.counts)
        if len(tail_sims):
            out += np.bincount(self.tail_cells, weights=np.exp(tail_sims.astype(np.float64) * slope + log_scale),
                               minlength=self.n_cells)
        return out, nearest

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """The stored (dequantised) vectors of clustered rows."""
        return self.centroids[self.labels[rows]] + self.codes[rows] * self.row_scale[rows, None]

    @property
    def nbytes(self) -> int:
        arrays = (self.centroids, self.starts, self.codes, self.row_scale, self.ids, self.labels, self.cells,
                  self.counts, self.tail_vectors, self.tail_cells, self.tail_ids)
        return int(sum(a.nbytes for a in arrays))

    # -- persistence ---------------------------------------------------------------------------------
    def save(self, directory, **meta) -> Path:
        """Write the index (tail folded in) to a new generation under ``directory``, then point
        ``directory/current`` at it (an atomic rename): a reader, another process included, sees the old
        generation or the new one, never a mix. ``meta`` is what a loader must match."""
        self.fold()
        directory = Path(directory)
        generation = directory / f"{time.time_ns()}-{os.getpid()}"
        generation.mkdir(parents=True)
        for name in ARRAYS:
            np.save(generation / f"{name}.npy", getattr(self, name))
        (generation / "meta.json").write_text(json.dumps({"format": FORMAT, "n": len(self.ids), **meta}))
        pointer = directory / f"current.{os.getpid()}.tmp"
        pointer.write_text(generation.name)
        pointer.replace(directory / "current")
        for old in sorted(p for p in directory.iterdir() if p.is_dir() and p != generation)[:-1]:
            shutil.rmtree(old, ignore_errors=True)  # keep one previous generation for readers mid-load
        return generation

    @staticmethod
    def exists(directory) -> bool:
        return (Path(directory) / "current").exists()

    @classmethod
    def load(cls, directory, *, progress: Progress | None = None) -> tuple["SWIndex", dict]:
        """Read the current generation written by :meth:`save`, block by block; ``(index, meta)``."""
        generation = Path(directory) / (Path(directory) / "current").read_text().strip()
        meta = json.loads((generation / "meta.json").read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{generation}: unknown index format {meta.get('format')!r}")
        arrays = {name: np.load(generation / f"{name}.npy", mmap_mode="r") for name in ARRAYS}
        if len(arrays["ids"]) != meta["n"] or len(arrays["codes"]) != meta["n"]:
            raise ValueError(f"{generation}: index files disagree with its meta.json")
        mapped = arrays["codes"]
        codes = np.empty(mapped.shape, dtype=np.int8)
        for start in range(0, len(codes), 8 * BLOCK):
            codes[start:start + 8 * BLOCK] = mapped[start:start + 8 * BLOCK]
            if progress:
                progress("loading index", min(start + 8 * BLOCK, len(codes)), len(codes))
        return cls(np.array(arrays["centroids"]), np.array(arrays["starts"]), codes, np.array(arrays["row_scale"]),
                   np.array(arrays["ids"])), meta


def _quantise(residuals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 codes and a per-row scale (max |value| / 127) for float residuals."""
    scale = np.abs(residuals).max(axis=1) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    codes = np.rint(residuals / scale[:, None]).astype(np.int8)
    return codes, scale
