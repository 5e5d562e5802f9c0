"""Several processes, one store: battles written or deleted by another process reach this process's
routers through the store's change feed, and the background refits count every process's votes.

The other process is real (a Python subprocess writing to the same SQLite file), as are the store
and the embedding model.
"""

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from routellm_demo.changes import ChangeFollower
from routellm_demo.embeddings import Embedder
from routellm_demo.refresh import Refresher
from routellm_demo.store import ARENA_SOURCE, Store
from routellm_demo.router_set import RouterSet

REPO = Path(__file__).resolve().parents[1]
STRONG, WEAK = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
PROMPT = "What is 17 times 23, step by step?"


def battle(i: int, winner: str, source: str = "import:test") -> dict:
    return dict(prompt=f"arithmetic question number {i}: what is {i} times {i + 3}?", model_a=STRONG, model_b=WEAK,
                strong_side="a", winner=winner, source=source)


def other_process(db: Path, code: str) -> None:
    """Run ``code`` with ``store`` open on ``db`` in a separate Python process."""
    script = f"from routellm_demo.store import Store\nstore = Store({str(db)!r})\n" + textwrap.dedent(code)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=REPO, timeout=120)


def test_the_feed_records_inserts_and_deletes_in_order(tmp_path):
    store = Store(tmp_path / "s.db")
    start = store.change_cursor()
    ids = [store.add_battle(**battle(i, "model_a")) for i in range(3)]
    changes = store.changes_since(start)
    assert [r["id"] for r in changes.inserted] == ids and changes.deleted == 0 and changes
    assert not store.changes_since(changes.cursor)  # nothing new after the cursor
    store.add_battle(**battle(9, "model_b", source=ARENA_SOURCE))
    store.delete_arena_votes()
    after = store.changes_since(changes.cursor)
    # the vote came and went: it is not among the rows, but the delete is counted
    assert after.inserted == [] and after.deleted == 1 and after.cursor > changes.cursor
    # ids are reused after the newest battle is deleted; the feed's sequence is not
    reused = store.add_battle(**battle(10, "tie", source=ARENA_SOURCE))
    again = store.changes_since(after.cursor)
    assert [r["id"] for r in again.inserted] == [reused] and again.cursor > after.cursor


def test_a_battle_written_by_another_process_reaches_this_processs_routers(tmp_path):
    db = tmp_path / "shared.db"
    store = Store(db)
    store.add_battles([battle(i, ("model_a", "model_b")[i % 2]) for i in range(20)])
    routers = RouterSet(store, Embedder(store), checkpoint_dir=tmp_path / "none")
    refresher = Refresher(routers, store, routers.embedder, names=(), every=1000)
    follower = ChangeFollower(routers, interval=0.1)
    follower.add_listener(refresher.notify_changes)
    x = routers.embedder.embed([PROMPT])
    before = float(routers.score("sw_ranking", x, [PROMPT])[0])
    assert routers.get("sw_ranking").n_battles_ == 20

    # another process (an app replica, the API server) stores 30 votes the strong model won
    other_process(db, f"""
        for i in range(30):
            store.add_battle(prompt="arithmetic vote {{}}: what is 12 times 13?".format(i), model_a={STRONG!r},
                             model_b={WEAK!r}, strong_side="a", winner="model_a", source={ARENA_SOURCE!r})
    """)
    follower.start()
    try:
        deadline = time.monotonic() + 10
        while routers.get("sw_ranking").n_battles_ != 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert routers.get("sw_ranking").n_battles_ == 50, "the other process's battles never arrived"
        after = float(routers.score("sw_ranking", x, [PROMPT])[0])
        assert after > before  # the strong model's wins moved this process's score
        assert refresher.votes_seen == 30  # every process's votes count towards the refits, once each

        # the other process deletes the votes: this process forgets them too (not at its next restart)
        other_process(db, "store.delete_arena_votes()")
        deadline = time.monotonic() + 10
        while routers.get("sw_ranking").n_battles_ != 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert routers.get("sw_ranking").n_battles_ == 20, "the other process's delete was never seen"
        np.testing.assert_allclose(routers.score("sw_ranking", x, [PROMPT])[0], before, atol=1e-9)
        assert refresher.votes_seen == 30
    finally:
        follower.close()
        store.close()


