"""Labels a team can trust (issue 19), on a real SQLite store, the real embedder and the real routers:
per-visitor limits shared through the store, the vote's flags written with it (and what they keep out
of the routers and the leaderboard), provenance, the export's schema and datasheet, the visitor key's
salted hash and retention. Rounds come in through ``Arena.record_round`` (the path imported rounds
take) with ordinary answer texts; the real app is tested in test_attack.py."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from routellm_demo import hygiene
from routellm_demo.arena import Arena
from routellm_demo.config import load_config
from routellm_demo.embeddings import Embedder
from routellm_demo.export import COLUMN_DOCS, EXPORT_SCHEMA_VERSION, datasheet_path
from routellm_demo.limits import LimitError, Limits
from routellm_demo.router_set import RouterSet
from routellm_demo.store import ARENA_SOURCE, Store
from routellm_demo.visitors import SharedLimiter, Visitor, VisitorKeys, client_address, parse_networks, purge_visitors

PROMPT = "Explain recursion to a child."
ANSWERS = ("Recursion is when a function calls itself on a smaller piece.", "It is like Russian dolls.")


# -- pure rules -----------------------------------------------------------------------------------

@pytest.mark.parametrize("prompt", ["Who are you?", "what model are you", "Which company made you? Are you GPT-4?",
                                    "Are you Claude?", "Please introduce yourself.", "What's your name?"])
def test_identity_questions_are_flagged(prompt):
    assert hygiene.identity_leak(prompt, ["fine"], [])


@pytest.mark.parametrize("answer", ["As ChatGPT, I think so.", "I was trained by OpenAI.", "I am Gemma, a model.",
                                    "Made by Hugging Face.", "I'm the Big Model 9 assistant."])
def test_answers_naming_a_model_or_vendor_are_flagged(answer):
    assert hygiene.identity_leak("Why is the sky blue?", ["Rayleigh scattering.", answer], ["Big Model 9"])


@pytest.mark.parametrize("answer", ["Rayleigh scattering makes it blue.", "Llamas live in the Andes; gemstones shine.",
                                    "Use metadata and a mistrial is rare."])
def test_ordinary_answers_are_not_flagged(answer):
    assert not hygiene.identity_leak("Why is the sky blue? Tell me about the Andes.", [answer], ["SmolLM2-135M"])
    assert not hygiene.identity_leak("Which is larger, 3 or 5?", [answer], [])


def test_too_fast_reads_the_time_since_the_answers():
    answered = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert hygiene.too_fast(answered.isoformat(), answered + timedelta(seconds=1), 3.0)
    assert not hygiene.too_fast(answered.isoformat(), answered + timedelta(seconds=3.5), 3.0)
    assert not hygiene.too_fast(answered.isoformat(), answered, 0.0)


def test_client_address_believes_forwarded_only_from_a_trusted_proxy():
    proxies = parse_networks("10.0.0.0/8, 127.0.0.1")
    assert client_address("203.0.113.5", "1.2.3.4", proxies) == "203.0.113.5"  # not a proxy: header ignored
    assert client_address("127.0.0.1", None, proxies) == "127.0.0.1"
    assert client_address("127.0.0.1", "198.51.100.7", proxies) == "198.51.100.7"
    # a client's own forged first entry is ignored: the right-most untrusted hop is the visitor
    assert client_address("127.0.0.1", "6.6.6.6, 198.51.100.7, 10.1.2.3", proxies) == "198.51.100.7"
    assert client_address("127.0.0.1", "10.0.0.9", proxies) == "127.0.0.1"  # only proxies: the peer
    assert client_address("127.0.0.1", "garbage", proxies) == "127.0.0.1"
    assert client_address("127.0.0.1", "198.51.100.7", ()) == "127.0.0.1"  # no trusted proxy configured
    with pytest.raises(ValueError, match="not an IP"):
        parse_networks("10.0.0.0/8, proxy.example")


def test_on_a_space_the_private_networks_are_the_default_trusted_proxies():
    from routellm_demo.visitors import PRIVATE_NETWORKS, trusted_proxies_for

    assert trusted_proxies_for("", {}) == ""  # a local run: the peer is the visitor
    assert trusted_proxies_for("", {"SPACE_ID": "me/demo"}) == PRIVATE_NETWORKS
    assert trusted_proxies_for("192.0.2.1", {"SPACE_ID": "me/demo"}) == "192.0.2.1"  # configured wins
    proxies = parse_networks(PRIVATE_NETWORKS)
    assert client_address("10.16.3.4", "203.0.113.9", proxies) == "203.0.113.9"  # the platform's proxy hop


def test_bad_trusted_proxies_fail_at_load(tmp_path):
    from routellm_demo.config import ConfigError

    with pytest.raises(ConfigError, match="limits.trusted_proxies must be IP addresses"):
        load_config(environ={"ROUTELLM_DEMO_TRUSTED_PROXIES": "10.0.0.0/8, my-proxy"})


# -- visitor keys and shared limits ---------------------------------------------------------------

def test_visitor_key_is_a_salted_hash_shared_by_processes_and_not_the_address(tmp_path):
    one, two, other = Store(tmp_path / "a.db"), Store(tmp_path / "a.db"), Store(tmp_path / "b.db")
    try:
        keys = [VisitorKeys(s, trusted_proxies="127.0.0.1") for s in (one, two, other)]
        headers = {"x-forwarded-for": "198.51.100.7"}
        v = [k.visitor("127.0.0.1", headers, f"session-{i}") for i, k in enumerate(keys)]
        assert v[0].key == v[1].key != v[2].key  # same store: same key, whatever the session; another salt
        assert "198.51.100.7" not in v[0].key and len(v[0].key) == 32
        assert keys[0].visitor("127.0.0.1", {"x-forwarded-for": "198.51.100.8"}, "s").key != v[0].key
        # no request: the session is the key
        assert keys[0].visitor(None, None, "s1").key != keys[0].visitor(None, None, "s2").key
        assert VisitorKeys(one, trusted_voters="198.51.100.0/24",
                           trusted_proxies="127.0.0.1").visitor("127.0.0.1", headers, "s").trusted == "load-test"
    finally:
        for s in (one, two, other):
            s.close()


def test_visitor_limit_holds_across_sessions_and_processes(tmp_path):
    cfg = replace(load_config(environ={}), visitor_requests_per_minute=3, requests_per_minute=100)
    stores = [Store(tmp_path / "l.db"), Store(tmp_path / "l.db")]  # two processes' connections
    try:
        limits = [Limits.from_config(cfg, store=s) for s in stores]
        visitor = Visitor(VisitorKeys(stores[0]).visitor("203.0.113.9", None, "x").key)
        for i in range(3):  # three new sessions, alternating processes
            limits[i % 2].check_arena(f"session-{i}", "hi", visitor=visitor)
        with pytest.raises(LimitError) as e:
            limits[1].check_arena("session-new", "hi", visitor=visitor)
        assert e.value.status == 429 and "one visitor" in str(e.value) and 0 < e.value.retry_after <= 60
        limits[0].check_arena("session-x", "hi", visitor=Visitor("someone-else"))  # others are not affected
        limits[0].check_arena("session-y", "hi", visitor=Visitor("ignored", trusted="load-test"))
        limits[0].check_arena("session-z", "hi")  # no visitor (library call): the session's limit only
    finally:
        for s in stores:
            s.close()


def test_shared_limiter_lets_exactly_max_events_through_under_races(tmp_path):
    paths = tmp_path / "race.db"
    Store(paths).close()
    granted, refused = [], []

    def worker():
        store = Store(paths, timeout=30)
        try:
            limiter = SharedLimiter(store, 10, 60.0, kind="vote", what="votes")
            for _ in range(5):
                try:
                    limiter.hit("visitor")
                    granted.append(1)
                except LimitError:
                    refused.append(1)
        finally:
            store.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 10 and len(refused) == 20


def test_shared_limiter_window_slides_and_old_events_are_purged(tmp_path):
    now = [1000.0]
    with Store(tmp_path / "w.db") as store:
        limiter = SharedLimiter(store, 2, 60.0, kind="generation", what="requests", clock=lambda: now[0])
        limiter.hit("k")
        limiter.hit("k")
        with pytest.raises(LimitError):
            limiter.hit("k")
        now[0] += 61
        limiter.hit("k")
        assert store.db.execute("SELECT count(*) FROM rate_events").fetchone()[0] == 1  # the old two purged


# -- the vote's flags, through the arena --------------------------------------------------------

@pytest.fixture(scope="module")
def embedder_model():
    Embedder().embed(["warm the model up once for the module"])


@pytest.fixture()
def arena_of(tmp_path, embedder_model):
    opened = []

    def make(count_flagged=False, **over):
        cfg = replace(load_config(environ={}), db_path=tmp_path / f"h{len(opened)}.db", checkpoint_dir=tmp_path / "none",
                      count_flagged_votes=count_flagged, **over)
        store = Store(cfg.db_path, count_flagged=count_flagged)
        opened.append(store)
        store.add_battles([dict(prompt="Prove that there are infinitely many primes.", model_a="gpt-4-1106-preview",
                                model_b="mistralai/Mixtral-8x7B-Instruct-v0.1", winner="model_a", strong_side="a",
                                source="import:test")])
        emb = Embedder(store)
        routers = RouterSet(store, emb, checkpoint_dir=cfg.checkpoint_dir, role_map=cfg.role_map)
        return Arena(cfg, store, emb, routers, None)

    yield make
    for s in opened:
        s.close()


def round_of(arena, prompt=PROMPT, session="s1", answers=ANSWERS, trusted=None, age_s=10.0):
    """A round answered ``age_s`` seconds ago (the answers' time is set back, as if the visitor read them)."""
    battle_id = arena.record_round(prompt, session, answers=answers, strong_side="a", trusted=trusted)
    at = (datetime.now(timezone.utc) - timedelta(seconds=age_s)).isoformat(timespec="milliseconds")
    arena.store.db.execute("UPDATE arena_pending SET answered_at = ? WHERE battle_id = ?", [at, battle_id])
    arena.store.db.conn.commit()
    return battle_id


def sw(arena, prompt=PROMPT):
    return float(arena.routers.score("sw_ranking", arena.embedder.embed([prompt]), [prompt])[0])


def test_clean_vote_counts_and_carries_provenance(arena_of):
    arena = arena_of()
    before = sw(arena)
    r = arena.vote(round_of(arena), "A", "s1", visitor=Visitor("v1"))
    assert r.counted and r.flags == [] and r.sw_after > before
    row = arena.store.battle(r.battle_row_id)
    p = row["meta"]["provenance"]
    assert row["flags"] is None and p["flags"] == [] and p["trusted"] is None and p["app_version"]
    assert {p["sides_shown"][s]["role"] for s in "ab"} == {"strong", "weak"}
    assert p["sides_shown"]["a"]["model"] == row["model_a"] and p["generation"]["strong"]["max_tokens"] > 0
    assert p["seconds_to_vote"] >= 9 and p["voted_at"] > p["answered_at"]
    assert "v1" not in json.dumps(row["meta"])  # the visitor key is not provenance


def test_flagged_votes_are_stored_but_teach_no_router_and_move_no_rating(arena_of):
    arena = arena_of()
    seen = []
    arena.add_vote_listener(seen.append)
    assert arena.vote(round_of(arena), "A", "s1", visitor=Visitor("v1")).counted
    board_before, sw_before = arena.leaderboard("arena"), sw(arena)
    cases = [  # (prompt, answers, age, visitor, expected flags)
        (PROMPT, ANSWERS, 10.0, "v1", ["duplicate"]),  # same visitor, same prompt, a new session
        ("Who are you?", ANSWERS, 10.0, "v2", ["identity"]),
        ("Why is the sky blue?", ("Rayleigh scattering.", "I am ChatGPT, by OpenAI."), 10.0, "v2", ["identity"]),
        ("Name three primary colours.", ANSWERS, 0.5, "v3", ["too_fast"]),
        (PROMPT, ANSWERS, 0.1, "v1", ["duplicate", "too_fast"]),
    ]
    for i, (prompt, answers, age, visitor, flags) in enumerate(cases):
        r = arena.vote(round_of(arena, prompt, f"s{i + 2}", answers, age_s=age), "A", f"s{i + 2}", visitor=Visitor(visitor))
        assert r.flags == flags and not r.counted and r.sw_after == r.sw_before, (prompt, r.flags)
        assert arena.store.battle(r.battle_row_id)["flags"] == ",".join(flags)
    assert len(seen) == 1  # a flagged vote does not count towards a refit
    assert len(arena.store.battles(source=ARENA_SOURCE)) == 1  # what the routers and ratings read
    assert len(arena.store.battles(source=ARENA_SOURCE, include_flagged=True)) == 6  # recorded, not hidden
    assert sw(arena) == pytest.approx(sw_before)
    # a fresh process's routers (fit from the store) and the change feed leave them out too
    fresh = RouterSet(arena.store, arena.embedder, checkpoint_dir=arena.config.checkpoint_dir, role_map=arena.config.role_map)
    assert float(fresh.score("sw_ranking", arena.embedder.embed([PROMPT]), [PROMPT])[0]) == pytest.approx(sw_before)
    board = arena.leaderboard("arena")
    assert board["n_battles"] == board_before["n_battles"] == 1
    assert board["excluded"] == {"votes": 5, "duplicate": 2, "identity": 2, "too_fast": 2}
    counts = arena.store.count_flags()
    assert counts["votes"] == 6 and counts["clean"] == 1 and counts["flagged"] == 5
    assert [r["flags"] for r in arena.recent_votes(3)] == ["duplicate,too_fast", "too_fast", "identity"]


def test_a_setting_counts_flagged_votes(arena_of):
    arena = arena_of(count_flagged=True)
    before = sw(arena)
    r = arena.vote(round_of(arena, age_s=0.1), "A", "s1", visitor=Visitor("v1"))
    assert r.flags == ["too_fast"] and r.counted and r.sw_after > before
    assert arena.leaderboard("arena")["n_battles"] == 1 and arena.leaderboard("arena")["excluded"] == {}


def test_trusted_sources_are_marked_and_never_flagged(arena_of):
    arena = arena_of()
    # the gold-label replay's default: record_round marks its rounds "replay"
    battle_id = arena.record_round("Who are you, ChatGPT?", "replay", answers=("I am ChatGPT.", "No."), strong_side="b")
    r = arena.vote(battle_id, "A", "replay")
    assert r.counted and r.flags == []
    assert arena.store.battle(r.battle_row_id)["meta"]["provenance"]["trusted"] == "replay"
    # a configured trusted voter address (a load test)
    r = arena.vote(round_of(arena, "Who are you?", age_s=0), "A", "s1", visitor=Visitor("lt", trusted="load-test"))
    assert r.counted and r.flags == []
    assert arena.store.count_flags()["trusted"] == 2


def test_export_has_a_versioned_schema_flags_and_a_datasheet_and_no_visitor_or_session(arena_of, tmp_path):
    arena = arena_of()
    arena.vote(round_of(arena, session="secret-session-1"), "A", "secret-session-1", visitor=Visitor("visitorhash1"))
    arena.vote(round_of(arena, session="secret-session-2", age_s=0.1), "B", "secret-session-2",
               visitor=Visitor("visitorhash1"))
    for fmt in ("csv", "jsonl", "parquet"):
        path = arena.export(fmt, tmp_path / "out")
        frame = {"csv": pd.read_csv, "jsonl": lambda p: pd.read_json(p, lines=True), "parquet": pd.read_parquet}[fmt](path)
        assert list(frame.columns) == list(COLUMN_DOCS)
        assert set(frame["schema_version"]) == {EXPORT_SCHEMA_VERSION} and len(frame) == 3
        arena_rows = frame[frame["source"] == ARENA_SOURCE]
        assert sorted(arena_rows["flags"].fillna("")) == ["", "duplicate,too_fast"]
        sheet = json.loads(datasheet_path(path).read_text())
        assert sheet["schema_version"] == EXPORT_SCHEMA_VERSION and sheet["rows"] == 3 and sheet["flagged"] == 1
        assert sheet["by_flag"] == {"clean": 2, "duplicate": 1, "too_fast": 1}
        assert sum(sheet["by_model_pair"].values()) == 3 and sheet["date_range"]["first"] <= sheet["date_range"]["last"]
        assert set(sheet["columns"]) == set(COLUMN_DOCS)
        raw = path.read_bytes() + datasheet_path(path).read_bytes()
        assert b"secret-session" not in raw and b"visitorhash1" not in raw


def test_visitor_keys_are_forgotten_after_the_retention_period(arena_of):
    arena = arena_of()
    arena.vote(round_of(arena), "A", "s1", visitor=Visitor("v1"))
    assert arena.store.visitor_voted("v1", arena.store.battles(source=ARENA_SOURCE)[0]["prompt_sha256"])
    assert purge_visitors(arena.store, 30) == 0
    assert purge_visitors(arena.store, 30, now=datetime.now(timezone.utc) + timedelta(days=31)) == 1
    r = arena.vote(round_of(arena, session="s2"), "A", "s2", visitor=Visitor("v1"))
    assert r.flags == []  # no longer known as a duplicate: the key is gone
    # deleting votes (admin) deletes their visitor rows too
    arena.store.db.execute("DELETE FROM battles WHERE source = ?", [ARENA_SOURCE])
    arena.store.db.conn.commit()
    assert arena.store.db.execute("SELECT count(*) FROM vote_visitors").fetchone()[0] == 0


def test_vote_limit_per_visitor_is_in_the_store(arena_of):
    arena = arena_of(visitor_votes_per_hour=2)
    limits = Limits.from_config(arena.config, store=arena.store)
    for s in ("a", "b"):
        limits.check_vote(s, visitor=Visitor("v9"))
    with pytest.raises(LimitError, match="at most 2 per hour from one visitor"):
        limits.check_vote("c", visitor=Visitor("v9"))
    assert arena.store.db.execute("SELECT count(*) FROM rate_events WHERE key = 'v9'").fetchone()[0] == 2


# -- the anomalous-voter check (background; run here directly) -----------------------------------

def test_a_voter_against_the_consensus_is_flagged_and_forgotten_but_a_trusted_one_is_not(arena_of):
    arena = arena_of()
    prompts = [f"What is {13 + i} times {7 + i}?" for i in range(12)]
    session = iter(range(10_000))

    def vote(prompt, outcome, visitor):
        s = f"s{next(session)}"
        return arena.vote(round_of(arena, prompt, s), outcome, s, visitor=visitor)

    for prompt in prompts:  # round_of puts the strong model on side A
        for h in range(5):
            assert vote(prompt, "A", Visitor(f"honest{h}")).counted
        assert vote(prompt, "B", Visitor("evil")).counted  # clean at write time: nothing wrong with one vote
        assert vote(prompt, "B", Visitor("lt", trusted="load-test")).counted
    follower = RouterSet(arena.store, arena.embedder, checkpoint_dir=arena.config.checkpoint_dir,
                         role_map=arena.config.role_map)
    follower.get("sw_ranking")
    before = sw(arena, prompts[0])
    assert arena.check_voters() == {"voters": 1, "votes": 12}
    evil = [r for r in arena.store.battles(source=ARENA_SOURCE, include_flagged=True) if r["flags"]]
    assert len(evil) == 12 and {r["flags"] for r in evil} == {"anomalous"}
    assert {r["winner"] for r in evil} == {"model_b"}
    # forgotten as after a delete: here at once, in another process through the change feed
    assert sw(arena, prompts[0]) > before
    assert follower.sync().deleted == 12
    assert float(follower.score("sw_ranking", arena.embedder.embed([prompts[0]]), [prompts[0]])[0]) == pytest.approx(
        sw(arena, prompts[0]))
    assert arena.leaderboard("arena")["excluded"] == {"votes": 12, "anomalous": 12}
    assert arena.check_voters() == {"voters": 0, "votes": 0}  # once flagged, left alone


def test_old_exports_take_their_datasheets_with_them(arena_of, tmp_path, monkeypatch):
    import routellm_demo.export as export_module

    arena = arena_of()
    monkeypatch.setattr(export_module, "EXPORTS_PER_MINUTE", 100)
    out = tmp_path / "many"
    for _ in range(export_module.EXPORTS_KEPT + 3):
        arena.export("csv", out)
    exports = sorted(out.glob("battles-*"))
    assert len(exports) == export_module.EXPORTS_KEPT
    assert sorted(out.glob("datasheet-*")) == sorted(datasheet_path(p) for p in exports)
