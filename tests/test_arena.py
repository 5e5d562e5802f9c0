"""The arena against a real SQLite store and the real embedding model: pairing, concurrent answers,
vote integrity (one vote per battle, only by its session, names from the server, one transaction),
the router learning from the vote, ratings, export and the admin-only reset.

The two model endpoints are small scripted stand-ins here (the real local pair is exercised end to
end in test_app_e2e.py and test_app_browser.py); everything else is real.
"""

import json
import random
import re
import sqlite3
import threading
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from routellm_demo.arena import AdminError, Arena, ArenaError, ArenaRound, VoteError, check_admin
from routellm_demo.errors import UserError
from routellm_demo.ratings import model_battles, win_rate_matrix
from routellm_demo.config import load_config
from routellm_demo.controller import Controller
from routellm_demo.embeddings import Embedder
from routellm_demo.limits import LimitError
from routellm_demo.llm.endpoints import Completion, EndpointError, Usage
from routellm_demo.store import Store
from routellm_demo.router_set import RouterSet

SESSION = "session-1"


class ScriptedEndpoint:
    """Streams fixed words with a small delay, like a model would; optionally fails midway."""

    def __init__(self, name, words, delay=0.01, fail_after=None):
        self.name, self.words, self.delay, self.fail_after = name, words, delay, fail_after
        self.threads = set()

    def stream(self, messages, **params):
        self.threads.add(threading.current_thread().name)
        for i, w in enumerate(self.words):
            if self.fail_after is not None and i == self.fail_after:
                raise EndpointError(self.name, "connection", f"{self.name}: cannot connect to http://x")
            time.sleep(self.delay)
            yield w
        text = "".join(self.words).strip()
        yield Completion(text, self.name, Usage(7, len(self.words), "estimate"), "stop", 50.0, 5.0)


@pytest.fixture(scope="module")
def embedder_model():
    Embedder().embed(["warm the model up once for the module"])


@pytest.fixture()
def make_arena(tmp_path, embedder_model, monkeypatch):
    monkeypatch.delenv("ROUTELLM_DEMO_ADMIN_TOKEN", raising=False)
    opened = []

    def make(strong_fail=None, seed=0, seed_battles=True, prompt_pool=None):
        # these tests script instant votes on repeated prompts to test the vote path itself: hygiene's
        # flags (test_hygiene.py) are recorded but counted, and no vote is too fast
        cfg = replace(load_config(environ={}), db_path=tmp_path / f"arena{len(opened)}.db",
                      checkpoint_dir=tmp_path / "none", max_prompt_chars=200, min_vote_seconds=0.0,
                      count_flagged_votes=True, anomaly_check_every=0, prompt_pool=prompt_pool)
        store = Store(cfg.db_path, count_flagged=True)
        opened.append(store)
        if seed_battles:  # some history, so the router has something besides the votes
            store.add_battles([
                dict(prompt=p, model_a="gpt-4-1106-preview", model_b="mistralai/Mixtral-8x7B-Instruct-v0.1",
                     winner=w, strong_side="a", source="import:test")
                for p, w in [("Prove that there are infinitely many primes.", "model_a"),
                             ("What colour is the sky?", "tie"),
                             ("Write a haiku about autumn.", "model_b"),
                             ("Integrate x^2 from 0 to 1.", "model_a")]])
        emb = Embedder(store)
        routers = RouterSet(store, emb, checkpoint_dir=cfg.checkpoint_dir, role_map=cfg.role_map)
        endpoints = {
            "strong": ScriptedEndpoint(cfg.strong.name, ["The ", "strong ", "answer", "."], fail_after=strong_fail),
            "weak": ScriptedEndpoint(cfg.weak.name, ["A ", "weak ", "answer", "."]),
        }
        ctl = Controller(cfg, store, emb, routers, endpoints)
        return Arena(cfg, store, emb, routers, ctl, rng=random.Random(seed))

    yield make
    for s in opened:
        s.close()


def snapshot(arena):
    """Everything a refused vote must leave untouched."""
    db = arena.store.db
    return (arena.store.count_battles(), [tuple(r) for r in db.execute("SELECT * FROM arena_pending ORDER BY battle_id")])


