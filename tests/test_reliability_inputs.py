"""Every bad input a clear answer, in the app, the server and the CLI; the process stays up and nothing
stored is lost.

Inputs: empty, whitespace-only, 1 MB, invalid UTF-8 (raw bytes, and lone surrogates sent as JSON
escapes), control characters, markdown/HTML/script (kept verbatim as text here; that it renders
inert in a browser is test_reliability_browser.py). Faults: bad config files, a missing, read-only,
locked or broken database, and an upstream model that hangs, refuses, answers garbage, an HTTP error
or nothing (a FAKE upstream on 127.0.0.1, the only way to make those happen on demand); the real
local pair takes the control characters and markup.
"""

import contextlib
import html
import io
import json
import re
import sqlite3
import subprocess
import sys
from dataclasses import replace

import httpx
import pytest

from routellm_demo.cli import main as cli_main
from routellm_demo.server import create_app
from conftest import leaked_detail
from test_reliability_support import (PYTHON, REPO, XSS_TEXT, FakeUpstream, RawSession, battle_row_id, db_rows,
                                      fake_endpoint, file_digest, local_pair_endpoints, make_runtime, serve_api,
                                      serve_app, small_config, text_of_chat)

STRONG, WEAK = "Strong Fake", "Weak Fake"
ONE_MB = "x" * 1_000_000
ODD = "nul \x00 esc \x1b[31m bell \x07 del \x7f rtl \u202e zero-width \u200b emoji \U0001F600 cr \r tab \t"
MARKUP = "# Title\n**bold** <b>html</b> " + XSS_TEXT + " ```python\nprint('x')\n``` | a | b |"
FAULTS = {  # fake upstream mode -> what the detailed message says (the server log, the CLI)
    "hang": "no answer within",
    "reset": "cannot connect",
    "garbage": "unreadable response",
    "garbage_text": "unreadable response",
    "http500": "HTTP 500",
    "auth401": "authentication failed",
    "empty": "empty answer",
}
# ... and the one sentence a visitor or an API caller sees instead
NO_ANSWER = "No model could answer right now; see the server log."
PUBLIC = {how: "The model did not answer in time; try again." if how == "hang" else NO_ANSWER for how in FAULTS}
ARENA_PUBLIC = {how: "did not answer in time." if how == "hang" else "could not answer right now." for how in FAULTS}


def fault_cases(extra=()):
    """The faults as parameters; a hang waits out the endpoints' timeouts, so it runs with the slow tests."""
    return [pytest.param(how, marks=pytest.mark.slow) if how == "hang" else how for how in (*FAULTS, *extra)]


@pytest.fixture(scope="module")
def fake():
    with FakeUpstream() as f:
        yield f


def fake_config(tmp, fake, **over):
    return small_config(tmp, strong=fake_endpoint(fake.url, "strong-m", STRONG, timeout=1.5),
                        weak=fake_endpoint(fake.url, "weak-m", WEAK, timeout=1.5), router="elo", **over)


@contextlib.contextmanager
def mode(fake, model, how):
    fake.modes[model] = how
    try:
        yield
    finally:
        fake.modes.pop(model, None)


def shown(markdown: str) -> str:
    """A status message as the page shows it (the app escapes Markdown and HTML in messages)."""
    return html.unescape(markdown.replace("\\", ""))


def snapshot(db):
    return (db_rows(db, "SELECT * FROM battles ORDER BY id"), db_rows(db, "SELECT * FROM arena_pending ORDER BY battle_id"),
            db_rows(db, "SELECT count(*) FROM routing_log"))


# ---- the app ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_fake(tmp_path_factory, fake):
    rt = make_runtime(fake_config(tmp_path_factory.mktemp("inputs"), fake, fallback=False, requests_per_minute=1000))
    try:
        with serve_app(rt) as url:
            yield url, rt
    finally:
        rt.close()


