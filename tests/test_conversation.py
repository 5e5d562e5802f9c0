"""Routing on the conversation (issue #16): the context rule, its config setting, the controller's
decision (Decision.routed_on), and MT-Bench's second turns read as conversations for the eval."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest

from routellm_demo.battles import Battles
from routellm_demo.config import ConfigError, load_config
from routellm_demo.controller import Controller, sha256
from routellm_demo.conversation import (
    CONTEXT_DECAY, CONTEXT_TURNS, combine, earlier_user_turns, routed_on, routing_vectors, used_context,
)
from routellm_demo.router_set import RouterSet
from routellm_demo.routers.sw_ranking import SWRankingRouter
from routellm_demo.store import Store

HOME = {"HOME": "/home/tester"}


class CountingEmbedder:
    """Unit vectors drawn from each text's hash; counts what it was asked to embed."""

    cache_key = "hashing-test-double"

    def __init__(self, dim: int = 384):
        self.dim = dim
        self.calls: list[list[str]] = []

    def load(self):
        pass

    def embed(self, texts, *, progress=False):
        texts = list(texts)
        self.calls.append(texts)
        rows = [np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)).normal(size=self.dim)
                for t in texts]
        x = np.asarray(rows, dtype=np.float32).reshape(len(rows), self.dim)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


# --- the rule --------------------------------------------------------------------------------------

def test_combine_is_the_unit_sum_of_the_last_turn_and_the_weighted_context():
    rng = np.random.default_rng(0)
    last, a, b = (unit(rng.normal(size=16)) for _ in range(3))
    got = combine(last, np.stack([a, b]), weight=1.0)
    expected = unit(last + unit(CONTEXT_DECAY * a + b))  # b is the nearer earlier turn: it weighs 1
    assert got.dtype == np.float32 and np.linalg.norm(got) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(combine(last, np.stack([a, b]), weight=0.0), last, atol=1e-6)
    np.testing.assert_allclose(combine(last, np.zeros((0, 16))), last, atol=1e-6)
    # a heavier context pulls the vector towards it
    assert combine(last, a[None], weight=3.0) @ a > combine(last, a[None], weight=1.0) @ a > last @ a
    with pytest.raises(ValueError):
        combine(last, a[None], weight=-1.0)


def test_earlier_user_turns_and_what_each_mode_reads():
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Prove Fermat's little theorem."},
            {"role": "assistant", "content": "Proof: ..."}, {"role": "user", "content": "  "},
            {"role": "assistant", "content": "?"}, {"role": "user", "content": "why?"}]
    assert earlier_user_turns(msgs) == ["Prove Fermat's little theorem."]  # no system, assistant or blank turn
    assert earlier_user_turns(msgs[:2]) == []
    many = [f"turn {i}" for i in range(CONTEXT_TURNS + 3)]
    assert used_context("context", many) == tuple(many[-CONTEXT_TURNS:])  # the nearest ones
    assert used_context("last_turn", many) == ()
    assert routed_on("context", many) == "last turn + context"
    assert routed_on("context", []) == routed_on("last_turn", many) == "last turn"
    with pytest.raises(ValueError, match="routing context must be one of last_turn, context"):
        used_context("everything", many)


def test_routing_vectors_embed_each_text_once_and_leave_last_turn_mode_as_it_was():
    emb = CountingEmbedder(dim=8)
    prompts, contexts = ["why?", "why?", "hello"], [("proof",), ("proof", "why?"), ()]
    vectors = routing_vectors(emb, prompts, contexts, "context")
    assert emb.calls == [["why?", "hello", "proof"]]  # one batch, each distinct text once
    e = dict(zip(["why?", "hello", "proof"], emb.embed(["why?", "hello", "proof"])))
    np.testing.assert_allclose(vectors[0], unit(e["why?"] + e["proof"]), atol=1e-6)
    np.testing.assert_allclose(vectors[2], e["hello"], atol=0)  # no context: the embedding itself
    plain = routing_vectors(emb, prompts, contexts, "last_turn")
    np.testing.assert_array_equal(plain, emb.embed(prompts))


@pytest.fixture(scope="module")
def minilm():
    from routellm_demo.embeddings import Embedder

    return Embedder()


