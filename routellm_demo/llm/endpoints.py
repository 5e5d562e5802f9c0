"""Every LLM call goes through here, and through the ``openai`` client.

Why one path: OpenAI, OpenRouter, Together, vLLM, Ollama and llama.cpp (the embedded pair) all speak
the OpenAI API, so one client with a ``base_url`` covers them all, and the controller above sees
one result type (:class:`Completion`) and one error type (:class:`EndpointError`) whatever the
backend. The client never retries (``max_retries=0``): retrying or falling back to the other model
is the controller's decision, made once, and logged. Past 500 lines because both modes, streaming
and not, and the classification of every failure into one error type belong to that one path.

Two modes:

- ``api="chat"``: ``/v1/chat/completions`` with the messages as they are.
- ``api="completion"``: for base models without a usable chat template (the embedded Gemma 3 270M):
  the conversation is rendered as a few-shot "User: / Assistant:" transcript
  (:func:`fewshot_prompt`) and sent to ``/v1/completions``, cut at the format's stop strings
  (:data:`PROMPT_FORMATS`) and the spec's.

Token usage comes from the API when it reports it (``source="api"``). llama.cpp's server reports no
usage when streaming, so for embedded models the text is counted with the model's own tokenizer
(``POST /extras/tokenize``, ``source="tokenizer"``; in chat mode the prompt is counted over a
ChatML rendering of the messages, so a template's hidden default system prompt is not counted).
Otherwise usage is estimated at 4 characters per token plus 4 tokens per message
(``source="estimate"``), the usual rule of thumb for English text.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Sequence

import openai

from routellm_demo.config import Config, ConfigError, ModelEndpoint
from routellm_demo.llm.local import LocalModelError, LocalServer

PARAMS = ("temperature", "max_tokens", "stop", "seed", "top_p", "presence_penalty", "frequency_penalty")
ERROR_KINDS = ("timeout", "connection", "auth", "http", "empty", "bad_response", "too_long")
# What a visitor or an API caller is told, by kind: one sentence, no model name (the arena hides it),
# no URL, port, path or server log line; the detail (``str(error)``) goes to the server log.
PUBLIC_MESSAGES = {
    "timeout": "The model did not answer in time.",
    "connection": "The model is unavailable right now.",
    "auth": "The model refused this server's credentials.",
    "http": "The model's server reported an error.",
    "empty": "The model returned an empty answer.",
    "bad_response": "The model's answer could not be read.",
    "too_long": "The conversation is too long for the model's context window; shorten it or start a new chat.",
}
# Context-window fitting (embedded models, whose window n_ctx is known): tokens kept free for what the
# count cannot see (a chat template's hidden system prompt), and the shortest answer worth asking for.
CONTEXT_MARGIN = 48
MIN_ANSWER_TOKENS = 32

FEWSHOT_INTRO = (
    "The following is a conversation between a curious user and a helpful, knowledgeable assistant. "
    "The assistant gives correct, clear and concise answers."
)
# Four short exchanges: enough for a 270M base model to pick up the turn format and a terse,
# factual register; each answer fits on one line so the "\n\n" stop ends a turn cleanly.
FEWSHOT_EXAMPLES = (
    ("What is the capital of Japan?", "The capital of Japan is Tokyo."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("Give me one tip for sleeping better.", "Go to bed and wake up at the same time every day, even on weekends."),
    ("Why is the sky blue?", "Sunlight is scattered by the molecules in the air, and blue light is scattered "
                             "much more than red light, so the sky looks blue."),
)


@dataclass(frozen=True)
class Usage:
    """Tokens in and out, and how they were counted: "api", "tokenizer" or "estimate"."""

    prompt_tokens: int
    completion_tokens: int
    source: str

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Completion:
    """One answer. ``model`` is the display name; ``ttft_ms`` is set for streamed answers only."""

    text: str
    model: str
    usage: Usage
    finish_reason: str | None
    latency_ms: float
    ttft_ms: float | None = None
    dropped_messages: int = 0  # oldest messages left out to fit the model's context window


class EndpointError(RuntimeError):
    """A failed call, classified so the controller can decide (fall back, tell the user).

    ``kind`` is one of ERROR_KINDS; ``status`` the HTTP status when there was one. The message
    names the model and never contains the key; it is for the operator (the log, the CLI), and may
    hold URLs and the server's output. ``public`` is what a visitor is shown instead.
    """

    def __init__(self, model: str, kind: str, message: str, status: int | None = None):
        super().__init__(message)
        self.model = model
        self.kind = kind
        self.status = status

    @property
    def public(self) -> str:
        """The visitor's sentence for this kind of failure (PUBLIC_MESSAGES)."""
        return PUBLIC_MESSAGES.get(self.kind, PUBLIC_MESSAGES["connection"])


