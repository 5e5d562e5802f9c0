"""Savings a stakeholder can trust (issue #16): an answer a fallback gave is not a routing saving,
and the CLI says which model failed and why; a prompt format carries its own stop strings.

The fast tests check the arithmetic and the stop strings; the slow ones run a REAL llama.cpp server
(the embedded Gemma 3 270M, started with an API key) reached as a remote OpenAI-compatible
endpoint, with its key variable unset or wrong, through the controller and the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import openai
import pytest

from conftest import REPO
from routellm_demo.config import LOCAL_MODELS, PROMPT_FORMATS, ModelEndpoint
from routellm_demo.controller import Answer, Controller, Decision
from routellm_demo.llm.endpoints import PROMPT_FORMATS as FORMATS
from routellm_demo.llm.endpoints import Endpoint, fewshot_prompt, stop_strings

SECRET = "savings-test-key-0123456789"
KEY_ENV = "SAVINGS_TEST_KEY"  # holds SECRET: the weak endpoint's key
UNSET_ENV = "SAVINGS_TEST_UNSET_KEY"  # never set
WRONG_ENV = "SAVINGS_TEST_WRONG_KEY"  # holds a key the server refuses
GEMMA = LOCAL_MODELS["gemma3"]
STRONG_NAME, WEAK_NAME = "Remote strong", "Remote weak"


# ---- fast: the arithmetic and the stop strings ---------------------------------------------------


def answer(**over) -> Answer:
    d = Decision("elo", 0.5, 0.7, "strong", STRONG_NAME, 1.0, "0" * 64)
    fields = dict(text="Red.", decision=d, model=WEAK_NAME, role="weak", prompt_tokens=10, completion_tokens=5,
                  usage_source="api", cost=0.25, strong_cost=1.0, latency_ms=10.0, ttft_ms=None)
    return Answer(**{**fields, **over})


def test_a_routed_answer_saves_and_a_fallback_answer_does_not():
    routed = answer(decision=replace(answer().decision, role="weak", model=WEAK_NAME))
    assert (routed.is_fallback, routed.saved, routed.fallback_cost_difference) == (False, 0.75, 0.0)
    fallback = answer(fallback_from=STRONG_NAME, fallback_kind="auth", fallback_error="set X")
    assert (fallback.is_fallback, fallback.saved, fallback.fallback_cost_difference) == (True, 0.0, 0.75)
    d = fallback.to_dict()
    assert (d["saved"], d["fallback_cost_difference"], d["fallback_kind"]) == (0.0, 0.75, "auth")


def test_savings_split_routed_answers_from_fallbacks(tmp_path):
    from routellm_demo.store import Store

    with Store(tmp_path / "s.db") as store:
        log = store.log_decision
        log(session_id="a", chosen_role="weak", cost=1.0, strong_cost=5.0, source="cli")  # routed: saves 4
        log(session_id="a", chosen_role="strong", cost=5.0, strong_cost=5.0, source="cli")  # routed strong: 0
        log(session_id="a", chosen_role="weak", cost=0.5, strong_cost=3.0, source="cli",
            fallback_from=STRONG_NAME)  # strong failed, weak answered: 2.5 cheaper, not a saving
        log(session_id="b", chosen_role="strong", cost=2.0, strong_cost=2.0, source="app",
            fallback_from=WEAK_NAME)  # weak failed, strong answered
        log(session_id="b", chosen_role="strong", cost=None, source="app", error="no answer")  # no answer
        s = store.savings()
        assert (s["requests"], s["routed_requests"], s["fallback_requests"]) == (4, 2, 2)
        assert (s["fallback_to_weak"], s["fallback_to_strong"], s["strong_requests"]) == (1, 1, 2)
        assert s["spent"] == pytest.approx(8.5) and s["all_strong_cost"] == pytest.approx(15.0)
        assert s["routed_spent"] == pytest.approx(6.0) and s["routed_all_strong_cost"] == pytest.approx(10.0)
        assert s["saved"] == pytest.approx(4.0) and s["saved_pct"] == pytest.approx(40.0)
        assert s["fallback_spent"] == pytest.approx(2.5) and s["fallback_cost_difference"] == pytest.approx(2.5)
        assert s["all_strong_cost"] == pytest.approx(s["spent"] + s["saved"] + s["fallback_cost_difference"])
        only_fallback = store.savings("b")
        assert (only_fallback["saved"], only_fallback["saved_pct"], only_fallback["fallback_requests"]) == (0.0, 0.0, 1)


def remote(name: str, base_url: str, key_env: str | None, **over) -> ModelEndpoint:
    """A remote-style completion endpoint speaking the few-shot format, with none of the embedded
    model's defaults (no stop strings of its own)."""
    fields = dict(max_tokens=16, timeout=60.0, temperature=0.0)
    return ModelEndpoint(name=name, model=GEMMA.model, base_url=base_url, api_key_env=key_env, api="completion",
                         prompt_format="fewshot", **{**fields, **over})


