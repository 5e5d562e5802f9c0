"""A streamed turn's object (pieces, then one result) and its OpenAI shape, without models: the
producers here are plain generators written in the test, standing in for the model stream."""

import json

import pytest

from routellm_demo import openai_format
from routellm_demo.controller import Answer, Decision, TextPiece
from routellm_demo.response import Response, Streamed


def producer(pieces, result, log):
    try:
        for p in pieces:
            log.append(f"gave {p}")
            yield p
        return result
    finally:
        log.append("closed")


def test_iterating_gives_the_pieces_and_result_gives_what_the_producer_returned():
    log = []
    s = Streamed(producer(["a", "b"], 42, log))
    assert list(s) == ["a", "b"] and s.result() == 42 and s.done
    assert s.pieces == ["a", "b"] and list(s) == []


def test_start_runs_to_the_first_piece_and_the_next_iteration_still_yields_it():
    log = []
    s = Streamed(producer(["a", "b", "c"], None, log)).start()
    assert log == ["gave a"]  # ran up to the first piece, no further
    it = iter(s)
    assert next(it) == "a"
    assert list(s) == ["b", "c"]  # another loop continues where the first stopped


def test_an_error_before_any_piece_surfaces_at_start():
    def failing():
        raise ValueError("upstream down")
        yield  # pragma: no cover

    with pytest.raises(ValueError, match="upstream down"):
        Streamed(failing()).start()


def test_close_stops_the_producer_early():
    log = []
    with Streamed(producer(["a", "b"], None, log)) as s:
        next(iter(s))
    assert log == ["gave a", "closed"]


def decision(**kw):
    d = dict(router="sw_ranking", threshold=0.3, score=0.42, role="strong", model="Strong", routing_ms=1.234,
             prompt_sha256="0" * 64)
    d.update(kw)
    return Decision(**d)


def answer(d, model, text="Hello there"):
    return Answer(text=text, decision=d, model=model, role="weak", prompt_tokens=3, completion_tokens=2,
                  usage_source="api", cost=0.001, strong_cost=0.01, latency_ms=5.0, ttft_ms=1.0,
                  fallback_from="Strong" if model != d.model else None)


def turn(d, pieces, final):
    def run():
        for p in pieces:
            yield p
        return final
    return Response(d, run())


def test_chunks_name_the_model_that_wrote_the_text_from_the_first_chunk():
    d = decision()
    r = turn(d, [TextPiece("Hello ", "Weak"), TextPiece("there", "Weak")], answer(d, "Weak"))
    chunks = list(openai_format.chunks(r, include_usage=True))
    assert {c["model"] for c in chunks} == {"Weak"}  # the fallback model wrote it: every chunk says so
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "Hello there"
    finish = chunks[-2]
    assert finish["choices"][0]["finish_reason"] == "stop" and finish["routing"]["fallback_from"] == "Strong"
    # a fallback is not a routing saving: the payload says so, as the app's card and totals do
    assert finish["routing"]["saved_usd"] == 0.0 and finish["routing"]["routed_on"] == "last turn"
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_a_bypassed_route_has_no_score_and_serialises_as_null():
    d = decision(router="none", threshold=None, score=None, role="weak", model="Weak", routed_on=None)
    r = turn(d, [TextPiece("Hello there", "Weak")], answer(d, "Weak"))
    body = openai_format.completion(r)
    assert body["routing"]["score"] is None and body["routing"]["threshold"] is None
    assert body["routing"]["routed_on"] is None and body["routing"]["saved_usd"] == pytest.approx(0.009)
    assert json.loads(json.dumps(body, allow_nan=False))["choices"][0]["message"]["content"] == "Hello there"