# ---- prompts ----------------------------------------------------------------------------------


def fewshot_prompt(messages: Sequence[Mapping[str, str]]) -> str:
    """Render a conversation as a few-shot transcript ending in "Assistant:" for a base model."""
    system = " ".join(m["content"].strip() for m in messages if m.get("role") == "system" and m.get("content"))
    intro = FEWSHOT_INTRO + (f" The assistant follows these instructions: {system}" if system else "")
    parts = [intro, ""]
    for question, answer in FEWSHOT_EXAMPLES:
        parts += [f"User: {question}", f"Assistant: {answer}", ""]
    for m in messages:
        role, content = m.get("role"), (m.get("content") or "").strip()
        if role == "user":
            parts.append(f"User: {content}")
        elif role == "assistant":
            parts += [f"Assistant: {content}", ""]
    if not parts[-1].startswith("User:"):
        # the conversation ends with an answer (or nothing): ask the model to continue anyway
        while parts and parts[-1] == "":
            parts.pop()
        parts.append("")
    return "\n".join(parts) + "\nAssistant:"


@dataclass(frozen=True)
class PromptFormat:
    """A completion-mode prompt format: how a conversation is rendered, and the stop strings that
    end the answer where the transcript's next turn would begin. The stops belong to the format, so
    every endpoint using it sends them, merged with its own ``stop`` and the caller's."""

    render: Callable[[Sequence[Mapping[str, str]]], str]
    stop: tuple[str, ...]


# Each name in config.PROMPT_FORMATS. Few-shot: a base model that goes on past its answer writes the
# next "User:" turn (after a blank line, and "\nUser:" is inside "\n\nUser:").
PROMPT_FORMATS: Mapping[str, PromptFormat] = {
    "fewshot": PromptFormat(fewshot_prompt, ("\nUser:",)),
}


def prompt_format(spec: ModelEndpoint) -> PromptFormat | None:
    """The prompt format of a completion-mode endpoint (few-shot unless it says otherwise); None in chat mode."""
    if spec.api != "completion":
        return None
    try:
        return PROMPT_FORMATS[spec.prompt_format or "fewshot"]
    except KeyError:
        raise ValueError(f"unknown prompt_format {spec.prompt_format!r}") from None


def render_prompt(spec: ModelEndpoint, messages: Sequence[Mapping[str, str]]) -> str:
    """The completion-mode prompt for ``spec``'s prompt format."""
    try:
        return PROMPT_FORMATS[spec.prompt_format or "fewshot"].render(messages)
    except KeyError:
        raise ValueError(f"unknown prompt_format {spec.prompt_format!r}") from None


def stop_strings(spec: ModelEndpoint, extra: Sequence[str] = ()) -> list[str]:
    """The stop strings a request to ``spec`` sends: its prompt format's, its own ``stop``, then the
    caller's, without duplicates or strings that contain another one (a stop at "\nUser:" already
    ends "\n\nUser:"; OpenAI's API takes at most four)."""
    fmt = prompt_format(spec)
    merged = list(dict.fromkeys([*(fmt.stop if fmt else ()), *spec.stop, *extra]))
    return [s for s in merged if s and not any(o != s and o and o in s for o in merged)]


