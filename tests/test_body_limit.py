"""The request-body cap of the Gradio app: unit tests on a small Starlette app (in-process ASGI), and
the real app launched as in production refusing an oversized POST while still serving."""

from __future__ import annotations

import http.client
import select
import socket
from urllib.parse import urlsplit

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from conftest import launch_local
from routellm_demo.body_limit import MAX_BODY_BYTES, UPLOAD_ENVELOPE_BYTES, UPLOAD_PATH, BodyLimit

LIMIT = 1000


def echo_app(seen: list):
    async def echo(request: Request):
        body = await request.body()
        seen.append(len(body))
        return JSONResponse({"bytes": len(body)})

    return Starlette(routes=[Route("/echo", echo, methods=["POST"])],
                     middleware=[Middleware(BodyLimit, max_bytes=LIMIT)])


def test_a_body_within_the_limit_passes_untouched():
    seen = []
    with TestClient(echo_app(seen)) as client:
        r = client.post("/echo", content=b"x" * LIMIT)
    assert r.status_code == 200 and r.json() == {"bytes": LIMIT} and seen == [LIMIT]


def test_a_declared_oversized_body_is_refused_before_the_app_runs():
    seen = []
    with TestClient(echo_app(seen)) as client:
        r = client.post("/echo", content=b"x" * (LIMIT + 1))
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    assert "1,000 bytes" in r.json()["error"]["message"] and seen == []


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit():
    seen = []

    def chunks():
        for _ in range(50):  # 50 x 100 bytes, no Content-Length
            yield b"y" * 100

    # the handler sees the client gone (Starlette's ClientDisconnect), as under a real server
    with TestClient(echo_app(seen), raise_server_exceptions=False) as client:
        r = client.post("/echo", content=chunks())
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    assert seen == []  # the handler never got the body


def test_the_file_upload_has_a_cap_of_its_own_and_other_routes_keep_theirs():
    seen = []

    async def echo(request: Request):
        body = await request.body()
        seen.append(len(body))
        return JSONResponse({"bytes": len(body)})

    app = Starlette(routes=[Route("/echo", echo, methods=["POST"]), Route(UPLOAD_PATH, echo, methods=["POST"])],
                    middleware=[Middleware(BodyLimit, max_bytes=LIMIT, upload_max_bytes=5 * LIMIT)])
    with TestClient(app) as client:
        assert client.post(UPLOAD_PATH, content=b"x" * (5 * LIMIT)).status_code == 200  # a what-if file
        assert client.post("/echo", content=b"x" * (5 * LIMIT)).status_code == 413  # a chat body is not
        too_big = 5 * LIMIT + UPLOAD_ENVELOPE_BYTES + 1
        r = client.post(UPLOAD_PATH, content=b"x" * too_big)
    assert r.status_code == 413 and seen == [5 * LIMIT]


def test_default_limit_leaves_room_for_the_longest_chat():
    # 10 turns x 8,000 characters (up to 4 UTF-8 bytes each), twice over for the answers and JSON
    assert MAX_BODY_BYTES >= 2 * 10 * 8_000 * 4


@pytest.mark.llm
def test_the_launched_app_refuses_an_oversized_post_and_keeps_serving(tmp_path):
    from routellm_demo.ui import build_demo
    from test_app_e2e import build_runtime, small_config

    rt = build_runtime(small_config(tmp_path))
    demo = build_demo(rt)
    port = urlsplit(launch_local(demo)).port
    try:
        # announce 2 MiB and send none of it: the answer must come from the Content-Length alone (sending
        # the body too races the server's close against the client's writes)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.putrequest("POST", "/gradio_api/queue/join")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(2 * MAX_BODY_BYTES))
        conn.endheaders()
        r = conn.getresponse()
        assert r.status == 413 and b"request_too_large" in r.read()
        conn.close()
        sent = chunked_bytes_sent_before_413(port, "/gradio_api/queue/join")
        print(f"chunked body: 413 after {sent:,} bytes sent")
        assert sent < 2 * MAX_BODY_BYTES
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/")
        assert conn.getresponse().status == 200
    finally:
        demo.close()
        rt.close()


def chunked_bytes_sent_before_413(port: int, path: str, chunk: int = 64 * 1024, most: int = 8 << 20) -> int:
    """POST a chunked body (no Content-Length) 64 KB at a time until the server answers; returns how
    much was sent by then. The answer must be a 413."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        while sent < most:
            if select.select([sock], [], [], 0.05)[0]:
                break  # the server has answered
            try:
                sock.sendall(f"{chunk:x}\r\n".encode() + b" " * chunk + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += chunk
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    return sent
