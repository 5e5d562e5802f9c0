"""What only the PostgreSQL store has to prove (tests/test_store.py runs the shared suite on it too):
its migrations, the interface it shares with the SQLite store, a change feed in commit order although
sequences are not, votes and per-visitor limits held across real processes, and one-line errors.

Every test runs against a real server (tests/pg_server.py), a fresh database each.
"""

import inspect
import multiprocessing
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest

from pg_server import pg_server, pg_url  # noqa: F401 (fixtures)
from routellm_demo.config import ConfigError, load_config
from routellm_demo.schema import SCHEMA_VERSION, STEP_NAMES
from routellm_demo.store import ARENA_SOURCE, Store, StoreError, index_dir_for, open_store, prompt_sha256
from routellm_demo.store_postgres import PG_STEP_NAMES, PG_STEPS, PostgresStore, redact

REPO = Path(__file__).resolve().parents[1]
SQLITE_ONLY = {"journal_mode"}  # a file's journal: nothing to report on a server


def battle(i=0, **kw):
    row = dict(prompt=f"prompt {i}", model_a="big", model_b="small", winner="model_a", source="test")
    row.update(kw)
    return row


def public_methods(cls) -> dict:
    return {n: inspect.signature(m) for n, m in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}


def test_same_interface_and_the_same_schema_steps():
    """A method or migration step added to the SQLite store alone fails here, not in a replica."""
    sqlite, pg = public_methods(Store), public_methods(PostgresStore)
    assert set(sqlite) - SQLITE_ONLY == set(pg)
    for name, sig in pg.items():
        assert list(sig.parameters) == list(sqlite[name].parameters), name
    assert PG_STEP_NAMES == STEP_NAMES and len(PG_STEPS) == SCHEMA_VERSION


def test_the_url_setting_selects_postgres(pg_url, tmp_path):
    config = load_config(environ={"ROUTELLM_DEMO_DB": pg_url, "ROUTELLM_DEMO_SEED": "0"})
    assert config.db_path == pg_url
    with open_store(config.db_path) as store:
        assert isinstance(store, PostgresStore) and store.schema_version() == SCHEMA_VERSION
    assert isinstance(open_store(tmp_path / "x.db"), Store)
    with pytest.raises(ConfigError, match="postgresql:// URL"):
        load_config(environ={"ROUTELLM_DEMO_DB": "mysql://host/db"})
    secret = "postgresql://app:s3cret@db.example:5432/votes"
    assert "s3cret" not in redact(secret) and "s3cret" not in str(index_dir_for(secret, tmp_path))
    assert index_dir_for(secret, tmp_path).parent == tmp_path / "index"


def test_an_older_database_is_migrated_and_a_newer_one_refused(pg_url):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE _pg_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        for name, statements in PG_STEPS[:3]:
            for sql in statements:
                conn.execute(sql)
            conn.execute("INSERT INTO _pg_migrations VALUES (%s, 'then')", [name])
        conn.execute("INSERT INTO battles (uid, prompt, prompt_sha256, model_a, model_b, winner, source, created_at) "
                     "VALUES ('u', 'kept', 'x', 'a', 'b', 'tie', 'old', '2024-01-01T00:00:00+00:00')")
    with pytest.raises(StoreError, match="older schema"):
        PostgresStore(pg_url, readonly=True)
    with open_store(pg_url) as s:
        assert s.schema_version() == SCHEMA_VERSION
        assert [b["prompt"] for b in s.battles()] == ["kept"]
        # the old row is in no feed (it predates it); new ones are
        assert s.add_battle(**battle(1)) == 2 and len(s.changes_since(0).inserted) == 1
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO _pg_migrations VALUES ('9999_future', 'later')")
    with pytest.raises(StoreError, match="newer"):
        open_store(pg_url)


def test_unreachable_server_and_missing_database_are_one_line_errors(pg_server, pg_url):
    from routellm_demo.llm.local import free_port

    for url, cause in ((f"postgresql://postgres:pw@127.0.0.1:{free_port()}/x", "cannot use the database"),
                       (pg_server.url("no_such_db"), "does not exist")):
        with pytest.raises(StoreError, match=cause) as info:
            open_store(url, timeout=2)
        message = str(info.value)
        assert "\n" not in message and "pw" not in message and "Traceback" not in message
    with PostgresStore(pg_url) as s:
        s.add_battle(**battle())
    with PostgresStore(pg_url, readonly=True) as ro:
        assert len(ro.battles()) == 1
        with pytest.raises(StoreError, match="readonly"):
            ro.add_battle(**battle(2))