def answered(arena, prompt="Explain recursion to a child.", session=SESSION):
    battle_id = arena.new_battle(prompt, session)
    assert isinstance(arena.stream_answers(battle_id, session, max_tokens=8).round(), ArenaRound)
    return battle_id


def sw(arena, prompt):
    return float(arena.routers.score("sw_ranking", arena.embedder.embed([prompt]), [prompt])[0])


# -- pairing and answering ---------------------------------------------------------------------------


def test_new_battle_is_pending_server_side_with_random_positions(make_arena):
    arena = make_arena()
    sides = set()
    for i in range(12):
        battle_id = arena.new_battle(f"question {i}?", SESSION)
        assert len(battle_id) == 32 and int(battle_id, 16) >= 0  # uuid4 hex, nothing else
        row = arena.store.pending(battle_id)
        assert row["status"] == "asked" and row["session_id"] == SESSION
        strong = arena.config.strong.name
        assert (row["model_a"] == strong) == (row["strong_side"] == "a")
        assert {row["model_a"], row["model_b"]} == {arena.config.strong.name, arena.config.weak.name}
        sides.add(row["strong_side"])
    assert sides == {"a", "b"}


def test_both_answers_stream_concurrently_and_are_stored(make_arena):
    arena = make_arena()
    battle_id = arena.new_battle("Explain recursion to a child.", SESSION)
    answers = arena.stream_answers(battle_id, SESSION)
    pieces = list(answers)
    final = answers.round()
    order = [side for side, _ in pieces]
    assert sorted(set(order)) == ["a", "b"]
    assert order != sorted(order), "the two answers should arrive interleaved, not one after the other"
    assert isinstance(final, ArenaRound) and final.battle_id == battle_id
    row = arena.store.pending(battle_id)
    assert row["status"] == "answered"
    assert {row["answer_a"], row["answer_b"]} == {"The strong answer.", "A weak answer."}
    assert final.a.text == row["answer_a"] and final.b.text == row["answer_b"]
    assert final.a.completion_tokens == 4
    assert not hasattr(final.a, "model")  # names stay hidden until the vote


def test_a_failing_model_fails_the_battle_without_naming_it(make_arena):
    arena = make_arena(strong_fail=2)
    battle_id = arena.new_battle("Explain recursion to a child.", SESSION)
    with pytest.raises(ArenaError) as err:
        arena.stream_answers(battle_id, SESSION).round()
    assert "failed" in str(err.value) and arena.config.strong.name not in str(err.value)
    assert re.fullmatch(r"Model [AB] could not answer right now\.", err.value.public)  # no name, no URL
    assert arena.store.pending(battle_id)["status"] == "failed"
    before = snapshot(arena)
    with pytest.raises(VoteError) as v:
        arena.vote(battle_id, "A", SESSION)
    assert v.value.reason == "failed" and snapshot(arena) == before


def test_prompt_over_the_cap_is_refused_before_anything_is_stored(make_arena):
    arena = make_arena()
    with pytest.raises(LimitError, match="limit is 200"):
        arena.new_battle("x" * 201, SESSION)
    with pytest.raises(LimitError):
        arena.new_battle("   ", SESSION)
    assert arena.store.count_pending() == {}


# -- voting --------------------------------------------------------------------------------------


def test_a_round_answered_without_a_stored_score_is_scored_at_the_vote(make_arena):
    arena = make_arena()
    prompt = "Explain recursion to a child."
    battle_id = answered(arena, prompt)
    with arena.store._access() as db:  # as a round answered before the sw_score column existed
        db.conn.execute("UPDATE arena_pending SET sw_score = NULL WHERE battle_id = ?", [battle_id])
    before_score = sw(arena, prompt)
    result = arena.vote(battle_id, "tie", SESSION)
    assert result.sw_before == pytest.approx(before_score)
    assert arena.store.battle(result.battle_row_id)["meta"]["sw_before"] == pytest.approx(before_score)


