"""The OpenAI-compatible server, running for real on 127.0.0.1 over the embedded local pair, driven
by the real ``openai`` client: routed completions, streaming, the model field, usage, every error."""

import socket
import threading
import time
from dataclasses import replace

import httpx
import openai
import pytest
import uvicorn

from routellm_demo.config import ModelEndpoint, load_config
from routellm_demo.llm.local import free_port
from routellm_demo.runtime import build_runtime
from routellm_demo.server import create_app

pytestmark = pytest.mark.llm
TOKEN = "test-token-123"
MSG = [{"role": "user", "content": "Name a colour."}]


class ServerThread:
    """uvicorn in a thread, stopped at the end of the module."""

    def __init__(self, app):
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            assert time.time() < deadline, "server did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def hanging_upstream():
    """A fake upstream, for a fault we cannot cause otherwise: it accepts and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    cfg = replace(load_config(environ={}), db_path=tmp_path_factory.mktemp("srv") / "s.db", router="elo",
                  checkpoint_dir=tmp_path_factory.mktemp("ckpt"), seed=False)
    rt = build_runtime(cfg)
    with ServerThread(create_app(rt, api_token=TOKEN)) as url:
        yield url, rt
    rt.close()


@pytest.fixture(scope="module")
def client(base_url):
    return openai.OpenAI(base_url=base_url[0] + "/v1", api_key=TOKEN, max_retries=0, timeout=120)


def test_routed_completion_names_the_model_and_fills_usage(client, base_url):
    rt = base_url[1]
    r = client.chat.completions.create(model="router-elo-0.0", messages=MSG, max_tokens=10)
    assert r.model == rt.config.strong.name
    assert r.choices[0].message.content.strip()
    assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 10
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    w = client.chat.completions.create(model="router-elo-1", messages=MSG, max_tokens=10, temperature=0, seed=3)
    assert w.model == rt.config.weak.name


def test_streaming_ends_with_the_model_and_usage(client, base_url):
    rt = base_url[1]
    stream = client.chat.completions.create(model="router-elo-1.0", messages=MSG, max_tokens=10, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert {c.model for c in chunks} == {rt.config.weak.name}
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_configured_model_name_bypasses_routing(client, base_url):
    rt = base_url[1]
    r = client.chat.completions.create(model=rt.config.weak.name, messages=MSG, max_tokens=5)
    assert r.model == rt.config.weak.name
    routing = r.model_extra["routing"]
    assert routing["router"] == "none" and routing["score"] is None and routing["threshold"] is None


def test_a_budget_model_name_routes_in_budget_mode(client, base_url):
    r = client.chat.completions.create(model="router-random-budget30", messages=MSG, max_tokens=5)
    routing = r.model_extra["routing"]
    assert routing["budget"] == 0.3 and 0.0 <= routing["threshold"] <= 1.0
    row = base_url[1].store.decisions(limit=1)[0]
    assert row["budget"] == 0.3 and row["router"] == "random"  # the next budget request reads it back


def test_a_cost_model_name_routes_on_the_share_that_costs_it(client, base_url):
    rt = base_url[1]
    prices = rt.controller.cost_budget(1e9)  # more than everything strong costs: all strong
    assert prices.share == 1.0 and prices.strong_per_1k > prices.weak_per_1k > 0
    midway = float(f"{(prices.strong_per_1k + prices.weak_per_1k) / 2:.6g}")  # USD per 1,000 requests
    r = client.chat.completions.create(model=f"router-random-cost{midway:g}", messages=MSG, max_tokens=5)
    routing = r.model_extra["routing"]
    assert routing["cost_budget_usd_per_1k"] == midway and routing["budget"] == pytest.approx(0.5, abs=0.01)
    with pytest.raises(openai.BadRequestError, match="below the weak model's own cost"):
        client.chat.completions.create(model="router-random-cost0.000001", messages=MSG, max_tokens=5)


def test_requests_land_in_the_shared_routing_log(client, base_url):
    rt = base_url[1]
    before = len(rt.store.decisions())
    client.chat.completions.create(model="router-random-0.5", messages=MSG, max_tokens=5)
    rows = rt.store.decisions()
    assert len(rows) == before + 1 and rows[0]["source"] == "server" and rows[0]["router"] == "random"


def test_models_and_health(client, base_url):
    ids = [m.id for m in client.models.list()]
    assert any(i.startswith("router-sw_ranking-") for i in ids) and any(i.startswith("router-mf-") for i in ids)
    assert base_url[1].config.strong.name in ids
    assert httpx.get(base_url[0] + "/health").json()["status"] == "ok"


@pytest.mark.parametrize("model, messages, status, text", [
    ("router-bert-0.5", MSG, 400, "unknown router"),
    ("router-mf-1.5", MSG, 400, "outside [0, 1]"),
    ("gpt-17", MSG, 400, "not a router model"),
    ("router-elo-0.5", [{"role": "user"}], 400, "empty"),
    ("router-elo-0.5", "not a list", 400, "non-empty list"),
    ("router-elo-0.5", [{"content": "no role"}], 400, "'role'"),
])
def test_bad_requests_get_openai_shaped_400s(client, model, messages, status, text):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model, messages=messages, max_tokens=5)
    assert e.value.status_code == status
    assert text in e.value.body["message"]


def test_a_message_longer_than_every_context_window_is_400_context_length_exceeded(client, base_url):
    long = "The quick brown fox jumps over the lazy dog. " * 300  # ~3,000 tokens; both models hold 2,048
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="router-elo-0.5", messages=[{"role": "user", "content": long}],
                                       max_tokens=5)
    assert e.value.code == "context_length_exceeded" and "shorten it" in e.value.body["message"]


def test_bad_token_is_401(base_url):
    bad = openai.OpenAI(base_url=base_url[0] + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.chat.completions.create(model="router-elo-0.5", messages=MSG, max_tokens=5)
    assert e.value.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def _failing_server(tmp_path, weak: ModelEndpoint):
    cfg = replace(load_config(environ={}), db_path=tmp_path / "f.db", router="elo", weak=weak, fallback=False,
                  checkpoint_dir=tmp_path, seed=False)
    return build_runtime(cfg)


def test_unreachable_upstream_is_502_in_one_sentence(tmp_path, caplog):
    dead = ModelEndpoint(name="Closed-port model", model="x", base_url=f"http://127.0.0.1:{free_port()}/v1", timeout=2)
    rt = _failing_server(tmp_path, dead)
    with ServerThread(create_app(rt)) as url:
        c = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
        for stream in (False, True):
            with pytest.raises(openai.APIStatusError) as e:
                r = c.chat.completions.create(model="router-elo-1.0", messages=MSG, max_tokens=5, stream=stream)
                list(r) if stream else None
            assert e.value.status_code == 502
            assert e.value.body["message"] == "No model could answer right now; see the server log."
    assert "Closed-port model: cannot connect to http://127.0.0.1:" in caplog.text  # the detail: in the log
    rt.close()


def test_streamed_chunks_name_the_fallback_model_that_wrote_them(tmp_path):
    """The strong model is down: the weak one answers, and every chunk says so, not just the last."""
    dead = ModelEndpoint(name="Closed-port model", model="x", base_url=f"http://127.0.0.1:{free_port()}/v1", timeout=2)
    cfg = replace(load_config(environ={}), db_path=tmp_path / "fb.db", router="elo", strong=dead, fallback=True,
                  checkpoint_dir=tmp_path, seed=False)
    rt = build_runtime(cfg)
    with ServerThread(create_app(rt)) as url:
        c = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
        chunks = list(c.chat.completions.create(model="router-elo-0.0", messages=MSG, max_tokens=8, stream=True))
    assert chunks and {ch.model for ch in chunks} == {cfg.weak.name}
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices).strip()
    rt.close()


def test_hanging_upstream_is_504(tmp_path, hanging_upstream):
    hang = ModelEndpoint(name="Hanging model", model="x", base_url=f"http://127.0.0.1:{hanging_upstream}/v1", timeout=1.5)
    rt = _failing_server(tmp_path, hang)
    with ServerThread(create_app(rt)) as url:
        c = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
        with pytest.raises(openai.APIStatusError) as e:
            c.chat.completions.create(model="router-elo-1.0", messages=MSG, max_tokens=5)
        assert e.value.status_code == 504 and e.value.body["message"] == "The model did not answer in time; try again."
    rt.close()


def test_32_concurrent_clients_no_failed_request(base_url):
    """Bounded, loopback-only load: 32 clients at once, every request answered (figures: benchmarks/server_load.py)."""
    import sys

    sys.path.insert(0, str(__import__("conftest").REPO / "benchmarks"))
    from server_load import run_load

    url, rt = base_url
    before = len(rt.store.decisions())
    r = run_load(url, clients=32, requests=1, max_tokens=1, model="router-random-0.5", api_key=TOKEN)
    assert r["failed"] == 0, r["errors"]
    assert len(rt.store.decisions()) == before + 32
