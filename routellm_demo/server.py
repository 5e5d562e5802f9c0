"""An OpenAI-compatible router server: a drop-in for ``python -m routellm.openai_server``.

Clients send ``model="router-<router>-<threshold>"`` (RouteLLM's naming),
``"router-<router>-budget<percent>"`` (budget mode: that share of calls to the strong model, the
threshold following the traffic; see budget.py), ``"router-<router>-cost<USD>"`` (budget mode given as
USD per 1,000 requests) or a configured model's name to bypass routing.
Every request goes through the same controller, and so into the same routing log, as the app.
Errors come in OpenAI's JSON error shape with the right status.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from routellm_demo.battles import STRONG, WEAK
from routellm_demo.body_limit import BodyLimit
from routellm_demo import openai_format
from routellm_demo.controller import AnswerError, BadRequestError
from routellm_demo.errors import UserError
from routellm_demo.routers import ROUTER_NAMES, UnknownRouterError
from routellm_demo.store import StoreError

# OpenAI parameters we pass to the model; anything else in the body is accepted and ignored.
PASSTHROUGH = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed",
               "presence_penalty", "frequency_penalty")


class APIError(UserError):
    """An error of the API protocol itself (a body that is not JSON, a missing bearer token...), with
    OpenAI's ``type``, ``param`` and ``code`` given where it is raised."""

    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error", param=None, code=None):
        super().__init__(message)
        self.status, self.type, self.param, self.code = status, type_, param, code


def _openai_fields(e: UserError) -> tuple[str, str | None, str | None]:
    """OpenAI's (type, param, code) for a user error: what a client library keys its handling on."""
    if isinstance(e, APIError):
        return e.type, e.param, e.code
    if isinstance(e, AnswerError):
        if e.status == 400:  # the conversation fits no model's context window: OpenAI's own code for it
            return "invalid_request_error", "messages", "context_length_exceeded"
        return "upstream_error", None, "upstream_failed"
    if isinstance(e, StoreError):  # the answer may exist, but it could not be logged: say so, retryable
        return "server_error", None, "store_unavailable"
    if isinstance(e, BadRequestError):
        return "invalid_request_error", "messages", None
    if isinstance(e, UnknownRouterError):
        return "invalid_request_error", "model", None
    return ("invalid_request_error" if e.status < 500 else "server_error"), None, None


def error_body(e: UserError) -> dict:
    """OpenAI's error object for ``e``; the message is ``e.public`` (operator detail stays in the log)."""
    type_, param, code = _openai_fields(e)
    return {"error": {"message": e.public, "type": type_, "param": param, "code": code}}


def error_response(e: UserError) -> JSONResponse:
    """The one place a user error becomes an HTTP answer: ``e.status`` and OpenAI's error shape."""
    return JSONResponse(error_body(e), status_code=e.status)


def resolve_model(model: Any, config) -> dict:
    """The routing keywords for a model name (:func:`routellm_demo.openai_format.resolve_model`), with
    the API's errors."""
    if not isinstance(model, str) or not model:
        raise APIError(400, "'model' is required: router-<router>-<threshold> or a configured model's name",
                       param="model")
    try:
        return openai_format.resolve_model(model, config)
    except UnknownRouterError as e:
        raise APIError(400, str(e), param="model", code="model_not_found") from None


_RANGES = {"temperature": (0.0, 2.0), "top_p": (0.0, 1.0), "presence_penalty": (-2.0, 2.0),
           "frequency_penalty": (-2.0, 2.0)}


