"""A Python SDK in the style of RouteLLM's ``Controller``: an OpenAI-shaped client that routes.

    from routellm_demo.sdk import Client
    client = Client()
    r = client.chat.completions.create(model="router-sw_ranking-0.3", messages=[{"role": "user", "content": "Hi"}])
    r.model    # the model that actually answered
    r.routing  # score, threshold, role, cost

Results are the ``openai`` package's own types, so code written for OpenAI reads them unchanged.
"""

from __future__ import annotations

import time
import uuid
from typing import Iterator

from openai.types.chat import ChatCompletion, ChatCompletionChunk

from routellm_demo.battles import STRONG, WEAK
from routellm_demo.controller import Answer, Decision
from routellm_demo.routers import parse_router_model


class _Completions:
    def __init__(self, runtime):
        self._rt = runtime

    def create(self, *, model: str, messages, stream: bool = False, **params):
        config = self._rt.config
        router = threshold = role = None
        for r in (STRONG, WEAK):
            if model in (config.endpoint(r).name, config.endpoint(r).model):
                role = r
        if role is None:
            choice = parse_router_model(model)
            router, threshold = choice.name, choice.threshold
        gen = self._rt.controller.stream(messages, router=router, threshold=threshold, model_role=role,
                                         source="sdk", _stream=stream, **params)
        return _chunks(gen) if stream else _completion(gen)


def _routing(d: Decision, a: Answer | None) -> dict:
    out = {"router": d.router, "threshold": d.threshold, "score": d.score, "routed_to": d.role}
    if a is not None:
        out.update(model=a.model, cost_usd=a.cost, strong_cost_usd=a.strong_cost, fallback_from=a.fallback_from)
    return out


def _completion(gen) -> ChatCompletion:
    decision = next(gen)
    answer = [item for item in gen if isinstance(item, Answer)][-1]
    return ChatCompletion.model_validate({
        "id": "chatcmpl-" + uuid.uuid4().hex, "object": "chat.completion", "created": int(time.time()),
        "model": answer.model,
        "choices": [{"index": 0, "finish_reason": answer.finish_reason or "stop",
                     "message": {"role": "assistant", "content": answer.text}}],
        "usage": {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
                  "total_tokens": answer.prompt_tokens + answer.completion_tokens},
        "routing": _routing(decision, answer),
    })


def _chunks(gen) -> Iterator[ChatCompletionChunk]:
    cid, created = "chatcmpl-" + uuid.uuid4().hex, int(time.time())
    decision = next(gen)

    def chunk(delta, finish=None, model=None, **extra):
        return ChatCompletionChunk.model_validate({
            "id": cid, "object": "chat.completion.chunk", "created": created, "model": model or decision.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra})

    yield chunk({"role": "assistant", "content": ""})
    for item in gen:
        if isinstance(item, Answer):
            yield chunk({}, finish=item.finish_reason or "stop", model=item.model, routing=_routing(decision, item))
        else:
            yield chunk({"content": item})


class _Chat:
    def __init__(self, runtime):
        self.completions = _Completions(runtime)


class Client:
    """``Client()`` reads the configuration like the app; pass a built runtime to share one."""

    def __init__(self, runtime=None, *, config=None):
        if runtime is None:
            from routellm_demo.runtime import build_runtime

            runtime = build_runtime(config)
        self.runtime = runtime
        self.chat = _Chat(runtime)

    def close(self) -> None:
        self.runtime.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
