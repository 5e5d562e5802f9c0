"""Wiring: config -> store, embedder, routers, controller, and the background work that keeps a
long-running process's routers current (change feed, refits, warm-up). Shared by the app, the server
and the CLI."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from routellm_demo.changes import DEFAULT_INTERVAL_S, ChangeFollower
from routellm_demo.config import Config, load_config
from routellm_demo.controller import Controller
from routellm_demo.embeddings import Embedder
from routellm_demo.refresh import DEFAULT_EVERY, Refresher
from routellm_demo.routers import check_router
from routellm_demo.seed import seed_store
from routellm_demo.store import Store, open_store
from routellm_demo.router_set import RouterSet

if TYPE_CHECKING:
    from routellm_demo.arena import Arena

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    config: Config
    store: Store
    embedder: Embedder
    routers: RouterSet
    controller: Controller
    follower: ChangeFollower | None = None
    refresher: Refresher | None = None

    def follow_store(self, *, refit_every: int = DEFAULT_EVERY, interval: float = DEFAULT_INTERVAL_S) -> "Runtime":
        """For the long-running shells (the app, ``serve``): follow the store's change feed in the
        background, so this process's routers learn what other processes (replicas, the API server, a
        CLI import) write and delete, and refit the trained routers every ``refit_every`` arena votes,
        whichever process took them. Stopped by :meth:`close`."""
        if self.follower is None:
            self.refresher = Refresher(self.routers, self.store, self.embedder, every=refit_every)
            self.follower = ChangeFollower(self.routers, interval=interval)
            self.follower.add_listener(self.refresher.notify_changes)
            self.follower.start()
        return self

    def connect_arena(self, arena: "Arena", refresher: Refresher | None = None) -> Refresher:
        """Hook ``arena`` up to this process's background learning; returns the :class:`Refresher` that
        counts its votes (mf and classifier refit every ``DEFAULT_EVERY`` of them).

        Following the store (:meth:`follow_store`, called first): the change feed already counts every
        process's votes, this arena's included, so the runtime's refresher is returned as it is; the
        arena hears of deletes made elsewhere (they make its running tally stale). Otherwise (a lone
        process, a test) the arena's own votes are counted, by one refresher per runtime created on
        first use. Either way :meth:`close` stops it. A ``refresher`` passed in counts this arena's
        votes instead; whoever made it closes it.
        """
        if refresher is None and self.follower is not None and self.refresher is not None:
            refresher = self.refresher
        else:
            if refresher is None:
                if self.refresher is None:
                    self.refresher = Refresher(self.routers, self.store, self.embedder)
                refresher = self.refresher
            arena.add_vote_listener(refresher.notify_vote)
        if self.follower is not None:
            self.follower.add_listener(arena.notify_changes)  # a delete elsewhere resets the arena's tally
        return refresher

    def warm_up(self) -> None:
        """Start the embedded models and load the default router in the background, so the first
        visitor does not wait for them (failures surface on the first request instead)."""

        def run():
            try:
                self.routers.score(self.config.router, self.embedder.embed(["warm up"]), ["warm up"])
            except Exception as e:  # noqa: BLE001
                logger.warning("warm-up: router %s not loaded: %s", self.config.router, e)
            for role in ("strong", "weak"):
                server = getattr(self.controller.endpoint(role), "server", None)
                if server is not None:
                    try:
                        server.ensure_running()
                    except Exception as e:  # noqa: BLE001
                        logger.error("warm-up: the %s model did not start: %s", role, e)

        threading.Thread(target=run, daemon=True, name="warm-up").start()

    def close(self) -> None:
        if self.follower is not None:
            self.follower.close()
        if self.refresher is not None:
            self.refresher.close()
        self.controller.close()
        self.store.close()


def build_runtime(config: Config | None = None, *, config_path=None) -> Runtime:
    """Open everything the shells need, once per process. An empty store gets the shipped seed of
    gold-labelled battles first when ``config.seed`` is on (:func:`routellm_demo.seed.seed_store`)."""
    config = config or load_config(config_path)
    check_router(config.router)  # a typo in the config fails at start, not at the first chat
    store = open_store(config.db_path, count_flagged=config.count_flagged_votes)
    embedder = Embedder(store, cache_dir=config.model_cache_dir)  # the ONNX export sits beside the models
    if config.seed:
        seed_store(store, embedder.cache_key)
    routers = RouterSet.from_config(store, embedder, config)
    controller = Controller(config, store, embedder, routers)
    return Runtime(config, store, embedder, routers, controller)