@pytest.mark.parametrize("winner_role", ["strong", "weak"])
def test_vote_stores_the_server_side_battle_and_moves_sw_the_voted_way(make_arena, winner_role):
    arena = make_arena()
    prompt = "Explain recursion to a child."
    battle_id = answered(arena, prompt)
    pending = arena.store.pending(battle_id)
    strong_letter = pending["strong_side"].upper()
    outcome = strong_letter if winner_role == "strong" else ("B" if strong_letter == "A" else "A")
    before_score = sw(arena, prompt)
    assert pending["sw_score"] == pytest.approx(before_score)  # scored when the answers came in

    result = arena.vote(battle_id, outcome, SESSION)

    assert result.sw_before == pytest.approx(before_score)
    assert result.sw_after == pytest.approx(sw(arena, prompt))  # the live router learnt it
    if winner_role == "strong":
        assert result.sw_after > result.sw_before
    else:
        assert result.sw_after < result.sw_before
    assert result.winner_role == winner_role
    assert result.winner_model == (arena.config.strong.name if winner_role == "strong" else arena.config.weak.name)

    votes = arena.store.battles(source="arena-vote")
    assert len(votes) == 1
    row = votes[0]
    assert row["id"] == result.battle_row_id
    assert row["uid"] == "arena:" + battle_id and row["session_id"] == SESSION
    assert (row["model_a"], row["model_b"], row["strong_side"]) == (pending["model_a"], pending["model_b"], pending["strong_side"])
    assert row["winner"] == {"A": "model_a", "B": "model_b"}[outcome]
    assert row["prompt"] == prompt and row["meta"]["answer_a"] == pending["answer_a"]
    # the app's router (the classifier, fitted on the store here) is scored before the vote too: the
    # Learning tab's prequential record of the router visitors are actually routed by
    app_router = arena.config.router
    assert app_router == "classifier"
    assert row["meta"]["scores_before"] == pytest.approx(
        {"sw_ranking": before_score, app_router: float(arena.routers.score(app_router, arena.embedder.embed([prompt]),
                                                                             [prompt])[0])})
    done = arena.store.pending(battle_id)
    assert done["status"] == "voted" and done["battle_row_id"] == row["id"] and done["outcome"] == outcome

    winner, loser = result.winner_model, (result.model_b if result.winner_model == result.model_a else result.model_a)
    assert result.rating_change(winner) > 0 > result.rating_change(loser)


def test_tie_and_bothbad_are_stored_as_ties(make_arena):
    arena = make_arena()
    for outcome, winner in (("tie", "tie"), ("bothbad", "tie (bothbad)")):
        battle_id = answered(arena, f"Say something about {outcome}.")
        result = arena.vote(battle_id, outcome, SESSION)
        assert result.winner == winner and result.winner_role is None and result.winner_model is None
    assert [b["winner"] for b in arena.store.battles(source="arena-vote")] == ["tie", "tie (bothbad)"]


@pytest.mark.parametrize("case", ["unknown", "double", "other_session", "not_answered", "bad_outcome", "empty_id"])
def test_refused_votes_raise_vote_error_and_write_nothing(make_arena, case):
    arena = make_arena()
    battle_id = answered(arena)
    if case == "double":
        arena.vote(battle_id, "A", SESSION)
    if case == "not_answered":
        battle_id = arena.new_battle("A question still being answered", SESSION)
    before = snapshot(arena)
    args = {
        "unknown": ("0" * 32, "A", SESSION),
        "double": (battle_id, "B", SESSION),
        "other_session": (battle_id, "A", "session-2"),
        "not_answered": (battle_id, "A", SESSION),
        "bad_outcome": (battle_id, "model_a", SESSION),
        "empty_id": ("", "A", SESSION),
    }[case]
    with pytest.raises(VoteError) as err:
        arena.vote(*args)
    expected = {"double": "already_voted", "empty_id": "unknown"}.get(case, case)
    assert err.value.reason == expected
    assert str(err.value)  # a sentence for the visitor
    assert snapshot(arena) == before


