"""No forged vote: the real app, its real store and arena, driven over Gradio's plain HTTP API so that
each test sends exactly the bytes an attacker could send. The two models are a FAKE upstream (the
vote path does not depend on them; the real pair is exercised in test_reliability_load.py).

Rules proved here, each with "nothing written" checked on the database file:
- a vote names nothing: the battle and the session live server-side (gr.State); sending a battle id,
  a session id or model names in the request, or extra fields, changes nothing;
- a battle is counted once: a second vote, a replayed request, two votes racing;
- another session's battle cannot be voted on, even knowing its id;
- an unknown (deleted) or failed battle cannot be voted on;
- per-session rate limits on generations (chat and arena share them) and on votes; a vote refused
  by the limit keeps its battle, which can be voted once the window has passed.
"""

import json
import os

import pytest

from routellm_demo.limits import Limits
from test_reliability_support import (FakeUpstream, RawSession, battle_row_id, db_rows, fake_endpoint, make_runtime,
                                      serve_app, small_config)

ADMIN = "reliability-admin-token"
STRONG, WEAK = "Strong Fake", "Weak Fake"


@pytest.fixture(scope="module")
def fake():
    with FakeUpstream() as f:
        yield f


def fake_config(tmp, fake, **over):
    return small_config(tmp, strong=fake_endpoint(fake.url, "strong-m", STRONG),
                        weak=fake_endpoint(fake.url, "weak-m", WEAK), **over)


@pytest.fixture(scope="module")
def served(tmp_path_factory, fake):
    old = os.environ.get("ROUTELLM_DEMO_ADMIN_TOKEN")
    os.environ["ROUTELLM_DEMO_ADMIN_TOKEN"] = ADMIN
    rt = make_runtime(fake_config(tmp_path_factory.mktemp("votes"), fake, requests_per_minute=1000))
    try:
        with serve_app(rt) as url:
            yield url, rt.config.db_path
    finally:
        rt.close()
        if old is None:
            os.environ.pop("ROUTELLM_DEMO_ADMIN_TOKEN", None)
        else:
            os.environ["ROUTELLM_DEMO_ADMIN_TOKEN"] = old


def snapshot(db):
    """Everything a refused vote must leave untouched: every battle row and every arena battle."""
    return (db_rows(db, "SELECT * FROM battles ORDER BY id"), db_rows(db, "SELECT * FROM arena_pending ORDER BY battle_id"))


def ask(s: RawSession, prompt="Why is the sky blue?"):
    status, out = s.call("arena_ask", prompt)
    assert status == 200 and "Both answers are in" in out[2], out
    return out


def newest_battle(db, session_hash=None):
    return db_rows(db, "SELECT battle_id, session_id, status FROM arena_pending ORDER BY created_at DESC, rowid DESC "
                       "LIMIT 1")[0]


def test_forged_and_extra_fields_change_nothing(served):
    url, db = served
    s = RawSession(url)
    # no battle in this session yet: a request naming one (and models, and a session) is refused
    before = snapshot(db)
    status, out = s.call("arena_vote_a", "0" * 32, "someone-else", {"model_a": "EVIL-A", "model_b": "EVIL-B"})
    assert status == 200 and "no battle to vote on" in out[2]
    assert snapshot(db) == before

    ask(s)
    battle_id, session_id, _ = newest_battle(db)
    # the vote request carries a forged battle id, session id, model names and extra junk
    status, out = s.call("arena_vote_b", "f" * 32, "forged-session", "EVIL-A", "EVIL-B",
                         {"model_a": "EVIL-A", "winner": "model_a", "strong_side": "a"}, ["x"] * 50)
    assert status == 200 and "Thanks for voting" in out[2], out
    row = db_rows(db, "SELECT uid, model_a, model_b, winner, session_id FROM battles WHERE id = ?",
                  (battle_row_id(out[-1]),))[0]
    # counted for the battle and session the SERVER holds, with the models the server chose
    assert row[0] == "arena:" + battle_id and row[4] == session_id and row[3] == "model_b"
    assert {row[1], row[2]} == {STRONG, WEAK}
    everything = json.dumps(snapshot(db))
    assert "EVIL" not in everything and "forged" not in everything and "f" * 32 not in everything


def test_a_battle_counts_once_replays_and_races_included(served):
    url, db = served
    s = RawSession(url)
    ask(s, "Name three primary colours.")
    vote = s.body([])
    status, first = s.post("arena_vote_a", vote)
    assert "Thanks for voting" in first[2]
    after_first = snapshot(db)
    for api in ("arena_vote_a", "arena_vote_b", "arena_vote_tie"):  # the same request replayed, and others
        status, again = s.post(api, vote)
        assert status == 200 and "no battle to vote on" in again[2], again
    assert snapshot(db) == after_first

    # four votes racing for one battle (a double click, two tabs of one session): one row. Through
    # gradio_client, whose one event stream per session keeps concurrent calls apart.
    from gradio_client import Client

    client = Client(url, verbose=False)
    assert "Both answers are in" in client.predict("What is 17 times 3?", api_name="/arena_ask")[2]
    battle_id, _, _ = newest_battle(db)
    jobs = [client.submit(api_name=f"/arena_vote_{o}") for o in ("a", "b", "tie", "bothbad")]
    results = [job.result(timeout=60)[2] for job in jobs]
    assert sum("Thanks for voting" in r for r in results) == 1, results
    assert all("Thanks for voting" in r or "already voted" in r or "no battle" in r for r in results), results
    assert db_rows(db, "SELECT count(*) FROM battles WHERE uid = ?", ("arena:" + battle_id,))[0][0] == 1


