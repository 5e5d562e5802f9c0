"""The store against a real database: schema, transactions, threads and the failure modes users hit.

Tests taking ``store`` or ``target`` run on both backends: a SQLite file and a fresh database on a
real PostgreSQL server (tests/pg_server.py). Those that build a file by hand (WAL, permissions, a
corrupt or foreign file, SQLite's lock and migrations table) stay SQLite-only: PostgreSQL has no file
to damage or chmod; its own migrations, locks and failures are tested in test_store_postgres.py.
"""

import os
import sqlite3
import stat
import threading
import time

import numpy as np
import pytest
from sqlite_utils import Database

from routellm_demo.schema import MIGRATIONS, SCHEMA_VERSION
from routellm_demo.store import Store, StoreError, open_store, prompt_sha256
from pg_server import pg_server  # noqa: F401 (fixture)


def battle(i=0, **kw):
    row = dict(prompt=f"prompt {i}", model_a="big", model_b="small", winner="model_a", source="test")
    row.update(kw)
    return row


@pytest.fixture(params=["sqlite", "postgres"])
def target(request, tmp_path):
    """Where a store lives: a SQLite path, or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield tmp_path / "routellm.db"
        return
    server = request.getfixturevalue("pg_server")
    url = server.create_database()
    yield url
    server.drop_database(url)


@pytest.fixture
def store(target):
    s = open_store(target)
    yield s
    s.close()


def raw_vector(store, sha):
    """The stored bytes of one cached vector, read past the store."""
    if isinstance(store, Store):
        return store.db.execute("SELECT vector FROM embeddings WHERE sha256 = ?", [sha]).fetchone()[0]
    import psycopg

    with psycopg.connect(store.url) as conn:
        return conn.execute("SELECT vector FROM embeddings WHERE sha256 = %s", [sha]).fetchone()[0]


# -- schema --------------------------------------------------------------------------------------


def test_creates_parent_dirs_wal_and_current_schema(tmp_path):
    path = tmp_path / "a" / "b" / "demo.db"
    with Store(path) as s:
        assert path.is_file()
        assert s.journal_mode() == "wal"
        assert s.schema_version() == SCHEMA_VERSION == 8
        assert {"battles", "embeddings", "routing_log"} <= set(s.db.table_names())
    with Store(path) as s:  # reopening applies nothing twice
        assert s.schema_version() == SCHEMA_VERSION


def test_older_database_is_migrated_not_broken(tmp_path):
    path = tmp_path / "old.db"
    db = Database(path)
    MIGRATIONS.apply(db, stop_before="0003_routing_log")
    db.execute(
        "INSERT INTO battles (uid, prompt, prompt_sha256, model_a, model_b, winner, source, created_at) "
        "VALUES ('u', 'kept', 'x', 'a', 'b', 'tie', 'old', '2024-01-01T00:00:00+00:00')")
    db.close()
    with pytest.raises(StoreError, match="older schema"):
        Store(path, readonly=True)
    with Store(path) as s:
        assert s.schema_version() == SCHEMA_VERSION
        assert [b["prompt"] for b in s.battles()] == ["kept"]
        assert s.log_decision(chosen_role="weak", cost=0.1, source="cli") == 1


def test_many_openers_of_a_fresh_file_migrate_it_once(target):
    errors, stores = [], []
    barrier = threading.Barrier(6)

    def open_it():
        barrier.wait()
        try:
            stores.append(open_store(target))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert [s.schema_version() for s in stores] == [SCHEMA_VERSION] * 6
    for s in stores:
        s.close()


def test_database_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "new.db"
    Store(path).close()
    db = Database(path)
    db["_sqlite_migrations"].insert(
        {"migration_set": "routellm_demo", "name": "9999_future", "applied_at": "2030-01-01"})
    db.close()
    with pytest.raises(StoreError, match="newer"):
        Store(path)


# -- battles -------------------------------------------------------------------------------------


def test_add_battle_roundtrip_unicode_meta_and_idempotency(store):
    prompt = "Ünïcödé 🤖 中文 עברית\n\ttabs and a NUL \x00 inside"
    bid = store.add_battle(prompt=prompt, model_a="gpt-4", model_b="mixtral", winner="tie (bothbad)",
                           source="arena-vote", strong_side="b", uid="vote-1", session_id="s1",
                           meta={"benchmark": "mmlu", "subject": "anatomy"})
    assert isinstance(bid, int)
    assert store.add_battle(prompt="other", model_a="x", model_b="y", winner="tie", source="arena-vote",
                            uid="vote-1") is None
    b = store.battle(bid)
    assert b["prompt"] == prompt
    assert b["prompt_sha256"] == prompt_sha256(prompt)
    assert b["meta"] == {"benchmark": "mmlu", "subject": "anatomy"}
    assert (b["winner"], b["strong_side"], b["session_id"]) == ("tie (bothbad)", "b", "s1")
    assert b["created_at"].endswith("+00:00")
    assert store.battle(bid + 100) is None
    assert store.count_battles() == {"arena-vote": 1}


@pytest.mark.parametrize("bad, message", [
    (dict(winner="draw"), "winner"),
    (dict(strong_side="strong"), "strong_side"),
    (dict(prompt=""), "prompt"),
    (dict(prompt="   \n"), "prompt"),
    (dict(prompt="half an emoji \ud83d"), "surrogate"),
    (dict(model_a=""), "model_a"),
    (dict(meta=["not", "a", "dict"]), "meta"),
])
def test_add_battle_validates_at_the_boundary(store, bad, message):
    with pytest.raises(ValueError, match=message):
        store.add_battle(**battle(**bad))
    assert store.count_battles() == {}


def test_add_battles_is_one_transaction(store):
    def rows():  # 600 good rows (more than one executemany chunk), then a bad one
        for i in range(600):
            yield battle(i, uid=f"u{i}")
        yield battle(600, winner="nobody")

    with pytest.raises(ValueError, match="winner"):
        store.add_battles(rows())
    assert store.count_battles() == {}
    with pytest.raises(ValueError, match="unknown battle fields"):
        store.add_battles([battle(1), battle(2, id=7)])
    assert store.count_battles() == {}  # nothing half-written

    good = [battle(i, uid=f"u{i}") for i in range(600)]
    assert store.add_battles(good) == 600
    assert store.add_battles(good) == 0  # INSERT OR IGNORE on uid
    assert store.add_battles(good + [battle(600, uid="u600")]) == 1
    assert store.count_battles() == {"test": 601}


def test_transaction_groups_battles_and_embeddings_all_or_nothing(store):
    """What seeding relies on: battles and their cached vectors land together, or not at all."""
    vec = {prompt_sha256("prompt 0"): np.ones(4, np.float32)}
    with pytest.raises(RuntimeError, match="crash"):
        with store.transaction():
            assert store.add_battles([battle(0, uid="t0")]) == 1
            store.put_embeddings("m", vec)
            raise RuntimeError("crash between the writes")
    assert store.count_battles() == {} and store.get_embeddings("m", vec) == {}
    with store.transaction():
        store.add_battles([battle(0, uid="t0")])
        store.put_embeddings("m", vec)
    assert store.count_battles() == {"test": 1} and list(store.get_embeddings("m", vec)) == list(vec)


def test_battles_filters(store):
    store.add_battles([battle(i, source="a" if i % 2 else "b", meta={"i": i}) for i in range(10)])
    all_rows = store.battles()
    assert [r["id"] for r in all_rows] == sorted(r["id"] for r in all_rows)
    assert len(store.battles(source="a")) == 5
    assert len(store.battles(source=["a", "b"])) == 10
    since = all_rows[6]["id"]
    assert [r["meta"]["i"] for r in store.battles(since_id=since)] == [7, 8, 9]
    assert [r["meta"]["i"] for r in store.battles(source="b", limit=2)] == [0, 2]
    assert store.count_battles() == {"a": 5, "b": 5}


def test_writes_from_many_threads(store):
    errors = []

    def work(t):
        try:
            for i in range(40):
                store.add_battle(**battle(i, uid=f"t{t}-{i}", source=f"thread{t}"))
                store.log_decision(session_id=f"t{t}", chosen_role="weak", cost=1.0, strong_cost=2.0,
                                   source="server")
                store.battles(limit=5)
                store.savings()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert sum(store.count_battles().values()) == 320
    assert store.savings()["requests"] == 320
    assert store.savings("t3")["requests"] == 40


def test_two_stores_share_one_file(target):
    with open_store(target) as writer, open_store(target) as reader:
        writer.add_battle(**battle(1))
        assert len(reader.battles()) == 1


def test_separate_connections_writing_at_once(target):
    """Like an app, a server and a CLI each with its own connection: the busy timeout serialises them."""
    open_store(target).close()
    errors = []

    def work(t):
        try:
            with open_store(target) as s:
                for i in range(30):
                    s.add_battles([battle(i, uid=f"{t}-{i}")])
                    s.put_embeddings("m", {f"{t}-{i}": np.ones(4, np.float32)})
                    s.log_decision(chosen_role="weak", source="cli")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    with open_store(target) as s:
        assert s.count_battles() == {"test": 120} and s.savings()["requests"] == 120


# -- failure modes -------------------------------------------------------------------------------


def test_locked_database_gives_store_error_after_timeout(tmp_path):
    path = tmp_path / "locked.db"
    Store(path).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    try:
        with Store(path, timeout=0.3) as s:
            t = time.perf_counter()
            with pytest.raises(StoreError, match="locked"):
                s.add_battle(**battle())
            assert time.perf_counter() - t >= 0.25  # waited for the busy timeout first
            assert s.battles() == []  # reads still work in WAL mode
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_read_only_file_and_read_only_mode(tmp_path):
    path = tmp_path / "ro.db"
    with Store(path) as s:
        s.add_battle(**battle())
    os.chmod(path, stat.S_IRUSR | stat.S_IRGRP)
    try:
        with pytest.raises(StoreError, match="read-only"):
            Store(path)
        with Store(path, readonly=True) as ro:
            assert len(ro.battles()) == 1
            with pytest.raises(StoreError, match="readonly"):
                ro.add_battle(**battle(2))
    finally:
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    with pytest.raises(StoreError, match="no database"):
        Store(tmp_path / "missing.db", readonly=True)


def test_read_only_directory(tmp_path):
    folder = tmp_path / "locked_dir"
    folder.mkdir()
    os.chmod(folder, stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(StoreError, match="read-only"):
            Store(folder / "x.db")
    finally:
        os.chmod(folder, stat.S_IRWXU)


def test_not_a_database_and_corrupt_file(tmp_path):
    junk = tmp_path / "notes.db"
    junk.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(StoreError, match="not a SQLite database"):
        Store(junk)
    assert "notes" in junk.read_text()  # untouched

    damaged = tmp_path / "damaged.db"
    with Store(damaged) as s:
        s.add_battles([battle(i, prompt="x" * 2000 + str(i)) for i in range(200)])
    data = bytearray(damaged.read_bytes())
    data[4096:] = b"\xde\xad\xbe\xef" * ((len(data) - 4096) // 4)
    damaged.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="corrupt"):
        s = Store(damaged)
        s.battles()


def test_closed_store_raises_store_error(target):
    s = open_store(target)
    s.close()
    with pytest.raises(StoreError):
        s.battles()


# -- embeddings cache ----------------------------------------------------------------------------


def test_embedding_cache_roundtrip(store):
    v = np.arange(384, dtype=np.float32) / 384
    store.put_embeddings("m", {"s1": v, "s2": -v})
    got = store.get_embeddings("m", ["s1", "s2", "missing", "s1"])
    assert set(got) == {"s1", "s2"}
    assert got["s1"].dtype == np.float32 and np.array_equal(got["s1"], v)
    assert store.get_embeddings("other-model", ["s1"]) == {}
    store.put_embeddings("m", {"s1": v * 2})  # replace
    assert np.array_equal(store.get_embeddings("m", ["s1"])["s1"], v * 2)
    blob = raw_vector(store, "s2")
    assert np.array_equal(np.frombuffer(blob, "<f4"), -v)  # little-endian float32 on disk
    with pytest.raises(ValueError):
        store.put_embeddings("m", {"bad": np.zeros((2, 2))})
    many = {f"k{i}": v for i in range(1200)}  # more than one IN (...) chunk
    store.put_embeddings("m", many)
    assert len(store.get_embeddings("m", list(many))) == 1200


# -- routing log ---------------------------------------------------------------------------------


def test_savings_on_hand_made_rows(store):
    assert store.savings() == {"requests": 0, "strong_requests": 0, "strong_share": 0.0, "spent": 0.0,
                               "all_strong_cost": 0.0, "saved": 0.0, "saved_pct": 0.0,
                               "routed_requests": 0, "routed_spent": 0.0, "routed_all_strong_cost": 0.0,
                               "fallback_requests": 0, "fallback_to_weak": 0, "fallback_to_strong": 0,
                               "fallback_spent": 0.0, "fallback_cost_difference": 0.0}
    store.log_decision(session_id="s1", chosen_role="weak", cost=0.5, strong_cost=4.5, source="app")
    store.log_decision(session_id="s1", chosen_role="strong", cost=3.0, strong_cost=3.0, source="app")
    store.log_decision(session_id="s2", chosen_role="strong", cost=2.0, source="server")  # strong_cost unknown
    store.log_decision(session_id="s2", chosen_role="weak", cost=0.1, strong_cost=1.0, source="server",
                       fallback_from="local-strong")  # the strong model failed: not a routing saving
    store.log_decision(session_id="s1", chosen_role="weak", cost=9.0, strong_cost=9.0, source="app",
                       error="timeout")  # failed requests do not count
    total = store.savings()
    assert total["requests"] == 4 and total["strong_requests"] == 2
    assert total["strong_share"] == 0.5
    assert total["spent"] == pytest.approx(5.6)
    assert total["all_strong_cost"] == pytest.approx(10.5)
    assert total["saved"] == pytest.approx(4.0)  # the fallback's 0.9 is reported apart
    assert total["routed_all_strong_cost"] == pytest.approx(9.5)
    assert total["saved_pct"] == pytest.approx(100 * 4.0 / 9.5)
    assert (total["fallback_requests"], total["fallback_to_weak"], total["fallback_to_strong"]) == (1, 1, 0)
    assert total["fallback_spent"] == pytest.approx(0.1) and total["fallback_cost_difference"] == pytest.approx(0.9)
    s1 = store.savings("s1")
    assert (s1["requests"], s1["spent"], s1["saved"], s1["fallback_requests"]) == (2, 3.5, 4.0, 0)
    assert store.savings("nobody")["saved_pct"] == 0.0


def test_log_decision_validates_and_decisions_are_newest_first(store):
    with pytest.raises(ValueError, match="unknown"):
        store.log_decision(chosen_role="weak", colour="red")
    with pytest.raises(ValueError, match="chosen_role"):
        store.log_decision(chosen_role="medium")
    with pytest.raises(ValueError, match="usage_source"):
        store.log_decision(chosen_role="weak", usage_source="guess")
    ids = [store.log_decision(session_id="s", chosen_role="weak", router="mf", threshold=0.3, score=0.2,
                              chosen_model="small", prompt_tokens=10, completion_tokens=20,
                              usage_source="api", cost=0.01, strong_cost=0.1, latency_ms=120.5,
                              ttft_ms=30.0, routing_ms=4.2, source="sdk", error="") for _ in range(3)]
    rows = store.decisions(session_id="s")
    assert [r["id"] for r in rows] == ids[::-1]
    assert rows[0]["error"] is None and rows[0]["usage_source"] == "api"
    assert len(store.decisions(limit=2)) == 2
    assert store.decisions(session_id="other") == []
