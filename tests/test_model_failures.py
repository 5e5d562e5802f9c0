"""A model that fails is one short sentence for the visitor and the API caller, and its cause, in
detail, in the server log (the sentences themselves: test_error_messages.py).

The REAL embedded pair behind the real app and the real OpenAI-compatible server, its llama.cpp
servers killed with real signals: SIGILL, what a library built for CPU features the host cannot run
dies of on its first token, and SIGKILL. A server found dead is restarted once; one that dies again
within RESTART_WINDOW_S is reported, and the other model answers, or no model does.
"""

from __future__ import annotations

import logging
import os
import resource
import signal

import httpx
import pytest

from conftest import leaked_detail
from routellm_demo.controller import NO_ANSWER
from routellm_demo.llm.local import SIGILL_HINT
from routellm_demo.server import create_app
from test_reliability_support import (RawSession, db_rows, make_runtime, serve_api, serve_app, small_config,
                                      text_of_chat)

PROMPT = "Name a colour."
STRONG_FELL_BACK = "The strong model is unavailable right now; the weak one answered."


# ---- the real pair, killed ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The real app and the real API server over one runtime with its OWN embedded pair (these tests
    kill its servers). Core dumps are off for them: a SIGILL must not drop a core file here."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    from routellm_demo.llm.endpoints import make_endpoints

    config = small_config(tmp_path_factory.mktemp("crash"), max_tokens=8, requests_per_minute=1000)
    endpoints = make_endpoints(config)
    rt = make_runtime(config, endpoints)
    try:
        for endpoint in endpoints.values():
            endpoint.server.ensure_running()
        with serve_app(rt) as app_url, serve_api(create_app(rt)) as api_url:
            yield app_url, api_url + "/v1/chat/completions", rt
    finally:
        rt.close()
        for endpoint in endpoints.values():
            endpoint.close()
        resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))


def kill(server, sig: int) -> None:
    os.kill(server.pid, sig)
    assert not server.is_alive(grace=15), "the model server outlived the signal"


def crash_after_restart(server, sig: int = signal.SIGKILL) -> None:
    """Restart the server and kill it: the next call finds it dead again within RESTART_WINDOW_S."""
    server.restart()
    kill(server, sig)


def last_log_row(rt) -> tuple:
    return db_rows(rt.config.db_path, "SELECT chosen_role, chosen_model, fallback_from, error FROM routing_log "
                                      "ORDER BY id DESC LIMIT 1")[0]


@pytest.mark.llm
@pytest.mark.slow
def test_a_strong_model_killed_by_sigill_hands_over_to_the_weak_one_in_one_sentence(served, caplog):
    app_url, _, rt = served
    strong = rt.controller.endpoint("strong").server
    assert strong.starts == 1, "this test runs first in its module: the server must not have been restarted yet"
    session = RawSession(app_url)
    caplog.set_level(logging.WARNING)

    kill(strong, signal.SIGILL)  # found dead by the next request: restarted once, and the cause logged
    status, out = session.call("chat", PROMPT, [], "elo", 0.0)  # threshold 0: routed to the strong model
    assert status == 200 and "⚠️" not in out[2] and "❌" not in out[2] and text_of_chat(out[0]).strip(), out[2]
    assert last_log_row(rt)[:3] == ("strong", rt.config.strong.name, None)  # the restarted server answered
    restarted = [r.getMessage() for r in caplog.records if "restarting it" in r.getMessage()]
    assert restarted and "was killed by SIGILL" in restarted[0] and SIGILL_HINT in restarted[0], caplog.text

    kill(strong, signal.SIGILL)  # dead again within RESTART_WINDOW_S: reported, not restarted
    status, out = session.call("chat", PROMPT, [], "elo", 0.0)
    card = out[2]
    assert status == 200 and STRONG_FELL_BACK in card and "❌" not in card, card
    assert text_of_chat(out[0]).strip()  # a real answer, from the weak model
    assert leaked_detail(card) == [], card
    role, model, fallback_from, error = last_log_row(rt)
    assert (role, model, fallback_from, error) == ("weak", rt.config.weak.name, rt.config.strong.name, None)
    died = [r for r in caplog.records if "died again after a restart" in r.getMessage()]
    assert died and died[0].levelno == logging.ERROR, caplog.text
    assert f"it was killed by SIGILL: {SIGILL_HINT}" in died[0].getMessage()
    assert any(r.name == "routellm_demo.controller" and "the strong model failed" in r.getMessage()
               and "asking the other one" in r.getMessage() for r in caplog.records), caplog.text


@pytest.mark.llm
@pytest.mark.slow
def test_no_model_answering_is_one_sentence_in_the_api_the_chat_and_the_arena(served, caplog):
    app_url, api_url, rt = served
    servers = [rt.controller.endpoint(role).server for role in ("strong", "weak")]
    names = (rt.config.strong.name, rt.config.weak.name)
    caplog.set_level(logging.WARNING)

    def crash_both():
        for server in servers:
            crash_after_restart(server)

    for stream in (False, True):  # streamed too: no text had gone out, so it is still a 502 with a JSON body
        crash_both()
        r = httpx.post(api_url, json={"model": "router-elo-0.0", "messages": [{"role": "user", "content": PROMPT}],
                                      "stream": stream}, timeout=120)
        assert r.status_code == 502, r.text
        error = r.json()["error"]
        assert error["message"] == NO_ANSWER and (error["type"], error["code"]) == ("upstream_error", "upstream_failed")
        assert leaked_detail(r.text) == [] and not any(n in r.text for n in names), r.text
        assert "died again after a restart" in last_log_row(rt)[3]  # the routing log keeps the detail

    session = RawSession(app_url)
    crash_both()
    status, out = session.call("chat", PROMPT, [], "elo", 0.0)
    assert status == 200 and f"❌ {NO_ANSWER}" in out[2] and leaked_detail(out[2]) == [], out[2]
    assert out[1] == PROMPT  # the question stays in the box, to ask again

    crash_both()
    status, out = session.call("arena_ask", PROMPT)
    said = out[2]
    assert status == 200 and "Neither model could answer right now." in said and "cannot be voted on" in said, said
    assert leaked_detail(said) == [] and not any(n in said for n in names), said  # names stay hidden

    log = caplog.text
    assert "was killed by SIGKILL" in log and "died again after a restart" in log
    assert any(r.levelno == logging.ERROR and r.name == "routellm_demo.controller"
               and r.getMessage().startswith("no answer") for r in caplog.records)
    assert any(r.name == "routellm_demo.arena" and "model A" in r.getMessage() for r in caplog.records)

    status, out = session.call("chat", PROMPT, [], "elo", 0.0)  # and the next request starts them afresh
    assert "❌" not in out[2] and "⚠️" not in out[2] and text_of_chat(out[0]).strip(), out[2]