def warmup_prompt(spec: ModelEndpoint) -> str:
    """What an embedded server evaluates once at start: the prefix every real prompt shares."""
    return render_prompt(spec, [{"role": "user", "content": "Hello"}]) if spec.api == "completion" else "Hello"


def prompt_text(spec: ModelEndpoint, messages: Sequence[Mapping[str, str]]) -> str:
    """What ``spec``'s model reads for ``messages``: its completion-mode prompt, or ChatML for a chat
    API (the common template; a remote model's own may differ by a few tokens)."""
    return render_prompt(spec, messages) if spec.api == "completion" else _chatml(messages)


def _chatml(messages: Sequence[Mapping[str, str]]) -> str:
    body = "".join(f"<|im_start|>{m.get('role', 'user')}\n{m.get('content') or ''}<|im_end|>\n" for m in messages)
    return body + "<|im_start|>assistant\n"


def _oldest_turn(messages) -> int | None:
    """Index of the oldest message that may be dropped: not a system message, not the last one."""
    return next((i for i, m in enumerate(messages[:-1]) if m.get("role") != "system"), None)


def estimate_tokens(text: str) -> int:
    """The documented fallback: about 4 characters per token."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


# ---- the endpoint -----------------------------------------------------------------------------


class Endpoint:
    """One model, called through the ``openai`` client.

    For an embedded model (``spec.local``) the base URL comes from its :class:`LocalServer`, which
    is started on first use and restarted once if found dead; pass ``server`` to share one.
    """

    def __init__(
        self,
        spec: ModelEndpoint,
        *,
        base_url: str | None = None,
        environ: Mapping[str, str] | None = None,
        server: LocalServer | None = None,
    ):
        self.spec = spec
        self._environ = environ
        self._base_url = base_url or spec.base_url
        self.server = server
        if self._base_url is None and server is None:
            if spec.local is None:
                raise ValueError(f"{spec.name}: no base_url and not an embedded model")
            self.server = LocalServer(spec, warmup_prompt=warmup_prompt(spec))
        self._client: openai.OpenAI | None = None
        self._client_url: str | None = None
        self._key: str | None = None
        self._bos_tokens: int | None = None

    def __repr__(self) -> str:
        return f"Endpoint({self.spec.name!r}, base_url={self.base_url!r}, api={self.spec.api!r})"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def base_url(self) -> str | None:
        return self._base_url or (self.server.base_url if self.server else None)

    def close(self) -> None:
        """Stop this endpoint's embedded server, if it has one."""
        if self.server is not None:
            self.server.stop()

    # -- public calls

    def complete(self, messages: Sequence[Mapping[str, str]], **params) -> Completion:
        """One answer, not streamed."""
        messages, dropped, params = self._fit_context(messages, params)
        request = self._request(messages, params)
        prompt = request.pop("prompt", None)
        for attempt in (0, 1):
            client = self._client_for_call()
            started = time.perf_counter()
            try:
                if self.spec.api == "chat":
                    response = client.chat.completions.create(model=self.spec.model, messages=list(messages), **request)
                    choice = response.choices[0]
                    text = choice.message.content or ""
                else:
                    response = client.completions.create(model=self.spec.model, prompt=prompt, **request)
                    choice = response.choices[0]
                    text = choice.text or ""
                break
            except openai.OpenAIError as e:
                if self._restarted_dead_server(e) and attempt == 0:
                    continue
                raise self._error(e) from e
            except (IndexError, AttributeError, TypeError) as e:
                raise EndpointError(self.name, "bad_response", f"{self.name}: malformed response ({e})") from e
            except ValueError as e:  # bytes that are not UTF-8, text that is not JSON: the model failed
                raise self._unreadable(e) from e
        latency_ms = (time.perf_counter() - started) * 1000
        text = text.strip()
        if not text:
            raise EndpointError(self.name, "empty", f"{self.name}: returned an empty answer "
                                                    f"(finish_reason={choice.finish_reason})")
        usage = response.usage
        if usage is not None and usage.prompt_tokens is not None and usage.completion_tokens is not None:
            counted = Usage(usage.prompt_tokens, usage.completion_tokens, "api")
        else:
            counted = self._count(messages, text)
        return Completion(text, self.name, counted, choice.finish_reason, latency_ms, dropped_messages=dropped)

    def stream(self, messages: Sequence[Mapping[str, str]], **params) -> Iterator[str | Completion]:
        """Yield text pieces as they arrive, then exactly one final :class:`Completion`."""
        messages, dropped, params = self._fit_context(messages, params)
        request = self._request(messages, params)
        prompt = request.pop("prompt", None)
        for attempt in (0, 1):
            client = self._client_for_call()
            started = time.perf_counter()
            pieces: list[str] = []
            ttft_ms = None
            finish_reason = None
            api_usage = None
            try:
                if self.spec.api == "chat":
                    stream = client.chat.completions.create(model=self.spec.model, messages=list(messages),
                                                            stream=True, stream_options={"include_usage": True},
                                                            **request)
                else:
                    stream = client.completions.create(model=self.spec.model, prompt=prompt, stream=True,
                                                       stream_options={"include_usage": True}, **request)
                with stream:
                    for chunk in stream:
                        if getattr(chunk, "usage", None) is not None:
                            api_usage = chunk.usage
                        if not chunk.choices:
                            continue
                        choice = chunk.choices[0]
                        if choice.finish_reason:
                            finish_reason = choice.finish_reason
                        piece = (choice.delta.content if self.spec.api == "chat" else choice.text) or ""
                        if not pieces:
                            piece = piece.lstrip()  # base models start with a space after "Assistant:"
                        if not piece:
                            continue
                        if ttft_ms is None:
                            ttft_ms = (time.perf_counter() - started) * 1000
                        pieces.append(piece)
                        yield piece
                break
            except openai.OpenAIError as e:
                if not pieces and self._restarted_dead_server(e) and attempt == 0:
                    continue
                raise self._error(e) from e
            except (IndexError, AttributeError, TypeError) as e:
                raise EndpointError(self.name, "bad_response", f"{self.name}: malformed stream chunk ({e})") from e
            except ValueError as e:  # bytes that are not UTF-8, text that is not JSON: the model failed
                raise self._unreadable(e) from e
        latency_ms = (time.perf_counter() - started) * 1000
        text = "".join(pieces).strip()
        if not text:
            raise EndpointError(self.name, "empty", f"{self.name}: returned an empty answer "
                                                    f"(finish_reason={finish_reason})")
        if api_usage is not None and api_usage.prompt_tokens is not None and api_usage.completion_tokens is not None:
            usage = Usage(api_usage.prompt_tokens, api_usage.completion_tokens, "api")
        else:
            usage = self._count(messages, text)
        yield Completion(text, self.name, usage, finish_reason, latency_ms, ttft_ms, dropped_messages=dropped)

    # -- plumbing

    def _fit_context(self, messages, params) -> tuple[list, int, dict]:
        """Make the conversation fit an embedded model's context window (llama.cpp refuses a prompt
        that does not): drop the oldest turns until the prompt leaves room for a full answer; if the
        last message alone does not, shorten the answer (down to MIN_ANSWER_TOKENS), else refuse with
        "too_long". Returns (messages, how many were dropped, params). Remote endpoints: unchanged
        (their window is not known here; they answer a too-long request with their own error)."""
        n_ctx = getattr(self.server, "n_ctx", None)
        msgs = list(messages)
        if not n_ctx or not msgs:
            return msgs, 0, params
        answer = self._answer_tokens(params)
        room = n_ctx - CONTEXT_MARGIN
        if len(prompt_text(self.spec, msgs).encode("utf-8")) + answer <= room:
            return msgs, 0, params  # a token covers at least one byte: it fits, no need to count
        self._client_for_call()  # the embedded server counts the tokens: make sure it is up
        dropped = 0
        while (tokens := self._prompt_tokens(msgs)) + answer > room:
            oldest = _oldest_turn(msgs)
            if oldest is None:  # only the system prompt and the last message are left
                if room - tokens >= MIN_ANSWER_TOKENS:
                    return msgs, dropped, {**params, "max_tokens": room - tokens}
                raise EndpointError(self.name, "too_long", (
                    f"{self.name}: the message takes {tokens:,} tokens and the model's context window holds "
                    f"{n_ctx:,} (with room for at least a {MIN_ANSWER_TOKENS}-token answer): shorten it"))
            del msgs[oldest]
            dropped += 1
            while (oldest := _oldest_turn(msgs)) is not None and msgs[oldest].get("role") == "assistant":
                del msgs[oldest]  # never open the conversation on an answer
                dropped += 1
        return msgs, dropped, params

    def _prompt_tokens(self, messages) -> int:
        """The prompt's length in the model's own tokens (its UTF-8 byte count if the tokenizer is out
        of reach: never less than the real count)."""
        text = prompt_text(self.spec, messages)
        try:
            return len(self._tokenize(text))
        except (OSError, ValueError, KeyError):
            return len(text.encode("utf-8")) + 1

    def _answer_tokens(self, params) -> int:
        """The answer length asked for, capped by the spec's max_tokens."""
        asked = params.get("max_tokens")
        return max(1, min(int(self.spec.max_tokens if asked is None else asked), self.spec.max_tokens))

    def _request(self, messages, params) -> dict:
        """Validated request parameters: max_tokens capped by the spec, stop strings merged."""
        if not messages:
            raise ValueError("messages must not be empty")
        unknown = sorted(set(params) - set(PARAMS))
        if unknown:
            raise TypeError(f"unsupported parameter(s): {', '.join(unknown)} (supported: {', '.join(PARAMS)})")
        request = {k: v for k, v in params.items() if v is not None}
        request["max_tokens"] = self._answer_tokens(request)
        if "temperature" not in request and self.spec.temperature is not None:
            request["temperature"] = self.spec.temperature
        extra = request.pop("stop", None)
        extra = [extra] if isinstance(extra, str) else list(extra or [])
        stop = stop_strings(self.spec, extra)
        if stop:
            request["stop"] = stop
        if self.spec.api == "completion":
            request["prompt"] = render_prompt(self.spec, messages)
        return request

    def _client_for_call(self) -> openai.OpenAI:
        """The client for the current base URL (an embedded server may have moved port on restart)."""
        url = self._base_url
        if url is None:
            try:
                url = self.server.ensure_running()  # type: ignore[union-attr]
            except LocalModelError as e:
                raise EndpointError(self.name, "connection", str(e)) from e
        if self._client is None or self._client_url != url:
            try:
                self._key = self.spec.api_key(self._environ)
            except ConfigError as e:
                raise EndpointError(self.name, "auth", f"{self.name}: {e}") from None
            self._client = openai.OpenAI(
                base_url=url,
                api_key=self._key or "no-key-needed",  # the client insists on a non-empty key
                timeout=self.spec.timeout,
                max_retries=0,
            )
            self._client_url = url
        return self._client

    def _restarted_dead_server(self, error: Exception) -> bool:
        """After a connection failure: if our embedded server died, restart it (once) and retry.
        Asked again after the retry failed too, so a server that died again is reported with its
        cause (the signal), not as a refused connection."""
        if self.server is None or not isinstance(error, openai.APIConnectionError):
            return False
        if isinstance(error, openai.APITimeoutError) or self.server.is_alive(grace=1.0):
            return False
        try:
            self.server.ensure_running()
        except LocalModelError as e:
            raise EndpointError(self.name, "connection", str(e)) from e
        return True

    def _error(self, e: Exception) -> EndpointError:
        """Map an openai exception to an EndpointError with a message that names the model."""
        name, url = self.name, self._client_url or self.base_url
        if isinstance(e, openai.APITimeoutError):
            return EndpointError(name, "timeout", f"{name}: no answer within {self.spec.timeout:g}s from {url}")
        if isinstance(e, openai.APIConnectionError):
            cause = e.__cause__
            while cause is not None and cause.__cause__ is not None:
                cause = cause.__cause__
            detail = f" ({self._scrub(str(cause))})" if cause is not None and str(cause) else ""
            return EndpointError(name, "connection", f"{name}: cannot connect to {url}{detail}")
        if isinstance(e, (openai.AuthenticationError, openai.PermissionDeniedError)):
            hint = (f"check {self.spec.api_key_env}" if self.spec.api_key_env
                    else "the endpoint wants a key: set api_key_env")
            return EndpointError(name, "auth", f"{name}: authentication failed (HTTP {e.status_code}) at {url}: {hint}",
                                 e.status_code)
        if isinstance(e, openai.APIStatusError):
            message = self._scrub(str(getattr(e, "message", "") or e)).strip().splitlines()
            first = message[0][:200] if message else ""
            return EndpointError(name, "http", f"{name}: HTTP {e.status_code} from {url}: {first}", e.status_code)
        return EndpointError(name, "bad_response", f"{name}: bad response from {url}: {self._scrub(str(e))[:200]}")

    def _unreadable(self, e: ValueError) -> EndpointError:
        """UnicodeDecodeError / JSONDecodeError from the client: one wording for every caller."""
        detail = self._scrub(str(e))[:120]
        return EndpointError(self.name, "bad_response",
                             f"{self.name}: unreadable response ({type(e).__name__}: {detail})")

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    # -- token counting when the API gives none

    def _count(self, messages, text: str) -> Usage:
        rendered = prompt_text(self.spec, messages)
        if self.server is not None:
            try:
                bos = self._bos()
                prompt = len(self._tokenize(rendered))
                completion = len(self._tokenize(text)) - bos
                return Usage(prompt, max(completion, 1), "tokenizer")
            except (OSError, ValueError, KeyError):
                pass  # fall through to the estimate
        prompt = sum(estimate_tokens(m.get("content") or "") + 4 for m in messages) if self.spec.api == "chat" \
            else estimate_tokens(rendered)
        return Usage(prompt, estimate_tokens(text), "estimate")

    def _bos(self) -> int:
        """Tokens the tokenizer adds to any text (BOS for Gemma, none for SmolLM2)."""
        if self._bos_tokens is None:
            self._bos_tokens = len(self._tokenize(""))
        return self._bos_tokens

    def _tokenize(self, text: str) -> list[int]:
        """llama-cpp-python's ``POST /extras/tokenize`` ({"input": str} -> {"tokens": [int]})."""
        root = (self._client_url or self.base_url or "").rstrip("/").removesuffix("/v1")
        request = urllib.request.Request(
            f"{root}/extras/tokenize", data=json.dumps({"input": text}).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )
        if self._key:
            request.add_header("Authorization", f"Bearer {self._key}")
        with urllib.request.urlopen(request, timeout=min(self.spec.timeout, 10)) as response:
            return list(json.load(response)["tokens"])


def make_endpoints(config: Config, environ: Mapping[str, str] | None = None) -> dict[str, Endpoint]:
    """Endpoints for the "strong" and "weak" roles; one LocalServer per embedded model, shared."""
    servers: dict[str, LocalServer] = {}
    endpoints = {}
    for role in ("strong", "weak"):
        spec = config.endpoint(role)
        server = None
        if spec.base_url is None and spec.local is not None:
            server = servers.get(spec.local) or LocalServer.from_config(spec, config, warmup_prompt=warmup_prompt(spec))
            servers[spec.local] = server
        endpoints[role] = Endpoint(spec, environ=environ, server=server)
    return endpoints
