"""Endpoints against the REAL embedded pair through the real ``openai`` client, and real faults:
a closed port, a server that never answers, a wrong key, an HTTP 500, an empty answer, a dead
embedded server. The two model servers start once for this module."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from routellm_demo.config import LOCAL_MODELS, ModelEndpoint, load_config
from routellm_demo.llm import (
    Completion,
    Endpoint,
    EndpointError,
    LocalServer,
    cost_usd,
    fewshot_prompt,
    make_endpoints,
)
from routellm_demo.llm.local import free_port

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The default config's strong (Gemma 3, completion) and weak (SmolLM2, chat) endpoints."""
    empty = tmp_path_factory.mktemp("cfg") / "routellm_demo.toml"
    empty.write_text("")
    config = load_config(empty, environ={"HOME": os.environ.get("HOME", "/root")})
    endpoints = make_endpoints(config, environ={})
    yield endpoints
    for endpoint in endpoints.values():
        endpoint.close()


@pytest.fixture(scope="module")
def strong(pair):
    return pair["strong"]


@pytest.fixture(scope="module")
def weak(pair):
    return pair["weak"]


def collect(stream):
    items = list(stream)
    pieces, final = items[:-1], items[-1]
    assert all(isinstance(p, str) and p for p in pieces)
    assert isinstance(final, Completion) and not any(isinstance(p, Completion) for p in pieces)
    return pieces, final


# ---- the real pair ----------------------------------------------------------------------------


def test_chat_mode_complete(weak):
    answer = weak.complete(QUESTION, max_tokens=16)
    assert answer.text and answer.model == "SmolLM2-135M-Instruct (local)"
    assert answer.usage.source == "api" and answer.usage.prompt_tokens > 5
    assert 1 <= answer.usage.completion_tokens <= 16
    assert answer.finish_reason in ("stop", "length") and answer.latency_ms > 0 and answer.ttft_ms is None
    cost = cost_usd(weak.spec, answer.usage.prompt_tokens, answer.usage.completion_tokens)
    assert cost == pytest.approx(answer.usage.total_tokens * 0.135 / 1e6)


def test_chat_mode_stream(weak):
    pieces, final = collect(weak.stream([{"role": "user", "content": "Name three colors."}], max_tokens=16))
    assert len(pieces) >= 2 and "".join(pieces).strip() == final.text
    assert final.usage.source == "tokenizer"  # llama.cpp streams no usage: counted by its tokenizer
    assert final.usage.prompt_tokens > 5 and 1 <= final.usage.completion_tokens <= 17
    assert 0 < final.ttft_ms <= final.latency_ms
    assert cost_usd(weak.spec, final.usage.prompt_tokens, final.usage.completion_tokens) > 0


def test_completion_mode_complete_is_coherent(strong):
    answer = strong.complete(QUESTION, max_tokens=16)
    assert answer.model == "Gemma 3 270M base (local)"
    assert "Paris" in answer.text and "User:" not in answer.text  # the few-shot format holds
    assert answer.usage.source == "api" and answer.usage.prompt_tokens > 100  # the few-shot header
    assert cost_usd(strong.spec, answer.usage.prompt_tokens, answer.usage.completion_tokens) == pytest.approx(
        answer.usage.total_tokens * 0.27 / 1e6)


def test_completion_mode_stream(strong):
    pieces, final = collect(strong.stream([{"role": "user", "content": "Who wrote Romeo and Juliet?"}], max_tokens=16))
    assert "Shakespeare" in final.text and "".join(pieces).strip() == final.text
    assert final.usage.source == "tokenizer" and final.usage.prompt_tokens > 100
    assert 1 <= final.usage.completion_tokens <= 17 and final.finish_reason == "stop"
    assert final.ttft_ms is not None and final.ttft_ms <= final.latency_ms


def test_completion_mode_multi_turn(strong):
    messages = [
        {"role": "user", "content": "What is the capital of Italy?"},
        {"role": "assistant", "content": "The capital of Italy is Rome."},
        {"role": "user", "content": "And of Germany?"},
    ]
    prompt = fewshot_prompt(messages)
    assert prompt.endswith("User: What is the capital of Italy?\nAssistant: The capital of Italy is Rome.\n\n"
                           "User: And of Germany?\nAssistant:")
    answer = strong.complete(messages, max_tokens=16)
    assert "Berlin" in answer.text


