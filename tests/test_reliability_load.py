"""No vote lost, under load and through a crash. ``python app.py`` runs as a SEPARATE PROCESS over the
REAL embedded local pair (2-token answers); voters drive it through its API with gradio_client, one
session each, exactly as browsers would.

1. Load: 50 concurrent voters x 20 arena votes while another client keeps chatting. Afterwards the
   database holds exactly 1000 battle rows, one per acknowledged vote (none missing, none twice),
   every pending battle is linked to its row, SQLite's integrity check is ok, and the chat kept
   answering. Each round is two real generations (2-token answers) on two cores: the test takes
   ~10-14 min here, the longest in the suite, and bounded (deadline below). The same load, with its
   figures only, is ``benchmarks/vote_load.py``, whose launcher and load this test drives.
2. Crash: voters load the same app again and it is killed with SIGKILL mid-load. On the same file:
   every acknowledged vote is stored with its pending battle marked voted (one transaction: no row
   without its mark, no mark without its row); the file opens cleanly (integrity ok); the restarted
   app rebuilds router and ratings from it (its leaderboard counts exactly the stored votes, its
   sw_ranking score for a voted prompt equals one recomputed here from the file, its "why" panel
   cites arena votes) and takes new votes. A normal stop (SIGTERM) then takes the app's model servers
   with it.

Loopback only; every wait is bounded. The app runs in its own process group: after the kill the
test checks that the model servers it started ended on their own (they watch their parent), and
stops anything left in that group by its id.
"""

import os
import re
import signal
import sys
import threading

import pytest

from test_reliability_support import REPO, battle_row_id, db_rows, integrity, text_of_chat, wait_until

sys.path.insert(0, str(REPO / "benchmarks"))
from vote_load import CLIENT_TIMEOUT, AppProcess, check_db, run_vote_load, write_config  # noqa: E402

pytestmark = [pytest.mark.llm, pytest.mark.slow]
VOTERS, VOTES = 50, 20
LOAD_DEADLINE_S = 2400  # bounded; the load takes ~600-800 s on this 2-core machine
KILL_AFTER = 12  # acknowledged votes in the crash phase before the kill


@pytest.fixture(scope="module")
def running_app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vote_load")
    config_path, db = write_config(folder)
    app = AppProcess(config_path, folder / "app1.log")
    try:
        app.wait_ready()
        app.warm()
        yield app, config_path, db, folder
    finally:
        app.stop()


def arena_votes(db) -> set[int]:
    return {r[0] for r in db_rows(db, "SELECT id FROM battles WHERE source = 'arena-vote'")}


def test_50_concurrent_voters_lose_and_duplicate_nothing(running_app, capsys):
    app, _, db, _ = running_app
    before = len(arena_votes(db))
    r = run_vote_load(app.url, voters=VOTERS, votes=VOTES, chat=True, deadline_s=LOAD_DEADLINE_S)
    d = check_db(db, r["acked_ids"])
    with capsys.disabled():
        print(f"\nvote load {VOTERS}x{VOTES}: {r['acknowledged']} acknowledged in {r['wall_s']:.0f} s, "
              f"{r['votes_per_s']:.2f} votes/s, vote p50 {r['vote_p50_ms']:.0f} ms p95 {r['vote_p95_ms']:.0f} ms, "
              f"round p95 {r['round_p95_ms']:.0f} ms; asks retried after a client-side error {r['retried']}, "
              f"votes whose answer the client lost {r['unknown']}, rounds a model failed (asked again) {r['model_failed']}; chat answered {r['chat_answers']} "
              f"(p95 {r['chat_p95_ms']:.0f} ms), failed {r['chat_failed']}; db {d}")
    assert r["failed"] == 0, r["errors"]
    assert r["acknowledged"] == VOTERS * VOTES
    assert len(set(r["acked_ids"])) == VOTERS * VOTES  # each client was told a different row
    # a vote whose answer the CLIENT lost (gradio_client's stream, under load) may or may not be stored:
    # the database may hold it, but never an acknowledged vote less, nor any vote twice
    n = d["battle_rows"]
    assert before + VOTERS * VOTES <= n <= before + VOTERS * VOTES + r["unknown"], (d, r["unknowns"])
    assert d == {"battle_rows": n, "distinct_uids": n, "distinct_battles": n, "voted_pending": n, "voted_linked": n,
                 "acknowledged_missing": 0, "integrity": "ok"}
    # the chat kept answering (slowly: chat and arena rounds share the two models and 4 queue slots)
    assert r["chat_answers"] >= 1 and r["chat_failed"] == 0, r["chat_errors"]


