"""Secrets stay secret: API keys, the admin token and the server's bearer token never appear in logs,
errors, the UI, the API's answers, exports or the database.

Unique strings are planted: a key that a REAL llama.cpp server (started with it) accepts, a wrong
key it refuses (HTTP 401), the admin token and a wrong guess of it, the server's bearer token and a
wrong guess of it. Then the app, the OpenAI-compatible server and the CLI are exercised, successes
and failures both (chat, fallback after an auth error, arena round and vote, leaderboard, data,
exports in three formats, admin delete with a wrong and the right token, 401s, 502s, exit code 2),
while every log record (all loggers, DEBUG), stdout and stderr are captured. Finally all of it is
searched for each planted string, with the page's HTML and config, every response body, the
exported files, the llama.cpp server's own log and the SQLite file's bytes (with its WAL).
"""

import json
import logging
import secrets
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from routellm_demo.cli import main as cli_main
from routellm_demo.config import LOCAL_MODELS, ModelEndpoint
from routellm_demo.llm.local import LocalServer
from routellm_demo.server import create_app
from test_reliability_support import make_runtime, serve_api, serve_app, small_config

pytestmark = [pytest.mark.llm, pytest.mark.slow]
KEY = "sk-planted-" + secrets.token_hex(12)
WRONG = "sk-wrongkey-" + secrets.token_hex(12)
ADMIN = "admin-planted-" + secrets.token_hex(12)
ADMIN_GUESS = "admin-guess-" + secrets.token_hex(12)
API = "api-planted-" + secrets.token_hex(12)
API_GUESS = "api-guess-" + secrets.token_hex(12)
PLANTED = {"api key": KEY, "wrong api key": WRONG, "admin token": ADMIN, "admin guess": ADMIN_GUESS,
           "bearer token": API, "bearer guess": API_GUESS}
LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore", "openai", "gradio", "routellm_demo")


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record):
        try:
            self.records.append(self.format(record))
        except Exception:  # noqa: BLE001
            self.records.append(repr(record.__dict__))


@pytest.fixture()
def all_logs():
    """Every log record of every logger at DEBUG, as text."""
    handler = Collect()
    saved = []
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield handler
    for logger, level in saved:
        logger.removeHandler(handler)
        logger.setLevel(level)


def spec(server, name, key_env) -> ModelEndpoint:
    return ModelEndpoint(name=name, model=LOCAL_MODELS["smollm2"].model, base_url=server.base_url, api_key_env=key_env,
                         max_tokens=2, timeout=60, temperature=0.2)


