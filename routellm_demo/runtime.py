"""Wiring: config -> store, embedder, routers, controller. Shared by the app, the server and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from routellm_demo.config import Config, load_config
from routellm_demo.controller import Controller
from routellm_demo.embeddings import Embedder
from routellm_demo.routers import check_router
from routellm_demo.seed import seed_store
from routellm_demo.store import Store
from routellm_demo.training import RouterSet


@dataclass
class Runtime:
    config: Config
    store: Store
    embedder: Embedder
    routers: RouterSet
    controller: Controller

    def close(self) -> None:
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