def test_kill_9_mid_load_loses_no_acknowledged_vote(running_app, capsys):
    from gradio_client import Client

    first, config_path, db, folder = running_app
    before = len(arena_votes(db))
    acked: list[int] = []
    enough, stop = threading.Event(), threading.Event()

    def on_ack(row):
        acked.append(row)
        if len(acked) >= KILL_AFTER:
            enough.set()

    result = {}
    load = threading.Thread(target=lambda: result.update(run_vote_load(
        first.url, voters=8, votes=100, chat=False, deadline_s=300, stop=stop, on_ack=on_ack)), daemon=True)
    load.start()
    assert enough.wait(300), f"only {len(acked)} votes acknowledged; app log: {first.tail()}"
    first.crash()  # mid-load: other voters are between ask and vote, or inside a vote
    acked_at_kill = len(acked)
    stop.set()
    load.join(120)
    assert not load.is_alive(), "voters did not stop after the crash"

    # -- the file after the crash, before the app reopens it
    assert integrity(db) == "ok"
    stored = arena_votes(db)
    missing = set(acked) - stored  # a response already on its way when the process died counts too
    assert not missing, f"acknowledged votes lost: {sorted(missing)}"
    voted = db_rows(db, "SELECT battle_id, battle_row_id FROM arena_pending WHERE status = 'voted'")
    uids = {r[0] for r in db_rows(db, "SELECT uid FROM battles WHERE source = 'arena-vote'")}
    assert len(voted) == len(stored) and {row for _, row in voted} == stored
    assert {"arena:" + b for b, _ in voted} == uids
    pending = dict(db_rows(db, "SELECT status, count(*) FROM arena_pending GROUP BY status"))

    # -- the killed app's model servers noticed their parent is gone and ended by themselves
    assert wait_until(lambda: not group_alive(first.pgid), 30), "model servers outlived the killed app"
    first.stop()

    # -- restart on the same file
    second = AppProcess(config_path, folder / "app2.log")
    try:
        second.wait_ready()
        client = Client(second.url, verbose=False, httpx_kwargs=CLIENT_TIMEOUT)
        n = len(stored)
        _, lb_arena, _, _ = client.predict(api_name="/leaderboard")[:4]
        board = {row[1]: row for row in lb_arena["data"]}  # rank, model, rating, CI, battles, wins, losses, ties
        assert len(board) == 2 and all(row[4] == n for row in board.values()), lb_arena["data"]
        wins = dict(db_rows(db, "SELECT CASE winner WHEN 'model_a' THEN model_a ELSE model_b END, count(*) "
                                "FROM battles WHERE source = 'arena-vote' AND winner IN ('model_a', 'model_b') GROUP BY 1"))
        ties = db_rows(db, "SELECT count(*) FROM battles WHERE source = 'arena-vote' AND winner LIKE 'tie%'")[0][0]
        for model, row in board.items():
            assert (row[5], row[7]) == (wins.get(model, 0), ties), (model, row)
        counts, _ = client.predict(api_name="/data")[:2]
        assert ["arena-vote", n] in counts["data"]

        # the router rebuilt from the file: the restarted app's score == a recomputation here
        prompt = db_rows(db, "SELECT prompt FROM battles WHERE source = 'arena-vote' ORDER BY id DESC LIMIT 1")[0][0]
        history, _, card, why, *_ = client.predict(prompt, [], "sw_ranking", 0.5, api_name="/chat")
        assert text_of_chat(history).strip() and "❌" not in card, card
        shown = float(re.search(r"score of <b>([0-9.]+)</b>", card).group(1))
        assert shown == pytest.approx(recomputed_sw_score(db, prompt), abs=0.0006)
        assert "arena-vote" in why

        # and it takes new votes
        asked = client.predict("One more question after the crash?", api_name="/arena_ask")
        assert "Both answers are in" in asked[2], asked[2]
        new_row = battle_row_id(client.predict(api_name="/arena_vote_tie")[-1])
        assert new_row is not None and new_row not in stored
        assert len(arena_votes(db)) == n + 1 and integrity(db) == "ok"

        # a normal stop (SIGTERM: kill, systemd, docker stop) takes the model servers with it
        os.kill(second.proc.pid, signal.SIGTERM)
        assert second.proc.wait(60) == 128 + signal.SIGTERM
        assert wait_until(lambda: not group_alive(second.pgid), 20), "model servers outlived the app"
    finally:
        second.stop()
    with capsys.disabled():
        print(f"\ncrash test: SIGKILL after {acked_at_kill} acknowledged votes in the crash phase "
              f"({len(acked)} acknowledged in all); stored {n - before} in this phase, of which "
              f"{n - before - len(acked)} stored but never acknowledged (the crash took the answer); lost 0; "
              f"pending battles at restart {pending}; voter errors after the kill {result.get('failed')}")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)  # signal 0: only asks whether any process of the group exists
    except ProcessLookupError:
        return False
    return True


def recomputed_sw_score(db, prompt) -> float:
    """sw_ranking's score for ``prompt``, fitted here from the database file alone."""
    from routellm_demo.config import load_config
    from routellm_demo.embeddings import Embedder
    from routellm_demo.store import Store
    from routellm_demo.router_set import RouterSet

    with Store(db) as store:
        embedder = Embedder(store)
        routers = RouterSet(store, embedder, checkpoint_dir=db.parent / "ckpt", role_map=load_config(environ={}).role_map)
        return float(routers.score("sw_ranking", embedder.embed([prompt]), [prompt])[0])