def test_planted_secrets_appear_nowhere(tmp_path, monkeypatch, capfd, all_logs):
    from gradio_client import Client

    for name, value in (("RELIABILITY_PLANTED_KEY", KEY), ("RELIABILITY_PLANTED_KEY_B", KEY),
                        ("RELIABILITY_WRONG_KEY", WRONG), ("ROUTELLM_DEMO_ADMIN_TOKEN", ADMIN),
                        ("ROUTELLM_DEMO_API_TOKEN", API)):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RELIABILITY_UNSET_KEY", raising=False)
    seen: dict[str, bytes] = {}  # everything a person or a log could see, by where it came from

    def keep(where, value):
        seen[where] = value if isinstance(value, bytes) else json.dumps(value, default=str).encode()
        return value

    server = LocalServer(LOCAL_MODELS["smollm2"], cache_dir=tmp_path / "models", api_key=KEY)
    try:
        server.ensure_running()
        db = tmp_path / "secrets.db"
        good = small_config(tmp_path, db_path=db, strong=spec(server, "Keyed SmolLM A", "RELIABILITY_PLANTED_KEY"),
                            weak=spec(server, "Keyed SmolLM B", "RELIABILITY_PLANTED_KEY_B"), router="elo")
        bad = replace(good, weak=spec(server, "Wrong-key SmolLM", "RELIABILITY_WRONG_KEY"), fallback=False)
        rt_good, rt_bad = make_runtime(good), make_runtime(bad)
        try:
            # -- the app: page, config, API info; chat, arena, vote, views, exports, admin
            with serve_app(rt_good) as url:
                for path in ("", "config", "gradio_api/info"):
                    keep(f"app GET /{path}", httpx.get(url + path, timeout=30).content)
                c = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
                keep("app chat strong", c.predict("Name a colour.", [], "elo", 0.0, api_name="/chat"))
                keep("app chat weak", c.predict("Name a fruit.", [], "elo", 1.0, api_name="/chat"))
                asked = keep("app arena", c.predict("Name an animal.", api_name="/arena_ask"))
                assert "Both answers are in" in asked[2], asked[2]
                keep("app vote", c.predict(api_name="/arena_vote_a"))
                keep("app leaderboard", c.predict(api_name="/leaderboard")[:3])
                keep("app data", c.predict(api_name="/data"))
                keep("app totals", c.predict(api_name="/totals"))
                for fmt in ("CSV", "JSONL", "Parquet"):
                    path, note, sheet = keep(f"app export {fmt}", c.predict(fmt, api_name="/export"))
                    keep(f"export file {fmt}", Path(path).read_bytes())
                    keep(f"export datasheet {fmt}", Path(sheet).read_bytes())
                out = keep("app admin guess", c.predict(ADMIN_GUESS, api_name="/admin_delete_votes"))
                assert "Wrong admin token" in out[1] and out[0] == ""
                out = keep("app admin", c.predict(ADMIN, api_name="/admin_delete_votes"))
                assert "Deleted 1 arena votes" in out[1] and out[0] == ""
            with serve_app(rt_bad) as url:
                c = Client(url, verbose=False)
                history, _, card, *_ = keep("app chat wrong key", c.predict("Name a city.", [], "elo", 1.0,
                                                                             api_name="/chat"))
                assert "No model could answer right now; see the server log." in card  # the detail: in the log
                out = keep("app arena wrong key", c.predict("Name a river.", api_name="/arena_ask"))
                assert "cannot be voted on" in out[2] and "could not answer right now" in out[2]
                logged = "\n".join(all_logs.records)
                assert "authentication failed (HTTP 401)" in logged and "check RELIABILITY_WRONG_KEY" in logged

            # -- the server: bearer token right and wrong, upstream key right and wrong
            for rt, label in ((rt_good, "good"), (rt_bad, "bad")):
                with serve_api(create_app(rt, api_token=API), log_level="debug") as base:
                    for name in [""] + list(LOGGERS[1:4]):  # uvicorn configured its loggers at start
                        logging.getLogger(name).addHandler(all_logs)
                    auth = {"Authorization": f"Bearer {API}"}
                    body = {"model": "router-elo-1.0", "messages": [{"role": "user", "content": "Name a tree."}],
                            "max_tokens": 2}
                    r = httpx.post(base + "/v1/chat/completions", json=body, headers=auth, timeout=120)
                    keep(f"server {label}", r.content)
                    assert r.status_code == (200 if label == "good" else 502), r.text
                    r = httpx.post(base + "/v1/chat/completions", json={**body, "stream": True}, headers=auth,
                                   timeout=120)
                    keep(f"server {label} stream", r.content)
                    r = httpx.post(base + "/v1/chat/completions", json=body, timeout=30,
                                   headers={"Authorization": f"Bearer {API_GUESS}"})
                    keep(f"server {label} guess", r.content)
                    assert r.status_code == 401
                    keep(f"server {label} models", httpx.get(base + "/v1/models", headers=auth, timeout=30).content)
                    keep(f"server {label} health", httpx.get(base + "/health", timeout=30).content)
        finally:
            rt_good.close()
            rt_bad.close()

        # -- the CLI: success, wrong key, missing key variable
        def toml(weak_env):
            path = tmp_path / f"cli-{weak_env}.toml"
            path.write_text(f'''router = "elo"
db_path = "{db}"
checkpoint_dir = "{tmp_path / 'ckpt'}"
fallback = false
[strong]
name = "Keyed SmolLM A"
model = "{LOCAL_MODELS['smollm2'].model}"
base_url = "{server.base_url}"
api_key_env = "RELIABILITY_PLANTED_KEY"
max_tokens = 2
[weak]
name = "Keyed SmolLM B"
model = "{LOCAL_MODELS['smollm2'].model}"
base_url = "{server.base_url}"
api_key_env = "{weak_env}"
max_tokens = 2
''')
            keep(f"config file {weak_env}", path.read_bytes())
            return str(path)

        assert cli_main(["--config", toml("RELIABILITY_PLANTED_KEY_B"), "chat", "Name a planet.", "--threshold", "1"]) == 0
        assert cli_main(["--config", toml("RELIABILITY_WRONG_KEY"), "chat", "Name a planet.", "--threshold", "1"]) == 2
        assert cli_main(["--config", toml("RELIABILITY_UNSET_KEY"), "chat", "Name a planet.", "--threshold", "1"]) == 2
        assert cli_main(["--config", toml("RELIABILITY_PLANTED_KEY_B"), "route", "Name a star.", "--json"]) == 0
        assert cli_main(["--config", toml("RELIABILITY_PLANTED_KEY_B"), "savings"]) == 0
        keep("llama.cpp server log", server._log_path.read_bytes() if server._log_path else b"")
    finally:
        server.stop()

    out, err = capfd.readouterr()
    keep("stdout", out.encode())
    keep("stderr", err.encode())
    assert "check RELIABILITY_WRONG_KEY" in err and "set RELIABILITY_UNSET_KEY" in err  # errors name the VARIABLE
    keep("logs", "\n".join(all_logs.records).encode())
    assert len(all_logs.records) > 50  # the capture worked: there was plenty of logging to search
    for f in sorted(tmp_path.glob("secrets.db*")):
        keep(f"database file {f.name}", f.read_bytes())
    # positive controls: the searched bytes are the real ones
    assert b"Name an animal." in seen["export file CSV"] and b"Name a river." in b"".join(
        blob for where, blob in seen.items() if where.startswith("database file"))
    assert __import__("os").environ["RELIABILITY_PLANTED_KEY"] == KEY  # it was planted

    leaks = [(what, where) for what, secret in PLANTED.items() for where, blob in seen.items()
             if secret.encode() in blob]
    assert leaks == [], leaks
