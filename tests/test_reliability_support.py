"""Shared helpers of the reliability tests (this module holds no tests of its own).

- :class:`FakeUpstream`: a FAKE OpenAI-compatible model server on 127.0.0.1, for the faults we cannot
  make the real local pair show on demand: hanging, refusing (connection reset), answering garbage,
  HTTP errors, and answers full of HTML/script. Its behaviour is chosen per model id, and can be
  changed while an app is running (``fake.modes[model] = "hang"``).
- ``serve_app``: the real Gradio app (``routellm_demo.ui.build_demo``) started in-process on 127.0.0.1.
- ``small_config``: the default local-pair config with a tmp database and tiny answers.

Every address here is loopback; every loop is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sqlite3
import tempfile
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from routellm_demo.config import ModelEndpoint, load_config  # noqa: E402
from routellm_demo.controller import Controller  # noqa: E402
from routellm_demo.embeddings import Embedder  # noqa: E402
from routellm_demo.runtime import Runtime  # noqa: E402
from routellm_demo.store import Store  # noqa: E402
from conftest import OPEN_ARENA, assistant_text, launch_local  # noqa: E402
from routellm_demo.llm.local import free_port  # noqa: E402
from routellm_demo.router_set import RouterSet  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else None
XSS_PAYLOADS = (
    '<script>window.__pwned = "script"; document.title = "PWNED"</script>',
    '<img src="x" onerror="window.__pwned = \'img\'; document.title = \'PWNED\'">',
    '<svg onload="window.__pwned = \'svg\'"></svg>',
    '[click me](javascript:window.__pwned=\'link\')',
    '<a href="javascript:window.__pwned=\'href\'">link</a>',
    '<iframe srcdoc="<script>parent.__pwned=\'iframe\'</script>"></iframe>',
    '**bold** `code` # heading',
)
XSS_TEXT = " ".join(XSS_PAYLOADS)


def small_config(tmp: Path, *, max_tokens: int = 2, **over):
    """The default (embedded local pair) config with a tmp database and tiny answers."""
    cfg = load_config(environ={})
    base = dict(db_path=tmp / "app.db", checkpoint_dir=tmp / "ckpt", router="sw_ranking", threshold=0.5,
                strong=replace(cfg.strong, max_tokens=max_tokens), weak=replace(cfg.weak, max_tokens=max_tokens),
                **OPEN_ARENA)
    base.update(over)
    return replace(cfg, **base)


def fake_endpoint(url: str, model: str, name: str | None = None, **kw) -> ModelEndpoint:
    return ModelEndpoint(name=name or f"Fake {model}", model=model, base_url=url, timeout=kw.pop("timeout", 3.0),
                         max_tokens=kw.pop("max_tokens", 16), **kw)


def make_runtime(config, endpoints=None, *, store_timeout: float = 5.0) -> Runtime:
    """A Runtime like ``build_runtime``'s, optionally over shared endpoints (closing it then
    closes only the store: shared endpoints belong to whoever made them)."""
    store = Store(config.db_path, timeout=store_timeout, count_flagged=config.count_flagged_votes)
    embedder = Embedder(store)
    routers = RouterSet(store, embedder, checkpoint_dir=config.checkpoint_dir, role_map=config.role_map)
    controller = Controller(config, store, embedder, routers, endpoints)
    rt = Runtime(config, store, embedder, routers, controller)
    if endpoints is not None:
        rt.close = store.close  # type: ignore[method-assign]
    return rt


_LOCAL_PAIRS: dict = {}


def local_pair_endpoints(max_tokens: int = 2) -> dict:
    """The REAL embedded local pair with answers of ``max_tokens`` tokens, started once per test
    process and shared by the reliability tests (each llama.cpp server takes seconds to start).
    Use with ``small_config(..., max_tokens=max_tokens)`` so names and prices match."""
    if max_tokens not in _LOCAL_PAIRS:
        from routellm_demo.llm.endpoints import make_endpoints

        cfg = small_config(Path(tempfile.gettempdir()), max_tokens=max_tokens)
        endpoints = make_endpoints(cfg)
        for endpoint in endpoints.values():
            if endpoint.server is not None:
                endpoint.server.ensure_running()
        _LOCAL_PAIRS[max_tokens] = endpoints
    return _LOCAL_PAIRS[max_tokens]


@contextlib.contextmanager
def serve_app(runtime, *, concurrency: int = 4, **build_kw):
    """The real app over ``runtime``, launched on 127.0.0.1; yields its URL."""
    from routellm_demo.ui import build_demo

    demo = build_demo(runtime, **build_kw)
    url = launch_local(demo, concurrency=concurrency)
    try:
        yield url
    finally:
        demo.close()


def integrity(db_path) -> str:
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def db_rows(db_path, sql, params=()) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)) as db:
        return db.execute(sql, params).fetchall()


text_of_chat = assistant_text  # the one reader of a Chatbot value, in conftest


BATTLE_NO = re.compile(r"Stored as battle #(\d+)")


def battle_row_id(vote_html: str) -> int | None:
    m = BATTLE_NO.search(vote_html or "")
    return int(m.group(1)) if m else None


# ---- a fake OpenAI-compatible upstream -----------------------------------------------------------


class FakeUpstream:
    """A FAKE model server. ``modes[model_id]`` picks the behaviour (default "ok"):

    ok       a normal answer (``answers[model_id]`` or "A fine answer."), streamed or not
    hang     accepts the request and never answers (until the server stops)
    reset    closes the connection without a response
    garbage  HTTP 200 with a body that is not JSON / not SSE, and not even UTF-8
    garbage_text  HTTP 200 with UTF-8 text that is neither JSON nor well-formed SSE
    http500  an OpenAI-shaped 500 error
    auth401  an OpenAI-shaped 401 error
    empty    a well-formed answer with no text
    """

    def __init__(self):
        self.modes: dict[str, str] = {}
        self.answers: dict[str, str] = {}
        self.requests: list[dict] = []  # {"path", "model", "authorization"}
        self._stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in outer.modes]})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    body = {}
                model = body.get("model", "")
                outer.requests.append({"path": self.path, "model": model,
                                       "authorization": self.headers.get("Authorization")})
                mode = outer.modes.get(model, "ok")
                if mode == "hang":
                    while not outer._stop.wait(0.05):
                        pass
                    self.close_connection = True
                    return
                if mode == "reset":
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if mode in ("garbage", "garbage_text"):
                    data = (b"<html>this is not JSON \x00\xff\xfe and not SSE</html>" if mode == "garbage"
                            else b"data: {this is not json\n\n{\"choices\": 7}\n\n")
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream" if body.get("stream") else "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if mode in ("http500", "auth401"):
                    status = 500 if mode == "http500" else 401
                    self._json(status, {"error": {"message": f"fake upstream says {status}", "type": "error"}})
                    return
                text = "" if mode == "empty" else outer.answers.get(model, "A fine answer.")
                chat = self.path.endswith("/chat/completions")
                if body.get("stream"):
                    self._stream(text, chat)
                elif chat:
                    self._json(200, {"id": "x", "object": "chat.completion", "created": 0, "model": model,
                                     "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                  "finish_reason": "stop"}],
                                     "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}})
                else:
                    self._json(200, {"id": "x", "object": "text_completion", "created": 0, "model": model,
                                     "choices": [{"index": 0, "text": text, "finish_reason": "stop"}]})

            def _json(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, text, chat):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                words = re.findall(r"\S+\s*", text) or [""]
                for i, w in enumerate(words):
                    last = i == len(words) - 1
                    choice = ({"index": 0, "delta": {"content": w}, "finish_reason": "stop" if last else None} if chat
                              else {"index": 0, "text": w, "finish_reason": "stop" if last else None})
                    self.wfile.write(b"data: " + json.dumps({"id": "x", "object": "chunk", "created": 0, "model": "m",
                                                             "choices": [choice]}).encode() + b"\n\n")
                self.wfile.write(b"data: [DONE]\n\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="fake-upstream")

    def __enter__(self) -> "FakeUpstream":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()


def wait_until(predicate, timeout: float, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


class RawSession:
    """One app session spoken to over Gradio's plain HTTP API (``/gradio_api/call/<api_name>``), so a
    test can send exactly the bytes it wants: forged, extra or replayed fields included. The session
    is the ``session_hash``; the app keeps its gr.State (session id, battle id) server-side under it.
    One call at a time per session: Gradio streams a session's results through one queue, so two
    concurrent readers of one session would take each other's messages (use gradio_client for that)."""

    def __init__(self, url: str, session_hash: str | None = None):
        import uuid

        self.url = url.rstrip("/") + "/gradio_api/call/"
        self.session_hash = session_hash or uuid.uuid4().hex

    def body(self, data) -> bytes:
        # ensure_ascii: a lone surrogate travels as the JSON escape "\ud800", as a browser can send it
        return json.dumps({"data": data, "session_hash": self.session_hash}, ensure_ascii=True).encode()

    def post(self, api: str, raw: bytes):
        """POST a raw body; returns (status, outputs or error text)."""
        import httpx

        r = httpx.post(self.url + api, content=raw, headers={"Content-Type": "application/json"}, timeout=30)
        if r.status_code != 200:
            return r.status_code, r.text
        event_id = r.json()["event_id"]
        text = httpx.get(f"{self.url}{api}/{event_id}", timeout=120).text
        events = re.findall(r"^event: (\w+)\ndata: (.*)$", text, re.M)
        kind, data = events[-1]
        return (200, json.loads(data)) if kind == "complete" else (500, data)

    def call(self, api: str, *data):
        return self.post(api, self.body(list(data)))


@contextlib.contextmanager
def serve_api(fastapi_app, *, log_level: str = "warning"):
    """The OpenAI-compatible server (uvicorn) in a thread on 127.0.0.1; yields its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(fastapi_app, host="127.0.0.1", port=free_port(), log_level=log_level))
    thread = threading.Thread(target=server.run, daemon=True, name="uvicorn")
    thread.start()
    try:
        assert wait_until(lambda: server.started, 30, 0.05), "server did not start"
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


def file_digest(path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