def test_the_fewshot_format_brings_its_own_stops_to_every_endpoint():
    spec = remote("r", "http://127.0.0.1:9/v1", None)
    assert spec.stop == () and stop_strings(spec) == ["\nUser:"]
    request = Endpoint(spec)._request([{"role": "user", "content": "Hi"}], {"stop": ["\n\nUser:", "END"]})
    assert request["stop"] == ["\nUser:", "END"]  # "\n\nUser:" holds "\nUser:": already covered
    assert stop_strings(GEMMA) == ["\nUser:", "\n\n"]  # the embedded model's own are kept
    assert stop_strings(LOCAL_MODELS["smollm2"]) == []  # chat mode: no prompt format, no stops
    assert set(FORMATS) == set(PROMPT_FORMATS)  # every format the config accepts is rendered, with stops
    assert all(f.stop for f in FORMATS.values())


# ---- slow: a real llama.cpp server behind a key --------------------------------------------------


@pytest.fixture(scope="module")
def keyed_server():
    """The embedded Gemma 3 270M (a base model that runs on past its answer without stops) served by
    llama.cpp with an API key; its URL stands in for a remote provider."""
    from routellm_demo.llm.local import LocalServer

    server = LocalServer(GEMMA, api_key=SECRET)
    try:
        server.ensure_running()
        yield server
    finally:
        server.stop()


@pytest.mark.llm
def test_a_remote_fewshot_endpoint_stops_before_the_next_turn(keyed_server):
    url = keyed_server.base_url
    question = [{"role": "user", "content": "Name a primary colour."}]
    client = openai.OpenAI(base_url=url, api_key=SECRET, max_retries=0)
    raw = client.completions.create(model=GEMMA.model, prompt=fewshot_prompt(question), max_tokens=24, temperature=0)
    assert "\nUser:" in raw.choices[0].text  # the control: without stops the model writes the next turn

    endpoint = Endpoint(remote("Remote Gemma", url, KEY_ENV, max_tokens=24), environ={KEY_ENV: SECRET})
    done = endpoint.complete(question)
    streamed = list(endpoint.stream(question))[-1]
    for a in (done, streamed):
        assert a.text and "User:" not in a.text and a.finish_reason == "stop", a.text


def controller(tmp_path, url, strong_env, environ):
    from routellm_demo.config import load_config
    from routellm_demo.embeddings import Embedder
    from routellm_demo.router_set import RouterSet
    from routellm_demo.store import Store

    strong = remote(STRONG_NAME, url, strong_env, input_price=2.0, output_price=8.0)
    weak = remote(WEAK_NAME, url, KEY_ENV, input_price=0.1, output_price=0.2)
    config = replace(load_config(environ={}), strong=strong, weak=weak, db_path=tmp_path / "c.db", router="random",
                     fallback=True)
    store = Store(config.db_path)
    emb = Embedder(store)  # the sentence model loads once per process
    routers = RouterSet(store, emb, checkpoint_dir=tmp_path / "none")
    endpoints = {"strong": Endpoint(strong, environ=environ), "weak": Endpoint(weak, environ=environ)}
    return Controller(config, store, emb, routers, endpoints), store