@pytest.mark.parametrize("prompt, message", [
    ("", "Type a question first"),
    ("   \n\t  ", "Type a question first"),
    (ONE_MB, "1,000,000 characters long; the limit is 8,000"),
    ("caf\u00e9 \ud800 lone surrogate", "invalid character at position 5"),
])
def test_app_refuses_bad_prompts_clearly_and_stores_nothing(app_fake, prompt, message):
    url, rt = app_fake
    db = rt.config.db_path
    s = RawSession(url)
    before = snapshot(db)
    status, out = s.call("chat", prompt, [], "elo", 0.5)
    assert status == 200 and message in out[2] and "❌" in out[2], out[2][:300]
    assert out[1] == prompt and out[0] == []  # the prompt stays in the box for editing; no turn added
    status, out = s.call("arena_ask", prompt)
    assert status == 200 and message in out[2], out[2][:300]
    assert out[3] == prompt
    assert snapshot(db) == before
    assert s.call("chat", "Still there?", [], "elo", 0.5)[1][2].count("❌") == 0  # the app stays up


def test_app_rejects_a_body_that_is_not_utf8_and_stays_up(app_fake):
    url, rt = app_fake
    s = RawSession(url)
    before = snapshot(rt.config.db_path)
    status, text = s.post("chat", b'{"data": ["caf\xe9 \xff\xfe", [], "elo", 0.5], "session_hash": "x"}')
    assert status == 400 and "error parsing the body" in text  # Gradio refuses it before the app sees it
    assert snapshot(rt.config.db_path) == before
    assert text_of_chat(s.call("chat", "Hello?", [], "elo", 0.5)[1][0]) == "A fine answer."


@pytest.mark.parametrize("prompt", [ODD, MARKUP], ids=["control-characters", "markup"])
def test_app_keeps_odd_prompts_verbatim(app_fake, fake, prompt):
    url, rt = app_fake
    db = rt.config.db_path
    s = RawSession(url)
    with mode(fake, "weak-m", "ok"):
        fake.answers["weak-m"] = fake.answers["strong-m"] = prompt  # and the models answer in kind
        try:
            status, out = s.call("chat", prompt, [], "elo", 0.5)
            assert status == 200 and "❌" not in out[2] and text_of_chat(out[0]).strip(), out[2][:300]
            status, out = s.call("arena_ask", prompt)
            assert "Both answers are in" in out[2]
        finally:
            fake.answers.clear()
    status, out = s.call("arena_vote_tie")
    row = db_rows(db, "SELECT prompt, meta FROM battles WHERE id = ?", (battle_row_id(out[-1]),))[0]
    assert row[0] == prompt  # stored exactly as typed
    assert json.loads(row[1])["answer_a"].split() == prompt.split()


@pytest.mark.slow
def test_real_local_pair_takes_control_characters_and_markup(tmp_path):
    """The embedded llama.cpp models get the odd bytes and the markup, and answer."""
    rt = make_runtime(small_config(tmp_path), local_pair_endpoints())
    try:
        with serve_app(rt) as url:
            s = RawSession(url)
            for prompt in (ODD, MARKUP):
                status, out = s.call("chat", prompt, [], "sw_ranking", 0.5)
                assert "❌" not in out[2] and text_of_chat(out[0]).strip(), out[2][:300]
                status, out = s.call("arena_ask", prompt)
                assert "Both answers are in" in out[2], out[2][:300]
                status, out = s.call("arena_vote_a")
                assert db_rows(rt.config.db_path, "SELECT prompt FROM battles WHERE id = ?",
                               (battle_row_id(out[-1]),))[0][0] == prompt
    finally:
        rt.close()


