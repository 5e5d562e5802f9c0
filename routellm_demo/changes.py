"""Follow the store's change feed in the background, so every process sees every other's battles.

Why: the app, the API server and any replica share one store, but a vote is absorbed at once only by
the process that took it. A follower polls :meth:`Store.changes_since` every few seconds, applies the
changes to this process's routers (:meth:`RouterSet.sync`: inserts absorbed, deletes refit), and tells
listeners (the background refits count every process's votes; the arena forgets a tally that a
delete elsewhere made stale). Polling a cheap indexed query keeps it database-agnostic: no
notification channel, no file watching.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from routellm_demo.store import BattleChanges

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 2.0


class ChangeFollower:
    """Applies the change feed to ``routers`` every ``interval`` seconds, in a daemon thread.

    ``poll()`` does one round synchronously (tests, scripts); ``start()``/``close()`` run the thread.
    """

    def __init__(self, routers, *, interval: float = DEFAULT_INTERVAL_S):
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.routers = routers
        self.interval = float(interval)
        self._listeners: list[Callable[[BattleChanges], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add_listener(self, listener: Callable[[BattleChanges], None]) -> None:
        """Call ``listener(changes)`` after each round that saw inserts or deletes."""
        self._listeners.append(listener)

    def poll(self) -> BattleChanges:
        changes = self.routers.sync()
        if changes:
            logger.debug("change feed: %d inserted, %d deleted", len(changes.inserted), changes.deleted)
            for listener in list(self._listeners):
                try:
                    listener(changes)
                except Exception:  # noqa: BLE001 (one observer failing must not stop the others or the feed)
                    logger.exception("change feed listener %r failed", listener)
        return changes

    def start(self) -> "ChangeFollower":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="change-feed")
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 (a locked or vanished store now and then: try again next round)
                logger.warning("change feed: poll failed; retrying in %.0f s", self.interval, exc_info=True)

    def close(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