def test_another_sessions_battle_cannot_be_voted(served):
    url, db = served
    owner, intruder = RawSession(url), RawSession(url)
    ask(owner, "Explain recursion to a child.")
    battle_id, owner_session, status = newest_battle(db)
    assert status == "answered"
    before = snapshot(db)
    # the intruder knows the battle id and the owner's session id, and sends them: nothing counts
    for api in ("arena_vote_a", "arena_vote_b"):
        status, out = intruder.call(api, battle_id, owner_session)
        assert status == 200 and "no battle to vote on" in out[2], out
    # even with a battle of its own pending, the intruder's vote goes to its own battle only
    ask(intruder, "Give me one tip for sleeping better.")
    own_id, intruder_session, _ = newest_battle(db)
    status, out = intruder.call("arena_vote_a", battle_id, owner_session)
    assert db_rows(db, "SELECT uid, session_id FROM battles WHERE id = ?", (battle_row_id(out[-1]),))[0] == (
        "arena:" + own_id, intruder_session)
    assert db_rows(db, "SELECT status FROM arena_pending WHERE battle_id = ?", (battle_id,))[0][0] == "answered"
    assert snapshot(db)[0][:-1] == before[0]  # only the intruder's own vote was added
    status, out = owner.call("arena_vote_tie")  # the owner still can, once
    assert "Thanks for voting" in out[2]
    assert db_rows(db, "SELECT count(*) FROM battles WHERE uid = ?", ("arena:" + battle_id,))[0][0] == 1


def test_deleted_and_failed_battles_cannot_be_voted(served, fake):
    url, db = served
    s = RawSession(url)
    ask(s, "What is the capital of Japan?")
    status, out = s.call("admin_delete_votes", "wrong-token")
    assert "Wrong admin token" in out[1]
    status, out = s.call("admin_delete_votes", ADMIN)
    assert "Deleted" in out[1]
    before = snapshot(db)
    status, out = s.call("arena_vote_a")  # the session still holds the id of the battle just deleted
    assert status == 200 and "Unknown battle" in out[2], out
    assert snapshot(db) == before

    fake.modes["strong-m"] = "http500"
    try:
        status, out = s.call("arena_ask", "Will this round fail?")
    finally:
        fake.modes.pop("strong-m")
    assert status == 200 and "cannot be voted on" in out[2] and "Strong Fake" not in out[2], out  # names stay hidden
    assert newest_battle(db)[2] == "failed"
    before = snapshot(db)
    status, out = s.call("arena_vote_a")
    assert "no battle to vote on" in out[2]
    assert snapshot(db) == before


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_rate_limits_per_session_on_generations_and_votes(tmp_path, fake):
    rt = make_runtime(fake_config(tmp_path, fake, requests_per_minute=3))
    clock = Clock()
    try:
        with serve_app(rt, limits=Limits.from_config(rt.config, clock=clock)) as url:
            db = rt.config.db_path
            a, b = RawSession(url), RawSession(url)
            # generations: 3 a minute per session, chat and arena together
            ask(a, "Round one?")
            status, out = a.call("chat", "A chat turn", [], "elo", 0.5)
            assert "A fine answer." in json.dumps(out[0])
            ask(a, "Round two?")
            before = snapshot(db)
            status, out = a.call("arena_ask", "Round three?")
            assert "Too many requests" in out[2] and out[3] == "Round three?"  # refused, prompt kept in the box
            status, out = a.call("chat", "Another chat turn", [], "elo", 0.5)
            assert "Too many requests" in out[2]
            assert snapshot(db) == before  # a refused generation writes nothing
            ask(b, "Another session is not limited by the first")

            # votes: 3 a minute per session; a refused vote keeps its battle
            clock.t += 61  # a minute later the generation window is empty again
            ask(a, "Round four?")
            assert "Thanks for voting" in a.call("arena_vote_a")[1][2]  # vote 1
            for _ in range(2):  # votes 2 and 3: nothing to vote on, but they count against the quota
                assert "no battle" in a.call("arena_vote_a")[1][2]
            ask(a, "Round five?")
            battle_id, _, _ = newest_battle(db)
            before = snapshot(db)
            status, out = a.call("arena_vote_b")
            assert "Too many votes" in out[2] and "Try again in" in out[2], out
            assert snapshot(db) == before
            assert "Thanks for voting" in b.call("arena_vote_b")[1][2]  # the other session's quota is its own
            clock.t += 61
            status, out = a.call("arena_vote_b")  # the same battle, kept through the refusal
            assert "Thanks for voting" in out[2], out
            assert db_rows(db, "SELECT count(*) FROM battles WHERE uid = ?", ("arena:" + battle_id,))[0][0] == 1
    finally:
        rt.close()