@pytest.mark.parametrize("chunked", [False, True])
def test_server_refuses_a_body_over_1_mib_before_reading_it(api_fake, chunked):
    from routellm_demo.body_limit import MAX_BODY_BYTES

    url, rt = api_fake
    raw = json.dumps(body("y" * (MAX_BODY_BYTES + 10))).encode()

    def pieces():  # no Content-Length: the server must count while the body arrives
        for i in range(0, len(raw), 65536):
            yield raw[i:i + 65536]

    r = httpx.post(url, content=pieces() if chunked else raw, headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 413 and "larger than 1,048,576 bytes" in r.json()["error"]["message"]
    assert httpx.post(url, json=body("Still up?"), timeout=60).status_code == 200


@pytest.mark.parametrize("how", fault_cases())
def test_app_upstream_faults_are_clear_and_the_app_stays_up(app_fake, fake, how, caplog):
    url, rt = app_fake
    db = rt.config.db_path
    s = RawSession(url)
    battles_before = db_rows(db, "SELECT * FROM battles")
    with mode(fake, "weak-m", how):
        status, out = s.call("chat", "Hello?", [], "elo", 1.0)  # threshold 1: the weak model answers
        card = out[2]
        assert status == 200 and f"❌ {PUBLIC[how]}" in card, card[-400:]  # one sentence; the detail is logged
        assert FAULTS[how] not in card and leaked_detail(card) == [], card[-400:]
        status, out = s.call("arena_ask", "Hello both?")
        assert status == 200 and "cannot be voted on" in out[2] and WEAK not in out[2], out[2]  # no name leaks
        assert re.search(r"Model [AB] " + re.escape(ARENA_PUBLIC[how]), shown(out[2])), out[2]
        assert leaked_detail(shown(out[2])) == [], out[2]
    failed = db_rows(db, "SELECT error FROM routing_log ORDER BY id DESC LIMIT 1")[0][0]
    assert WEAK in failed and FAULTS[how] in failed  # the failure is stored, with its cause
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("routellm_demo")]
    assert any(FAULTS[how] in m and WEAK in m for m in logged), logged  # and logged, for the operator
    assert db_rows(db, "SELECT status FROM arena_pending ORDER BY created_at DESC, rowid DESC LIMIT 1")[0][0] == "failed"
    assert db_rows(db, "SELECT * FROM battles") == battles_before
    status, out = s.call("chat", "And now?", [], "elo", 1.0)  # the same model, healthy again
    assert "❌" not in out[2] and text_of_chat(out[0]) == "A fine answer."


def test_app_falls_back_to_the_other_model_and_says_so(tmp_path, fake):
    rt = make_runtime(fake_config(tmp_path, fake, fallback=True))
    try:
        with serve_app(rt) as url, mode(fake, "weak-m", "garbage"):
            status, out = RawSession(url).call("chat", "Hello?", [], "elo", 1.0)
            assert text_of_chat(out[0]) == "A fine answer."
            assert "The weak model is unavailable right now; the strong one answered." in out[2]
        assert db_rows(rt.config.db_path, "SELECT fallback_from, chosen_model FROM routing_log")[-1] == (WEAK, STRONG)
    finally:
        rt.close()


def test_a_store_fault_after_the_answer_keeps_the_answer_on_screen(tmp_path, fake):
    """The answer streamed in full, then logging it failed: the visitor keeps the answer they read,
    with the error beside it (it used to vanish with the turn)."""
    rt = make_runtime(fake_config(tmp_path, fake))
    try:
        with serve_app(rt) as url:
            rt.store.db.execute("PRAGMA query_only = 1")  # the database refuses writes: the log write fails
            status, out = RawSession(url).call("chat", "Hello?", [], "elo", 1.0)
            rt.store.db.execute("PRAGMA query_only = 0")
            assert status == 200 and text_of_chat(out[0]) == "A fine answer."
            assert [m["role"] for m in out[0]][0] == "user" and out[1] == ""
            assert "read-only" in shown(out[2]), out[2]
    finally:
        rt.close()


@pytest.mark.slow  # a whole app runtime, faults injected one after another
def test_app_store_faults_are_clear_and_keep_the_vote(tmp_path, fake):
    rt = make_runtime(fake_config(tmp_path, fake), store_timeout=0.5)
    db = rt.config.db_path
    try:
        with serve_app(rt) as url:
            s = RawSession(url)
            assert "Both answers are in" in s.call("arena_ask", "A question to vote on")[1][2]

            holder = sqlite3.connect(db, timeout=0)  # another process holds the write lock
            holder.execute("BEGIN EXCLUSIVE")
            try:
                out = s.call("arena_vote_a")[1]
                assert "locked by another process" in out[2], out[2]
                out = s.call("chat", "Hello while locked?", [], "elo", 0.5)[1]
                # the answer streamed, then logging it met the lock: the answer stays, with the error beside it
                assert "locked by another process" in out[2] and out[1] == "" and text_of_chat(out[0])
            finally:
                holder.rollback()
                holder.close()
            assert db_rows(db, "SELECT count(*) FROM battles WHERE source = 'arena-vote'")[0][0] == 0

            rt.store.db.execute("PRAGMA query_only = 1")  # the database refuses writes
            out = s.call("arena_vote_a")[1]
            assert "read-only" in shown(out[2]), out[2]
            rt.store.db.execute("PRAGMA query_only = 0")
            out = s.call("arena_vote_a")[1]  # the battle was kept through both refusals
            assert "Thanks for voting" in out[2]
            assert db_rows(db, "SELECT count(*) FROM battles WHERE source = 'arena-vote'")[0][0] == 1

            rt.store.close()  # the database connection is gone: every handler says so, none crashes
            for api, args, where in (("chat", ("Hi", [], "elo", 0.5), 2), ("arena_ask", ("Hi",), 2),
                                     ("calibrate", ("elo", 30), 1), ("export", ("CSV",), 1), ("totals", (), 0)):
                status, out = s.call(api, *args)
                assert status == 200 and "❌" in out[where] and "closed database" in out[where], (api, out)
            for api in ("leaderboard", "data"):
                status, out = s.call(api)
                assert status == 500 and "closed database" in out, (api, out)  # gr.Error: a toast in the page
            assert httpx.get(url, timeout=10).status_code == 200
    finally:
        with contextlib.suppress(Exception):
            rt.close()