def test_max_tokens_capped_by_spec(pair):
    weak = pair["weak"]
    capped = Endpoint(replace(weak.spec, max_tokens=3), server=weak.server)
    answer = capped.complete([{"role": "user", "content": "Tell me a long story about dragons."}], max_tokens=500)
    assert answer.usage.completion_tokens <= 3 and answer.finish_reason == "length"


def test_parameters_checked(weak):
    with pytest.raises(TypeError, match="unsupported parameter"):
        weak.complete(QUESTION, logprobs=True)
    with pytest.raises(ValueError):
        weak.complete([])


def test_fewshot_prompt_shape():
    prompt = fewshot_prompt([{"role": "system", "content": "Answer in French."},
                             {"role": "user", "content": "Hi"}])
    assert "follows these instructions: Answer in French." in prompt.splitlines()[0]
    assert prompt.endswith("\n\nUser: Hi\nAssistant:") and prompt.count("User:") == 5


# ---- real faults ------------------------------------------------------------------------------


def remote(url: str, **kwargs) -> ModelEndpoint:
    return ModelEndpoint(name="Remote Model", model="m", base_url=url, **kwargs)


def test_closed_port_is_a_connection_error():
    endpoint = Endpoint(remote(f"http://127.0.0.1:{free_port()}/v1", timeout=5))
    with pytest.raises(EndpointError) as info:
        endpoint.complete(QUESTION)
    assert info.value.kind == "connection" and info.value.model == "Remote Model" and info.value.status is None
    assert str(info.value).startswith("Remote Model: cannot connect to http://127.0.0.1:")
    with pytest.raises(EndpointError, match="cannot connect"):
        list(endpoint.stream(QUESTION))


@pytest.fixture
def hanging_server():
    """Accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    held, stop = [], threading.Event()

    def accept():
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    sock.close()


def test_hanging_server_times_out(hanging_server):
    endpoint = Endpoint(remote(hanging_server, timeout=0.5))
    for call in (lambda: endpoint.complete(QUESTION), lambda: list(endpoint.stream(QUESTION))):
        with pytest.raises(EndpointError) as info:
            call()
        assert info.value.kind == "timeout" and "no answer within 0.5s" in str(info.value)


def fake_openai_server(status: int, body: dict):
    """A FAKE OpenAI-compatible server answering every POST with ``status`` and ``body``."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            request_body = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(request_body)))
            self.end_headers()
            self.wfile.write(request_body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


def test_http_500_from_a_fake_server():
    server, url = fake_openai_server(500, {"error": {"message": "fake upstream failure", "type": "server_error"}})
    try:
        with pytest.raises(EndpointError) as info:
            Endpoint(remote(url, timeout=5)).complete(QUESTION)
        assert (info.value.kind, info.value.status) == ("http", 500)
        assert str(info.value).startswith("Remote Model: HTTP 500 from") and "fake upstream failure" in str(info.value)
    finally:
        server.shutdown()


def chat_body(content: str, usage: bool = True) -> dict:
    body = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}
    if usage:
        body["usage"] = {"prompt_tokens": 9, "completion_tokens": 0, "total_tokens": 9}
    return body


def test_empty_answer_from_a_fake_server():
    server, url = fake_openai_server(200, chat_body("  "))
    try:
        with pytest.raises(EndpointError) as info:
            Endpoint(remote(url, timeout=5)).complete(QUESTION)
        assert info.value.kind == "empty" and "empty answer" in str(info.value)
    finally:
        server.shutdown()


def test_missing_usage_is_estimated_from_a_fake_server():
    server, url = fake_openai_server(200, chat_body("Paris is the capital of France.", usage=False))
    try:
        answer = Endpoint(remote(url, timeout=5)).complete(QUESTION)
        assert answer.text == "Paris is the capital of France."
        assert answer.usage.source == "estimate" and answer.usage.completion_tokens == 8
    finally:
        server.shutdown()


def test_wrong_key_against_a_real_local_server(tmp_path):
    secret = "right-key-0123456789"
    spec = replace(LOCAL_MODELS["smollm2"], api_key_env="TEST_LOCAL_KEY")
    with LocalServer(spec, cache_dir=tmp_path, api_key=secret) as server:
        with open(f"/proc/{server.pid}/cmdline", "rb") as f:
            assert secret.encode() not in f.read()  # not on the command line, where ps shows it
        wrong = Endpoint(spec, server=server, environ={"TEST_LOCAL_KEY": "wrong-key-9876543210"})
        with pytest.raises(EndpointError) as info:
            wrong.complete(QUESTION, max_tokens=4)
        assert (info.value.kind, info.value.status) == ("auth", 401)
        assert "check TEST_LOCAL_KEY" in str(info.value)
        assert "wrong-key" not in str(info.value) and secret not in str(info.value)

        with pytest.raises(EndpointError, match="set TEST_LOCAL_KEY") as info:
            Endpoint(spec, server=server, environ={}).complete(QUESTION, max_tokens=4)
        assert info.value.kind == "auth"

        right = Endpoint(spec, server=server, environ={"TEST_LOCAL_KEY": secret})
        assert right.complete(QUESTION, max_tokens=4).text
        _, final = collect(right.stream(QUESTION, max_tokens=4))  # the tokenizer call sends the key too
        assert final.usage.source == "tokenizer"


