"""A chat turn, end to end: route -> call -> account -> log.

The app, the server, the CLI and the SDK all answer through :class:`Controller`, so the same input
gets the same decision everywhere and every answer lands in the same routing log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Iterator, Mapping, Sequence

from routellm_demo.battles import STRONG, WEAK
from routellm_demo.budget import SIZE_WINDOW, BudgetError, BudgetThresholds, CostBudget, cost_budget
from routellm_demo.conversation import ROUTED_ON, earlier_user_turns, routed_on, routing_vectors, used_context
from routellm_demo.errors import UserError
from routellm_demo.llm.costs import cost_usd, other_prompt_tokens
from routellm_demo.llm.endpoints import Completion, Endpoint, EndpointError, make_endpoints
from routellm_demo.response import Response
from routellm_demo.routers import check_router, check_threshold
from routellm_demo.routers.base import routes_to_strong

logger = logging.getLogger(__name__)

NO_ANSWER = "No model could answer right now; see the server log."
# How a fallback is explained next to the answer, by the routed model's error kind.
SIZES_TTL_S = 10.0  # how stale the request sizes a cost budget is priced at may be

FALLBACK_REASONS = {"timeout": "did not answer in time", "too_long": "cannot hold this conversation"}


class TextPiece(str):
    """A piece of an answer's text that knows which model wrote it: after a fallback that is not the
    model the decision named, and a stream's chunks must say so from the first one."""

    model: str

    def __new__(cls, text: str, model: str) -> "TextPiece":
        piece = super().__new__(cls, text)
        piece.model = model
        return piece


class BadRequestError(UserError, ValueError):
    """The caller's messages cannot be answered (empty, malformed): nothing was sent to a model."""


class AnswerError(UserError, RuntimeError):
    """No model could answer. The message names the model(s) and the cause, for the operator (the
    log, the CLI); ``public`` is the one sentence a visitor or an API caller is shown."""

    def __init__(self, message: str, *, errors: Sequence[EndpointError] = (), decision=None):
        super().__init__(message)
        self.errors = list(errors)
        self.decision = decision

    @property
    def public(self) -> str:
        """What the caller can act on: a conversation too long for every model (start a new chat), a
        timeout (try again); anything else is the operator's to fix, so it says where to look."""
        if self.errors and all(e.kind == "too_long" for e in self.errors):
            return self.errors[-1].public
        if self.errors and self.errors[-1].kind == "timeout":
            return "The model did not answer in time; try again."
        return NO_ANSWER

    @property
    def status(self) -> int:
        """HTTP status a server should answer with: 400 when the conversation fits no model's context,
        504 for timeouts, else 502."""
        if self.errors and all(e.kind == "too_long" for e in self.errors):
            return 400
        return 504 if self.errors and self.errors[-1].kind == "timeout" else 502


