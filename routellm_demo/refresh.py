"""Refit the trained routers (mf, classifier) from every stored battle, in the background, every N votes.

sw_ranking and elo learn from a vote at once (``RouterSet.absorb``); mf and classifier are fitted by
gradient descent over all battles, which takes seconds to minutes, so they are refitted now and then
instead: after ``every`` arena votes, a background thread reads every stored battle (embeddings from
the cache), fits a fresh router completely off to the side, tags it with its version and training-set
size, and only then swaps it in with one assignment under RouterSet's lock (``RouterSet.replace``).
A request therefore sees the old router or the new one, never a half-trained one, and the version
and size it reports always belong to the router that scored it (they live on the router object).

Votes that arrive during a refit count towards the next one; a refit that fails (e.g. no battle
between the strong and weak roles yet) keeps the old router and says why in ``last_error``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from routellm_demo.store import ARENA_SOURCE, utc_now
from routellm_demo.router_set import CHECKPOINTED, checkpoint_path, load_battles

DEFAULT_EVERY = 50

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RouterVersion:
    """What a served router was trained on. Version 0 is the router as first loaded (checkpoint or
    first fit); each refit swapped in adds one."""

    name: str
    version: int
    n_battles: int  # training-set size
    trained_at: str | None  # UTC, ISO 8601; None for a router as loaded
    fit_seconds: float | None
    origin: str  # "loaded", "refit", "online" (learns every vote) or "not loaded"


def version_of(name: str, router) -> RouterVersion:
    """The version a router object carries (set by :class:`Refresher` before the swap)."""
    if router is None:
        return RouterVersion(name, 0, 0, None, None, "not loaded")
    tag = getattr(router, "refresh_version_", None)
    if tag is not None:
        return tag
    online = hasattr(router, "partial_fit")
    return RouterVersion(name, 0, int(getattr(router, "n_battles_", 0)), None, None, "online" if online else "loaded")


class Refresher:
    """Counts votes (:meth:`notify_vote`) and refits ``names`` in a background thread every ``every``.

    ``make(name, current)`` builds an unfitted router; by default the served router's own class and
    hyperparameters (so a refit of the shipped checkpoint keeps its settings). In a process that
    shares its store, follow the change feed (``follower.add_listener(refresher.notify_changes)``):
    then every process's votes count, each once. A lone process may use the arena's listener instead
    (``arena.add_vote_listener(refresher.notify_vote)``), not both. :meth:`Runtime.connect_arena
    <routellm_demo.runtime.Runtime.connect_arena>` picks the right one.
    """

    def __init__(self, routers, store, embedder, *, names: Iterable[str] = CHECKPOINTED,
                 every: int = DEFAULT_EVERY, make: Callable | None = None):
        if every < 1:
            raise ValueError(f"every must be at least 1 vote, got {every}")
        self.routers = routers
        self.store = store
        self.embedder = embedder
        self.names = tuple(names)
        self.every = int(every)
        self.make = make or _same_kind
        self.rounds = 0  # refit rounds finished (each refits every router in ``names``)
        self.votes_seen = 0
        self.last_error: str | None = None
        self._votes_since = 0
        self._pending = False
        self._busy = False
        self._closed = False
        self._cond = threading.Condition()
        self._fit_lock = threading.Lock()  # one refit at a time (worker or refit_now)
        self._thread: threading.Thread | None = None

    # -- triggering ------------------------------------------------------------------------------
    def notify_vote(self, _result=None) -> None:
        """Count one vote; every ``every``-th asks the background thread for a refit. Cheap."""
        with self._cond:
            self.votes_seen += 1
            self._votes_since += 1
            if self._votes_since < self.every or self._closed:
                return
            self._votes_since = 0
            self._pending = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="router-refresh")
                self._thread.start()
            self._cond.notify_all()

    def notify_changes(self, changes) -> None:
        """Count the arena votes among a change-feed round's inserted battles (any process's)."""
        for row in changes.inserted:
            if row.get("source") == ARENA_SOURCE:
                self.notify_vote()

    def votes_until_refit(self) -> int:
        with self._cond:
            return self.every - self._votes_since

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                self._pending = False
                self._busy = True
            try:
                self.refit_now()
            except Exception as e:  # noqa: BLE001 (a background thread has no caller to raise to: keep the old router, say why)
                logger.error("refit failed; the routers keep their previous fit: %s", e)
                self.last_error = f"{type(e).__name__}: {e}"  # shown on the Learning tab
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no refit is asked for or running; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not (self._pending or self._busy), timeout)

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop the thread after the refit in progress (if any); further votes start nothing."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- refitting -------------------------------------------------------------------------------
    def refit_now(self, names: Iterable[str] | None = None) -> list[RouterVersion]:
        """Fit each router on every stored battle and swap it in; synchronous. Returns the new versions.

        One router failing does not stop the others; the first error is raised after all were tried.
        """
        with self._fit_lock:
            battles = load_battles(self.store, self.embedder, role_map=self.routers.role_map)
            done, errors = [], []
            for name in names or self.names:
                current = self._served(name)
                started = time.perf_counter()
                try:
                    router = self.make(name, current).fit(battles)  # off to the side: nothing serves it yet
                except Exception as e:  # noqa: BLE001 (reported below, after the other routers had their turn)
                    logger.warning("refit of %s failed", name, exc_info=True)
                    errors.append(f"{name}: {type(e).__name__}: {e}")
                    continue
                size = int(getattr(router, "n_battles_", len(battles)))  # what it trained on (classifier: strong vs weak only)
                tag = RouterVersion(name, version_of(name, current).version + 1, size, utc_now(),
                                    round(time.perf_counter() - started, 3), "refit")
                router.refresh_version_ = tag
                self.routers.replace(name, router)  # one assignment under RouterSet's lock
                done.append(tag)
            self.rounds += 1
            self.last_error = "; ".join(errors) or None
            if errors:
                raise RuntimeError(self.last_error)
            return done

    def _served(self, name: str):
        """The router now served under ``name``; a shipped checkpoint is loaded (cheap) so that the
        refit keeps its hyperparameters. None when nothing is loaded and no checkpoint exists."""
        current = self.routers.loaded().get(name)
        if current is None and checkpoint_path(self.routers.checkpoint_dir, name).exists():
            current = self.routers.get(name)
        return current

    def status(self) -> list[RouterVersion]:
        """Version and training-set size of every router this process has loaded, refitted or not."""
        loaded = self.routers.loaded()
        names = list(dict.fromkeys([*loaded, *self.names]))
        return [version_of(n, loaded.get(n)) for n in names]


def _same_kind(name: str, current):
    """An unfitted router like the one served (same class, same hyperparameters), else the default."""
    if current is not None and hasattr(current, "get_params"):
        return type(current)(**current.get_params())
    from routellm_demo.routers import make_router

    return make_router(name)