def test_text_with_nul_and_the_escape_character_round_trips(pg_url):
    """PostgreSQL text cannot hold NUL; a prompt may. What comes back is what was stored."""
    odd = "a NUL \x00 here, \uffff0 and \uffff\uffff and a trailing \uffff"
    with open_store(pg_url) as s:
        bid = s.add_battle(**battle(prompt=odd, session_id="s\x00"))
        b = s.battle(bid)
        assert b["prompt"] == odd and b["prompt_sha256"] == prompt_sha256(odd) and b["session_id"] == "s\x00"
        s.add_pending(battle_id="p\x00", session_id="s\x00", prompt=odd, model_a="x", model_b="y", strong_side="a")
        assert s.pending("p\x00")["prompt"] == odd
        s.log_decision(session_id="s\x00", chosen_role="weak", source="app")
        assert len(s.decisions(session_id="s\x00")) == 1 and s.decisions(session_id="s") == []


def test_the_feed_never_skips_a_transaction_that_commits_late(pg_url):
    """A sequence hands out numbers in call order, not commit order. Here a writer (raw SQL, as an
    admin's psql session would be) inserts a battle and keeps its transaction open while the store
    writes another one. Without the feed's lock the second would commit first with the higher seq, a
    follower would read it and move its cursor past the first, which it would then never see."""
    store = open_store(pg_url)
    follower = open_store(pg_url)
    cursor = follower.change_cursor()
    late = psycopg.connect(pg_url)  # not autocommit: an open transaction
    late.execute("INSERT INTO battles (uid, prompt, prompt_sha256, model_a, model_b, winner, source, created_at) "
                 "VALUES ('late', 'committed late', 'x', 'a', 'b', 'tie', 'test', 'now')")
    done = threading.Event()
    writer = threading.Thread(target=lambda: (store.add_battle(**battle(1, uid="early")), done.set()))
    writer.start()
    seen: list[str] = []
    try:
        assert not done.wait(0.5), "the second writer did not wait for the first to commit"
        changes = follower.changes_since(cursor)  # neither is committed: nothing yet
        assert changes.inserted == [] and changes.cursor == cursor
        late.commit()
        assert done.wait(10)
        writer.join(10)
        while len(seen) < 2:
            changes = follower.changes_since(cursor)
            seen += [r["uid"] for r in changes.inserted]
            cursor = changes.cursor
        assert seen == ["late", "early"]
    finally:
        late.close()
        store.close()
        follower.close()


def test_an_admin_delete_and_a_flag_reach_every_store_through_the_feed(pg_url):
    replica_a, replica_b = open_store(pg_url), open_store(pg_url)
    try:
        cursor = replica_b.change_cursor()
        ids = [replica_a.add_battle(**battle(i, source=ARENA_SOURCE, uid=f"v{i}")) for i in range(3)]
        changes = replica_b.changes_since(cursor)
        assert [r["id"] for r in changes.inserted] == ids
        assert replica_a.flag_votes([ids[0]], "duplicate") == 1
        flagged = replica_b.changes_since(changes.cursor)
        assert flagged.deleted == 1 and flagged.inserted == []
        assert replica_a.delete_arena_votes() == {"votes": 3, "pending": 0}
        gone = replica_b.changes_since(flagged.cursor)
        assert gone.deleted == 3 and replica_b.count_battles() == {}
    finally:
        replica_a.close()
        replica_b.close()


def _vote_worker(url: str, worker: int, battles: int) -> list:
    """One process voting: each battle id is voted by two workers; returns the ids each got."""
    store = PostgresStore(url)
    got = []
    for i in range(battles):
        bid = f"b{i}"
        store.add_pending(battle_id=f"{bid}-w{worker}", session_id=f"w{worker}", prompt=f"p{i}", model_a="x",
                          model_b="y", strong_side="a")
        store.finish_pending(f"{bid}-w{worker}", answer_a="1", answer_b="2")
        new = store.record_vote(battle_id=f"{bid}-w{worker}", session_id=f"w{worker}", outcome="a",
                                battle=dict(prompt=f"p{i}", model_a="x", model_b="y", winner="model_a",
                                            source=ARENA_SOURCE, uid=f"arena:{bid}"), visitor=f"v{worker}")
        got.append(new)
    store.close()
    return got


def _rate_worker(url: str, n: int, now: float) -> int:
    store = PostgresStore(url)
    allowed = sum(store.hit_rate("visitor-1", "vote", max_events=25, window_s=3600, now=now) is None
                  for _ in range(n))
    store.close()
    return allowed


