"""A cap on request bodies: one POST must not be able to fill a public demo's memory.

Starlette (under Gradio and under the API server) reads a request body whole before a handler sees
it, whatever its size. This ASGI middleware sits in front of both apps: 413 at once when
Content-Length says too much, or as soon as a body sent without one (chunked) passes the limit; the
app then sees the client gone and stops reading. The largest legitimate request, a chat of 10 turns
of 8,000 characters (up to 4 UTF-8 bytes each) with its answers, is well under the limit.
"""

from __future__ import annotations

import json

MAX_BODY_BYTES = 1 << 20


class BodyLimit:
    """ASGI middleware: refuse HTTP request bodies over ``max_bytes`` with 413."""

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES):
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        size = 0
        response_started = refused = False

        async def limited_receive():
            nonlocal size, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > self.max_bytes:
                    refused = True
                    if not response_started:
                        await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            nonlocal response_started
            if refused:
                return  # we answered 413: whatever the app says after the "disconnect" goes nowhere
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _refuse(self, send) -> None:
        # OpenAI's error shape, so the API server's clients read it like any other refusal
        body = json.dumps({"error": {"message": f"the request body is larger than {self.max_bytes:,} bytes",
                                     "type": "invalid_request_error", "param": None,
                                     "code": "request_too_large"}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