@dataclass
class Decision:
    """What the router said about one prompt."""

    router: str  # "none" when the caller named a model and routing was bypassed
    threshold: float | None  # None when bypassed
    score: float | None  # the strong win rate; None when bypassed
    role: str  # "strong" or "weak"
    model: str  # display name of the model the router chose
    routing_ms: float
    prompt_sha256: str
    explanation: list = field(default_factory=list)
    budget: float | None = None  # the target share of strong calls, in budget mode (the threshold is its)
    cost_budget: float | None = None  # USD per 1,000 requests, when the budget was given as a cost
    # What the score was computed on (config routing.context): "last turn", or "last turn + context" when
    # earlier user turns were read too; None when routing was bypassed.
    routed_on: str | None = ROUTED_ON["last_turn"]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Answer:
    """One finished answer with its accounting.

    A fallback answer (the routed model failed, the other one answered: ``fallback_from`` set) is
    not a routing saving: its ``saved`` is 0 and what it cost less than the strong model would have
    is ``fallback_cost_difference``, reported apart (as :meth:`Store.savings` does).
    """

    text: str
    decision: Decision
    model: str  # display name of the model that actually answered
    role: str
    prompt_tokens: int
    completion_tokens: int
    usage_source: str
    cost: float
    strong_cost: float
    latency_ms: float
    ttft_ms: float | None
    finish_reason: str | None = None
    fallback_from: str | None = None  # display name of the routed model that failed
    fallback_note: str | None = None  # the visitor's one sentence about the fallback, no detail
    log_id: int | None = None
    dropped_messages: int = 0  # oldest messages left out to fit the model's context window
    # The routed model's failure, for the operator only (the CLI, the log; never a visitor or an API
    # caller: it may hold URLs and variable names): its kind (EndpointError.kind) and message.
    fallback_kind: str | None = None
    fallback_error: str | None = None

    @property
    def is_fallback(self) -> bool:
        return self.fallback_from is not None

    @property
    def saved(self) -> float:
        """What routing saved on this answer (strong_cost - cost); 0.0 for a fallback answer."""
        return 0.0 if self.is_fallback else self.strong_cost - self.cost

    @property
    def fallback_cost_difference(self) -> float:
        """For a fallback answer, strong_cost - cost (not a saving: the routed model failed); else 0.0."""
        return self.strong_cost - self.cost if self.is_fallback else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["saved"] = self.saved
        d["fallback_cost_difference"] = self.fallback_cost_difference
        return d


def text_of(content) -> str:
    """The text of an OpenAI message content (a string, or a list of typed parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type", "text") == "text")
    raise BadRequestError("message content must be a string or a list of text parts")


def normalise_messages(messages) -> list[dict]:
    """Validate OpenAI-style messages; returns plain {role, content} dicts."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if not isinstance(messages, (list, tuple)) or not messages:
        raise BadRequestError("messages must be a non-empty list of {role, content} objects")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m:
            raise BadRequestError(f"message {i} must be an object with 'role' and 'content'")
        role = m["role"]
        if role not in ("system", "user", "assistant", "developer", "tool"):
            raise BadRequestError(f"message {i} has unknown role {role!r}")
        text = text_of(m.get("content"))
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequestError(f"message {i} is not valid UTF-8 text") from None
        out.append({"role": "system" if role == "developer" else role, "content": text})
    return out