@pytest.mark.llm
@pytest.mark.parametrize("strong_env, environ, causes", [
    (UNSET_ENV, {KEY_ENV: SECRET}, [f"set {UNSET_ENV} to the API key for {STRONG_NAME}"]),
    (WRONG_ENV, {KEY_ENV: SECRET, WRONG_ENV: "not-the-key-999"}, ["authentication failed (HTTP 401)",
                                                                  f"check {WRONG_ENV}"]),
], ids=["missing-key", "wrong-key"])
def test_a_strong_model_without_a_valid_key_falls_back_and_is_not_a_saving(keyed_server, tmp_path, strong_env,
                                                                           environ, causes):
    ctl, store = controller(tmp_path, keyed_server.base_url, strong_env, environ)
    try:
        a = ctl.complete("Name a primary colour.", threshold=0.0, session_id="s")  # routed to the strong model
        assert (a.decision.role, a.role, a.model, a.fallback_from) == ("strong", "weak", WEAK_NAME, STRONG_NAME)
        assert a.fallback_kind == "auth" and all(c in a.fallback_error for c in causes), a.fallback_error
        assert SECRET not in a.fallback_error and "not-the-key" not in a.fallback_error
        assert a.text and "User:" not in a.text
        assert a.saved == 0.0 and a.fallback_cost_difference == pytest.approx(a.strong_cost - a.cost)
        assert a.fallback_cost_difference > 0  # the weak model is cheaper: a "saving" only on paper
        row = store.decisions(session_id="s")[0]
        assert (row["chosen_role"], row["fallback_from"], row["error"]) == ("weak", STRONG_NAME, None)

        routed = ctl.complete("Name a primary colour.", threshold=1.0, session_id="s")  # routed to the weak one
        assert routed.fallback_from is None and routed.saved == pytest.approx(routed.strong_cost - routed.cost)
        assert routed.saved > 0
        s = store.savings("s")
        assert (s["requests"], s["routed_requests"], s["fallback_requests"], s["fallback_to_weak"]) == (2, 1, 1, 1)
        assert s["saved"] == pytest.approx(routed.saved)  # the fallback is not in it
        assert s["fallback_cost_difference"] == pytest.approx(a.fallback_cost_difference)
        assert s["saved_pct"] == pytest.approx(100 * routed.saved / routed.strong_cost)
    finally:
        store.close()


def cli_config(tmp_path, url: str, strong_env: str) -> str:
    path = tmp_path / "remote.toml"
    db = tmp_path / "cli.db"
    path.write_text(f'''router = "random"
db_path = "{db}"
checkpoint_dir = "{tmp_path / 'ckpt'}"
fallback = true
[strong]
name = "{STRONG_NAME}"
model = "{GEMMA.model}"
base_url = "{url}"
api_key_env = "{strong_env}"
api = "completion"
prompt_format = "fewshot"
input_price = 2.0
output_price = 8.0
temperature = 0.0
[weak]
name = "{WEAK_NAME}"
model = "{GEMMA.model}"
base_url = "{url}"
api_key_env = "{KEY_ENV}"
api = "completion"
prompt_format = "fewshot"
input_price = 0.1
output_price = 0.2
temperature = 0.0
''')
    return str(path)


def run_cli(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "routellm_demo", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.llm
def test_cli_chat_names_the_failed_model_and_why_and_savings_count_it_apart(keyed_server, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in (UNSET_ENV, WRONG_ENV)}
    env.update({KEY_ENV: SECRET, "ROUTELLM_DEMO_SEED": "0", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    url = keyed_server.base_url
    config = cli_config(tmp_path, url, UNSET_ENV)  # the case; a wrong key takes the same path (above)
    r = run_cli("--config", config, "chat", "Name a primary colour.", "--threshold", "0", "--max-tokens", "16", env=env)
    assert r.returncode == 0, r.stderr
    assert "-> strong: Remote strong]" in r.stderr  # the route
    assert (f"[fallback: the strong model {STRONG_NAME} failed (auth: set {UNSET_ENV} to the API key for "
            f"{STRONG_NAME} ({url})); the weak model {WEAK_NAME} answered; not counted as a routing saving]"
            ) in r.stderr, r.stderr
    assert "; fallback, not a saving: $" in r.stderr and "saved $" not in r.stderr, r.stderr
    assert r.stdout.strip() and "User:" not in r.stdout, r.stdout
    assert SECRET not in r.stdout + r.stderr

    r = run_cli("--config", config, "chat", "Name a primary colour.", "--threshold", "1", "--max-tokens", "16", env=env)
    assert r.returncode == 0 and "[fallback" not in r.stderr and "saved $" in r.stderr, r.stderr
    r = run_cli("--config", config, "savings", env=env)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert (s["requests"], s["routed_requests"], s["fallback_requests"], s["fallback_to_weak"]) == (2, 1, 1, 1)
    assert s["fallback_cost_difference"] > 0 and s["saved"] > 0
    assert s["all_strong_cost"] == pytest.approx(s["spent"] + s["saved"] + s["fallback_cost_difference"])