def test_a_vote_absorbed_in_process_is_not_counted_twice_by_the_feed(tmp_path):
    store = Store(tmp_path / "s.db")
    store.add_battles([battle(i, ("model_a", "model_b")[i % 2]) for i in range(10)])
    routers = RouterSet(store, Embedder(store), checkpoint_dir=tmp_path / "none")
    router = routers.get("sw_ranking")
    row_id = store.add_battle(**battle(99, "model_a", source=ARENA_SOURCE))
    routers.absorb([store.battle(row_id)])  # what the arena does with its own vote, at once
    assert router.n_battles_ == 11
    changes = routers.sync()
    assert [r["id"] for r in changes.inserted] == [row_id]
    assert routers.get("sw_ranking") is router and router.n_battles_ == 11


@pytest.mark.slow
def test_loading_one_router_does_not_hold_up_another(tmp_path):
    """The first request to sw_ranking embeds and fits every stored battle (seconds on a large store);
    a request to another router, already loaded, is answered meanwhile instead of waiting for it."""
    store = Store(tmp_path / "s.db")
    store.add_battles([battle(i, ("model_a", "model_b")[i % 2]) for i in range(1500)])  # none embedded yet
    routers = RouterSet(store, Embedder(store), checkpoint_dir=REPO / "data" / "checkpoints")
    x = routers.embedder.embed([PROMPT])
    routers.score("mf", x, [PROMPT])  # from its checkpoint: needs no stored battle
    loading = threading.Thread(target=routers.get, args=("sw_ranking",))
    loading.start()
    time.sleep(0.5)  # the load is under way (embedding 1,500 prompts)
    assert loading.is_alive()
    routers.score("mf", x, [PROMPT])
    assert loading.is_alive(), "mf was answered only after sw_ranking had loaded"
    loading.join(120)
    assert routers.get("sw_ranking").n_battles_ == 1500


def test_a_runtime_that_follows_the_store_counts_another_processs_votes(tmp_path):
    """What the app and `serve` do at start (Runtime.follow_store): the background refits count the
    votes another process took, and close() stops the follower."""
    from dataclasses import replace

    from routellm_demo.config import load_config
    from routellm_demo.runtime import build_runtime

    cfg = replace(load_config(environ={}), db_path=tmp_path / "rt.db", checkpoint_dir=tmp_path / "none", seed=False)
    rt = build_runtime(cfg).follow_store(refit_every=1000, interval=0.1)
    try:
        other_process(cfg.db_path, f"""
            for i in range(3):
                store.add_battle(prompt="vote {{}}".format(i), model_a={STRONG!r}, model_b={WEAK!r},
                                 strong_side="a", winner="model_b", source={ARENA_SOURCE!r})
        """)
        deadline = time.monotonic() + 10
        while rt.refresher.votes_seen < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rt.refresher.votes_seen == 3
    finally:
        rt.close()
    assert not rt.follower._thread.is_alive()


def test_an_arena_is_connected_to_the_refits_its_runtime_owns(tmp_path):
    """Runtime.connect_arena (what the app's build_demo calls): following the store, the change feed
    counts the arena's votes (not its vote listener too) and tells it of deletes made elsewhere; a lone
    runtime counts the arena's own votes, with one refresher for the runtime. close() stops it."""
    from dataclasses import replace

    from routellm_demo.arena import Arena
    from routellm_demo.config import load_config
    from routellm_demo.runtime import build_runtime

    cfg = replace(load_config(environ={}), db_path=tmp_path / "lone.db", checkpoint_dir=tmp_path / "none", seed=False)
    lone = build_runtime(cfg)
    arena = Arena.from_runtime(lone)
    refresher = lone.connect_arena(arena)
    assert refresher is lone.refresher and arena._listeners == [refresher.notify_vote]
    assert lone.connect_arena(Arena.from_runtime(lone)) is refresher
    lone.close()
    assert refresher._closed

    following = build_runtime(replace(cfg, db_path=tmp_path / "following.db")).follow_store(interval=60)
    try:
        arena = Arena.from_runtime(following)
        assert following.connect_arena(arena) is following.refresher and arena._listeners == []
        assert arena.notify_changes in following.follower._listeners
    finally:
        following.close()
    assert following.refresher._closed