def test_with_the_real_embedder_a_follow_up_routes_like_its_conversation(minilm):
    """sw_ranking taught that proofs and code need the strong model and small talk does not: "why?"
    after a proof then scores above "why?" after small talk, in context mode only."""
    hard = ["Prove that there are infinitely many primes.", "Prove that the square root of 2 is irrational.",
            "Write a Python function that returns the longest increasing subsequence in O(n log n).",
            "Prove that every bounded monotone sequence of real numbers converges."]
    easy = ["Hi! How are you today?", "Good morning, nice to meet you.", "Thanks, have a nice day!",
            "Hello there, what's up?"]
    prompts = hard + easy
    battles = Battles(["strong", "weak"], np.zeros(8), np.ones(8), np.array([1.0] * 4 + [0.0] * 4),
                      minilm.embed(prompts), prompts=prompts)
    router = SWRankingRouter(text_weight=0.0).fit(battles)

    def score(mode, context):
        return float(router.win_probability(routing_vectors(minilm, ["why?"], [context], mode), ["why?"])[0])

    after_proof = score("context", ("Prove that there are infinitely many prime numbers of the form 4k + 3.",))
    after_chat = score("context", ("Hey, how's it going?",))
    assert after_proof > score("last_turn", ()) > after_chat
    assert score("last_turn", ("Prove that ...",)) == score("last_turn", ())


# --- the setting -----------------------------------------------------------------------------------

def test_routing_context_setting(tmp_path):
    assert load_config(environ=HOME).routing_context == "last_turn"  # the measured default (README)
    assert load_config(environ=dict(HOME, ROUTELLM_DEMO_ROUTING_CONTEXT="context")).routing_context == "context"
    path = tmp_path / "c.toml"
    path.write_text('[routing]\ncontext = "context"\n')
    assert load_config(path, environ=HOME).routing_context == "context"
    path.write_text('[routing]\ncontext = "all"\n')
    with pytest.raises(ConfigError, match=r"^routing.context must be one of last_turn, context, got 'all' "
                                          r"\(from c.toml\)$"):
        load_config(path, environ=HOME)


# --- the controller --------------------------------------------------------------------------------

class NoEndpoint:
    def complete(self, *a, **k):
        raise AssertionError("no model is called in these tests")

    stream = complete


def controller(tmp_path, mode: str, embedder) -> Controller:
    cfg = replace(load_config(environ=HOME), db_path=tmp_path / f"{mode}.db", checkpoint_dir=tmp_path / "none",
                  routing_context=mode)
    store = Store(cfg.db_path)
    store.add_battles([dict(prompt=f"question {i}", model_a="big", model_b="small",
                            winner="model_a" if i % 2 else "model_b", strong_side="a", source="test")
                       for i in range(6)])
    return Controller(cfg, store, embedder, RouterSet(store, embedder, checkpoint_dir=cfg.checkpoint_dir,
                                                      router_params={"sw_ranking": {"text_weight": 0.0}}),
                      endpoints={"strong": NoEndpoint(), "weak": NoEndpoint()})


def test_decide_reads_the_context_only_in_context_mode(tmp_path):
    emb = CountingEmbedder()
    plain, ctx = controller(tmp_path, "last_turn", emb), controller(tmp_path, "context", emb)
    context = ["question 3"]
    alone = plain.decide("why?", "sw_ranking", 0.5)
    ignored = plain.decide("why?", "sw_ranking", 0.5, context=context)
    read = ctx.decide("why?", "sw_ranking", 0.5, context=context)
    assert alone.routed_on == ignored.routed_on == "last turn" and ignored.score == alone.score
    assert read.routed_on == "last turn + context" and read.score != pytest.approx(alone.score, abs=1e-9)
    assert read.prompt_sha256 == alone.prompt_sha256 == sha256("why?")  # the log keeps the last turn's hash
    first = ctx.decide("why?", "sw_ranking", 0.5)  # a first turn has no context to read
    assert first.routed_on == "last turn" and first.score == alone.score
    assert read.to_dict()["routed_on"] == "last turn + context"
    for c in (plain, ctx):
        c.store.close()


def test_respond_routes_on_the_earlier_user_turns(tmp_path):
    emb = CountingEmbedder()
    ctl = controller(tmp_path, "context", emb)
    msgs = [{"role": "user", "content": "question 3"}, {"role": "assistant", "content": "an answer"},
            {"role": "user", "content": "why?"}]
    response = ctl.respond(msgs, router="sw_ranking", threshold=0.5)
    assert response.decision.routed_on == "last turn + context"
    assert response.decision.score == ctl.decide("why?", "sw_ranking", 0.5, context=["question 3"]).score
    assert "an answer" not in emb.calls[-1]  # assistant turns are never embedded for routing
    bypass = ctl.respond(msgs, model_role="weak")
    assert bypass.decision.routed_on is None and bypass.decision.router == "none"
    ctl.store.close()
