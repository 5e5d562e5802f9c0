"""Wiring: config -> store, embedder, routers, controller. Shared by the app, the server and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from routellm_demo.changes import DEFAULT_INTERVAL_S, ChangeFollower
from routellm_demo.config import Config, load_config
from routellm_demo.controller import Controller
from routellm_demo.embeddings import Embedder
from routellm_demo.refresh import DEFAULT_EVERY, Refresher
from routellm_demo.routers import check_router
from routellm_demo.seed import seed_store
from routellm_demo.store import Store
from routellm_demo.router_set import RouterSet


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
    store = Store(config.db_path)
    embedder = Embedder(store)
    if config.seed:
        seed_store(store, embedder.cache_key)
    routers = RouterSet.from_config(store, embedder, config)
    controller = Controller(config, store, embedder, routers)
    return Runtime(config, store, embedder, routers, controller)
