"""Vote replay: gold labels become arena votes through the app's own path (Arena.record_round + the
unchanged Arena.vote), and the router's scores move the voted way.

A synthetic benchmark (two kinds of prompt: word problems the strong model wins, greetings both get
right) shows the learning clearly and runs everywhere; one small real MMLU subject from
../shared/data/routellm checks the real files load and replay the same way (skipped if absent).
"""

import argparse
import csv
import random
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from routellm_demo.arena import Arena, VoteError
from routellm_demo.config import load_config
from routellm_demo.embeddings import Embedder
from routellm_demo.importers import STRONG_MODEL, WEAK_MODEL
from routellm_demo.replay import (CURVE_COLUMNS, ReplayError, checkpoints, load_domain, outcome_for, register,
                                  simulate_votes)
from routellm_demo.store import ARENA_SOURCE, Store
from routellm_demo.router_set import RouterSet

NAMES = ["Alice", "Bob", "Chen", "Dara", "Emil", "Fatima", "Goran", "Hana", "Ivan", "Jun", "Kofi", "Lena"]
LANGUAGES = ["French", "Spanish", "German", "Italian", "Japanese"]


def synthetic_gsm8k(root, n_per_kind: int = 60, seed: int = 0):
    """A RouteLLM-layout folder whose gsm8k file holds two kinds of prompt with opposite labels."""
    rng = random.Random(seed)
    rows = []
    for i in range(n_per_kind):
        a, b, c = rng.randint(3, 90), rng.randint(2, 9), rng.randint(2, 12)
        rows.append({"prompt": f"A farmer has {a} apples and buys {b} bags with {c} apples in each bag. "
                               f"He then sells {i % 7 + 1} apples. How many apples does he have now?",
                     WEAK_MODEL: "False" if rng.random() < 0.8 else "True", STRONG_MODEL: "True"})
        name, lang = NAMES[i % len(NAMES)], LANGUAGES[i % len(LANGUAGES)]
        rows.append({"prompt": f"Please write a short, friendly greeting for my friend {name} in {lang}. (#{i})",
                     WEAK_MODEL: "True", STRONG_MODEL: "True" if rng.random() < 0.8 else "False"})
    folder = root / "routellm" / "gsm8k"
    folder.mkdir(parents=True)
    pd.DataFrame(rows, columns=["prompt", WEAK_MODEL, STRONG_MODEL]).to_csv(folder / "gsm8k_responses.csv", index=False)
    return root / "routellm"


@pytest.fixture(scope="module")
def model_loaded():
    Embedder().embed(["load the embedding model once for the module"])


@pytest.fixture()
def vote_spy(monkeypatch):
    """Counts Arena.vote calls and keeps their results, while the real method does the work."""
    results = []
    real = Arena.vote

    def spy(self, battle_id, outcome, session_id):
        result = real(self, battle_id, outcome, session_id)
        results.append(result)
        return result

    monkeypatch.setattr(Arena, "vote", spy)
    return results


def check_vote_path(store_path, results, votes):
    """Every replayed vote went through Arena.vote into store.record_vote, and moved sw the voted way."""
    assert len(results) == votes
    with Store(store_path) as store:
        rows = store.battles(source=ARENA_SOURCE)
        assert len(rows) == votes and all(r["uid"].startswith("arena:") for r in rows)
        assert store.count_pending() == {"voted": votes}
        assert {r["id"] for r in rows} == {r.battle_row_id for r in results}
        for r in rows:
            assert store.pending(r["meta"]["arena_battle_id"])["battle_row_id"] == r["id"]
            assert {r["model_a"], r["model_b"]} == {STRONG_MODEL, WEAK_MODEL}
        by_id = {r["id"]: r for r in rows}
    moved = []
    for res in results:
        assert by_id[res.battle_row_id]["meta"]["sw_before"] == pytest.approx(res.sw_before)
        if res.winner_role is None:
            continue
        toward = res.sw_after - res.sw_before if res.winner_role == "strong" else res.sw_before - res.sw_after
        leaning = res.sw_before if res.winner_role == "strong" else 1.0 - res.sw_before
        moved.append(toward > 0)
        # RouteLLM's weights are normalised by the largest similarity, which a vote on the prompt itself
        # raises to 1: every other battle then weighs less and the L2 prior pulls a little harder. So a
        # vote can nudge a score that already leans its way by a hair the other way; never more.
        assert toward > 0 or (toward > -0.02 and leaning > 0.75), (res.winner_role, res.sw_before, res.sw_after)
    assert np.mean(moved) > 0.5