def test_battle_row_and_voted_mark_are_one_transaction(make_arena):
    arena = make_arena()
    battle_id = answered(arena)
    db = arena.store.db
    # Make the second write of the vote (marking the pending battle voted) fail inside SQLite.
    db.execute("CREATE TRIGGER fail_vote BEFORE UPDATE OF status ON arena_pending "
               "WHEN NEW.status = 'voted' BEGIN SELECT RAISE(ABORT, 'injected failure'); END")
    before = snapshot(arena)
    with pytest.raises(ValueError, match="injected failure"):
        arena.vote(battle_id, "A", SESSION)
    assert snapshot(arena) == before  # the battle row inserted first was rolled back with it
    assert arena.store.battles(source="arena-vote") == []
    db.execute("DROP TRIGGER fail_vote")
    arena.vote(battle_id, "A", SESSION)  # still votable, exactly once
    assert len(arena.store.battles(source="arena-vote")) == 1


def test_two_racing_votes_on_one_battle_count_once(make_arena):
    arena = make_arena()
    battle_id = answered(arena)
    # A second Arena on the same file, as in a second worker process: only the database arbitrates.
    other = Arena(arena.config, Store(arena.config.db_path), arena.embedder, arena.routers, arena.controller)
    results, errors = [], []
    barrier = threading.Barrier(2)

    def go(a, outcome):
        barrier.wait()
        try:
            results.append(a.vote(battle_id, outcome, SESSION))
        except VoteError as e:
            errors.append(e)

    threads = [threading.Thread(target=go, args=(a, o)) for a, o in ((arena, "A"), (other, "B"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    other.store.close()
    assert len(results) == 1 and len(errors) == 1 and errors[0].reason == "already_voted"
    assert len(arena.store.battles(source="arena-vote")) == 1


# -- ratings, data, admin ----------------------------------------------------------------------------


def test_leaderboard_and_win_rate_matrix(make_arena):
    arena = make_arena()
    for i in range(3):
        battle_id = answered(arena, f"Question number {i}?")
        strong_letter = arena.store.pending(battle_id)["strong_side"].upper()
        arena.vote(battle_id, strong_letter, SESSION)
    board = arena.leaderboard("arena", n_boot=20)
    assert board["n_battles"] == 3
    assert [r["player"] for r in board["rows"]] == [arena.config.strong.name, arena.config.weak.name]
    top = board["rows"][0]
    assert top["wins"] == 3 and top["n_battles"] == 3 and top["ci_low"] - 1e-6 <= top["rating"] <= top["ci_high"] + 1e-6
    everything = arena.leaderboard("all", n_boot=20)
    assert everything["n_battles"] == 7 and len(everything["rows"]) == 4
    players, rate, games = win_rate_matrix(model_battles(arena.store.battles(source="arena-vote")))
    i, j = players.index(arena.config.strong.name), players.index(arena.config.weak.name)
    assert rate[i, j] == 1.0 and rate[j, i] == 0.0 and games[i, j] == 3 and np.isnan(rate[i, i])


def test_export_all_battles_in_three_formats(make_arena, tmp_path):
    arena = make_arena()
    arena.vote(answered(arena), "tie", SESSION)
    csv = pd.read_csv(arena.export("csv", tmp_path / "out"))
    jsonl = pd.read_json(arena.export("jsonl", tmp_path / "out"), lines=True)
    parquet = pd.read_parquet(arena.export("parquet", tmp_path / "out"))
    for frame in (csv, jsonl, parquet):
        assert len(frame) == 5 and "session_id" not in frame.columns
        assert set(frame["source"]) == {"import:test", "arena-vote"}
    meta = json.loads(parquet.loc[parquet["source"] == "arena-vote", "meta"].iloc[0])
    assert meta["outcome"] == "tie"
    with pytest.raises(ValueError, match="format"):
        arena.export("xlsx", tmp_path)


def test_jsonl_export_written_in_slices_reads_as_one(make_arena, tmp_path, monkeypatch):
    """A large store's JSONL export is written a slice of rows at a time (one string per document
    would need ~10 GB at a million battles): slices of 2 rows give the lines of the whole, in order."""
    import routellm_demo.export as export_module

    arena = make_arena()
    arena.vote(answered(arena), "tie", SESSION)
    whole = arena.export("jsonl", tmp_path / "whole").read_text(encoding="utf-8")
    monkeypatch.setattr(export_module, "JSONL_ROWS_PER_WRITE", 2)
    sliced = arena.export("jsonl", tmp_path / "sliced").read_text(encoding="utf-8")
    lines = sliced.splitlines()
    assert len(lines) == 5 and sliced.endswith("\n")
    # the same rows, each exported at its own time: compare all but the export timestamp, if any
    assert [json.loads(x)["uid"] for x in lines] == [json.loads(x)["uid"] for x in whole.splitlines()]
    assert [json.loads(x) for x in lines] == [json.loads(x) for x in whole.splitlines()]


def test_exports_have_names_of_their_own_a_cap_on_kept_files_and_a_rate_limit(make_arena, tmp_path, monkeypatch):
    import routellm_demo.export as arena_module  # the export limits

    arena = make_arena()
    out = tmp_path / "exports"
    first, second = arena.export("csv", out), arena.export("csv", out)  # two visitors, the same second
    assert first != second and first.is_file() and second.is_file()
    monkeypatch.setattr(arena_module, "EXPORTS_PER_MINUTE", 100)
    for _ in range(arena_module.EXPORTS_KEPT + 3):
        arena.export("jsonl", out)
    kept = sorted(out.glob("battles-*"))
    assert len(kept) == arena_module.EXPORTS_KEPT and not list(out.glob("*.part"))
    monkeypatch.setattr(arena_module, "EXPORTS_PER_MINUTE", arena_module.EXPORTS_KEPT)
    with pytest.raises(arena_module.ExportLimitError, match="Too many exports"):
        arena.export("csv", out)
    assert sorted(out.glob("battles-*")) == kept  # refused: nothing written, nothing pruned


def test_admin_token_guards_deleting_votes(make_arena, monkeypatch):
    arena = make_arena()
    prompt = "Explain recursion to a child."
    base = sw(arena, prompt)
    battle_id = answered(arena, prompt)
    arena.vote(battle_id, arena.store.pending(battle_id)["strong_side"].upper(), SESSION)
    assert sw(arena, prompt) > base
    with pytest.raises(AdminError, match="disabled"):
        arena.delete_votes("anything")
    monkeypatch.setenv("ROUTELLM_DEMO_ADMIN_TOKEN", "s3cret-token")
    for wrong in (None, "", "s3cret", "s3cret-token2"):
        with pytest.raises(AdminError, match="Wrong admin token"):
            arena.delete_votes(wrong)
    assert len(arena.store.battles(source="arena-vote")) == 1
    assert arena.delete_votes("s3cret-token") == {"votes": 1, "pending": 1}
    assert arena.store.battles(source="arena-vote") == [] and arena.store.count_battles() == {"import:test": 4}
    assert sw(arena, prompt) == pytest.approx(base)  # the router forgot the deleted vote


def test_check_admin_never_echoes_the_token():
    with pytest.raises(AdminError) as err:
        check_admin("guess", "real-token-value")
    assert "real-token-value" not in str(err.value) and "guess" not in str(err.value)


def test_pending_table_rejects_bad_rows(make_arena):
    arena = make_arena()
    with pytest.raises(ValueError):
        arena.store.add_pending(battle_id="x", session_id="s", prompt="p", model_a="a", model_b="b", strong_side="c")
    with pytest.raises((ValueError, sqlite3.Error)):
        arena.store.db.execute("INSERT INTO arena_pending (battle_id, session_id, prompt, model_a, model_b, "
                               "strong_side, status, created_at) VALUES ('y','s','p','a','b','a','bogus','t')")


def test_one_vote_moves_a_new_pair_by_about_a_hundred_elo_and_the_board_agrees(make_arena):
    arena = make_arena()
    battle_id = arena.record_round("Which answer is better?", SESSION, answers=("one", "two"), strong_side="a")
    r = arena.vote(battle_id, "A", SESSION)
    up = r.rating_change(r.strong_model)
    assert 50 < up < 150 and r.rating_change(r.weak_model) == pytest.approx(-up)  # not +-340 as with L2 0.01
    board = {row["player"]: row["rating"] for row in arena.leaderboard("arena", n_boot=10)["rows"]}
    assert board == pytest.approx(r.ratings_after)


# -- the prompt pool (active labelling) --------------------------------------------------------------


def test_the_pool_suggests_unvoted_prompts_and_never_one_voted_on(make_arena, tmp_path):
    pool = ["What is the derivative of x^3?", "Write a limerick about a cat.", "Explain how vaccines work.",
            "Translate 'good morning' into French."]
    path = tmp_path / "pool.txt"
    path.write_text("\n".join(pool + pool[:1]) + "\n")  # a repeated prompt is one prompt
    arena = make_arena(prompt_pool=path)
    seen = {arena.suggest(1)[0] for _ in range(12)}
    assert seen <= set(pool) and len(seen) >= 2  # drawn with randomness, never outside the pool
    for prompt in pool[:3]:  # the arena's own path: a round on the prompt, then a vote
        battle_id = arena.record_round(prompt, SESSION, answers=("one", "two"), strong_side="a", trusted=None)
        arena.vote(battle_id, "A", SESSION)
    assert {arena.suggest(1)[0] for _ in range(5)} == {pool[3]}
    battle_id = arena.record_round(pool[3], SESSION, answers=("one", "two"), strong_side="a", trusted=None)
    arena.vote(battle_id, "tie", SESSION)
    with pytest.raises(UserError, match="Every prompt of the pool has a vote"):
        arena.suggest(1)
    # a restart reads the votes back from the store: still nothing to suggest
    again = Arena(arena.config, arena.store, arena.embedder, arena.routers, arena.controller)
    with pytest.raises(UserError, match="Every prompt of the pool has a vote"):
        again.suggest(1)


def test_the_pool_asks_away_from_what_the_votes_cover(make_arena, tmp_path):
    """A vote on a derivative (typed by a visitor, not from the pool) covers the pool's other derivatives:
    the suggestions go mostly to the unrelated prompts (ranked by the coverage gap, some picks uniform)."""
    calculus = ["What is the derivative of x^4?", "What is the derivative of x^5?"]
    others = ["Write a limerick about a cat.", "Explain how vaccines work.", "Translate 'good morning' into French."]
    path = tmp_path / "pool.txt"
    path.write_text("\n".join(calculus + others) + "\n")
    arena = make_arena(prompt_pool=path)
    battle_id = arena.record_round("What is the derivative of x^3?", SESSION, answers=("one", "two"),
                                   strong_side="a", trusted=None)
    arena.vote(battle_id, "A", SESSION)
    picks = [arena.suggest(1)[0] for _ in range(40)]
    assert sum(p in calculus for p in picks) <= 10  # 16 of 40 if drawn uniformly


def test_deleting_the_votes_lets_the_pool_ask_their_prompts_again(make_arena, tmp_path, monkeypatch):
    pool = ["What is the derivative of x^3?", "Write a limerick about a cat."]
    path = tmp_path / "pool.txt"
    path.write_text("\n".join(pool) + "\n")
    arena = make_arena(prompt_pool=path)
    for prompt in pool:
        battle_id = arena.record_round(prompt, SESSION, answers=("one", "two"), strong_side="a", trusted=None)
        arena.vote(battle_id, "A", SESSION)
    with pytest.raises(UserError, match="Every prompt of the pool has a vote"):
        arena.suggest(1)
    monkeypatch.setenv("ROUTELLM_DEMO_ADMIN_TOKEN", "s3cret-token")
    assert arena.delete_votes("s3cret-token")["votes"] == 2
    assert {arena.suggest(1)[0] for _ in range(12)} == set(pool)


def test_an_unreadable_pool_is_one_line_without_the_path(make_arena, tmp_path):
    arena = make_arena(prompt_pool=tmp_path / "missing.txt")
    with pytest.raises(UserError) as e:
        arena.suggest(1)
    assert "cannot be read" in e.value.public and "missing.txt" not in e.value.public
    assert "missing.txt" in arena.pool.error  # the operator's log says which file
    with pytest.raises(UserError, match="no prompt pool"):
        make_arena().suggest(1)