def test_dead_embedded_server_restarted_once(tmp_path):
    endpoint = Endpoint(LOCAL_MODELS["smollm2"], server=LocalServer(LOCAL_MODELS["smollm2"], cache_dir=tmp_path))
    try:
        assert endpoint.complete(QUESTION, max_tokens=4).text
        first = endpoint.server.pid
        os.kill(first, signal.SIGKILL)
        assert not endpoint.server.is_alive(grace=10)
        assert endpoint.complete(QUESTION, max_tokens=4).text  # restarted behind the scenes
        assert endpoint.server.pid != first and endpoint.server.starts == 2

        os.kill(endpoint.server.pid, signal.SIGKILL)
        with pytest.raises(EndpointError) as info:
            endpoint.complete(QUESTION, max_tokens=4)
        assert info.value.kind == "connection" and "died again" in str(info.value)
    finally:
        endpoint.close()


def test_concurrent_streams_both_finish(weak):
    """Two users at once: the second request must queue, not cut the first stream short
    (llama_cpp.server interrupts a running stream by default)."""
    results, errors = [], []

    def run(prompt):
        try:
            results.append(collect(weak.stream([{"role": "user", "content": prompt}], max_tokens=24))[1])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(p,)) for p in ("Describe the sea.", "Describe a forest.")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(results) == 2
    assert all(r.finish_reason in ("stop", "length") for r in results), [r.finish_reason for r in results]


# -- the context window (n_ctx 2048 here): long conversations are trimmed, not refused by llama.cpp

FILLER = "The quick brown fox jumps over the lazy dog while the river runs past the old mill. " * 36  # ~700 tokens


def long_conversation(turns: int = 4) -> list[dict]:
    msgs = [{"role": "system", "content": "Answer briefly."}]
    for i in range(turns):
        msgs += [{"role": "user", "content": f"Part {i}: {FILLER}"}, {"role": "assistant", "content": f"Noted part {i}."}]
    return msgs + [{"role": "user", "content": "Which animal jumps? One word."}]


@pytest.mark.parametrize("role", ["strong", "weak"])
def test_a_conversation_longer_than_the_context_drops_its_oldest_turns(pair, role):
    endpoint = pair[role]
    msgs = long_conversation()
    final = [x for x in endpoint.stream(msgs, max_tokens=16) if isinstance(x, Completion)][0]
    n_ctx = endpoint.server.n_ctx
    assert final.text and final.dropped_messages >= 4 and final.dropped_messages % 2 == 0  # whole turns
    assert final.usage.prompt_tokens + 16 <= n_ctx
    kept, _, _ = endpoint._fit_context(msgs, {"max_tokens": 16})
    assert kept[0]["role"] == "system" and kept[1]["role"] == "user" and kept[-1] == msgs[-1]
    assert endpoint.complete(QUESTION, max_tokens=8).dropped_messages == 0  # short ones are left alone


@pytest.mark.parametrize("role", ["strong", "weak"])
def test_one_message_longer_than_the_context_is_refused_with_the_reason(pair, role):
    with pytest.raises(EndpointError, match=r"the model's context window holds 2,048 .*shorten it") as e:
        pair[role].complete([{"role": "user", "content": FILLER * 4}], max_tokens=16)
    assert e.value.kind == "too_long"


def test_a_long_last_message_gets_a_shorter_answer_rather_than_an_error(pair):
    weak = pair["weak"]
    # ~1,850 tokens: it fits the 2,048-token window, but not with the spec's full answer length
    msgs = [{"role": "user", "content": (FILLER * 3)[: int(len(FILLER) * 2.85)] + " Now say hello."}]
    _, dropped, params = weak._fit_context(msgs, {})
    room = weak.server.n_ctx - weak._prompt_tokens(msgs)
    assert dropped == 0 and 32 <= params["max_tokens"] < weak.spec.max_tokens and params["max_tokens"] < room
    assert weak.complete(msgs).text