# -- the pieces ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("strong,weak,side,correctness,expected", [
    (1, 0, "a", True, "A"), (1, 0, "b", True, "B"), (0, 1, "a", True, "B"), (0, 1, "b", True, "A"),
    (1, 1, "a", True, "tie"), (0, 0, "b", True, "bothbad"), (7.5, 7.5, "a", False, "tie"), (9, 4, "b", False, "B"),
])
def test_gold_label_becomes_the_vote_a_knowing_visitor_would_cast(strong, weak, side, correctness, expected):
    assert outcome_for(strong, weak, side, correctness=correctness) == expected


def test_checkpoints_include_zero_and_the_last_vote():
    assert checkpoints(20, 10) == [0, 10, 20]
    assert checkpoints(25, 10) == [0, 10, 20, 25]


def test_record_round_leaves_a_votable_round_exactly_like_a_finished_stream(tmp_path, model_loaded):
    cfg = replace(load_config(environ={}), db_path=tmp_path / "a.db", checkpoint_dir=tmp_path / "none")
    store = Store(cfg.db_path)
    emb = Embedder(store)
    arena = Arena(cfg, store, emb, RouterSet(store, emb, checkpoint_dir=cfg.checkpoint_dir), None,
                  rng=random.Random(0))
    battle_id = arena.record_round("What is 2 + 2?", "s1", answers=("four", "4"), strong_side="b")
    row = store.pending(battle_id)
    assert (row["status"], row["answer_a"], row["answer_b"], row["strong_side"]) == ("answered", "four", "4", "b")
    assert (row["model_a"], row["model_b"]) == (cfg.weak.name, cfg.strong.name)
    with pytest.raises(VoteError) as err:
        arena.vote(battle_id, "B", "someone-else")
    assert err.value.reason == "other_session"
    result = arena.vote(battle_id, "B", "s1")
    assert result.winner_role == "strong" and result.sw_after > result.sw_before
    assert store.battle(result.battle_row_id)["meta"]["sw_before"] == pytest.approx(result.sw_before)
    with pytest.raises(ValueError):
        arena.record_round("What is 2 + 2?", "s1", answers=("only one",), strong_side="a")
    with pytest.raises(ValueError):
        arena.record_round("What is 2 + 2?", "s1", answers=("x", "y"), strong_side="left")
    store.close()


def test_register_adds_the_subcommand_and_keeps_a_db_given_before_it():
    parser = argparse.ArgumentParser()
    parser.add_argument("--db")
    register(parser.add_subparsers(dest="command"))
    common = ["simulate-votes", "--data-dir", "d", "--benchmark", "mmlu", "--subject", "anatomy", "--out", "o"]
    args = parser.parse_args(["--db", "outer.db", *common])
    assert args.db == "outer.db" and args.votes == 200 and args.every == 10 and args.router == "sw_ranking"
    assert parser.parse_args([*common, "--db", "inner.db", "--seed", "3"]).db == "inner.db"
    assert parser.parse_args(common).db is None
    assert parser.parse_args(common).sw_params is None
    assert parser.parse_args([*common, "--sw-params", '{"preset": "smooth"}']).sw_params == {"preset": "smooth"}
    for bad in ("{base: 3}", "[3]"):
        with pytest.raises(SystemExit):
            parser.parse_args([*common, "--sw-params", bad])


# -- whole replays ---------------------------------------------------------------------------------------