@pytest.mark.slow
def test_app_start_with_a_bad_config_exits_with_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[strong]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\napi_key = "sk-pasted-by-mistake"\n')
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ROUTELLM_DEMO_CONFIG": str(bad),
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([PYTHON or sys.executable, "app.py"], cwd=REPO, env=env, capture_output=True, timeout=120)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("routellm_demo: error: bad.toml: strong.api_key is not allowed")
    assert "sk-pasted" not in err + proc.stdout.decode()


@pytest.mark.parametrize("setup, message", [
    ("missing_config", "config file not found"),
    ("read_only_db", "is read-only"),
    ("not_a_db", "not a SQLite database"),
    ("bad_router", "unknown router"),
])
def test_app_main_refuses_to_start_with_one_line(tmp_path, monkeypatch, capsys, setup, message):
    from routellm_demo.ui import main

    for k in [k for k in __import__("os").environ if k.startswith("ROUTELLM_DEMO_")]:
        monkeypatch.delenv(k)
    db = tmp_path / "app.db"
    if setup == "missing_config":
        monkeypatch.setenv("ROUTELLM_DEMO_CONFIG", str(tmp_path / "nowhere.toml"))
    elif setup == "read_only_db":
        small = make_runtime(small_config(tmp_path))
        small.store.add_battle(prompt="keep me", model_a="a", model_b="b", winner="tie", source="test")
        small.close()
        db.chmod(0o444)
    elif setup == "not_a_db":
        db.write_bytes(b"this is a text file, not a database" * 100)
    else:
        monkeypatch.setenv("ROUTELLM_DEMO_ROUTER", "bert")
    monkeypatch.setenv("ROUTELLM_DEMO_DB", str(db))
    monkeypatch.setenv("ROUTELLM_DEMO_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    digest = file_digest(db) if db.exists() else None
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("routellm_demo: error:") and message in err, err
    if digest is not None:
        assert file_digest(db) == digest  # nothing stored was touched
        db.chmod(0o644)


# ---- the server ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api_fake(tmp_path_factory, fake):
    rt = make_runtime(fake_config(tmp_path_factory.mktemp("api"), fake, fallback=False), store_timeout=0.5)
    try:
        with serve_api(create_app(rt)) as url:
            yield url + "/v1/chat/completions", rt
    finally:
        rt.close()


def body(content="Hello?", **kw):
    return {"model": "router-elo-1.0", "messages": [{"role": "user", "content": content}], **kw}


@pytest.mark.parametrize("raw, status, message", [
    (body(""), 400, "the last user message is empty"),
    (body(" \n\t "), 400, "the last user message is empty"),
    (body(ONE_MB), 400, "the messages hold 1,000,000 characters; the limit is 80,000"),
    (json.dumps(body("caf\u00e9 \ud800")).encode(), 400, "not valid UTF-8 text"),
    (b'{"model": "router-elo-1.0", "messages": [{"role": "user", "content": "caf\xe9 \xff"}]}', 400, "not valid JSON"),
    (b"", 400, "not valid JSON"),
    (b"{nope", 400, "not valid JSON"),
    ([1, 2], 400, "must be a JSON object"),
    ({"model": "router-elo-1.0", "messages": [{"role": "user", "content": 5}]}, 400, "string or a list of text parts"),
    ({"model": "router-elo-1.0", "messages": ["hi"]}, 400, "must be an object with 'role'"),
    ({"model": ["x"], "messages": [{"role": "user", "content": "hi"}]}, 400, "'model' is required"),
    (body(max_tokens="abc"), 400, "'max_tokens' must be an integer"),
    (body(max_tokens=0), 400, "'max_tokens' must be at least 1"),
    (body(temperature="hot"), 400, "'temperature' must be a number between 0 and 2"),
    (body(top_p=7), 400, "'top_p' must be a number between 0 and 1"),
    (body(stop=5), 400, "'stop' must be a string or a list"),
    (body(seed=1.5), 400, "'seed' must be an integer"),
    (body(stream="yes"), 400, "'stream' must be true or false"),
    (body(stream=True, stream_options="x"), 400, "'stream_options' must be an object"),
])
def test_server_bad_requests_are_400_with_the_reason(api_fake, raw, status, message):
    url, rt = api_fake
    before = db_rows(rt.config.db_path, "SELECT count(*) FROM routing_log")
    r = httpx.post(url, content=raw if isinstance(raw, bytes) else json.dumps(raw).encode(),
                   headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == status, r.text[:300]
    error = r.json()["error"]
    assert message in error["message"] and error["type"] == "invalid_request_error"
    assert db_rows(rt.config.db_path, "SELECT count(*) FROM routing_log") == before  # nothing routed or logged
    assert httpx.post(url, json=body(ODD), timeout=60).status_code == 200  # up, and control characters are fine


@pytest.mark.parametrize("how", fault_cases())
@pytest.mark.parametrize("stream", [False, True])
def test_server_upstream_faults_are_openai_shaped_502_or_504(api_fake, fake, how, stream):
    url, rt = api_fake
    with mode(fake, "weak-m", how):
        r = httpx.post(url, json=body(stream=stream), timeout=60)
    assert r.status_code == (504 if how == "hang" else 502), r.text[:300]
    error = r.json()["error"]
    assert error["type"] == "upstream_error" and error["message"] == PUBLIC[how] and leaked_detail(r.text) == []
    assert httpx.post(url, json=body(), timeout=60).json()["choices"][0]["message"]["content"] == "A fine answer."


def test_server_store_fault_is_503_and_passes(api_fake):
    url, rt = api_fake
    rt.store.db.execute("PRAGMA query_only = 1")
    try:
        r = httpx.post(url, json=body(), timeout=60)
    finally:
        rt.store.db.execute("PRAGMA query_only = 0")
    assert r.status_code == 503 and "read-only" in r.json()["error"]["message"]
    assert r.json()["error"]["code"] == "store_unavailable"
    assert httpx.post(url, json=body(), timeout=60).status_code == 200


# ---- the CLI ------------------------------------------------------------------------------------


def cli_config(tmp_path, fake, *, base_url=None, extra=""):
    path = tmp_path / "cli.toml"
    url = base_url or fake.url
    path.write_text(f'''router = "elo"
db_path = "{tmp_path / 'cli.db'}"
checkpoint_dir = "{tmp_path / 'ckpt'}"
fallback = false
[strong]
name = "{STRONG}"
model = "strong-m"
base_url = "{url}"
timeout = 1.5
[weak]
name = "{WEAK}"
model = "weak-m"
base_url = "{url}"
timeout = 1.5
{extra}''')
    return path


def cli(capsys, *args, stdin: bytes | None = None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    code = cli_main([*map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(err: str, message: str) -> None:
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("routellm-demo: error:") and message in last, err


@pytest.mark.parametrize("command, stdin, message", [
    (["route", ""], None, "the prompt is empty"),
    (["chat", " \t\n "], None, "the last user message is empty"),
    (["route", "-"], ONE_MB.encode(), "the limit is 80,000"),
    (["chat", "-"], ONE_MB.encode(), "the limit is 80,000"),
    (["chat", "-"], b"caf\xe9 \xff", "not valid UTF-8"),
])
def test_cli_bad_prompts_exit_2_with_one_line(tmp_path, fake, capsys, monkeypatch, command, stdin, message):
    config = cli_config(tmp_path, fake)
    sent = len(fake.requests)
    code, out, err = cli(capsys, "--config", config, *command, stdin=stdin, monkeypatch=monkeypatch)
    assert code == 2
    one_error_line(err, message)
    assert len(fake.requests) == sent  # refused before any model was asked


def test_cli_odd_prompts_and_markup_are_answered(tmp_path, fake, capsys, monkeypatch):
    config = cli_config(tmp_path, fake)
    for prompt in (ODD, MARKUP):
        code, out, err = cli(capsys, "--config", config, "chat", "-", "--threshold", "1", stdin=prompt.encode(),
                             monkeypatch=monkeypatch)
        assert code == 0 and "A fine answer." in out, err
        code, out, err = cli(capsys, "--config", config, "route", "-", "--router", "elo", "--json",
                             stdin=prompt.encode(), monkeypatch=monkeypatch)
        assert code == 0 and json.loads(out)["role"] in ("strong", "weak")


def test_cli_invalid_utf8_argument_exits_2():
    proc = subprocess.run([PYTHON or sys.executable, "-m", "routellm_demo", "route", b"caf\xe9 \xff"], cwd=REPO,
                          capture_output=True, timeout=120)
    assert proc.returncode == 2 and b"not valid UTF-8" in proc.stderr and b"Traceback" not in proc.stderr


@pytest.mark.parametrize("how", fault_cases(["refused"]))
def test_cli_upstream_faults_exit_2_naming_the_model(tmp_path, fake, capsys, how):
    if how == "refused":
        from test_reliability_support import free_port

        config = cli_config(tmp_path, fake, base_url=f"http://127.0.0.1:{free_port()}/v1")
        expected = "cannot connect"
    else:
        config = cli_config(tmp_path, fake)
        expected = FAULTS[how]
    with mode(fake, "weak-m", how):
        code, out, err = cli(capsys, "--config", config, "chat", "Hello?", "--threshold", "1")
    assert code == 2
    one_error_line(err, expected)
    assert WEAK in err.strip().splitlines()[-1]


@pytest.mark.parametrize("text, message", [
    ("threshold = \n", "invalid TOML"),
    ("[strong]\nmodle = \"x\"\n", "unknown key 'strong.modle' (did you mean 'model'?)"),
    ("[strong]\nbase_url = \"http://x/v1\"\nmodel = \"m\"\napi_key = \"sk-secret-in-file\"\n", "api_key is not allowed"),
    ("[weak]\nbase_url = \"ftp://x\"\nmodel = \"m\"\n", "base_url must start with http"),
    ("[limits]\nrequests_per_minute = 0\n", "requests_per_minute must be at least 1"),
    ("\x00\xff binary junk", "not UTF-8"),
])
def test_cli_bad_config_files_exit_2_with_one_line(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_bytes(text.encode("latin-1"))
    for command in (["savings"], ["chat", "Hello?"]):
        code, out, err = cli(capsys, "--config", path, *command)
        assert code == 2 and len(err.strip().splitlines()) == 1
        one_error_line(err, message)
        assert "sk-secret" not in err + out
    code, out, err = cli(capsys, "--config", tmp_path / "missing.toml", "savings")
    assert code == 2
    one_error_line(err, "config file not found")


def test_cli_missing_database_is_created_and_read_only_one_is_untouched(tmp_path, fake, capsys):
    config = cli_config(tmp_path, fake)
    fresh = tmp_path / "new" / "folder" / "fresh.db"
    code, out, err = cli(capsys, "--config", config, "--db", fresh, "savings")
    assert code == 0 and json.loads(out)["requests"] == 0 and fresh.is_file()

    code, out, err = cli(capsys, "--config", config, "--db", fresh, "chat", "Hello?", "--threshold", "1")
    assert code == 0
    fresh.chmod(0o444)
    digest = file_digest(fresh)
    try:
        code, out, err = cli(capsys, "--config", config, "--db", fresh, "chat", "Hello again?", "--threshold", "1")
        assert code == 2
        one_error_line(err, "read-only")
        assert file_digest(fresh) == digest
    finally:
        fresh.chmod(0o644)
    code, out, err = cli(capsys, "--config", config, "--db", fresh, "savings")
    assert json.loads(out)["requests"] == 1  # the answer logged before is still there
