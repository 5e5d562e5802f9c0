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
# Gradio's file upload (the What-if tab's prompt file) has a cap of its own, the what-if's file cap plus
# room for the multipart envelope; every other route keeps MAX_BODY_BYTES.
UPLOAD_PATH = "/gradio_api/upload"
UPLOAD_ENVELOPE_BYTES = 64 * 1024


class BodyLimit:
    """ASGI middleware: refuse HTTP request bodies over ``max_bytes`` with 413."""

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES, upload_max_bytes: int | None = None):
        self.app = app
        self.max_bytes = int(max_bytes)
        self.upload_max_bytes = None if upload_max_bytes is None else int(upload_max_bytes) + UPLOAD_ENVELOPE_BYTES

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        if self.upload_max_bytes is not None and scope.get("path", "").endswith(UPLOAD_PATH):
            limit = self.upload_max_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(send, limit)
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
                if size > limit:
                    refused = True
                    if not response_started:
                        await self._refuse(send, limit)
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

    async def _refuse(self, send, limit: int) -> None:
        # OpenAI's error shape, so the API server's clients read it like any other refusal
        body = json.dumps({"error": {"message": f"the request body is larger than {limit:,} bytes",
                                     "type": "invalid_request_error", "param": None,
                                     "code": "request_too_large"}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
