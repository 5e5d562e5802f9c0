"""From the store to fitted routers: the one place that turns stored battles into a router.

``mf`` and ``classifier`` are trained offline (``routellm-demo train``) and saved as checkpoints, so
the app starts in seconds and a fresh machine with an empty store still routes with the shipped
checkpoint. ``elo`` and ``sw_ranking`` are fitted live from the store at start (milliseconds per
thousand battles once embeddings are cached), and take votes online.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from routellm_demo.battles import Battles
from routellm_demo.errors import UserError
from routellm_demo.routers import ROUTER_NAMES, check_router, make_router, registry
from routellm_demo.store import BattleChanges

CHECKPOINTED = registry.CHECKPOINTED  # the routers trained offline (mf, classifier), from the registry


def load_battles(
    store,
    embedder,
    *,
    role_map: Mapping[str, str] | None = None,
    sources: Iterable[str] | None = None,
    progress: bool = False,
) -> Battles:
    """All stored battles (optionally of some sources) with their prompt embeddings."""
    rows = []
    if sources is None:
        rows = store.battles()
    else:
        for source in sources:
            rows.extend(store.battles(source=source))
        rows.sort(key=lambda r: r["id"])
    embeddings = embedder.embed([r["prompt"] for r in rows], progress=progress)
    return Battles.from_records(rows, embeddings=embeddings, role_map=role_map)


def checkpoint_path(checkpoint_dir: Path, name: str) -> Path:
    return Path(checkpoint_dir) / f"{name}.npz"


class NoCheckpointError(UserError, RuntimeError):
    """A trained router was asked for but no checkpoint exists and the store is too small to fit one.
    A server answers 503: the service is not ready for that router until it is trained."""

    status = 503


class TrainingError(UserError, ValueError):
    """A router cannot be trained as asked (no battles in the store); the message says what to do."""


def load_router(name: str, *, battles: Battles | None, checkpoint_dir: Path, params: Mapping | None = None,
                index_dir: Path | None = None):
    """A ready router of the given name.

    Checkpointed routers (mf, classifier) come from ``checkpoint_dir``; the others are fitted on
    ``battles`` (an empty store still gives an answer: elo and sw_ranking then say 0.5), built with
    ``params`` (constructor arguments, e.g. sw_ranking's weighting from the config). A router that keeps
    an index on disk (sw_ranking on a large store) keeps it in ``index_dir``/<name>, so a restart
    reloads it instead of rebuilding it.
    """
    params = dict(params or {})
    check_router(name)
    if name in CHECKPOINTED:
        path = checkpoint_path(checkpoint_dir, name)
        if path.exists():
            return registry.get(name).cls.load(path)
        if battles is not None and len(battles) > 0:
            return make_router(name, **params).fit(battles)
        raise NoCheckpointError(
            f"router {name!r} has no checkpoint at {path} and the store holds no battles; "
            f"run `python -m routellm_demo train --router {name}`"
        )
    if battles is None:
        battles = empty_battles()
    router = make_router(name, **params)
    if index_dir is not None and hasattr(router, "index_dir"):
        router.index_dir = Path(index_dir) / name
    return router.fit(battles)


def empty_battles(dim: int = 384) -> Battles:
    return Battles(["strong", "weak"], np.zeros(0), np.zeros(0), np.zeros(0), np.zeros((0, dim), np.float32), prompts=[])


class RouterSet:
    """Routers loaded on first use and kept for the process; thread-safe.

    Votes reach the online routers (elo, sw_ranking) through :meth:`absorb`; a trained router can
    be swapped in whole with :meth:`replace` (never half-trained). ``router_params`` maps a router
    name to its constructor arguments (:meth:`from_config` takes them from the config, so the app and
    ``simulate-votes`` build the same routers).

    Each router has its own lock: loading one (embedding and fitting every stored battle: seconds on
    a large store) never stalls requests to the others, nor the votes they absorb. :meth:`sync`
    follows the store's change feed, so battles written or deleted by another process (a second app
    replica, the API server, a CLI import) reach this process's routers too.
    """

    def __init__(self, store, embedder, *, checkpoint_dir: Path, role_map: Mapping[str, str] | None = None,
                 router_params: Mapping[str, Mapping] | None = None, index_dir: Path | None = None):
        self.store = store
        self.index_dir = index_dir
        self.embedder = embedder
        self.checkpoint_dir = Path(checkpoint_dir)
        self.role_map = dict(role_map or {})
        self.router_params = {check_router(n): dict(p) for n, p in (router_params or {}).items()}
        self._routers: dict = {}
        self._seen: dict[str, int] = {}
        # Ids absorbed above _seen out of feed order (this process's own votes, absorbed at once): another
        # process's vote with a lower id may still be on its way through the feed, so _seen stays put.
        self._ahead: dict[str, set[int]] = {}
        self._battles: Battles | None = None
        self._generation = 0  # +1 on every reload: a load that straddles one starts again
        self._lock = threading.RLock()  # guards the dictionaries above; never held while fitting
        self._router_locks: dict[str, threading.RLock] = {}
        self._battles_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._cursor = store.change_cursor()  # whatever is stored now is read when a router loads

    @classmethod
    def from_config(cls, store, embedder, config) -> "RouterSet":
        """The routers as the config describes them (checkpoints, role map, sw_ranking's weighting); a
        large store's router index sits beside the database file (``<db>.index/``), one per store (for a
        database URL: under the model cache, :func:`routellm_demo.store.index_dir_for`)."""
        from routellm_demo.store import index_dir_for

        return cls(store, embedder, checkpoint_dir=config.checkpoint_dir, role_map=config.role_map,
                   router_params=config.router_params, index_dir=index_dir_for(config.db_path, config.model_cache_dir))

    def _lock_of(self, name: str) -> threading.RLock:
        with self._lock:
            return self._router_locks.setdefault(name, threading.RLock())

    def battles(self) -> Battles:
        """Every stored battle with its embedding, shared by the routers that load from the store."""
        with self._battles_lock:
            with self._lock:
                cached = self._battles
            if cached is None:
                cached = load_battles(self.store, self.embedder, role_map=self.role_map)
                with self._lock:
                    self._battles = cached
            return cached

    def get(self, name: str):
        check_router(name)
        with self._lock:
            router = self._routers.get(name)
        if router is not None:
            return router
        with self._lock_of(name):
            while True:
                with self._lock:
                    router = self._routers.get(name)
                    generation = self._generation
                if router is not None:
                    return router
                from_checkpoint = name in CHECKPOINTED and checkpoint_path(self.checkpoint_dir, name).exists()
                battles = None if from_checkpoint else self.battles()
                router = load_router(name, battles=battles, checkpoint_dir=self.checkpoint_dir,
                                     params=self.router_params.get(name), index_dir=self.index_dir)
                with self._lock:
                    if generation != self._generation:
                        continue  # battles were deleted while it loaded: load again from the store
                    self._routers[name] = router
                    # the newest battle this router has seen, so absorb() never counts one twice
                    self._seen[name] = int(battles.ids.max()) if battles is not None and len(battles) else 0
                    self._ahead[name] = set()
                if not from_checkpoint:
                    self._catch_up(name, router)
                return router

    def _catch_up(self, name: str, router) -> None:
        """Battles stored while ``router`` loaded (absorb() passed it by: it was not registered yet)."""
        if not hasattr(router, "partial_fit"):
            return
        rows = self.store.battles(since_id=self._seen.get(name, 0))
        if rows:
            self._absorb_into(name, router, self._as_battles(rows), in_order=True)

    def score(self, name: str, embeddings: np.ndarray, prompts=None) -> np.ndarray:
        """Win probabilities under the router's lock, so a vote absorbed meanwhile never tears a query.
        ``prompts``: the texts behind ``embeddings`` (the classifier reads them too)."""
        with self._lock_of(name):
            return self.get(name).win_probability(embeddings, prompts)

    def explain(self, name: str, embedding: np.ndarray, k: int = 5, prompt: str | None = None) -> list[dict]:
        """The past battles that drove this prompt's score (sw_ranking only; else empty)."""
        with self._lock_of(name):
            router = self.get(name)
            return router.explain(embedding, k=k, prompt=prompt) if hasattr(router, "explain") else []

    def loaded(self) -> dict:
        with self._lock:
            return dict(self._routers)

    def replace(self, name: str, router) -> None:
        with self._lock_of(name), self._lock:
            self._routers[name] = router

    def _as_battles(self, rows: list[dict]) -> Battles:
        return Battles.from_records(rows, embeddings=self.embedder.embed([r["prompt"] for r in rows]),
                                    role_map=self.role_map)

    def _absorb_into(self, name: str, router, new: Battles, *, in_order: bool = False) -> None:
        with self._lock_of(name):
            with self._lock:
                if self._routers.get(name) is not router:
                    return  # replaced or reloaded meanwhile: the new one read the store itself
                seen = self._seen.get(name, 0)
                ahead = self._ahead.setdefault(name, set())
                unseen = (new.ids > seen) & ~np.isin(new.ids, list(ahead))
            if unseen.any():
                router.partial_fit(new if unseen.all() else new.subset(unseen))
            with self._lock:
                if in_order:
                    # Read in commit order (the feed, the store), and ids follow commit order: no battle
                    # at or below these ids is still to come.
                    top = max(seen, int(new.ids.max()))
                    self._seen[name] = top
                    self._ahead[name] = {i for i in ahead if i > top}
                else:
                    ahead.update(int(i) for i in new.ids[unseen])

    def absorb(self, rows: list[dict], *, in_order: bool = False) -> None:
        """Fold newly stored battles into the online routers without rebuilding them. ``in_order``: the
        rows come from the change feed, which delivers every battle in commit order; otherwise (a vote
        this process just took) a battle another process committed earlier may still be on its way."""
        if not rows:
            return
        new = self._as_battles(rows)
        with self._lock:
            self._battles = None  # reloaded lazily (embeddings are cached) for routers not yet built
            online = [(n, r) for n, r in self._routers.items() if hasattr(r, "partial_fit")]
        for name, router in online:
            self._absorb_into(name, router, new, in_order=in_order)

    def reload(self) -> None:
        """Forget the fitted online routers (after a delete): they refit from the store on next use.
        Checkpointed routers are kept: they do not learn from the store online."""
        with self._lock:
            self._generation += 1
            self._battles = None
            for name in [n for n in self._routers if n not in CHECKPOINTED]:
                del self._routers[name]
                self._seen.pop(name, None)
                self._ahead.pop(name, None)

    def sync(self) -> BattleChanges:
        """Apply what the store's change feed recorded since the last sync, whoever wrote it: new
        battles are absorbed (once: a vote this process already absorbed is skipped), any delete
        makes the online routers refit from the store. Returns the changes seen."""
        with self._sync_lock:
            changes = self.store.changes_since(self._cursor)
            if changes.deleted:
                self.reload()
            elif changes.inserted:
                self.absorb(changes.inserted, in_order=True)
            self._cursor = changes.cursor
            return changes


__all__ = ["ROUTER_NAMES", "RouterSet", "load_battles", "load_router", "NoCheckpointError", "checkpoint_path"]