def test_replay_through_the_arena_teaches_sw_ranking_the_voted_way(tmp_path, model_loaded, vote_spy):
    data = synthetic_gsm8k(tmp_path)
    out = tmp_path / "out"
    result = simulate_votes(data, "gsm8k", out, votes=60, every=20, seed=1, cache_db=None, progress=False)

    check_vote_path(result.store_path, vote_spy, 60)
    apgr = [r["apgr"] for r in result.rows]
    assert [r["votes"] for r in result.rows] == [0, 20, 40, 60]
    assert [r["n_eval"] for r in result.rows] == [120, 100, 80, 60]
    assert apgr[0] == pytest.approx(0.5)  # a fresh store: sw_ranking knows nothing, every score is equal
    assert apgr[-1] > 0.65 and result.rows[-1]["cpt50"] < 45.0  # it learnt which kind of prompt needs strong
    with open(out / "curve.csv") as f:
        header = next(csv.reader(f))
    assert tuple(header) == CURVE_COLUMNS
    assert (out / "learning_curve.png").stat().st_size > 10_000
    assert result.summary["prequential"]["scored_votes"] > 0


def test_replay_scores_the_replayed_routers_own_prequential_accuracy(tmp_path, model_loaded):
    """The arena records the replayed router's score before each vote (the app records its own router's), so
    the summary's prequential accuracy is that router's, not sw_ranking's whatever --router said."""
    data = synthetic_gsm8k(tmp_path, n_per_kind=15)
    result = simulate_votes(data, "gsm8k", tmp_path / "out", votes=20, every=10, router="random", seed=3,
                            cache_db=None, progress=False)
    preq = result.summary["prequential"]
    assert preq["router"] == "random"
    assert preq["scored_votes"] + preq["ties"] == 20 and preq["unscored"] == 0


def test_replay_refuses_a_store_that_already_holds_the_domain(tmp_path, model_loaded):
    data = synthetic_gsm8k(tmp_path)
    domain = load_domain(data, "gsm8k")
    db = tmp_path / "has-it.db"
    with Store(db) as store:
        store.add_battle(prompt=domain.prompts[3], model_a=STRONG_MODEL, model_b=WEAK_MODEL, winner="model_a",
                         source="import:gsm8k", strong_side="a")
    with pytest.raises(ReplayError, match="already holds 1 battle"):
        simulate_votes(data, "gsm8k", tmp_path / "out", votes=10, every=5, db=db, cache_db=None, progress=False)


@pytest.mark.slow
def test_replay_on_a_real_mmlu_subject(tmp_path, shared_routellm, model_loaded, vote_spy):
    domain = load_domain(shared_routellm, "mmlu", "college_computer_science")
    assert len(domain) >= 90 and set(map(str, domain.groups)) == {"mmlu:college_computer_science"}
    result = simulate_votes(shared_routellm, "mmlu", tmp_path / "out", subject="college_computer_science",
                            votes=40, every=20, seed=0, cache_db=tmp_path / "cache.db", progress=False)
    check_vote_path(result.store_path, vote_spy, 40)
    assert result.rows[0]["apgr"] == pytest.approx(0.5)
    assert all(np.isfinite(r["apgr"]) for r in result.rows) and result.rows[-1]["n_eval"] == len(domain) - 40
    with pytest.raises(ReplayError, match="no MMLU subject"):
        simulate_votes(shared_routellm, "mmlu", tmp_path / "x", subject="astrology", votes=5, cache_db=None,
                       progress=False)


def test_replay_uses_the_sw_params_given_and_each_vote_moves_the_voted_way(tmp_path, model_loaded, vote_spy):
    """--sw-params reaches the arena's router (the same RouterSet.from_config path as the app); with the
    fixed kernel ("monotone") no vote moves its prompt's score against it."""
    data = synthetic_gsm8k(tmp_path, n_per_kind=20)
    result = simulate_votes(data, "gsm8k", tmp_path / "out", votes=20, every=10, seed=2, cache_db=None,
                            progress=False, sw_params={"preset": "monotone"})
    assert result.summary["sw_params"] == {"base": 10.0, "scale": 10.0, "normalize": "one", "text_weight": 0.3,
                                           "vote_weight": 30.0}
    assert len(vote_spy) == 20
    for res in vote_spy:
        if res.winner_role is not None:
            toward = res.sw_after - res.sw_before if res.winner_role == "strong" else res.sw_before - res.sw_after
            assert toward >= -1e-9, (res.winner_role, res.sw_before, res.sw_after)
    with pytest.raises(ReplayError, match="sw_ranking.normalize must be one of"):
        simulate_votes(data, "gsm8k", tmp_path / "bad", votes=5, cache_db=None, progress=False,
                       sw_params={"normalize": "cosine"})