@pytest.mark.slow  # processes start and vote: seconds, kept out of the fast loop
def test_processes_voting_and_counting_limits_at_once(pg_url):
    """Four real processes: a battle uid voted by two of them is stored once; a visitor's quota of 25
    is granted 25 times in all, however the processes interleave."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        results = pool.starmap(_vote_worker, [(pg_url, w, 30) for w in range(4)])
        allowed = pool.starmap(_rate_worker, [(pg_url, 20, time.time()) for _ in range(4)])
    with open_store(pg_url) as s:
        stored = s.battles(source=ARENA_SOURCE)
        assert len(stored) == 30 == len({b["uid"] for b in stored})
        acked = [i for r in results for i in r if i is not None]
        assert sorted(acked) == sorted(b["id"] for b in stored)  # every acknowledged vote, once
        assert s.count_pending() == {"answered": 90, "voted": 30}
        assert sum(allowed) == 25
        changes = s.changes_since(0)
        assert sorted(r["id"] for r in changes.inserted) == sorted(acked)


def test_a_dropped_connection_is_replaced(pg_url):
    with open_store(pg_url) as s:
        s.add_battle(**battle())
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        time.sleep(0.2)
        assert len(s.battles()) == 1  # the pool checked the connection and made a new one


def test_transaction_is_all_or_nothing_and_other_threads_go_on(pg_url):
    with open_store(pg_url) as s:
        inside = threading.Event()
        release = threading.Event()

        def seed():
            with s.transaction():
                s.add_battles([battle(i, uid=f"t{i}") for i in range(10)])
                s.put_embeddings("m", {"x": np.ones(4, np.float32)})
                inside.set()
                release.wait(10)

        t = threading.Thread(target=seed)
        t.start()
        assert inside.wait(10)
        assert s.count_battles() == {} and s.log_decision(chosen_role="weak") >= 1  # not blocked, not visible
        release.set()
        t.join(10)
        assert s.count_battles() == {"test": 10} and list(s.get_embeddings("m", ["x"])) == ["x"]


@pytest.mark.slow  # processes start and vote: seconds, kept out of the fast loop
def test_a_battle_written_by_another_process_reaches_this_processs_routers(pg_url, tmp_path):
    """tests/test_change_feed.py's test on one PostgreSQL database: the follower polls the feed."""
    from routellm_demo.changes import ChangeFollower
    from routellm_demo.embeddings import Embedder
    from routellm_demo.router_set import RouterSet

    strong, weak = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
    store = open_store(pg_url)
    store.add_battles([dict(prompt=f"arithmetic question number {i}: what is {i} times {i + 3}?", model_a=strong,
                            model_b=weak, strong_side="a", winner=("model_a", "model_b")[i % 2], source="import:test")
                       for i in range(20)])
    routers = RouterSet(store, Embedder(store), checkpoint_dir=tmp_path / "none")
    follower = ChangeFollower(routers, interval=0.1)
    assert routers.get("sw_ranking").n_battles_ == 20
    script = textwrap.dedent(f"""
        from routellm_demo.store import open_store
        store = open_store({pg_url!r})
        for i in range(30):
            store.add_battle(prompt="arithmetic vote {{}}: what is 12 times 13?".format(i), model_a={strong!r},
                             model_b={weak!r}, strong_side="a", winner="model_a", source={ARENA_SOURCE!r})
        store.close()
    """)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=REPO, timeout=120)
    follower.start()
    try:
        deadline = time.monotonic() + 10
        while routers.get("sw_ranking").n_battles_ != 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert routers.get("sw_ranking").n_battles_ == 50, "the other process's battles never arrived"
        subprocess.run([sys.executable, "-c", f"from routellm_demo.store import open_store\n"
                        f"open_store({pg_url!r}).delete_arena_votes()"], check=True, cwd=REPO, timeout=120)
        deadline = time.monotonic() + 10
        while routers.get("sw_ranking").n_battles_ != 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert routers.get("sw_ranking").n_battles_ == 20, "the other process's delete was never seen"
    finally:
        follower.close()
        store.close()