def _params(body: dict) -> dict:
    """The passthrough parameters, type-checked as OpenAI does: a bad value is a 400 naming it, never
    a crash deeper down or an upstream error."""
    params = {k: body[k] for k in PASSTHROUGH if body.get(k) is not None}
    for k, v in params.items():
        if k in ("max_tokens", "max_completion_tokens", "seed"):
            if isinstance(v, bool) or not isinstance(v, int):
                raise APIError(400, f"'{k}' must be an integer, got {type(v).__name__}", param=k)
            if k != "seed" and v < 1:
                raise APIError(400, f"'{k}' must be at least 1, got {v}", param=k)
        elif k == "stop":
            if not (isinstance(v, str) or (isinstance(v, list) and len(v) <= 4 and all(isinstance(x, str) for x in v))):
                raise APIError(400, "'stop' must be a string or a list of at most 4 strings", param=k)
        else:
            low, high = _RANGES[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high:
                raise APIError(400, f"'{k}' must be a number between {low:g} and {high:g}", param=k)
    for k in ("stream", "stream_options"):
        v = body.get(k)
        if v is not None and not isinstance(v, bool if k == "stream" else dict):
            raise APIError(400, f"'{k}' must be {'true or false' if k == 'stream' else 'an object'}", param=k)
    if "max_completion_tokens" in params:
        params["max_tokens"] = params.pop("max_completion_tokens")
    return params


def create_app(runtime, *, api_token: str | None = None) -> FastAPI:
    """The FastAPI app over a built :class:`~routellm_demo.runtime.Runtime`."""
    config = runtime.config
    controller = runtime.controller
    app = FastAPI(title="routellm_demo router server", version="0.1.0")
    app.add_middleware(BodyLimit)  # 413 past body_limit.MAX_BODY_BYTES, before a body is read whole or parsed

    @app.exception_handler(UserError)  # every error a caller is meant to see: its status, OpenAI's shape
    async def _user_error(request: Request, exc: UserError):
        return error_response(exc)

    def check_auth(request: Request) -> None:
        if api_token is None:
            return
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(given.encode(), api_token.encode()):
            raise APIError(401, "invalid or missing bearer token", type_="authentication_error", code="invalid_api_key")

    @app.get("/health")
    def health():
        return {"status": "ok", "strong": config.strong.name, "weak": config.weak.name,
                "routers": list(ROUTER_NAMES), "default": f"router-{config.router}-{config.threshold:g}"}

    @app.get("/v1/models")
    def models(request: Request):
        check_auth(request)
        now = int(time.time())
        data = [{"id": f"router-{name}-{config.threshold:g}", "object": "model", "created": now, "owned_by": "routellm_demo",
                 "description": f"router {name}; any threshold in [0, 1] works: router-{name}-<threshold>; "
                                f"or a budget, a share of strong calls held on live traffic: router-{name}-budget<percent>, "
                                f"or given as USD per 1,000 requests: router-{name}-cost<USD>"}
                for name in ROUTER_NAMES]
        for role in (STRONG, WEAK):
            spec = config.endpoint(role)
            data.append({"id": spec.name, "object": "model", "created": now, "owned_by": "routellm_demo",
                         "description": f"the {role} model ({spec.model}); bypasses routing"})
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        check_auth(request)
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise APIError(400, "the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise APIError(400, "the request body must be a JSON object")
        route = resolve_model(body.get("model"), config)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise APIError(400, "'messages' must be a non-empty list of {role, content} objects", param="messages")
        params = _params(body)
        stream = bool(body.get("stream"))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        from starlette.concurrency import run_in_threadpool

        def start():
            # Route, and run to the first piece, before answering: a bad request or a failing upstream
            # still gets its proper status code, even when streaming (a UserError goes to the handler).
            return controller.respond(messages, **route, source="server", stream=stream, **params).start()

        response = await run_in_threadpool(start)
        if not stream:
            return await run_in_threadpool(openai_format.completion, response)

        def events():
            try:
                for chunk in openai_format.chunks(response, include_usage=include_usage):
                    yield "data: " + json.dumps(chunk) + "\n\n"
            except UserError as e:  # the stream broke after it started: say so in-band
                error = error_body(e)["error"]
                yield "data: " + json.dumps({"error": {"message": error["message"], "type": error["type"],
                                                       "code": error["code"]}}) + "\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def serve(runtime, *, host: str, port: int, api_token: str | None = None) -> None:
    import uvicorn

    # Model failures are logged in detail (a caller gets one sentence): to stderr, unless the host
    # configured logging itself (uvicorn configures only its own loggers).
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(runtime, api_token=api_token), host=host, port=port, log_level="info")