def last_user_turn(messages: list[dict]) -> str:
    """The text the router reads: the last user turn, which must not be blank."""
    for m in reversed(messages):
        if m["role"] == "user":
            if not m["content"].strip():
                raise BadRequestError("the last user message is empty; type a question")
            return m["content"]
    raise BadRequestError("there is no user message to answer")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Controller:
    """Routes prompts and answers them through the configured strong/weak endpoints.

    ``endpoints`` maps "strong"/"weak" to objects with ``complete``/``stream`` (an
    :class:`~routellm_demo.llm.endpoints.Endpoint`); built from the config when not given.
    """

    def __init__(self, config, store, embedder, routers, endpoints: Mapping[str, Endpoint] | None = None):
        self.config = config
        self.store = store
        self.embedder = embedder
        self.routers = routers
        self.specs = {STRONG: config.strong, WEAK: config.weak}
        self._endpoints = dict(endpoints or {})
        self._endpoint_lock = threading.Lock()
        self.budgets = BudgetThresholds(store, self._prior_scores, window=config.budget_window)
        self._sizes: tuple[float, list[dict]] = (-math.inf, [])  # (when read, recent routing log rows)

    def endpoint(self, role: str):
        """The endpoint for a role, built on first use (embedded servers start lazily)."""
        with self._endpoint_lock:
            if role not in self._endpoints:
                self._endpoints = {**make_endpoints(self.config), **self._endpoints}
            return self._endpoints[role]

    def close(self) -> None:
        """Stop embedded model servers this controller started."""
        for ep in self._endpoints.values():
            close = getattr(ep, "close", None)
            if close:
                close()

    def max_chars(self) -> int:
        """The most characters a conversation may hold (every turn together): the config's
        ``limits.max_prompt_chars`` x ``limits.max_turns``, the same bound the app puts on a chat."""
        return self.config.max_prompt_chars * self.config.max_turns

    def check_size(self, chars: int) -> None:
        """Refuse a conversation over :meth:`max_chars` before it is embedded or sent anywhere."""
        limit = self.max_chars()
        if chars > limit:
            raise BadRequestError(
                f"the messages hold {chars:,} characters; the limit is {limit:,} "
                "(limits.max_prompt_chars x limits.max_turns): shorten them")

    # --- routing -------------------------------------------------------------------------------
    def cost_budget(self, cost_per_1k: float) -> CostBudget:
        """The share of strong calls that costs ``cost_per_1k`` USD per 1,000 requests, at the size of
        this store's recent requests (re-read at most every ``SIZES_TTL_S`` seconds)."""
        read_at, rows = self._sizes
        if time.monotonic() - read_at > SIZES_TTL_S:
            rows = self.store.decisions(limit=SIZE_WINDOW)
            self._sizes = (time.monotonic(), rows)
        return cost_budget(cost_per_1k, self.config.strong, self.config.weak, rows)

    def decide(self, prompt: str, router: str | None = None, threshold: float | None = None, *, explain: int = 0,
               budget: float | None = None, context: Sequence[str] = (), cost_per_1k: float | None = None) -> Decision:
        """Score one prompt and pick a role; no model is called. With ``budget`` (a target share of
        strong calls) the threshold is the budget's, read from recent traffic (:mod:`routellm_demo.budget`);
        ``cost_per_1k`` (USD per 1,000 requests) is such a budget given as a cost (:meth:`cost_budget`).
        ``context``: the conversation's earlier user turns (oldest first); read only when the config's
        ``routing.context`` is "context" (:mod:`routellm_demo.conversation`), and then only through the
        embedding: text features read ``prompt``, and the routing log keeps ``prompt``'s hash."""
        name = check_router(router or self.config.router)
        if cost_per_1k is not None:
            if budget is not None:
                raise BudgetError("give a budget as a share of strong calls or as a cost per 1,000 requests, not both")
            budget = self.cost_budget(cost_per_1k).share
        if budget is not None:
            t = self.budgets.decide(name, budget).threshold  # before this prompt is scored: past scores only
        else:
            t = check_threshold(self.config.threshold if threshold is None else threshold)
        if not isinstance(prompt, str) or not prompt.strip():
            raise BadRequestError("the prompt is empty; type a question")
        self.check_size(len(prompt))
        # once per process: loading the embedder's model or fitting the router is not routing time; the
        # embedder loads its own model (an injected one may have none, or another)
        getattr(self.embedder, "load", lambda: None)()
        self.routers.get(name)
        mode = self.config.routing_context
        start = time.perf_counter()
        vector = routing_vectors(self.embedder, [prompt], [used_context(mode, context)], mode)
        score = float(self.routers.score(name, vector, [prompt])[0])
        routing_ms = (time.perf_counter() - start) * 1000
        role = STRONG if bool(routes_to_strong(score, t)) else WEAK
        explanation = self.routers.explain(name, vector[0], k=explain, prompt=prompt) if explain else []
        return Decision(name, t, score, role, self.specs[role].name, routing_ms, sha256(prompt), explanation,
                        budget=None if budget is None else float(budget), routed_on=routed_on(mode, context),
                        cost_budget=None if cost_per_1k is None else float(cost_per_1k))

    # --- answering -----------------------------------------------------------------------------
    def complete(self, messages, **kwargs) -> Answer:
        """Route and answer, non-streamed (the keywords of :meth:`respond`)."""
        return self.respond(messages, stream=False, **kwargs).answer()

    def respond(self, messages, *, router=None, threshold=None, session_id=None, source="sdk", model_role=None,
                explain: int = 0, stream: bool = True, budget: float | None = None, cost_per_1k: float | None = None,
                **params) -> Response:
        """Route one turn: the :class:`Response` carries the decision at once; iterating it streams
        the answer's text, ``.answer()`` finishes it. A bad request raises here, before any model is
        called.

        ``model_role`` ("strong"/"weak") bypasses routing (a request for a configured model by name):
        the decision then has no score or threshold. ``budget`` (a share) or ``cost_per_1k`` (USD per 1,000
        requests) routes in budget mode (see :meth:`decide`).
        On an endpoint failure before any text was sent,
        falls back to the other model when the config allows it. Every outcome, failures included,
        is logged. ``stream=False`` asks the model for the whole answer at once (one piece).
        """
        msgs = normalise_messages(messages)
        prompt = last_user_turn(msgs)
        self.check_size(sum(len(m["content"]) for m in msgs))
        if model_role is None:
            decision = self.decide(prompt, router, threshold, explain=explain, budget=budget,
                                   context=earlier_user_turns(msgs), cost_per_1k=cost_per_1k)
        else:
            if model_role not in (STRONG, WEAK):
                raise BadRequestError(f"unknown model role {model_role!r}")
            decision = Decision("none", None, None, model_role, self.specs[model_role].name, 0.0, sha256(prompt),
                                routed_on=None)
        return Response(decision, self._answer(decision, msgs, session_id, source, stream, params))

    def _answer(self, decision: Decision, msgs, session_id, source, stream: bool, params) -> Iterator[TextPiece]:
        """Yields the text as the model writes it; returns the accounted :class:`Answer`."""
        roles = [decision.role]
        if self.config.fallback:
            roles.append(WEAK if decision.role == STRONG else STRONG)
        errors: list[EndpointError] = []
        for role in roles:
            sent_text = False
            name = self.specs[role].name
            try:
                if stream:
                    completion = None
                    for piece in self.endpoint(role).stream(msgs, **params):
                        if isinstance(piece, Completion):
                            completion = piece
                        else:
                            sent_text = True
                            yield TextPiece(piece, name)
                    if completion is None:
                        raise EndpointError(name, "bad_response", f"{name} ended the stream without finishing")
                else:
                    completion = self.endpoint(role).complete(msgs, **params)
            except (EndpointError, UnicodeError, json.JSONDecodeError) as e:
                if not isinstance(e, EndpointError):
                    # an upstream answer the client could not even decode (bytes that are not UTF-8,
                    # JSON that is not JSON): the model failed, not the caller
                    e = EndpointError(name, "bad_response", f"{name}: unreadable response ({type(e).__name__}: "
                                                            f"{str(e)[:120]})")
                errors.append(e)
                retry = not sent_text and role != roles[-1]  # never splice two models' text into one answer
                logger.warning("the %s model failed (%s)%s: %s", role, e.kind,
                               "; asking the other one" if retry else "", e)
                if not retry:
                    break
                continue
            answer = self._account(decision, role, completion, errors, session_id, source, msgs)
            if not stream:
                yield TextPiece(answer.text, name)
            return answer
        self._log_failure(decision, errors, session_id, source)
        names = "; ".join(str(e) for e in errors)
        logger.error("no answer (prompt %s…): %s", decision.prompt_sha256[:12], names)
        raise AnswerError(f"no answer: {names}", errors=errors, decision=decision)

    def _account(self, decision: Decision, role: str, completion: Completion, errors, session_id, source,
                 messages) -> Answer:
        usage = completion.usage
        spec = self.specs[role]
        strong_prompt_tokens = usage.prompt_tokens if role == STRONG else other_prompt_tokens(
            spec, self.specs[STRONG], messages, usage.prompt_tokens)
        answer = Answer(
            text=completion.text,
            decision=decision,
            model=spec.name,
            role=role,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            usage_source=usage.source,
            cost=cost_usd(spec, usage.prompt_tokens, usage.completion_tokens),
            strong_cost=cost_usd(self.specs[STRONG], strong_prompt_tokens, usage.completion_tokens),
            latency_ms=completion.latency_ms,
            ttft_ms=completion.ttft_ms,
            finish_reason=completion.finish_reason,
            fallback_from=errors[0].model if errors else None,
            fallback_note=self._fallback_note(decision.role, role, errors),
            dropped_messages=completion.dropped_messages,
            fallback_kind=errors[0].kind if errors else None,
            fallback_error=str(errors[0]) if errors else None,
        )
        answer.log_id = self.store.log_decision(
            **self._log_fields(decision, session_id, source),
            chosen_role=role,
            chosen_model=spec.name,
            fallback_from=answer.fallback_from,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            usage_source=answer.usage_source,
            cost=answer.cost,
            strong_cost=answer.strong_cost,
            latency_ms=answer.latency_ms,
            ttft_ms=answer.ttft_ms,
            error=None,  # answered; a fallback is recorded in fallback_from
        )
        return answer

    @staticmethod
    def _fallback_note(routed: str, answered: str, errors) -> str | None:
        """The visitor's sentence about a fallback, e.g. "The strong model is unavailable right now; the
        weak one answered."; None when the routed model answered."""
        if not errors:
            return None
        reason = FALLBACK_REASONS.get(errors[0].kind, "is unavailable right now")
        return f"The {routed} model {reason}; the {answered} one answered."

    def _log_failure(self, decision: Decision, errors, session_id, source) -> None:
        self.store.log_decision(
            **self._log_fields(decision, session_id, source),
            chosen_role=decision.role,
            chosen_model=decision.model,
            error="; ".join(str(e) for e in errors) or "no answer",
        )

    @staticmethod
    def _log_fields(decision: Decision, session_id, source) -> dict:
        return dict(
            session_id=session_id,
            prompt_sha256=decision.prompt_sha256,
            router=decision.router,
            threshold=decision.threshold,
            score=decision.score,
            routing_ms=decision.routing_ms,
            source=source,
            budget=decision.budget,
        )

    def savings(self, session_id: str | None = None) -> dict:
        return self.store.savings(session_id)

    def _prior_scores(self, router: str) -> list[float]:
        """Budget mode before traffic: the router's scores on a sample of stored battle prompts."""
        return self.calibration_scores(router, "battles")[0]

    def calibration_scores(self, router: str, prompts="auto", *, min_traffic: int = 30,
                           sample: int = 300) -> tuple[list[float], str]:
        """Scores to set a threshold on, and a phrase saying what they are.

        ``prompts``: "logged" (this router's answered traffic), "battles" (a seeded sample of stored
        battle prompts), "auto" (logged when there are at least ``min_traffic`` requests, else
        battles), or a list of prompt strings (a dataset).
        """
        name = check_router(router)
        if prompts in ("auto", "logged"):
            logged = [d["score"] for d in self.store.decisions(limit=5000)
                      if d["router"] == name and d["score"] is not None and not d.get("error")]
            if prompts == "logged" or len(logged) >= min_traffic:
                return logged, f"the last {len(logged)} requests routed by {name}"
            why = f"only {len(logged)} logged requests for {name}"
            prompts = "battles"
        else:
            why = ""
        if prompts == "battles":
            unique = sorted({b["prompt"] for b in self.store.battles()})
            chosen = random.Random(0).sample(unique, min(sample, len(unique)))
            what = f"{len(chosen)} stored battle prompts" + (f" ({why})" if why else "")
        else:
            chosen = [p for p in prompts if isinstance(p, str) and p.strip()]
            what = f"{len(chosen)} given prompts"
        if not chosen:
            return [], what
        scores = self.routers.score(name, self.embedder.embed(chosen), chosen)
        return [float(x) for x in scores], what