def test_an_own_vote_absorbed_first_does_not_hide_an_earlier_one_from_another_replica(pg_url, tmp_path):
    """Replica B stores a vote (id n), then replica A stores one (id n+1) and absorbs it at once, before
    its feed poll brings B's: B's vote must still reach A's router (ids alone are no watermark then)."""
    from routellm_demo.embeddings import Embedder
    from routellm_demo.router_set import RouterSet

    a, b = open_store(pg_url), open_store(pg_url)
    try:
        a.add_battles([battle(i, strong_side="a") for i in range(5)])
        routers = RouterSet(a, Embedder(a), checkpoint_dir=tmp_path / "none")
        assert routers.get("sw_ranking").n_battles_ == 5
        b.add_battle(**battle(10, source=ARENA_SOURCE, strong_side="a", uid="from-b"))
        own = a.add_battle(**battle(11, source=ARENA_SOURCE, strong_side="a", uid="from-a"))
        routers.absorb([a.battle(own)])  # what the arena does with its own vote
        assert routers.get("sw_ranking").n_battles_ == 6
        routers.sync()
        assert routers.get("sw_ranking").n_battles_ == 7  # B's vote arrived; A's was not absorbed twice
        routers.sync()
        assert routers.get("sw_ranking").n_battles_ == 7
    finally:
        a.close()
        b.close()


def _same_script(store) -> list:
    """One sequence of every kind of call; what each returns, with the values that must differ
    between two databases (times) left out."""
    out = []
    for i, trusted in enumerate((None, "load-test", None)):
        bid = f"battle{i}"
        store.add_pending(battle_id=bid, session_id="s", prompt=f"prompt {i % 2}", model_a="x", model_b="y",
                          strong_side="a", trusted=trusted, params={"temperature": 0.2})
        out.append(store.finish_pending(bid, answer_a="A", answer_b="B", sw_score=0.25))
        meta = {"arena_battle_id": bid, "provenance": {"trusted": trusted}} if trusted else {"arena_battle_id": bid}
        out.append(store.record_vote(battle_id=bid, session_id="s", outcome="a", visitor=f"v{i % 2}",
                                     battle=dict(prompt=f"prompt {i % 2}", model_a="x", model_b="y", winner="model_a",
                                                 source=ARENA_SOURCE, uid=f"arena:{bid}", meta=meta)))
    out.append(store.record_vote(battle_id="battle0", session_id="s", outcome="b", battle=dict(
        prompt="prompt 0", model_a="x", model_b="y", winner="model_b", source=ARENA_SOURCE, uid="arena:again")))
    out.append(store.flag_votes([2, 3], "duplicate"))
    out.append(store.flag_votes([3], "too_fast"))
    out.append(store.flag_votes([3], "too_fast"))
    out.append(store.count_flags())
    out.append(store.voter_votes())
    sha = prompt_sha256("prompt 0")
    out.append([store.visitor_voted("v0", sha), store.visitor_voted("v1", sha)])
    out.append(store.count_pending())
    pending = store.pending("battle1")
    out.append({k: v for k, v in pending.items() if not k.endswith("_at")})
    out.append([{k: v for k, v in b.items() if k != "created_at"} for b in store.battles(include_flagged=True)])
    out.append(len(store.battles()))
    changes = store.changes_since(0)  # a cursor is opaque: PostgreSQL's sequence skips rolled-back numbers
    out.append((changes.cursor > 0, [b["id"] for b in changes.inserted], changes.deleted))
    for score, threshold, budget in ((0.7, 0.5, 0.3), (0.2, 0.5, 0.3), (0.9, 0.8, None)):
        store.log_decision(router="mf", score=score, threshold=threshold, budget=budget, chosen_role="weak",
                           source="app", session_id="s", cost=0.5)
    out.append(store.recent_scores("mf", 2))
    out.append(store.recent_budget_routes("mf", 0.3, 5))
    out.append([{k: v for k, v in r.items() if k != "created_at"} for r in store.budget_log()])
    out.append([{k: v for k, v in r.items() if k != "created_at"} for r in store.decisions(limit=2)])
    out.append([store.hit_rate("k", "vote", max_events=2, window_s=60, now=1000.0 + t) for t in (0, 1, 2, 61.5)])
    out.append(store.purge_vote_visitors("9999"))
    out.append(store.delete_arena_votes())
    out.append((store.count_battles(), store.count_pending(), store.changes_since(changes.cursor).deleted))
    return out


def test_both_backends_answer_the_same_calls_the_same(pg_url, tmp_path):
    """The same calls against SQLite and PostgreSQL return the same values and shapes."""
    with open_store(tmp_path / "same.db") as sqlite, open_store(pg_url) as pg:
        expected, got = _same_script(sqlite), _same_script(pg)
    for i, (e, g) in enumerate(zip(expected, got)):
        assert g == e, f"call {i}: sqlite {e!r} != postgres {g!r}"
        assert type(g) is type(e), i
