"""A Python SDK in the style of RouteLLM's ``Controller``: an OpenAI-shaped client that routes.

    from routellm_demo.sdk import Client
    client = Client()
    r = client.chat.completions.create(model="router-sw_ranking-0.3", messages=[{"role": "user", "content": "Hi"}])
    r.model    # the model that actually answered
    r.routing  # score, threshold, role, cost

Results are the ``openai`` package's own types, so code written for OpenAI reads them unchanged.
"""

from __future__ import annotations

from typing import Iterator

from openai.types.chat import ChatCompletion, ChatCompletionChunk

from routellm_demo import openai_format


class _Completions:
    def __init__(self, runtime):
        self._rt = runtime

    def create(self, *, model: str, messages, stream: bool = False, **params):
        route = openai_format.resolve_model(model, self._rt.config)
        response = self._rt.controller.respond(messages, **route, source="sdk", stream=stream, **params)
        if not stream:
            return ChatCompletion.model_validate(openai_format.completion(response))
        return _chunks(response)


def _chunks(response) -> Iterator[ChatCompletionChunk]:
    for chunk in openai_format.chunks(response):
        yield ChatCompletionChunk.model_validate(chunk)


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
