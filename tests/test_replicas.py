"""Two app replicas on one PostgreSQL database, and one of them killed mid-load: no vote lost, and the
survivor's routers see every vote, whichever replica took it.

Real parts throughout: a PostgreSQL server (tests/pg_server.py), two ``python app.py`` processes (as
tests/test_reliability_load.py starts one, :class:`vote_load.AppProcess`), one embedded model pair they
share by URL (2-token answers; two llama.cpp servers, not four, on two cores), and gradio_client voters
(``vote_load.run_vote_load``) against both replicas at once. Replica B is killed with SIGKILL after a
few acknowledged votes, while its voters are mid-round. Then:

- every acknowledged vote, from either replica, is in the database exactly once, with its pending
  battle marked voted and linked to it (one transaction: no row without its mark);
- replica A's live sw_ranking score for a prompt voted on B equals the one recomputed from the
  database, within seconds of the last vote (the change feed carried B's votes to A's routers);
- an admin delete made elsewhere (another process on the same database) reaches A's routers.
"""

import sys
import threading
import time

import pytest

from pg_server import pg_server  # noqa: F401 (fixture)
from routellm_demo.store import open_store
from test_reliability_support import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from replicas import (check_votes, recomputed_sw_score, replica_config, shown_sw_score,  # noqa: E402
                      start_model_pair, wait_for_score)
from vote_load import AppProcess, run_vote_load  # noqa: E402

pytestmark = [pytest.mark.llm, pytest.mark.slow]
STRONG, WEAK = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"  # the default role map's
KILL_AFTER = 6  # votes acknowledged by replica B before it is killed
A_VOTES = 4  # votes per voter on replica A (3 voters)
FEED_REACH_S = 15  # the follower polls every 2 s; a chat call takes a second or two here


def test_two_replicas_one_database_kill_9_loses_nothing_and_routers_see_every_vote(pg_server, tmp_path, capsys):
    url = pg_server.create_database("replicas")
    with open_store(url) as store:  # imported battles, so a router still has some after the votes are deleted
        store.add_battles([dict(prompt=f"question number {i}: what is {i} times {i + 3}?", model_a=STRONG, model_b=WEAK,
                                strong_side="a", winner=("model_a", "model_b")[i % 2], source="import:test")
                           for i in range(20)])
    pair = start_model_pair()
    apps = []
    try:
        for name in ("a", "b"):
            app = AppProcess(replica_config(tmp_path, url, pair, name), tmp_path / f"{name}.log")
            apps.append(app)
        a, b = apps
        for app in apps:
            app.wait_ready()
        started = time.perf_counter()
        acked_a: list[int] = []
        acked_b: list[int] = []
        b_enough, stop_b = threading.Event(), threading.Event()

        def on_b(row):
            acked_b.append(row)
            if len(acked_b) >= KILL_AFTER:
                b_enough.set()

        results: dict = {}
        load_a = threading.Thread(target=lambda: results.update(a=run_vote_load(
            a.url, voters=3, votes=A_VOTES, chat=False, deadline_s=300, on_ack=acked_a.append)), daemon=True)
        load_b = threading.Thread(target=lambda: results.update(b=run_vote_load(
            b.url, voters=3, votes=100, chat=False, deadline_s=300, stop=stop_b, on_ack=on_b)), daemon=True)
        load_a.start()
        load_b.start()
        assert b_enough.wait(300), f"replica B acknowledged only {len(acked_b)} votes: {b.tail()}"
        b.crash()  # SIGKILL mid-load: B's other voters are between ask and vote, or inside a vote
        stop_b.set()
        load_b.join(120)
        load_a.join(300)
        assert not load_a.is_alive() and not load_b.is_alive(), "voters did not finish"
        load_s = time.perf_counter() - started

        # -- every acknowledged vote, from either replica, stored exactly once
        r_a = results["a"]
        assert r_a["failed"] == 0, r_a["errors"]
        assert r_a["acknowledged"] == 3 * A_VOTES
        acked = acked_a + acked_b
        assert len(set(acked)) == len(acked)  # no two clients were told the same row
        d = check_votes(url, acked)
        n = d["battle_rows"]
        assert d == {"battle_rows": n, "distinct_uids": n, "distinct_battles": n, "voted_pending": n,
                     "voted_linked": n, "acknowledged_missing": 0}, d
        # B's killed requests may have stored a vote whose answer never came back; none twice
        assert len(acked) <= n <= len(acked) + results["b"]["unknown"] + 3, (d, results["b"]["unknowns"])

        # -- the survivor's router has every vote, B's included, through the change feed
        with_b = _prompt_of(url, acked_b[-1])
        expected = recomputed_sw_score(url, with_b, tmp_path / "ckpt")
        lag = wait_for_score(a.url, with_b, expected, timeout=FEED_REACH_S)
        assert lag is not None, (f"replica A never showed {expected:.3f} for a prompt voted on B "
                                 f"(shows {shown_sw_score(a.url, with_b):.3f})")

        # -- an admin delete made elsewhere (here: this process, as the CLI or another replica would)
        with open_store(url) as store:
            assert store.delete_arena_votes()["votes"] == n
        empty = recomputed_sw_score(url, with_b, tmp_path / "ckpt")
        assert wait_for_score(a.url, with_b, empty, timeout=FEED_REACH_S) is not None
        with capsys.disabled():
            print(f"\nreplicas: A acknowledged {len(acked_a)}, B {len(acked_b)} before SIGKILL; stored {n} "
                  f"(lost 0, twice 0) in {load_s:.0f} s; A's router showed B's votes {lag:.1f} s after the check "
                  f"began; B's voters lost {results['b']['unknown']} answers to the kill")
    finally:
        for app in apps:
            app.stop()
        for endpoint in pair["endpoints"].values():
            endpoint.server.stop()
        pg_server.drop_database(url)


def _prompt_of(db_url: str, battle_id: int) -> str:
    import psycopg

    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT prompt FROM battles WHERE id = %s", [battle_id]).fetchone()[0]
